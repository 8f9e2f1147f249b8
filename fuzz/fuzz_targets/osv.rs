//! An OSV advisory record from a feed. The check is `agora_fuzz::checks::osv`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz::checks::osv(data));
