//! An `oci` plugin end to end through the real binary: the echo-native example built as
//! a static binary into an image (the project's image writer), pushed with `skopeo copy`
//! to Debian's docker-registry on loopback, published pinned by digest to `agora serve`,
//! installed from an allowed registry only, run under runc with `agora run`, passing
//! `agora conformance`; a tag moved to another image afterwards changes nothing that
//! runs. Needs root, runc, docker-registry and skopeo (`.ci/run` installs them), and
//! `rustup target add x86_64-unknown-linux-musl`; fails, never skips, without them.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use agora_oci::layout::{self, BuiltImage, File, ImageSpec};
use agora_oci::testing::LocalRegistry;
use support::*;

const REPOSITORY: &str = "examples/echo-native";
const TAG: &str = "1.0.0";

/// `examples/plugins/NAME` built as a static (musl) executable; its bytes.
fn static_example(name: &str) -> Vec<u8> {
    let target = "x86_64-unknown-linux-musl";
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("examples-static");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/plugins")
        .join(name)
        .join("Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--release", "--target", target])
        .arg("--manifest-path")
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "building {name} for {target} failed (it needs `rustup target add {target}`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(target_dir.join(target).join("release").join(name)).unwrap()
}

/// An image whose `/bin/echo-native` holds `binary`, written as an OCI layout in `dir`
/// and pushed with skopeo to the registry's `REPOSITORY:TAG`.
fn push(registry: &LocalRegistry, dir: &Path, binary: Vec<u8>) -> BuiltImage {
    let image = layout::write(
        dir,
        TAG,
        &[File {
            path: "bin/echo-native".into(),
            bytes: binary,
            mode: 0o755,
        }],
        &ImageSpec {
            entrypoint: vec!["/bin/echo-native".into()],
            ..ImageSpec::default()
        },
    )
    .unwrap();
    registry.push_layout(dir, REPOSITORY, TAG);
    image
}

/// The manifest digest `REPOSITORY:TAG` names in the registry now.
fn tagged_digest(registry: &LocalRegistry) -> String {
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{}/{REPOSITORY}:{TAG}", registry.address))
        .output()
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "skopeo inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The echo-native example's manifest as an `oci` plugin naming `image`, in `dir`.
fn oci_plugin_dir(dir: &Path, image: &str) -> PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plugins/echo-native");
    let yaml = std::fs::read_to_string(example.join("plugin.yaml")).unwrap();
    let start = yaml.find("runtime:").unwrap();
    let end = start + yaml[start..].find("entrypoints:").unwrap();
    let yaml = format!(
        "{}runtime:\n  type: oci\n  image: \"{image}\"\n{}",
        &yaml[..start],
        &yaml[end..]
    )
    // The example's SBOM describes the exec build, which this release does not ship.
    .replace("sbom: sbom.cdx.json\n", "");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("plugin.yaml"), yaml).unwrap();
    dir.to_path_buf()
}

/// The blobs in a plugin directory's image cache, by name.
fn cached_blobs(plugins: &Path) -> Vec<String> {
    let cache = agora_oci::plugin_cache_dir(plugins);
    let mut names: Vec<String> = walk(&cache)
        .into_iter()
        .map(|p| p.strip_prefix(&cache).unwrap().display().to_string())
        .collect();
    names.sort();
    names
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().unwrap().is_dir() {
            files.extend(walk(&entry.path()));
        } else {
            files.push(entry.path());
        }
    }
    files
}

