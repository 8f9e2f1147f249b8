//! The archive audit: a file whose bytes are a tar archive, plain or gzip-compressed (a
//! `.agora` bundle, an OCI layer, an archive shipped as a release file), read entry by
//! entry without unpacking anything and held against what unpacking it must never do:
//! write outside its directory (`..`, absolute, backslash or drive paths), create links
//! or device files, make a setuid or setgid executable, or exhaust memory and disk (a
//! compression bomb, too many entries, too many bytes). A gzip stream that holds no tar
//! is checked for the bomb only. Pure: bytes in, findings out.
//!
//! Every byte the audit decompresses passes through one budget ([`MAX_UNPACKED_BYTES`],
//! and [`MAX_RATIO`] times the compressed size once past [`RATIO_FLOOR`]): it stops at
//! the first byte beyond it, so a bomb costs at most the budget. Headers are never
//! trusted: an entry's data is skipped by reading it, so a size that lies is found by
//! the bytes being absent (or too many), and the long names and extended headers the
//! tar reader would keep in memory are read here, each within
//! [`MAX_HEADER_EXTENSION`] bytes.
//!
//! ZIP archives are recognized and reported as not audited: no release role carries one
//! (bundles and OCI layers are tar), and a ZIP in a binary or text role already fails
//! that role's audit.

use std::cell::Cell;
use std::io::{self, Read};

use agora_core::verification::{Finding, Severity};

/// Most entries an archive may hold (a release bundle holds a few; an OCI layer of a
/// whole distribution, tens of thousands).
pub const MAX_ENTRIES: u64 = 65_536;
/// Most bytes the audit decompresses and an archive may unpack to.
pub const MAX_UNPACKED_BYTES: u64 = 1024 * 1024 * 1024;
/// Most bytes unpacked per compressed byte; beyond it the archive is a compression
/// bomb. Ordinary code and text compress by 2 to 10, a file of zeros by about 1000.
pub const MAX_RATIO: u64 = 100;
/// Unpacked bytes below which the ratio is not held against an archive: a small archive
/// is mostly headers and padding, which compress very well.
pub const RATIO_FLOOR: u64 = 1024 * 1024;
/// Largest GNU long name or long link, or PAX extended header, of one entry.
pub const MAX_HEADER_EXTENSION: u64 = 64 * 1024;
/// Findings listed per archive; the rest are counted in one last finding.
pub const MAX_FINDINGS: usize = 64;
/// Characters of an entry's name or link target shown in a finding.
const SHOWN_CHARS: usize = 200;

/// An archive format the audit recognizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tar,
    /// A gzip stream holding a tar archive (`.tar.gz`, `.agora`).
    GzipTar,
    /// A gzip stream holding anything else.
    Gzip,
    Zip,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZIP_MAGIC: [u8; 4] = *b"PK\x03\x04";
const BLOCK: usize = 512;

/// The archive format `bytes` are in, if any.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(&GZIP_MAGIC) {
        let mut first = Vec::with_capacity(BLOCK);
        // A broken stream still counts as gzip: the audit reports it.
        let _ = flate2::read::MultiGzDecoder::new(bytes)
            .take(BLOCK as u64)
            .read_to_end(&mut first);
        return Some(if is_tar_header(&first) {
            Format::GzipTar
        } else {
            Format::Gzip
        });
    }
    if bytes.starts_with(&ZIP_MAGIC) {
        return Some(Format::Zip);
    }
    is_tar_header(bytes).then_some(Format::Tar)
}

/// Whether a file whose first bytes are `head` (at least [`HEAD_BYTES`] of them, or the
/// whole file) may be an archive: [`sniff`] of the whole file finds one only then.
pub fn may_be_archive(head: &[u8]) -> bool {
    head.starts_with(&GZIP_MAGIC) || head.starts_with(&ZIP_MAGIC) || is_tar_header(head)
}

/// How many first bytes [`may_be_archive`] needs.
pub const HEAD_BYTES: usize = BLOCK;

/// A first block with the ustar magic, or an old-style header whose checksum holds.
fn is_tar_header(bytes: &[u8]) -> bool {
    let Some(block) = bytes.get(..BLOCK) else {
        return false;
    };
    if &block[257..262] == b"ustar" {
        return true;
    }
    let field = String::from_utf8_lossy(&block[148..156]);
    let Ok(stored) = u32::from_str_radix(field.trim_matches([' ', '\0']), 8) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    stored == sum
}

