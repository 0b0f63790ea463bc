//! Use cases on studies: ingest, view, delete. Every byte of patient data leaves
//! through here; each function takes the caller's practice scope and audits.

pub mod ingest;
pub mod upload;
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
}
