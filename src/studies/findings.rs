//! Findings: PDF reports attached to a study, stored encrypted like the images,
//! released to patients at a set time (at once, after the practice's delay, or a date).

use super::StudyError;
use crate::app::Services;
use crate::audit::{self, Actor};
use crate::blob::{object_key, once};
use crate::crypto::stream::ObjectContext;
use crate::db::studies::{FindingRow, NewBlob};
use crate::domain::new_id;
use sha2::{Digest, Sha256};

pub const MAX_FINDINGS_BYTES: usize = 50 * 1024 * 1024;

/// When a new finding becomes visible to the patient.
#[derive(Debug, Clone, Copy)]
pub enum Release {
    Now,
    PracticeDefault,
    At(i64),
}

/// A PDF is a PDF: the header at the start and an end-of-file marker near the end.
pub fn looks_like_pdf(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    bytes.len() <= MAX_FINDINGS_BYTES
        && bytes.starts_with(b"%PDF-")
        && tail.windows(5).any(|w| w == b"%%EOF")
}

pub async fn attach(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
    pdf: bytes::Bytes,
    release: Release,
    actor: &Actor,
) -> Result<FindingRow, StudyError> {
    // Another practice's study answers like a missing one, whatever the body.
    let record = svc
        .db
        .study_record(practice_id, study_id)
        .await?
        .ok_or(StudyError::NotFound)?;
    if !looks_like_pdf(&pdf) {
        return Err(StudyError::NotPdf);
    }
    let (_, dek) = super::open_record(svc, record).await?;
    let now = svc.clock.now();
    let release_at = match release {
        Release::Now => now,
        Release::At(t) => t.max(now),
        Release::PracticeDefault => {
            let hours = svc
                .db
                .practice_settings(practice_id)
                .await?
                .map(|s| s.findings_delay_hours)
                .unwrap_or(0);
            now + hours * 3600
        }
    };
    let blob_id = new_id(&mut rand::rngs::OsRng);
    let key = object_key(&blob_id);
    let sha = hex::encode(Sha256::digest(&pdf));
    let ctx = ObjectContext {
        study_id,
        object_id: &blob_id,
    };
    let report = svc.blobs.put(&key, &dek, ctx, once(pdf)).await?;
    let id = new_id(&mut rand::rngs::OsRng);
    let blob = NewBlob {
        id: &blob_id,
        study_id,
        kind: "findings",
        object_key: &key,
        plain_size: report.plain_len as i64,
        stored_size: report.stored_len as i64,
        sha256: &sha,
    };
    if let Err(e) = svc
        .db
        .insert_finding(&id, practice_id, &blob, release_at, now)
        .await
    {
        let _ = svc.blobs.delete(&key).await;
        return Err(e.into());
    }
    audit::record(
        svc,
        practice_id,
        actor,
        "findings.attach",
        Some(study_id),
        &format!("findings={id} release_at={release_at}"),
    )
    .await?;
    Ok(FindingRow {
        id,
        release_at,
        created_at: now,
        size: report.plain_len as i64,
        blob_id,
        object_key: key,
    })
}

pub async fn list(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
) -> Result<Vec<FindingRow>, StudyError> {
    Ok(svc.db.findings_of_study(practice_id, study_id).await?)
}

/// The original PDF. `released_only` for patients: before release it does not exist.
pub async fn original(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
    finding_id: &str,
    released_only: bool,
    actor: &Actor,
) -> Result<Vec<u8>, StudyError> {
    let bytes = read(svc, practice_id, study_id, finding_id, released_only).await?;
    audit::record(
        svc,
        practice_id,
        actor,
        "findings.open",
        Some(study_id),
        &format!("findings={finding_id}"),
    )
    .await?;
    Ok(bytes)
}

/// The decrypted, checked PDF, not audited: for showing it inside a page that is
/// audited itself.
pub async fn read(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
    finding_id: &str,
    released_only: bool,
) -> Result<Vec<u8>, StudyError> {
    let now = svc.clock.now();
    let f = list(svc, practice_id, study_id)
        .await?
        .into_iter()
        .find(|f| f.id == finding_id && (!released_only || f.release_at <= now))
        .ok_or(StudyError::NotFound)?;
    read_row(svc, practice_id, study_id, &f).await
}

/// [`read`] for a finding the caller has already listed (and checked the release of).
pub async fn read_row(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
    f: &FindingRow,
) -> Result<Vec<u8>, StudyError> {
    let record = svc
        .db
        .study_record(practice_id, study_id)
        .await?
        .ok_or(StudyError::NotFound)?;
    let (_, dek) = super::open_record(svc, record).await?;
    let ctx = ObjectContext {
        study_id,
        object_id: &f.blob_id,
    };
    let bytes = svc
        .blobs
        .get_all(&f.object_key, &dek, ctx)
        .await
        .map_err(|_| StudyError::Integrity)?;
    if hex::encode(Sha256::digest(&bytes)) != svc.db.blob_sha256(&f.blob_id).await? {
        return Err(StudyError::Integrity);
    }
    Ok(bytes)
}

/// Whether findings not yet released are visible to this grant's audience: referring
/// doctors see them early if the practice says so; patients never do.
pub async fn early_access(
    svc: &Services,
    practice_id: &str,
    audience: &str,
) -> Result<bool, StudyError> {
    if audience != "referrer" {
        return Ok(false);
    }
    Ok(svc
        .db
        .practice_settings(practice_id)
        .await?
        .is_some_and(|s| s.referrer_findings_early))
}
