//! `agora gc`, `agora fsck`, `agora backup` and `agora restore`: operators' commands run
//! beside the server, on its database and blob store (docs/operations.md).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agora_registry::backup::{self, BackupManifest};
use agora_store::{BlobLocation, BlobStore, Dialect, SqlStore};
use anyhow::Context;

use super::serve::{init_logging, offline_registry};
use crate::cli::{BackupArgs, FsckArgs, GcArgs, RestoreArgs};
use crate::config::ServerConfig;

/// A registry error as the CLI's, one line.
fn cli_error(e: agora_registry::RegistryError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `agora gc`.
pub async fn gc(args: GcArgs, json: bool, verbose: u8, quiet: bool) -> anyhow::Result<()> {
    let (cfg, meta, registry) = offline_registry(
        args.server.config.as_deref(),
        args.server.data_dir,
        verbose,
        quiet,
    )
    .await?;
    let grace = args
        .grace
        .map(|h| Duration::from_secs(h * 3600))
        .unwrap_or_else(|| cfg.gc.grace());
    let options = agora_registry::gc::GcOptions {
        grace,
        dry_run: args.dry_run,
    };
    let report = agora_registry::gc::run(&registry, options)
        .await
        .map_err(cli_error)?;
    meta.close().await;
    if json {
        return print_json(&report);
    }
    if !quiet {
        let verb = if report.dry_run {
            "Would delete"
        } else {
            "Deleted"
        };
        println!(
            "{verb} {} blob(s), {} bytes; scanned {} ({} bytes): {} referenced, {} younger than the grace period, {} marked now, {} waiting out their grace period, {} used again",
            report.deleted,
            report.deleted_bytes,
            report.scanned,
            report.scanned_bytes,
            report.referenced,
            report.young,
            report.marked,
            report.waiting,
            report.kept_in_use
        );
        if report.partials_removed + report.finished + report.failed > 0 {
            println!(
                "Removed {} upload leftover(s); finished {} earlier deletion(s); {} deletion(s) failed (retried next run)",
                report.partials_removed, report.finished, report.failed
            );
        }
    }
    Ok(())
}

/// `agora fsck`: fails when anything is missing, corrupt or of the wrong size.
pub async fn fsck(args: FsckArgs, json: bool, verbose: u8, quiet: bool) -> anyhow::Result<()> {
    let (_, meta, registry) = offline_registry(
        args.server.config.as_deref(),
        args.server.data_dir,
        verbose,
        quiet,
    )
    .await?;
    let options = agora_registry::fsck::FsckOptions {
        hash: !args.no_hash,
        ..Default::default()
    };
    let report = agora_registry::fsck::run(&registry, options)
        .await
        .map_err(cli_error)?;
    meta.close().await;
    if json {
        print_json(&report)?;
    } else if !quiet {
        let references: u64 = report.references.values().sum();
        println!(
            "Checked {} blob(s) ({} bytes{}) and {references} reference(s)",
            report.blobs,
            report.bytes,
            if report.hashed { ", re-hashed" } else { "" }
        );
        for c in &report.corrupt.items {
            println!("corrupt: {} (its bytes hash to {})", c.digest, c.actual);
        }
        for m in &report.size_mismatches.items {
            println!(
                "size mismatch: {} is {} bytes, {} records {}",
                m.digest, m.stored, m.owner, m.recorded
            );
        }
        for m in &report.missing.items {
            println!("missing: {} ({})", m.digest, m.owner);
        }
        for o in &report.orphans.items {
            let what = if o.uploaded {
                "uploaded, in no release"
            } else {
                "nothing refers to it"
            };
            println!("orphan: {} ({} bytes; {what})", o.digest, o.size);
        }
        if report.partials > 0 {
            println!(
                "{} upload leftover(s) in the blob store (agora gc removes them)",
                report.partials
            );
        }
    }
    anyhow::ensure!(
        report.ok,
        "fsck found {} missing, {} corrupt and {} wrongly sized blob(s)",
        report.missing.count,
        report.corrupt.count,
        report.size_mismatches.count
    );
    Ok(())
}

/// The metadata file name of a backup from `dialect`.
fn metadata_file(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "metadata.sqlite",
        Dialect::Postgres => "metadata.pgdump",
    }
}

