//! The blob store's specification, run against the filesystem store, the
//! object_store-backed store in memory, and the same against a real S3-compatible
//! server at `AGORA_TEST_S3_ENDPOINT` (scripts/test starts the moto server when it is
//! unset; without one these tests fail, never skip).

use std::sync::Arc;

use agora_core::Digest;
use agora_store::*;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};

fn body(chunks: Vec<&'static [u8]>) -> ByteStream {
    stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c)))).boxed()
}

fn cut_off(chunks: Vec<&'static [u8]>) -> ByteStream {
    let items = chunks.into_iter().map(|c| Ok(Bytes::from_static(c)));
    let failure = std::iter::once(Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "client went away",
    )));
    stream::iter(items.chain(failure)).boxed()
}

async fn read_all(store: &dyn BlobStore, digest: &Digest, offset: u64, len: u64) -> Vec<u8> {
    let blob = store.get(digest, offset, len).await.unwrap().unwrap();
    let chunks: Vec<Bytes> = blob.body.try_collect().await.unwrap();
    chunks.concat()
}

async fn stores_streams_and_dedups(store: &dyn BlobStore) {
    let digest = Digest::of(b"hello world");
    let (outcome, size) = store
        .put(&digest, body(vec![b"hello ", b"world"]), 1024)
        .await
        .unwrap();
    assert_eq!((outcome, size), (PutOutcome::Created, 11));
    // Stored already: the body is still read to its end and must be the digest's bytes
    // (a digest alone claims nothing); nothing is written either way.
    let (outcome, size) = store
        .put(&digest, body(vec![b"hello", b" world"]), 1024)
        .await
        .unwrap();
    assert_eq!((outcome, size), (PutOutcome::AlreadyPresent, 11));
    let read_to_end = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = read_to_end.clone();
    let watched: ByteStream = Box::pin(body(vec![b"hello ", b"world"]).chain(
        futures_util::stream::once(async move {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(Bytes::new())
        }),
    ));
    store.put(&digest, watched, 1024).await.unwrap();
    assert!(read_to_end.load(std::sync::atomic::Ordering::SeqCst));
    assert!(matches!(
        store.put(&digest, body(vec![b"not the bytes"]), 1024).await,
        Err(BlobError::DigestMismatch { .. })
    ));
    assert!(matches!(
        store.put(&digest, body(vec![b"hello world"]), 4).await,
        Err(BlobError::TooLarge { limit: 4 })
    ));
    assert_eq!(store.size(&digest).await.unwrap(), Some(11));
    assert_eq!(read_all(store, &digest, 0, 11).await, b"hello world");
    let whole = store.get_whole(&digest).await.unwrap().unwrap();
    assert_eq!((whole.size, whole.offset, whole.len), (11, 0, 11));
    let chunks: Vec<Bytes> = whole.body.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), b"hello world");
    assert!(
        store
            .get_whole(&Digest::of(b"absent"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(read_all(store, &digest, 6, 5).await, b"world");
    assert!(matches!(
        store.get(&digest, 6, 6).await,
        Err(BlobError::RangeNotSatisfiable { size: 11 })
    ));
    store.delete(&digest).await.unwrap();
    assert_eq!(store.size(&digest).await.unwrap(), None);
    assert!(store.get(&digest, 0, 0).await.unwrap().is_none());
    store.check().await.unwrap();
}

async fn wrong_content_leaves_nothing(store: &dyn BlobStore) {
    let claimed = Digest::of(b"what was promised");
    let err = store
        .put(&claimed, body(vec![b"something else"]), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::DigestMismatch { .. }), "{err}");
    assert_eq!(store.size(&claimed).await.unwrap(), None);
}

async fn interrupted_upload_leaves_nothing(store: &dyn BlobStore) {
    let digest = Digest::of(b"complete content");
    let err = store
        .put(&digest, cut_off(vec![b"complete "]), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::Interrupted(_)), "{err}");
    assert_eq!(store.size(&digest).await.unwrap(), None);
}

