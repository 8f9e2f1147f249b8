//! Tampering, as an attacker with access to the registry's storage or to the installed
//! files would try: each case is detected with a specific error and nothing is installed.

mod support;

use std::path::{Path, PathBuf};

use support::*;

struct World {
    server: Server,
    alice: Cli,
    anon: Cli,
    work: tempfile::TempDir,
}

fn world() -> World {
    // No verification worker: the log then holds only the changes these tests make, at
    // the indexes they name (a worker would append a verdict after each release).
    let server = Server::start_with(Backend::Sqlite, &[("AGORA_WORKER__IN_PROCESS", "false")]);
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    let work = tempfile::tempdir().unwrap();
    for version in ["1.0.0", "1.1.0"] {
        let dir = plugin_dir(
            work.path(),
            "acme",
            "widget",
            version,
            "tags: [demo]\n",
            format!("widget {version}").as_bytes(),
        );
        std::fs::write(dir.join("README.md"), "# Widget").unwrap();
        alice.run(&["publish", dir.to_str().unwrap()]).ok();
    }
    let anon = server.cli(None);
    World {
        server,
        alice,
        anon,
        work,
    }
}

impl World {
    fn db(&self, sql: &str) {
        self.server.sql(sql);
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.server.blob_path(digest)
    }

    fn module_digest(&self, version: &str) -> String {
        self.anon.module_digest(&format!("acme/widget@{version}"))
    }

    /// Installing fails with `expected` in the error and leaves the plugin directory empty.
    fn install_refused(&self, spec: &str, expected: &str) {
        let dir = self.work.path().join("plugins");
        let err = self
            .anon
            .run_in(self.work.path(), &["install", spec, "--dir", "plugins"])
            .fails();
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
        assert!(!dir.join("acme/widget").exists(), "something was installed");
        assert!(
            !dir.join(".agora-tmp").exists(),
            "staging files were left behind"
        );
        assert!(!dir.join("agora.lock").exists(), "the lockfile was written");
    }
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn untampered_releases_install_and_verify() {
    let w = world();
    let out = w.anon.run(&["verify", "acme/widget@1.0.0"]).ok();
    assert!(out.contains("signed by SHA256:"), "{out}");
    w.anon
        .run_in(
            w.work.path(),
            &["install", "acme/widget", "--dir", "plugins"],
        )
        .ok();
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.work.path().join("plugins/agora.lock")).unwrap())
            .unwrap();
    assert!(
        lock["plugins"][0]["signer_key"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );
    w.anon
        .run_in(
            w.work.path(),
            &["verify", "--installed", "--dir", "plugins"],
        )
        .ok();
}

#[test]
fn a_byte_flipped_in_a_stored_blob_is_caught() {
    let w = world();
    flip_a_byte(&w.blob_path(&w.module_digest("1.1.0")));
    w.install_refused("acme/widget", "does not match its digest");
    assert!(
        w.anon
            .run(&["verify", "acme/widget@1.1.0"])
            .fails()
            .contains("does not match its digest")
    );
}

#[test]
fn a_manifest_changed_in_the_database_is_caught() {
    let w = world();
    w.db("UPDATE versions SET manifest = replace(manifest, 'The widget plugin', 'Totally safe') WHERE version = '1.1.0'");
    w.install_refused("acme/widget", "differs from its signed plugin.yaml");
}

#[test]
fn a_signature_replayed_from_another_version_is_caught() {
    let w = world();
    w.db("UPDATE versions SET signature = (SELECT signature FROM versions WHERE version = '1.0.0') WHERE version = '1.1.0'");
    w.install_refused("acme/widget", "it is for acme/widget@1.0.0");
}

#[test]
fn a_signature_by_another_publishers_key_is_caught() {
    let w = world();
    let mut mallory = w.server.admin();
    mallory.run(&["publisher", "create", "evil"]).ok();
    mallory.sign_for("evil");
    let dir = plugin_dir(w.work.path(), "evil", "widget", "1.1.0", "", b"evil");
    mallory.run(&["publish", dir.to_str().unwrap()]).ok();
    w.db(
        "UPDATE versions SET signature = (SELECT v.signature FROM versions v JOIN plugins p ON p.id = v.plugin_id \
         WHERE p.publisher = 'evil'), signer_key = (SELECT v.signer_key FROM versions v JOIN plugins p ON p.id = v.plugin_id \
         WHERE p.publisher = 'evil') WHERE plugin_id = (SELECT id FROM plugins WHERE publisher = 'acme') AND version = '1.1.0'",
    );
    w.install_refused("acme/widget", "no signature is by a key of this publisher");
}

