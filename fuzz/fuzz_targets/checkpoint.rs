//! A signed checkpoint (C2SP signed note) from a registry: opening never panics, and a
//! checkpoint that opens was signed by the key it was opened with.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// One log key for the whole run, and a genuine note to start from.
fn key() -> &'static (String, String, String) {
    static KEY: OnceLock<(String, String, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let (signer, verifier) = agora_trust::generate_log_key("fuzz.example/log");
        let mut log = agora_trust::MerkleLog::default();
        log.append(agora_trust::LogEntry::leaf_of("{}"));
        let checkpoint = agora_trust::Checkpoint {
            origin: "fuzz.example/log".to_owned(),
            head: log.head(),
        };
        let note = checkpoint.sign(&signer).expect("a fresh key signs");
        (signer, verifier, note)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (_, verifier, note) = key();
    let _ = agora_trust::Checkpoint::open(text, verifier);
    // Mutations of a genuine note: whatever still opens must be the genuine one.
    let mixed = format!("{note}{text}");
    if let Ok(opened) = agora_trust::Checkpoint::open(&mixed, verifier) {
        let genuine = agora_trust::Checkpoint::open(note, verifier).expect("genuine opens");
        assert_eq!(opened.head, genuine.head);
    }
});
