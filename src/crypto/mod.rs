//! Envelope encryption, pure: no IO, no clock, randomness passed in.
//!
//! Hierarchy (DESIGN §3): root key → practice key (KEK) → study data key (DEK) →
//! per-object key derived with HKDF from the DEK and a random salt. Keys wrap the
//! level below with AES-256-GCM ([`wrap`]); objects are sealed in fixed segments
//! ([`stream`]).

pub mod spool;
pub mod stream;
pub mod wrap;

use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// A 256-bit secret key. Never printed; wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Key32([u8; 32]);

impl Key32 {
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        Key32(k)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Key32(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Key32(arr))
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// A stable, non-secret identifier of a root key: lets wrapped keys name the
    /// key that wrapped them without revealing anything about it.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"lichtkasten/key-id/v1");
        h.update(self.0);
        hex::encode(&h.finalize()[..8])
    }
}

impl Drop for Key32 {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key32(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("unsupported or corrupt header")]
    BadHeader,
    #[error("key commitment mismatch: wrong key or object moved")]
    CommitmentMismatch,
    #[error("authentication failed: data tampered, truncated or reordered")]
    Tampered,
    #[error("object too large for the format")]
    TooLarge,
}

/// Length-prefixes each part so that ("ab","c") and ("a","bc") never collide.
pub(crate) fn encode_context(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}
