//! The WASM audit: a release's WebAssembly component read with `wasmparser`, its
//! top-level imports held against the plugin contract and the capabilities the manifest
//! declares, its exports against the `wasi:http/proxy` world. Pure: bytes in, findings out.

use agora_core::verification::{Finding, Severity};
use wasmparser::{Parser, Payload};

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
    let finding = |severity, rule: &str, message: String| Finding {
        severity,
        rule: rule.to_owned(),
        message,
        location: Some(location.to_owned()),
    };
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let mut depth = 0usize;
    let mut is_component = false;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = match payload {
            Ok(p) => p,
            Err(e) => {
                return vec![finding(
                    Severity::Critical,
                    "wasm.unreadable",
                    format!("not a valid WebAssembly binary: {e}"),
                )];
            }
        };
        match payload {
            Payload::Version { encoding, .. } if depth == 0 => {
                is_component = encoding == wasmparser::Encoding::Component;
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader.into_iter().flatten() {
                    imports.push(import.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader.into_iter().flatten() {
                    exports.push(export.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
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
}
