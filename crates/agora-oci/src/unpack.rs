//! Layers into a root filesystem, lowest first, with OCI whiteouts, refusing path tricks.
//!
//! Each layer is a tar stream, plain or gzip (sniffed from its first bytes; zstd and
//! other compressions are refused). For every entry:
//!
//! - the path is relative to the root: an absolute path or a `..` component is refused
//!   (`.` components are dropped);
//! - every parent component must be a real directory (checked with `lstat`; a missing one
//!   is created 0755): an entry reached through a symlink, placed by an earlier entry or
//!   layer, or through a non-directory is refused. Nothing is ever opened through a
//!   symlink: a file is created with `O_CREAT|O_EXCL` after the old entry at its name is
//!   removed, and the parents were just checked;
//! - `.wh.NAME` removes `NAME` from the layers below; `.wh..wh..opq` empties its directory
//!   of what the layers below put there (what this layer wrote stays);
//! - regular files, directories and symlinks are written (a symlink's target is kept as
//!   written: it is meaningful only inside the container, whose root is this directory);
//!   a hardlink must name an earlier regular file inside the root, reached through real
//!   directories; character and block devices and FIFOs are **skipped** (counted in the
//!   report, never created); sparse files and unknown entry types are refused;
//! - modes keep only `0o755`: setuid, setgid and sticky bits and group/other write are
//!   **stripped**. When unpacking as root, every entry is owned by root (0:0), so uid
//!   65534 can write nothing; the runner mounts the root read-only as well.
//!
//! Bounds: [`MAX_ENTRIES`] entries and [`MAX_UNPACKED_BYTES`] decompressed bytes over all
//! layers ([`UnpackLimits`]).

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::{Layer, OciError};

/// Entries over all layers of one image.
pub const MAX_ENTRIES: u64 = 200_000;
/// Decompressed tar bytes over all layers of one image.
pub const MAX_UNPACKED_BYTES: u64 = 8 << 30;

/// Bounds of one unpack (the constants by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    pub max_entries: u64,
    pub max_bytes: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_entries: MAX_ENTRIES,
            max_bytes: MAX_UNPACKED_BYTES,
        }
    }
}

/// What an unpack did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackReport {
    pub entries: u64,
    /// Decompressed bytes read.
    pub bytes: u64,
    /// Device and FIFO entries skipped (their paths).
    pub skipped: Vec<String>,
}

/// Unpacks `layers` (lowest first) into `rootfs`, created if missing.
pub fn unpack(
    layers: &[Layer],
    rootfs: &Path,
    limits: &UnpackLimits,
) -> Result<UnpackReport, OciError> {
    let mut unpacker = Unpacker::new(rootfs, *limits)?;
    for layer in layers {
        if layer.media_type.contains("zstd") {
            return Err(refuse(format!(
                "the layer {} is zstd-compressed ({}); only tar and tar+gzip layers are unpacked",
                layer.digest, layer.media_type
            )));
        }
        let file = fs::File::open(&layer.path).map_err(OciError::io(&layer.path))?;
        unpacker.layer(file).map_err(|e| match e {
            OciError::Unpack(m) => refuse(format!("layer {}: {m}", layer.digest)),
            other => other,
        })?;
    }
    Ok(unpacker.report)
}

/// Applies layers one after another; for tests and for callers holding layer bytes.
pub struct Unpacker {
    root: PathBuf,
    limits: UnpackLimits,
    as_root: bool,
    report: UnpackReport,
}

fn refuse(message: String) -> OciError {
    OciError::Unpack(message)
}

impl Unpacker {
    pub fn new(rootfs: &Path, limits: UnpackLimits) -> Result<Unpacker, OciError> {
        fs::create_dir_all(rootfs).map_err(OciError::io(rootfs))?;
        let meta = fs::symlink_metadata(rootfs).map_err(OciError::io(rootfs))?;
        if !meta.is_dir() {
            return Err(refuse(format!("{} is not a directory", rootfs.display())));
        }
        Ok(Unpacker {
            root: rootfs.to_owned(),
            limits,
            as_root: meta.uid() == 0,
            report: UnpackReport::default(),
        })
    }

