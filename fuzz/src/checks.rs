//! What each fuzz target checks, one function per target: bytes in, a panic when a parser
//! panics or a property fails. The fuzz targets (`fuzz_targets/`) call these, and the
//! main workspace's regression test (`crates/agora/tests/fuzz_regressions.rs`) runs every
//! input under `fuzz/regressions/TARGET/` through the same function with stable Rust, so
//! a crash once found fails the ordinary test suite if it comes back.
//!
//! Inputs that carry more than one value split them the same way here for both: a first
//! byte of flags, or eight little-endian bytes of a size, then the rest.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A target's check: a panic is a finding.
pub type Check = fn(&[u8]);

/// Every target: its name (the fuzz binary, the regressions directory) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("manifest", manifest),
    ("policy", policy),
    ("checkpoint", checkpoint),
    ("log_entry", log_entry),
    ("dsse_envelope", dsse_envelope),
    ("osv", osv),
    ("oci_manifest", oci_manifest),
    ("public_key", public_key),
    ("bundle", bundle),
    ("archive_audit", archive_audit),
    ("oci_layer", oci_layer),
    ("oci_image", oci_image),
    ("binary_audit", binary_audit),
    ("sbom", sbom),
    ("cursor", cursor),
    ("range", range),
    ("webhook_url", webhook_url),
    ("forwarded_for", forwarded_for),
];

/// `plugin.yaml` as a publisher sends it: whatever parses survives a round trip through
/// its JSON form.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(manifest) = agora_core::Manifest::from_yaml(text) {
        let _ = manifest.parsed_dependencies();
        let json = serde_json::to_string(&manifest).expect("a parsed manifest serializes");
        let again: agora_core::Manifest = serde_json::from_str(&json).expect("its JSON reads back");
        assert_eq!(again, manifest);
    }
    let _ = agora_core::Manifest::from_yaml_to_publish(text);
}

/// A host policy file (TOML), host rules and OCI image references.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = agora_core::policy::HostPolicy::from_toml(text);
    for line in text.lines().take(64) {
        let _ = agora_core::policy::HostRule::parse(line);
        let _ = agora_core::policy::ImageRef::parse(line);
    }
}

/// One log key for the whole run, and a genuine checkpoint note signed with it.
fn log_key() -> &'static (String, String) {
    static KEY: OnceLock<(String, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let (signer, verifier) = agora_trust::generate_log_key("fuzz.example/log");
        let mut log = agora_trust::MerkleLog::default();
        log.append(agora_trust::LogEntry::leaf_of("{}"));
        let checkpoint = agora_trust::Checkpoint {
            origin: "fuzz.example/log".to_owned(),
            head: log.head(),
        };
        let note = checkpoint.sign(&signer).expect("a fresh key signs");
        (verifier, note)
    })
}

/// A signed checkpoint from a registry: whatever opens with the log's key after the
/// genuine note is followed by anything is the genuine checkpoint.
pub fn checkpoint(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (verifier, note) = log_key();
    let _ = agora_trust::Checkpoint::open(text, verifier);
    let mixed = format!("{note}{text}");
    if let Ok(opened) = agora_trust::Checkpoint::open(&mixed, verifier) {
        let genuine = agora_trust::Checkpoint::open(note, verifier).expect("genuine opens");
        assert_eq!(opened.head, genuine.head);
    }
}

/// A transparency log entry and a sealed entry's opening: a parsed entry's JSON reads back.
pub fn log_entry(data: &[u8]) {
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
}

/// A release's DSSE envelope: with no key, nothing verifies.
pub fn dsse_envelope(data: &[u8]) {
    let Ok(envelope) = serde_json::from_slice::<agora_trust::release::Envelope>(data) else {
        return;
    };
    let claim = agora_trust::release::ReleaseClaim::new(
        "acme",
        "tool",
        "1.0.0",
        agora_core::Digest::of(b"plugin.yaml"),
        [("plugin.wasm".to_owned(), agora_core::Digest::of(b"module"))],
    );
    assert!(agora_trust::release::verify_release(&envelope, &[], &claim).is_err());
}

/// An OSV advisory record from a feed.
pub fn osv(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(advisory) = agora_core::advisory::Advisory::from_json(value) {
        let _ = format!("{advisory:?}");
    }
}

/// A pushed OCI manifest under each content type; repository names, references, digests
/// from `/v2/` paths.
pub fn oci_manifest(data: &[u8]) {
    for content_type in [
        None,
        Some("application/vnd.oci.image.manifest.v1+json"),
        Some("application/vnd.oci.image.index.v1+json"),
        Some("application/vnd.docker.distribution.manifest.v2+json"),
    ] {
        let _ = agora_core::oci::check_manifest(data, content_type);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = agora_core::oci::Repository::parse(text);
        let _ = agora_core::oci::Reference::parse(text);
        let _ = agora_core::oci::parse_digest(text);
    }
}

