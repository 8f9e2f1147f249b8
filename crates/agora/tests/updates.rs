//! Installing like a package manager, through the real binary: a dependency tree goes in
//! all or nothing; `outdated` and `update` stay within the requirement recorded at
//! install (`--latest` crosses it); deprecated versions warn, insecure ones are refused
//! unless asked for.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use support::*;

/// Every file under `dir` (relative path and bytes), directories included as empty.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(root, &path, out);
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn lock(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("agora.lock")).unwrap()).unwrap()
}

fn locked(dir: &Path, name: &str) -> serde_json::Value {
    lock(dir)["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} is not in agora.lock"))
}

#[test]
fn a_failure_in_the_last_plugin_of_a_tree_leaves_the_directory_as_it_was() {
    let server = Server::start(Backend::Sqlite);
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    let work = tempfile::tempdir().unwrap();
    for name in ["http", "json", "zlib"] {
        publish_acme(&alice, work.path(), name, "1.0.0", &[]);
    }
    let deps = [
        ("acme/http", "^1"),
        ("acme/json", "^1"),
        ("acme/zlib", "^1"),
    ];
    publish_acme(&alice, work.path(), "app", "1.0.0", &deps);
    let anon = server.cli(None);
    anon.run_in(work.path(), &["install", "acme/app", "--dir", "plugins"])
        .ok();
    let plugins = work.path().join("plugins");
    let before = snapshot(&plugins);
    assert!(before.contains_key("acme/zlib/plugin.wasm"));

    // A new version of every plugin of the tree; the one installed last (zlib, by name)
    // has a blob the registry's storage corrupted.
    for name in ["http", "json", "zlib"] {
        publish_acme(&alice, work.path(), name, "1.1.0", &[]);
    }
    publish_acme(&alice, work.path(), "app", "1.1.0", &deps);
    server.flip_stored_blob(b"zlib 1.1.0");

    let err = anon
        .run_in(work.path(), &["update", "--dir", "plugins"])
        .fails();
    assert!(err.contains("acme/zlib") || err.contains("digest"), "{err}");
    assert_eq!(
        snapshot(&plugins),
        before,
        "the directory and agora.lock are exactly as before"
    );
    let err = anon
        .run_in(
            work.path(),
            &["install", "acme/app@^1.1", "--dir", "plugins"],
        )
        .fails();
    assert!(!err.is_empty());
    assert_eq!(
        snapshot(&plugins),
        before,
        "a direct install changes nothing either"
    );

    // With the blob intact again, the whole tree moves at once.
    server.flip_stored_blob(b"zlib 1.1.0");
    let out = anon
        .run_in(work.path(), &["update", "--dir", "plugins"])
        .ok();
    assert!(
        out.contains("acme/app: updated 1.0.0 \u{2192} 1.1.0"),
        "{out}"
    );
    assert!(
        out.contains("acme/zlib: updated 1.0.0 \u{2192} 1.1.0"),
        "{out}"
    );
    for name in ["acme/app", "acme/http", "acme/json", "acme/zlib"] {
        assert_eq!(locked(&plugins, name)["version"], "1.1.0", "{name}");
    }
    assert!(
        !plugins.join(".agora-tmp").exists(),
        "no staging left behind"
    );
    anon.run_in(work.path(), &["verify", "--installed", "--dir", "plugins"])
        .ok();
}

#[test]
fn outdated_and_update_stay_within_the_recorded_requirement() {
    let server = Server::start(Backend::Sqlite);
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("plugins");
    publish_acme(&alice, work.path(), "tool", "1.0.0", &[]);
    let anon = server.cli(None);
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--dir", "plugins"]);
        anon.run_in(work.path(), &all)
    };

    let out = run(&["install", "acme/tool"]).ok();
    assert!(out.contains("Installed acme/tool@1.0.0"), "{out}");
    assert_eq!(locked(&dir, "acme/tool")["requirement"], "^1.0.0");
    let out = run(&["install", "acme/tool"]).ok();
    assert!(
        out.contains("acme/tool 1.0.0 is already up to date"),
        "{out}"
    );
    let out = run(&["outdated"]).ok();
    assert!(out.contains("up to date"), "{out}");

    publish_acme(&alice, work.path(), "tool", "1.1.0", &[]);
    publish_acme(&alice, work.path(), "tool", "2.0.0", &[]);
    let rows = run(&["--json", "outdated"]).json();
    assert_eq!(rows[0]["name"], "acme/tool");
    assert_eq!(rows[0]["installed"], "1.0.0");
    assert_eq!(rows[0]["wanted"], "1.1.0");
    assert_eq!(rows[0]["latest"], "2.0.0");
    assert_eq!(rows[0]["state"], "active");
    let list = run(&["list"]).ok();
    assert!(
        list.contains("acme/tool") && list.contains("active") && list.contains("(2.0.0 available)"),
        "{list}"
    );

    let out = run(&["update"]).ok();
    assert!(
        out.contains("acme/tool: updated 1.0.0 \u{2192} 1.1.0"),
        "{out}"
    );
    let out = run(&["update", "acme/tool"]).ok();
    assert!(
        out.contains("acme/tool 1.1.0 is already up to date"),
        "{out}"
    );
    let out = run(&["update", "acme/tool", "--latest"]).ok();
    assert!(
        out.contains("acme/tool: updated 1.1.0 \u{2192} 2.0.0"),
        "{out}"
    );
    assert_eq!(locked(&dir, "acme/tool")["requirement"], "^2.0.0");
    let err = run(&["update", "acme/ghost"]).fails();
    assert!(err.contains("acme/ghost is not installed"), "{err}");

    // Deprecated: installed, with the reason and the replacement on stderr and in JSON.
    alice
        .run(&[
            "deprecate",
            "acme/tool@2.0.0",
            "--reason",
            "superseded by tool-ng",
            "--replacement",
            "acme/tool-ng",
        ])
        .ok();
    let installed = run(&["install", "acme/tool@=2.0.0"]);
    installed.ok();
    let warning = installed.stderr();
    assert!(
        warning.contains(
            "warning: acme/tool@2.0.0 is deprecated: superseded by tool-ng (use acme/tool-ng instead)"
        ),
        "{warning}"
    );
    let json = run(&["--json", "install", "acme/tool@=2.0.0"]).json();
    assert!(
        json["warnings"][0]
            .as_str()
            .unwrap()
            .contains("superseded by tool-ng")
    );
    let rows = run(&["--json", "outdated"]).json();
    assert_eq!(rows[0]["state"], "deprecated", "{rows}");

    // Insecure: refused with the advisory unless asked for; nothing changes meanwhile.
    alice
        .run(&[
            "mark-insecure",
            "acme/tool@1.1.0",
            "--reason",
            "CVE-2026-1234",
        ])
        .ok();
    let before = snapshot(&dir);
    let err = run(&["install", "acme/tool@=1.1.0"]).fails();
    assert!(
        err.contains("acme/tool@1.1.0 is marked insecure: CVE-2026-1234")
            && err.contains("--allow-insecure"),
        "{err}"
    );
    assert_eq!(snapshot(&dir), before);
    let out = run(&["install", "acme/tool@=1.1.0", "--allow-insecure"]).ok();
    assert!(
        out.contains("acme/tool: updated 2.0.0 \u{2192} 1.1.0"),
        "{out}"
    );
}
