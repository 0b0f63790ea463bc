//! Filesystem backend: one file per object under the data directory. Writes go to a
//! temporary name in the same folder and are renamed after their data is synced, so a crash never
//! leaves a partial object under its real name. Only ciphertext is ever written.

use super::{BlobError, BlobStore, ByteStream, validate_key};
use futures_util::StreamExt;
use rand::RngCore;
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

const READ_CHUNK: usize = 64 * 1024;
const WRITE_BATCH: usize = 1 << 20;

pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    pub async fn open(root: &Path) -> Result<Self, BlobError> {
        tokio::fs::create_dir_all(root).await?;
        Ok(FsStore {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, key: &str) -> Result<PathBuf, BlobError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }
}

#[async_trait::async_trait]
impl BlobStore for FsStore {
    async fn put(&self, key: &str, mut body: ByteStream) -> Result<u64, BlobError> {
        let path = self.path(key)?;
        let dir = path.parent().ok_or(BlobError::InvalidKey)?.to_path_buf();
        let tmp = dir.join(format!(".tmp-{:016x}", rand::thread_rng().next_u64()));
        // Chunks are gathered and written a batch at a time on a blocking thread: a
        // thread hop per MiB rather than one per chunk, and for a typical instance
        // create, write, sync and rename in a single hop.
        let mut file: Option<std::fs::File> = None;
        let mut batch: Vec<bytes::Bytes> = Vec::new();
        let mut batch_len = 0usize;
        let mut written = 0u64;
        let result: Result<u64, BlobError> = async {
            loop {
                let next = body.next().await;
                let last = next.is_none();
                if let Some(chunk) = next {
                    let chunk = chunk?;
                    batch_len += chunk.len();
                    batch.push(chunk);
                }
                if batch_len < WRITE_BATCH && !last {
                    continue;
                }
                written += batch_len as u64;
                batch_len = 0;
                let chunks = std::mem::take(&mut batch);
                let open = file.take();
                let (dir, tmp, path) = (dir.clone(), tmp.clone(), path.clone());
                let done =
                    tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
                        let mut f = match open {
                            Some(f) => f,
                            None => {
                                std::fs::create_dir_all(&dir)?;
                                std::fs::File::create(&tmp)?
                            }
                        };
                        for chunk in chunks {
                            f.write_all(&chunk)?;
                        }
                        if last {
                            f.sync_data()?;
                            std::fs::rename(&tmp, &path)?;
                        }
                        Ok(f)
                    })
                    .await
                    .map_err(|e| BlobError::Backend(e.to_string()))??;
                if last {
                    return Ok(written);
                }
                file = Some(done);
            }
        }
        .await;
        if result.is_err() {
            // Closed first: some systems refuse to delete an open file.
            drop(file.take());
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    async fn get(&self, key: &str) -> Result<ByteStream, BlobError> {
        let file = tokio::fs::File::open(self.path(key)?).await?;
        Ok(Box::pin(ReaderStream::with_capacity(file, READ_CHUNK)))
    }

    async fn get_whole(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        let path = self.path(key)?;
        // One blocking read, not one thread hand-off per 64 KiB chunk.
        tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .map_err(|e| BlobError::Backend(e.to_string()))?
            .map_err(BlobError::from)
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.path(key).ok()
    }

    async fn get_range(&self, key: &str, start: u64, end: u64) -> Result<ByteStream, BlobError> {
        let mut file = tokio::fs::File::open(self.path(key)?).await?;
        let len = file.metadata().await?.len();
        if start > end || end > len {
            return Err(BlobError::Backend("range outside object".into()));
        }
        file.seek(std::io::SeekFrom::Start(start)).await?;
        Ok(Box::pin(ReaderStream::with_capacity(
            file.take(end - start),
            READ_CHUNK,
        )))
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn list_with_times(&self) -> Result<Vec<(String, i64)>, BlobError> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let mut rd = match tokio::fs::read_dir(&dir).await {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            while let Some(entry) = rd.next_entry().await? {
                let p = entry.path();
                if entry.file_type().await?.is_dir() {
                    stack.push(p);
                } else if let Ok(rel) = p.strip_prefix(&self.root) {
                    let name = rel.to_string_lossy().replace('\\', "/");
                    if !name.rsplit('/').next().unwrap_or("").starts_with(".tmp-") {
                        let modified = entry
                            .metadata()
                            .await?
                            .modified()
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map(|d| d.as_secs() as i64)
                            .unwrap_or(0);
                        out.push((name, modified));
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    async fn health(&self) -> Result<(), BlobError> {
        tokio::fs::metadata(&self.root).await?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("filesystem at {}", self.root.display())
    }
}
