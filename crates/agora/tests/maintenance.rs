//! Operators' maintenance end to end, on the real binary: `agora gc` deletes what nothing
//! refers to once its grace period is over and nothing else; `agora fsck` finds corrupt,
//! missing and orphaned blobs; `agora backup` and `agora restore` bring a registry onto
//! an empty machine that serves the same releases and the same log, embedded (SQLite and
//! a directory) and scaled out (PostgreSQL and an S3 bucket; these fail, never skip,
//! without a PostgreSQL server or `AGORA_TEST_S3_ENDPOINT`).

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

fn sha256_hex(content: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(content))
}

/// Uploads `content` as a blob with `token`.
fn upload(server: &Server, token: &str, content: &[u8]) -> String {
    let digest = format!("sha256:{}", sha256_hex(content));
    let (status, _, body) = http(
        "PUT",
        &format!("{}/api/v1/blobs/{digest}", server.url),
        Some(token),
        Some(content.to_vec()),
    );
    assert!(
        status == 201 || status == 200,
        "upload: {status} {}",
        String::from_utf8_lossy(&body)
    );
    digest
}

fn blob_path(server: &Server, content: &[u8]) -> std::path::PathBuf {
    let hex = sha256_hex(content);
    server.blob_dir().join("sha256").join(&hex[..2]).join(&hex)
}

/// Makes a blob and its upload records three days old.
fn age(server: &Server, content: &[u8]) {
    let out = Command::new("touch")
        .args(["-d", "3 days ago"])
        .arg(blob_path(server, content))
        .output()
        .unwrap();
    assert!(out.status.success());
    let digest = format!("sha256:{}", sha256_hex(content));
    for table in ["blobs", "blob_uploaders"] {
        server.sql(&format!(
            "UPDATE {table} SET created_at = created_at - 259200000 WHERE digest = '{digest}'"
        ));
    }
}

fn operator_json(server: &Server, args: &[&str]) -> (bool, serde_json::Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = server.operator(&all);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "agora {args:?} printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), json)
}

fn acme(server: &Server) -> (Cli, tempfile::TempDir) {
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    (alice, tempfile::tempdir().unwrap())
}

