//! The runner's audit trail: one JSON object per line, appended and flushed per event, so
//! a crash loses nothing already recorded. Events name the plugin, its version and the
//! digest of the code that ran.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Map, Value};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Plugin code loaded and checked against its pinned digest.
    Pull,
    /// Refused by policy before starting.
    Refused,
    /// Admitted with a weaker native sandbox than the full one (an older kernel).
    WeakerSandbox,
    Start,
    Stop,
    Request,
    /// Something the sandbox stopped: a host, a syscall, a limit.
    Denial,
    Failure,
    /// A callback to the host's core, forwarded (with the core's status).
    Callback,
    /// A callback refused by the runner: undeclared, unsigned, too large, no core.
    CallbackDenied,
}

/// What a denial was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Denied {
    File,
    Host,
    Syscall,
    Limit,
    Auth,
}

/// The plugin an event is about.
#[derive(Debug, Clone, Serialize)]
pub struct Subject {
    pub plugin: String,
    pub version: String,
    pub digest: String,
    pub runtime: &'static str,
}

/// Where events go. Cloning shares the file.
#[derive(Clone, Default)]
pub struct AuditLog {
    sink: Option<Arc<Mutex<File>>>,
    captured: Option<Captured>,
}

/// Most events a [`Captured`] keeps; later ones are counted, not kept.
pub const MAX_CAPTURED_EVENTS: usize = 1000;

/// The events of an [`AuditLog::capturing`] log, in memory, for the caller to read (the
/// verification's behaviour run turns denials into findings).
#[derive(Clone, Default)]
pub struct Captured {
    events: Arc<Mutex<(Vec<Value>, usize)>>,
}

impl Captured {
    /// The events recorded since the last call, and how many more were dropped beyond
    /// [`MAX_CAPTURED_EVENTS`].
    pub fn take(&self) -> (Vec<Value>, usize) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        (std::mem::take(&mut events.0), std::mem::take(&mut events.1))
    }

    fn push(&self, event: Value) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.0.len() < MAX_CAPTURED_EVENTS {
            events.0.push(event);
        } else {
            events.1 += 1;
        }
    }
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("enabled", &self.sink.is_some())
            .finish()
    }
}

impl AuditLog {
    /// Appends to `path`, creating it (mode 0600) if needed.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path)?;
        Ok(AuditLog {
            sink: Some(Arc::new(Mutex::new(file))),
            captured: None,
        })
    }

    /// A log that keeps its events in memory, readable through the [`Captured`].
    pub fn capturing() -> (AuditLog, Captured) {
        let captured = Captured::default();
        let log = AuditLog {
            sink: None,
            captured: Some(captured.clone()),
        };
        (log, captured)
    }

    /// An audit log that records nothing (the library default for embedders that audit
    /// elsewhere).
    pub fn disabled() -> AuditLog {
        AuditLog::default()
    }

    /// Records one event. `fields` adds event-specific members (entrypoint, status,
    /// duration_ms, denied, target, reason, ...).
    pub fn record(&self, kind: Kind, subject: &Subject, fields: Value) {
        if self.sink.is_none()
            && self.captured.is_none()
            && !tracing::enabled!(target: "agora::audit", tracing::Level::DEBUG)
        {
            return;
        }
        let mut event = Map::new();
        event.insert(
            "ts".into(),
            humantime::format_rfc3339_millis(SystemTime::now())
                .to_string()
                .into(),
        );
        event.insert(
            "event".into(),
            serde_json::to_value(kind).unwrap_or_default(),
        );
        if let Ok(Value::Object(subject)) = serde_json::to_value(subject) {
            event.extend(subject);
        }
        if let Value::Object(fields) = fields {
            event.extend(fields);
        }
        let event = Value::Object(event);
        let mut line = event.to_string();
        tracing::debug!(target: "agora::audit", "{line}");
        if let Some(captured) = &self.captured {
            captured.push(event);
        }
        let Some(sink) = &self.sink else { return };
        line.push('\n');
        let mut file = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(e) = file.write_all(line.as_bytes()) {
            tracing::error!("cannot write the audit log: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_json_lines_with_the_subject() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit/audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        let subject = Subject {
            plugin: "acme/jira".into(),
            version: "1.0.0".into(),
            digest: "sha256:00".into(),
            runtime: "wasm",
        };
        log.record(Kind::Start, &subject, serde_json::json!({}));
        log.record(
            Kind::Denial,
            &subject,
            serde_json::json!({"denied": Denied::Host, "target": "evil.com:443"}),
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "start");
        assert_eq!(lines[1]["event"], "denial");
        assert_eq!(lines[1]["denied"], "host");
        assert_eq!(lines[1]["plugin"], "acme/jira");
        assert_eq!(lines[1]["digest"], "sha256:00");
        assert!(lines[1]["ts"].as_str().unwrap().ends_with('Z'));
    }
}
