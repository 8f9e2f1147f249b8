//! A log monitor, as Certificate Transparency and Go checksum-database monitors work: read
//! every entry of a registry's transparency log once, in order, check that the entries
//! are exactly the log its signed checkpoints describe, and report what matters to the
//! publishers one follows (key registrations and revocations, releases, lifecycle and
//! visibility changes).
//!
//! It also checks what a single install cannot: that every key event chains to its
//! publisher's previous one, and that every release names its publisher's newest key
//! event as the head it was accepted against. A registry that accepted a release against
//! an old key history (say, to slip in a release by a key revoked since) is caught here.
//!
//! State (per registry): the log size read so far, the tree's right edge (a few hashes)
//! and each publisher's key history head.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use agora_trust::log::Hash;
use agora_trust::{Checkpoint, EntryRef, Frontier, LogEntry, LogError};
use serde::{Deserialize, Serialize};

use crate::api::Client;
use crate::logcheck::{LogCheckError, Pinning, load_state, save_state};

/// Entries read per request.
const BATCH: u32 = 1000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MonitorState {
    pub verifier_key: String,
    /// Entries read and checked so far.
    pub size: u64,
    /// The tree's right edge after `size` entries, hex.
    pub frontier: Vec<String>,
    /// Each publisher's newest key event.
    pub heads: BTreeMap<String, EntryRef>,
    /// Publishers whose events are reported (all when empty).
    pub follow: BTreeSet<String>,
}

