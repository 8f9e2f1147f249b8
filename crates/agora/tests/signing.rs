//! Releases are signed: the server accepts a release only with a valid signature by an
//! active key of its publisher, over exactly the release's files.

mod support;

use support::*;

struct World {
    server: Server,
    alice: Cli,
    work: tempfile::TempDir,
}

fn world() -> World {
    let server = Server::start(Backend::Sqlite);
    let admin = server.admin();
    admin
        .run(&["user", "create", "alice", "--role", "publisher"])
        .ok();
    let token = admin
        .run(&[
            "--json",
            "token",
            "create",
            "--user",
            "alice",
            "--scope",
            "publish:*",
        ])
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let alice = server.cli(Some(&token));
    alice.run(&["publisher", "create", "acme"]).ok();
    World {
        server,
        alice,
        work: tempfile::tempdir().unwrap(),
    }
}

impl World {
    fn plugin(&self, version: &str) -> String {
        plugin_dir(
            self.work.path(),
            "acme",
            "widget",
            version,
            "",
            version.as_bytes(),
        )
        .to_str()
        .unwrap()
        .to_owned()
    }
}

#[test]
fn a_publisher_without_a_key_is_told_how_to_get_one() {
    let mut w = world();
    let err = w.alice.run(&["publish", &w.plugin("1.0.0")]).fails();
    assert!(
        err.contains("agora keygen") && err.contains("agora key add"),
        "{err}"
    );
    // A key exists locally but is not registered: the server says so.
    let key = w.alice.home.path().join("k");
    w.alice
        .run(&["keygen", "--out", key.to_str().unwrap()])
        .ok();
    w.alice.key = Some(key);
    let err = w.alice.run(&["publish", &w.plugin("1.0.0")]).fails();
    assert!(
        err.contains("no active signing key") && err.contains("agora key add acme"),
        "{err}"
    );
    assert!(
        w.alice
            .run(&["info", "acme/widget"])
            .fails()
            .contains("404")
    );
}

#[test]
fn a_signed_release_names_its_signer() {
    let mut w = world();
    w.alice.sign_for("acme");
    w.alice.run(&["publish", &w.plugin("1.0.0")]).ok();
    let keys = w.alice.run(&["--json", "key", "list", "acme"]).json();
    let id = keys[0]["id"].as_str().unwrap();
    assert!(id.starts_with("SHA256:"), "{keys}");
    let detail = w.alice.run(&["--json", "info", "acme/widget@1.0.0"]).json();
    assert_eq!(detail["signer_key"], id);
    assert_eq!(
        detail["signature"]["payloadType"],
        "application/vnd.in-toto+json"
    );
}

#[test]
fn another_publishers_key_is_refused_naming_both_keys() {
    let mut w = world();
    let admin = w.server.admin();
    admin.run(&["publisher", "create", "evil"]).ok();
    let mut mallory = w.server.admin();
    let evil_key = mallory.sign_for("evil");
    w.alice.sign_for("acme");
    // Alice's token, Mallory's key (registered, but for another publisher).
    w.alice.key = Some(evil_key);
    let err = w.alice.run(&["publish", &w.plugin("1.0.0")]).fails();
    assert!(
        err.contains("no signature is by a key of this publisher") && err.contains("422"),
        "{err}"
    );
}

