//! The conformance harness: runs a plugin in the sandbox and checks it against the
//! contract (`docs/plugin-contract.md`). Each check has a stable name, a verdict and a
//! detail a plugin author can act on.

use std::time::{Duration, Instant};

use agora_core::manifest::Manifest;
use serde::Serialize;

use crate::policy::{HostPolicy, Limits, Mode, NetworkPolicy};
use crate::{Plugin, PluginSource, Request, Response, RunError, Runner, Signing};

/// How much later than its timeout a cut request may return.
const CUT_GRACE: Duration = Duration::from_millis(500);
/// Path no plugin declares, for the error-format check.
const MISSING_PATH: &str = "/.agora-conformance/no-such-entrypoint";

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub plugin: String,
    pub version: String,
    pub runtime: String,
    pub digest: String,
    pub passed: bool,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }

    /// The human form: one line per check.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "conformance of {}@{} ({}, {})\n",
            self.plugin, self.version, self.runtime, self.digest
        );
        for check in &self.checks {
            out.push_str(&format!(
                "  {} {:<28} {}\n",
                if check.passed { "pass" } else { "FAIL" },
                check.name,
                check.detail
            ));
        }
        let failed = self.failed().count();
        out.push_str(&if failed == 0 {
            format!("passed: all {} checks\n", self.checks.len())
        } else {
            format!("failed: {failed} of {} checks\n", self.checks.len())
        });
        out
    }
}

/// A policy that grants exactly what the manifest asks (within generous ceilings), so
/// the plugin is judged against its own declaration.
pub fn policy_for(manifest: &Manifest) -> HostPolicy {
    let ceilings = Limits {
        memory_mb: 4096,
        timeout_ms: 600_000,
        max_fds: 4096,
        cpu_secs: 600,
        max_processes: 256,
        disk_mb: 4096,
    };
    HostPolicy {
        mode: Mode::Open,
        limits: ceilings,
        network: NetworkPolicy {
            allowed_hosts: manifest.network.outbound_hosts.clone(),
            allow_private_addresses: false,
        },
        ..HostPolicy::default()
    }
}

fn check(name: impl Into<String>, passed: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        passed,
        detail: detail.into(),
    }
}

fn describe(response: &Response) -> String {
    let body = String::from_utf8_lossy(&response.body);
    let body: String = body.chars().take(120).collect();
    format!(
        "{} {} {}",
        response.status,
        response
            .content_type
            .as_deref()
            .unwrap_or("(no content type)"),
        body.trim()
    )
}

/// Whether `response` is an RFC 9457 problem document.
fn is_problem(response: &Response) -> Result<(), String> {
    let ct = response.content_type.as_deref().unwrap_or("");
    if ct.split(';').next().map(str::trim) != Some(agora_contract::PROBLEM_JSON) {
        return Err(format!(
            "content type is `{ct}`, not {}",
            agora_contract::PROBLEM_JSON
        ));
    }
    match serde_json::from_slice::<serde_json::Value>(&response.body) {
        Ok(serde_json::Value::Object(doc))
            if doc.contains_key("title") || doc.contains_key("type") =>
        {
            Ok(())
        }
        Ok(_) => Err("the body is JSON but not a problem object (no `type` or `title`)".into()),
        Err(e) => Err(format!("the body is not JSON: {e}")),
    }
}

