//! A release's DSSE envelope as a publisher sends it: reading and verifying never panic,
//! and nothing but the genuine key's signature over the expected claim verifies.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = serde_json::from_slice::<agora_trust::release::Envelope>(data) else {
        return;
    };
    let claim = agora_trust::release::ReleaseClaim::new(
        "acme",
        "tool",
        "1.0.0",
        agora_core::Digest::of(b"plugin.yaml"),
        [("plugin.wasm".to_owned(), agora_core::Digest::of(b"module"))],
    );
    // No key: nothing verifies.
    assert!(agora_trust::release::verify_release(&envelope, &[], &claim).is_err());
});
