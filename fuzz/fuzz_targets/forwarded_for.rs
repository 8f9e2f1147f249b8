//! X-Forwarded-For from behind a trusted proxy. The check is `agora_fuzz::checks::forwarded_for`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz::checks::forwarded_for(data));
