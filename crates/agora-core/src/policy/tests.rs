//! Admission of manifests under a host policy, and the checks on policy files.
use super::*;

fn manifest(extra: &str) -> Manifest {
    Manifest::from_yaml(&format!(
        "api_version: agora/v1\npublisher: acme\nname: jira\nversion: 1.0.0\n\
         description: d\nlicense: MIT\nruntime: {{ type: wasm, module: p.wasm }}\n{extra}"
    ))
    .unwrap()
}

fn open() -> HostPolicy {
    HostPolicy {
        mode: Mode::Open,
        ..HostPolicy::default()
    }
}

#[test]
fn modes_and_lists_decide_who_runs() {
    let m = manifest("");
    let curated = HostPolicy::default();
    assert_eq!(curated.admit(&m).unwrap_err().field, "mode");
    let allowed = HostPolicy {
        allow: vec!["acme/*".into()],
        ..HostPolicy::default()
    };
    assert!(allowed.admit(&m).is_ok());
    let first = HostPolicy {
        mode: Mode::FirstParty,
        allow: vec!["*".into()],
        ..HostPolicy::default()
    };
    assert!(first.admit(&m).unwrap_err().reason.contains("first-party"));
    let first = HostPolicy {
        first_party: vec!["acme".into()],
        ..first
    };
    assert!(first.admit(&m).is_ok());
    let denied = HostPolicy {
        deny: vec!["acme/jira".into()],
        ..open()
    };
    let refusal = denied.admit(&m).unwrap_err();
    assert_eq!(refusal.field, "deny");
    assert!(refusal.reason.contains("acme/jira"));
    let no_wasm = HostPolicy {
        runtimes: vec![RuntimeKind::Exec],
        ..open()
    };
    assert_eq!(no_wasm.admit(&m).unwrap_err().field, "runtime.type");
}

#[test]
fn resources_are_capped_and_defaulted() {
    let grant = open().admit(&manifest("")).unwrap();
    assert_eq!(grant.limits.memory_mb, 128);
    assert_eq!(grant.limits.timeout_ms, 10_000);
    let m = manifest(
        "resources: { memory_mb: 64, max_fds: 20 }\nentrypoints: { run: { path: /run, timeout_ms: 500 }, other: { path: /o } }",
    );
    let grant = open().admit(&m).unwrap();
    assert_eq!((grant.limits.memory_mb, grant.limits.max_fds), (64, 20));
    assert_eq!(grant.timeout_ms("run"), 500);
    assert_eq!(grant.timeout_ms("other"), 10_000);

    let greedy = manifest("resources: { memory_mb: 4096 }");
    let refusal = open().admit(&greedy).unwrap_err();
    assert_eq!(refusal.field, "resources.memory_mb");
    assert_eq!(
        refusal.reason,
        "asks for 4096 MiB; this host allows at most 256 MiB"
    );
    let slow = manifest("entrypoints: { run: { path: /run, timeout_ms: 600000 } }");
    assert_eq!(
        open().admit(&slow).unwrap_err().field,
        "entrypoints.run.timeout_ms"
    );
}

#[test]
fn outbound_hosts_must_fit_the_ceiling() {
    let m = manifest(
        "capabilities: [outbound_http]\nnetwork: { outbound_hosts: [jira.example.com, 'api.example.org:8443'] }",
    );
    let refusal = open().admit(&m).unwrap_err();
    assert_eq!(refusal.field, "network.outbound_hosts[0]");
    assert!(refusal.reason.contains("no outbound hosts"), "{refusal}");
    let policy = HostPolicy {
        network: NetworkPolicy {
            allowed_hosts: vec!["*.example.com".into(), "api.example.org:8443".into()],
            allow_private_addresses: false,
        },
        ..open()
    };
    let grant = policy.admit(&m).unwrap();
    assert!(grant.allows_host("jira.example.com", 443));
    assert!(grant.allows_host("JIRA.example.com.", 80));
    assert!(
        !grant.allows_host("jira.example.com", 22),
        "a bare host allows 80 and 443 only"
    );
    assert!(grant.allows_host("api.example.org", 8443));
    assert!(!grant.allows_host("api.example.org", 443));
    assert!(!grant.allows_host("evil.com", 443));
    assert!(!grant.allows_host("93.184.216.34", 443));
    assert!(!grant.allows_host("example.com", 443));

    let wider = manifest("capabilities: [outbound_http]\nnetwork: { outbound_hosts: ['*.com'] }");
    assert_eq!(
        policy.admit(&wider).unwrap_err().field,
        "network.outbound_hosts[0]"
    );
    let port = manifest(
        "capabilities: [outbound_http]\nnetwork: { outbound_hosts: ['jira.example.com:22'] }",
    );
    assert!(policy.admit(&port).is_err());
}

