//! The viewer's files, embedded in the binary (no build step, nothing from a CDN).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::path::PathBuf;
use std::sync::OnceLock;

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
        "image-viewer.js",
        "text/javascript; charset=utf-8",
        include_str!("../../viewer/image-viewer.js"),
    ),
    (
        "iv-pane.js",
        "text/javascript; charset=utf-8",
        include_str!("../../viewer/iv-pane.js"),
    ),
    (
        "iv-loader.js",
        "text/javascript; charset=utf-8",
        include_str!("../../viewer/iv-loader.js"),
    ),
    (
        "iv-geometry.js",
        "text/javascript; charset=utf-8",
        include_str!("../../viewer/iv-geometry.js"),
    ),
    (
        "iv-i18n.js",
        "text/javascript; charset=utf-8",
        include_str!("../../viewer/iv-i18n.js"),
    ),
    (
        "upload.js",
        "text/javascript; charset=utf-8",
        include_str!("../../viewer/upload.js"),
    ),
];

/// Set by `demo` alone (env `LICHTKASTEN_VIEWER_DIR`): the viewer's files are read from
/// this folder on every request, so the JavaScript can be changed without a rebuild.
static DEV_DIR: OnceLock<PathBuf> = OnceLock::new();

pub fn serve_viewer_from(dir: PathBuf) {
    let _ = DEV_DIR.set(dir);
}

fn from_dev_dir(name: &str) -> Option<Response> {
    let dir = DEV_DIR.get()?;
    let (stem, ext) = name.rsplit_once('.')?;
    let mime = match ext {
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        _ => return None,
    };
    // A plain file name only: never a path out of the folder.
    if stem.is_empty()
        || !stem
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return None;
    }
    let body = std::fs::read(dir.join(name)).ok()?;
    Some(([(header::CONTENT_TYPE, mime)], body).into_response())
}

/// Who: anyone. No patient data here; still `no-store` like every other answer, so
/// a patient's device keeps nothing of the visit (the files are a few KB).
pub async fn get_static(Path(name): Path<String>) -> Response {
    if let Some(res) = from_dev_dir(&name) {
        return res;
    }
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, body)) => ([(header::CONTENT_TYPE, *mime)], *body).into_response(),
        None => super::error::WebError::new(StatusCode::NOT_FOUND, "not_found", "Not found.")
            .into_response(),
    }
}
