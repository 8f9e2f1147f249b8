//! A release's DSSE envelope. The check is `agora_fuzz::checks::dsse_envelope`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz::checks::dsse_envelope(data));