#[test]
fn a_revoked_key_signs_nothing_new_and_its_releases_stay() {
    let mut w = world();
    w.alice.sign_for("acme");
    w.alice.run(&["publish", &w.plugin("1.0.0")]).ok();
    let id = w.alice.run(&["--json", "key", "list", "acme"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.alice
        .run(&["key", "revoke", "acme", &id, "--reason", "laptop stolen"])
        .ok();
    let err = w.alice.run(&["publish", &w.plugin("1.1.0")]).fails();
    assert!(err.contains("no active signing key"), "{err}");
    let listed = w.alice.run(&["key", "list", "acme"]).ok();
    assert!(
        listed.contains("revoked") && listed.contains("laptop stolen"),
        "{listed}"
    );
    let err = w.alice.run(&["key", "revoke", "acme", &id]).fails();
    assert!(err.contains("no active key"), "{err}");
    w.alice
        .run_in(
            w.work.path(),
            &["install", "acme/widget", "--dir", "plugins"],
        )
        .ok();
}

#[test]
fn passphrase_protected_keys_need_their_passphrase() {
    let mut w = world();
    let key = w.alice.home.path().join("sealed");
    let pass = w.alice.home.path().join("pass.txt");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let made = w
        .alice
        .run(&[
            "--json",
            "keygen",
            "--out",
            key.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ])
        .json();
    assert_eq!(made["encrypted"], true);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .contains("BEGIN OPENSSH PRIVATE KEY")
    );
    w.alice
        .run(&["key", "add", "acme", &format!("{}.pub", key.display())])
        .ok();
    w.alice.key = Some(key.clone());
    let err = w.alice.run(&["publish", &w.plugin("1.0.0")]).fails();
    assert!(err.contains("passphrase"), "{err}");
    let wrong = w.alice.home.path().join("wrong.txt");
    std::fs::write(&wrong, "Tr0ub4dor&3").unwrap();
    let err = w
        .alice
        .run(&[
            "publish",
            &w.plugin("1.0.0"),
            "--passphrase-file",
            wrong.to_str().unwrap(),
        ])
        .fails();
    assert!(err.contains("wrong passphrase"), "{err}");
    w.alice
        .run(&[
            "publish",
            &w.plugin("1.0.0"),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ])
        .ok();
    let err = w
        .alice
        .run(&["keygen", "--out", key.to_str().unwrap()])
        .fails();
    assert!(
        err.contains("--force"),
        "keygen never overwrites silently: {err}"
    );
}

#[test]
fn keys_are_checked_when_registered() {
    let w = world();
    let junk = w.alice.home.path().join("junk.pub");
    std::fs::write(&junk, "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDC8 rsa").unwrap();
    let err = w
        .alice
        .run(&["key", "add", "acme", junk.to_str().unwrap()])
        .fails();
    assert!(err.contains("not an OpenSSH Ed25519 public key"), "{err}");
    let private = w.alice.home.path().join("private");
    w.alice
        .run(&["keygen", "--out", private.to_str().unwrap()])
        .ok();
    let err = w
        .alice
        .run(&["key", "add", "acme", private.to_str().unwrap()])
        .fails();
    assert!(
        err.contains("is a private key"),
        "a private key never leaves the machine: {err}"
    );
    let twice = format!("{}.pub", private.display());
    w.alice.run(&["key", "add", "acme", &twice]).ok();
    assert!(
        w.alice
            .run(&["key", "add", "acme", &twice])
            .fails()
            .contains("409")
    );
    let outsider = w.server.cli(None);
    assert!(
        outsider
            .run(&["key", "add", "acme", &twice])
            .fails()
            .contains("401")
    );
    assert_eq!(
        outsider
            .run(&["--json", "key", "list", "acme"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1,
        "keys are public"
    );
}

/// A GnuPG home with one unprotected Ed25519 signing key for `user`.
fn gnupg_home(user: &str) -> tempfile::TempDir {
    // Short path: gpg-agent's socket path must fit in a Unix socket address.
    let home = tempfile::Builder::new()
        .prefix("gpg")
        .tempdir_in("/tmp")
        .unwrap();
    let out = std::process::Command::new("gpg")
        .env("GNUPGHOME", home.path())
        .args([
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            user,
            "ed25519",
            "sign",
            "never",
        ])
        .output()
        .expect("GnuPG (gpg) is needed for this test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    home
}

fn gpg(home: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn stop_agent(home: &std::path::Path) {
    let _ = std::process::Command::new("gpgconf")
        .env("GNUPGHOME", home)
        .args(["--kill", "gpg-agent"])
        .status();
}

#[test]
fn a_real_gnupg_key_signs_and_the_signature_verifies() {
    let mut w = world();
    let home = gnupg_home("Alice <alice@acme.example>");
    let armored = gpg(home.path(), &["--armor", "--export", "alice@acme.example"]);
    let fingerprint = gpg(
        home.path(),
        &["--with-colons", "--fingerprint", "alice@acme.example"],
    )
    .lines()
    .find_map(|l| {
        l.strip_prefix("fpr:")
            .map(|r| r.split(':').nth(8).unwrap().to_owned())
    })
    .unwrap();
    let key_file = w.alice.home.path().join("alice.asc");
    std::fs::write(&key_file, &armored).unwrap();
    w.alice
        .env
        .push(("GNUPGHOME".into(), home.path().display().to_string()));
    let added = w
        .alice
        .run(&["--json", "key", "add", "acme", key_file.to_str().unwrap()])
        .json();
    assert_eq!(
        (
            added["id"].as_str().unwrap(),
            added["algorithm"].as_str().unwrap()
        ),
        (fingerprint.as_str(), "openpgp")
    );
    assert_eq!(added["comment"], "Alice <alice@acme.example>");

    w.alice
        .run(&["publish", &w.plugin("1.0.0"), "--gpg", "alice@acme.example"])
        .ok();
    let detail = w.alice.run(&["--json", "info", "acme/widget@1.0.0"]).json();
    assert_eq!(detail["signer_key"], fingerprint.as_str());
    let anon = w.server.cli(None);
    anon.run_in(
        w.work.path(),
        &["install", "acme/widget", "--dir", "plugins"],
    )
    .ok();

    // Another GnuPG key, not registered for acme, is refused.
    let other = gnupg_home("Mallory <mallory@evil.example>");
    w.alice.env = vec![("GNUPGHOME".into(), other.path().display().to_string())];
    let err = w
        .alice
        .run(&[
            "publish",
            &w.plugin("1.1.0"),
            "--gpg",
            "mallory@evil.example",
        ])
        .fails();
    assert!(
        err.contains("no signature is by a key of this publisher"),
        "{err}"
    );
    let err = w
        .alice
        .run(&[
            "publish",
            &w.plugin("1.1.0"),
            "--gpg",
            "nobody@nowhere.example",
        ])
        .fails();
    assert!(err.contains("gpg knows no key"), "{err}");
    stop_agent(home.path());
    stop_agent(other.path());
}
