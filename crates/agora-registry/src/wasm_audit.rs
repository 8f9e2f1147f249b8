//! The WASM audit: a release's WebAssembly component read with `wasmparser`, its
//! top-level imports held against the plugin contract and the capabilities the manifest
//! declares, its exports against the `wasi:http/proxy` world. Pure: bytes in, findings out.
//! The bytes may come in pieces ([`Scan`]): only the section being read is held, not the
//! whole file.

use agora_core::verification::{Finding, Severity};
use wasmparser::{Chunk, Parser, Payload};

/// Interfaces every plugin may import (the `wasi:http/proxy` world and what Rust's
/// standard library links for it).
const ALWAYS: [&str; 6] = [
    "wasi:http/types",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/",
    "wasi:logging/",
];

/// Interfaces allowed only with a capability, and which.
const WITH_CAPABILITY: [(&str, &str, &str); 2] = [
    (
        "wasi:http/outgoing-handler",
        "outbound_http",
        "wasm.undeclared-outbound-http",
    ),
    (
        "wasi:filesystem/",
        "filesystem_temp",
        "wasm.undeclared-filesystem",
    ),
];

/// The export a plugin serves requests through.
const HANDLER: &str = "wasi:http/incoming-handler";

/// What the component's imports and exports tell against `capabilities`.
pub fn audit(bytes: &[u8], capabilities: &[String], location: &str) -> Vec<Finding> {
    let mut scan = Scan::default();
    scan.feed(bytes, true);
    scan.findings(capabilities, location)
}

/// A component read as its bytes arrive: the parser at hand (a nested module's or
/// component's while inside one), the parsers it is nested in, the bytes of the section
/// not yet complete, and the top level's imports and exports so far.
pub struct Scan {
    parser: Parser,
    outer: Vec<Parser>,
    pending: Vec<u8>,
    imports: Vec<String>,
    exports: Vec<String>,
    is_component: bool,
    error: Option<String>,
    done: bool,
}

impl Default for Scan {
    fn default() -> Scan {
        Scan {
            parser: Parser::new(0),
            outer: Vec::new(),
            pending: Vec::new(),
            imports: Vec::new(),
            exports: Vec::new(),
            is_component: false,
            error: None,
            done: false,
        }
    }
}

impl Scan {
    /// Reads the next bytes of the file; `eof` with its last ones (or with none after
    /// them). Holds only what the section being read still needs.
    pub fn feed(&mut self, bytes: &[u8], eof: bool) {
        if self.done {
            return;
        }
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        while !self.done {
            let payload = match self.parser.parse(&self.pending[start..], eof) {
                Err(e) => {
                    self.error = Some(e.to_string());
                    self.done = true;
                    break;
                }
                Ok(Chunk::NeedMoreData(_)) => break,
                Ok(Chunk::Parsed { consumed, payload }) => {
                    start += consumed;
                    payload
                }
            };
            let top = self.outer.is_empty();
            match payload {
                Payload::Version { encoding, .. } if top => {
                    self.is_component = encoding == wasmparser::Encoding::Component;
                }
                Payload::ModuleSection { parser, .. }
                | Payload::ComponentSection { parser, .. } => {
                    self.outer.push(std::mem::replace(&mut self.parser, parser));
                }
                Payload::End(_) => match self.outer.pop() {
                    Some(parser) => self.parser = parser,
                    None => self.done = true,
                },
                Payload::ComponentImportSection(reader) if top => {
                    for import in reader.into_iter().flatten() {
                        self.imports.push(import.name.name.to_owned());
                    }
                }
                Payload::ComponentExportSection(reader) if top => {
                    for export in reader.into_iter().flatten() {
                        self.exports.push(export.name.name.to_owned());
                    }
                }
                _ => {}
            }
        }
        if self.done {
            self.pending = Vec::new();
        } else {
            self.pending.drain(..start);
        }
    }

    /// The whole component has been read (or could not be): later bytes change nothing.
    pub fn finished(&self) -> bool {
        self.done
    }

