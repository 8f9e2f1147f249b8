//! The blob store's specification, run against the filesystem store and the
//! object_store-backed store (in memory).

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
    let (outcome, _) = store
        .put(&digest, body(vec![b"ignored"]), 1024)
        .await
        .unwrap();
    assert_eq!(outcome, PutOutcome::AlreadyPresent);
    assert_eq!(store.size(&digest).await.unwrap(), Some(11));
    assert_eq!(read_all(store, &digest, 0, 11).await, b"hello world");
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

async fn fs_store(dir: &tempfile::TempDir) -> FsBlobStore {
    FsBlobStore::open(dir.path().join("blobs")).await.unwrap()
}

fn memory_store() -> ObjectBlobStore {
    ObjectBlobStore::new(Arc::new(object_store::memory::InMemory::new()))
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
    };
}

on_every_blob_store!(
    stores_streams_and_dedups,
    wrong_content_leaves_nothing,
    interrupted_upload_leaves_nothing,
    oversize_upload_is_refused
);
