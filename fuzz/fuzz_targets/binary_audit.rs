//! A native executable and a WASM component through the registry's audits. The check is `agora_fuzz::checks::binary_audit`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz::checks::binary_audit(data));