impl MonitorState {
    fn frontier(&self) -> Result<Frontier, LogCheckError> {
        let nodes = self
            .frontier
            .iter()
            .map(|h| {
                hex::decode(h)
                    .ok()
                    .and_then(|b| <Hash>::try_from(b).ok())
                    .ok_or_else(|| LogCheckError::Malformed("stored frontier hash".into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Frontier::from_parts(self.size, nodes)
            .map_err(|_| LogCheckError::Malformed("stored frontier".into()))
    }

    fn follows(&self, publisher: &str) -> bool {
        self.follow.is_empty() || self.follow.contains(publisher)
    }
}

/// One thing that happened to a followed publisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonitorEvent {
    pub index: u64,
    /// `key.add`, `key.revoke`, `release`, `lifecycle` or `visibility`.
    pub kind: String,
    pub publisher: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MonitorReport {
    /// The entries read: `from..to`.
    pub from: u64,
    pub to: u64,
    pub events: Vec<MonitorEvent>,
    /// Entries about private plugins this client may not open.
    pub sealed: u64,
    /// Evidence the registry misbehaved; empty for an honest log.
    pub problems: Vec<String>,
    pub follow: Vec<String>,
}

/// Reads the log from where this monitor stopped to the registry's current checkpoint,
/// checks it and reports. `follow` adds publishers to the followed set.
pub async fn monitor(
    client: &Client,
    state_path: &Path,
    pinning: &Pinning,
    follow: &[String],
) -> Result<MonitorReport, LogCheckError> {
    let mut state: MonitorState = load_state(state_path)?.unwrap_or_default();
    let key = match &pinning.configured_key {
        Some(k) => k.clone(),
        None if !state.verifier_key.is_empty() && !pinning.repin => state.verifier_key.clone(),
        None => client.log_key().await?.verifier_key,
    };
    if state.verifier_key != key {
        // A new key (first run or re-pinned): start over from the first entry.
        state = MonitorState {
            follow: state.follow,
            verifier_key: key.clone(),
            ..MonitorState::default()
        };
    }
    state.follow.extend(follow.iter().cloned());
    let note = client.log_checkpoint().await?;
    let head = Checkpoint::open(&note, &key)
        .map_err(|_| LogCheckError::KeyChanged {
            pinned: key.clone(),
        })?
        .head;
    if head.size < state.size {
        return Err(LogCheckError::Log(LogError::Shrank {
            old: state.size,
            new: head.size,
        }));
    }
    let mut report = MonitorReport {
        from: state.size,
        to: head.size,
        follow: state.follow.iter().cloned().collect(),
        ..MonitorReport::default()
    };
    let mut frontier = state.frontier()?;
    while frontier.size() < head.size {
        let batch = client.log_entries(frontier.size(), BATCH).await?;
        if batch.is_empty() {
            return Err(LogCheckError::Malformed(format!(
                "the registry served no entries from {} though its checkpoint has {}",
                frontier.size(),
                head.size
            )));
        }
        for item in batch {
            if frontier.size() == head.size {
                break;
            }
            if item.index != frontier.size() {
                return Err(LogCheckError::Malformed(format!(
                    "the registry served entry {} where {} was due",
                    item.index,
                    frontier.size()
                )));
            }
            frontier.push(&LogEntry::leaf_of(&item.body));
            read_entry(&mut state, &mut report, &item);
        }
    }
    if frontier.head() != head {
        return Err(LogCheckError::Log(LogError::Inconsistent {
            old: state.size,
            new: head.size,
        }));
    }
    state.size = frontier.size();
    state.frontier = frontier.nodes().iter().map(hex::encode).collect();
    save_state(state_path, &state)?;
    Ok(report)
}

fn read_entry(
    state: &mut MonitorState,
    report: &mut MonitorReport,
    item: &agora_core::api::LogEntryBody,
) {
    let index = item.index;
    let body = match LogEntry::parse(&item.body) {
        Ok(LogEntry::Sealed { .. }) => match &item.opening {
            Some(opening) => match agora_trust::open(&item.body, opening) {
                Ok(clear) => clear,
                Err(e) => {
                    report
                        .problems
                        .push(format!("entry {index}: its opening does not match: {e}"));
                    return;
                }
            },
            None => {
                report.sealed += 1;
                return;
            }
        },
        Ok(_) => item.body.clone(),
        Err(e) => {
            report
                .problems
                .push(format!("entry {index} is not a log entry: {e}"));
            return;
        }
    };
    let Ok(entry) = LogEntry::parse(&body) else {
        report.problems.push(format!(
            "entry {index} opens to something that is not an entry"
        ));
        return;
    };
    if matches!(entry, LogEntry::Approval { .. }) {
        // A tenant's approval: about a tenant, not a publisher's history.
        return;
    }
    let Some(publisher) = entry.publisher().map(str::to_owned) else {
        report
            .problems
            .push(format!("entry {index} is sealed inside its seal"));
        return;
    };
    let head = state.heads.get(&publisher).cloned();
    let (kind, detail) = match &entry {
        LogEntry::KeyAdded { key_id, prev, .. } | LogEntry::KeyRevoked { key_id, prev, .. } => {
            if *prev != head {
                report.problems.push(format!(
                    "entry {index}: a key event of {publisher} names {} as the previous one, but the publisher's last key event was {} (a forked key history)",
                    describe(prev.as_ref()),
                    describe(head.as_ref()),
                ));
            }
            state.heads.insert(
                publisher.clone(),
                EntryRef {
                    index,
                    leaf: hex::encode(LogEntry::leaf_of(&item.body)),
                },
            );
            let kind = if matches!(entry, LogEntry::KeyAdded { .. }) {
                "key.add"
            } else {
                "key.revoke"
            };
            (kind, key_id.clone())
        }
        LogEntry::Release {
            name,
            version,
            signer_key,
            key_head,
            ..
        } => {
            if *key_head != head {
                report.problems.push(format!(
                    "entry {index}: release {publisher}/{name}@{version} was accepted against key history {} but the publisher's newest key event was {} (a key event was left out)",
                    describe(key_head.as_ref()),
                    describe(head.as_ref()),
                ));
            }
            (
                "release",
                format!("{name}@{version} signed by {signer_key}"),
            )
        }
        LogEntry::Lifecycle {
            name,
            version,
            state: lifecycle,
            reason,
            ..
        } => (
            "lifecycle",
            match reason {
                Some(r) => format!("{name}@{version} is {lifecycle}: {r}"),
                None => format!("{name}@{version} is {lifecycle}"),
            },
        ),
        LogEntry::Visibility {
            name, visibility, ..
        } => ("visibility", format!("{name} is {visibility}")),
        LogEntry::Verification {
            name,
            version,
            outcome,
            reviewer,
            ..
        } => (
            "verification",
            match reviewer {
                Some(r) => format!("{name}@{version} is {outcome} (review by {r})"),
                None => format!("{name}@{version} is {outcome}"),
            },
        ),
        LogEntry::Approval { .. } | LogEntry::Sealed { .. } => return,
    };
    if state.follows(&publisher) {
        report.events.push(MonitorEvent {
            index,
            kind: kind.to_owned(),
            publisher,
            detail,
        });
    }
}

fn describe(r: Option<&EntryRef>) -> String {
    match r {
        Some(r) => format!("entry {}", r.index),
        None => "none".to_owned(),
    }
}
