//! `plugin.yaml` as a publisher sends it: parsing never panics, and whatever parses
//! checks out and survives a round trip through its JSON form.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(manifest) = agora_core::Manifest::from_yaml(text) {
        let _ = manifest.parsed_dependencies();
        let json = serde_json::to_string(&manifest).expect("a parsed manifest serializes");
        let again: agora_core::Manifest =
            serde_json::from_str(&json).expect("its JSON reads back");
        assert_eq!(again, manifest);
    }
    let _ = agora_core::Manifest::from_yaml_to_publish(text);
});