fn engine_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "sqlite",
        Dialect::Postgres => "postgres",
    }
}

/// The blob location a backup directory names: `blobs` (the default) is inside it.
fn backup_blobs(dir: &Path, location: &str) -> anyhow::Result<BlobLocation> {
    if location == "blobs" {
        return Ok(BlobLocation::Directory(dir.join("blobs")));
    }
    location
        .parse()
        .with_context(|| format!("{location} is not a blob storage location"))
}

/// The file of a `sqlite://PATH` URL.
fn sqlite_path(url: &str) -> std::path::PathBuf {
    url.trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default()
        .into()
}

/// `agora backup --to DIR`.
pub async fn backup(args: BackupArgs, json: bool, verbose: u8, quiet: bool) -> anyhow::Result<()> {
    let (cfg, meta, registry) = offline_registry(
        args.server.config.as_deref(),
        args.server.data_dir,
        verbose,
        quiet,
    )
    .await?;
    let dir = &args.to;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the backup directory {}", dir.display()))?;
    let dialect = meta.dialect();
    let file = dir.join(metadata_file(dialect));
    let partial = dir.join(format!("{}.partial", metadata_file(dialect)));
    let _ = std::fs::remove_file(&partial);
    let url = cfg.database_url();
    let (schema, log) = match dialect {
        Dialect::Sqlite => {
            meta.backup_sqlite_into(&partial)
                .await
                .context("the SQLite online backup (VACUUM INTO) failed")?;
            // The log as the copy holds it, exactly.
            let copy = SqlStore::connect(&format!("sqlite://{}", partial.display()))
                .await
                .context("cannot open the database copy")?;
            let log = backup::log_head(&copy).await.map_err(cli_error)?;
            copy.close().await;
            for suffix in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", partial.display()));
            }
            (None, log)
        }
        Dialect::Postgres => {
            let schema = backup::postgres_schema(&url);
            // Read before the dump, which holds at least these entries.
            let log = backup::log_head(&meta).await.map_err(cli_error)?;
            backup::pg_dump(&url, schema.as_deref(), &partial)
                .await
                .map_err(cli_error)?;
            (schema, log)
        }
    };
    std::fs::rename(&partial, &file)
        .with_context(|| format!("cannot move the metadata into {}", file.display()))?;
    // Blobs after the metadata: every blob the saved metadata names is stored by now.
    let blobs_location = args.blobs_to.clone().unwrap_or_else(|| "blobs".to_owned());
    let target = backup_blobs(dir, &blobs_location)?;
    let to = target
        .open()
        .await
        .with_context(|| format!("cannot open the backup's blob store at {target}"))?;
    let copy = backup::copy_blobs(registry.blobs.as_ref(), to.as_ref())
        .await
        .map_err(cli_error)?;
    meta.close().await;
    let manifest = BackupManifest {
        format: backup::FORMAT,
        created_at: agora_registry::time::rfc3339(agora_store::now_ms()),
        agora_version: env!("CARGO_PKG_VERSION").to_owned(),
        engine: engine_name(dialect).to_owned(),
        metadata_file: metadata_file(dialect).to_owned(),
        schema,
        blobs_location,
        blobs: copy.blobs,
        bytes: copy.bytes,
        log,
    };
    let manifest_path = dir.join(backup::MANIFEST_FILE);
    let temp = dir.join(format!("{}.partial", backup::MANIFEST_FILE));
    std::fs::write(&temp, serde_json::to_vec_pretty(&manifest)?)
        .and_then(|()| std::fs::rename(&temp, &manifest_path))
        .with_context(|| format!("cannot write {}", manifest_path.display()))?;
    anyhow::ensure!(
        copy.corrupt.is_empty(),
        "{} blob(s) in the blob store do not match their digest and were not backed up (first: {}); run agora fsck",
        copy.corrupt.len(),
        copy.corrupt.first().map(String::as_str).unwrap_or_default()
    );
    if json {
        return print_json(&serde_json::json!({ "manifest": manifest, "blobs": copy }));
    }
    if !quiet {
        println!(
            "Backed up the {} database (log size {}) and {} blob(s), {} bytes ({} copied, {} there already) into {}",
            manifest.engine,
            manifest.log.tree_size,
            copy.blobs,
            copy.bytes,
            copy.copied,
            copy.skipped,
            dir.display()
        );
    }
    Ok(())
}