    pub fn report(&self) -> &UnpackReport {
        &self.report
    }

    /// Applies one layer (tar, or tar+gzip).
    pub fn layer(&mut self, reader: impl Read) -> Result<(), OciError> {
        let mut reader = BufReader::new(reader);
        let head = reader.fill_buf().map_err(OciError::io(&self.root))?;
        let budget = self.limits.max_bytes.saturating_sub(self.report.bytes);
        let (stream, counter): (Box<dyn Read>, _) = if head.starts_with(&[0x1f, 0x8b]) {
            let counted = Counted::new(flate2::read::MultiGzDecoder::new(reader), budget);
            let counter = counted.count.clone();
            (Box::new(counted), counter)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            return Err(refuse("zstd-compressed layers are not unpacked".into()));
        } else {
            let counted = Counted::new(reader, budget);
            let counter = counted.count.clone();
            (Box::new(counted), counter)
        };
        let mut archive = tar::Archive::new(stream);
        let mut written = HashSet::new();
        let entries = archive.entries().map_err(|e| self.read_error(e))?;
        for entry in entries {
            let entry = entry.map_err(|e| self.read_error(e))?;
            self.report.entries += 1;
            if self.report.entries > self.limits.max_entries {
                return Err(refuse(format!(
                    "more than MAX_ENTRIES ({}) entries",
                    self.limits.max_entries
                )));
            }
            self.entry(entry, &mut written)?;
        }
        self.report.bytes += counter.get();
        Ok(())
    }

    fn read_error(&self, e: io::Error) -> OciError {
        if e.kind() == io::ErrorKind::FileTooLarge {
            refuse(format!(
                "more than MAX_UNPACKED_BYTES ({} bytes) decompressed",
                self.limits.max_bytes
            ))
        } else {
            refuse(format!("not a readable tar stream: {e}"))
        }
    }

