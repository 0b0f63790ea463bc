//! What a patient or referrer session fetches besides pages: findings pages as
//! images, an image as JPEG, the whole study as ZIP. All `no-store`.

use super::error::WebError;
use super::extract::PatientSession;
use crate::app::Services;
use crate::domain::is_valid_id;
use crate::studies::findings_view;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

type Svc = State<Arc<Services>>;

fn private(mut res: Response) -> Response {
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    res
}

fn attachment(mut res: Response, filename: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

/// Who: a live patient or referrer session, for findings its audience may see.
/// Page `page` (from 1) of a findings PDF, rasterised here, as PNG.
pub async fn get_findings_page(
    State(svc): Svc,
    PatientSession(scope): PatientSession,
    Path((id, page)): Path<(String, usize)>,
) -> Result<Response, WebError> {
    if !is_valid_id(&id) || page == 0 || page > findings_view::MAX_PAGES {
        return Err(WebError::not_found());
    }
    let early =
        crate::studies::findings::early_access(&svc, &scope.practice_id, &scope.audience).await?;
    let pdf =
        crate::studies::findings::read(&svc, &scope.practice_id, &scope.study_id, &id, !early)
            .await?;
    let png = tokio::task::spawn_blocking(move || {
        findings_view::render_page(pdf, page - 1)
            .ok()
            .and_then(|r| r.to_png().ok())
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(WebError::not_found)?;
    Ok(private(
        ([(header::CONTENT_TYPE, "image/png")], png).into_response(),
    ))
}

/// Who: a live patient or referrer session whose grant allows downloads. One frame
/// (from 1) as a JPEG marked "not for diagnostic use".
pub async fn get_image_download(
    State(svc): Svc,
    PatientSession(scope): PatientSession,
    Path((instance_id, frame)): Path<(String, u32)>,
) -> Result<Response, WebError> {
    if !is_valid_id(&instance_id) || frame == 0 {
        return Err(WebError::not_found());
    }
    let jpeg = crate::downloads::image_jpeg(&svc, &scope, &instance_id, frame - 1).await?;
    let res = ([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response();
    Ok(private(attachment(res, "bild.jpg")))
}

/// Who: a live patient or referrer session whose grant allows downloads. The study
/// as a CD-like ZIP, streamed.
pub async fn get_study_zip(
    State(svc): Svc,
    PatientSession(scope): PatientSession,
) -> Result<Response, WebError> {
    let pieces = crate::downloads::study_zip(svc, scope).await?;
    let stream = futures_util::stream::unfold(pieces, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    });
    let res = (
        [(header::CONTENT_TYPE, "application/zip")],
        Body::from_stream(stream),
    )
        .into_response();
    Ok(private(attachment(res, "untersuchung.zip")))
}
