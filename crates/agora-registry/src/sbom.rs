//! Reading a release's software bill of materials: CycloneDX JSON (1.4 to 1.6) with the
//! CycloneDX project's `cyclonedx-bom`, SPDX 2.3 JSON with the few types below. The
//! result is the list of components with a package URL, each placed in the OSV
//! ecosystem an advisory would name (`agora_core::advisory`). Pure: bytes in.

use std::str::FromStr;

use serde::Deserialize;

/// Largest SBOM read.
pub const MAX_SBOM_BYTES: usize = 16 * 1024 * 1024;
/// Most components kept from one SBOM (nested ones included).
pub const MAX_COMPONENTS: usize = 20_000;

/// One component of an SBOM that names a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// The package URL as the SBOM wrote it.
    pub purl: String,
    /// The OSV ecosystem (`crates.io`, `npm`, `PyPI`, ...), `None` for package types
    /// advisories do not cover.
    pub ecosystem: Option<String>,
    /// The package's name as OSV writes it in that ecosystem.
    pub name: String,
    pub version: String,
}

/// What an SBOM is and what it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sbom {
    /// `CycloneDX 1.5`, `SPDX-2.3`, ...
    pub format: String,
    pub components: Vec<Component>,
    /// Components without a package URL or version (they cannot be matched).
    pub unidentified: usize,
}

/// Why an SBOM cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error("{0} bytes; at most {MAX_SBOM_BYTES} are read")]
    TooLarge(usize),
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("neither CycloneDX (bomFormat \"CycloneDX\") nor SPDX (spdxVersion \"SPDX-2.3\") JSON")]
    UnknownFormat,
    #[error("CycloneDX specVersion {0:?} is not supported; 1.4, 1.5 and 1.6 are")]
    UnsupportedCycloneDx(String),
    #[error("SPDX version {0:?} is not supported; SPDX-2.3 is")]
    UnsupportedSpdx(String),
    #[error("not a valid {format} document: {reason}")]
    Invalid { format: String, reason: String },
    #[error("it lists more than {MAX_COMPONENTS} components")]
    TooManyComponents,
}

/// Reads an SBOM.
pub fn parse(bytes: &[u8]) -> Result<Sbom, SbomError> {
    if bytes.len() > MAX_SBOM_BYTES {
        return Err(SbomError::TooLarge(bytes.len()));
    }
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| SbomError::NotJson(e.to_string()))?;
    if json.get("bomFormat").and_then(|f| f.as_str()) == Some("CycloneDX") {
        cyclonedx(json)
    } else if let Some(version) = json.get("spdxVersion").and_then(|v| v.as_str()) {
        if version != "SPDX-2.3" {
            return Err(SbomError::UnsupportedSpdx(version.to_owned()));
        }
        spdx(json)
    } else {
        Err(SbomError::UnknownFormat)
    }
}

fn cyclonedx(mut json: serde_json::Value) -> Result<Sbom, SbomError> {
    let spec = json
        .get("specVersion")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    let format = format!("CycloneDX {spec}");
    let invalid = |reason: String| SbomError::Invalid {
        format: format.clone(),
        reason,
    };
    let bom = match spec.as_str() {
        "1.4" | "1.5" => cyclonedx_bom::models::bom::Bom::parse_json_value(json)
            .map_err(|e| invalid(e.to_string()))?,
        // 1.6 only adds fields to 1.5 (the library reads up to 1.5): read with the 1.5
        // model, which ignores what it does not know. Components, versions and package
        // URLs are unchanged between the two.
        "1.6" => {
            json["specVersion"] = serde_json::Value::from("1.5");
            cyclonedx_bom::models::bom::Bom::parse_json_value(json)
                .map_err(|e| invalid(e.to_string()))?
        }
        _ => return Err(SbomError::UnsupportedCycloneDx(spec)),
    };
    let mut sbom = Sbom {
        format,
        components: Vec::new(),
        unidentified: 0,
    };
    let mut stack: Vec<&cyclonedx_bom::models::component::Component> = Vec::new();
    if let Some(components) = &bom.components {
        stack.extend(components.0.iter());
    }
    while let Some(c) = stack.pop() {
        if sbom.components.len() + sbom.unidentified >= MAX_COMPONENTS {
            return Err(SbomError::TooManyComponents);
        }
        if let Some(nested) = &c.components {
            stack.extend(nested.0.iter());
        }
        let version = c.version.as_ref().map(|v| v.to_string());
        match (c.purl.as_ref().map(|p| p.to_string()), version) {
            (Some(purl), version) => sbom.push(&purl, version.as_deref()),
            _ => sbom.unidentified += 1,
        }
    }
    Ok(sbom)
}

