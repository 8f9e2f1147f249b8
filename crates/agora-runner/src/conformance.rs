//! The conformance harness: runs a plugin in the sandbox and checks it against the
//! contract (`docs/plugin-contract.md`). Each check has a stable name, a verdict and a
//! detail a plugin author can act on. A check that could not be observed is reported as
//! skipped, with the reason: it neither passes nor fails, and never passes silently.

use std::time::{Duration, Instant};

use agora_core::manifest::{Manifest, RuntimeKind};
use serde::Serialize;

use crate::policy::{HostPolicy, ImageRef, Limits, Mode, NetworkPolicy};
use crate::{Plugin, PluginSource, Request, Response, RunError, Runner, Signing};

/// How much later than its timeout a cut request may return.
const CUT_GRACE: Duration = Duration::from_millis(500);
/// Path no plugin declares, for the error-format check.
const MISSING_PATH: &str = "/.agora-conformance/no-such-entrypoint";

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// Nothing could be observed (the detail says why): not passed, not failed.
    pub skipped: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub plugin: String,
    pub version: String,
    pub runtime: String,
    pub digest: String,
    /// Which host policy the plugin ran under, when the caller says (e.g. a file's path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// No check failed (skipped ones do not count).
    pub passed: bool,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed && !c.skipped)
    }

    pub fn skipped(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.skipped)
    }

    /// The human form: one line per check.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "conformance of {}@{} ({}, {})\n",
            self.plugin, self.version, self.runtime, self.digest
        );
        if let Some(policy) = &self.policy {
            out.push_str(&format!("under {policy}\n"));
        }
        for check in &self.checks {
            out.push_str(&format!(
                "  {} {:<28} {}\n",
                match (check.passed, check.skipped) {
                    (_, true) => "skip",
                    (true, _) => "pass",
                    (false, _) => "FAIL",
                },
                check.name,
                check.detail
            ));
        }
        let failed = self.failed().count();
        let skipped: Vec<&str> = self.skipped().map(|c| c.name.as_str()).collect();
        let ran = self.checks.len() - skipped.len();
        out.push_str(&match (failed, skipped.is_empty()) {
            (0, true) => format!("passed: all {ran} checks\n"),
            (0, false) => format!(
                "passed: all {ran} checks that could run; skipped: {}\n",
                skipped.join(", ")
            ),
            (_, true) => format!("failed: {failed} of {ran} checks\n"),
            (_, false) => format!(
                "failed: {failed} of {ran} checks that could run; skipped: {}\n",
                skipped.join(", ")
            ),
        });
        out
    }
}

/// A policy that grants exactly what the manifest asks (within generous ceilings), so
/// the plugin is judged against its own declaration. An `oci` plugin is admitted with
/// its runtime and the one registry its `runtime.image` names; the pull by digest and
/// the digest checks stay as strict as anywhere.
pub fn policy_for(manifest: &Manifest) -> HostPolicy {
    let ceilings = Limits {
        memory_mb: 4096,
        timeout_ms: 600_000,
        max_fds: 4096,
        cpu_secs: 600,
        max_processes: 256,
        disk_mb: 4096,
    };
    let mut policy = HostPolicy {
        mode: Mode::Open,
        limits: ceilings,
        network: NetworkPolicy {
            allowed_hosts: manifest.network.outbound_hosts.clone(),
            allow_private_addresses: false,
        },
        callbacks: manifest.callbacks.clone(),
        ..HostPolicy::default()
    };
    if manifest.runtime.kind == RuntimeKind::Oci {
        policy.runtimes.push(RuntimeKind::Oci);
        // An image that does not parse names no registry: admit() refuses it, saying why.
        if let Some(image) = manifest.runtime.image.as_deref()
            && let Ok(image) = ImageRef::parse(image)
        {
            policy.oci.allowed_registries = vec![image.registry];
        }
    }
    policy
}

fn check(name: impl Into<String>, passed: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        passed,
        skipped: false,
        detail: detail.into(),
    }
}

