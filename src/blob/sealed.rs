//! Encryption in front of a [`BlobStore`]: callers hand in plaintext streams and get
//! plaintext streams back; only ciphertext reaches the store. Ranged reads fetch and
//! decrypt only the segments that cover the range.

use super::{BlobError, BlobStore, ByteStream};
use crate::crypto::Key32;
use crate::crypto::stream::{
    Decryptor, Encryptor, HEADER_SIZE, ObjectContext, SEALED_SEGMENT_SIZE, SEGMENT_SIZE,
    SegmentOpener, sealed_range, segment_count,
};
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

fn crypto_io(e: crate::crypto::CryptoError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

/// Decrypts and verifies a whole sealed object, in its own buffer.
pub fn open_whole(
    dek: &Key32,
    ctx: ObjectContext<'_>,
    sealed: Vec<u8>,
) -> Result<Vec<u8>, BlobError> {
    crate::crypto::stream::open_all_in_place(dek, ctx, sealed)
        .map_err(|e| BlobError::Backend(e.to_string()))
}

/// A whole sealed object, fetched already (remote stores) or still to be read from
/// a local file by a blocking thread ([`SealedSource::read`]).
pub enum SealedSource {
    Fetched(Vec<u8>),
    LocalFile(std::path::PathBuf),
}

impl SealedSource {
    /// The sealed bytes; blocks on a local file, so only on a blocking thread.
    pub fn read(self) -> Result<Vec<u8>, BlobError> {
        match self {
            SealedSource::Fetched(mut bytes) => {
                // Gathered in chunks, the buffer may be up to twice the object; a
                // render keeps it in memory, counted by the object's size.
                bytes.shrink_to_fit();
                Ok(bytes)
            }
            SealedSource::LocalFile(path) => Ok(std::fs::read(path)?),
        }
    }
}

#[derive(Clone)]
pub struct SealedStore {
    store: Arc<dyn BlobStore>,
}

/// What a sealed put reports: plaintext and stored sizes.
#[derive(Debug, Clone, Copy)]
pub struct PutReport {
    pub plain_len: u64,
    pub stored_len: u64,
}

impl SealedStore {
    pub fn new(store: Arc<dyn BlobStore>) -> Self {
        SealedStore { store }
    }

    pub fn raw(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    pub async fn put(
        &self,
        key: &str,
        dek: &Key32,
        ctx: ObjectContext<'_>,
        plain: ByteStream,
    ) -> Result<PutReport, BlobError> {
        let enc = Encryptor::new(&mut rand::rngs::OsRng, dek, ctx);
        let counter = Arc::new(AtomicU64::new(0));
        let sealed = seal_stream(enc, plain, counter.clone());
        let stored_len = self.store.put(key, sealed).await?;
        Ok(PutReport {
            plain_len: counter.load(Ordering::Relaxed),
            stored_len,
        })
    }

    /// The whole object, verified segment by segment; a tampered segment ends the
    /// stream with an error before any of its bytes are released.
    pub async fn get(
        &self,
        key: &str,
        dek: &Key32,
        ctx: ObjectContext<'_>,
    ) -> Result<ByteStream, BlobError> {
        let sealed = self.store.get(key).await?;
        Ok(open_stream(Decryptor::new(dek, ctx), sealed))
    }

    pub async fn get_all(
        &self,
        key: &str,
        dek: &Key32,
        ctx: ObjectContext<'_>,
    ) -> Result<Vec<u8>, BlobError> {
        let sealed = self.store.get_whole(key).await?;
        open_whole(dek, ctx, sealed)
    }

    /// A whole object, still sealed, for a caller that reads and opens it with
    /// [`open_whole`] on a blocking thread: fetched now from a remote store, read
    /// there from a local one.
    pub async fn sealed_source(&self, key: &str) -> Result<SealedSource, BlobError> {
        match self.store.local_path(key) {
            Some(path) => Ok(SealedSource::LocalFile(path)),
            None => Ok(SealedSource::Fetched(self.store.get_whole(key).await?)),
        }
    }

    /// Plaintext bytes `[start, end)` of an object of `plain_len` bytes.
    pub async fn get_range(
        &self,
        key: &str,
        dek: &Key32,
        ctx: ObjectContext<'_>,
        plain_len: u64,
        start: u64,
        end: u64,
    ) -> Result<ByteStream, BlobError> {
        let range = sealed_range(plain_len, start, end)
            .ok_or_else(|| BlobError::Backend("range outside object".into()))?;
        let header = super::collect(self.store.get_range(key, 0, HEADER_SIZE as u64).await?)
            .await
            .map_err(|e| BlobError::Backend(e.to_string()))?;
        let opener =
            SegmentOpener::new(dek, ctx, &header).map_err(|e| BlobError::Backend(e.to_string()))?;
        let body = self
            .store
            .get_range(key, range.sealed_start, range.sealed_end)
            .await?;
        let state = RangeState {
            opener,
            body,
            buf: Vec::with_capacity(SEALED_SEGMENT_SIZE),
            index: range.first_segment,
            last_index: segment_count(plain_len) - 1,
            skip: (start - range.first_segment * SEGMENT_SIZE as u64) as usize,
            remaining: end - start,
            body_done: false,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            Some(state),
            range_step,
        )))
    }

    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.store.delete(key).await
    }
}

