//! A pushed OCI manifest, repository names, references and digests. The check is `agora_fuzz::checks::oci_manifest`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz::checks::oci_manifest(data));
