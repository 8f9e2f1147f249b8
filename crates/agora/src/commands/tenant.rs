//! `agora tenant ...`: tenants, their members and instances, their policy, their approved
//! set (install, remove, rollback), updates and the fleet; `agora entitlement ...`: the
//! private plugins offered to tenants.

use std::io::Write as _;
use std::path::Path;

use agora_core::PluginRef;
use agora_core::policy::HostPolicy;
use agora_core::tenant::{
    ApplyUpdates, ApproveRequest, CreateTenant, InstallPreview, Reach, TenantPolicy,
};
use anyhow::Context;

use super::Session;
use crate::cli::{EntitlementCommand, InstanceCommand, TenantCommand};

/// `PUBLISHER/NAME[@VERSION]`.
fn plugin_and_version(text: &str) -> anyhow::Result<(PluginRef, Option<String>)> {
    let (plugin, version) = match text.split_once('@') {
        Some((p, v)) => (p, Some(v.trim_start_matches('=').to_owned())),
        None => (text, None),
    };
    let plugin: PluginRef = plugin
        .parse()
        .with_context(|| format!("{text}: expected PUBLISHER/NAME[@VERSION]"))?;
    Ok((plugin, version))
}

fn list(items: &std::collections::BTreeSet<String>) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// What a release can reach, one line per kind.
pub fn reach_text(reach: &Reach) -> String {
    format!(
        "  hosts:        {}\n  secrets:      {}\n  capabilities: {}",
        list(&reach.hosts),
        list(&reach.secrets),
        list(&reach.capabilities)
    )
}