async fn oversize_upload_is_refused(store: &dyn BlobStore) {
    let digest = Digest::of(b"0123456789");
    let err = store
        .put(&digest, body(vec![b"01234", b"56789"]), 8)
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::TooLarge { limit: 8 }), "{err}");
    assert_eq!(store.size(&digest).await.unwrap(), None);
}

/// A blob of `len` pseudo-random bytes (incompressible, distinct per `seed`).
fn big(len: usize, seed: u8) -> Bytes {
    let mut state = u64::from(seed) + 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// `bytes` in chunks of 1 MiB, as a client sends them.
fn chunked(bytes: Bytes) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = (0..bytes.len())
        .step_by(1 << 20)
        .map(|at| Ok(bytes.slice(at..bytes.len().min(at + (1 << 20)))))
        .collect();
    stream::iter(chunks).boxed()
}

/// Larger than one part (8 MiB), so object stores take the multipart path.
const MULTIPART: usize = 9 * 1024 * 1024 + 123;

async fn large_blobs_go_up_in_parts_and_read_back(store: &dyn BlobStore) {
    let bytes = big(MULTIPART, 1);
    let digest = Digest::of(&bytes);
    let (outcome, size) = store
        .put(&digest, chunked(bytes.clone()), 64 << 20)
        .await
        .unwrap();
    assert_eq!((outcome, size), (PutOutcome::Created, MULTIPART as u64));
    assert_eq!(store.size(&digest).await.unwrap(), Some(MULTIPART as u64));
    assert_eq!(
        read_all(store, &digest, 0, MULTIPART as u64).await,
        bytes.as_ref()
    );
    let tail = read_all(store, &digest, (MULTIPART - 200) as u64, 200).await;
    assert_eq!(tail, bytes[MULTIPART - 200..]);
}

async fn a_large_upload_cut_off_or_wrong_leaves_nothing(store: &dyn BlobStore) {
    let bytes = big(MULTIPART, 2);
    let digest = Digest::of(&bytes);
    // Cut off after more than one part went up.
    let first = bytes.slice(..MULTIPART - 1000);
    let cut: ByteStream = chunked(first)
        .chain(stream::iter([Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        ))]))
        .boxed();
    let err = store.put(&digest, cut, 64 << 20).await.unwrap_err();
    assert!(matches!(err, BlobError::Interrupted(_)), "{err}");
    assert_eq!(store.size(&digest).await.unwrap(), None);
    // Every byte sent, but not the bytes promised.
    let mut other = bytes.to_vec();
    other[MULTIPART - 1] ^= 1;
    let err = store
        .put(&digest, chunked(other.into()), 64 << 20)
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::DigestMismatch { .. }), "{err}");
    assert_eq!(store.size(&digest).await.unwrap(), None);
    // Over the limit part-way through.
    let err = store
        .put(&digest, chunked(bytes.clone()), 9 << 20)
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::TooLarge { .. }), "{err}");
    assert_eq!(store.size(&digest).await.unwrap(), None);
    assert!(store.list(None, 10).await.unwrap().is_empty());
}

async fn concurrent_uploads_of_one_blob_both_succeed(store: &dyn BlobStore) {
    let bytes = big(MULTIPART, 3);
    let digest = Digest::of(&bytes);
    let small = Bytes::from_static(b"small and concurrent");
    let small_digest = Digest::of(&small);
    let (a, b, c, d) = tokio::join!(
        store.put(&digest, chunked(bytes.clone()), 64 << 20),
        store.put(&digest, chunked(bytes.clone()), 64 << 20),
        store.put(&small_digest, chunked(small.clone()), 1024),
        store.put(&small_digest, chunked(small.clone()), 1024),
    );
    for outcome in [a, b] {
        assert_eq!(outcome.unwrap().1, MULTIPART as u64);
    }
    for outcome in [c, d] {
        assert_eq!(outcome.unwrap().1, small.len() as u64);
    }
    assert_eq!(
        read_all(store, &digest, 0, MULTIPART as u64).await,
        bytes.as_ref()
    );
    assert_eq!(
        read_all(store, &small_digest, 0, small.len() as u64).await,
        small.as_ref()
    );
}