#[test]
fn a_key_revoked_before_the_release_does_not_vouch_for_it() {
    let w = world();
    // As if the key had been revoked before 1.1.0 was published, and the registry lied.
    w.db("UPDATE publisher_keys SET revoked_at = 1, revocation_reason = 'stolen'");
    w.install_refused("acme/widget", "no signature is by a key of this publisher");
}

#[test]
fn a_key_revoked_after_the_release_still_vouches_for_it() {
    let w = world();
    let id = w.alice.run(&["--json", "key", "list", "acme"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.alice
        .run(&["key", "revoke", "acme", &id, "--reason", "rotated"])
        .ok();
    w.anon
        .run_in(
            w.work.path(),
            &["install", "acme/widget", "--dir", "plugins"],
        )
        .ok();
}

#[test]
fn a_lying_signer_field_is_caught() {
    let w = world();
    w.db("UPDATE versions SET signer_key = 'SHA256:someone-else' WHERE version = '1.1.0'");
    w.install_refused("acme/widget", "says it was signed by SHA256:someone-else");
}

#[test]
fn files_modified_removed_or_added_after_install_are_reported() {
    let w = world();
    w.anon
        .run_in(
            w.work.path(),
            &["install", "acme/widget", "--dir", "plugins"],
        )
        .ok();
    let installed = w.work.path().join("plugins/acme/widget");
    flip_a_byte(&installed.join("plugin.wasm"));
    std::fs::remove_file(installed.join("README.md")).unwrap();
    std::fs::write(installed.join("backdoor.sh"), "#!/bin/sh\n").unwrap();
    // Plugins copied in by hand, beside and under a known publisher.
    std::fs::create_dir_all(w.work.path().join("plugins/acme/sideloaded")).unwrap();
    std::fs::create_dir_all(w.work.path().join("plugins/evil/tool")).unwrap();
    let run = w.anon.run_in(
        w.work.path(),
        &["--json", "verify", "--installed", "--dir", "plugins"],
    );
    let err = run.fails();
    assert!(err.contains("5 problem(s)"), "{err}");
    assert!(
        err.contains("plugin.wasm was modified")
            && err.contains("README.md is missing")
            && err.contains("backdoor.sh is not part")
            && err.contains("acme/sideloaded is not a plugin agora.lock knows")
            && err.contains("evil is not a plugin agora.lock knows"),
        "{err}"
    );
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(report["findings"].as_array().unwrap().len(), 5);

    // Nothing to check is a failure, not an all-clear.
    let err = w
        .anon
        .run_in(
            w.work.path(),
            &["verify", "--installed", "--dir", "nowhere"],
        )
        .fails();
    assert!(err.contains("nowhere does not exist"), "{err}");
    std::fs::create_dir(w.work.path().join("empty")).unwrap();
    let err = w
        .anon
        .run_in(w.work.path(), &["verify", "--installed", "--dir", "empty"])
        .fails();
    assert!(err.contains("has no agora.lock"), "{err}");
}

#[test]
fn a_release_missing_from_the_log_is_refused() {
    let w = world();
    w.db("UPDATE versions SET log_index = NULL WHERE version = '1.1.0'");
    w.install_refused("acme/widget", "is not in the registry's transparency log");
}

#[test]
fn a_log_index_pointing_at_another_entry_is_refused() {
    let w = world();
    // Entry 0 registered the key, entry 1 is release 1.0.0.
    w.db("UPDATE versions SET log_index = 1 WHERE version = '1.1.0'");
    w.install_refused(
        "acme/widget",
        "its log entry does not describe this release (another release)",
    );
}

#[test]
fn a_forked_log_history_is_caught() {
    let mut w = world();
    w.anon
        .run_in(
            w.work.path(),
            &["install", "acme/widget@=1.0.0", "--dir", "seen"],
        )
        .ok();
    // History rewritten: an early entry and its stored digest change (cleared, the server
    // computes it from the new body at start) and the server rebuilds its tree from them.
    // Entry 1 is release 1.0.0: no other check reads it, only consistency can notice.
    w.db(
        "UPDATE log_entries SET body = replace(body, 'widget', 'gadget'), leaf = NULL WHERE idx = 1",
    );
    w.server.restart();
    w.install_refused("acme/widget", "history was rewritten");
}

#[test]
fn an_entry_rewritten_under_its_stored_digest_is_caught_by_whoever_reads_it() {
    let w = world();
    // Only the body changes: the server's tree still commits to the original entry (it is
    // built from the stored digests), so the rewritten body no longer proves included.
    w.db("UPDATE log_entries SET body = replace(body, '1.0.0', '1.0.1') WHERE idx = 1");
    let entry = w.server.query("SELECT body FROM log_entries WHERE idx = 1");
    assert!(entry.contains("1.0.1"), "the entry was rewritten: {entry}");
    // A monitor reading the log from its start computes a root from the bodies it is
    // served that is not the one the server signs.
    let err = w.anon.run(&["log", "monitor"]).fails();
    assert!(err.contains("history was rewritten"), "{err}");
}

#[test]
fn a_rollback_to_an_older_log_is_caught() {
    let mut w = world();
    let snapshot = w.work.path().join("snapshot.db");
    w.db(&format!(".backup '{}'", snapshot.display()));
    let newer = plugin_dir(
        w.work.path(),
        "acme",
        "widget",
        "1.2.0",
        "",
        b"widget 1.2.0",
    );
    w.alice.run(&["publish", newer.to_str().unwrap()]).ok();
    w.anon
        .run_in(w.work.path(), &["install", "acme/widget", "--dir", "seen"])
        .ok();
    // The registry's database is restored from before 1.2.0 was published.
    w.server.restart_after(|data| {
        for stale in ["agora.db-wal", "agora.db-shm"] {
            let _ = std::fs::remove_file(data.join(stale));
        }
        std::fs::copy(&snapshot, data.join("agora.db")).unwrap();
    });
    w.install_refused("acme/widget", "the log shrank (rollback)");
}

#[test]
fn a_changed_log_key_is_refused_until_repinned() {
    let mut w = world();
    w.anon
        .run_in(
            w.work.path(),
            &["install", "acme/widget@=1.0.0", "--dir", "seen"],
        )
        .ok();
    let (_, _, key) = http(
        "GET",
        &format!("{}/api/v1/log/key", w.server.url),
        None,
        None,
    );
    let origin = serde_json::from_slice::<serde_json::Value>(&key).unwrap()["origin"]
        .as_str()
        .unwrap()
        .to_owned();
    let (skey, vkey) = agora_trust::generate_log_key(&origin);
    w.db(&format!(
        "UPDATE log_key SET signer_key = '{skey}', verifier_key = '{vkey}'"
    ));
    w.server.restart();
    w.install_refused("acme/widget", "not signed by the log key pinned");
    w.anon
        .run_in(
            w.work.path(),
            &[
                "install",
                "acme/widget",
                "--dir",
                "plugins",
                "--repin-log-key",
            ],
        )
        .ok();
}

impl World {
    fn key_id(&self) -> String {
        self.alice.run(&["--json", "key", "list", "acme"]).json()[0]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The leaf hash (hex sha256 of the body) of log entry `index`, as served.
    fn leaf(&self, index: u64) -> String {
        let (_, _, body) = http(
            "GET",
            &format!(
                "{}/api/v1/log/entries?from={index}&limit=1",
                self.server.url
            ),
            None,
            None,
        );
        let entries: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let entry = entries[0]["body"].as_str().unwrap();
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(entry.as_bytes()))
    }

    /// The registry forgets every revocation, in what it serves and in its own checks.
    fn hide_revocations(&self) {
        self.db(
            "UPDATE publisher_keys SET revoked_at = NULL, revoked_by = NULL, \
             revocation_reason = NULL, revoked_log_index = NULL",
        );
    }

    fn publish(&self, version: &str) {
        let dir = plugin_dir(
            self.work.path(),
            "acme",
            "widget",
            version,
            "tags: [demo]\n",
            format!("widget {version}").as_bytes(),
        );
        self.alice.run(&["publish", dir.to_str().unwrap()]).ok();
    }
}

#[test]
fn a_revocation_the_registry_hides_from_its_key_list_is_caught() {
    let w = world();
    let id = w.key_id();
    // Entries: 0 key added, 1 and 2 releases, 3 the revocation.
    w.alice
        .run(&["key", "revoke", "acme", &id, "--reason", "stolen"])
        .ok();
    // The registry forgets the revocation (in what it serves and in its own check) and
    // accepts a release signed by the revoked key.
    w.hide_revocations();
    w.publish("1.2.0");
    // The release's log entry commits to the key history it was accepted against, which
    // holds the revocation: the client walks it and refuses, whatever the key list says.
    w.install_refused(
        "acme/widget@=1.2.0",
        &format!("key {id} was revoked in the log (entry 3) before this release (entry 4)"),
    );
    // Releases from before the revocation still install.
    w.anon
        .run_in(
            w.work.path(),
            &["install", "acme/widget@=1.1.0", "--dir", "plugins"],
        )
        .ok();
}

#[test]
fn a_key_missing_from_the_history_a_release_names_is_refused() {
    let mut w = world();
    // A second key is registered (entry 3); then the registry rewinds the publisher's key
    // history head to before it, so the release that key signs names a history without it.
    let second = w.alice.home.path().join("second_ed25519");
    w.alice
        .run(&["keygen", "--out", second.to_str().unwrap()])
        .ok();
    w.alice
        .run(&["key", "add", "acme", &format!("{}.pub", second.display())])
        .ok();
    w.alice.key = Some(second);
    let leaf = w.leaf(0);
    w.db(&format!(
        "UPDATE publishers SET key_head_index = 0, key_head_leaf = '{leaf}' WHERE name = 'acme'"
    ));
    w.publish("1.2.0");
    w.install_refused(
        "acme/widget@=1.2.0",
        "is not registered in acme's key history before this release (entry 4)",
    );
}

#[test]
fn a_release_accepted_against_an_old_key_history_is_reported_by_the_monitor() {
    let w = world();
    let monitor = |cli: &Cli| cli.run(&["log", "monitor", "--follow", "acme"]);
    // An honest log: every event of the followed publisher is reported, no problem.
    let out = monitor(&w.anon).ok();
    assert!(
        out.contains("key.add") && out.contains("widget@1.1.0"),
        "{out}"
    );
    assert!(!out.contains("PROBLEM"), "{out}");
    let id = w.key_id();
    w.alice
        .run(&["key", "revoke", "acme", &id, "--reason", "stolen"])
        .ok();
    // The registry hides the revocation and rewinds the key history head to before it,
    // then accepts a release by the revoked key: the release's own chain shows no
    // revocation, so an install cannot tell...
    w.hide_revocations();
    let leaf = w.leaf(0);
    w.db(&format!(
        "UPDATE publishers SET key_head_index = 0, key_head_leaf = '{leaf}' WHERE name = 'acme'"
    ));
    w.publish("1.2.0");
    // ...but a monitor, which reads every entry, sees the release skip the revocation.
    let run = monitor(&w.anon);
    let err = run.fails();
    let out = run.stdout();
    assert!(err.contains("problem"), "{err}");
    assert!(
        out.contains("key.revoke")
            && out.contains(
                "release acme/widget@1.2.0 was accepted against key history entry 0 but the publisher's newest key event was entry 3"
            ),
        "{out}"
    );
}

#[test]
fn the_monitor_catches_a_rewritten_history() {
    let mut w = world();
    w.anon.run(&["log", "monitor"]).ok();
    // The registry rewrites an entry the monitor has read (and restarts, so its tree and
    // checkpoints follow the rewritten log): what it serves from now on does not extend
    // what the monitor saw.
    w.db(
        "UPDATE log_entries SET body = replace(body, '1.0.0', '0.9.0'), leaf = NULL WHERE idx = 1",
    );
    w.server.restart();
    w.publish("1.2.0");
    let err = w.anon.run(&["log", "monitor"]).fails();
    assert!(err.contains("its history was rewritten (fork)"), "{err}");
}
