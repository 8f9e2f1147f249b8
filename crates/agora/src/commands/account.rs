//! `login`, `whoami`, `user`, `publisher`, `token`.

use std::io::{BufRead, IsTerminal};

use agora_client::Client;
use agora_core::api::CreateToken;
use anyhow::Context;

use super::Session;
use crate::cli::{PublisherCommand, TokenCommand, UserCommand};

pub async fn login(mut s: Session, token: Option<String>) -> anyhow::Result<()> {
    let token = match token {
        Some(t) => t,
        None => read_secret(
            &format!("Token for {} (not shown as you type): ", s.registry),
            "the token",
        )?
        .trim()
        .to_owned(),
    };
    anyhow::ensure!(!token.is_empty(), "no token given");
    let me = Client::new(&s.registry, Some(token.clone()))?
        .me()
        .await
        .context("the registry refused this token")?;
    s.credentials.set_token(&s.registry, token);
    let path = s.credentials.save()?;
    s.out.show(&me, |me| {
        format!(
            "Logged in to {} as {} (scopes: {}); token stored in {}",
            s.registry,
            me.username,
            me.scopes,
            path.display()
        )
    })
}

pub async fn whoami(s: &Session) -> anyhow::Result<()> {
    let me = s.client()?.me().await?;
    s.out.show(&me, |me| {
        format!(
            "{} ({}) on {}\nscopes: {}\npublishers: {}",
            me.username,
            me.role,
            s.registry,
            me.scopes,
            me.publishers.join(", ")
        )
    })
}

