//! Release bundles: a plugin directory validated and packed into one `.agora` file
//! (gzip-compressed tar of `plugin.yaml` and the files of the release), and read back
//! with limits on entries, sizes and paths so a hostile bundle cannot escape or explode.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use agora_core::manifest::{
    ArtifactRole, MANIFEST_FILE, MAX_MANIFEST_BYTES, relative_path_problem,
};
use agora_core::verification::{Finding, Severity};
use agora_core::{Digest, Manifest, ManifestError, Sha256Hasher};

/// Most entries a bundle may hold.
pub const MAX_ENTRIES: usize = 256;
/// Most bytes a bundle may unpack to.
pub const MAX_UNPACKED_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// The setuid and setgid bits of a file's mode: no file of a release carries them.
pub const SETID_BITS: u32 = 0o6000;
/// The bit that lets anyone write a file.
const WORLD_WRITABLE: u32 = 0o002;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0} has no plugin.yaml; a plugin directory needs its manifest at the top")]
    NoManifest(PathBuf),
    #[error("{path}: {source}")]
    Manifest {
        path: PathBuf,
        source: ManifestError,
    },
    #[error("{path} is named by the manifest ({role}) but does not exist")]
    Missing { path: String, role: &'static str },
    #[error("{0} is not a regular file (symbolic links and special files are not packed)")]
    NotAFile(String),
    #[error("{0} is a symbolic link; a release carries no links (copy the file in its place)")]
    Symlink(String),
    #[error("{0} has the setuid or setgid bit; a release carries no such mode (chmod u-s,g-s)")]
    Setuid(String),
    #[error("bundle entry {entry:?} is refused: {why}")]
    UnsafeEntry { entry: String, why: String },
    #[error("bundle has more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    #[error("bundle unpacks to more than {MAX_UNPACKED_BYTES} bytes")]
    TooLarge,
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BundleError {
    let context = context.into();
    move |source| BundleError::Io { context, source }
}

/// One file of a release, hashed.
#[derive(Debug, Clone)]
pub struct ReleaseFile {
    /// Path inside the plugin directory.
    pub path: String,
    pub role: ArtifactRole,
    /// Where the bytes are on disk now.
    pub source: PathBuf,
    pub digest: Digest,
    pub size: u64,
}

/// A validated plugin directory: the manifest text and every file of the release.
#[derive(Debug, Clone)]
pub struct ReleaseFiles {
    pub manifest_text: String,
    pub manifest: Manifest,
    pub files: Vec<ReleaseFile>,
}

/// The sha256 and size of a file, read in chunks (never whole into memory).
pub(crate) fn hash_file(path: &Path) -> std::io::Result<(Digest, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            let size = hasher.len();
            return Ok((hasher.finish(), size));
        }
        hasher.update(&buf[..n]);
    }
}

/// The file at `rel` in `dir`, when it is a regular file reached through directories
/// only (no link on the way is followed) and carries no setuid or setgid bit.
fn regular_file(dir: &Path, rel: &str) -> Result<Option<PathBuf>, BundleError> {
    let mut path = dir.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        let last = i + 1 == parts.len();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(format!("cannot read {}", path.display()))(e)),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            return Err(BundleError::Symlink(parts[..=i].join("/")));
        }
        if !last {
            if !kind.is_dir() {
                return Ok(None);
            }
            continue;
        }
        if !kind.is_file() {
            return Err(BundleError::NotAFile(rel.to_owned()));
        }
        if meta.permissions().mode() & SETID_BITS != 0 {
            return Err(BundleError::Setuid(rel.to_owned()));
        }
    }
    Ok(Some(path))
}