/// A publisher's public key (OpenSSH or armored OpenPGP).
pub fn public_key(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = agora_trust::PublicKey::parse(text) {
        let _ = key.id();
    }
}

/// `bytes` gzip-compressed (bundles and layers are read through gzip; fuzzing the tar
/// inside needs its CRC right).
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// An archive input's bytes: after a first byte of flags, the rest as is (bit 0 set) or
/// gzipped (clear).
fn archive_bytes(data: &[u8]) -> Option<Vec<u8>> {
    let (&flags, rest) = data.split_first()?;
    Some(if flags & 1 == 1 {
        rest.to_vec()
    } else {
        gzip(rest)
    })
}

/// Every path under `dir`, relative, sorted (symbolic links not followed).
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("a directory just written reads") {
            let path = entry.expect("a directory entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("an entry just listed");
            if meta.is_dir() {
                stack.push(path.clone());
            }
            found.push(path.strip_prefix(dir).expect("under dir").to_path_buf());
        }
    }
    found.sort();
    found
}

/// Nothing under `top` but `inside` (and what is under it) and the `also` paths: what an
/// unpack wrote stayed inside its directory.
fn assert_contained(top: &Path, inside: &Path, also: &[&str]) {
    let inside = inside.strip_prefix(top).expect("inside is under top");
    for path in tree(top) {
        let ok = path.starts_with(inside)
            || inside.starts_with(&path)
            || also.iter().any(|a| path == Path::new(a));
        assert!(
            ok,
            "{} was written outside the unpack directory",
            path.display()
        );
    }
}

/// A release bundle as `agora publish --bundle` or a mirror reads it (first byte: bit 0
/// set, the rest is the `.agora` file as is; clear, the rest is the tar and is gzipped
/// first). Nothing is written outside the destination, nothing there is a link or
/// carries a setuid or setgid bit, an accepted bundle's files are all there with the
/// digests it reports, and the registry's archive audit finds no path, link, special
/// file or setuid trick in a bundle the client accepted.
pub fn bundle(data: &[u8]) {
    let Some(bytes) = archive_bytes(data) else {
        return;
    };
    let top = tempfile::tempdir().expect("a temporary directory");
    let file = top.path().join("in.agora");
    std::fs::write(&file, &bytes).expect("the bundle is written");
    // Two levels down, so a `../..` escape would land inside `top` and be seen.
    let dest = top.path().join("a/b/dest");
    std::fs::create_dir_all(&dest).expect("the destination is created");
    let result = agora_client::ReleaseFiles::from_bundle(&file, &dest);
    assert_contained(top.path(), &dest, &["in.agora"]);
    for path in tree(&dest) {
        let meta = std::fs::symlink_metadata(dest.join(&path)).expect("listed");
        assert!(
            meta.is_dir() || meta.is_file(),
            "{} is neither a file nor a directory",
            path.display()
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            meta.permissions().mode() & agora_client::bundle::SETID_BITS,
            0,
            "{} is setuid or setgid",
            path.display()
        );
    }
    if let Ok(release) = result {
        for f in &release.files {
            assert!(
                f.source.starts_with(&dest),
                "{} is outside",
                f.source.display()
            );
            let content = std::fs::read(&f.source).expect("an accepted file exists");
            assert_eq!(agora_core::Digest::of(&content), f.digest);
            assert_eq!(content.len() as u64, f.size);
        }
        let tricks = [
            "archive.path-traversal",
            "archive.link",
            "archive.special-file",
            "archive.setuid",
        ];
        for finding in agora_registry::archive_audit::audit(&bytes, "in.agora") {
            assert!(
                !tricks.contains(&finding.rule.as_str()),
                "the client accepted a bundle the audit refuses: {finding:?}"
            );
        }
    }
}

/// The registry's archive audit of a release file: nothing found in what is no archive,
/// at most `MAX_FINDINGS` listed plus one that counts the rest, each at its location.
/// First byte: bit 0 set, the rest as is; clear, gzipped first.
pub fn archive_audit(data: &[u8]) {
    use agora_registry::archive_audit::{MAX_FINDINGS, audit, sniff};
    let Some(bytes) = archive_bytes(data) else {
        return;
    };
    let findings = audit(&bytes, "file.tar");
    if sniff(&bytes).is_none() {
        assert!(findings.is_empty(), "findings in no archive: {findings:?}");
    }
    assert!(
        findings.len() <= MAX_FINDINGS + 1,
        "{} findings",
        findings.len()
    );
    for f in &findings {
        assert_eq!(f.location.as_deref(), Some("file.tar"));
    }
}

