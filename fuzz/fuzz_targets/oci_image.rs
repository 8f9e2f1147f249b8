//! An OCI image manifest or index and an image config from a remote registry. The check is `agora_fuzz::checks::oci_image`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz::checks::oci_image(data));