/// What an archive's entries and sizes tell; nothing when `bytes` are no archive.
/// `location` names the file in the findings.
pub fn audit(bytes: &[u8], location: &str) -> Vec<Finding> {
    audit_counted(bytes, location).0
}

/// The findings and how many bytes were decompressed.
fn audit_counted(bytes: &[u8], location: &str) -> (Vec<Finding>, u64) {
    let mut found = Findings::new(location);
    let unpacked = Cell::new(0);
    let compressed = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    let ratio_limit = compressed.saturating_mul(MAX_RATIO).max(RATIO_FLOOR);
    match sniff(bytes) {
        None => {}
        Some(Format::Zip) => found.push(
            Severity::Info,
            "archive.not-audited",
            "a ZIP archive: its entries are not audited (only tar and gzip)".into(),
        ),
        Some(Format::Tar) => {
            let budget = Budget::new(bytes, &unpacked, MAX_UNPACKED_BYTES);
            walk_tar(budget, &mut found, || unpacked.get() > MAX_UNPACKED_BYTES);
        }
        Some(format) => {
            let limit = ratio_limit.min(MAX_UNPACKED_BYTES);
            let spent = || unpacked.get() > limit;
            let mut budget =
                Budget::new(flate2::read::MultiGzDecoder::new(bytes), &unpacked, limit);
            if format == Format::GzipTar {
                walk_tar(budget, &mut found, spent);
            } else if let Err(e) = io::copy(&mut budget, &mut io::sink())
                && !spent()
            {
                found.push(
                    Severity::High,
                    "archive.malformed",
                    format!("the gzip stream does not decompress: {e}"),
                );
            }
            if spent() && ratio_limit < MAX_UNPACKED_BYTES {
                found.push(
                    Severity::Critical,
                    "archive.bomb",
                    format!(
                        "a compression bomb: {compressed} bytes unpack to more than {limit} \
                         (over {MAX_RATIO} times their size); the audit stopped there"
                    ),
                );
            }
        }
    }
    if unpacked.get() > MAX_UNPACKED_BYTES {
        found.push(
            Severity::High,
            "archive.too-large",
            format!("unpacks to more than {MAX_UNPACKED_BYTES} bytes; the audit stopped there"),
        );
    }
    (found.finish(), unpacked.get())
}

/// The findings of one archive, at most [`MAX_FINDINGS`] listed.
struct Findings<'a> {
    location: &'a str,
    list: Vec<Finding>,
    unlisted: usize,
}

impl<'a> Findings<'a> {
    fn new(location: &'a str) -> Self {
        Findings {
            location,
            list: Vec::new(),
            unlisted: 0,
        }
    }

    fn push(&mut self, severity: Severity, rule: &str, message: String) {
        if self.list.len() >= MAX_FINDINGS {
            self.unlisted += 1;
            return;
        }
        self.list.push(Finding {
            severity,
            rule: rule.to_owned(),
            message,
            location: Some(self.location.to_owned()),
        });
    }

    fn finish(mut self) -> Vec<Finding> {
        if self.unlisted > 0 {
            let worst = self.list.iter().map(|f| f.severity).max();
            self.list.push(Finding {
                severity: worst.unwrap_or(Severity::Info),
                rule: "archive.more-findings".into(),
                message: format!("{} more findings are not listed", self.unlisted),
                location: Some(self.location.to_owned()),
            });
        }
        self.list
    }
}

/// A reader that counts what it gives and fails past `limit`, never reading more than
/// one byte beyond it.
struct Budget<'a, R> {
    inner: R,
    read: &'a Cell<u64>,
    limit: u64,
}

impl<'a, R: Read> Budget<'a, R> {
    fn new(inner: R, read: &'a Cell<u64>, limit: u64) -> Self {
        Budget { inner, read, limit }
    }
}

impl<R: Read> Read for Budget<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let so_far = self.read.get();
        if so_far > self.limit {
            return Err(io::Error::other("the audit's budget is spent"));
        }
        let room = usize::try_from(self.limit - so_far + 1).unwrap_or(usize::MAX);
        let take = buf.len().min(room);
        let n = self.inner.read(&mut buf[..take])?;
        self.read.set(so_far + n as u64);
        Ok(n)
    }
}

/// `bytes` for a finding: lossy UTF-8, shortened, quoted with control characters
/// escaped.
fn shown(bytes: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(bytes)
        .chars()
        .take(SHOWN_CHARS)
        .collect();
    format!("{text:?}")
}