fn seal_stream(enc: Encryptor, plain: ByteStream, counter: Arc<AtomicU64>) -> ByteStream {
    let state = Some((enc, plain, counter));
    Box::pin(futures_util::stream::unfold(state, |state| async move {
        let (mut enc, mut plain, counter) = state?;
        loop {
            match plain.next().await {
                Some(Ok(chunk)) => {
                    counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    let mut out = Vec::new();
                    if let Err(e) = enc.update(&chunk, &mut out) {
                        return Some((Err(crypto_io(e)), None));
                    }
                    if !out.is_empty() {
                        return Some((Ok(Bytes::from(out)), Some((enc, plain, counter))));
                    }
                }
                Some(Err(e)) => return Some((Err(e), None)),
                None => {
                    let mut out = Vec::new();
                    return match enc.finish(&mut out) {
                        Ok(()) => Some((Ok(Bytes::from(out)), None)),
                        Err(e) => Some((Err(crypto_io(e)), None)),
                    };
                }
            }
        }
    }))
}

fn open_stream(dec: Decryptor, sealed: ByteStream) -> ByteStream {
    Box::pin(futures_util::stream::unfold(
        Some((dec, sealed)),
        |state| async move {
            let (mut dec, mut sealed) = state?;
            loop {
                match sealed.next().await {
                    Some(Ok(chunk)) => {
                        let mut out = Vec::new();
                        if let Err(e) = dec.update(&chunk, &mut out) {
                            return Some((Err(crypto_io(e)), None));
                        }
                        if !out.is_empty() {
                            return Some((Ok(Bytes::from(out)), Some((dec, sealed))));
                        }
                    }
                    Some(Err(e)) => return Some((Err(e), None)),
                    None => {
                        let mut out = Vec::new();
                        return match dec.finish(&mut out) {
                            Ok(()) => Some((Ok(Bytes::from(out)), None)),
                            Err(e) => Some((Err(crypto_io(e)), None)),
                        };
                    }
                }
            }
        },
    ))
}

struct RangeState {
    opener: SegmentOpener,
    body: ByteStream,
    buf: Vec<u8>,
    index: u64,
    last_index: u64,
    skip: usize,
    remaining: u64,
    body_done: bool,
}

async fn range_step(
    state: Option<RangeState>,
) -> Option<(std::io::Result<Bytes>, Option<RangeState>)> {
    let mut st = state?;
    if st.remaining == 0 {
        return None;
    }
    let want = if st.index == st.last_index {
        usize::MAX
    } else {
        SEALED_SEGMENT_SIZE
    };
    while st.buf.len() < want && !st.body_done {
        match st.body.next().await {
            Some(Ok(chunk)) => st.buf.extend_from_slice(&chunk),
            Some(Err(e)) => return Some((Err(e), None)),
            None => st.body_done = true,
        }
    }
    let take = st.buf.len().min(SEALED_SEGMENT_SIZE);
    let rest = st.buf.split_off(take);
    let mut seg = std::mem::replace(&mut st.buf, rest);
    let last = st.index == st.last_index;
    if let Err(e) = st.opener.open_segment(st.index, last, &mut seg) {
        return Some((Err(crypto_io(e)), None));
    }
    st.index += 1;
    let from = st.skip.min(seg.len());
    st.skip = 0;
    let to = (from as u64 + st.remaining).min(seg.len() as u64) as usize;
    st.remaining -= (to - from) as u64;
    let out = Bytes::copy_from_slice(&seg[from..to]);
    Some((Ok(out), Some(st)))
}
