//! Key wrapping: a parent key seals a child key (root → practice KEK, KEK → study DEK).
//!
//! Format (v1, frozen): `0x01 || nonce(12) || AES-256-GCM(child) (32 + 16 tag)`.
//! The AAD binds the purpose, the parent's id and the child's id, so a wrapped key
//! copied onto another row or under another parent fails to unwrap.

use super::{CryptoError, Key32, encode_context};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::{CryptoRng, RngCore};

const WRAP_VERSION: u8 = 1;
pub const WRAPPED_LEN: usize = 1 + 12 + 32 + 16;

/// Which level of the hierarchy a wrapped key belongs to; part of the AAD.
#[derive(Debug, Clone, Copy)]
pub enum WrapPurpose {
    PracticeKey,
    StudyKey,
    /// Small secrets such as TOTP seeds, sealed under a practice key.
    Secret,
    /// Patient and study details kept in database rows.
    Record,
}

impl WrapPurpose {
    fn label(self) -> &'static [u8] {
        match self {
            WrapPurpose::PracticeKey => b"practice-kek",
            WrapPurpose::StudyKey => b"study-dek",
            WrapPurpose::Secret => b"secret",
            WrapPurpose::Record => b"record",
        }
    }
}

fn aad(purpose: WrapPurpose, parent_id: &str, child_id: &str) -> Vec<u8> {
    encode_context(&[
        b"lichtkasten/wrap/v1",
        purpose.label(),
        parent_id.as_bytes(),
        child_id.as_bytes(),
    ])
}

pub fn wrap_key<R: RngCore + CryptoRng>(
    rng: &mut R,
    parent: &Key32,
    parent_id: &str,
    purpose: WrapPurpose,
    child_id: &str,
    child: &Key32,
) -> Vec<u8> {
    seal(rng, parent, parent_id, purpose, child_id, child.expose())
}

pub fn unwrap_key(
    parent: &Key32,
    parent_id: &str,
    purpose: WrapPurpose,
    child_id: &str,
    wrapped: &[u8],
) -> Result<Key32, CryptoError> {
    if wrapped.len() != WRAPPED_LEN {
        return Err(CryptoError::BadHeader);
    }
    let plain = open(parent, parent_id, purpose, child_id, wrapped)?;
    Key32::from_slice(&plain).ok_or(CryptoError::BadHeader)
}

/// Seals an arbitrary small secret (e.g. a TOTP seed).
pub fn seal<R: RngCore + CryptoRng>(
    rng: &mut R,
    parent: &Key32,
    parent_id: &str,
    purpose: WrapPurpose,
    child_id: &str,
    secret: &[u8],
) -> Vec<u8> {
    let cipher = Aes256Gcm::new(parent.expose().into());
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);
    let aad = aad(purpose, parent_id, child_id);
    // AES-GCM only fails for inputs beyond 64 GiB; these are keys and short records.
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: &aad,
            },
        )
        .expect("AES-GCM sealing of a small buffer");
    let mut out = Vec::with_capacity(1 + 12 + ct.len());
    out.push(WRAP_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

pub fn open(
    parent: &Key32,
    parent_id: &str,
    purpose: WrapPurpose,
    child_id: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < 1 + 12 + 16 || sealed[0] != WRAP_VERSION {
        return Err(CryptoError::BadHeader);
    }
    let cipher = Aes256Gcm::new(parent.expose().into());
    let aad = aad(purpose, parent_id, child_id);
    cipher
        .decrypt(
            Nonce::from_slice(&sealed[1..13]),
            Payload {
                msg: &sealed[13..],
                aad: &aad,
            },
        )
        .map_err(|_| CryptoError::Tampered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_round_trip_and_binding() {
        let mut rng = rand::thread_rng();
        let parent = Key32::generate(&mut rng);
        let child = Key32::generate(&mut rng);
        let w = wrap_key(&mut rng, &parent, "p1", WrapPurpose::StudyKey, "s1", &child);
        assert_eq!(w.len(), WRAPPED_LEN);
        let back = unwrap_key(&parent, "p1", WrapPurpose::StudyKey, "s1", &w).expect("unwrap");
        assert_eq!(back, child);
        // Moved to another study, another parent id, another purpose, or another key: refused.
        assert!(unwrap_key(&parent, "p1", WrapPurpose::StudyKey, "s2", &w).is_err());
        assert!(unwrap_key(&parent, "p2", WrapPurpose::StudyKey, "s1", &w).is_err());
        assert!(unwrap_key(&parent, "p1", WrapPurpose::PracticeKey, "s1", &w).is_err());
        let other = Key32::generate(&mut rng);
        assert!(unwrap_key(&other, "p1", WrapPurpose::StudyKey, "s1", &w).is_err());
        let mut flipped = w.clone();
        flipped[20] ^= 1;
        assert!(unwrap_key(&parent, "p1", WrapPurpose::StudyKey, "s1", &flipped).is_err());
    }
}
