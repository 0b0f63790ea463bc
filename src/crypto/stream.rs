//! Segmented streaming AEAD for stored objects (after Tink's AES-GCM-HKDF streaming
//! AEAD and age's STREAM).
//!
//! FROZEN FORMAT v1 — changing any constant here makes every stored object
//! unreadable. A new layout needs a new version byte.
//!
//! ```text
//! header (79 bytes) = "LKBX" | version=1 | log2(segment)=16 | 0x0000
//!                     | salt(32) | nonce_prefix(7) | commitment(32)
//! segment i         = AES-256-GCM(key, nonce_prefix | i (u32 BE) | last (0/1),
//!                                 aad = header, plaintext ≤ 64 KiB) (+16 tag)
//! ```
//! `key | commitment = HKDF-SHA256(ikm = study DEK, salt, info = object context)`.
//! The context names the study and the object id, so a blob moved to another study
//! or swapped with another object fails the commitment check before any decryption.
//! The index and last flag in the nonce catch reordering and truncation.

use super::{CryptoError, Key32, encode_context};
use hkdf::Hkdf;
use rand::{CryptoRng, RngCore};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub const SEGMENT_SIZE: usize = 64 * 1024;
pub const TAG_SIZE: usize = 16;
pub const SEALED_SEGMENT_SIZE: usize = SEGMENT_SIZE + TAG_SIZE;
const MAGIC: &[u8; 4] = b"LKBX";
const VERSION: u8 = 1;
const SEGMENT_LOG2: u8 = 16;
const SALT_LEN: usize = 32;
const PREFIX_LEN: usize = 7;
const COMMIT_LEN: usize = 32;
pub const HEADER_SIZE: usize = 4 + 1 + 1 + 2 + SALT_LEN + PREFIX_LEN + COMMIT_LEN;

/// What an object is bound to: its study and its own id.
#[derive(Debug, Clone, Copy)]
pub struct ObjectContext<'a> {
    pub study_id: &'a str,
    pub object_id: &'a str,
}

/// Stored size of an object of `plain_len` bytes.
pub fn sealed_len(plain_len: u64) -> u64 {
    HEADER_SIZE as u64 + plain_len + TAG_SIZE as u64 * segment_count(plain_len)
}

/// Number of segments: at least one (an empty object is one empty final segment).
pub fn segment_count(plain_len: u64) -> u64 {
    plain_len.div_ceil(SEGMENT_SIZE as u64).max(1)
}

fn derive(
    dek: &Key32,
    salt: &[u8],
    ctx: ObjectContext<'_>,
) -> (Zeroizing<[u8; 32]>, [u8; COMMIT_LEN]) {
    let hk = Hkdf::<Sha256>::new(Some(salt), dek.expose());
    let info = encode_context(&[
        b"lichtkasten/object/v1",
        ctx.study_id.as_bytes(),
        ctx.object_id.as_bytes(),
    ]);
    let mut okm = Zeroizing::new([0u8; 64]);
    // 64 bytes is far below HKDF-SHA256's limit of 255*32.
    hk.expand(&info, okm.as_mut()).unwrap_or(());
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&okm[..32]);
    let mut commit = [0u8; COMMIT_LEN];
    commit.copy_from_slice(&okm[32..]);
    (key, commit)
}