/// One or two OCI layers unpacked into a root filesystem as the runner does. First byte:
/// bit 0 set, each layer as is; clear, gzipped first; bit 1 set, the rest is two layers
/// split at the 512-byte block nearest its middle. Nothing is written outside the root,
/// and nothing in it is a device, a FIFO, setuid, setgid, sticky or writable by group or
/// others.
pub fn oci_layer(data: &[u8]) {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let layers: Vec<&[u8]> = if flags & 2 == 2 {
        let (lower, upper) = rest.split_at(rest.len() / 2 / 512 * 512);
        vec![lower, upper]
    } else {
        vec![rest]
    };
    let top = tempfile::tempdir().expect("a temporary directory");
    let root = top.path().join("a/b/rootfs");
    let limits = agora_oci::unpack::UnpackLimits {
        max_entries: 1000,
        max_bytes: 16 << 20,
    };
    let mut unpacker = agora_oci::unpack::Unpacker::new(&root, limits).expect("the root");
    for layer in layers {
        let bytes = if flags & 1 == 1 {
            layer.to_vec()
        } else {
            gzip(layer)
        };
        if unpacker.layer(bytes.as_slice()).is_err() {
            break;
        }
    }
    let report = unpacker.report();
    assert!(report.entries <= limits.max_entries + 1);
    assert_contained(top.path(), &root, &[]);
    for path in tree(&root) {
        let meta = std::fs::symlink_metadata(root.join(&path)).expect("listed");
        let kind = meta.file_type();
        assert!(
            !(kind.is_block_device()
                || kind.is_char_device()
                || kind.is_fifo()
                || kind.is_socket()),
            "{} is a special file",
            path.display()
        );
        if !kind.is_symlink() {
            let mode = meta.permissions().mode();
            assert_eq!(mode & 0o7022, 0, "{} has mode {mode:o}", path.display());
        }
    }
}

/// An image manifest or index and an image config as a remote registry serves them to
/// the OCI puller and the registry's image audit: every descriptor of a parsed manifest
/// names a `sha256:` digest, and the platform chosen from an index is `linux/amd64`.
pub fn oci_image(data: &[u8]) {
    use agora_oci::manifest::{Parsed, choose_platform, parse};
    match parse(data) {
        Ok(Parsed::Image { config, layers }) => {
            for d in std::iter::once(&config).chain(&layers) {
                assert!(d.digest.starts_with("sha256:"), "{}", d.digest);
            }
        }
        Ok(Parsed::Index(entries)) => {
            if let Ok(chosen) = choose_platform(&entries) {
                let platform = chosen.platform.as_ref().expect("a chosen platform");
                assert_eq!(
                    (platform.os.as_str(), platform.architecture.as_str()),
                    ("linux", "amd64")
                );
            }
        }
        Err(_) => {}
    }
    if let Ok(config) = serde_json::from_slice::<agora_oci::ImageConfig>(data) {
        let _ = agora_registry::image_audit::config_findings(Some(&config));
    }
}

/// A release's native executable and WebAssembly component through the registry's ELF
/// and WASM audits: every finding names the file.
pub fn binary_audit(data: &[u8]) {
    let elf = agora_registry::elf_audit::audit(data, "linux-x86_64", "bin/tool");
    let capabilities = ["outbound_http".to_owned()];
    let wasm = agora_registry::wasm_audit::audit(data, &capabilities, "plugin.wasm");
    for f in &elf {
        assert_eq!(f.location.as_deref(), Some("bin/tool"));
    }
    for f in &wasm {
        assert_eq!(f.location.as_deref(), Some("plugin.wasm"));
    }
}

/// A release's SBOM (CycloneDX or SPDX JSON): what reads lists at most `MAX_COMPONENTS`,
/// each with a version and the package URL it came from.
pub fn sbom(data: &[u8]) {
    use agora_registry::sbom::{MAX_COMPONENTS, parse};
    if let Ok(sbom) = parse(data) {
        assert!(sbom.components.len() + sbom.unidentified <= MAX_COMPONENTS);
        assert!(sbom.format.starts_with("CycloneDX ") || sbom.format == "SPDX-2.3");
        for c in &sbom.components {
            assert!(!c.version.is_empty(), "{c:?}");
            assert!(!c.purl.is_empty(), "{c:?}");
        }
    }
}

