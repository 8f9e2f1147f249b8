//! The control plane end to end, through the real binaries: one registry, one tenant and
//! three `agora agent` processes in their own directories. Approving a plugin makes all
//! three converge; an approved update rolls the fleet to the new digest except the agent
//! whose host policy forbids it, which keeps its last version and says why in the fleet
//! view; the agents keep their set while the registry is down and converge when it is
//! back; a newer release moves nothing until it is approved; automatic updates apply only
//! what asks for nothing more. A private plugin offered to one tenant reaches that
//! tenant's agents only, in a registry that needs a credential for every request.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// One `agora agent` process and its directories.
struct Agent {
    name: String,
    child: Child,
    home: tempfile::TempDir,
}

impl Agent {
    /// Starts `agora agent` for instance `name` with the credential in `token_file` and
    /// the host policy `policy` (TOML).
    fn start(server: &Server, name: &str, token_file: &Path, policy: &str) -> Agent {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("host-policy.toml"), policy).unwrap();
        let mut agent = Agent {
            name: name.to_owned(),
            child: Command::new("true").spawn().unwrap(),
            home,
        };
        agent.spawn(server, token_file);
        agent
    }

    fn spawn(&mut self, server: &Server, token_file: &Path) {
        let home = self.home.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("agent.log"))
            .unwrap();
        self.child = Command::new(BIN)
            .args(["agent", "--registry", &server.url, "--token-file"])
            .arg(token_file)
            .arg("--dir")
            .arg(home.join("plugins"))
            .arg("--policy")
            .arg(home.join("host-policy.toml"))
            .args(["--wait", "2", "--interval", "1"])
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env("RUST_LOG", "info")
            .env_remove("AGORA_TOKEN")
            .env_remove("AGORA_REGISTRY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("agora agent starts");
    }

    fn dir(&self) -> PathBuf {
        self.home.path().join("plugins")
    }

    /// The version of `plugin` in its `agora.lock`, if any.
    fn version_of(&self, plugin: &str) -> Option<String> {
        let bytes = std::fs::read(self.dir().join("agora.lock")).ok()?;
        let lock: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        lock["plugins"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == plugin)
            .and_then(|p| p["version"].as_str().map(str::to_owned))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("agent.log")).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `done` holds (at most a minute), polling.