/// Why a path names a place from a root rather than from the directory, if it does.
fn rooted(path: &[u8]) -> Option<&'static str> {
    if path.first() == Some(&b'/') {
        return Some("an absolute path");
    }
    if path.contains(&b'\\') {
        return Some("a backslash, a directory separator on Windows");
    }
    if path.len() >= 2 && path[0].is_ascii_alphabetic() && path[1] == b':' {
        return Some("a drive letter");
    }
    None
}

/// Why a path written by unpacking would land outside the directory, if it would.
fn path_problem(path: &[u8]) -> Option<&'static str> {
    if let Some(problem) = rooted(path) {
        return Some(problem);
    }
    if path.split(|b| *b == b'/').any(|c| c == b"..") {
        return Some("a '..' component");
    }
    None
}

/// Whether a link at depth `depth` (directories below the archive's root) to `target`
/// resolves outside the archive's root.
fn escapes(depth: usize, target: &[u8]) -> bool {
    if rooted(target).is_some() {
        return true;
    }
    let mut depth = depth;
    for component in target.split(|b| *b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return true,
            },
            _ => depth += 1,
        }
    }
    false
}

/// Directories below the root an entry at `path` sits in.
fn parent_depth(path: &[u8]) -> usize {
    let components: Vec<&[u8]> = path
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    components.len().saturating_sub(1)
}

/// A GNU long name or link, or a PAX header, read within [`MAX_HEADER_EXTENSION`].
fn read_extension<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Vec<u8>> {
    let size = entry.size();
    if size > MAX_HEADER_EXTENSION {
        return Err(io::Error::other(format!(
            "an extended header of {size} bytes (at most {MAX_HEADER_EXTENSION})"
        )));
    }
    let mut data = Vec::new();
    entry.take(MAX_HEADER_EXTENSION).read_to_end(&mut data)?;
    while data.last() == Some(&0) {
        data.pop();
    }
    Ok(data)
}

/// The value of `key` in PAX records.
fn pax_value(records: &[u8], key: &str) -> Option<Vec<u8>> {
    tar::PaxExtensions::new(records)
        .filter_map(Result::ok)
        .filter(|e| e.key_bytes() == key.as_bytes())
        .last()
        .map(|e| e.value_bytes().to_vec())
}

/// Every entry of a tar archive read from `reader` (raw: long names and extended headers
/// are applied here, within their budget).
/// `spent` tells whether an error is the budget's (which the caller reports).
fn walk_tar<R: Read>(reader: R, found: &mut Findings<'_>, spent: impl Fn() -> bool) {
    let mut archive = tar::Archive::new(reader);
    let entries = match archive.entries() {
        Ok(entries) => entries.raw(true),
        Err(e) => {
            found.push(
                Severity::High,
                "archive.malformed",
                format!("not a readable tar archive: {e}"),
            );
            return;
        }
    };
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    let mut pax: Option<Vec<u8>> = None;
    // The entry read last, for a finding about what follows it.
    let mut last: Option<(String, u64)> = None;
    let mut count = 0u64;
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                if !spent() {
                    let after = match &last {
                        Some((name, size)) => {
                            format!(" after the entry {name}, whose header says {size} bytes")
                        }
                        None => String::new(),
                    };
                    found.push(
                        Severity::High,
                        "archive.malformed",
                        format!("the archive stops making sense{after}: {e}"),
                    );
                }
                return;
            }
        };
        count += 1;
        if count > MAX_ENTRIES {
            found.push(
                Severity::High,
                "archive.too-many-entries",
                format!("more than {MAX_ENTRIES} entries; the audit stopped there"),
            );
            return;
        }
        let kind = entry.header().entry_type();
        if kind.is_gnu_longname() || kind.is_gnu_longlink() || kind.is_pax_local_extensions() {
            match read_extension(&mut entry) {
                Ok(data) if kind.is_gnu_longname() => long_name = Some(data),
                Ok(data) if kind.is_gnu_longlink() => long_link = Some(data),
                Ok(data) => pax = Some(data),
                Err(e) => {
                    found.push(
                        Severity::High,
                        "archive.malformed",
                        format!("an unreadable long name or extended header: {e}"),
                    );
                    return;
                }
            }
            continue;
        }
        if kind.is_pax_global_extensions() {
            continue;
        }
        let records = pax.take();
        let pax_of = |key: &str| records.as_deref().and_then(|r| pax_value(r, key));
        let path = long_name
            .take()
            .or_else(|| pax_of("path"))
            .unwrap_or_else(|| entry.path_bytes().into_owned());
        let link = long_link
            .take()
            .or_else(|| pax_of("linkpath"))
            .or_else(|| entry.link_name_bytes().map(|l| l.into_owned()));
        let name = shown(&path);
        check_entry(found, &entry, kind, &name, &path, link.as_deref());
        last = Some((name, entry.size()));
    }
}