/// What `agora audit` holds against the real files of a plugin directory that a release
/// would carry (`plugin.yaml` and [`Manifest::release_files`]), which `agora publish`
/// refuses: a symbolic link on the way (`files.symlink`: critical when it leads outside
/// the directory or nowhere, high otherwise), a setuid or setgid bit (`files.setuid`,
/// critical), a device or pipe (`files.special-file`, critical); and a world-writable
/// file (`files.world-writable`, low: anyone on the machine could change it before it is
/// published).
pub fn audit_dir_files(dir: &Path, manifest: &Manifest) -> Vec<Finding> {
    let root = dir.canonicalize().ok();
    let mut paths = vec![MANIFEST_FILE.to_owned()];
    paths.extend(
        manifest
            .release_files(|name| dir.join(name).symlink_metadata().is_ok())
            .into_keys(),
    );
    let mut findings = Vec::new();
    let mut found = |severity, rule: &str, message: String, at: &str| {
        findings.push(Finding {
            severity,
            rule: rule.to_owned(),
            message,
            location: Some(at.to_owned()),
        })
    };
    for rel in paths.iter().filter(|p| relative_path_problem(p).is_none()) {
        let mut path = dir.to_path_buf();
        let parts: Vec<&str> = rel.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            path.push(part);
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                break;
            };
            let here = parts[..=i].join("/");
            let kind = meta.file_type();
            if kind.is_symlink() {
                let target = std::fs::read_link(&path)
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let inside = root
                    .as_ref()
                    .zip(path.canonicalize().ok())
                    .is_some_and(|(root, real)| real.starts_with(root));
                let (severity, where_to) = if inside {
                    (Severity::High, "")
                } else {
                    (
                        Severity::Critical,
                        ", outside the plugin directory (or nowhere)",
                    )
                };
                found(
                    severity,
                    "files.symlink",
                    format!(
                        "{here} is a symbolic link to {target:?}{where_to}; agora publish follows no links"
                    ),
                    &here,
                );
                break;
            }
            if i + 1 < parts.len() {
                if kind.is_dir() {
                    continue;
                }
                break;
            }
            let mode = meta.permissions().mode();
            if !kind.is_file() {
                found(
                    Severity::Critical,
                    "files.special-file",
                    format!("{here} is not a regular file (a device, pipe, socket or directory)"),
                    &here,
                );
            } else if mode & SETID_BITS != 0 {
                found(
                    Severity::Critical,
                    "files.setuid",
                    format!(
                        "{here} has the setuid or setgid bit (mode {:o})",
                        mode & 0o7777
                    ),
                    &here,
                );
            }
            if kind.is_file() && mode & WORLD_WRITABLE != 0 {
                found(
                    Severity::Low,
                    "files.world-writable",
                    format!("anyone may write {here} (mode {:o})", mode & 0o7777),
                    &here,
                );
            }
        }
    }
    findings
}

impl ReleaseFiles {
    /// Reads and validates a plugin directory: the manifest, the files it names, and the
    /// conventional README, CHANGELOG and LICENSE when present.
    pub fn from_dir(dir: &Path) -> Result<ReleaseFiles, BundleError> {
        let manifest_path = regular_file(dir, MANIFEST_FILE)?
            .ok_or_else(|| BundleError::NoManifest(dir.to_owned()))?;
        let size = std::fs::metadata(&manifest_path)
            .map_err(io("cannot read plugin.yaml"))?
            .len();
        if size > MAX_MANIFEST_BYTES as u64 {
            return Err(BundleError::Manifest {
                path: manifest_path,
                source: ManifestError::TooLarge {
                    size: size as usize,
                },
            });
        }
        let manifest_text = std::fs::read_to_string(&manifest_path)
            .map_err(io(format!("cannot read {}", manifest_path.display())))?;
        // A release being packed or published: every manifest field is one line, as the
        // registry will require.
        let manifest = Manifest::from_yaml_to_publish(&manifest_text).map_err(|source| {
            BundleError::Manifest {
                path: manifest_path.clone(),
                source,
            }
        })?;
        let wanted = manifest.release_files(|name| dir.join(name).exists());
        let mut files = Vec::new();
        for (rel, role) in wanted {
            let source = regular_file(dir, &rel)?.ok_or_else(|| BundleError::Missing {
                path: rel.clone(),
                role: role.as_str(),
            })?;
            let (digest, size) =
                hash_file(&source).map_err(io(format!("cannot read {}", source.display())))?;
            files.push(ReleaseFile {
                path: rel,
                role,
                source,
                digest,
                size,
            });
        }
        Ok(ReleaseFiles {
            manifest_text,
            manifest,
            files,
        })
    }

