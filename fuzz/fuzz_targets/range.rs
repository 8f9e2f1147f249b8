//! A blob download's Range header and an OCI chunk's Content-Range. The check is `agora_fuzz::checks::range`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz::checks::range(data));
