//! Object storage: the only module that talks to the filesystem store or S3.
//!
//! A [`BlobStore`] moves opaque bytes under random names; [`sealed`] puts the
//! envelope encryption in front of it so that callers only ever hand it plaintext
//! streams and never see ciphertext handling.

pub mod fs;
pub mod s3;
pub mod sealed;

use bytes::Bytes;
use futures_util::Stream;
use std::pin::Pin;

pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("object not found")]
    NotFound,
    #[error("invalid object key")]
    InvalidKey,
    #[error("storage error: {0}")]
    Backend(String),
}

impl From<std::io::Error> for BlobError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::NotFound {
            BlobError::NotFound
        } else {
            BlobError::Backend(e.to_string())
        }
    }
}

/// Streaming object store. Memory use of every method but `get_whole` is independent of
/// object size.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores the stream under `key`, replacing nothing half-way: a failed put leaves no object.
    async fn put(&self, key: &str, body: ByteStream) -> Result<u64, BlobError>;
    async fn get(&self, key: &str) -> Result<ByteStream, BlobError>;
    /// The whole object at once, for callers that hold all of it anyway (a render
    /// reads the whole original): one read instead of a stream of chunks.
    async fn get_whole(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        Ok(collect(self.get(key).await?).await?)
    }
    /// Where the object lies on this machine, for a store that is a local directory:
    /// a caller that works on a blocking thread anyway reads the file there, which
    /// spares a hand-off to another thread per read. `None` for remote stores.
    fn local_path(&self, _key: &str) -> Option<std::path::PathBuf> {
        None
    }
    /// Bytes `[start, end)` of the object.
    async fn get_range(&self, key: &str, start: u64, end: u64) -> Result<ByteStream, BlobError>;
    /// Idempotent: deleting a missing object succeeds.
    async fn delete(&self, key: &str) -> Result<(), BlobError>;
    /// Every key in the store (maintenance and tests; not on a request path).
    async fn list(&self) -> Result<Vec<String>, BlobError> {
        Ok(self
            .list_with_times()
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }
    /// Every key with its last-modified time (Unix seconds), for finding orphans.
    async fn list_with_times(&self) -> Result<Vec<(String, i64)>, BlobError>;
    async fn health(&self) -> Result<(), BlobError>;
    fn describe(&self) -> String;
}

/// Keys are ours (random hex with a fan-out folder); refuse anything else so a key
/// can never become a path outside the store.
pub fn validate_key(key: &str) -> Result<(), BlobError> {
    let ok = !key.is_empty()
        && key.len() <= 128
        && !key.starts_with('/')
        && !key.contains("//")
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'/' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(BlobError::InvalidKey)
    }
}

/// The storage name of an object id: no patient data, only randomness.
pub fn object_key(object_id: &str) -> String {
    let fan = object_id.get(..2).unwrap_or("00");
    format!("o/{fan}/{object_id}")
}

pub async fn collect(mut s: ByteStream) -> std::io::Result<Vec<u8>> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

pub fn once(bytes: Bytes) -> ByteStream {
    Box::pin(futures_util::stream::once(async move { Ok(bytes) }))
}