fn nonce(prefix: &[u8; PREFIX_LEN], index: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..PREFIX_LEN].copy_from_slice(prefix);
    n[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Seals a stream of plaintext chunks; emits ciphertext as whole segments so that
/// memory stays at one segment whatever the object size.
fn cipher(key: &[u8; 32]) -> LessSafeKey {
    // A 32-byte key always fits AES-256; the expect documents that invariant.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES-256 key"))
}

pub struct Encryptor {
    cipher: LessSafeKey,
    header: [u8; HEADER_SIZE],
    prefix: [u8; PREFIX_LEN],
    index: u32,
    pending: Vec<u8>,
    header_emitted: bool,
}

impl Encryptor {
    pub fn new<R: RngCore + CryptoRng>(rng: &mut R, dek: &Key32, ctx: ObjectContext<'_>) -> Self {
        let mut salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut salt);
        let mut prefix = [0u8; PREFIX_LEN];
        rng.fill_bytes(&mut prefix);
        let (key, commit) = derive(dek, &salt, ctx);
        let mut header = [0u8; HEADER_SIZE];
        header[..4].copy_from_slice(MAGIC);
        header[4] = VERSION;
        header[5] = SEGMENT_LOG2;
        header[8..8 + SALT_LEN].copy_from_slice(&salt);
        header[8 + SALT_LEN..8 + SALT_LEN + PREFIX_LEN].copy_from_slice(&prefix);
        header[8 + SALT_LEN + PREFIX_LEN..].copy_from_slice(&commit);
        Encryptor {
            cipher: cipher(&key),
            header,
            prefix,
            index: 0,
            pending: Vec::with_capacity(SEALED_SEGMENT_SIZE),
            header_emitted: false,
        }
    }

    fn emit_header(&mut self, out: &mut Vec<u8>) {
        if !self.header_emitted {
            out.extend_from_slice(&self.header);
            self.header_emitted = true;
        }
    }

    fn seal_segment(&mut self, last: bool, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let n = nonce(&self.prefix, self.index, last);
        let mut seg = std::mem::replace(&mut self.pending, Vec::with_capacity(SEALED_SEGMENT_SIZE));
        self.cipher
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(n),
                Aad::from(&self.header),
                &mut seg,
            )
            .map_err(|_| CryptoError::TooLarge)?;
        out.extend_from_slice(&seg);
        self.index = self.index.checked_add(1).ok_or(CryptoError::TooLarge)?;
        Ok(())
    }

    /// Adds plaintext; appends any completed segments (and the header first) to `out`.
    /// A full segment is held back until more data shows it is not the last one.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.emit_header(out);
        while !data.is_empty() {
            if self.pending.len() == SEGMENT_SIZE {
                self.seal_segment(false, out)?;
            }
            let take = (SEGMENT_SIZE - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Seals the final segment.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.emit_header(out);
        self.seal_segment(true, out)
    }
}

/// Seals a whole in-memory object (convenience for small objects and tests).
pub fn seal_all<R: RngCore + CryptoRng>(
    rng: &mut R,
    dek: &Key32,
    ctx: ObjectContext<'_>,
    plain: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut out = Vec::with_capacity(sealed_len(plain.len() as u64) as usize);
    let mut enc = Encryptor::new(rng, dek, ctx);
    enc.update(plain, &mut out)?;
    enc.finish(&mut out)?;
    Ok(out)
}

/// Opens segments of one object. Checks the header and key commitment first.
pub struct SegmentOpener {
    cipher: LessSafeKey,
    header: [u8; HEADER_SIZE],
    prefix: [u8; PREFIX_LEN],
}

impl SegmentOpener {
    pub fn new(dek: &Key32, ctx: ObjectContext<'_>, header: &[u8]) -> Result<Self, CryptoError> {
        if header.len() < HEADER_SIZE
            || &header[..4] != MAGIC
            || header[4] != VERSION
            || header[5] != SEGMENT_LOG2
            || header[6..8] != [0, 0]
        {
            return Err(CryptoError::BadHeader);
        }
        let header: [u8; HEADER_SIZE] = header[..HEADER_SIZE]
            .try_into()
            .map_err(|_| CryptoError::BadHeader)?;
        let salt = &header[8..8 + SALT_LEN];
        let mut prefix = [0u8; PREFIX_LEN];
        prefix.copy_from_slice(&header[8 + SALT_LEN..8 + SALT_LEN + PREFIX_LEN]);
        let stored_commit = &header[8 + SALT_LEN + PREFIX_LEN..];
        let (key, commit) = derive(dek, salt, ctx);
        if !bool::from(commit.ct_eq(stored_commit)) {
            return Err(CryptoError::CommitmentMismatch);
        }
        Ok(SegmentOpener {
            cipher: cipher(&key),
            header,
            prefix,
        })
    }

    /// Decrypts segment `index` in place; `sealed` must be exactly that segment.
    /// Returns the plaintext length (the plaintext is `sealed[..len]`).
    pub fn open_segment_slice(
        &self,
        index: u64,
        last: bool,
        sealed: &mut [u8],
    ) -> Result<usize, CryptoError> {
        let index = u32::try_from(index).map_err(|_| CryptoError::TooLarge)?;
        if sealed.len() < TAG_SIZE || sealed.len() > SEALED_SEGMENT_SIZE {
            return Err(CryptoError::Tampered);
        }
        if !last && sealed.len() != SEALED_SEGMENT_SIZE {
            return Err(CryptoError::Tampered);
        }
        let n = nonce(&self.prefix, index, last);
        let plain = self
            .cipher
            .open_in_place(
                Nonce::assume_unique_for_key(n),
                Aad::from(&self.header),
                sealed,
            )
            .map_err(|_| CryptoError::Tampered)?;
        Ok(plain.len())
    }

