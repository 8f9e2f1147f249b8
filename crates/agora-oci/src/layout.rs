//! The project's own image writer: a single-layer OCI image from a list of files and an
//! image config, written as an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/...`) that `skopeo copy oci:DIR:TAG ...` reads. It needs no base image
//! and no network.
//!
//! Deterministic: the same files and config give the same bytes, hence the same manifest
//! digest. Entries are sorted by path, each parent directory is written before its
//! children (0755), every entry has mtime 0, uid and gid 0 and no user or group names;
//! the layer is gzip with a zero mtime in its header; JSON is written from structs, in
//! their field order. The config carries no `created` time or history.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Component, Path};

use serde::Serialize;

use crate::cache::{ContainerConfig, ImageConfig, RootFs};
use crate::manifest::{Descriptor, OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST};
use crate::{OciError, sha256_digest};

/// One file of the image's single layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Relative path inside the image (`bin/plugin`); no `..`, not absolute.
    pub path: String,
    pub bytes: Vec<u8>,
    /// Permission bits (e.g. 0o755); setuid, setgid and sticky bits are refused.
    pub mode: u32,
}

/// How a container of the image starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    /// `uid:gid`; [`ImageSpec::default`] says `65534:65534` (nobody).
    pub user: String,
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec {
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env: Vec::new(),
            working_dir: "/".into(),
            user: "65534:65534".into(),
        }
    }
}

/// An image built in memory: every blob by digest, and the manifest's descriptor.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layer: Descriptor,
    /// Digest → bytes: the manifest, the config and the layer.
    pub blobs: BTreeMap<String, Vec<u8>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestOut<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: &'a Descriptor,
    layers: [&'a Descriptor; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: u64,
    annotations: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexOut<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: Vec<IndexEntry<'a>>,
}

/// Builds the image in memory.
pub fn build(files: &[File], spec: &ImageSpec) -> Result<BuiltImage, OciError> {
    let tar = layer_tar(files)?;
    let diff_id = sha256_digest(&tar);
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar).map_err(OciError::io("layer"))?;
    let layer_bytes = gz.finish().map_err(OciError::io("layer"))?;
    let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        config: Some(ContainerConfig {
            user: Some(spec.user.clone()),
            entrypoint: some(&spec.entrypoint),
            cmd: some(&spec.cmd),
            env: some(&spec.env),
            working_dir: Some(spec.working_dir.clone()),
            ..ContainerConfig::default()
        }),
        rootfs: Some(RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id],
        }),
    };
    let config_bytes = json(&config)?;
    let descriptor = |media_type: &str, bytes: &[u8]| Descriptor {
        media_type: media_type.into(),
        digest: sha256_digest(bytes),
        size: bytes.len() as u64,
        artifact_type: None,
        annotations: None,
        platform: None,
    };
    let config_d = descriptor(OCI_CONFIG, &config_bytes);
    let layer_d = descriptor(OCI_LAYER_GZIP, &layer_bytes);
    let manifest_bytes = json(&ManifestOut {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        config: &config_d,
        layers: [&layer_d],
    })?;
    let manifest_d = descriptor(OCI_MANIFEST, &manifest_bytes);
    let blobs = BTreeMap::from([
        (config_d.digest.clone(), config_bytes),
        (layer_d.digest.clone(), layer_bytes),
        (manifest_d.digest.clone(), manifest_bytes),
    ]);
    Ok(BuiltImage {
        manifest: manifest_d,
        config: config_d,
        layer: layer_d,
        blobs,
    })
}

/// Builds the image and writes it as an OCI image layout in `dir` (created if missing),
/// tagged `tag` (`org.opencontainers.image.ref.name`). Returns what was written.
pub fn write(
    dir: &Path,
    tag: &str,
    files: &[File],
    spec: &ImageSpec,
) -> Result<BuiltImage, OciError> {
    let image = build(files, spec)?;
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(OciError::io(&blobs))?;
    for (digest, bytes) in &image.blobs {
        let path = blobs.join(digest.trim_start_matches("sha256:"));
        fs::write(&path, bytes).map_err(OciError::io(&path))?;
    }
    let index = json(&IndexOut {
        schema_version: 2,
        media_type: OCI_INDEX,
        manifests: vec![IndexEntry {
            media_type: OCI_MANIFEST,
            digest: &image.manifest.digest,
            size: image.manifest.size,
            annotations: BTreeMap::from([("org.opencontainers.image.ref.name", tag)]),
        }],
    })?;
    for (name, bytes) in [
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("index.json", index),
    ] {
        let path = dir.join(name);
        fs::write(&path, bytes).map_err(OciError::io(&path))?;
    }
    Ok(image)
}

fn json(value: &impl Serialize) -> Result<Vec<u8>, OciError> {
    serde_json::to_vec(value).map_err(|e| OciError::Config(e.to_string()))
}

