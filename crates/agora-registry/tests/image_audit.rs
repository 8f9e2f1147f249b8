//! The verification's `oci` stage against a real registry (Debian's docker-registry on
//! loopback): what it pulls, what it refuses, what it reports.

use agora_core::Manifest;
use agora_oci::layout::{File, ImageSpec};
use agora_oci::testing::LocalRegistry;
use agora_registry::image_audit::{ImageAuditSettings, audit};

fn manifest(image: &str) -> Manifest {
    Manifest::from_yaml(&format!(
        "api_version: agora/v1\npublisher: acme\nname: echo\nversion: 1.0.0\n\
         description: d\nlicense: MIT\nruntime: {{ type: oci, image: \"{image}\" }}\n"
    ))
    .unwrap()
}

fn settings(registry: &LocalRegistry) -> ImageAuditSettings {
    ImageAuditSettings {
        allowed_registries: vec![registry.address.clone()],
        allow_private: true,
        plain_http: vec![registry.address.clone()],
    }
}

fn rules(findings: &[agora_core::verification::Finding]) -> Vec<String> {
    findings.iter().map(|f| f.rule.clone()).collect()
}

#[tokio::test]
async fn a_clean_image_passes_and_an_image_running_as_root_is_reported() {
    let registry = LocalRegistry::start();
    let files = vec![File {
        path: "bin/plugin".into(),
        bytes: b"#!/bin/sh\n".to_vec(),
        mode: 0o755,
    }];
    let clean = registry.push_image("acme/clean", "1", &files, &ImageSpec::default());
    let image = registry.reference("acme/clean", &clean.manifest.digest);
    let findings = audit(&settings(&registry), &manifest(&image)).await;
    assert!(findings.is_empty(), "{findings:?}");

    let root = registry.push_image(
        "acme/root",
        "1",
        &files,
        &ImageSpec {
            user: "0:0".into(),
            ..ImageSpec::default()
        },
    );
    let image = registry.reference("acme/root", &root.manifest.digest);
    let findings = audit(&settings(&registry), &manifest(&image)).await;
    assert_eq!(rules(&findings), ["oci.root-user"], "{findings:?}");
}

#[tokio::test]
async fn unlisted_and_internal_registries_are_not_pulled_from() {
    let registry = LocalRegistry::start();
    let built = registry.push_image("acme/echo", "1", &[], &ImageSpec::default());
    let image = registry.reference("acme/echo", &built.manifest.digest);
    let none = audit(&ImageAuditSettings::default(), &manifest(&image)).await;
    assert_eq!(rules(&none), ["oci.registry-not-allowed"]);
    assert!(
        none[0].message.contains("allows none"),
        "{}",
        none[0].message
    );
    let private = audit(
        &ImageAuditSettings {
            allow_private: false,
            ..settings(&registry)
        },
        &manifest(&image),
    )
    .await;
    assert_eq!(rules(&private), ["oci.registry-internal"]);
    assert!(private[0].message.contains("oci_allow_private"));
}

#[tokio::test]
async fn a_tampered_layer_is_a_critical_finding() {
    let registry = LocalRegistry::start();
    let built = registry.push_image(
        "acme/echo",
        "1",
        &[File {
            path: "a".into(),
            bytes: b"x".to_vec(),
            mode: 0o644,
        }],
        &ImageSpec::default(),
    );
    let data = registry.blob_data(&built.layer.digest);
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let image = registry.reference("acme/echo", &built.manifest.digest);
    let findings = audit(&settings(&registry), &manifest(&image)).await;
    assert_eq!(rules(&findings), ["oci.digest-mismatch"], "{findings:?}");
    assert_eq!(
        findings[0].severity,
        agora_core::verification::Severity::Critical
    );
}
