//! plugin.yaml as a publisher sends it. The check is `agora_fuzz::checks::manifest`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz::checks::manifest(data));
