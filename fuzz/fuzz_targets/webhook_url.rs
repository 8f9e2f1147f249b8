//! A webhook URL a publisher registers. The check is `agora_fuzz::checks::webhook_url`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz::checks::webhook_url(data));