    /// What a signature over this release states: every file by digest, the manifest's
    /// exact bytes included.
    pub fn claim(&self) -> agora_trust::ReleaseClaim {
        let m = &self.manifest;
        agora_trust::ReleaseClaim::new(
            m.publisher.to_string(),
            m.name.to_string(),
            m.version.to_string(),
            Digest::of(self.manifest_text.as_bytes()),
            self.files.iter().map(|f| (f.path.clone(), f.digest)),
        )
    }

    /// The file name `agora pack` uses by default: `publisher-name-version.agora`.
    pub fn bundle_name(&self) -> String {
        let m = &self.manifest;
        format!("{}-{}-{}.agora", m.publisher, m.name, m.version)
    }

    /// Writes the bundle to `out` (through a temporary file, so a failure leaves nothing).
    pub fn write_bundle(&self, out: &Path) -> Result<(), BundleError> {
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let temp = tempfile::NamedTempFile::new_in(parent)
            .map_err(io(format!("cannot write in {}", parent.display())))?;
        let gz = flate2::write::GzEncoder::new(temp.as_file(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        tar.mode(tar::HeaderMode::Deterministic);
        let mut header = tar::Header::new_gnu();
        header.set_size(self.manifest_text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, MANIFEST_FILE, self.manifest_text.as_bytes())
            .map_err(io("cannot write the bundle"))?;
        for f in &self.files {
            let mut file = std::fs::File::open(&f.source)
                .map_err(io(format!("cannot read {}", f.source.display())))?;
            let mut header = tar::Header::new_gnu();
            header.set_size(f.size);
            header.set_mode(if f.role == ArtifactRole::Binary {
                0o755
            } else {
                0o644
            });
            header.set_cksum();
            tar.append_data(&mut header, &f.path, &mut file)
                .map_err(io("cannot write the bundle"))?;
        }
        tar.into_inner()
            .and_then(|gz| gz.finish())
            .map_err(io("cannot write the bundle"))?;
        temp.as_file()
            .sync_all()
            .map_err(io("cannot write the bundle"))?;
        temp.persist(out)
            .map_err(|e| io(format!("cannot write {}", out.display()))(e.error))?;
        Ok(())
    }

    /// Unpacks a bundle into `dest` (an empty directory) and validates it like a plugin
    /// directory. Only regular files with safe relative paths are accepted.
    pub fn from_bundle(bundle: &Path, dest: &Path) -> Result<ReleaseFiles, BundleError> {
        let file =
            std::fs::File::open(bundle).map_err(io(format!("cannot open {}", bundle.display())))?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut total = 0u64;
        let entries = archive
            .entries()
            .map_err(io(format!("{} is not a bundle", bundle.display())))?;
        for (count, entry) in entries.enumerate() {
            if count >= MAX_ENTRIES {
                return Err(BundleError::TooManyEntries);
            }
            let mut entry =
                entry.map_err(io(format!("{} is not a readable bundle", bundle.display())))?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let refuse = |why: &str| BundleError::UnsafeEntry {
                entry: name.chars().take(200).collect(),
                why: why.to_owned(),
            };
            if entry.header().entry_type() != tar::EntryType::Regular {
                return Err(refuse(
                    "only regular files are allowed (no links, devices or directories)",
                ));
            }
            if let Some(problem) = relative_path_problem(&name) {
                return Err(refuse(&problem));
            }
            if entry
                .header()
                .mode()
                .is_ok_and(|mode| mode & SETID_BITS != 0)
            {
                return Err(refuse(
                    "has the setuid or setgid bit; a release carries no such mode",
                ));
            }
            let size = entry
                .header()
                .size()
                .map_err(|_| refuse("unreadable size"))?;
            total = total.saturating_add(size);
            if total > MAX_UNPACKED_BYTES {
                return Err(BundleError::TooLarge);
            }
            let target = dest.join(&name);
            if target.exists() {
                return Err(refuse("appears twice"));
            }
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(io(format!("cannot create {}", parent.display())))?;
            }
            let mut out = std::fs::File::create(&target)
                .map_err(io(format!("cannot create {}", target.display())))?;
            // Copy at most the declared size, whatever the stream claims.
            let copied = std::io::copy(&mut (&mut entry).take(size), &mut out)
                .map_err(io("cannot unpack the bundle"))?;
            if copied != size {
                return Err(refuse("is truncated"));
            }
        }
        ReleaseFiles::from_dir(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "api_version: agora/v1\npublisher: acme\nname: demo\nversion: 1.0.0\n\
        description: A demo\nlicense: MIT\nruntime: { type: wasm, module: plugin.wasm }\n";

    fn manifest_of(dir: &Path) -> Manifest {
        let text = std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap();
        Manifest::from_yaml_to_publish(&text).unwrap()
    }

    fn plugin_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plugin.yaml"), MANIFEST).unwrap();
        std::fs::write(dir.path().join("plugin.wasm"), b"\0asm module").unwrap();
        std::fs::write(dir.path().join("README.md"), b"# Demo").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"not part of the release").unwrap();
        dir
    }

    #[test]
    fn a_directory_yields_the_files_the_manifest_names_and_the_docs() {
        let dir = plugin_dir();
        let release = ReleaseFiles::from_dir(dir.path()).unwrap();
        let paths: Vec<_> = release
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.role))
            .collect();
        assert_eq!(
            paths,
            [
                ("README.md", ArtifactRole::Readme),
                ("plugin.wasm", ArtifactRole::Module)
            ]
        );
        assert_eq!(release.files[1].digest, Digest::of(b"\0asm module"));
    }

    #[test]
    fn a_missing_module_is_named() {
        let dir = plugin_dir();
        std::fs::remove_file(dir.path().join("plugin.wasm")).unwrap();
        let err = ReleaseFiles::from_dir(dir.path()).unwrap_err();
        assert!(
            matches!(err, BundleError::Missing { ref path, .. } if path == "plugin.wasm"),
            "{err}"
        );
    }

    #[test]
    fn symlinks_are_not_followed() {
        let dir = plugin_dir();
        std::fs::remove_file(dir.path().join("plugin.wasm")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("plugin.wasm")).unwrap();
        assert!(matches!(
            ReleaseFiles::from_dir(dir.path()),
            Err(BundleError::Symlink(ref p)) if p == "plugin.wasm"
        ));
        let findings = audit_dir_files(dir.path(), &manifest_of(dir.path()));
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(
            (findings[0].rule.as_str(), findings[0].severity),
            ("files.symlink", Severity::Critical)
        );
        // A link to a directory on the way is not followed either; inside the directory
        // it is high, not critical.
        std::fs::remove_file(dir.path().join("plugin.wasm")).unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::fs::write(dir.path().join("real/plugin.wasm"), b"\0asm").unwrap();
        let yaml = MANIFEST.replace("module: plugin.wasm", "module: lib/plugin.wasm");
        std::fs::write(dir.path().join("plugin.yaml"), yaml).unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("lib")).unwrap();
        assert!(matches!(
            ReleaseFiles::from_dir(dir.path()),
            Err(BundleError::Symlink(ref p)) if p == "lib"
        ));
        let findings = audit_dir_files(dir.path(), &manifest_of(dir.path()));
        assert_eq!(
            findings
                .iter()
                .map(|f| (f.rule.as_str(), f.severity, f.location.as_deref()))
                .collect::<Vec<_>>(),
            [("files.symlink", Severity::High, Some("lib"))]
        );
    }

    #[test]
    fn setuid_and_world_writable_files_are_found_and_setuid_is_not_packed() {
        let dir = plugin_dir();
        let wasm = dir.path().join("plugin.wasm");
        std::fs::set_permissions(&wasm, std::fs::Permissions::from_mode(0o4755)).unwrap();
        std::fs::set_permissions(
            dir.path().join("README.md"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        let err = ReleaseFiles::from_dir(dir.path()).unwrap_err();
        assert!(
            matches!(err, BundleError::Setuid(ref p) if p == "plugin.wasm"),
            "{err}"
        );
        let findings = audit_dir_files(dir.path(), &manifest_of(dir.path()));
        let found: Vec<_> = findings
            .iter()
            .map(|f| (f.rule.as_str(), f.severity, f.location.as_deref()))
            .collect();
        assert_eq!(
            found,
            [
                ("files.world-writable", Severity::Low, Some("README.md")),
                ("files.setuid", Severity::Critical, Some("plugin.wasm")),
            ]
        );
        std::fs::set_permissions(&wasm, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(ReleaseFiles::from_dir(dir.path()).is_ok());
    }

    #[test]
    fn bundles_round_trip() {
        let dir = plugin_dir();
        let release = ReleaseFiles::from_dir(dir.path()).unwrap();
        let out = dir.path().join(release.bundle_name());
        release.write_bundle(&out).unwrap();
        let unpacked = tempfile::tempdir().unwrap();
        let back = ReleaseFiles::from_bundle(&out, unpacked.path()).unwrap();
        assert_eq!(back.manifest_text, release.manifest_text);
        let digests = |r: &ReleaseFiles| r.files.iter().map(|f| f.digest).collect::<Vec<_>>();
        assert_eq!(digests(&back), digests(&release));
    }

    fn bundle_with(entries: &[(&str, tar::EntryType, &[u8])]) -> tempfile::NamedTempFile {
        let entries: Vec<_> = entries
            .iter()
            .map(|(n, k, d)| (*n, *k, 0o644, *d))
            .collect();
        bundle_with_modes(&entries)
    }

    fn bundle_with_modes(
        entries: &[(&str, tar::EntryType, u32, &[u8])],
    ) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let gz = flate2::write::GzEncoder::new(file.as_file(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (name, kind, mode, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(*mode);
            // Write the raw name so hostile paths survive (the builder would refuse them).
            let raw = &mut h.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            tar.append(&h, *data).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
        file
    }

    #[test]
    fn hostile_bundles_are_refused_before_anything_escapes() {
        let outside = tempfile::tempdir().unwrap();
        for (name, kind) in [
            ("../escape.txt", tar::EntryType::Regular),
            ("/tmp/absolute.txt", tar::EntryType::Regular),
            ("link", tar::EntryType::Symlink),
            ("hard", tar::EntryType::Link),
            ("dev", tar::EntryType::Char),
        ] {
            let bundle = bundle_with(&[(name, kind, b"x")]);
            let dest = outside.path().join("dest");
            std::fs::create_dir_all(&dest).unwrap();
            let err = ReleaseFiles::from_bundle(bundle.path(), &dest).unwrap_err();
            assert!(
                matches!(err, BundleError::UnsafeEntry { .. }),
                "{name}: {err}"
            );
            assert!(!outside.path().join("escape.txt").exists());
            std::fs::remove_dir_all(&dest).unwrap();
        }
        // A setuid file is refused by name, before it is written.
        let bundle = bundle_with_modes(&[
            (
                "plugin.yaml",
                tar::EntryType::Regular,
                0o644,
                MANIFEST.as_bytes(),
            ),
            ("plugin.wasm", tar::EntryType::Regular, 0o4755, b"\0asm"),
        ]);
        let dest = outside.path().join("dest");
        std::fs::create_dir_all(&dest).unwrap();
        let err = ReleaseFiles::from_bundle(bundle.path(), &dest).unwrap_err();
        assert!(
            matches!(err, BundleError::UnsafeEntry { ref entry, .. } if entry == "plugin.wasm"),
            "{err}"
        );
        assert!(err.to_string().contains("setuid"), "{err}");
        assert!(!dest.join("plugin.wasm").exists());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Arbitrary bytes as a bundle, raw or gzip-wrapped: an error, never a panic, and
        /// nothing written outside the destination.
        #[test]
        fn arbitrary_bundles_are_refused_safely(bytes in proptest::collection::vec(any::<u8>(), 0..2048), gzip in any::<bool>()) {
            let root = tempfile::tempdir().unwrap();
            let file = root.path().join("in.agora");
            let data = if gzip {
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut enc, &bytes).unwrap();
                enc.finish().unwrap()
            } else {
                bytes
            };
            std::fs::write(&file, data).unwrap();
            let dest = root.path().join("dest");
            std::fs::create_dir_all(&dest).unwrap();
            let _ = ReleaseFiles::from_bundle(&file, &dest);
            let outside: Vec<_> = std::fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            prop_assert_eq!(outside.len(), 2, "only the input and dest exist: {:?}", outside);
        }
    }
}