    /// What the imports and exports read tell against `capabilities`. `location` names
    /// the file in the findings.
    pub fn findings(self, capabilities: &[String], location: &str) -> Vec<Finding> {
        let finding = |severity, rule: &str, message: String| Finding {
            severity,
            rule: rule.to_owned(),
            message,
            location: Some(location.to_owned()),
        };
        if let Some(e) = self.error {
            return vec![finding(
                Severity::Critical,
                "wasm.unreadable",
                format!("not a valid WebAssembly binary: {e}"),
            )];
        }
        let (imports, exports, is_component) = (self.imports, self.exports, self.is_component);
        if !is_component {
            return vec![finding(
            Severity::Critical,
            "wasm.not-a-component",
            "a core WebAssembly module, not a component: the runner runs wasi:http/proxy components".into(),
        )];
        }
        let mut findings = Vec::new();
        // One finding per capability, naming every import that needs it.
        for (prefix, capability, rule) in WITH_CAPABILITY {
            let needing: Vec<&str> = imports
                .iter()
                .filter(|i| i.starts_with(prefix))
                .map(String::as_str)
                .collect();
            if !needing.is_empty() && !capabilities.iter().any(|c| c == capability) {
                findings.push(finding(
                    Severity::High,
                    rule,
                    format!(
                        "imports {} but the manifest does not declare the capability {capability}",
                        needing.join(", ")
                    ),
                ));
            }
        }
        for import in &imports {
            let known = ALWAYS.iter().any(|p| import.starts_with(p))
                || WITH_CAPABILITY
                    .iter()
                    .any(|(p, _, _)| import.starts_with(p));
            if !known {
                findings.push(finding(
                    Severity::High,
                    "wasm.import-outside-contract",
                    format!("imports {import}, which the plugin contract does not provide"),
                ));
            }
        }
        if !exports.iter().any(|e| e.starts_with(HANDLER)) {
            findings.push(finding(
                Severity::Critical,
                "wasm.no-handler",
                format!("exports no {HANDLER}: the runner has nothing to send requests to"),
            ));
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_a_component_is_said() {
        let garbage = audit(b"not wasm at all", &[], "plugin.wasm");
        assert_eq!(garbage[0].rule, "wasm.unreadable");
        // The smallest core module: magic and version 1.
        let core = audit(b"\0asm\x01\0\0\0", &[], "plugin.wasm");
        assert_eq!(core[0].rule, "wasm.not-a-component");
        assert_eq!(core[0].location.as_deref(), Some("plugin.wasm"));
    }

    #[test]
    fn bytes_in_pieces_tell_what_the_whole_file_tells() {
        // A component (layer 1) holding one core module section (id 1, 8 bytes).
        let component = b"\0asm\x0d\0\x01\0\x01\x08\0asm\x01\0\0\0";
        // The same with a nested module of an unknown version, and one cut short.
        let bad_nested = b"\0asm\x0d\0\x01\0\x01\x08\0asm\x09\0\0\0";
        let cut = b"\0asm\x0d\0\x01\0\x01\x08\0asm";
        let cases: [(&[u8], &str); 5] = [
            (component, "wasm.no-handler"),
            (bad_nested, "wasm.unreadable"),
            (cut, "wasm.unreadable"),
            (b"\0asm\x01\0\0\0", "wasm.not-a-component"),
            (b"not wasm at all", "wasm.unreadable"),
        ];
        for (bytes, rule) in cases {
            let whole = audit(bytes, &[], "plugin.wasm");
            assert_eq!(whole[0].rule, rule, "{bytes:?}");
            for size in 1..=bytes.len() {
                let mut scan = Scan::default();
                for piece in bytes.chunks(size) {
                    scan.feed(piece, false);
                }
                scan.feed(&[], true);
                assert_eq!(
                    scan.findings(&[], "plugin.wasm"),
                    whole,
                    "{bytes:?} in pieces of {size}"
                );
            }
        }
    }
}
