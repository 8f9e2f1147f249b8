//! Pulls against a real registry: Debian's docker-registry on loopback, images pushed
//! from our own layout with skopeo.

use agora_oci::layout::{File, ImageSpec};
use agora_oci::testing::LocalRegistry;
use agora_oci::unpack::{UnpackLimits, unpack};
use agora_oci::{Cache, OciError, PullOptions, Puller};

fn files() -> Vec<File> {
    vec![
        File {
            path: "bin/plugin".into(),
            bytes: b"#!/bin/sh\necho hi\n".to_vec(),
            mode: 0o755,
        },
        File {
            path: "share/readme".into(),
            bytes: b"hello".to_vec(),
            mode: 0o644,
        },
    ]
}

fn spec() -> ImageSpec {
    ImageSpec {
        entrypoint: vec!["/bin/plugin".into()],
        ..ImageSpec::default()
    }
}

fn puller(registry: &LocalRegistry) -> Puller {
    Puller::new(PullOptions {
        allowed_registries: vec![registry.address.clone()],
        plain_http: vec![registry.address.clone()],
        ..PullOptions::default()
    })
    .unwrap()
}

#[tokio::test]
async fn an_image_pulled_by_digest_is_cached_and_a_second_pull_needs_no_registry() {
    let mut registry = LocalRegistry::start();
    let image = registry.push_image("acme/echo", "v1", &files(), &spec());
    let reference = registry.reference("acme/echo", &image.manifest.digest);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(&dir.path().join("oci")).unwrap();

    let pulled = puller(&registry).pull(&reference, &cache).await.unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest.digest);
    assert_eq!(pulled.layers.len(), 1);
    assert_eq!(pulled.layers[0].digest, image.layer.digest);
    let config = pulled.config.clone().unwrap().config.unwrap();
    assert_eq!(config.user.as_deref(), Some("65534:65534"));
    for digest in image.blobs.keys() {
        assert!(
            cache.blob_path(digest).unwrap().is_file(),
            "{digest} cached"
        );
    }
    cache.verify(&pulled).unwrap();

    let rootfs = dir.path().join("rootfs");
    unpack(&pulled.layers, &rootfs, &UnpackLimits::default()).unwrap();
    assert_eq!(
        std::fs::read(rootfs.join("share/readme")).unwrap(),
        b"hello"
    );

    // Content named by digest cannot change: the second pull makes no request at all.
    registry.stop();
    let again = puller(&registry).pull(&reference, &cache).await.unwrap();
    assert_eq!(again.layers, pulled.layers);
    assert_eq!(
        Cache::open(cache.root())
            .unwrap()
            .image(&image.manifest.digest)
            .unwrap()
            .layers,
        pulled.layers
    );
}

#[tokio::test]
async fn a_tampered_blob_in_the_registry_is_refused_and_never_cached() {
    let registry = LocalRegistry::start();
    let image = registry.push_image("acme/echo", "v1", &files(), &spec());
    // Same length, one byte changed: only the digest can tell.
    let data = registry.blob_data(&image.layer.digest);
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let reference = registry.reference("acme/echo", &image.manifest.digest);
    let err = puller(&registry)
        .pull(&reference, &cache)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, OciError::DigestMismatch { expected, .. } if *expected == image.layer.digest),
        "{err}"
    );
    assert!(!cache.blob_path(&image.layer.digest).unwrap().exists());
    assert!(!cache.blob_path(&image.manifest.digest).unwrap().exists());
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}

#[tokio::test]
async fn a_manifest_that_is_not_the_referenced_digest_is_refused() {
    let registry = LocalRegistry::start();
    let image = registry.push_image("acme/echo", "v1", &files(), &spec());
    let data = registry.blob_data(&image.manifest.digest);
    let mut bytes = std::fs::read(&data).unwrap();
    bytes.push(b' ');
    std::fs::write(&data, &bytes).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let reference = registry.reference("acme/echo", &image.manifest.digest);
    let err = puller(&registry)
        .pull(&reference, &cache)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            OciError::DigestMismatch { .. } | OciError::Registry { .. }
        ),
        "{err}"
    );
    assert!(!cache.blob_path(&image.manifest.digest).unwrap().exists());
}

#[tokio::test]
async fn a_disallowed_registry_and_a_tag_are_refused() {
    let registry = LocalRegistry::start();
    let image = registry.push_image("acme/echo", "v1", &files(), &spec());
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let elsewhere = Puller::new(PullOptions {
        allowed_registries: vec!["registry.example".into()],
        plain_http: vec![registry.address.clone()],
        ..PullOptions::default()
    })
    .unwrap();
    let reference = registry.reference("acme/echo", &image.manifest.digest);
    let err = elsewhere.pull(&reference, &cache).await.unwrap_err();
    assert!(matches!(err, OciError::RegistryNotAllowed(_)), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("add \"{}\"", registry.address)),
        "{err}"
    );

    let tag = format!("{}/acme/echo:v1", registry.address);
    let err = puller(&registry).pull(&tag, &cache).await.unwrap_err();
    assert!(matches!(err, OciError::Reference(_)), "{err}");
    assert!(err.to_string().contains("not pinned by digest"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}
