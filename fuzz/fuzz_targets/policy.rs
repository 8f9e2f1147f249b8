//! A host policy file (TOML), host rules, OCI image references. The check is `agora_fuzz::checks::policy`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz::checks::policy(data));