async fn lists_every_blob_in_digest_order_by_pages(store: &dyn BlobStore) {
    let mut digests = Vec::new();
    for i in 0..7u8 {
        let bytes = Bytes::from(vec![i; usize::from(i) + 1]);
        let digest = Digest::of(&bytes);
        store.put(&digest, chunked(bytes), 1024).await.unwrap();
        digests.push((digest, u64::from(i) + 1));
    }
    digests.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list(after.as_ref(), 3).await.unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = Some(last.digest);
        let start = now_ms_for_tests() - 600_000;
        for blob in &page {
            assert!(blob.modified_ms > start, "{blob:?}");
        }
        seen.extend(page.into_iter().map(|b| (b.digest, b.size)));
    }
    assert_eq!(seen, digests);
}

fn now_ms_for_tests() -> i64 {
    agora_store::now_ms()
}

async fn fs_store(dir: &tempfile::TempDir) -> FsBlobStore {
    FsBlobStore::open(dir.path().join("blobs")).await.unwrap()
}

fn memory_store() -> ObjectBlobStore {
    ObjectBlobStore::new(Arc::new(object_store::memory::InMemory::new()))
}

/// A fresh, empty place in the test bucket (one prefix per test) on the S3 server.
async fn s3_store() -> ObjectBlobStore {
    match s3_location().await {
        BlobLocation::S3(s3) => s3.open().unwrap(),
        other => panic!("not S3: {other}"),
    }
}

const TEST_BUCKET: &str = "agora-blob-tests";

async fn s3_location() -> BlobLocation {
    let endpoint = std::env::var("AGORA_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "the S3 tests need an S3-compatible server: set AGORA_TEST_S3_ENDPOINT (scripts/test starts the moto server for them)"
        )
    });
    assert!(
        std::env::var_os("AWS_ACCESS_KEY_ID").is_some(),
        "the S3 tests need credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (any value for moto)"
    );
    // Creating a bucket that exists is answered 409 (or 200 by moto): either is fine.
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{TEST_BUCKET}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("the S3 server at {endpoint} does not answer: {e}"));
    assert!(
        created.status().is_success() || created.status() == reqwest::StatusCode::CONFLICT,
        "cannot create the test bucket on {endpoint}: {}",
        created.status()
    );
    let mut prefix = [0u8; 8];
    getrandom::fill(&mut prefix).unwrap();
    format!(
        "s3://{TEST_BUCKET}/{}?endpoint={endpoint}&region=us-east-1",
        hex(&prefix)
    )
    .parse()
    .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

