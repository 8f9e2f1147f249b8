//! A host policy file (TOML): parsing and checking never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = agora_core::policy::HostPolicy::from_toml(text);
    for line in text.lines().take(64) {
        let _ = agora_core::policy::HostRule::parse(line);
        let _ = agora_core::policy::ImageRef::parse(line);
    }
});