    /// As [`Self::open_segment_slice`], truncating the vector to the plaintext.
    pub fn open_segment(
        &self,
        index: u64,
        last: bool,
        sealed: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let len = self.open_segment_slice(index, last, sealed)?;
        sealed.truncate(len);
        Ok(())
    }
}

/// Decrypts a ciphertext stream fed in arbitrary chunks. A segment is opened as
/// "last" only when the stream ends, so a truncated object always fails.
pub struct Decryptor {
    header_buf: Vec<u8>,
    opener: Option<SegmentOpener>,
    dek: Key32,
    study_id: String,
    object_id: String,
    buf: Vec<u8>,
    index: u64,
}

impl Decryptor {
    pub fn new(dek: &Key32, ctx: ObjectContext<'_>) -> Self {
        Decryptor {
            header_buf: Vec::with_capacity(HEADER_SIZE),
            opener: None,
            dek: dek.clone(),
            study_id: ctx.study_id.to_owned(),
            object_id: ctx.object_id.to_owned(),
            buf: Vec::with_capacity(SEALED_SEGMENT_SIZE * 2),
            index: 0,
        }
    }

    /// Feeds ciphertext; appends verified plaintext to `out`.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        if self.opener.is_none() {
            let take = (HEADER_SIZE - self.header_buf.len()).min(data.len());
            self.header_buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.header_buf.len() < HEADER_SIZE {
                return Ok(());
            }
            let ctx = ObjectContext {
                study_id: &self.study_id,
                object_id: &self.object_id,
            };
            self.opener = Some(SegmentOpener::new(&self.dek, ctx, &self.header_buf)?);
        }
        self.buf.extend_from_slice(data);
        let opener = self.opener.as_ref().ok_or(CryptoError::BadHeader)?;
        // Open every segment that is certainly not the last one, in place.
        let mut start = 0;
        while self.buf.len() - start > SEALED_SEGMENT_SIZE {
            let seg = &mut self.buf[start..start + SEALED_SEGMENT_SIZE];
            let len = opener.open_segment_slice(self.index, false, seg)?;
            out.extend_from_slice(&seg[..len]);
            self.index += 1;
            start += SEALED_SEGMENT_SIZE;
        }
        self.buf.drain(..start);
        Ok(())
    }

    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let opener = self.opener.take().ok_or(CryptoError::BadHeader)?;
        let mut seg = std::mem::take(&mut self.buf);
        opener.open_segment(self.index, true, &mut seg)?;
        out.extend_from_slice(&seg);
        Ok(())
    }
}

pub fn open_all(
    dek: &Key32,
    ctx: ObjectContext<'_>,
    sealed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    open_all_in_place(dek, ctx, sealed.to_vec())
}

/// Opens a whole object in its own buffer: each segment is decrypted where it lies
/// and moved down over the header and tags before it. A render reads a CT slice this
/// way with no second buffer of its size (fresh buffers cost page faults, and the
/// copies cost as much as the decryption). The segments are cut as [`Decryptor`]
/// cuts them: only the final one may be short, and it is opened as the last.
pub fn open_all_in_place(
    dek: &Key32,
    ctx: ObjectContext<'_>,
    mut sealed: Vec<u8>,
) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < HEADER_SIZE {
        return Err(CryptoError::BadHeader);
    }
    let opener = SegmentOpener::new(dek, ctx, &sealed[..HEADER_SIZE])?;
    let (mut read, mut written, mut index) = (HEADER_SIZE, 0, 0u64);
    loop {
        let last = sealed.len() - read <= SEALED_SEGMENT_SIZE;
        let end = if last {
            sealed.len()
        } else {
            read + SEALED_SEGMENT_SIZE
        };
        let len = opener.open_segment_slice(index, last, &mut sealed[read..end])?;
        sealed.copy_within(read..read + len, written);
        written += len;
        read = end;
        index += 1;
        if last {
            break;
        }
    }
    sealed.truncate(written);
    Ok(sealed)
}

