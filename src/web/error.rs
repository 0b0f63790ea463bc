//! Errors as users see them: a stable code, a plain message and the request id to
//! quote. Internal detail goes to the log only (it could carry patient data).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub code: &'static str,
    pub message: String,
    /// Logged with the request id, never sent.
    pub internal: Option<String>,
}

#[derive(Debug)]
pub struct WebError {
    pub status: StatusCode,
    pub info: ErrorInfo,
}

impl WebError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        WebError {
            status,
            info: ErrorInfo {
                code,
                message: message.into(),
                internal: None,
            },
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let mut e = WebError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Something went wrong on our side. Please try again; if it persists, quote the request id.",
        );
        e.info.internal = Some(detail.to_string());
        e
    }

    pub fn not_found() -> Self {
        WebError::new(StatusCode::NOT_FOUND, "not_found", "Not found.")
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        WebError::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let mut res = self.status.into_response();
        res.extensions_mut().insert(self.info);
        res
    }
}

impl From<crate::db::DbError> for WebError {
    fn from(e: crate::db::DbError) -> Self {
        WebError::internal(e)
    }
}

impl From<crate::studies::StudyError> for WebError {
    fn from(e: crate::studies::StudyError) -> Self {
        use crate::studies::StudyError as S;
        match e {
            S::NotFound => WebError::not_found(),
            S::PatientMismatch => WebError::new(
                StatusCode::CONFLICT,
                "patient_mismatch",
                "The study belongs to another patient.",
            ),
            S::NotPdf => WebError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_pdf",
                "Findings must be a PDF file of at most 50 MB.",
            ),
            S::Dicom(d) => WebError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                d.code(),
                d.public_message(),
            ),
            S::Integrity => {
                let mut w = WebError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "integrity_error",
                    "A stored file failed its integrity check and was not served.",
                );
                w.info.internal = Some("stored object failed verification".into());
                w
            }
            other => WebError::internal(other),
        }
    }
}

impl From<crate::downloads::DownloadError> for WebError {
    fn from(e: crate::downloads::DownloadError) -> Self {
        match e {
            crate::downloads::DownloadError::NotAllowed => WebError::new(
                StatusCode::FORBIDDEN,
                "downloads_not_allowed",
                "The practice has not allowed downloads for this access.",
            ),
            crate::downloads::DownloadError::Study(e) => e.into(),
        }
    }
}

impl From<crate::access::AccessError> for WebError {
    fn from(e: crate::access::AccessError) -> Self {
        use crate::access::AccessError as A;
        match e {
            A::Denied => WebError::new(
                StatusCode::UNAUTHORIZED,
                "access_denied",
                "Access code or password is not valid, or access has ended.",
            ),
            A::NotFound => WebError::not_found(),
            A::Invalid(msg) => WebError::bad_request("invalid_request", msg),
            A::Forbidden(msg) => WebError::new(StatusCode::FORBIDDEN, "not_allowed", msg),
            A::Hash(crate::auth::passwords::HashError::Busy) => busy(),
            A::Study(e) => WebError::from(e),
            other => WebError::internal(other),
        }
    }
}

pub fn busy() -> WebError {
    WebError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "The server is busy. Please try again in a moment.",
    )
}
