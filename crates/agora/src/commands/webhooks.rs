//! `agora webhook create|list|remove|deliveries|ping`: a publisher's hooks or the
//! registry-wide ones.

use agora_core::Slug;
use agora_core::webhook::WebhookCreateRequest;
use anyhow::Context;

use super::Session;
use crate::cli::WebhookCommand;

/// `--publisher`, checked before it goes into a request path.
fn publisher_name(publisher: Option<&str>) -> anyhow::Result<Option<String>> {
    publisher
        .map(|p| {
            Slug::parse("publisher", p)
                .map(|s| s.as_str().to_owned())
                .context("--publisher")
        })
        .transpose()
}

pub async fn webhook(s: &Session, cmd: WebhookCommand) -> anyhow::Result<()> {
    let client = s.client()?;
    match cmd {
        WebhookCommand::Create {
            publisher,
            url,
            events,
            disabled,
        } => {
            let publisher = publisher_name(publisher.as_deref())?;
            let request = WebhookCreateRequest {
                url,
                events,
                enabled: !disabled,
            };
            let created = client
                .create_webhook(publisher.as_deref(), &request)
                .await?;
            if s.out.quiet && !s.out.json {
                // Quiet drops the chatter, never the one-time secret.
                println!("{}", crate::output::shown(&created.secret));
                return Ok(());
            }
            s.out.show(&created, |c| {
                let whose = match &c.webhook.publisher {
                    Some(p) => format!("publisher {p}'s"),
                    None => "every publisher's".to_owned(),
                };
                format!(
                    "Created webhook {} for {whose} {} events to {}.\n\
                     Its signing secret is shown only this once:\n{}",
                    c.webhook.id,
                    c.webhook.events.join(", "),
                    c.webhook.url,
                    c.secret
                )
            })
        }
        WebhookCommand::List { publisher } => {
            let publisher = publisher_name(publisher.as_deref())?;
            let hooks = client.webhooks(publisher.as_deref()).await?;
            s.out.show(&hooks, |hooks| {
                if hooks.is_empty() {
                    return "No webhooks".to_owned();
                }
                hooks
                    .iter()
                    .map(|h| {
                        let state = if h.enabled { "enabled" } else { "disabled" };
                        format!(
                            "{:>4}  {:<8}  {}  {}",
                            h.id,
                            state,
                            h.url,
                            h.events.join(",")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        WebhookCommand::Remove { id } => {
            client.remove_webhook(id).await?;
            s.out.show(&serde_json::json!({ "removed": id }), |_| {
                format!("Removed webhook {id}")
            })
        }
        WebhookCommand::Deliveries { id } => {
            let attempts = client.webhook_deliveries(id).await?;
            s.out.show(&attempts, |attempts| {
                if attempts.is_empty() {
                    return format!("Webhook {id} has no delivery yet");
                }
                attempts
                    .iter()
                    .map(|a| {
                        let result = match (&a.status_code, &a.error) {
                            (Some(code), None) => format!("HTTP {code}"),
                            (Some(code), Some(_)) => format!("HTTP {code} (failed)"),
                            (None, Some(e)) => format!("failed: {e}"),
                            (None, None) => "no answer".to_owned(),
                        };
                        format!(
                            "{}  {:<22}  {}  attempt {}  {}  {} ms",
                            a.at, a.event, a.message_id, a.attempt, result, a.duration_ms
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        WebhookCommand::Ping { id } => {
            let queued = client.ping_webhook(id).await?;
            s.out.show(&queued, |q| {
                format!(
                    "Queued a webhook.ping to webhook {id} ({}); see `agora webhook deliveries {id}`",
                    q.message_id
                )
            })
        }
    }
}
