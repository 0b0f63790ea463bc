//! The viewer's files, embedded in the binary (no build step, nothing from a CDN).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const FILES: &[(&str, &str, &str)] = &[
    (
        "lichtkasten.css",
        "text/css; charset=utf-8",
        include_str!("../../viewer/lichtkasten.css"),
    ),
    (
        "viewer.js",
        "text/javascript; charset=utf-8",
        include_str!("../../viewer/viewer.js"),
    ),
    (
        "upload.js",
        "text/javascript; charset=utf-8",
        include_str!("../../viewer/upload.js"),
    ),
];

/// Who: anyone. No patient data here; still `no-store` like every other answer, so
/// a patient's device keeps nothing of the visit (the files are a few KB).
pub async fn get_static(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, body)) => ([(header::CONTENT_TYPE, *mime)], *body).into_response(),
        None => super::error::WebError::new(StatusCode::NOT_FOUND, "not_found", "Not found.")
            .into_response(),
    }
}