#[test]
fn secrets_need_a_grant() {
    let m = manifest("capabilities: [secrets_read]\nsecrets: [JIRA_TOKEN]");
    let refusal = open().admit(&m).unwrap_err();
    assert_eq!(refusal.field, "secrets[0]");
    let policy = HostPolicy {
        secrets: vec![SecretGrant {
            plugin: "acme/jira".into(),
            name: "JIRA_TOKEN".into(),
            from_env: Some("HOST_JIRA".into()),
            from_file: None,
        }],
        ..open()
    };
    assert_eq!(policy.admit(&m).unwrap().secrets.len(), 1);
    let other = HostPolicy {
        secrets: vec![SecretGrant {
            plugin: "other/*".into(),
            ..policy.secrets[0].clone()
        }],
        ..open()
    };
    assert!(other.admit(&m).is_err());
}

#[test]
fn policy_files_are_checked() {
    let policy = HostPolicy::from_toml(
        "mode = \"open\"\ndeny = [\"evil/*\"]\n[limits]\nmemory_mb = 64\n[defaults]\nmemory_mb = 32\n\
         [network]\nallowed_hosts = [\"api.example.com\"]\n",
    )
    .unwrap();
    assert_eq!(policy.limits.memory_mb, 64);
    assert_eq!(
        policy.limits.timeout_ms, 30_000,
        "unset ceilings keep their defaults"
    );
    for (bad, says) in [
        ("mode = \"lax\"", "unknown variant"),
        ("[limits]\nmemory_mb = 8", "defaults.memory_mb"),
        (
            "[network]\nallowed_hosts = [\"http://x\"]",
            "not a host name",
        ),
        ("deny = [\"evil\"]", "plugin pattern"),
        ("[[secrets]]\nplugin = \"*\"\nname = \"A\"", "exactly one"),
        ("colour = 1", "unknown field"),
        ("[sandbox]\nlandlock_max_abi = 0", "expected 1 to 6"),
        ("[sandbox]\nlandlock_max_abi = 7", "expected 1 to 6"),
        ("[sandbox]\nweaker = \"ignore\"", "unknown variant"),
        (
            "[[secrets]]\nplugin = \"*\"\nname = \"AGORA_PLUGIN_KEY\"\nfrom_env = \"X\"",
            "cannot be a secret",
        ),
        (
            "[[secrets]]\nplugin = \"*\"\nname = \"LD_PRELOAD\"\nfrom_env = \"X\"",
            "cannot be a secret",
        ),
    ] {
        let err = HostPolicy::from_toml(bad).unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[test]
fn runner_api_must_match() {
    let m = manifest("compatibility: { runner_api: v2 }");
    assert_eq!(
        open().admit(&m).unwrap_err().field,
        "compatibility.runner_api"
    );
}

#[test]
fn callbacks_are_granted_only_as_the_policy_allows_them() {
    let m = manifest("callbacks: [notes.add, kv.get]\n");
    // The default policy allows no callback: the first one declared is refused, naming
    // the policy key to change.
    let refusal = open().admit(&m).unwrap_err();
    assert_eq!(refusal.field, "callbacks[0]");
    assert!(refusal.reason.contains("`notes.add`"), "{refusal}");
    assert!(
        refusal.reason.contains("`callbacks` allows none"),
        "{refusal}"
    );
    let some = HostPolicy {
        callbacks: vec!["notes.add".into()],
        ..open()
    };
    let refusal = some.admit(&m).unwrap_err();
    assert_eq!(refusal.field, "callbacks[1]");
    assert!(refusal.reason.contains("`kv.get`"), "{refusal}");
    assert!(refusal.reason.contains("allows notes.add"), "{refusal}");
    let both = HostPolicy {
        callbacks: vec!["notes.add".into(), "kv.*".into()],
        ..open()
    };
    let grant = both.admit(&m).unwrap();
    assert_eq!(grant.callbacks, ["notes.add", "kv.get"]);
    assert!(grant.allows_callback("kv.get"));
    assert!(!grant.allows_callback("kv.put"));
    // A plugin declaring none gets none, whatever the policy allows.
    assert!(both.admit(&manifest("")).unwrap().callbacks.is_empty());
    // A tenant must allow them too, and its refusal says so.
    let tenant = HostPolicy {
        callbacks: vec!["kv.get".into()],
        ..open()
    };
    let refusal = both.admit_with(Some(&tenant), &m).unwrap_err();
    assert_eq!(refusal.field, "callbacks[0]");
    assert!(
        refusal.reason.contains("the tenant does not allow"),
        "{refusal}"
    );
    assert!(refusal.reason.ends_with("(tenant policy)"), "{refusal}");
    let tenant = HostPolicy {
        callbacks: vec!["notes.*".into(), "kv.get".into()],
        ..open()
    };
    let grant = both.admit_with(Some(&tenant), &m).unwrap();
    assert_eq!(grant.callbacks, ["notes.add", "kv.get"]);
}

#[test]
fn callback_wildcards_cover_names_under_their_prefix_only() {
    assert!(callback_matches("notes.*", "notes.add"));
    assert!(callback_matches("notes.*", "notes.add.bulk"));
    assert!(!callback_matches("notes.*", "notes"));
    assert!(!callback_matches("notes.*", "notesx.add"));
    assert!(callback_matches("notes.add", "notes.add"));
    assert!(!callback_matches("notes.add", "notes.add.bulk"));
}

#[test]
fn policy_callback_entries_are_checked() {
    for good in ["notes.add", "notes.*", "a.b-c.*"] {
        let policy = HostPolicy::from_toml(&format!("callbacks = [\"{good}\"]\n")).unwrap();
        assert_eq!(policy.callbacks, [good]);
    }
    for bad in ["*", "Notes.add", "notes.", "notes*", ".*", "notes.*.add"] {
        let e = HostPolicy::from_toml(&format!("callbacks = [\"{bad}\"]\n")).unwrap_err();
        assert!(e.0.starts_with("callbacks:"), "{bad}: {e}");
        assert!(e.0.contains(bad), "{bad}: {e}");
    }
}

#[test]
fn inside_a_tenant_the_stricter_sandbox_settings_hold() {
    let warn = SandboxPolicy::default();
    let refuse = SandboxPolicy {
        weaker: WeakerSandbox::Refuse,
        landlock_max_abi: Some(3),
    };
    assert_eq!(warn.with_tenant(None), warn);
    assert_eq!(warn.with_tenant(Some(&refuse)), refuse);
    assert_eq!(refuse.with_tenant(Some(&warn)), refuse);
    let host = SandboxPolicy {
        weaker: WeakerSandbox::Warn,
        landlock_max_abi: Some(2),
    };
    assert_eq!(
        host.with_tenant(Some(&refuse)),
        SandboxPolicy {
            weaker: WeakerSandbox::Refuse,
            landlock_max_abi: Some(2),
        },
        "the lower ABI of both"
    );
}

#[test]
fn a_refusal_says_whose_policy_it_is() {
    let host = open();
    let tenant = HostPolicy {
        deny: vec!["acme/*".into()],
        ..open()
    };
    let m = manifest("");
    let refusal = host.admit_with(Some(&tenant), &m).unwrap_err();
    assert!(refusal.is_tenants(), "{refusal}");
    let refusal = tenant.admit(&m).unwrap_err();
    assert!(!refusal.is_tenants(), "{refusal}");
}

fn oci_manifest(image: &str) -> Manifest {
    Manifest::from_yaml(&format!(
        "api_version: agora/v1\npublisher: acme\nname: jira\nversion: 1.0.0\n\
         description: d\nlicense: MIT\nruntime: {{ type: oci, image: \"{image}\" }}\n"
    ))
    .unwrap()
}

fn oci_host(registries: &[&str]) -> HostPolicy {
    HostPolicy {
        runtimes: vec![RuntimeKind::Oci],
        oci: OciPolicy {
            allowed_registries: registries.iter().map(|r| r.to_string()).collect(),
        },
        ..open()
    }
}

const IMAGE: &str = "registry.example/acme/jira@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn oci_images_come_only_from_allowed_registries() {
    let m = oci_manifest(IMAGE);
    let refusal = oci_host(&[]).admit(&m).unwrap_err();
    assert_eq!(refusal.field, "runtime.image");
    assert!(
        refusal
            .reason
            .contains("[oci] allowed_registries allows none")
            && refusal.reason.contains("add \"registry.example\""),
        "{refusal}"
    );
    assert!(oci_host(&["registry.example"]).admit(&m).is_ok());
    assert!(oci_host(&["*.example"]).admit(&m).is_ok());
    assert!(oci_host(&["registry.example:5000"]).admit(&m).is_err());
    let local = oci_manifest(&IMAGE.replace("registry.example", "127.0.0.1:5000"));
    assert!(oci_host(&["127.0.0.1:5000"]).admit(&local).is_ok());
    assert!(oci_host(&["127.0.0.1"]).admit(&local).is_err());
}

#[test]
fn host_and_tenant_must_both_allow_an_images_registry() {
    let m = oci_manifest(IMAGE);
    let host = oci_host(&["registry.example"]);
    let tenant = oci_host(&["other.example"]);
    let refusal = host.admit_with(Some(&tenant), &m).unwrap_err();
    assert!(refusal.is_tenants(), "{refusal}");
    assert!(
        refusal.reason.contains("not one the tenant pulls from"),
        "{refusal}"
    );
    let refusal = tenant.admit_with(Some(&host), &m).unwrap_err();
    assert!(!refusal.is_tenants(), "{refusal}");
    assert!(host.admit_with(Some(&host), &m).is_ok());
}

#[test]
fn allowed_registries_are_checked_and_read_from_toml() {
    let policy = HostPolicy::from_toml(
        "mode = \"open\"\nruntimes = [\"oci\"]\n[oci]\nallowed_registries = [\"registry.example\", \"127.0.0.1:5000\"]\n",
    )
    .unwrap();
    assert_eq!(policy.oci.allowed_registries.len(), 2);
    let err = HostPolicy::from_toml("[oci]\nallowed_registries = [\"https://registry.example\"]\n")
        .unwrap_err();
    assert!(err.to_string().contains("oci.allowed_registries"), "{err}");
    assert!(HostPolicy::default().oci.allowed_registries.is_empty());
}