#[test]
fn an_oci_plugin_from_docker_registry_runs_by_digest_and_conforms() {
    let registry = LocalRegistry::start();
    let images = tempfile::tempdir().unwrap();
    let pinned = push(
        &registry,
        &images.path().join("echo"),
        static_example("echo-native"),
    );
    assert_eq!(tagged_digest(&registry), pinned.manifest.digest);
    let reference = registry.reference(REPOSITORY, &pinned.manifest.digest);

    let server = Server::start(Backend::Sqlite);
    let (alice, work) = examples_publisher(&server);
    let work = work.path();

    // A tag can move: an image named by tag alone is refused at publish.
    let tagged = oci_plugin_dir(
        &work.join("tagged"),
        &format!("{}/{REPOSITORY}:{TAG}", registry.address),
    );
    let err = alice.run(&["publish", tagged.to_str().unwrap()]).fails();
    assert!(err.contains("runtime.image"), "{err}");
    let plugin = oci_plugin_dir(&work.join("echo"), &reference);
    alice.run(&["publish", plugin.to_str().unwrap()]).ok();

    // Not from a registry the host policy does not name; the refusal names the setting.
    let err = alice
        .run_in(
            work,
            &["install", "examples/echo-native", "--dir", "plugins"],
        )
        .fails();
    assert!(
        err.contains("[oci] allowed_registries") && err.contains(&registry.address),
        "{err}"
    );
    assert!(!work.join("plugins/examples/echo-native").exists());

    // The host policy (~/.config/agora/policy.toml) allows the oci runtime and the
    // registry; `agora install` pulls under it and `agora run` runs under it.
    let config = alice.home.path().join("config/agora");
    std::fs::create_dir_all(&config).unwrap();
    let host_policy = config.join("policy.toml");
    std::fs::write(
        &host_policy,
        format!(
            "mode = \"open\"\nruntimes = [\"oci\"]\n[oci]\nallowed_registries = [\"{}\"]\n",
            registry.address
        ),
    )
    .unwrap();
    alice
        .run_in(
            work,
            &["install", "examples/echo-native", "--dir", "plugins"],
        )
        .ok();
    let plugins = work.join("plugins");
    let cache = agora_oci::Cache::open(&agora_oci::plugin_cache_dir(&plugins)).unwrap();
    let local = cache.image(&pinned.manifest.digest).unwrap();
    assert_eq!(local.layers[0].digest, pinned.layer.digest);

    let state = work.join("runner");
    let state = state.to_str().unwrap();
    let run = |dir: &str| {
        alice
            .run_in(
                work,
                &[
                    "run",
                    "examples/echo-native",
                    "echo",
                    "--input",
                    r#"{"n":1}"#,
                    "--dir",
                    dir,
                    "--state-dir",
                    state,
                ],
            )
            .ok()
    };
    let echoed = run("plugins");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&echoed).unwrap(),
        serde_json::json!({"n": 1})
    );
    let audit = std::fs::read_to_string(work.join("runner/audit.jsonl")).unwrap();
    assert!(audit.contains(r#""sandbox":"oci""#), "{audit}");

    // Conformance under the host policy, then under the harness's own policy made from
    // the manifest (no host policy file): it admits the oci runtime and this registry.
    let conformance = || {
        alice
            .run_in(
                work,
                &[
                    "--json",
                    "conformance",
                    "examples/echo-native@1.0.0",
                    "--dir",
                    "plugins",
                    "--state-dir",
                    state,
                ],
            )
            .json()
    };
    let report = conformance();
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["runtime"], "oci", "{report}");
    let aside = config.join("policy.toml.aside");
    std::fs::rename(&host_policy, &aside).unwrap();
    let report = conformance();
    assert_eq!(report["passed"], true, "{report}");
    assert!(
        report["policy"]
            .as_str()
            .unwrap()
            .contains("a policy made from its manifest"),
        "{report}"
    );
    std::fs::rename(&aside, &host_policy).unwrap();

    // The tag moves to another image (another program under the same path, which has
    // no `echo` entrypoint): what was approved and installed is what still runs.
    let blobs_before = cached_blobs(&plugins);
    let moved = push(
        &registry,
        &images.path().join("moved"),
        static_example("hostile-native"),
    );
    assert_ne!(moved.manifest.digest, pinned.manifest.digest);
    assert_eq!(tagged_digest(&registry), moved.manifest.digest);
    assert_eq!(run("plugins"), echoed);
    assert_eq!(cached_blobs(&plugins), blobs_before);
    // A fresh install after the move pulls the pinned digest too, never the tag.
    alice
        .run_in(work, &["install", "examples/echo-native", "--dir", "fresh"])
        .ok();
    let fresh = agora_oci::Cache::open(&agora_oci::plugin_cache_dir(&work.join("fresh"))).unwrap();
    assert_eq!(
        fresh.image(&pinned.manifest.digest).unwrap().layers[0].digest,
        pinned.layer.digest
    );
    assert!(fresh.image(&moved.manifest.digest).is_err());
    assert_eq!(cached_blobs(&work.join("fresh")), blobs_before);
    assert_eq!(run("fresh"), echoed);

    // plugin.yaml edited after the install to name another image, even one whose blobs
    // are in the cache: refused, since agora.lock pins plugin.yaml, which pins the image.
    for blob in walk(&images.path().join("moved/blobs/sha256")) {
        fresh
            .put(
                &format!("sha256:{}", blob.file_name().unwrap().to_string_lossy()),
                &std::fs::read(&blob).unwrap(),
            )
            .unwrap();
    }
    let yaml = work.join("fresh/examples/echo-native/plugin.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(
        &yaml,
        text.replace(&pinned.manifest.digest, &moved.manifest.digest),
    )
    .unwrap();
    let err = alice
        .run_in(
            work,
            &[
                "run",
                "examples/echo-native",
                "echo",
                "--dir",
                "fresh",
                "--state-dir",
                state,
            ],
        )
        .fails();
    assert!(
        err.contains("does not match the digest it was installed with"),
        "{err}"
    );
}