fn skip(name: impl Into<String>, why: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        passed: false,
        skipped: true,
        detail: why.into(),
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

/// Runs every check. A plugin the runner's host policy refuses fails the `policy` check
/// with the refusal, and nothing more is run. Other loading errors (an unloadable
/// plugin, a sandbox that cannot be built) are errors, not a report.
pub async fn run(runner: &Runner, source: PluginSource) -> Result<Report, RunError> {
    let manifest = source.manifest.clone();
    let mut report = Report {
        plugin: source.id(),
        version: manifest.version.to_string(),
        runtime: manifest.runtime.kind.as_str().to_owned(),
        digest: source.digest.to_string(),
        policy: None,
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
    let plugin = match runner.load(source).await {
        Ok(plugin) => plugin,
        Err(RunError::Refused(refusal)) => {
            let whose = if refusal.is_tenants() {
                "tenant"
            } else {
                "host"
            };
            checks.push(check(
                "policy",
                false,
                format!("refused by the {whose} policy: {refusal}"),
            ));
            return Ok(report);
        }
        Err(e) => return Err(e),
    };

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
    report.passed = !report.checks.iter().any(|c| !c.passed && !c.skipped);
    Ok(report)
}

/// The deadline the runner is made to enforce when no entrypoint was slow: far shorter
/// than any an entrypoint declares.
const FORCED_DEADLINE: Duration = Duration::from_millis(1);
/// Calls with an empty JSON body, then with [`PADDED_BODY_BYTES`] of JSON (under the
/// 1 MiB many plugins accept): a plugin must read and hash every byte of a body to check
/// its signature, which may take it longer than [`FORCED_DEADLINE`] when `{}` does not.
const FORCED_TRIES: [bool; 5] = [false, false, true, true, true];
const PADDED_BODY_BYTES: usize = 1_000_000;

/// Calls an entrypoint with [`FORCED_DEADLINE`] until the runner cuts it: how long the
/// cut took, the deadline, and what was sent and declared; or why no cut was seen.
async fn force_cut(
    plugin: &Plugin,
    manifest: &Manifest,
) -> Result<(Duration, Duration, String), String> {
    let Some((name, entry)) = manifest.entrypoints.iter().next() else {
        return Err("not observed: the manifest declares no entrypoint to call".into());
    };
    let declared = plugin.grant().timeout_ms(name);
    let padded = {
        let mut body = String::with_capacity(PADDED_BODY_BYTES);
        body.push_str("{\"agora_conformance_padding\":\"");
        body.extend(std::iter::repeat_n('a', PADDED_BODY_BYTES - body.len() - 2));
        body.push_str("\"}");
        bytes::Bytes::from(body)
    };
    for padding in FORCED_TRIES {
        let body = if padding {
            padded.clone()
        } else {
            bytes::Bytes::from_static(b"{}")
        };
        let started = Instant::now();
        let outcome = plugin
            .send(Request {
                timeout: Some(FORCED_DEADLINE),
                ..Request::post(&entry.path, body)
            })
            .await;
        if let Err(RunError::Timeout { .. }) = outcome {
            let sent = if padding { "a 1 MB body, " } else { "" };
            let note = format!(" ({sent}entrypoint {name} declares {declared} ms)");
            return Ok((started.elapsed(), FORCED_DEADLINE, note));
        }
    }
    Err(format!(
        "not observed: entrypoint {name} answered all {} calls given a {} ms deadline (the last ones with a 1 MB body) before the runner could cut one, so no cut was seen",
        FORCED_TRIES.len(),
        FORCED_DEADLINE.as_millis()
    ))
}

/// A request past its timeout is cut in time, and the plugin serves again afterwards.
///
/// When an entrypoint ran past its own timeout above, that cut is judged. Otherwise the
/// runner is made to enforce a deadline far shorter than the one the plugin declares
/// ([`force_cut`]). A plugin that answers every such call before the runner can cut it
/// leaves no cut to observe, and the check is skipped, saying so: it is not a pass.
async fn timeout_check(
    plugin: &Plugin,
    manifest: &Manifest,
    cut: Option<(Duration, Duration)>,
) -> Check {
    const NAME: &str = "timeout";
    let (took, timeout, declared) = match cut {
        Some((took, timeout)) => (took, timeout, String::new()),
        None => match force_cut(plugin, manifest).await {
            Ok(forced) => forced,
            Err(why) => return skip(NAME, why),
        },
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
                "a request past its {} ms timeout{declared} was cut after {} ms, and the plugin answered again",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(checks: Vec<Check>) -> Report {
        let passed = !checks.iter().any(|c| !c.passed && !c.skipped);
        Report {
            plugin: "acme/demo".into(),
            version: "1.0.0".into(),
            runtime: "wasm".into(),
            digest: "sha256:00".into(),
            policy: Some("the host policy ./policy.toml".into()),
            passed,
            checks,
        }
    }

    #[test]
    fn a_skipped_check_is_neither_a_pass_nor_a_failure_and_says_so() {
        let r = report(vec![
            check("health", true, "GET /healthz answered 200"),
            skip("timeout", "not observed: no cut was seen"),
        ]);
        assert!(r.passed);
        assert_eq!(r.failed().count(), 0);
        let text = r.to_text();
        assert!(
            text.contains("under the host policy ./policy.toml\n"),
            "{text}"
        );
        assert!(text.contains("  skip timeout "), "{text}");
        assert!(
            text.ends_with("passed: all 1 checks that could run; skipped: timeout\n"),
            "{text}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["checks"][1]["skipped"], true);
        assert_eq!(json["checks"][1]["passed"], false);

        let r = report(vec![
            check("health", false, "GET /healthz answered 500"),
            skip("timeout", "not observed"),
        ]);
        assert!(!r.passed);
        assert!(
            r.to_text()
                .ends_with("failed: 1 of 1 checks that could run; skipped: timeout\n")
        );
        let r = report(vec![check("health", true, "ok")]);
        assert!(r.to_text().ends_with("passed: all 1 checks\n"));
    }

    #[test]
    fn an_oci_plugin_is_admitted_with_its_runtime_and_its_images_registry_only() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let manifest = |runtime: &str| {
            Manifest::from_yaml(&format!(
                "api_version: agora/v1\npublisher: acme\nname: demo\nversion: 1.0.0\n\
                 description: d\nlicense: MIT\nruntime: {runtime}\n\
                 entrypoints: {{ run: {{ path: /run }} }}\n"
            ))
            .unwrap()
        };
        let oci = manifest(&format!(
            "{{ type: oci, image: \"127.0.0.1:5000/acme/demo@{digest}\" }}"
        ));
        let policy = policy_for(&oci);
        assert_eq!(policy.oci.allowed_registries, ["127.0.0.1:5000"]);
        policy.admit(&oci).unwrap();
        // Another registry is not admitted by it.
        let elsewhere = manifest(&format!(
            "{{ type: oci, image: \"registry.example/acme/demo@{digest}\" }}"
        ));
        let refusal = policy.admit(&elsewhere).unwrap_err();
        assert_eq!(refusal.field, "runtime.image", "{refusal:?}");
        // A plugin of another runtime gets no registry and no oci runtime.
        let wasm = manifest("{ type: wasm, module: plugin.wasm }");
        let policy = policy_for(&wasm);
        assert!(policy.oci.allowed_registries.is_empty());
        assert!(!policy.runtimes.contains(&RuntimeKind::Oci));
    }
}
