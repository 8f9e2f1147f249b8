//! Each trick a hostile layer could try, with tar bytes built by hand (the `tar` crate's
//! own builder refuses most of these paths, so the headers are written raw).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use super::*;

/// One raw tar entry.
fn entry(kind: tar::EntryType, path: &str, data: &[u8], link: &str, mode: u32) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    {
        let old = header.as_old_mut();
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn file(path: &str, data: &[u8]) -> Vec<u8> {
    entry(tar::EntryType::Regular, path, data, "", 0o644)
}

fn dir(path: &str) -> Vec<u8> {
    entry(tar::EntryType::Directory, path, b"", "", 0o755)
}

fn symlink(path: &str, target: &str) -> Vec<u8> {
    entry(tar::EntryType::Symlink, path, b"", target, 0o777)
}

fn hardlink(path: &str, target: &str) -> Vec<u8> {
    entry(tar::EntryType::Link, path, b"", target, 0o644)
}

fn tar(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = entries.concat();
    out.extend_from_slice(&[0; 1024]);
    out
}

struct Root {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn root() -> Root {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"host").unwrap();
    Root {
        _dir: dir,
        root,
        outside,
    }
}

fn apply(root: &Path, layers: &[Vec<u8>]) -> Result<UnpackReport, OciError> {
    let mut unpacker = Unpacker::new(root, UnpackLimits::default())?;
    for layer in layers {
        unpacker.layer(layer.as_slice())?;
    }
    Ok(unpacker.report().clone())
}

fn refused(root: &Path, layers: &[Vec<u8>], says: &str) {
    match apply(root, layers) {
        Err(OciError::Unpack(message)) => assert!(message.contains(says), "{message}"),
        other => panic!("expected a refusal saying `{says}`, got {other:?}"),
    }
}

#[test]
fn files_directories_links_are_written_with_modes_stripped() {
    let r = root();
    let layer = tar(&[
        dir("./bin/"),
        entry(tar::EntryType::Regular, "bin/tool", b"run", "", 0o6777),
        file("etc/conf", b"x"),
        symlink("bin/sh", "/bin/tool"),
        hardlink("bin/tool2", "bin/tool"),
    ]);
    let report = apply(&r.root, &[layer]).unwrap();
    assert_eq!(report.entries, 5);
    let mode = |p: &str| {
        fs::symlink_metadata(r.root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(
        mode("bin/tool"),
        0o755,
        "setuid, setgid and group/other write stripped"
    );
    assert_eq!(mode("etc/conf"), 0o644);
    assert_eq!(mode("etc"), 0o755);
    assert_eq!(
        fs::read_link(r.root.join("bin/sh")).unwrap(),
        Path::new("/bin/tool")
    );
    assert_eq!(fs::read(r.root.join("bin/tool2")).unwrap(), b"run");
}

#[test]
fn a_gzip_layer_is_unpacked() {
    let r = root();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar(&[file("a", b"gz")])).unwrap();
    apply(&r.root, &[gz.finish().unwrap()]).unwrap();
    assert_eq!(fs::read(r.root.join("a")).unwrap(), b"gz");
}

#[test]
fn absolute_paths_are_refused() {
    let r = root();
    let target = format!("{}/planted", r.outside.display());
    refused(&r.root, &[tar(&[file(&target, b"x")])], "absolute path");
    assert!(!r.outside.join("planted").exists());
}

#[test]
fn parent_components_are_refused() {
    let r = root();
    refused(
        &r.root,
        &[tar(&[file("a/../../outside/planted", b"x")])],
        "climbs out",
    );
    refused(&r.root, &[tar(&[file("../planted", b"x")])], "climbs out");
    assert!(!r.outside.join("planted").exists());
}

#[test]
fn an_entry_through_a_symlink_of_the_same_layer_is_refused() {
    let r = root();
    let outside = r.outside.display().to_string();
    refused(
        &r.root,
        &[tar(&[
            symlink("escape", &outside),
            file("escape/planted", b"x"),
        ])],
        "through the symlink `escape`",
    );
    assert!(!r.outside.join("planted").exists());
}

#[test]
fn an_entry_through_a_symlink_of_a_lower_layer_is_refused() {
    let r = root();
    let lower = tar(&[dir("etc/"), symlink("etc/d", "../../outside")]);
    let upper = tar(&[file("etc/d/planted", b"x")]);
    refused(&r.root, &[lower, upper], "through the symlink `etc/d`");
    assert!(!r.outside.join("planted").exists());
}

#[test]
fn a_file_over_a_symlink_replaces_the_link_and_never_writes_through_it() {
    let r = root();
    let secret = r.outside.join("secret");
    let lower = tar(&[symlink("f", &secret.display().to_string())]);
    let upper = tar(&[file("f", b"mine")]);
    apply(&r.root, &[lower, upper]).unwrap();
    assert_eq!(fs::read(&secret).unwrap(), b"host");
    let meta = fs::symlink_metadata(r.root.join("f")).unwrap();
    assert!(meta.is_file());
    assert_eq!(fs::read(r.root.join("f")).unwrap(), b"mine");
}

#[test]
fn hardlinks_out_of_the_root_or_to_links_are_refused() {
    let r = root();
    let secret = r.outside.join("secret").display().to_string();
    refused(&r.root, &[tar(&[hardlink("h", &secret)])], "absolute path");
    refused(
        &r.root,
        &[tar(&[hardlink("h", "../outside/secret")])],
        "climbs out",
    );
    refused(
        &r.root,
        &[tar(&[symlink("s", &secret), hardlink("h", "s")])],
        "not a regular file inside the root",
    );
    refused(
        &r.root,
        &[tar(&[
            symlink("d", &r.outside.display().to_string()),
            hardlink("h", "d/secret"),
        ])],
        "through the symlink `d`",
    );
    refused(
        &r.root,
        &[tar(&[hardlink("h", "missing")])],
        "not a regular file",
    );
}

#[test]
fn devices_and_fifos_are_skipped() {
    let r = root();
    let report = apply(
        &r.root,
        &[tar(&[
            entry(tar::EntryType::Char, "dev/null", b"", "", 0o666),
            entry(tar::EntryType::Block, "dev/sda", b"", "", 0o660),
            entry(tar::EntryType::Fifo, "run/pipe", b"", "", 0o600),
            file("ok", b"x"),
        ])],
    )
    .unwrap();
    assert_eq!(report.skipped, ["dev/null", "dev/sda", "run/pipe"]);
    assert!(!r.root.join("dev/null").exists());
    assert!(!r.root.join("run/pipe").exists());
}

#[test]
fn whiteouts_remove_what_lower_layers_wrote() {
    let r = root();
    let lower = tar(&[
        file("a/x", b"1"),
        file("a/y", b"2"),
        file("b/z", b"3"),
        file("c", b"4"),
    ]);
    let upper = tar(&[file("a/.wh.x", b""), file(".wh.b", b""), file(".wh.c", b"")]);
    apply(&r.root, &[lower, upper]).unwrap();
    assert!(!r.root.join("a/x").exists());
    assert!(r.root.join("a/y").exists());
    assert!(!r.root.join("b").exists());
    assert!(!r.root.join("c").exists());
    assert!(
        !r.root.join("a/.wh.x").exists(),
        "a whiteout is never written"
    );
    refused(&r.root, &[tar(&[file("a/.wh...", b"")])], "not a whiteout");
}

#[test]
fn an_opaque_whiteout_empties_the_directory_of_lower_layers_only() {
    let r = root();
    let lower = tar(&[file("d/old", b"1"), file("d/sub/old", b"2")]);
    let upper = tar(&[
        file("d/new", b"3"),
        file("d/.wh..wh..opq", b""),
        file("d/later", b"4"),
    ]);
    apply(&r.root, &[lower, upper]).unwrap();
    assert!(!r.root.join("d/old").exists());
    assert!(!r.root.join("d/sub").exists());
    assert!(
        r.root.join("d/new").exists(),
        "written by the same layer before the marker"
    );
    assert!(r.root.join("d/later").exists());
}

#[test]
fn entry_and_byte_budgets_are_enforced() {
    let r = root();
    let mut unpacker = Unpacker::new(
        &r.root,
        UnpackLimits {
            max_entries: 2,
            max_bytes: u64::MAX,
        },
    )
    .unwrap();
    let err = unpacker
        .layer(tar(&[file("a", b""), file("b", b""), file("c", b"")]).as_slice())
        .unwrap_err();
    assert!(err.to_string().contains("MAX_ENTRIES"), "{err}");

    // A compression bomb: 8 MiB of zeros in a few KiB of gzip.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar(&[file("big", &vec![0; 8 << 20])]))
        .unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 64 * 1024);
    let mut unpacker = Unpacker::new(
        &r.root,
        UnpackLimits {
            max_entries: 10,
            max_bytes: 1 << 20,
        },
    )
    .unwrap();
    let err = unpacker.layer(bomb.as_slice()).unwrap_err();
    assert!(err.to_string().contains("MAX_UNPACKED_BYTES"), "{err}");
}

#[test]
fn zstd_and_sparse_entries_are_refused() {
    let r = root();
    let zstd = [0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0].to_vec();
    refused(&r.root, &[zstd], "zstd");
    // The tar reader already refuses a GNU sparse header without its map; either way it
    // is refused and nothing is written.
    let sparse = tar(&[entry(tar::EntryType::GNUSparse, "s", b"", "", 0o644)]);
    assert!(matches!(
        apply(&r.root, &[sparse]),
        Err(OciError::Unpack(_))
    ));
    assert!(!r.root.join("s").exists());
}

#[test]
fn a_file_where_a_directory_is_needed_is_refused() {
    let r = root();
    refused(
        &r.root,
        &[tar(&[file("a", b"x"), file("a/b", b"y")])],
        "`a` is not a directory",
    );
}
