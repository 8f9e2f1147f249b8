//! A publisher's public key as registered (OpenSSH or armored OpenPGP): never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = agora_trust::PublicKey::parse(text) {
        let _ = key.id();
    }
});
