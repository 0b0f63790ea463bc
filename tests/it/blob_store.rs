//! One conformance suite for every BlobStore backend (filesystem always, S3 when
//! configured), plus the encrypted layer's ranged reads on top of it.

use super::helpers::{random_hex, s3_from_env};
use bytes::Bytes;
use lichtkasten::blob::fs::FsStore;
use lichtkasten::blob::s3::{S3Settings, S3Store};
use lichtkasten::blob::sealed::SealedStore;
use lichtkasten::blob::{BlobError, BlobStore, ByteStream, collect, object_key};
use lichtkasten::crypto::Key32;
use lichtkasten::crypto::stream::ObjectContext;
use std::sync::Arc;

fn chunked(data: Vec<u8>, chunk: usize) -> ByteStream {
    let parts: Vec<std::io::Result<Bytes>> = data
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(parts))
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

async fn conformance(store: Arc<dyn BlobStore>) {
    let key = object_key(&random_hex(16));
    // Not found, before anything is stored.
    assert!(matches!(store.get(&key).await, Err(BlobError::NotFound)));
    // Put / get, including a body larger than one S3 part (multipart path).
    for len in [0usize, 1, 100_000, 9 * 1024 * 1024 + 3] {
        let data = pattern(len);
        let written = store
            .put(&key, chunked(data.clone(), 300_000))
            .await
            .expect("put");
        assert_eq!(written, len as u64);
        let back = collect(store.get(&key).await.expect("get"))
            .await
            .expect("read");
        assert_eq!(back.len(), len);
        assert!(back == data, "content differs for len {len}");
    }
    // Ranges.
    let data = pattern(9 * 1024 * 1024 + 3);
    for (s, e) in [(0u64, 1u64), (10, 70_000), (5_000_000, 9 * 1024 * 1024 + 3)] {
        let got = collect(store.get_range(&key, s, e).await.expect("range"))
            .await
            .expect("read");
        assert_eq!(got, data[s as usize..e as usize], "range {s}..{e}");
    }
    assert!(store.list().await.expect("list").contains(&key));
    // Delete, twice (idempotent), then not found.
    store.delete(&key).await.expect("delete");
    store.delete(&key).await.expect("delete again");
    assert!(matches!(store.get(&key).await, Err(BlobError::NotFound)));
    assert!(!store.list().await.expect("list").contains(&key));
    // Keys that could escape the store are refused.
    assert!(matches!(
        store.get("../etc/passwd").await,
        Err(BlobError::InvalidKey)
    ));
    assert!(matches!(
        store.get("/abs").await,
        Err(BlobError::InvalidKey)
    ));
    store.health().await.expect("health");
}

async fn sealed_ranges(store: Arc<dyn BlobStore>) {
    let sealed = SealedStore::new(store.clone());
    let dek = Key32::generate(&mut rand::thread_rng());
    let id = random_hex(16);
    let key = object_key(&id);
    let ctx = ObjectContext {
        study_id: "s1",
        object_id: &id,
    };
    let data = pattern(1_000_003);
    let report = sealed
        .put(&key, &dek, ctx, chunked(data.clone(), 77_777))
        .await
        .expect("put");
    assert_eq!(report.plain_len, data.len() as u64);
    let raw = collect(store.get(&key).await.expect("raw"))
        .await
        .expect("raw read");
    assert_eq!(raw.len() as u64, report.stored_len);
    assert_ne!(
        &raw[79..200],
        &data[..121],
        "stored bytes must not be plaintext"
    );
    assert_eq!(sealed.get_all(&key, &dek, ctx).await.expect("get"), data);
    for (s, e) in [
        (0u64, 10u64),
        (65_530, 65_540),
        (131_072, 500_000),
        (999_000, 1_000_003),
    ] {
        let got = collect(
            sealed
                .get_range(&key, &dek, ctx, data.len() as u64, s, e)
                .await
                .expect("range"),
        )
        .await
        .expect("range read");
        assert_eq!(got, data[s as usize..e as usize], "sealed range {s}..{e}");
    }
    // Another study's context cannot open it.
    let wrong = ObjectContext {
        study_id: "s2",
        object_id: &id,
    };
    assert!(sealed.get_all(&key, &dek, wrong).await.is_err());
    sealed.delete(&key).await.expect("delete");
}

#[tokio::test]
async fn filesystem_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn BlobStore> = Arc::new(FsStore::open(dir.path()).await.expect("open"));
    conformance(store.clone()).await;
    sealed_ranges(store).await;
    // No temporary files are left behind.
    let leftovers = super::helpers::files_under(dir.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn s3_store_conforms() {
    let Some(s3) = s3_from_env() else {
        eprintln!("LICHTKASTEN_TEST_S3_* not set: S3 conformance runs in .ci/run");
        return;
    };
    let store: Arc<dyn BlobStore> = Arc::new(S3Store::new(&S3Settings {
        endpoint: s3.endpoint,
        region: s3.region,
        bucket: s3.bucket,
        access_key_id: s3.access_key_id,
        secret_access_key: s3.secret_access_key.expose().to_string(),
        prefix: s3.prefix,
    }));
    conformance(store.clone()).await;
    sealed_ranges(store).await;
}
