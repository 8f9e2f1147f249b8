//! Manifests as Agora accepts them: OCI image manifests and Docker v2 schema 2 manifests,
//! and an index (OCI or Docker manifest list) only when a `linux/amd64` image can be
//! chosen from it. Every descriptor must name a `sha256:` digest; other algorithms and
//! Docker schema 1 are refused.

use serde::Deserialize;

use crate::{OciError, sha256_hex};

// The manifest media types are the domain's, shared with the registry's `/v2/`.
pub use agora_core::oci::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST as DOCKER_LIST, IMAGE_INDEX as OCI_INDEX,
    IMAGE_MANIFEST as OCI_MANIFEST,
};
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The media types a manifest request accepts.
pub const ACCEPTED: [&str; 4] = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST];

/// A content descriptor and an index entry's platform: the domain's.
pub use agora_core::oci::{Descriptor, Platform};

/// A parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    Index(Vec<Descriptor>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

/// Reads manifest bytes (already checked against their digest).
pub fn parse(bytes: &[u8]) -> Result<Parsed, OciError> {
    let raw: Raw = serde_json::from_slice(bytes)
        .map_err(|e| OciError::Manifest(format!("not an image manifest or index: {e}")))?;
    if raw.schema_version != 2 {
        return Err(OciError::Manifest(format!(
            "schemaVersion {} (only 2: OCI and Docker v2 schema 2)",
            raw.schema_version
        )));
    }
    let kind = match raw.media_type.as_deref() {
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => "image",
        Some(OCI_INDEX | DOCKER_LIST) => "index",
        // OCI makes mediaType optional; the fields decide.
        None if raw.manifests.is_some() => "index",
        None if raw.config.is_some() => "image",
        Some(other) => {
            return Err(OciError::Manifest(format!(
                "media type `{other}` is not accepted (expected one of {})",
                ACCEPTED.join(", ")
            )));
        }
        None => {
            return Err(OciError::Manifest(
                "neither an image manifest nor an index".into(),
            ));
        }
    };
    let parsed = if kind == "index" {
        Parsed::Index(raw.manifests.unwrap_or_default())
    } else {
        let config = raw
            .config
            .ok_or_else(|| OciError::Manifest("an image manifest without a config".into()))?;
        Parsed::Image {
            config,
            layers: raw.layers.unwrap_or_default(),
        }
    };
    let descriptors = match &parsed {
        Parsed::Image { config, layers } => std::iter::once(config).chain(layers).collect(),
        Parsed::Index(entries) => entries.iter().collect::<Vec<_>>(),
    };
    for d in descriptors {
        if sha256_hex(&d.digest).is_none() {
            return Err(OciError::Manifest(format!(
                "the descriptor digest `{}` is not sha256:<64 lowercase hex>",
                d.digest
            )));
        }
    }
    Ok(parsed)
}

/// The `linux/amd64` image of an index.
pub fn choose_platform(entries: &[Descriptor]) -> Result<&Descriptor, OciError> {
    entries
        .iter()
        .find(|d| {
            matches!(d.media_type.as_str(), OCI_MANIFEST | DOCKER_MANIFEST)
                && d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
        })
        .ok_or_else(|| OciError::NoPlatform {
            offered: if entries.is_empty() {
                "nothing".into()
            } else {
                entries
                    .iter()
                    .map(|d| match &d.platform {
                        Some(p) => format!("{}/{}", p.os, p.architecture),
                        None => format!("{} without a platform", d.media_type),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn oci_and_docker_manifests_parse() {
        for media in [OCI_MANIFEST, DOCKER_MANIFEST] {
            let json = format!(
                r#"{{"schemaVersion":2,"mediaType":"{media}","config":{{"mediaType":"c","digest":"{D}","size":2}},"layers":[{{"mediaType":"l","digest":"{D}","size":3}}]}}"#
            );
            let Parsed::Image { config, layers } = parse(json.as_bytes()).unwrap() else {
                panic!("not an image");
            };
            assert_eq!((config.size, layers.len()), (2, 1));
        }
    }

    #[test]
    fn schema_one_unknown_media_types_and_other_digests_are_refused() {
        assert!(parse(br#"{"schemaVersion":1,"name":"x"}"#).is_err());
        let other = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/x","config":{{"mediaType":"c","digest":"{D}","size":2}}}}"#
        );
        assert!(
            parse(other.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("not accepted")
        );
        let md5 = r#"{"schemaVersion":2,"config":{"mediaType":"c","digest":"md5:abc","size":2}}"#;
        assert!(parse(md5.as_bytes()).is_err());
    }

    #[test]
    fn an_index_yields_its_linux_amd64_image_or_a_clear_refusal() {
        let entry = |arch: &str| Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: D.into(),
            size: 1,
            artifact_type: None,
            annotations: None,
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
            }),
        };
        let entries = vec![entry("arm64"), entry("amd64")];
        assert_eq!(
            choose_platform(&entries)
                .unwrap()
                .platform
                .as_ref()
                .unwrap()
                .architecture,
            "amd64"
        );
        let err = choose_platform(&entries[..1]).unwrap_err().to_string();
        assert!(
            err.contains("no linux/amd64") && err.contains("linux/arm64"),
            "{err}"
        );
    }
}