fn preview_text(p: &InstallPreview) -> String {
    let mut out = format!(
        "{}@{} for tenant {} ({}, verification: {})\n  manifest:     {}\n{}",
        p.plugin,
        p.version,
        p.tenant,
        p.lifecycle,
        p.verification.as_deref().unwrap_or("none yet"),
        p.manifest_digest,
        reach_text(&p.reach)
    );
    if let (Some(current), Some(beyond)) = (&p.approved_version, &p.beyond_approved) {
        if beyond.is_empty() {
            out.push_str(&format!(
                "\n  approved now: {current}; this asks for nothing more"
            ));
        } else {
            out.push_str(&format!(
                "\n  approved now: {current}; this asks for more:\n{}",
                reach_text(beyond)
            ));
        }
    }
    if let Some(r) = &p.refusal {
        out.push_str(&format!(
            "\n  refused by the tenant's policy: {}: {}",
            r.field, r.reason
        ));
    }
    for i in &p.instances {
        out.push_str(&format!(
            "\n  instance {}: {}{}",
            i.instance,
            if i.compatible {
                "can run it"
            } else {
                "cannot run it"
            },
            i.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    out
}

fn entitlements_text(list: &agora_core::tenant::EntitlementList, by_tenant: bool) -> String {
    if list.entitlements.is_empty() {
        return if by_tenant {
            "Offered to no tenant".to_owned()
        } else {
            "No private plugin is offered to this tenant".to_owned()
        };
    }
    list.entitlements
        .iter()
        .map(|e| {
            format!(
                "{:<32} granted by {} at {}",
                if by_tenant { &e.tenant } else { &e.plugin },
                e.granted_by,
                when(Some(e.granted_at))
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn plugin_ref(text: &str) -> anyhow::Result<PluginRef> {
    text.parse()
        .with_context(|| format!("{text}: expected PUBLISHER/NAME"))
}

pub async fn entitlement(s: &Session, cmd: EntitlementCommand) -> anyhow::Result<()> {
    let client = s.client()?;
    match cmd {
        EntitlementCommand::Grant { plugin, tenant } => {
            let e = client
                .grant_entitlement(&plugin_ref(&plugin)?, &tenant)
                .await?;
            s.out.show(&e, |e| {
                format!(
                    "{} is offered to tenant {} (granted by {} at {})",
                    e.plugin,
                    e.tenant,
                    e.granted_by,
                    when(Some(e.granted_at))
                )
            })
        }
        EntitlementCommand::Revoke { plugin, tenant } => {
            let r = client
                .revoke_entitlement(&plugin_ref(&plugin)?, &tenant)
                .await?;
            s.out.show(&r, |r| {
                let mut out = if r.revoked {
                    format!("{plugin} is no longer offered to tenant {tenant}")
                } else {
                    format!("{plugin} was not offered to tenant {tenant}")
                };
                if r.pin_removed {
                    out.push_str(
                        "; it left the tenant's approved set, and its instances remove it",
                    );
                }
                out
            })
        }
        EntitlementCommand::List { plugin } => {
            let list = client.plugin_entitlements(&plugin_ref(&plugin)?).await?;
            s.out.show(&list, |l| entitlements_text(l, true))
        }
    }
}

fn members_text(list: &agora_core::tenant::TenantMemberList) -> String {
    list.members
        .iter()
        .map(|m| format!("{:<24} {}", m.user, m.role.as_str()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn when(ms: Option<i64>) -> String {
    ms.map(agora_registry::time::rfc3339)
        .unwrap_or_else(|| "never".to_owned())
}

/// Writes a secret to a new file readable by its owner only.
fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    writeln!(file, "{secret}").with_context(|| format!("cannot write {}", path.display()))
}

pub async fn tenant(s: &Session, cmd: TenantCommand) -> anyhow::Result<()> {
    let client = s.client()?;
    match cmd {
        TenantCommand::Create {
            name,
            display_name,
            admin,
        } => {
            let t = client
                .create_tenant(&CreateTenant {
                    name,
                    display_name,
                    admin,
                })
                .await?;
            s.out.show(&t, |t| format!("Created tenant {}", t.name))
        }
        TenantCommand::List => {
            let list = client.tenants().await?;
            s.out.show(&list, |l| {
                if l.tenants.is_empty() {
                    return "No tenants".to_owned();
                }
                l.tenants
                    .iter()
                    .map(|t| {
                        format!(
                            "{:<24} {:<7} generation {}{}",
                            t.name,
                            t.role.map(|r| r.as_str()).unwrap_or("-"),
                            t.generation,
                            if t.auto_update {
                                ", automatic updates"
                            } else {
                                ""
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        TenantCommand::Members { tenant } => {
            let list = client.tenant_members(&tenant).await?;
            s.out.show(&list, members_text)
        }
        TenantCommand::Member {
            tenant,
            user,
            role,
            remove,
        } => {
            let role = if remove {
                None
            } else {
                let role = role.context("say --role admin|member, or --remove")?;
                agora_core::tenant::TenantRole::parse(&role)
            };
            let list = client.set_tenant_member(&tenant, &user, role).await?;
            s.out.show(&list, members_text)
        }
        TenantCommand::Policy {
            tenant,
            set,
            auto_update,
        } => {
            let mut current = client.tenant_policy(&tenant).await?;
            if set.is_some() || auto_update.is_some() {
                if let Some(path) = set {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    let policy: HostPolicy = toml::from_str(&text)
                        .with_context(|| format!("{} is not a policy file", path.display()))?;
                    policy
                        .check_for_tenant()
                        .with_context(|| path.display().to_string())?;
                    current.policy = policy;
                }
                if let Some(auto) = auto_update {
                    current.auto_update = auto.on();
                }
                current = client
                    .set_tenant_policy(&tenant, &TenantPolicy { ..current })
                    .await?;
            }
            s.out.show(&current, |p| {
                format!(
                    "# automatic updates: {}\n{}",
                    if p.auto_update { "on" } else { "off" },
                    toml::to_string_pretty(&p.policy).unwrap_or_default()
                )
            })
        }
        TenantCommand::Instance(cmd) => instance(s, &client, cmd).await,
        TenantCommand::Approved { tenant } => {
            let list = client.approvals(&tenant).await?;
            s.out.show(&list, |l| {
                if l.plugins.is_empty() {
                    return format!("Tenant {tenant} has approved no plugin yet");
                }
                l.plugins
                    .iter()
                    .map(|a| {
                        format!(
                            "{}@{}  {}  approved by {} at {} (log entry {})",
                            a.plugin,
                            a.version,
                            a.manifest_digest,
                            a.approved_by,
                            when(Some(a.approved_at)),
                            a.log_index
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        TenantCommand::Install {
            tenant,
            plugin,
            dry_run,
        } => {
            let (plugin, version) = plugin_and_version(&plugin)?;
            let preview = client
                .install_preview(&tenant, &plugin, version.as_deref())
                .await?;
            if dry_run || s.out.json {
                if dry_run {
                    return s.out.show(&preview, preview_text);
                }
            } else {
                s.out.note(&preview_text(&preview));
            }
            if let Some(r) = &preview.refusal {
                anyhow::bail!(
                    "the policy of tenant {tenant} refuses {}@{}: {}: {}",
                    preview.plugin,
                    preview.version,
                    r.field,
                    r.reason
                );
            }
            let approval = client
                .approve(
                    &tenant,
                    &plugin,
                    &ApproveRequest {
                        version: preview.version.clone(),
                        manifest_digest: Some(preview.manifest_digest.clone()),
                    },
                )
                .await?;
            s.out.show(&approval, |a| {
                format!(
                    "Approved {}@{} ({}) for tenant {tenant}; its instances install it at their next poll",
                    a.plugin, a.version, a.manifest_digest
                )
            })
        }
        TenantCommand::Remove { tenant, plugin } => {
            let (plugin, _) = plugin_and_version(&plugin)?;
            client.unapprove(&tenant, &plugin).await?;
            s.out
                .show(&serde_json::json!({"removed": plugin.to_string()}), |_| {
                    format!("Removed {plugin} from tenant {tenant}'s approved set")
                })
        }
        TenantCommand::Rollback { tenant, plugin } => {
            let (plugin, _) = plugin_and_version(&plugin)?;
            let a = client.rollback(&tenant, &plugin).await?;
            s.out.show(&a, |a| {
                format!(
                    "Rolled {} back to {} ({})",
                    a.plugin, a.version, a.manifest_digest
                )
            })
        }
        TenantCommand::Updates { tenant } => {
            let list = client.tenant_updates(&tenant).await?;
            s.out.show(&list, |l| {
                let mut out = Vec::new();
                for p in &l.plugins {
                    if p.newer.is_empty() {
                        out.push(format!("{}@{}: up to date", p.plugin, p.current_version));
                        continue;
                    }
                    out.push(format!("{}@{}:", p.plugin, p.current_version));
                    for u in &p.newer {
                        let asks = if u.asks_more.is_empty() {
                            "asks for nothing more".to_owned()
                        } else {
                            format!("asks for more:\n{}", reach_text(&u.asks_more))
                        };
                        out.push(format!(
                            "  {} ({}, verification: {}) {asks}{}",
                            u.version,
                            u.lifecycle,
                            u.verification.as_deref().unwrap_or("none yet"),
                            u.refusal
                                .as_ref()
                                .map(|r| format!(
                                    "\n    refused by policy: {}: {}",
                                    r.field, r.reason
                                ))
                                .unwrap_or_default()
                        ));
                        if let Some(c) = &u.changelog {
                            for line in c.lines().take(8) {
                                out.push(format!("    | {line}"));
                            }
                        }
                    }
                }
                if out.is_empty() {
                    out.push(format!("Tenant {} has approved no plugin yet", l.tenant));
                }
                out.join("\n")
            })
        }
        TenantCommand::Apply { tenant, plugin } => {
            let plugin = match plugin {
                Some(p) => Some(plugin_and_version(&p)?.0.to_string()),
                None => None,
            };
            let done = client
                .apply_updates(&tenant, &ApplyUpdates { plugin })
                .await?;
            s.out.show(&done, |d| {
                let mut out: Vec<String> = d
                    .applied
                    .iter()
                    .map(|a| {
                        format!(
                            "Moved {} to {} ({})",
                            a.plugin, a.version, a.manifest_digest
                        )
                    })
                    .collect();
                out.extend(
                    d.skipped
                        .iter()
                        .map(|r| format!("Left {} where it is: {}", r.field, r.reason)),
                );
                if out.is_empty() {
                    out.push("Nothing to update".to_owned());
                }
                out.join("\n")
            })
        }
        TenantCommand::Entitlements { tenant } => {
            let list = client.tenant_entitlements(&tenant).await?;
            s.out.show(&list, |l| entitlements_text(l, false))
        }
        TenantCommand::Fleet { tenant } => {
            let fleet = client.fleet(&tenant).await?;
            s.out.show(&fleet, |f| {
                let mut out = vec![format!(
                    "Tenant {} at generation {}",
                    f.tenant, f.generation
                )];
                for i in &f.instances {
                    out.push(format!(
                        "instance {:<20} {:<9} {}generation {} last seen {}{}",
                        i.instance.name,
                        i.instance.state,
                        if i.behind { "BEHIND " } else { "" },
                        i.instance
                            .generation
                            .map(|g| g.to_string())
                            .unwrap_or_else(|| "-".into()),
                        when(i.instance.last_seen_at),
                        i.instance
                            .detail
                            .as_ref()
                            .map(|d| format!("\n    {d}"))
                            .unwrap_or_default()
                    ));
                }
                for p in &f.plugins {
                    out.push(format!(
                        "plugin {}@{}: current on {}; behind on {}{}",
                        p.plugin,
                        p.approved_version,
                        if p.current.is_empty() {
                            "none".into()
                        } else {
                            p.current.join(", ")
                        },
                        if p.behind.is_empty() {
                            "none".into()
                        } else {
                            p.behind.join(", ")
                        },
                        p.failed
                            .iter()
                            .map(|f| format!(
                                "\n    {} cannot run {}: {}",
                                f.instance, f.version, f.reason
                            ))
                            .collect::<String>()
                    ));
                }
                out.join("\n")
            })
        }
    }
}

async fn instance(
    s: &Session,
    client: &agora_client::api::Client,
    cmd: InstanceCommand,
) -> anyhow::Result<()> {
    match cmd {
        InstanceCommand::Register {
            tenant,
            name,
            token_file,
        } => {
            let registered = client.register_instance(&tenant, &name).await?;
            if let Some(path) = &token_file {
                write_secret(path, &registered.token)?;
                return s.out.show(&registered.instance, |i| {
                    format!(
                        "Registered instance {} of tenant {tenant}; its credential is in {}",
                        i.name,
                        path.display()
                    )
                });
            }
            if s.out.quiet && !s.out.json {
                println!("{}", crate::output::shown(&registered.token));
                return Ok(());
            }
            s.out.show(&registered, |r| {
                format!(
                    "Registered instance {} of tenant {tenant}.\n\
                     Its credential is shown only this once (give it to `agora agent --token-file`):\n{}",
                    r.instance.name, r.token
                )
            })
        }
        InstanceCommand::List { tenant } => {
            let list = client.instances(&tenant).await?;
            s.out.show(&list, |l| {
                if l.instances.is_empty() {
                    return format!("Tenant {tenant} has no instance yet");
                }
                l.instances
                    .iter()
                    .map(|i| {
                        format!(
                            "{:<20} {:<9} {} core {} runner {} last seen {}",
                            i.name,
                            if i.revoked {
                                "revoked"
                            } else {
                                i.state.as_str()
                            },
                            i.platform.as_deref().unwrap_or("-"),
                            i.core_version.as_deref().unwrap_or("-"),
                            i.runner_version.as_deref().unwrap_or("-"),
                            when(i.last_seen_at)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        InstanceCommand::Revoke { tenant, name } => {
            client.revoke_instance(&tenant, &name).await?;
            s.out.show(&serde_json::json!({"revoked": name}), |_| {
                format!("Revoked instance {name} of tenant {tenant}")
            })
        }
    }
}