/// The parts of an SPDX 2.3 JSON document read here; the fields the specification makes
/// mandatory at the document level are required.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct SpdxDocument {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    data_license: String,
    name: String,
    document_namespace: String,
    creation_info: serde_json::Value,
    #[serde(default)]
    packages: Vec<SpdxPackage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpdxPackage {
    #[serde(default)]
    version_info: Option<String>,
    #[serde(default)]
    external_refs: Vec<SpdxExternalRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpdxExternalRef {
    reference_type: String,
    reference_locator: String,
}

fn spdx(json: serde_json::Value) -> Result<Sbom, SbomError> {
    let doc: SpdxDocument = serde_json::from_value(json).map_err(|e| SbomError::Invalid {
        format: "SPDX-2.3".into(),
        reason: e.to_string(),
    })?;
    if doc.packages.len() > MAX_COMPONENTS {
        return Err(SbomError::TooManyComponents);
    }
    let mut sbom = Sbom {
        format: "SPDX-2.3".into(),
        components: Vec::new(),
        unidentified: 0,
    };
    for package in &doc.packages {
        match package
            .external_refs
            .iter()
            .find(|r| r.reference_type == "purl")
        {
            Some(r) => sbom.push(&r.reference_locator, package.version_info.as_deref()),
            None => sbom.unidentified += 1,
        }
    }
    Ok(sbom)
}

impl Sbom {
    /// Adds the component a package URL names (its own version, else `version`).
    fn push(&mut self, purl: &str, version: Option<&str>) {
        let Ok(parsed) = purl::GenericPurl::<String>::from_str(purl) else {
            self.unidentified += 1;
            return;
        };
        let Some(version) = parsed.version().or(version).filter(|v| !v.is_empty()) else {
            self.unidentified += 1;
            return;
        };
        let (ecosystem, name) = osv_package(
            &parsed.package_type().to_ascii_lowercase(),
            parsed.namespace(),
            parsed.name(),
        );
        self.components.push(Component {
            purl: purl.to_owned(),
            ecosystem: ecosystem.map(str::to_owned),
            name,
            version: version.to_owned(),
        });
    }
}

/// The OSV ecosystem and package name of a package URL's type, namespace and name.
fn osv_package(kind: &str, namespace: Option<&str>, name: &str) -> (Option<&'static str>, String) {
    let joined = |sep: &str| match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}{sep}{name}"),
        _ => name.to_owned(),
    };
    match kind {
        "cargo" => (Some("crates.io"), name.to_owned()),
        "npm" => (Some("npm"), joined("/")),
        "pypi" => (Some("PyPI"), name.to_ascii_lowercase().replace('_', "-")),
        "golang" => (Some("Go"), joined("/")),
        "maven" => (Some("Maven"), joined(":")),
        "gem" => (Some("RubyGems"), name.to_owned()),
        "nuget" => (Some("NuGet"), name.to_owned()),
        "composer" => (Some("Packagist"), joined("/")),
        "hex" => (Some("Hex"), name.to_owned()),
        "pub" => (Some("Pub"), name.to_owned()),
        "swift" => (Some("SwiftURL"), joined("/")),
        "deb" if namespace == Some("debian") => (Some("Debian"), name.to_owned()),
        "apk" if namespace == Some("alpine") => (Some("Alpine"), name.to_owned()),
        _ => (None, joined("/")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cyclonedx_doc(spec: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "bomFormat": "CycloneDX",
            "specVersion": spec,
            "version": 1,
            "metadata": {"component": {"type": "library", "name": "hello-wasm", "version": "1.0.0"}},
            "components": [
                {"type": "library", "name": "smallvec", "version": "1.6.0",
                 "purl": "pkg:cargo/smallvec@1.6.0",
                 "components": [{"type": "library", "name": "left-pad", "version": "1.3.0",
                                 "purl": "pkg:npm/%40scope/left-pad@1.3.0"}]},
                {"type": "library", "name": "unnamed"}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn cyclonedx_1_4_to_1_6_are_read_with_nested_components() {
        for spec in ["1.4", "1.5", "1.6"] {
            let sbom = parse(&cyclonedx_doc(spec)).unwrap();
            assert_eq!(sbom.format, format!("CycloneDX {spec}"));
            assert_eq!(sbom.unidentified, 1);
            let mut found: Vec<(Option<String>, String, String)> = sbom
                .components
                .into_iter()
                .map(|c| (c.ecosystem, c.name, c.version))
                .collect();
            found.sort();
            assert_eq!(
                found,
                [
                    (Some("crates.io".into()), "smallvec".into(), "1.6.0".into()),
                    (Some("npm".into()), "@scope/left-pad".into(), "1.3.0".into()),
                ]
            );
        }
        assert!(matches!(
            parse(&cyclonedx_doc("1.2")),
            Err(SbomError::UnsupportedCycloneDx(_))
        ));
    }

    #[test]
    fn the_sbom_cargo_cyclonedx_writes_is_read() {
        // The example plugin's SBOM, written by cargo-cyclonedx.
        let bytes = include_bytes!("../../../examples/plugins/hello-wasm/sbom.cdx.json");
        let sbom = parse(bytes).unwrap();
        assert!(sbom.format.starts_with("CycloneDX 1."), "{}", sbom.format);
        assert!(
            sbom.components
                .iter()
                .any(|c| c.ecosystem.as_deref() == Some("crates.io")),
            "{sbom:?}"
        );
    }

    #[test]
    fn spdx_2_3_is_read_and_its_mandatory_fields_are_required() {
        let doc = json!({
            "spdxVersion": "SPDX-2.3",
            "SPDXID": "SPDXRef-DOCUMENT",
            "dataLicense": "CC0-1.0",
            "name": "hello",
            "documentNamespace": "https://example.org/hello",
            "creationInfo": {"created": "2026-12-01T00:00:00Z", "creators": ["Tool: test"]},
            "packages": [
                {"SPDXID": "SPDXRef-1", "name": "Jinja2", "versionInfo": "3.1.2",
                 "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                   "referenceLocator": "pkg:pypi/Jinja2@3.1.2"}]},
                {"SPDXID": "SPDXRef-2", "name": "no-purl", "versionInfo": "1"}
            ]
        });
        let sbom = parse(&serde_json::to_vec(&doc).unwrap()).unwrap();
        assert_eq!(sbom.components.len(), 1);
        assert_eq!(sbom.components[0].ecosystem.as_deref(), Some("PyPI"));
        assert_eq!(sbom.components[0].name, "jinja2");
        assert_eq!(sbom.unidentified, 1);

        let mut missing = doc.clone();
        missing.as_object_mut().unwrap().remove("documentNamespace");
        assert!(matches!(
            parse(&serde_json::to_vec(&missing).unwrap()),
            Err(SbomError::Invalid { .. })
        ));
        let mut old = doc;
        old["spdxVersion"] = json!("SPDX-2.1");
        assert!(matches!(
            parse(&serde_json::to_vec(&old).unwrap()),
            Err(SbomError::UnsupportedSpdx(_))
        ));
        assert!(matches!(parse(b"{}"), Err(SbomError::UnknownFormat)));
        assert!(matches!(parse(b"not json"), Err(SbomError::NotJson(_))));
    }
}
