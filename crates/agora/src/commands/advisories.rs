//! `agora advisories import FILE|DIR`: OSV records to the registry, in batches.

use std::path::{Path, PathBuf};

use agora_core::advisory::Advisory;
use agora_core::api::{AdvisoryImportRequest, AdvisoryImportResponse};
use anyhow::Context;

use super::Session;

/// Records per request (the server takes at most 500).
const BATCH_RECORDS: usize = 200;
/// JSON bytes per request, well under the server's default body limit (1 MiB).
const BATCH_BYTES: usize = 512 * 1024;
/// Most files read from a directory.
const MAX_FILES: usize = 200_000;

pub async fn import(s: &Session, path: &Path) -> anyhow::Result<()> {
    let files = json_files(path)?;
    anyhow::ensure!(
        !files.is_empty(),
        "{} holds no .json file (OSV records, one per file or a list per file)",
        path.display()
    );
    // Every record is read and checked before anything is sent: a bad file is named.
    let mut records = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", file.display()))?;
        let items = match value {
            serde_json::Value::Array(items) => items,
            one => vec![one],
        };
        for item in items {
            Advisory::from_json(item.clone())
                .with_context(|| format!("{} is not an OSV record", file.display()))?;
            records.push(item);
        }
    }
    let client = s.client()?;
    let mut total = AdvisoryImportResponse {
        changed: Vec::new(),
        unchanged: Vec::new(),
        flagged: Vec::new(),
    };
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    let count = records.len();
    for (i, record) in records.into_iter().enumerate() {
        batch_bytes += record.to_string().len();
        batch.push(record);
        if batch.len() == BATCH_RECORDS || batch_bytes >= BATCH_BYTES || i + 1 == count {
            let request = AdvisoryImportRequest {
                advisories: std::mem::take(&mut batch),
            };
            let done = client.import_advisories(&request).await?;
            total.changed.extend(done.changed);
            total.unchanged.extend(done.unchanged);
            total.flagged.extend(done.flagged);
            batch_bytes = 0;
        }
    }
    s.out.show(&total, |t| {
        let mut text = format!(
            "Imported {} advisories: {} new or changed, {} already known",
            t.changed.len() + t.unchanged.len(),
            t.changed.len(),
            t.unchanged.len()
        );
        if t.flagged.is_empty() {
            text.push_str("; no release is affected");
        }
        for m in &t.flagged {
            let fix = m
                .fixed
                .as_deref()
                .map(|f| format!("fixed in {f}"))
                .unwrap_or_else(|| "no fixed version yet".into());
            text.push_str(&format!(
                "\n{} marked insecure: {} ({}; {fix})",
                m.release, m.advisory, m.component
            ));
        }
        text
    })
}

/// The `.json` files at `path`: the file itself, or every one under the directory.
fn json_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let entry = entry?;
            let kind = entry.file_type()?;
            let p = entry.path();
            if kind.is_dir() {
                dirs.push(p);
            } else if kind.is_file() && p.extension().is_some_and(|e| e == "json") {
                files.push(p);
                anyhow::ensure!(
                    files.len() <= MAX_FILES,
                    "{} holds more than {MAX_FILES} .json files; import it in parts",
                    path.display()
                );
            }
        }
    }
    files.sort();
    Ok(files)
}