macro_rules! on_every_blob_store {
    ($($name:ident),* $(,)?) => {
        mod on_filesystem { $(
            #[tokio::test] async fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let store = super::fs_store(&dir).await;
                super::$name(&store).await;
                let leftovers = std::fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count();
                assert_eq!(leftovers, 0, "temporary files left behind");
            }
        )* }
        mod on_object_store { $( #[tokio::test] async fn $name() { super::$name(&super::memory_store()).await; } )* }
        mod on_s3 { $( #[tokio::test] async fn $name() { super::$name(&super::s3_store().await).await; } )* }
    };
}

on_every_blob_store!(
    stores_streams_and_dedups,
    wrong_content_leaves_nothing,
    interrupted_upload_leaves_nothing,
    oversize_upload_is_refused,
    large_blobs_go_up_in_parts_and_read_back,
    a_large_upload_cut_off_or_wrong_leaves_nothing,
    concurrent_uploads_of_one_blob_both_succeed,
    lists_every_blob_in_digest_order_by_pages,
);

#[tokio::test]
async fn s3_presigned_urls_serve_the_bytes_with_the_caching_asked_for() {
    let store = s3_store().await;
    let bytes = Bytes::from_static(b"presigned content");
    let digest = Digest::of(&bytes);
    store
        .put(&digest, chunked(bytes.clone()), 1024)
        .await
        .unwrap();
    let url = store
        .presign_get(
            &digest,
            std::time::Duration::from_secs(60),
            "private, max-age=60",
        )
        .await
        .unwrap()
        .expect("an S3 store presigns");
    let answer = reqwest::get(&url).await.unwrap();
    assert_eq!(answer.status(), 200, "{url}");
    assert_eq!(
        answer.headers()["cache-control"].to_str().unwrap(),
        "private, max-age=60"
    );
    assert_eq!(answer.bytes().await.unwrap(), bytes);
    // The URL is bound to its key: another digest's key is refused.
    let other = url.replace(&digest.hex(), &Digest::of(b"other").hex());
    assert_eq!(reqwest::get(&other).await.unwrap().status(), 403);
}

#[tokio::test]
async fn s3_failed_uploads_leave_no_multipart_upload_behind() {
    let location = s3_location().await;
    let BlobLocation::S3(s3) = &location else {
        unreachable!()
    };
    let store = s3.open().unwrap();
    a_large_upload_cut_off_or_wrong_leaves_nothing(&store).await;
    // Aborted multipart uploads are gone from the bucket, not only invisible.
    let endpoint = std::env::var("AGORA_TEST_S3_ENDPOINT").unwrap();
    let listing = reqwest::get(format!(
        "{endpoint}/{TEST_BUCKET}?uploads&prefix={}/",
        s3.prefix
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(listing.contains("ListMultipartUploadsResult"), "{listing}");
    assert!(!listing.contains("<Upload>"), "{listing}");
}

#[tokio::test]
async fn object_store_uploads_wait_for_a_slot_so_their_memory_is_bounded() {
    let store = Arc::new(memory_store().with_upload_slots(1));
    // An upload that sent one chunk and then stalls holds the only slot.
    let stalled: ByteStream = stream::iter([Ok(Bytes::from_static(b"first"))])
        .chain(stream::pending())
        .boxed();
    let holder = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .put(&Digest::of(b"never finished"), stalled, 1024)
                .await
        })
    };
    tokio::task::yield_now().await;
    let digest = Digest::of(b"waits its turn");
    let waiting = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .put(&digest, body(vec![b"waits its turn"]), 1024)
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !waiting.is_finished(),
        "a second upload buffered beside the first"
    );
    assert_eq!(store.size(&digest).await.unwrap(), None);
    // The stalled client goes away: its slot is free, the next upload goes through.
    holder.abort();
    let (outcome, _) = waiting.await.unwrap().unwrap();
    assert_eq!(outcome, PutOutcome::Created);
}

#[tokio::test]
async fn stores_without_presigning_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let fs = fs_store(&dir).await;
    let digest = Digest::of(b"x");
    let ttl = std::time::Duration::from_secs(60);
    assert_eq!(fs.presign_get(&digest, ttl, "x").await.unwrap(), None);
    assert_eq!(
        memory_store().presign_get(&digest, ttl, "x").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn the_filesystem_store_sweeps_only_old_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = fs_store(&dir).await;
    let tmp = dir.path().join("blobs/tmp");
    std::fs::write(tmp.join("old.part"), b"cut off").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(tmp.join("old.part"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::write(tmp.join("fresh.part"), b"in flight").unwrap();
    let hour = std::time::Duration::from_secs(3600);
    assert_eq!(store.sweep_partials(hour).await.unwrap(), 1);
    assert!(!tmp.join("old.part").exists());
    assert!(tmp.join("fresh.part").exists());
}

#[tokio::test]
async fn stray_files_in_the_blob_directory_are_not_listed_as_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = fs_store(&dir).await;
    let digest = Digest::of(b"real");
    store
        .put(&digest, chunked(Bytes::from_static(b"real")), 64)
        .await
        .unwrap();
    let shard = dir.path().join("blobs/sha256").join(&digest.hex()[..2]);
    std::fs::write(shard.join("README"), b"not a blob").unwrap();
    // A digest's name in the wrong shard is not where the store would look for it.
    let misplaced = Digest::of(b"elsewhere");
    if misplaced.hex()[..2] != digest.hex()[..2] {
        std::fs::write(shard.join(misplaced.hex()), b"elsewhere").unwrap();
    }
    let listed = store.list(None, 100).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].digest, digest);
}
