//! Page cursors (the catalog's and the review queue's). The check is `agora_fuzz::checks::cursor`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz::checks::cursor(data));
