//! OCI image layers unpacked into a root filesystem. The check is `agora_fuzz::checks::oci_layer`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz::checks::oci_layer(data));
