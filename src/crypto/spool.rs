//! Scratch space for an upload that must be read out of order (a ZIP keeps its
//! directory at the end). The bytes are sealed chunk by chunk under a key that
//! lives only in this process's memory, in an unnamed temporary file: nothing
//! readable reaches the disk, and the file is gone when the process is, even after
//! a crash.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Plaintext bytes per sealed chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;

fn nonce(index: u64) -> Nonce {
    // One key per spool, one nonce per chunk index: never reused.
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn fresh_key() -> io::Result<LessSafeKey> {
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, key.as_mut());
    let unbound =
        UnboundKey::new(&AES_256_GCM, key.as_ref()).map_err(|_| io::Error::other("spool key"))?;
    Ok(LessSafeKey::new(unbound))
}

pub struct SpoolWriter {
    file: std::fs::File,
    key: LessSafeKey,
    pending: Vec<u8>,
    chunks: u64,
    len: u64,
}

impl SpoolWriter {
    pub fn new(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(SpoolWriter {
            file: tempfile::tempfile_in(dir)?,
            key: fresh_key()?,
            pending: Vec::with_capacity(CHUNK),
            chunks: 0,
            len: 0,
        })
    }

    /// Plaintext bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.len += data.len() as u64;
        while !data.is_empty() {
            let take = (CHUNK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == CHUNK {
                self.seal_pending()?;
            }
        }
        Ok(())
    }

    fn seal_pending(&mut self) -> io::Result<()> {
        let mut sealed = std::mem::take(&mut self.pending);
        self.key
            .seal_in_place_append_tag(nonce(self.chunks), Aad::empty(), &mut sealed)
            .map_err(|_| io::Error::other("spool seal"))?;
        self.file.write_all(&sealed)?;
        self.chunks += 1;
        // Sealed in place: the buffer now holds ciphertext only.
        sealed.clear();
        self.pending = sealed;
        Ok(())
    }

    /// Seals the last partial chunk and turns the spool into a reader.
    pub fn finish(mut self) -> io::Result<SpoolReader> {
        if !self.pending.is_empty() {
            self.seal_pending()?;
        }
        self.file.flush()?;
        Ok(SpoolReader {
            file: self.file,
            key: self.key,
            len: self.len,
            pos: 0,
            cached: None,
        })
    }
}

/// Reads the spool back with random access; one opened chunk is kept in memory.
pub struct SpoolReader {
    file: std::fs::File,
    key: LessSafeKey,
    len: u64,
    pos: u64,
    cached: Option<(u64, zeroize::Zeroizing<Vec<u8>>)>,
}

impl SpoolReader {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn chunk(&mut self, index: u64) -> io::Result<&[u8]> {
        if self.cached.as_ref().map(|(i, _)| *i) != Some(index) {
            let plain_len = (self.len - index * CHUNK as u64).min(CHUNK as u64) as usize;
            let mut sealed = vec![0u8; plain_len + TAG];
            self.file
                .seek(SeekFrom::Start(index * (CHUNK + TAG) as u64))?;
            self.file.read_exact(&mut sealed)?;
            let plain = self
                .key
                .open_in_place(nonce(index), Aad::empty(), &mut sealed)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "spool chunk altered"))?
                .len();
            sealed.truncate(plain);
            self.cached = Some((index, zeroize::Zeroizing::new(sealed)));
        }
        Ok(self
            .cached
            .as_ref()
            .map(|(_, c)| c.as_slice())
            .unwrap_or(&[]))
    }
}

impl Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let index = self.pos / CHUNK as u64;
        let offset = (self.pos % CHUNK as u64) as usize;
        let chunk = self.chunk(index)?;
        let n = (chunk.len() - offset).min(buf.len());
        buf[..n].copy_from_slice(&chunk[offset..offset + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SpoolReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => n as i128,
            SeekFrom::End(d) => self.len as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if target < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before start",
            ));
        }
        self.pos = target as u64;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_random_access_and_nothing_plain_on_disk() {
        let dir = tempfile::tempdir().expect("dir");
        let data: Vec<u8> = (0..(3 * CHUNK + 123))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut w = SpoolWriter::new(dir.path()).expect("spool");
        for piece in data.chunks(1000) {
            w.write(piece).expect("write");
        }
        let mut r = w.finish().expect("finish");
        assert_eq!(r.len(), data.len() as u64);
        // The unnamed file leaves no entry in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
        let mut all = Vec::new();
        r.read_to_end(&mut all).expect("read");
        assert_eq!(all, data);
        r.seek(SeekFrom::Start(CHUNK as u64 - 5)).expect("seek");
        let mut ten = [0u8; 10];
        r.read_exact(&mut ten).expect("read across chunks");
        assert_eq!(&ten, &data[CHUNK - 5..CHUNK + 5]);
        r.seek(SeekFrom::End(-3)).expect("seek end");
        let mut tail = Vec::new();
        r.read_to_end(&mut tail).expect("tail");
        assert_eq!(tail, &data[data.len() - 3..]);
        // What is on disk is not the plaintext.
        let mut raw = Vec::new();
        r.file.seek(SeekFrom::Start(0)).expect("rewind");
        r.file.read_to_end(&mut raw).expect("raw");
        assert_eq!(raw.len(), data.len() + 4 * TAG);
        assert!(!raw.windows(64).any(|w| w == &data[..64]));
    }
}
