//! A transparency log entry and a sealed entry's opening. The check is `agora_fuzz::checks::log_entry`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz::checks::log_entry(data));