/// The ciphertext byte range holding plaintext `[start, end)`, and the first segment index.
pub struct SealedRange {
    pub first_segment: u64,
    pub last_segment: u64,
    pub sealed_start: u64,
    pub sealed_end: u64,
}

/// Maps a plaintext range onto whole segments, so ranges never decrypt the whole object.
pub fn sealed_range(plain_len: u64, start: u64, end: u64) -> Option<SealedRange> {
    if start >= end || end > plain_len {
        return None;
    }
    let seg = SEGMENT_SIZE as u64;
    let first_segment = start / seg;
    let last_segment = (end - 1) / seg;
    let sealed_start = HEADER_SIZE as u64 + first_segment * SEALED_SEGMENT_SIZE as u64;
    let last_plain_end = ((last_segment + 1) * seg).min(plain_len);
    let sealed_end = HEADER_SIZE as u64 + last_plain_end + TAG_SIZE as u64 * (last_segment + 1);
    Some(SealedRange {
        first_segment,
        last_segment,
        sealed_start,
        sealed_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ObjectContext<'static> {
        ObjectContext {
            study_id: "study-a",
            object_id: "obj-1",
        }
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trip_at_segment_edges() {
        let mut rng = rand::thread_rng();
        let dek = Key32::generate(&mut rng);
        for len in [
            0,
            1,
            SEGMENT_SIZE - 1,
            SEGMENT_SIZE,
            SEGMENT_SIZE + 1,
            3 * SEGMENT_SIZE,
            5 * 1024 * 1024 + 7,
        ] {
            let plain = sample(len);
            let sealed = seal_all(&mut rng, &dek, ctx(), &plain).expect("seal");
            assert_eq!(sealed.len() as u64, sealed_len(len as u64), "len {len}");
            assert_eq!(
                open_all(&dek, ctx(), &sealed).expect("open"),
                plain,
                "len {len}"
            );
            // Fed in awkward chunk sizes, both ways.
            let mut out = Vec::new();
            let mut enc = Encryptor::new(&mut rng, &dek, ctx());
            for c in plain.chunks(7777) {
                enc.update(c, &mut out).expect("update");
            }
            enc.finish(&mut out).expect("finish");
            let mut back = Vec::new();
            let mut dec = Decryptor::new(&dek, ctx());
            for c in out.chunks(1000) {
                dec.update(c, &mut back).expect("dec update");
            }
            dec.finish(&mut back).expect("dec finish");
            assert_eq!(back, plain, "chunked len {len}");
        }
    }

    #[test]
    fn tampering_is_detected() {
        let mut rng = rand::thread_rng();
        let dek = Key32::generate(&mut rng);
        let plain = sample(3 * SEGMENT_SIZE + 100);
        let sealed = seal_all(&mut rng, &dek, ctx(), &plain).expect("seal");

        for pos in [
            0,
            10,
            HEADER_SIZE - 1,
            HEADER_SIZE,
            HEADER_SIZE + SEGMENT_SIZE + 3,
            sealed.len() - 1,
        ] {
            let mut t = sealed.clone();
            t[pos] ^= 0x01;
            assert!(open_all(&dek, ctx(), &t).is_err(), "flip at {pos}");
        }
        // Truncated at a segment boundary: the last remaining segment lacks the final flag.
        let cut = HEADER_SIZE + 2 * SEALED_SEGMENT_SIZE;
        assert_eq!(
            open_all(&dek, ctx(), &sealed[..cut]),
            Err(CryptoError::Tampered)
        );
        assert!(open_all(&dek, ctx(), &sealed[..sealed.len() - 1]).is_err());
        assert!(open_all(&dek, ctx(), &sealed[..HEADER_SIZE]).is_err());
        // Extended: extra bytes after the final segment.
        let mut ext = sealed.clone();
        ext.extend_from_slice(&[0u8; 20]);
        assert!(open_all(&dek, ctx(), &ext).is_err());
        // Swapped segments.
        let mut swapped = sealed.clone();
        let (a, b) = (HEADER_SIZE, HEADER_SIZE + SEALED_SEGMENT_SIZE);
        let seg0 = sealed[a..b].to_vec();
        let seg1 = sealed[b..b + SEALED_SEGMENT_SIZE].to_vec();
        swapped[a..b].copy_from_slice(&seg1);
        swapped[b..b + SEALED_SEGMENT_SIZE].copy_from_slice(&seg0);
        assert_eq!(open_all(&dek, ctx(), &swapped), Err(CryptoError::Tampered));
        // Moved to another study or renamed: commitment fails before decrypting.
        let other_study = ObjectContext {
            study_id: "study-b",
            object_id: "obj-1",
        };
        assert_eq!(
            open_all(&dek, other_study, &sealed),
            Err(CryptoError::CommitmentMismatch)
        );
        let other_obj = ObjectContext {
            study_id: "study-a",
            object_id: "obj-2",
        };
        assert_eq!(
            open_all(&dek, other_obj, &sealed),
            Err(CryptoError::CommitmentMismatch)
        );
        // Another study's key.
        let dek2 = Key32::generate(&mut rng);
        assert_eq!(
            open_all(&dek2, ctx(), &sealed),
            Err(CryptoError::CommitmentMismatch)
        );
    }

    /// The whole-object opener and the streaming one accept and refuse the same
    /// inputs: every cut around the segment edges, and the whole.
    #[test]
    fn in_place_opening_agrees_with_the_stream() {
        let mut rng = rand::thread_rng();
        let dek = Key32::generate(&mut rng);
        let plain = sample(2 * SEGMENT_SIZE + 5);
        let sealed = seal_all(&mut rng, &dek, ctx(), &plain).expect("seal");
        let edges = [
            0,
            HEADER_SIZE - 1,
            HEADER_SIZE,
            HEADER_SIZE + TAG_SIZE,
            HEADER_SIZE + SEALED_SEGMENT_SIZE - 1,
            HEADER_SIZE + SEALED_SEGMENT_SIZE,
            HEADER_SIZE + SEALED_SEGMENT_SIZE + 1,
            HEADER_SIZE + 2 * SEALED_SEGMENT_SIZE,
            HEADER_SIZE + 2 * SEALED_SEGMENT_SIZE + TAG_SIZE,
            sealed.len() - 1,
            sealed.len(),
        ];
        for cut in edges {
            let streamed = {
                let mut out = Vec::new();
                let mut dec = Decryptor::new(&dek, ctx());
                dec.update(&sealed[..cut], &mut out)
                    .and_then(|()| dec.finish(&mut out))
                    .map(|()| out)
            };
            let in_place = open_all_in_place(&dek, ctx(), sealed[..cut].to_vec());
            assert_eq!(in_place.is_ok(), streamed.is_ok(), "cut at {cut}");
            if let (Ok(a), Ok(b)) = (&in_place, &streamed) {
                assert_eq!(a, b, "cut at {cut}");
            }
        }
        assert_eq!(
            open_all_in_place(&dek, ctx(), sealed).expect("whole"),
            plain
        );
    }

    #[test]
    fn ranges_map_to_whole_segments() {
        let mut rng = rand::thread_rng();
        let dek = Key32::generate(&mut rng);
        let plain = sample(3 * SEGMENT_SIZE + 100);
        let sealed = seal_all(&mut rng, &dek, ctx(), &plain).expect("seal");
        let n = segment_count(plain.len() as u64);
        for (s, e) in [
            (0u64, 1u64),
            (5, 70_000),
            (SEGMENT_SIZE as u64, 2 * SEGMENT_SIZE as u64),
            (196_000, plain.len() as u64),
        ] {
            let r = sealed_range(plain.len() as u64, s, e).expect("range");
            let opener = SegmentOpener::new(&dek, ctx(), &sealed[..HEADER_SIZE]).expect("hdr");
            let mut got = Vec::new();
            let mut off = r.sealed_start as usize;
            for i in r.first_segment..=r.last_segment {
                let end = (off + SEALED_SEGMENT_SIZE).min(r.sealed_end as usize);
                let mut seg = sealed[off..end].to_vec();
                opener
                    .open_segment(i, i == n - 1, &mut seg)
                    .expect("segment");
                got.extend_from_slice(&seg);
                off = end;
            }
            let skip = (s - r.first_segment * SEGMENT_SIZE as u64) as usize;
            assert_eq!(
                &got[skip..skip + (e - s) as usize],
                &plain[s as usize..e as usize]
            );
        }
        assert!(sealed_range(10, 5, 11).is_none());
    }
}
