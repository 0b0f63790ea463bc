//! Typed values parsed once at the edge. No IO.

pub mod codes;

use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

/// A random 128-bit id in lowercase hex: says nothing about what it names.
pub fn new_id<R: RngCore + CryptoRng>(rng: &mut R) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    hex::encode(b)
}

/// A random 256-bit secret token, URL-safe.
pub fn new_token<R: RngCore + CryptoRng>(rng: &mut R) -> String {
    use base64::Engine;
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Lookup hash of a high-entropy secret (tokens, session ids, API secrets). These
/// carry ≥ 128 bits, so a fast hash is enough; passwords use argon2id instead.
pub fn token_hash(purpose: &str, secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(purpose.as_bytes());
    h.update([0]);
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

/// An id as it arrives in a path: refuse anything that is not one of ours before
/// it reaches a query.
pub fn is_valid_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    Patient,
    Referrer,
}

impl Audience {
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Patient => "patient",
            Audience::Referrer => "referrer",
        }
    }
}

/// What a DICOM file says about its patient; kept sealed in the database.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PatientDetails {
    pub name: String,
    pub patient_id: String,
    pub birth_date: String,
    pub sex: String,
}

impl PatientDetails {
    /// ID, name and birth date folded so that case, spacing and punctuation
    /// differences between systems do not split one patient in two.
    pub fn match_text(&self) -> String {
        let fold = |s: &str| -> String {
            s.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect()
        };
        format!(
            "{}|{}|{}",
            fold(&self.patient_id),
            fold(&self.name),
            fold(&self.birth_date)
        )
    }
}

/// Study details from the files; sealed under the study key.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StudyDetails {
    pub description: String,
    pub accession: String,
    pub referring_physician: String,
}