/// The findings about one entry: its path, its type and its mode.
fn check_entry<R: Read>(
    found: &mut Findings<'_>,
    entry: &tar::Entry<'_, R>,
    kind: tar::EntryType,
    name: &str,
    path: &[u8],
    link: Option<&[u8]>,
) {
    if let Some(problem) = path_problem(path) {
        found.push(
            Severity::Critical,
            "archive.path-traversal",
            format!("the entry {name} has {problem}: unpacking it writes outside the directory"),
        );
    }
    match kind {
        tar::EntryType::Symlink | tar::EntryType::Link => {
            let target = link.unwrap_or_default();
            let (what, depth) = if kind == tar::EntryType::Symlink {
                ("a symbolic link", parent_depth(path))
            } else {
                ("a hard link", 0)
            };
            let outside = escapes(depth, target);
            found.push(
                if outside {
                    Severity::Critical
                } else {
                    Severity::High
                },
                "archive.link",
                format!(
                    "the entry {name} is {what} to {}{}",
                    shown(target),
                    if outside {
                        ", outside the archive's directory"
                    } else {
                        ""
                    }
                ),
            );
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let what = match kind {
                tar::EntryType::Char => "a character device",
                tar::EntryType::Block => "a block device",
                _ => "a named pipe",
            };
            found.push(
                Severity::Critical,
                "archive.special-file",
                format!("the entry {name} is {what}"),
            );
        }
        _ => {}
    }
    let mode = entry.header().mode().unwrap_or(0);
    if kind != tar::EntryType::Directory && mode & 0o6000 != 0 {
        let bits = match (mode & 0o4000 != 0, mode & 0o2000 != 0) {
            (true, true) => "setuid and setgid",
            (true, false) => "setuid",
            _ => "setgid",
        };
        found.push(
            Severity::Critical,
            "archive.setuid",
            format!("the entry {name} is {bits} (mode {mode:o})"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A tar entry written header by header, so hostile names and modes survive (the
    /// builder would refuse them).
    struct Entry<'a> {
        name: &'a str,
        kind: tar::EntryType,
        mode: u32,
        link: &'a str,
        data: &'a [u8],
    }

    fn file<'a>(name: &'a str, data: &'a [u8]) -> Entry<'a> {
        Entry {
            name,
            kind: tar::EntryType::Regular,
            mode: 0o644,
            link: "",
            data,
        }
    }

    fn link<'a>(name: &'a str, kind: tar::EntryType, target: &'a str) -> Entry<'a> {
        Entry {
            name,
            kind,
            mode: 0o777,
            link: target,
            data: b"",
        }
    }

    fn tar_of(entries: &[Entry<'_>]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(e.kind);
            h.set_size(e.data.len() as u64);
            h.set_mode(e.mode);
            let raw = h.as_old_mut();
            raw.name[..e.name.len()].copy_from_slice(e.name.as_bytes());
            raw.linkname[..e.link.len()].copy_from_slice(e.link.as_bytes());
            h.set_cksum();
            tar.append(&h, e.data).unwrap();
        }
        tar.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    fn rules(findings: &[Finding]) -> Vec<(&str, Severity)> {
        findings
            .iter()
            .map(|f| (f.rule.as_str(), f.severity))
            .collect()
    }

    #[test]
    fn formats_are_sniffed_and_a_clean_archive_has_no_findings() {
        let tar = tar_of(&[file("plugin.yaml", b"name: x\n"), file("bin/x", b"\x7fELF")]);
        assert_eq!(sniff(&tar), Some(Format::Tar));
        assert_eq!(sniff(&gzip(&tar)), Some(Format::GzipTar));
        assert_eq!(sniff(&gzip(b"just text")), Some(Format::Gzip));
        assert_eq!(sniff(b"PK\x03\x04rest"), Some(Format::Zip));
        assert_eq!(sniff(b"# README\n"), None);
        assert_eq!(sniff(&[0u8; 2048]), None, "zeros are no tar header");
        assert_eq!(audit(&tar, "a.tar"), Vec::new());
        assert_eq!(audit(&gzip(&tar), "a.agora"), Vec::new());
        assert_eq!(audit(b"\x7fELF not an archive", "bin/x"), Vec::new());
        assert_eq!(
            rules(&audit(b"PK\x03\x04rest", "a.zip")),
            [("archive.not-audited", Severity::Info)]
        );
    }

    #[test]
    fn the_first_bytes_tell_whether_a_file_may_be_an_archive() {
        let tar = tar_of(&[file("plugin.yaml", b"name: x\n"), file("bin/x", b"\x7fELF")]);
        // Bytes like a module's: no gzip, zip or tar start.
        let module: Vec<u8> = (0..4096u32).map(|i| (i * 37 % 251) as u8 + 1).collect();
        let files: [&[u8]; 8] = [
            &tar,
            &gzip(&tar),
            &gzip(b"just text"),
            b"PK\x03\x04rest",
            b"# README\n",
            &[0u8; 2048],
            b"\0asm\x0d\0\x01\0",
            &module,
        ];
        for bytes in files {
            let head = &bytes[..bytes.len().min(HEAD_BYTES)];
            assert_eq!(
                may_be_archive(head),
                sniff(bytes).is_some(),
                "{:?}",
                &bytes[..bytes.len().min(8)]
            );
        }
    }

    #[test]
    fn paths_that_leave_the_directory_are_critical() {
        for name in [
            "../escape",
            "a/../../escape",
            "/etc/cron.d/x",
            "a\\..\\x",
            "C:evil",
        ] {
            let findings = audit(&gzip(&tar_of(&[file(name, b"x")])), "b.agora");
            assert_eq!(
                rules(&findings),
                [("archive.path-traversal", Severity::Critical)],
                "{name}"
            );
            assert_eq!(findings[0].location.as_deref(), Some("b.agora"));
        }
        // `..` inside a name is not a component.
        assert_eq!(audit(&tar_of(&[file("a..b/c..", b"x")]), "t"), Vec::new());
    }

    #[test]
    fn links_devices_and_setuid_entries_are_named() {
        let cases = [
            (
                link("doc/readme", tar::EntryType::Symlink, "../README.md"),
                "archive.link",
                Severity::High,
            ),
            (
                link("doc/passwd", tar::EntryType::Symlink, "../../etc/passwd"),
                "archive.link",
                Severity::Critical,
            ),
            (
                link("passwd", tar::EntryType::Symlink, "/etc/passwd"),
                "archive.link",
                Severity::Critical,
            ),
            (
                link("copy", tar::EntryType::Link, "bin/x"),
                "archive.link",
                Severity::High,
            ),
            (
                link("sub/copy", tar::EntryType::Link, "../x"),
                "archive.link",
                Severity::Critical,
            ),
            (
                link("dev", tar::EntryType::Char, ""),
                "archive.special-file",
                Severity::Critical,
            ),
            (
                link("pipe", tar::EntryType::Fifo, ""),
                "archive.special-file",
                Severity::Critical,
            ),
            (
                Entry {
                    mode: 0o4755,
                    ..file("bin/x", b"\x7fELF")
                },
                "archive.setuid",
                Severity::Critical,
            ),
            (
                Entry {
                    mode: 0o2755,
                    ..file("bin/x", b"\x7fELF")
                },
                "archive.setuid",
                Severity::Critical,
            ),
        ];
        for (entry, rule, severity) in cases {
            let name = entry.name;
            let findings = audit(&gzip(&tar_of(&[entry])), "b.agora");
            assert_eq!(rules(&findings), [(rule, severity)], "{name}");
            assert!(findings[0].message.contains(name), "{findings:?}");
        }
        let findings = audit(
            &tar_of(&[link("l", tar::EntryType::Symlink, "/etc/shadow")]),
            "t",
        );
        assert!(
            findings[0].message.contains("\"/etc/shadow\""),
            "{findings:?}"
        );
    }

    #[test]
    fn a_gzip_bomb_is_stopped_within_the_budget() {
        // 16 MiB of zeros in a tar, gzip-compressed to about 16 KiB.
        let zeros = vec![0u8; 16 * 1024 * 1024];
        let bomb = gzip(&tar_of(&[file("zeros", &zeros)]));
        assert!(bomb.len() < 1024 * 1024);
        let (findings, unpacked) = audit_counted(&bomb, "bomb.tar.gz");
        assert_eq!(
            rules(&findings),
            [("archive.bomb", Severity::Critical)],
            "{findings:?}"
        );
        let limit = (bomb.len() as u64 * MAX_RATIO).max(RATIO_FLOOR);
        assert!(unpacked <= limit + 1, "{unpacked} > {limit}");
        // The same zeros as a bare gzip stream.
        let (findings, unpacked) = audit_counted(&gzip(&zeros), "zeros.gz");
        assert_eq!(rules(&findings), [("archive.bomb", Severity::Critical)]);
        assert!(unpacked < 16 * 1024 * 1024);
        // Ordinary text compresses far less than the ratio.
        let text: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("{i} ").into_bytes())
            .collect();
        assert_eq!(audit(&gzip(&tar_of(&[file("t", &text)])), "ok"), Vec::new());
    }

    #[test]
    fn a_header_that_lies_about_its_size_is_found_by_the_bytes() {
        // The header claims 1 MiB; 10 bytes follow, then the archive ends.
        let mut tar = tar_of(&[file("plugin.yaml", b"0123456789")]);
        let mut header = tar::Header::new_gnu();
        header.as_mut_bytes().copy_from_slice(&tar[..BLOCK]);
        header.set_size(1024 * 1024);
        header.set_cksum();
        tar[..BLOCK].copy_from_slice(header.as_bytes());
        tar.truncate(BLOCK + BLOCK);
        for bytes in [tar.clone(), gzip(&tar)] {
            let findings = audit(&bytes, "lies.tar");
            assert_eq!(
                rules(&findings),
                [("archive.malformed", Severity::High)],
                "{findings:?}"
            );
            assert!(
                findings[0].message.contains("\"plugin.yaml\""),
                "{findings:?}"
            );
        }
        // A header claiming nothing while data follows: the data is read as the next
        // header, and its checksum fails.
        let mut tar = tar_of(&[file("a", &[b'x'; 600])]);
        let mut header = tar::Header::new_gnu();
        header.as_mut_bytes().copy_from_slice(&tar[..BLOCK]);
        header.set_size(0);
        header.set_cksum();
        tar[..BLOCK].copy_from_slice(header.as_bytes());
        assert_eq!(
            rules(&audit(&tar, "lies.tar")),
            [("archive.malformed", Severity::High)]
        );
    }

    #[test]
    fn long_names_are_read_within_their_budget_and_checked() {
        // A GNU long name that escapes, as the tar builder writes it for long paths.
        let long = format!("{}/../../escape", "d".repeat(120));
        let mut builder = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        builder
            .append_data(&mut h, "placeholder", &b"x"[..])
            .unwrap();
        let mut tar = builder.into_inner().unwrap();
        // Prepend a GNU long-name entry for the next header.
        let mut ln = tar::Header::new_gnu();
        ln.set_entry_type(tar::EntryType::GNULongName);
        ln.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        ln.set_size(long.len() as u64 + 1);
        ln.set_cksum();
        let mut data = long.clone().into_bytes();
        data.push(0);
        data.resize(data.len().div_ceil(BLOCK) * BLOCK, 0);
        let mut with_long = ln.as_bytes().to_vec();
        with_long.extend_from_slice(&data);
        with_long.extend_from_slice(&tar);
        tar = with_long;
        let findings = audit(&tar, "t");
        assert_eq!(
            rules(&findings),
            [("archive.path-traversal", Severity::Critical)]
        );
        assert!(findings[0].message.contains("escape"), "{findings:?}");
        // A long name larger than the budget is not read.
        let mut huge = tar::Header::new_gnu();
        huge.set_entry_type(tar::EntryType::GNULongName);
        huge.set_size(MAX_HEADER_EXTENSION + 1);
        huge.set_cksum();
        let mut tar = huge.as_bytes().to_vec();
        tar.resize(BLOCK + (MAX_HEADER_EXTENSION as usize + BLOCK), 0);
        assert_eq!(
            rules(&audit(&tar, "t")),
            [("archive.malformed", Severity::High)]
        );
    }

    #[test]
    fn findings_are_capped() {
        let names: Vec<String> = (0..MAX_FINDINGS + 10).map(|i| format!("../{i}")).collect();
        let entries: Vec<Entry<'_>> = names.iter().map(|n| file(n, b"")).collect();
        let findings = audit(&tar_of(&entries), "t");
        assert_eq!(findings.len(), MAX_FINDINGS + 1);
        assert_eq!(findings[MAX_FINDINGS].rule, "archive.more-findings");
        assert_eq!(findings[MAX_FINDINGS].severity, Severity::Critical);
    }
}