#[test]
fn gc_deletes_an_old_orphan_and_keeps_references_young_blobs_and_a_publish_in_flight() {
    let server = Server::start(Backend::Sqlite);
    let (alice, work) = acme(&server);
    publish_acme(&alice, work.path(), "kept", "1.0.0", &[]);
    let token = server.admin_token.clone();
    upload(&server, &token, b"an old orphan");
    upload(&server, &token, b"a young orphan");
    // A publish in flight: its module uploaded (and old), the release not sent yet.
    let late = plugin_dir(work.path(), "acme", "late", "1.0.0", "", b"late module");
    let late_module = upload(&server, &token, b"late module");
    for old in [&b"an old orphan"[..], b"late module", b"kept 1.0.0"] {
        age(&server, old);
    }

    let (ok, first) = operator_json(&server, &["gc", "--grace", "1"]);
    assert!(ok, "{first}");
    assert_eq!(first["deleted"], 0, "a first run only marks: {first}");
    assert_eq!(
        first["marked"], 2,
        "the old orphan and the upload in flight: {first}"
    );
    assert!(first["young"].as_u64().unwrap() >= 1, "{first}");

    // The publisher asks whether the module exists, skips its upload and publishes.
    let (status, _, _) = http(
        "HEAD",
        &format!("{}/api/v1/blobs/{late_module}", server.url),
        Some(&token),
        None,
    );
    assert_eq!(status, 200);
    // A grace period later (marks moved back two hours)...
    server.sql("UPDATE gc_marks SET marked_at = marked_at - 7200000");
    alice.run(&["publish", late.to_str().unwrap()]).ok();
    let (ok, second) = operator_json(&server, &["gc", "--grace", "1"]);
    assert!(ok, "{second}");
    assert_eq!(second["deleted"], 1, "only the old orphan: {second}");
    assert!(!blob_path(&server, b"an old orphan").exists());
    for kept in [&b"a young orphan"[..], b"late module", b"kept 1.0.0"] {
        assert!(
            blob_path(&server, kept).exists(),
            "{}",
            String::from_utf8_lossy(kept)
        );
    }
    let audit = server.query(&format!(
        "SELECT action, actor FROM audit_events WHERE target = 'sha256:{}'",
        sha256_hex(b"an old orphan")
    ));
    assert_eq!(audit.trim(), "blob.gc|agora-gc");

    // Both releases install, every file checked against its digest and the log.
    let user = server.cli(None);
    let plugins = work.path().join("plugins");
    for name in ["acme/kept", "acme/late"] {
        user.run(&["install", name, "--dir", plugins.to_str().unwrap()])
            .ok();
    }
    let (ok, fsck) = operator_json(&server, &["fsck"]);
    assert!(ok && fsck["ok"] == true, "{fsck}");

    // A grace period shorter than an hour is refused, naming the flag.
    let refused = server.operator(&["gc", "--grace", "0"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--grace"));
}

#[test]
fn fsck_finds_corrupt_missing_and_orphaned_blobs_and_upload_leftovers() {
    let server = Server::start(Backend::Sqlite);
    let (alice, work) = acme(&server);
    publish_acme(&alice, work.path(), "alpha", "1.0.0", &[]);
    publish_acme(&alice, work.path(), "beta", "1.0.0", &[]);
    let orphan = upload(&server, &server.admin_token, b"nobody's");
    let (ok, clean) = operator_json(&server, &["fsck"]);
    assert!(ok, "{clean}");
    assert_eq!(clean["missing"]["count"], 0);
    assert_eq!(clean["corrupt"]["count"], 0);
    assert_eq!(clean["orphans"]["count"], 1, "{clean}");
    assert_eq!(clean["orphans"]["items"][0]["digest"], orphan.as_str());
    assert_eq!(clean["orphans"]["items"][0]["uploaded"], true);
    assert!(clean["references"]["artifact"].as_u64().unwrap() >= 4);

    // The storage goes bad: a flipped bit, a lost file, an upload a crash cut off.
    server.flip_stored_blob(b"alpha 1.0.0");
    std::fs::remove_file(blob_path(&server, b"beta 1.0.0")).unwrap();
    let partial = server.blob_dir().join("tmp").join("cut-off.part");
    std::fs::write(&partial, b"half an upl").unwrap();
    Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(&partial)
        .status()
        .unwrap();
    let (ok, bad) = operator_json(&server, &["fsck"]);
    assert!(!ok, "fsck fails when anything is missing or corrupt: {bad}");
    assert_eq!(bad["ok"], false);
    assert_eq!(bad["corrupt"]["count"], 1, "{bad}");
    assert_eq!(
        bad["corrupt"]["items"][0]["digest"],
        format!("sha256:{}", sha256_hex(b"alpha 1.0.0"))
    );
    let missing: Vec<(String, String)> = bad["missing"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["digest"].as_str().unwrap().into(),
                m["owner"].as_str().unwrap().into(),
            )
        })
        .collect();
    let beta = format!("sha256:{}", sha256_hex(b"beta 1.0.0"));
    assert!(
        missing.contains(&(beta.clone(), "acme/beta@1.0.0:plugin.wasm".into())),
        "{missing:?}"
    );
    assert!(missing.iter().all(|(d, _)| *d == beta), "{missing:?}");
    assert_eq!(bad["orphans"]["count"], 1);
    assert_eq!(bad["partials"], 1);
    // Without re-hashing, only the missing blob shows.
    let (_, quick) = operator_json(&server, &["fsck", "--no-hash"]);
    assert_eq!(quick["hashed"], false);
    assert_eq!(quick["corrupt"]["count"], 0);
    assert!(quick["missing"]["count"].as_u64().unwrap() >= 1);
    let text = server.operator(&["fsck"]);
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(stderr.contains("1 corrupt"), "{stderr}");
}

/// The signed checkpoint a server serves.
fn checkpoint(server: &Server) -> String {
    let (status, _, note) = http(
        "GET",
        &format!("{}/api/v1/log/checkpoint", server.url),
        None,
        None,
    );
    assert_eq!(status, 200);
    String::from_utf8(note).unwrap()
}

