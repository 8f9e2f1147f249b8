//! An OSV advisory record from a feed: reading never panics, and a record that reads can
//! be asked about any version.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(advisory) = agora_core::advisory::Advisory::from_json(value) {
        let _ = format!("{advisory:?}");
    }
});
