//! Upload requests of the REST API and the portal, read as they arrive: one DICOM
//! file, a ZIP, or multipart/form-data of files and ZIPs. Each file is stored before
//! the next is read (see [`crate::studies::upload_stream`]).

use super::error::WebError;
use crate::app::Services;
use crate::audit::Actor;
use crate::studies::ingest::{IngestReport, Intake};
use crate::studies::upload::{UploadError, UploadLimits};
use crate::studies::upload_stream::{RequestLimits, Tally, feed};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use std::sync::Arc;

pub fn too_large(max: u64) -> WebError {
    WebError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
        format!("Uploads are limited to {max} bytes."),
    )
}

fn quota_exceeded() -> WebError {
    WebError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "quota_exceeded",
        "The practice's storage quota does not leave room for this upload.",
    )
}

pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The limits of one upload request of this practice.
pub async fn request_limits(svc: &Services, practice_id: &str) -> Result<RequestLimits, WebError> {
    let max = crate::studies::upload_limit(svc, practice_id).await?;
    Ok(RequestLimits {
        max_wire: max,
        files: UploadLimits {
            max_files: svc.config.max_upload_files,
            max_file_bytes: max,
            max_total_bytes: max.saturating_mul(4),
            max_ratio: 200,
        },
    })
}

/// Opens an intake after the checks that need no body: the declared length against
/// the request limit and the practice's quota (413 before a byte is read).
pub async fn open_intake(
    svc: &Arc<Services>,
    practice_id: &str,
    actor: Actor,
    headers: &HeaderMap,
    limits: &RequestLimits,
) -> Result<Intake, WebError> {
    let declared = declared_length(headers);
    if declared.is_some_and(|n| n > limits.max_wire) {
        return Err(too_large(limits.max_wire));
    }
    let intake = Intake::open(svc, practice_id, actor).await?;
    if let (Some(n), Some(left)) = (declared, intake.quota_left()) {
        // A ZIP may unpack to more, which is checked per file as it is stored.
        if n > left {
            return Err(quota_exceeded());
        }
    }
    Ok(intake)
}

/// A limit hit part-way: the request fails, and says how much was stored before.
async fn cut_short(intake: Intake, e: UploadError, limits: &RequestLimits) -> WebError {
    let stored = match intake.finish().await {
        Ok(report) => report.studies.iter().map(|s| s.accepted).sum::<usize>(),
        Err(_) => 0,
    };
    let status = match e {
        UploadError::TooLarge | UploadError::TooManyFiles(_) => StatusCode::PAYLOAD_TOO_LARGE,
        UploadError::Spool | UploadError::Storage => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let what = match &e {
        UploadError::TooLarge => format!(
            "The upload is larger than allowed ({} bytes).",
            limits.max_wire
        ),
        other => format!("{}.", capitalised(&other.to_string())),
    };
    WebError::new(
        status,
        e.code(),
        format!(
            "{what} {stored} file(s) were stored before that; sending the upload again adds only the rest."
        ),
    )
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Reads and stores an upload request; `Ok` carries the per-file report.
pub async fn ingest_request(
    svc: &Arc<Services>,
    practice_id: &str,
    actor: Actor,
    req: Request,
    multipart_only: bool,
) -> Result<IngestReport, WebError> {
    let limits = request_limits(svc, practice_id).await?;
    let (parts, body) = req.into_parts();
    let declared_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Lower case for matching only: the boundary is case-sensitive.
    let content_type = declared_type.to_ascii_lowercase();
    let raw = content_type.starts_with("application/dicom")
        || content_type.starts_with("application/zip")
        || content_type.starts_with("application/octet-stream");
    if !content_type.starts_with("multipart/form-data") && (multipart_only || !raw) {
        return Err(WebError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send application/dicom, application/zip or multipart/form-data.",
        ));
    }
    let mut intake = open_intake(svc, practice_id, actor, &parts.headers, &limits).await?;
    let spool = svc.config.data_dir.join("spool");
    let mut tally = Tally::default();
    let body = body.into_data_stream();
    if raw {
        if let Err(e) = feed(
            &mut intake,
            "upload",
            body,
            &limits,
            &spool,
            &mut tally,
            true,
        )
        .await
        {
            return Err(cut_short(intake, e, &limits).await);
        }
    } else {
        let boundary = multer::parse_boundary(declared_type).map_err(|_| {
            WebError::bad_request("bad_multipart", "The multipart body cannot be read.")
        })?;
        let mut multipart = multer::Multipart::new(body, boundary);
        let mut index = 0;
        loop {
            let field = match multipart.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => break,
                Err(_) => {
                    let e = UploadError::Interrupted {
                        limit: limits.max_wire,
                    };
                    return Err(cut_short(intake, e, &limits).await);
                }
            };
            index += 1;
            let name = field
                .file_name()
                .map(str::to_string)
                .unwrap_or_else(|| format!("part-{index}"));
            if let Err(e) = feed(&mut intake, &name, field, &limits, &spool, &mut tally, true).await
            {
                return Err(cut_short(intake, e, &limits).await);
            }
        }
    }
    let report = intake.finish().await?;
    let only_empty = report.rejected.len() == 1 && report.rejected[0].code == "empty_file";
    if report.studies.is_empty() && (report.rejected.is_empty() || raw && only_empty) {
        return Err(WebError::bad_request(
            "empty_upload",
            "The upload contains no files.",
        ));
    }
    Ok(report)
}
