//! A signed checkpoint (C2SP signed note) from a registry. The check is `agora_fuzz::checks::checkpoint`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz::checks::checkpoint(data));
