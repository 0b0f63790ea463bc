//! Reading studies: lists and details for the practice, the manifest and rendered
//! frames for a grant's viewer, deletion with crypto-shredding.

use super::{StudyError, StudySummary, open_record};
use crate::app::Services;
use crate::audit::{self, Actor};
use crate::blob::BlobError;
use crate::crypto::stream::ObjectContext;
use crate::db::studies::{InstanceRow, SeriesRow};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, serde::Serialize)]
pub struct SeriesView {
    #[serde(flatten)]
    pub series: SeriesRow,
    pub instances: Vec<InstanceRow>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StudyDetail {
    #[serde(flatten)]
    pub study: StudySummary,
    pub series: Vec<SeriesView>,
}

pub async fn list(
    svc: &Services,
    practice_id: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<StudySummary>, StudyError> {
    let records = svc
        .db
        .list_studies(practice_id, limit.clamp(1, 500), offset.max(0))
        .await?;
    let mut out = Vec::with_capacity(records.len());
    for rec in records {
        out.push(open_record(svc, rec).await?.0);
    }
    Ok(out)
}

pub async fn detail(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
) -> Result<StudyDetail, StudyError> {
    let record = svc
        .db
        .study_record(practice_id, study_id)
        .await?
        .ok_or(StudyError::NotFound)?;
    let (study, _) = open_record(svc, record).await?;
    let instances = svc.db.instances_of_study(study_id).await?;
    let series = svc
        .db
        .series_of_study(study_id)
        .await?
        .into_iter()
        .map(|s| {
            let mine: Vec<InstanceRow> = instances
                .iter()
                .filter(|i| i.series_id == s.id)
                .cloned()
                .collect();
            SeriesView {
                series: s,
                instances: mine,
            }
        })
        .filter(|s| !s.instances.is_empty())
        .collect();
    Ok(StudyDetail { study, series })
}

/// The original DICOM bytes of one instance, decrypted and checked against the
/// checksum taken at ingest.
pub async fn original(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
    instance_id: &str,
) -> Result<Vec<u8>, StudyError> {
    let key_row = svc
        .db
        .study_key(practice_id, study_id)
        .await?
        .ok_or(StudyError::NotFound)?;
    let inst = svc
        .db
        .instance(study_id, instance_id)
        .await?
        .ok_or(StudyError::NotFound)?;
    let dek = svc.keys.study_key(&svc.db, &key_row).await?;
    let ctx = ObjectContext {
        study_id,
        object_id: &inst.blob_id,
    };
    let bytes = svc
        .blobs
        .get_all(&inst.object_key, &dek, ctx)
        .await
        .map_err(|e| match e {
            BlobError::NotFound => StudyError::Blob(BlobError::NotFound),
            _ => StudyError::Integrity,
        })?;
    if bytes.len() as i64 != inst.plain_size {
        return Err(StudyError::Integrity);
    }
    let expected = svc.db.blob_sha256(&inst.blob_id).await?;
    if hex::encode(Sha256::digest(&bytes)) != expected {
        return Err(StudyError::Integrity);
    }
    Ok(bytes)
}

/// One frame as PNG. Rendering runs off the async threads.
pub async fn render_png(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
    instance_id: &str,
    frame: u32,
) -> Result<Vec<u8>, StudyError> {
    let bytes = original(svc, practice_id, study_id, instance_id).await?;
    let png = tokio::task::spawn_blocking(move || {
        crate::dicom::render::render_frame(&bytes, frame).and_then(|r| r.to_png())
    })
    .await
    .map_err(|_| StudyError::Integrity)??;
    Ok(png)
}

/// Deletes a study: its data key goes in the same transaction as its rows, so the
/// objects are unreadable from that moment; then the objects are removed.
pub async fn delete(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
    actor: &Actor,
) -> Result<(), StudyError> {
    let keys = svc
        .db
        .delete_study(practice_id, study_id)
        .await?
        .ok_or(StudyError::NotFound)?;
    audit::record(
        svc,
        practice_id,
        actor,
        "study.delete",
        Some(study_id),
        &format!("objects={}", keys.len()),
    )
    .await?;
    for key in keys {
        if let Err(e) = svc.blobs.delete(&key).await {
            // The key is gone already; a leftover object is unreadable ciphertext
            // that `purge` removes later.
            tracing::warn!(error = %e, "object removal after study delete failed");
        }
    }
    Ok(())
}

pub async fn audit_log(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
) -> Result<Vec<crate::db::audit::AuditEvent>, StudyError> {
    svc.db
        .study_record(practice_id, study_id)
        .await?
        .ok_or(StudyError::NotFound)?;
    Ok(svc.db.audit_of_study(practice_id, study_id).await?)
}
