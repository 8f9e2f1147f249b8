//! A release's SBOM (CycloneDX or SPDX JSON). The check is `agora_fuzz::checks::sbom`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz::checks::sbom(data));
