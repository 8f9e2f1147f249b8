//! A pushed OCI manifest with its Content-Type, and repository names and references from
//! `/v2/` paths: never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for content_type in [
        None,
        Some("application/vnd.oci.image.manifest.v1+json"),
        Some("application/vnd.oci.image.index.v1+json"),
        Some("application/vnd.docker.distribution.manifest.v2+json"),
    ] {
        let _ = agora_core::oci::check_manifest(data, content_type);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = agora_core::oci::Repository::parse(text);
        let _ = agora_core::oci::Reference::parse(text);
        let _ = agora_core::oci::parse_digest(text);
    }
});