fn wait_for(what: &str, agents: &[&Agent], mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > Duration::from_secs(60) {
            let logs: Vec<String> = agents
                .iter()
                .map(|a| format!("--- agent {} ---\n{}", a.name, a.log()))
                .collect();
            panic!("timed out waiting for {what}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A host policy: runs any publisher's plugins, reaching at most `hosts`.
fn host_policy(hosts: &[&str]) -> String {
    let hosts = hosts
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!("mode = \"open\"\n[network]\nallowed_hosts = [{hosts}]\n")
}

/// Publishes `acme/tool@VERSION` reaching `hosts`.
fn publish_tool(alice: &Cli, work: &Path, version: &str, hosts: &[&str]) {
    let extra = if hosts.is_empty() {
        String::new()
    } else {
        let hosts = hosts
            .iter()
            .map(|h| format!("\"{h}\""))
            .collect::<Vec<_>>()
            .join(", ");
        format!("capabilities: [outbound_http]\nnetwork: {{ outbound_hosts: [{hosts}] }}\n")
    };
    let module = format!("tool {version}");
    let dir = plugin_dir(work, "acme", "tool", version, &extra, module.as_bytes());
    alice.run(&["publish", dir.to_str().unwrap()]).ok();
}

/// Waits for the registry's own verification of `acme/tool@VERSION`, then records an
/// administrator's approval (the test modules are not real WebAssembly, so the pipeline
/// alone would not verify them).
fn verify_tool(server: &Server, version: &str) {
    let url = format!(
        "{}/api/v1/plugins/acme/tool/versions/{version}/verification",
        server.url
    );
    let start = Instant::now();
    while http("GET", &url, None, None).0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no verification of acme/tool@{version}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let body = serde_json::json!({"outcome": "verified", "reason": "reviewed for the test"});
    let (status, _, answer) = http_with(
        "POST",
        &format!("{url}/review"),
        Some(&server.admin_token),
        &[("content-type", "application/json")],
        Some(body.to_string().into_bytes()),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
}

/// Publisher acme, signing, with acme/tool@1.0.0 published: its publisher's CLI and the
/// directory the releases are built in.
fn acme_with_tool(server: &Server) -> (Cli, tempfile::TempDir) {
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    let work = tempfile::tempdir().unwrap();
    publish_tool(&alice, work.path(), "1.0.0", &[]);
    (alice, work)
}

/// Registers instance `name` of `tenant`; the file in `dir` holding its credential.
fn register(admin: &Cli, tenant: &str, name: &str, dir: &Path) -> PathBuf {
    let token = dir.join(format!("{tenant}-{name}.token"));
    admin
        .run(&[
            "tenant",
            "instance",
            "register",
            tenant,
            name,
            "--token-file",
            token.to_str().unwrap(),
        ])
        .ok();
    token
}

fn pin(admin: &Cli) -> String {
    let approved = admin.run(&["--json", "tenant", "approved", "corp"]).json();
    approved["plugins"][0]["version"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_fleet_of_three_agents_follows_its_tenants_approved_set() {
    let mut server = Server::start(Backend::Sqlite);
    let (alice, work) = acme_with_tool(&server);

    // The tenant, its policy (plugins may reach *.example.com) and three instances.
    let admin = server.admin();
    admin.run(&["tenant", "create", "corp"]).ok();
    let policy = work.path().join("tenant-policy.toml");
    std::fs::write(&policy, host_policy(&["*.example.com"])).unwrap();
    admin
        .run(&[
            "tenant",
            "policy",
            "corp",
            "--set",
            policy.to_str().unwrap(),
        ])
        .ok();
    let tokens = tempfile::tempdir().unwrap();
    let mut agents = Vec::new();
    for (name, hosts) in [
        ("alpha", &["*.example.com"][..]),
        ("beta", &["*.example.com"][..]),
        // This host lets no plugin reach anything outside.
        ("gamma", &[][..]),
    ] {
        let token = register(&admin, "corp", name, tokens.path());
        agents.push((
            Agent::start(&server, name, &token, &host_policy(hosts)),
            token,
        ));
    }
    let all: Vec<&Agent> = agents.iter().map(|(a, _)| a).collect();

    // Approve 1.0.0: all three converge, and report so.
    let out = admin
        .run(&["tenant", "install", "corp", "acme/tool@1.0.0"])
        .ok();
    assert!(out.contains("Approved acme/tool@1.0.0"), "{out}");
    wait_for("every agent to install 1.0.0", &all, || {
        all.iter()
            .all(|a| a.version_of("acme/tool").as_deref() == Some("1.0.0"))
    });
    wait_for(
        "the fleet view to show three current instances",
        &all,
        || {
            let fleet = admin.run(&["--json", "tenant", "fleet", "corp"]).json();
            fleet["plugins"][0]["current"].as_array().map(Vec::len) == Some(3)
        },
    );
    for a in &all {
        let proofs = std::fs::read_to_string(a.dir().join(".agora/approvals.json"))
            .expect("the agent keeps the approval's log entry");
        assert!(proofs.contains("acme/tool"), "{proofs}");
    }

    // An update that reaches api.example.com: published, verified, approved. The two hosts
    // that allow it roll to the new digest; gamma refuses and keeps 1.0.0.
    publish_tool(&alice, work.path(), "1.1.0", &["api.example.com"]);
    verify_tool(&server, "1.1.0");
    let updates = admin.run(&["--json", "tenant", "updates", "corp"]).json();
    let newer = &updates["plugins"][0]["newer"][0];
    assert_eq!(newer["version"], "1.1.0");
    assert_eq!(newer["asks_more"]["hosts"][0], "api.example.com");
    assert_eq!(newer["verification"], "verified");
    // Nothing moved yet: a newer release changes nothing until it is approved.
    assert_eq!(pin(&admin), "1.0.0");
    let out = admin.run(&["tenant", "apply", "corp", "acme/tool"]).ok();
    assert!(out.contains("Moved acme/tool to 1.1.0"), "{out}");
    let (alpha, beta, gamma) = (&agents[0].0, &agents[1].0, &agents[2].0);
    wait_for("alpha and beta to roll to 1.1.0", &all, || {
        alpha.version_of("acme/tool").as_deref() == Some("1.1.0")
            && beta.version_of("acme/tool").as_deref() == Some("1.1.0")
    });
    wait_for("the fleet view to say why gamma did not", &all, || {
        let fleet = admin.run(&["--json", "tenant", "fleet", "corp"]).json();
        let failed = &fleet["plugins"][0]["failed"];
        failed[0]["instance"] == "gamma"
            && failed[0]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("outbound_hosts") && r.contains("api.example.com"))
    });
    assert_eq!(gamma.version_of("acme/tool").as_deref(), Some("1.0.0"));
    let text = admin.run(&["tenant", "fleet", "corp"]).ok();
    assert!(text.contains("gamma cannot run 1.1.0"), "{text}");

    // The registry goes away: the agents keep running their last set.
    let lock_before = std::fs::read(alpha.dir().join("agora.lock")).unwrap();
    server.restart_after(|_| std::thread::sleep(Duration::from_secs(5)));
    for (agent, _) in agents.iter_mut() {
        assert!(
            agent.running(),
            "agent {} stopped:\n{}",
            agent.name,
            agent.log()
        );
    }
    let alpha = &agents[0].0;
    assert_eq!(
        std::fs::read(alpha.dir().join("agora.lock")).unwrap(),
        lock_before
    );
    assert!(
        alpha.dir().join("acme/tool/plugin.wasm").exists(),
        "the installed plugin stays"
    );

    // Back: a rollback reaches every agent (gamma already runs 1.0.0).
    let out = admin.run(&["tenant", "rollback", "corp", "acme/tool"]).ok();
    assert!(out.contains("back to 1.0.0"), "{out}");
    let all: Vec<&Agent> = agents.iter().map(|(a, _)| a).collect();
    wait_for("the fleet to return to 1.0.0", &all, || {
        all.iter()
            .all(|a| a.version_of("acme/tool").as_deref() == Some("1.0.0"))
    });
    wait_for("all three to report converged", &all, || {
        let fleet = admin.run(&["--json", "tenant", "fleet", "corp"]).json();
        fleet["instances"].as_array().is_some_and(|list| {
            list.iter()
                .all(|i| i["state"] == "converged" && i["behind"] == false)
        })
    });

    // Automatic updates: 1.2.0 asks for nothing beyond the approval of 1.0.0 (no host):
    // once verified, the pin moves by itself and the fleet follows.
    admin
        .run(&["tenant", "policy", "corp", "--auto-update", "on"])
        .ok();
    publish_tool(&alice, work.path(), "1.2.0", &[]);
    verify_tool(&server, "1.2.0");
    wait_for("the automatic update to 1.2.0", &all, || {
        all.iter()
            .all(|a| a.version_of("acme/tool").as_deref() == Some("1.2.0"))
    });
    let approved = admin.run(&["--json", "tenant", "approved", "corp"]).json();
    assert_eq!(approved["plugins"][0]["approved_by"], "auto-update");
    // 1.3.0 asks for a host the approval did not grant: it waits for an administrator.
    publish_tool(&alice, work.path(), "1.3.0", &["api.example.com"]);
    verify_tool(&server, "1.3.0");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(pin(&admin), "1.2.0");
    let updates = admin.run(&["--json", "tenant", "updates", "corp"]).json();
    assert_eq!(updates["plugins"][0]["newer"][0]["version"], "1.3.0");
    assert_eq!(
        updates["plugins"][0]["newer"][0]["asks_more"]["hosts"][0],
        "api.example.com"
    );
    for a in &all {
        assert_eq!(a.version_of("acme/tool").as_deref(), Some("1.2.0"));
    }

    // Taking the plugin out of the set removes it everywhere.
    admin.run(&["tenant", "remove", "corp", "acme/tool"]).ok();
    wait_for("every agent to remove acme/tool", &all, || {
        all.iter().all(|a| a.version_of("acme/tool").is_none())
    });

    // Every change was logged: approve, update, rollback, auto-update, remove.
    let rows = server.query("SELECT count(*) FROM audit_events WHERE action = 'tenant.pin'");
    assert_eq!(rows.trim(), "5", "{rows}");
}

#[test]
fn instance_credentials_are_scoped_and_revocable() {
    let server = Server::start(Backend::Sqlite);
    let admin = server.admin();
    admin.run(&["tenant", "create", "corp"]).ok();
    admin.run(&["tenant", "create", "other"]).ok();
    let token = admin
        .run(&["-q", "tenant", "instance", "register", "corp", "edge-1"])
        .ok()
        .trim()
        .to_owned();
    assert!(token.starts_with("agi_"), "{token}");
    let desired = format!("{}/api/v1/instance/desired", server.url);
    let (status, _, body) = http("GET", &desired, Some(&token), None);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let set: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(set["tenant"], "corp");
    assert_eq!(set["instance"], "edge-1");

    // The instance credential is not a user's token: it does nothing a user does.
    let (status, _, _) = http(
        "GET",
        &format!("{}/api/v1/tenants/corp/plugins", server.url),
        Some(&token),
        None,
    );
    assert_eq!(status, 403);
    // A user token is not an instance credential.
    let (status, _, _) = http("GET", &desired, Some(&server.admin_token), None);
    assert_eq!(status, 401);

    // A member of tenant `other` neither sees nor manages corp.
    admin.run(&["user", "create", "bob"]).ok();
    admin
        .run(&["tenant", "member", "other", "bob", "--role", "admin"])
        .ok();
    let bob = server.cli(Some(&admin.token_for("bob", &["tenant:*"])));
    let err = bob.run(&["tenant", "approved", "corp"]).fails();
    assert!(err.contains("no tenant named corp"), "{err}");
    let err = bob
        .run(&["tenant", "instance", "register", "corp", "sneaky"])
        .fails();
    assert!(err.contains("no tenant named corp"), "{err}");
    // A token without a tenant scope does nothing in a tenant, whatever the user's role.
    let narrow = server.cli(Some(&admin.token_for("bob", &["review"])));
    let err = narrow.run(&["tenant", "approved", "other"]).fails();
    assert!(err.contains("tenant:other"), "{err}");

    // Revoked: the credential stops working at once.
    admin
        .run(&["tenant", "instance", "revoke", "corp", "edge-1"])
        .ok();
    let (status, _, body) = http("GET", &desired, Some(&token), None);
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("revoked"));
}

#[test]
fn a_private_plugin_offered_to_one_tenant_reaches_only_its_agents() {
    // A private registry: every request needs a credential, the agents' reads too.
    let server = Server::start_with(Backend::Sqlite, &[("AGORA_WEB__REQUIRE_SIGN_IN", "true")]);
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    let work = tempfile::tempdir().unwrap();
    let dir = plugin_dir(
        work.path(),
        "acme",
        "secret",
        "1.0.0",
        "visibility: private\n",
        b"the entitled module",
    );
    alice.run(&["publish", dir.to_str().unwrap()]).ok();

    let admin = server.admin();
    let tokens = tempfile::tempdir().unwrap();
    let mut agents = Vec::new();
    for tenant in ["corp", "other"] {
        admin.run(&["tenant", "create", tenant]).ok();
        let token = register(&admin, tenant, "edge", tokens.path());
        agents.push(Agent::start(&server, tenant, &token, &host_policy(&[])));
    }
    let all: Vec<&Agent> = agents.iter().collect();
    let (corp, other) = (&agents[0], &agents[1]);
    admin.run(&["user", "create", "bob"]).ok();
    admin
        .run(&["tenant", "member", "corp", "bob", "--role", "member"])
        .ok();
    let bob = server.cli(Some(&admin.token_for("bob", &["tenant:*"])));
    admin.run(&["user", "create", "olga"]).ok();
    admin
        .run(&["tenant", "member", "other", "olga", "--role", "admin"])
        .ok();
    let olga = server.cli(Some(&admin.token_for("olga", &["tenant:*"])));

    // Not offered yet: no tenant can approve it, no member sees it.
    let err = olga
        .run(&["tenant", "install", "other", "acme/secret"])
        .fails();
    assert!(err.contains("no plugin acme/secret"), "{err}");
    bob.run(&["info", "acme/secret"]).fails();

    let out = alice
        .run(&["entitlement", "grant", "acme/secret", "corp"])
        .ok();
    assert!(out.contains("offered to tenant corp"), "{out}");
    let listed = alice
        .run(&["--json", "entitlement", "list", "acme/secret"])
        .json();
    assert_eq!(listed["entitlements"][0]["tenant"], "corp", "{listed}");
    let offered = bob.run(&["tenant", "entitlements", "corp"]).ok();
    assert!(offered.contains("acme/secret"), "{offered}");
    bob.run(&["info", "acme/secret"]).ok();
    olga.run(&["info", "acme/secret"]).fails();
    let err = olga
        .run(&["tenant", "install", "other", "acme/secret"])
        .fails();
    assert!(err.contains("no plugin acme/secret"), "{err}");

    // corp approves it: its agent downloads and verifies it with its own credential.
    let out = admin
        .run(&["tenant", "install", "corp", "acme/secret@1.0.0"])
        .ok();
    assert!(out.contains("Approved acme/secret@1.0.0"), "{out}");
    wait_for("corp's agent to install acme/secret", &all, || {
        corp.version_of("acme/secret").as_deref() == Some("1.0.0")
    });
    assert_eq!(
        std::fs::read(corp.dir().join("acme/secret/plugin.wasm")).unwrap(),
        b"the entitled module"
    );
    // What the agent installed verifies like any install; its own .agora files
    // (lock, tenant policy, approvals) are not taken for plugins.
    assert!(corp.dir().join(".agora/approvals.json").is_file());
    let verified = alice
        .run(&[
            "verify",
            "--installed",
            "--dir",
            corp.dir().to_str().unwrap(),
        ])
        .ok();
    assert!(
        verified.contains("1 plugins, 2 files") && verified.contains("all match agora.lock"),
        "{verified}"
    );
    // other's agent, converged on its empty set, never gets it.
    wait_for("other's agent to report", &all, || {
        let fleet = olga.run(&["--json", "tenant", "fleet", "other"]).json();
        fleet["instances"][0]["state"] == "converged"
    });
    assert_eq!(other.version_of("acme/secret"), None);
    assert!(!other.dir().join("acme").exists());

    // Revoked: it leaves corp's set, and corp's agent removes it.
    let out = alice
        .run(&["entitlement", "revoke", "acme/secret", "corp"])
        .ok();
    assert!(out.contains("left the tenant's approved set"), "{out}");
    wait_for("corp's agent to remove acme/secret", &all, || {
        corp.version_of("acme/secret").is_none() && !corp.dir().join("acme/secret").exists()
    });
    bob.run(&["info", "acme/secret"]).fails();
    let rows = server.query(
        "SELECT action || ' ' || target FROM audit_events WHERE action LIKE 'entitlement.%' ORDER BY id",
    );
    assert_eq!(
        rows.trim(),
        "entitlement.grant acme/secret:corp\nentitlement.revoke acme/secret:corp",
        "{rows}"
    );
}

#[test]
fn a_release_whose_digest_changed_after_its_approval_is_never_installed() {
    let mut server = Server::start(Backend::Sqlite);
    let _publisher = acme_with_tool(&server);
    let admin = server.admin();
    admin.run(&["tenant", "create", "corp"]).ok();
    let out = admin
        .run(&["tenant", "install", "corp", "acme/tool@1.0.0"])
        .ok();
    assert!(out.contains("Approved acme/tool@1.0.0"), "{out}");

    // Someone with the database's keys moves the release under the pin: the same version
    // now names another manifest (the restart empties the server's caches).
    let forged = format!("sha256:{}", "ab".repeat(32));
    server.sql(&format!(
        "UPDATE versions SET manifest_digest = '{forged}' WHERE version = '1.0.0'"
    ));
    server.restart();
    let tokens = tempfile::tempdir().unwrap();
    let token = register(&admin, "corp", "edge", tokens.path());
    let agent = Agent::start(&server, "edge", &token, &host_policy(&[]));
    let all = [&agent];
    let mut reason = String::new();
    wait_for("the fleet view to show edge's failure", &all, || {
        let fleet = admin.run(&["--json", "tenant", "fleet", "corp"]).json();
        reason = fleet["plugins"][0]["failed"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        !reason.is_empty()
    });
    assert!(reason.contains("not the approved"), "{reason}");
    assert_eq!(agent.version_of("acme/tool"), None);
    assert!(!agent.dir().join("acme/tool").exists());
}