/// `agora restore --from DIR`.
pub async fn restore(
    args: RestoreArgs,
    json: bool,
    verbose: u8,
    quiet: bool,
) -> anyhow::Result<()> {
    let mut cfg = ServerConfig::load(args.server.config.as_deref())?;
    if let Some(d) = args.server.data_dir {
        cfg.data_dir = d;
    }
    init_logging(&cfg, verbose, quiet);
    let manifest = backup::read_manifest(&args.from).map_err(cli_error)?;
    let url = cfg.database_url();
    let dialect = Dialect::of_url(&url).context("the database URL")?;
    anyhow::ensure!(
        manifest.engine == engine_name(dialect),
        "the backup is of a {} database and the configured one is {}; restore into the same engine",
        manifest.engine,
        engine_name(dialect)
    );
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            cfg.data_dir.display()
        )
    })?;
    let empty = SqlStore::is_empty_database(&url)
        .await
        .context("cannot look into the target database")?;
    anyhow::ensure!(
        empty || args.force,
        "the target database holds tables already; restore into an empty one, or pass --force to replace them"
    );
    let location = cfg.blob_location()?;
    let blobs: Arc<dyn BlobStore> = location
        .open()
        .await
        .with_context(|| format!("cannot open the blob store at {location}"))?;
    anyhow::ensure!(
        args.force
            || backup::blob_store_is_empty(blobs.as_ref())
                .await
                .map_err(cli_error)?,
        "the blob store at {location} holds blobs already; restore into an empty one, or pass --force to add to it"
    );
    let file = backup::metadata_path(&args.from, &manifest).map_err(cli_error)?;
    match dialect {
        Dialect::Sqlite => {
            let target = sqlite_path(&url);
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", target.display()));
            }
            std::fs::copy(&file, &target).with_context(|| {
                format!("cannot copy {} to {}", file.display(), target.display())
            })?;
        }
        Dialect::Postgres => {
            let schema = backup::postgres_schema(&url);
            anyhow::ensure!(
                schema == manifest.schema,
                "the backup holds schema {} and the database URL selects {}: name the same schema \
                 (options=-c search_path=NAME) or none",
                manifest.schema.as_deref().unwrap_or("public"),
                schema.as_deref().unwrap_or("public")
            );
            backup::pg_restore(&url, &file, !empty)
                .await
                .map_err(cli_error)?;
        }
    }
    let from = match &args.blobs_from {
        Some(l) => l
            .parse()
            .with_context(|| format!("--blobs-from {l} is not a blob storage location"))?,
        None => backup_blobs(&args.from, &manifest.blobs_location)?,
    };
    let source = from
        .open()
        .await
        .with_context(|| format!("cannot open the backup's blobs at {from}"))?;
    let copy = backup::copy_blobs(source.as_ref(), blobs.as_ref())
        .await
        .map_err(cli_error)?;
    anyhow::ensure!(
        copy.corrupt.is_empty(),
        "{} blob(s) of the backup do not match their digest and were not restored (first: {})",
        copy.corrupt.len(),
        copy.corrupt.first().map(String::as_str).unwrap_or_default()
    );
    let meta = SqlStore::connect(&url)
        .await
        .context("cannot open the restored database")?;
    let size = backup::check_log(&meta, &manifest.log)
        .await
        .map_err(cli_error)?;
    meta.close().await;
    if json {
        return print_json(&serde_json::json!({
            "engine": manifest.engine,
            "log": { "tree_size": size, "root_checked": manifest.log },
            "blobs": copy,
        }));
    }
    if !quiet {
        println!(
            "Restored the {} database (log size {size}, root checked) and {} blob(s), {} bytes, from {}",
            manifest.engine,
            copy.blobs,
            copy.bytes,
            args.from.display()
        );
    }
    Ok(())
}
