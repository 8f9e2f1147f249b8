//! A release bundle (.agora: gzip-compressed tar) unpacked by the client. The check is `agora_fuzz::checks::bundle`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz::checks::bundle(data));
