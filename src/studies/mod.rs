//! Use cases on studies: ingest, view, delete. Every byte of patient data leaves
//! through here; each function takes the caller's practice scope and audits.

pub mod findings;
pub mod findings_view;
pub mod ingest;
pub mod prepared;
pub mod recent;
pub mod upload;
pub mod upload_stream;
pub mod view;

use crate::blob::BlobError;
use crate::db::DbError;
use crate::keys::KeyError;

#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("stored object failed verification")]
    Integrity,
    #[error(transparent)]
    Dicom(#[from] crate::dicom::DicomError),
    #[error("not a PDF")]
    NotPdf,
    #[error("the study belongs to another patient")]
    PatientMismatch,
}

/// A study as the practice and the viewer see it, sealed parts opened.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StudySummary {
    pub id: String,
    pub study_uid: String,
    pub study_date: String,
    pub description: String,
    pub accession: String,
    pub modalities: String,
    pub patient_name: String,
    pub patient_id: String,
    pub patient_birth_date: String,
    pub patient_sex: String,
    pub referring_physician: String,
    pub instance_count: i64,
    pub created_at: i64,
}

/// Opens a study record: unwraps its keys and unseals patient and study details.
pub async fn open_record(
    svc: &crate::app::Services,
    rec: crate::db::studies::StudyRecord,
) -> Result<(StudySummary, crate::crypto::Key32), StudyError> {
    use crate::domain::{PatientDetails, StudyDetails};
    use crate::keys::open_record as open;
    let dek = svc.keys.study_key(&svc.db, &rec.key).await?;
    let kek = svc.keys.practice_key(&svc.db, &rec.patient_kek_id).await?;
    let patient: PatientDetails = serde_json::from_slice(&open(
        &kek,
        &rec.patient_kek_id,
        &rec.patient_row_id,
        &rec.patient_sealed,
    )?)
    .map_err(|_| StudyError::Integrity)?;
    let study: StudyDetails =
        serde_json::from_slice(&open(&dek, &rec.id, &rec.id, &rec.study_sealed)?)
            .map_err(|_| StudyError::Integrity)?;
    Ok((
        StudySummary {
            id: rec.id,
            study_uid: rec.study_uid,
            study_date: rec.study_date,
            description: study.description,
            accession: study.accession,
            modalities: rec.modalities,
            patient_name: patient.name,
            patient_id: patient.patient_id,
            patient_birth_date: patient.birth_date,
            patient_sex: patient.sex,
            referring_physician: study.referring_physician,
            instance_count: rec.instance_count,
            created_at: rec.created_at,
        },
        dek,
    ))
}

/// The largest upload a practice accepts: its own setting, capped by the server's.
pub async fn upload_limit(
    svc: &crate::app::Services,
    practice_id: &str,
) -> Result<u64, StudyError> {
    let practice_mb = svc
        .db
        .practice_settings(practice_id)
        .await?
        .map(|s| s.max_upload_mb.max(1) as u64)
        .unwrap_or(u64::MAX / (1024 * 1024));
    Ok(svc.config.max_upload_bytes.min(practice_mb * 1024 * 1024))
}