/// Page cursors from `?cursor=`: the catalog's (one per sort) and the review queue's
/// (one per outcome). A cursor reads under at most one sort (or outcome), and what it
/// reads as is encoded back to a cursor that reads the same.
pub fn cursor(data: &[u8]) {
    use agora_core::search::SearchSort;
    use agora_core::verification::Outcome;
    use agora_registry::catalog::cursor::{decode, encode};
    use agora_registry::review_queue::{decode_cursor, encode_cursor};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut accepted = 0;
    for sort in [
        SearchSort::Relevance,
        SearchSort::Downloads,
        SearchSort::Recent,
        SearchSort::Name,
        SearchSort::Rating,
    ] {
        if let Ok(c) = decode(text, sort) {
            accepted += 1;
            let again = encode(&c);
            // Numbers come back in their shortest form, which may lengthen a cursor past
            // what is read; the server's own cursors are far shorter.
            if again.len() <= 256 {
                assert_eq!(decode(&again, sort).ok(), Some(c), "{again}");
            }
        }
    }
    assert!(accepted <= 1, "{text:?} reads under {accepted} sorts");
    let mut accepted = 0;
    for outcome in [Outcome::Verified, Outcome::NeedsReview, Outcome::Rejected] {
        if let Ok(id) = decode_cursor(text, outcome) {
            accepted += 1;
            assert_eq!(
                decode_cursor(&encode_cursor(outcome, id), outcome).ok(),
                Some(id)
            );
        }
    }
    assert!(accepted <= 1, "{text:?} reads under {accepted} outcomes");
}

/// A `Range` header on a blob download, and an OCI chunk's `Content-Range`. The first
/// eight bytes are the blob's size (little-endian), the rest the header's value. A range
/// is never empty and never reaches past the blob, and the range it resolves to, written
/// back, resolves the same; a chunk's range runs forwards.
pub fn range(data: &[u8]) {
    use agora_server::parsers::{Wanted, content_range, parse_range};
    use axum::http::{HeaderMap, HeaderValue, header};
    let Some((size, value)) = data.split_first_chunk::<8>() else {
        return;
    };
    let size = u64::from_le_bytes(*size);
    let Ok(value) = HeaderValue::from_bytes(value) else {
        return;
    };
    let wanted = parse_range(Some(&value), size);
    if let Wanted::Range { start, len } = wanted {
        assert!(len >= 1, "an empty range");
        let end = start.checked_add(len).expect("start + len overflows");
        assert!(end <= size, "{start}+{len} is past {size}");
        let again =
            HeaderValue::from_str(&format!("bytes={start}-{}", end - 1)).expect("a range header");
        assert_eq!(parse_range(Some(&again), size), wanted);
    }
    if size == 0 {
        assert!(
            !matches!(wanted, Wanted::Range { .. }),
            "a range of an empty blob"
        );
    }
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_RANGE, value);
    if let Ok(Some((first, last))) = content_range(&headers) {
        assert!(first <= last, "{first}-{last}");
    }
}

/// A webhook URL a publisher registers: an accepted URL is http or https, carries no
/// credentials, names a host that is no internal address (private addresses not
/// allowed), and is accepted again as the parser wrote it back.
pub fn webhook_url(data: &[u8]) {
    use agora_registry::webhooks::{MAX_URL_CHARS, check_url};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = check_url(text, true);
    let Ok(url) = check_url(text, false) else {
        return;
    };
    assert!(matches!(url.scheme(), "http" | "https"), "{url}");
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "{url}"
    );
    let host = url.host_str().expect("an accepted URL has a host");
    assert!(!host.eq_ignore_ascii_case("localhost"), "{url}");
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        assert!(!agora_core::net::is_internal(ip), "{url}");
    }
    if url.as_str().chars().count() <= MAX_URL_CHARS {
        let again = check_url(url.as_str(), false).expect("accepted as written back");
        assert_eq!(again, url);
    }
}

/// `X-Forwarded-For` from behind a trusted proxy: the client is the peer itself when the
/// peer is not trusted, else the peer or an address the header names.
pub fn forwarded_for(data: &[u8]) {
    use agora_server::client::TrustedProxies;
    use axum::http::{HeaderMap, HeaderValue};
    use std::net::IpAddr;
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let proxies = TrustedProxies::parse(&["10.0.0.0/8", "fd00::/8"]).expect("networks");
    let mut headers = HeaderMap::new();
    headers.append("x-forwarded-for", value);
    let outsider: IpAddr = "192.0.2.7".parse().expect("an address");
    assert_eq!(proxies.client(outsider, &headers), outsider);
    let proxy: IpAddr = "10.1.2.3".parse().expect("an address");
    let client = proxies.client(proxy, &headers);
    if client != proxy {
        let text = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let named = text.split(',').map(str::trim).any(|hop| {
            let hop = hop
                .parse::<IpAddr>()
                .ok()
                .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()));
            hop.is_some_and(|ip| {
                ip == client
                    || matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().map(IpAddr::V4) == Some(client))
            })
        });
        assert!(named, "{client} is not in {text:?}");
    }
}
