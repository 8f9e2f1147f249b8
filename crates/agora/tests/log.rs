//! The transparency log through the real server: every release and key change is an
//! entry; checkpoints are signed by the log key; proofs verify with the client's checks.

mod support;

use agora_trust::{Checkpoint, LogEntry, TreeHead, verify_consistency, verify_inclusion};
use serde_json::Value;
use support::*;

#[test]
fn releases_and_key_changes_are_logged_and_provable() {
    let server = Server::start(Backend::Sqlite);
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    let work = tempfile::tempdir().unwrap();
    let one = plugin_dir(work.path(), "acme", "widget", "1.0.0", "", b"one");
    let published = alice
        .run(&["--json", "publish", one.to_str().unwrap()])
        .json();
    assert_eq!(
        published["log"]["index"], 1,
        "entry 0 is the key registration"
    );

    let key = get_json(&server, "/api/v1/log/key");
    let vkey = key["verifier_key"].as_str().unwrap();
    assert!(vkey.starts_with(key["origin"].as_str().unwrap()));
    let first = Checkpoint::open(published["log"]["checkpoint"].as_str().unwrap(), vkey).unwrap();
    let entry = published["log"]["entry"].as_str().unwrap();
    verify_inclusion(
        &first.head,
        &LogEntry::leaf_of(entry),
        1,
        &proof_hashes(&published["log"]),
    )
    .unwrap();
    match LogEntry::parse(entry).unwrap() {
        LogEntry::Release {
            publisher,
            name,
            version,
            manifest_digest,
            ..
        } => {
            assert_eq!(
                (publisher.as_str(), name.as_str(), version.as_str()),
                ("acme", "widget", "1.0.0")
            );
            assert_eq!(
                manifest_digest.to_string(),
                published["manifest_digest"].as_str().unwrap()
            );
        }
        other => panic!("{other:?}"),
    }
    let detail = alice.run(&["--json", "info", "acme/widget@1.0.0"]).json();
    assert_eq!(detail["log_index"], 1);

    let two = plugin_dir(work.path(), "acme", "widget", "1.1.0", "", b"two");
    alice.run(&["publish", two.to_str().unwrap()]).ok();
    let id = alice.run(&["--json", "key", "list", "acme"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    alice.run(&["key", "revoke", "acme", &id]).ok();

    let (_, headers, note) = http(
        "GET",
        &format!("{}/api/v1/log/checkpoint", server.url),
        None,
        None,
    );
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let now = Checkpoint::open(std::str::from_utf8(&note).unwrap(), vkey).unwrap();
    assert_eq!(now.head.size, 4);
    let proof = get_json(
        &server,
        &format!("/api/v1/log/proof/consistency?from={}", first.head.size),
    );
    let head = Checkpoint::open(proof["checkpoint"].as_str().unwrap(), vkey)
        .unwrap()
        .head;
    verify_consistency(&first.head, &head, &proof_hashes(&proof)).unwrap();
    let forged = TreeHead {
        size: first.head.size,
        root: [0; 32],
    };
    assert!(
        verify_consistency(&forged, &head, &proof_hashes(&proof)).is_err(),
        "a different history does not verify"
    );

    let entries = get_json(&server, "/api/v1/log/entries?from=0&limit=10");
    let kinds: Vec<String> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e["body"].as_str().unwrap()).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, ["key.add", "release", "release", "key.revoke"]);
    for i in 0..4 {
        let p = get_json(&server, &format!("/api/v1/log/proof/inclusion?index={i}"));
        let head = Checkpoint::open(p["checkpoint"].as_str().unwrap(), vkey)
            .unwrap()
            .head;
        verify_inclusion(
            &head,
            &LogEntry::leaf_of(p["entry"].as_str().unwrap()),
            i,
            &proof_hashes(&p),
        )
        .unwrap();
    }
    let (status, _, _) = http(
        "GET",
        &format!("{}/api/v1/log/proof/inclusion?index=99", server.url),
        None,
        None,
    );
    assert_eq!(status, 422);
}