/// Runs every check. Loading errors (a refused or unloadable plugin) are errors, not a
/// report: there is nothing to check.
pub async fn run(runner: &Runner, source: PluginSource) -> Result<Report, RunError> {
    let manifest = source.manifest.clone();
    let mut report = Report {
        plugin: source.id(),
        version: manifest.version.to_string(),
        runtime: manifest.runtime.kind.as_str().to_owned(),
        digest: source.digest.to_string(),
        passed: false,
        checks: Vec::new(),
    };
    let checks = &mut report.checks;
    checks.push(match manifest.compatibility.runner_api.as_deref() {
        Some(api) if api == agora_contract::RUNNER_API => {
            check("runner_api", true, format!("declares {api}"))
        }
        Some(api) => check(
            "runner_api",
            false,
            format!(
                "declares {api}; this runner speaks {}",
                agora_contract::RUNNER_API
            ),
        ),
        None => check(
            "runner_api",
            false,
            "compatibility.runner_api is missing; declare v1",
        ),
    });
    if manifest.entrypoints.is_empty() {
        checks.push(check(
            "entrypoints",
            false,
            "the manifest declares no entrypoints",
        ));
    }
    let plugin = runner.load(source).await?;

    checks.push(match plugin.health().await {
        Ok(r) if r.status == 200 => check("health", true, "GET /healthz answered 200"),
        Ok(r) => check(
            "health",
            false,
            format!("GET /healthz answered {}", describe(&r)),
        ),
        Err(e) => check("health", false, format!("GET /healthz failed: {e}")),
    });

    let mut cut = None;
    for (name, entry) in &manifest.entrypoints {
        let timeout = Duration::from_millis(plugin.grant().timeout_ms(name).into());
        let started = Instant::now();
        let outcome = plugin
            .send(Request {
                timeout: Some(timeout),
                ..Request::post(&entry.path, "{}")
            })
            .await;
        let label = format!("entrypoint {name}");
        checks.push(match outcome {
            Ok(r)
                if r.status < 500
                    && r.is_json()
                    && serde_json::from_slice::<serde_json::Value>(&r.body).is_ok() =>
            {
                check(
                    label,
                    true,
                    format!("POST {} answered {} with JSON", entry.path, r.status),
                )
            }
            Ok(r) => check(
                label,
                false,
                format!(
                    "POST {} answered {}; expected a JSON body",
                    entry.path,
                    describe(&r)
                ),
            ),
            Err(RunError::Timeout { ms }) => {
                cut = Some((started.elapsed(), timeout));
                check(
                    label,
                    false,
                    format!(
                        "POST {} did not answer within its timeout of {ms} ms",
                        entry.path
                    ),
                )
            }
            Err(e) => check(label, false, format!("POST {} failed: {e}", entry.path)),
        });
    }

    if let Some((_, entry)) = manifest.entrypoints.iter().next() {
        for (name, signing, what) in [
            ("auth: unsigned", Signing::Unsigned, "an unsigned request"),
            (
                "auth: wrong key",
                Signing::WrongKey,
                "a request signed with another key",
            ),
            (
                "auth: stale timestamp",
                Signing::Stale,
                "a request signed an hour ago",
            ),
        ] {
            let outcome = plugin
                .send(Request {
                    signing,
                    ..Request::post(&entry.path, "{}")
                })
                .await;
            checks.push(match outcome {
                Ok(r) if r.status == 401 => match is_problem(&r) {
                    Ok(()) => check(name, true, format!("{what} was refused with 401")),
                    Err(why) => check(
                        name,
                        false,
                        format!("{what} was refused with 401, but {why}"),
                    ),
                },
                Ok(r) => check(
                    name,
                    false,
                    format!(
                        "{what} was answered {}; it must be refused with 401",
                        describe(&r)
                    ),
                ),
                Err(e) => check(
                    name,
                    false,
                    format!("{what} failed instead of being refused: {e}"),
                ),
            });
        }
        let outcome = plugin.send(Request::post(&entry.path, "{not json")).await;
        checks.push(match outcome {
            Ok(r) if (400..500).contains(&r.status) => match is_problem(&r) {
                Ok(()) => check(
                    "errors: bad input",
                    true,
                    format!(
                        "a malformed body was refused with {} problem+json",
                        r.status
                    ),
                ),
                Err(why) => check(
                    "errors: bad input",
                    false,
                    format!("a malformed body was refused with {}, but {why}", r.status),
                ),
            },
            Ok(r) => check(
                "errors: bad input",
                false,
                format!(
                    "a malformed body was answered {}; expected a 4xx problem+json",
                    describe(&r)
                ),
            ),
            Err(e) => check(
                "errors: bad input",
                false,
                format!("a malformed body failed: {e}"),
            ),
        });
    }
    let outcome = plugin.send(Request::post(MISSING_PATH, "{}")).await;
    checks.push(match outcome {
        Ok(r) if r.status == 404 => match is_problem(&r) {
            Ok(()) => check(
                "errors: problem+json",
                true,
                "an undeclared path answered 404 problem+json",
            ),
            Err(why) => check(
                "errors: problem+json",
                false,
                format!("an undeclared path answered 404, but {why}"),
            ),
        },
        Ok(r) => check(
            "errors: problem+json",
            false,
            format!(
                "an undeclared path answered {}; expected 404 problem+json",
                describe(&r)
            ),
        ),
        Err(e) => check(
            "errors: problem+json",
            false,
            format!("an undeclared path failed: {e}"),
        ),
    });

    checks.push(timeout_check(&plugin, &manifest, cut).await);
    report.passed = report.checks.iter().all(|c| c.passed);
    Ok(report)
}

/// A request past its timeout is cut in time, and the plugin serves again afterwards.
/// If no entrypoint was slow, one is called with a 1 ms deadline until a cut happens.
async fn timeout_check(
    plugin: &Plugin,
    manifest: &Manifest,
    mut cut: Option<(Duration, Duration)>,
) -> Check {
    const NAME: &str = "timeout";
    if cut.is_none()
        && let Some(entry) = manifest.entrypoints.values().next()
    {
        let deadline = Duration::from_millis(1);
        for _ in 0..5 {
            let started = Instant::now();
            let outcome = plugin
                .send(Request {
                    timeout: Some(deadline),
                    ..Request::post(&entry.path, "{}")
                })
                .await;
            if let Err(RunError::Timeout { .. }) = outcome {
                cut = Some((started.elapsed(), deadline));
                break;
            }
        }
    }
    let Some((took, timeout)) = cut else {
        return check(
            NAME,
            true,
            "every request answered within 1 ms; nothing to cut",
        );
    };
    if took > timeout + CUT_GRACE {
        return check(
            NAME,
            false,
            format!(
                "a request with a {} ms timeout was cut only after {} ms",
                timeout.as_millis(),
                took.as_millis()
            ),
        );
    }
    match plugin.health().await {
        Ok(r) if r.status == 200 => check(
            NAME,
            true,
            format!(
                "a request past its {} ms timeout was cut after {} ms, and the plugin answered again",
                timeout.as_millis(),
                took.as_millis()
            ),
        ),
        Ok(r) => check(
            NAME,
            false,
            format!(
                "after a cut request, GET /healthz answered {}",
                describe(&r)
            ),
        ),
        Err(e) => check(
            NAME,
            false,
            format!("after a cut request, GET /healthz failed: {e}"),
        ),
    }
}
