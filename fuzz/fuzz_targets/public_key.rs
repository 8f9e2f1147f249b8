//! A publisher's public key (OpenSSH or armored OpenPGP). The check is `agora_fuzz::checks::public_key`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz::checks::public_key(data));