#[test]
fn the_log_and_its_key_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let start = || {
        let mut child = std::process::Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .env(
                "AGORA_ADMIN_TOKEN",
                "agora_restart_test_token_0123456789abcdef",
            )
            .env_remove("AGORA_DATABASE_URL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::BufRead;
        let line = std::io::BufReader::new(child.stdout.take().unwrap())
            .lines()
            .next()
            .unwrap()
            .unwrap();
        (
            child,
            line.split("listening on ").nth(1).unwrap().to_owned(),
        )
    };
    let (mut first, url) = start();
    let (_, _, key_before) = http("GET", &format!("{url}/api/v1/log/key"), None, None);
    first.kill().unwrap();
    first.wait().unwrap();
    let (mut second, url) = start();
    let (_, _, key_after) = http("GET", &format!("{url}/api/v1/log/key"), None, None);
    assert_eq!(
        key_before, key_after,
        "the log key is created once and kept"
    );
    second.kill().unwrap();
    second.wait().unwrap();
}

/// A log written before entries kept their digests (migration 0018): the server hashes
/// those entries' bodies once at start, stores the digests, and the tree is the same,
/// proofs and all. On both backends.
#[test]
fn entries_from_before_stored_digests_give_the_same_tree() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        // No verification worker: no verdict entries land while the test compares trees.
        let mut server = Server::start_with(backend, &[("AGORA_WORKER__IN_PROCESS", "false")]);
        let mut alice = server.admin();
        alice.run(&["publisher", "create", "acme"]).ok();
        alice.sign_for("acme");
        let work = tempfile::tempdir().unwrap();
        for (i, version) in ["1.0.0", "1.1.0", "1.2.0"].iter().enumerate() {
            let dir = plugin_dir(work.path(), "acme", "widget", version, "", &[i as u8]);
            alice.run(&["publish", dir.to_str().unwrap()]).ok();
        }
        let key = get_json(&server, "/api/v1/log/key");
        let vkey = key["verifier_key"].as_str().unwrap().to_owned();
        let before = get_json(&server, "/api/v1/log/proof/inclusion?index=2");
        let head_before = Checkpoint::open(before["checkpoint"].as_str().unwrap(), &vkey)
            .unwrap()
            .head;
        let size = head_before.size;
        assert_eq!(size, 4, "a key and three releases");
        let stored = server.query("SELECT COUNT(*) FROM log_entries WHERE leaf IS NOT NULL");
        assert_eq!(
            stored.trim(),
            size.to_string(),
            "written with their digests"
        );
        // As an older server left them: no digests.
        server.sql("UPDATE log_entries SET leaf = NULL");
        server.restart();
        let after = get_json(&server, "/api/v1/log/proof/inclusion?index=2");
        assert!(
            server
                .log()
                .contains("stored the digests of earlier log entries"),
            "{}",
            server.log()
        );
        let stored = server.query("SELECT COUNT(*) FROM log_entries WHERE leaf IS NULL");
        assert_eq!(stored.trim(), "0", "every digest filled in");
        let head_after = Checkpoint::open(after["checkpoint"].as_str().unwrap(), &vkey)
            .unwrap()
            .head;
        assert_eq!(head_after, head_before, "the same tree");
        assert_eq!(after["hashes"], before["hashes"]);
        verify_inclusion(
            &head_after,
            &LogEntry::leaf_of(after["entry"].as_str().unwrap()),
            2,
            &proof_hashes(&after),
        )
        .unwrap();
        // A later entry appends to the rebuilt tree consistently.
        let dir = plugin_dir(work.path(), "acme", "widget", "2.0.0", "", b"later");
        alice.run(&["publish", dir.to_str().unwrap()]).ok();
        let grown = get_json(
            &server,
            &format!("/api/v1/log/proof/consistency?from={size}"),
        );
        let head_grown = Checkpoint::open(grown["checkpoint"].as_str().unwrap(), &vkey)
            .unwrap()
            .head;
        assert_eq!(head_grown.size, size + 1);
        verify_consistency(&head_before, &head_grown, &proof_hashes(&grown)).unwrap();
    }
}
