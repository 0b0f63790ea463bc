//! The viewer's files, embedded in the binary (no build step, nothing from a CDN).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
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

/// Who: anyone. No patient data here, so browsers may cache it briefly.
pub async fn get_static(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, body)) => {
            let mut res = ([(header::CONTENT_TYPE, *mime)], *body).into_response();
            res.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            res
        }
        None => super::error::WebError::new(StatusCode::NOT_FOUND, "not_found", "Not found.")
            .into_response(),
    }
}