    fn entry<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        written: &mut HashSet<PathBuf>,
    ) -> Result<(), OciError> {
        let raw = entry.path().map_err(|e| self.read_error(e))?.into_owned();
        let rel = relative(&raw)?;
        let Some(name) = rel.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            // The root itself (`./`): nothing to write.
            return Ok(());
        };
        let parent = rel.parent().unwrap_or(Path::new("")).to_owned();
        self.parents(&parent, true)?;
        if name == ".wh..wh..opq" {
            return self.opaque(&parent, written);
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            if hidden.is_empty() || hidden == "." || hidden == ".." || hidden.contains('/') {
                return Err(refuse(format!("`{}` is not a whiteout", raw.display())));
            }
            let target = parent.join(hidden);
            if !written.contains(&target) {
                remove(&self.root.join(&target))?;
            }
            return Ok(());
        }
        let path = self.root.join(&rel);
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644) & 0o755;
        let kind = header.entry_type();
        match kind {
            tar::EntryType::Directory => {
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove(&path)?;
                        fs::create_dir(&path).map_err(OciError::io(&path))?;
                    }
                    Err(_) => fs::create_dir(&path).map_err(OciError::io(&path))?,
                }
                // The owner keeps write access while later entries go in.
                self.finish(&path, mode | 0o700)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove(&path)?;
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(OciError::io(&path))?;
                io::copy(&mut entry, &mut file).map_err(|e| self.read_error(e))?;
                file.sync_all().map_err(OciError::io(&path))?;
                self.finish(&path, mode)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| self.read_error(e))?
                    .ok_or_else(|| {
                        refuse(format!("the symlink `{}` has no target", raw.display()))
                    })?;
                remove(&path)?;
                std::os::unix::fs::symlink(&target, &path).map_err(OciError::io(&path))?;
                if self.as_root {
                    std::os::unix::fs::lchown(&path, Some(0), Some(0))
                        .map_err(OciError::io(&path))?;
                }
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| self.read_error(e))?
                    .ok_or_else(|| {
                        refuse(format!("the hardlink `{}` has no target", raw.display()))
                    })?;
                let target_rel = relative(&target).map_err(|e| match e {
                    OciError::Unpack(m) => refuse(format!("the hardlink `{}`: {m}", raw.display())),
                    other => other,
                })?;
                self.parents(target_rel.parent().unwrap_or(Path::new("")), false)?;
                let source = self.root.join(&target_rel);
                match fs::symlink_metadata(&source) {
                    Ok(m) if m.is_file() => {}
                    _ => {
                        return Err(refuse(format!(
                            "the hardlink `{}` names `{}`, which is not a regular file inside the root",
                            raw.display(),
                            target.display()
                        )));
                    }
                }
                remove(&path)?;
                fs::hard_link(&source, &path).map_err(OciError::io(&path))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                self.report.skipped.push(rel.display().to_string());
                return Ok(());
            }
            tar::EntryType::XGlobalHeader => return Ok(()),
            other => {
                return Err(refuse(format!(
                    "`{}` is a {other:?} entry, which is not unpacked",
                    raw.display()
                )));
            }
        }
        written.insert(rel);
        Ok(())
    }

    /// Checks every component of `dir` is a real directory; creates missing ones when
    /// `create`.
    fn parents(&self, dir: &Path, create: bool) -> Result<(), OciError> {
        let mut at = self.root.clone();
        for component in dir.components() {
            at.push(component);
            match fs::symlink_metadata(&at) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(refuse(format!(
                        "`{}` would be reached through the symlink `{}`",
                        dir.display(),
                        at.strip_prefix(&self.root).unwrap_or(&at).display()
                    )));
                }
                Ok(_) => {
                    return Err(refuse(format!(
                        "`{}` is not a directory",
                        at.strip_prefix(&self.root).unwrap_or(&at).display()
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs::create_dir(&at).map_err(OciError::io(&at))?;
                    self.finish(&at, 0o755)?;
                }
                Err(e) => return Err(OciError::io(&at)(e)),
            }
        }
        Ok(())
    }

    /// Empties `dir` of what lower layers put there.
    fn opaque(&self, dir: &Path, written: &HashSet<PathBuf>) -> Result<(), OciError> {
        let full = self.root.join(dir);
        let children = fs::read_dir(&full).map_err(OciError::io(&full))?;
        for child in children {
            let child = child.map_err(OciError::io(&full))?;
            let rel = dir.join(child.file_name());
            if !written.contains(&rel) {
                remove(&child.path())?;
            } else if child.file_type().is_ok_and(|t| t.is_dir()) {
                self.opaque(&rel, written)?;
            }
        }
        Ok(())
    }

    /// Sets the stripped mode, and root ownership when unpacking as root.
    fn finish(&self, path: &Path, mode: u32) -> Result<(), OciError> {
        if self.as_root {
            std::os::unix::fs::lchown(path, Some(0), Some(0)).map_err(OciError::io(path))?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(OciError::io(path))
    }
}

/// An archive path made relative to the root: no absolute path, no `..`.
fn relative(path: &Path) -> Result<PathBuf, OciError> {
    let mut rel = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => rel.push(part),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(refuse(format!("`{}` is an absolute path", path.display())));
            }
            Component::ParentDir => {
                return Err(refuse(format!("`{}` climbs out with `..`", path.display())));
            }
        }
    }
    Ok(rel)
}

/// Removes whatever is at `path` (never following a symlink); nothing there is fine.
fn remove(path: &Path) -> Result<(), OciError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(OciError::io(path)),
        Ok(_) => fs::remove_file(path).map_err(OciError::io(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(OciError::io(path)(e)),
    }
}

/// A reader failing with `FileTooLarge` past its budget.
struct Counted<R> {
    inner: R,
    budget: u64,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R> Counted<R> {
    fn new(inner: R, budget: u64) -> Self {
        Counted {
            inner,
            budget,
            count: Default::default(),
        }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.count.get() + n as u64;
        if total > self.budget {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, "unpack budget"));
        }
        self.count.set(total);
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
