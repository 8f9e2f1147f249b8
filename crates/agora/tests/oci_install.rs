//! Installing an `oci` plugin: its image pulled by digest from a real registry (Debian's
//! docker-registry on loopback) into the plugin directory's cache, only from a registry
//! the host policy allows, in the same transaction as the install.

mod support;

use agora_oci::layout::{File, ImageSpec};
use agora_oci::testing::LocalRegistry;
use support::*;

#[test]
fn an_oci_plugin_installs_with_its_image_only_from_an_allowed_registry() {
    let registry = LocalRegistry::start();
    let image = registry.push_image(
        "acme/echo",
        "1.0.0",
        &[File {
            path: "bin/echo".into(),
            bytes: b"#!/bin/sh\ncat\n".to_vec(),
            mode: 0o755,
        }],
        &ImageSpec {
            entrypoint: vec!["/bin/echo".into()],
            ..ImageSpec::default()
        },
    );
    let reference = registry.reference("acme/echo", &image.manifest.digest);

    let server = Server::start(Backend::Sqlite);
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    let work = tempfile::tempdir().unwrap();
    let plugin = work.path().join("echo");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::write(
        plugin.join("plugin.yaml"),
        format!(
            "api_version: agora/v1\npublisher: acme\nname: echo\nversion: 1.0.0\n\
             description: The echo plugin\nlicense: MIT\n\
             runtime: {{ type: oci, image: \"{reference}\" }}\n\
             entrypoints: {{ echo: {{ path: /echo }} }}\n"
        ),
    )
    .unwrap();
    alice.run(&["publish", plugin.to_str().unwrap()]).ok();

    // Without a policy naming the registry, nothing is installed and the refusal says
    // which setting to change.
    let anon = server.cli(None);
    let err = anon
        .run_in(work.path(), &["install", "acme/echo", "--dir", "plugins"])
        .fails();
    assert!(
        err.contains("[oci] allowed_registries") && err.contains(&registry.address),
        "{err}"
    );
    assert!(!work.path().join("plugins/agora.lock").exists());
    assert!(!work.path().join("plugins/acme/echo").exists());

    // The host policy (the runner's, ~/.config/agora/policy.toml) allows it.
    let config = anon.home.path().join("config/agora");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("policy.toml"),
        format!("[oci]\nallowed_registries = [\"{}\"]\n", registry.address),
    )
    .unwrap();
    anon.run_in(work.path(), &["install", "acme/echo", "--dir", "plugins"])
        .ok();
    let plugins = work.path().join("plugins");
    assert!(plugins.join("agora.lock").exists());
    let cache = agora_oci::Cache::open(&agora_oci::plugin_cache_dir(&plugins)).unwrap();
    let local = cache.image(&image.manifest.digest).unwrap();
    assert_eq!(local.layers[0].digest, image.layer.digest);
    cache.verify(&local).unwrap();
}