/// The layer's tar: parents first, sorted, fixed metadata.
fn layer_tar(files: &[File]) -> Result<Vec<u8>, OciError> {
    let mut dirs = BTreeSet::new();
    let mut by_path = BTreeMap::new();
    for file in files {
        let path = Path::new(&file.path);
        let clean = path.components().all(|c| matches!(c, Component::Normal(_)));
        if !clean || file.path.is_empty() || file.path.ends_with('/') {
            return Err(OciError::Unpack(format!(
                "`{}` is not a relative path of normal components",
                file.path
            )));
        }
        if file.mode & !0o777 != 0 {
            return Err(OciError::Unpack(format!(
                "`{}` has the mode {:o}; setuid, setgid and sticky bits are refused",
                file.path, file.mode
            )));
        }
        if by_path.insert(file.path.clone(), file).is_some() {
            return Err(OciError::Unpack(format!("`{}` is listed twice", file.path)));
        }
        let mut parent = path.parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_string_lossy().into_owned());
            parent = p.parent();
        }
    }
    if let Some(clash) = dirs.iter().find(|d| by_path.contains_key(*d)) {
        return Err(OciError::Unpack(format!(
            "`{clash}` is both a file and a directory"
        )));
    }
    // Sorted as paths, a directory `a` comes before `a/b` and after `a-b`: fine for tar,
    // which needs only parents before children.
    let mut entries: Vec<(String, Option<&File>)> = dirs.into_iter().map(|d| (d, None)).collect();
    entries.extend(by_path.into_iter().map(|(p, f)| (p, Some(f))));
    entries.sort_by(|a, b| Path::new(&a.0).cmp(Path::new(&b.0)));
    let mut builder = tar::Builder::new(Vec::new());
    for (path, file) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        let io = OciError::io(&path);
        match file {
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{path}/"), std::io::empty())
                    .map_err(io)?;
            }
            Some(file) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(file.mode);
                header.set_size(file.bytes.len() as u64);
                builder
                    .append_data(&mut header, &path, file.bytes.as_slice())
                    .map_err(io)?;
            }
        }
    }
    builder.into_inner().map_err(OciError::io("layer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<File> {
        vec![
            File {
                path: "bin/plugin".into(),
                bytes: b"\x7fELF...".to_vec(),
                mode: 0o755,
            },
            File {
                path: "etc/agora/config.toml".into(),
                bytes: b"a = 1\n".to_vec(),
                mode: 0o644,
            },
        ]
    }

    fn spec() -> ImageSpec {
        ImageSpec {
            entrypoint: vec!["/bin/plugin".into()],
            env: vec!["PATH=/bin".into()],
            ..ImageSpec::default()
        }
    }

    #[test]
    fn the_same_input_gives_the_same_manifest_digest_whatever_the_order() {
        let a = build(&files(), &spec()).unwrap();
        let mut reversed = files();
        reversed.reverse();
        let b = build(&reversed, &spec()).unwrap();
        assert_eq!(a.manifest, b.manifest);
        assert_eq!(a.blobs, b.blobs);
        let other = build(
            &files(),
            &ImageSpec {
                user: "0:0".into(),
                ..spec()
            },
        )
        .unwrap();
        assert_ne!(a.manifest.digest, other.manifest.digest);
    }

    #[test]
    fn the_layout_holds_the_blobs_index_and_a_config_running_as_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let image = write(dir.path(), "v1", &files(), &spec()).unwrap();
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(
            index["manifests"][0]["digest"],
            image.manifest.digest.as_str()
        );
        assert_eq!(
            index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "v1"
        );
        for (digest, bytes) in &image.blobs {
            let path = dir.path().join("blobs/sha256").join(&digest[7..]);
            assert_eq!(&fs::read(path).unwrap(), bytes);
        }
        let config: ImageConfig =
            serde_json::from_slice(&image.blobs[&image.config.digest]).unwrap();
        let run = config.config.unwrap();
        assert_eq!(run.user.as_deref(), Some("65534:65534"));
        assert_eq!(run.entrypoint.unwrap(), vec!["/bin/plugin"]);
        // The layer lists parents first, with fixed metadata.
        let layer = &image.blobs[&image.layer.digest];
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer.as_slice()));
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                assert_eq!(
                    (e.header().mtime().unwrap(), e.header().uid().unwrap()),
                    (0, 0)
                );
                e.path().unwrap().display().to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "bin/",
                "bin/plugin",
                "etc/",
                "etc/agora/",
                "etc/agora/config.toml"
            ]
        );
    }

    #[test]
    fn bad_paths_and_special_modes_are_refused() {
        for (path, mode) in [
            ("/abs", 0o644),
            ("a/../b", 0o644),
            ("", 0o644),
            ("s", 0o4755),
        ] {
            let file = File {
                path: path.into(),
                bytes: vec![],
                mode,
            };
            assert!(build(&[file], &spec()).is_err(), "{path}");
        }
    }
}
