//! A release file through the registry's archive audit (tar, gzip). The check is `agora_fuzz::checks::archive_audit`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz::checks::archive_audit(data));
