//! A transparency log entry (canonical JSON) and a sealed entry's opening, as a client
//! reads them from a registry: never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(entry) = agora_trust::LogEntry::parse(text) {
        let _ = entry.publisher();
        let _ = entry.key_prev();
        let _ = agora_trust::LogEntry::parse(&entry.to_json()).expect("its JSON reads back");
    }
    let _ = agora_trust::LogEntry::leaf_of(text);
    if let Some((body, opening)) = text.split_once('\n') {
        let _ = agora_trust::open(body, opening);
    }
});