pub async fn user(s: &Session, cmd: UserCommand) -> anyhow::Result<()> {
    let client = s.client()?;
    match cmd {
        UserCommand::Create { name, role } => {
            let user = client.create_user(&name, Some(&role)).await?;
            s.out.show(&user, |u| format!("Created user {} ({}); give them a token with `agora token create --user {} --scope ...`", u.username, u.role, u.username))
        }
        UserCommand::Password { name } => {
            let name = match name {
                Some(n) => n,
                None => client.me().await?.username,
            };
            let password = read_secret(
                &format!("New password for {name} (12 characters or more, not shown): "),
                "the password",
            )?;
            anyhow::ensure!(!password.is_empty(), "no password on standard input");
            client.set_password(&name, &password).await?;
            s.out.show(&name, |n| {
                format!("Password of {n} set; sign in at the registry's /login page")
            })
        }
        UserCommand::List => {
            let users = client.list_users().await?;
            s.out.show(&users, |users| {
                users
                    .iter()
                    .map(|u| format!("{:<24} {}", u.username, u.role))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
    }
}

pub async fn publisher(s: &Session, cmd: PublisherCommand) -> anyhow::Result<()> {
    let client = s.client()?;
    match cmd {
        PublisherCommand::Create { name, display_name } => {
            let p = client
                .create_publisher(&name, display_name.as_deref())
                .await?;
            s.out.show(&p, |p| {
                format!("Created publisher {}; you are its owner", p.name)
            })
        }
        PublisherCommand::AddMember {
            publisher,
            user,
            role,
        } => {
            names(&[&publisher, &user])?;
            let result = client.add_member(&publisher, &user, Some(&role)).await?;
            s.out.show(&result, |r| match &r.invitation {
                Some(i) => format!(
                    "Invited {} to {publisher} as {} (until {}); they join with `agora publisher accept {publisher}`",
                    i.username, i.role, i.expires_at
                ),
                None => member_list(&publisher, &r.members),
            })
        }
        PublisherCommand::RemoveMember { publisher, user } => {
            names(&[&publisher, &user])?;
            let members = client.remove_member(&publisher, &user).await?;
            s.out.show(&members, |m| member_list(&publisher, m))
        }
        PublisherCommand::Invitations { publisher } => {
            if let Some(p) = &publisher {
                names(&[p])?;
            }
            let list = client.invitations(publisher.as_deref()).await?;
            s.out.show(&list, |list| {
                if list.is_empty() {
                    return "No open invitations.".into();
                }
                list.iter()
                    .map(|i| {
                        format!(
                            "{}: {} as {}, invited by {} (until {})",
                            i.publisher, i.username, i.role, i.invited_by, i.expires_at
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        PublisherCommand::Accept { publisher } => {
            names(&[&publisher])?;
            let members = client.accept_invitation(&publisher).await?;
            s.out.show(&members, |m| member_list(&publisher, m))
        }
        PublisherCommand::Decline { publisher, user } => {
            let me = match user {
                Some(u) => u,
                None => client.me().await?.username,
            };
            names(&[&publisher, &me])?;
            client.cancel_invitation(&publisher, &me).await?;
            s.out.note(&format!(
                "The invitation of {me} to {publisher} is withdrawn"
            ));
            Ok(())
        }
    }
}

/// A secret (a token, a password) from standard input. On a terminal it is asked for with
/// `prompt` and read with echo off, so it never shows on the screen; from a pipe or a file
/// it is the first line. The line break is removed, nothing else.
fn read_secret(prompt: &str, what: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        // Standard input itself (not the controlling terminal, which a process may lack),
        // with the prompt where a person sees it.
        let config = rpassword::ConfigBuilder::new().input_file_path("/dev/stdin");
        let config = if std::io::stderr().is_terminal() {
            config.output_file_path("/dev/stderr")
        } else if std::fs::File::options()
            .write(true)
            .open("/dev/tty")
            .is_ok()
        {
            config.output_file_path("/dev/tty")
        } else {
            config.output_discard()
        };
        return rpassword::prompt_password_with_config(prompt, config.build())
            .with_context(|| format!("cannot read {what} from the terminal"));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("cannot read {what} from standard input"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Names go into URL paths: only well-formed ones.
fn names(list: &[&str]) -> anyhow::Result<()> {
    for name in list {
        anyhow::ensure!(
            agora_core::name::is_slug(name),
            "{name:?} is not a valid name: {}",
            agora_core::name::SLUG_RULE
        );
    }
    Ok(())
}

fn member_list(publisher: &str, members: &[agora_core::api::Member]) -> String {
    format!(
        "{publisher} members: {}",
        members
            .iter()
            .map(|m| format!("{} ({})", m.username, m.role))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub async fn token(s: &Session, cmd: TokenCommand) -> anyhow::Result<()> {
    let client = s.client()?;
    match cmd {
        TokenCommand::Create {
            scopes,
            name,
            expires,
            user,
        } => {
            let expires_in_seconds = expires
                .map(|e| {
                    humantime::parse_duration(&e).with_context(|| {
                        format!("--expires {e:?} is not a duration such as 30d, 12h or 90days")
                    })
                })
                .transpose()?
                .map(|d| d.as_secs());
            let request = CreateToken {
                name,
                scopes: scopes.join(" "),
                expires_in_seconds,
                for_user: user,
            };
            let created = client.create_token(&request).await?;
            if s.out.quiet && !s.out.json {
                // Quiet drops the chatter, never the one-time secret: the token alone.
                println!("{}", crate::output::shown(&created.token));
                return Ok(());
            }
            s.out.show(&created, |c| {
                format!(
                    "Created token {} for {} (scopes: {}{}). It is shown only this once:\n{}",
                    c.info.id,
                    c.info.username,
                    c.info.scopes,
                    c.info
                        .expires_at
                        .as_ref()
                        .map(|e| format!(", expires {e}"))
                        .unwrap_or_default(),
                    c.token
                )
            })
        }
        TokenCommand::List => {
            let tokens = client.list_tokens().await?;
            s.out.show(&tokens, |tokens| {
                tokens
                    .iter()
                    .map(|t| {
                        let state = if t.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        };
                        format!(
                            "{:>4}  {:<16} {:<12} {:<8} {}",
                            t.id, t.name, t.prefix, state, t.scopes
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        TokenCommand::Revoke { id } => {
            client.revoke_token(id).await?;
            s.out.show(&serde_json::json!({ "revoked": id }), |_| {
                format!("Revoked token {id}")
            })
        }
    }
}