/// Publishes two releases and uploads an orphan; once their verifications (which log
/// their verdicts and write OCI referrers) are done, returns the checkpoint.
fn populate(server: &Server, work: &Path) -> String {
    let (alice, _) = acme(server);
    publish_acme(&alice, work, "one", "1.0.0", &[]);
    publish_acme(&alice, work, "one", "1.1.0", &[]);
    upload(server, &server.admin_token, b"an upload in no release");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let open = "SELECT count(*) FROM jobs WHERE kind = 'verify' AND state IN ('queued', 'running')";
    let referrers = "SELECT count(*) FROM oci_manifests WHERE kind = 'verification'";
    while server.query(open).trim() != "0" || server.query(referrers).trim() != "2" {
        assert!(
            std::time::Instant::now() < deadline,
            "the verifications did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    checkpoint(server)
}

/// Installs `acme/one` from `server` (signature and log checked) into a new directory.
fn installs(server: &Server, work: &Path, name: &str) {
    let dir = work.join(name);
    server
        .cli(None)
        .run(&["install", "acme/one@=1.0.0", "--dir", dir.to_str().unwrap()])
        .ok();
    server
        .cli(None)
        .run(&[
            "install",
            "acme/one@=1.1.0",
            "--dir",
            work.join(format!("{name}-b")).to_str().unwrap(),
        ])
        .ok();
}

#[test]
fn an_embedded_backup_restored_into_an_empty_data_directory_serves_the_same_releases_and_log() {
    let server = Server::start(Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    let before = populate(&server, work.path());
    let backup = work.path().join("backup");
    let (ok, made) = operator_json(&server, &["backup", "--to", backup.to_str().unwrap()]);
    assert!(ok, "{made}");
    assert_eq!(made["manifest"]["engine"], "sqlite");
    assert!(made["blobs"]["copied"].as_u64().unwrap() >= 5, "{made}");
    // Again: only what is new is copied.
    let (_, again) = operator_json(&server, &["backup", "--to", backup.to_str().unwrap()]);
    assert_eq!(again["blobs"]["copied"], 0, "{again}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup.join("agora-backup.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["log"]["tree_size"],
        made["manifest"]["log"]["tree_size"]
    );

    // Another machine: a restore refuses its non-empty data, then fills an empty one.
    let mut other = Server::start(Backend::Sqlite);
    let refused = other.operator(&["restore", "--from", backup.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--force"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let from = backup.clone();
    other.restart_after(|data| {
        std::fs::remove_dir_all(data).unwrap();
        let out = Command::new(BIN)
            .args(["--json", "restore", "--from"])
            .arg(&from)
            .arg("--data-dir")
            .arg(data)
            .env_remove("AGORA_DATABASE_URL")
            .env_remove("AGORA_STORAGE_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    assert_eq!(
        checkpoint(&other),
        before,
        "the same log, signed by the same key"
    );
    installs(&other, work.path(), "restored");
    let (ok, fsck) = operator_json(&other, &["fsck"]);
    assert!(ok, "{fsck}");
    assert_eq!(fsck["orphans"]["count"], 1, "the upload came along: {fsck}");
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .expect("psql is needed for the PostgreSQL backup test");
    assert!(
        out.status.success(),
        "PostgreSQL is required and `{sql}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_postgres_and_bucket_backup_restored_into_a_fresh_database_and_bucket_serves_the_same() {
    let s3 = s3_storage_env();
    let env: Vec<(&str, &str)> = s3.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_with(Backend::Postgres, &env);
    let work = tempfile::tempdir().unwrap();
    let before = populate(&server, work.path());
    // The backup's blobs go to a bucket too (another prefix).
    let backup_bucket = s3_storage_env()
        .into_iter()
        .find(|(k, _)| k == "AGORA_STORAGE_URL")
        .unwrap()
        .1;
    let backup = work.path().join("backup");
    let (ok, made) = operator_json(
        &server,
        &[
            "backup",
            "--to",
            backup.to_str().unwrap(),
            "--blobs-to",
            &backup_bucket,
        ],
    );
    assert!(ok, "{made}");
    assert_eq!(made["manifest"]["engine"], "postgres");
    assert!(backup.join("metadata.pgdump").exists());

    // A fresh database (the dump's schema comes with it) and a fresh bucket prefix.
    let base = postgres_url();
    let database = format!("agora_restore_{}", std::process::id());
    let schema = made["manifest"]["schema"].as_str().unwrap().to_owned();
    psql(&base, &format!("DROP DATABASE IF EXISTS {database}"));
    psql(&base, &format!("CREATE DATABASE {database}"));
    let (prefix, _) = base.rsplit_once('/').unwrap();
    let target = format!("{prefix}/{database}?options=-c%20search_path%3D{schema}");
    let fresh = s3_storage_env();
    let mut restore_env: Vec<(String, String)> = fresh.clone();
    restore_env.push(("AGORA_DATABASE_URL".into(), target.clone()));
    let out = {
        let mut cmd = Command::new(BIN);
        cmd.args(["--json", "restore", "--from"])
            .arg(&backup)
            .arg("--data-dir")
            .arg(work.path().join("restored-data"));
        for (k, v) in &restore_env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env: Vec<(&str, &str)> = restore_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let other = Server::start_with(Backend::Sqlite, &env);
    assert_eq!(checkpoint(&other), before);
    installs(&other, work.path(), "restored");
    drop(other);
    psql(&base, &format!("DROP DATABASE {database} WITH (FORCE)"));
}
