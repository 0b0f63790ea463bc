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

/// Query of a rendered frame, after DICOMweb's Retrieve Rendered: `viewport=W,H`
/// (fit inside, never enlarged), `window=C,W` (centre and width in modality units,
/// or a CT preset: `soft`, `lung`, `bone`, `brain`),
/// `quality=1..100` (JPEG); the format is JPEG when asked (`format=jpeg` or
/// `Accept: image/jpeg`), lossless WebP when asked (`format=webp`, or an `Accept`
/// that names `image/webp` first), else the exact PNG.
#[derive(serde::Deserialize, Default)]
pub struct RenderQuery {
    viewport: Option<String>,
    window: Option<String>,
    quality: Option<u8>,
    format: Option<String>,
}

fn pair(s: &str) -> Option<(f64, f64)> {
    let (a, b) = s.split_once(',')?;
    let (a, b) = (a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?);
    (a.is_finite() && b.is_finite()).then_some((a, b))
}

pub fn render_request(
    q: &RenderQuery,
    headers: &axum::http::HeaderMap,
) -> Result<
    (
        crate::dicom::render::RenderOptions,
        crate::studies::view::ImageFormat,
    ),
    WebError,
> {
    use crate::studies::view::ImageFormat;
    let bad = |what: &'static str| WebError::bad_request("invalid_render_request", what);
    let viewport = match q.viewport.as_deref() {
        None => None,
        Some(v) => match pair(v) {
            Some((w, h)) if (1.0..=8192.0).contains(&w) && (1.0..=8192.0).contains(&h) => {
                Some((w as u32, h as u32))
            }
            _ => return Err(bad("viewport is W,H with each between 1 and 8192.")),
        },
    };
    let window = match q.window.as_deref() {
        None => None,
        Some(v) => match (crate::dicom::render::window_preset(v), pair(v)) {
            (Some(preset), _) => Some(preset),
            (None, Some((c, w))) if c.abs() <= 1e7 && (1.0..=1e7).contains(&w) => Some((c, w)),
            _ => {
                return Err(bad(
                    "window is centre,width (width at least 1) or one of soft, lung, bone, brain.",
                ));
            }
        },
    };
    #[derive(PartialEq)]
    enum Wanted {
        Jpeg,
        WebP,
        Png,
    }
    let wanted = match q.format.as_deref() {
        Some("jpeg") => Wanted::Jpeg,
        Some("png") => Wanted::Png,
        Some("webp") => Wanted::WebP,
        Some(_) => return Err(bad("format is jpeg, png or webp.")),
        None => {
            let accept = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            // A browser's image request lists WebP among many types; an API client
            // that wants it names it first.
            if accept.trim_start().starts_with("image/webp") {
                Wanted::WebP
            } else if accept.contains("image/jpeg") && !accept.contains("image/png") {
                Wanted::Jpeg
            } else {
                Wanted::Png
            }
        }
    };
    let format = match (wanted, q.quality) {
        (_, Some(q)) if !(1..=100).contains(&q) => {
            return Err(bad("quality is between 1 and 100."));
        }
        (Wanted::Jpeg, q) => ImageFormat::Jpeg(q.unwrap_or(85)),
        (Wanted::WebP, _) => ImageFormat::WebP,
        (Wanted::Png, _) => ImageFormat::Png,
    };
    Ok((
        crate::dicom::render::RenderOptions { window, viewport },
        format,
    ))
}

/// Frames in one stack answer at most.
const MAX_STACK: usize = 100;

#[derive(serde::Deserialize, Default)]
pub struct StackQuery {
    variant: Option<String>,
    from: Option<usize>,
    count: Option<usize>,
}

/// Who: a live patient or referrer session; series of other studies answer 404.
/// Many frames of one series in one answer, so a phone on a slow link gets a whole
/// CT in a few requests instead of one round trip per slice. Frames come in the
/// manifest's order (its images in turn, each frame in turn), `from` and `count`
/// counting in that order; each is a 4-byte big-endian length and a JPEG, length 0
/// for a frame that could not be drawn (ask for it alone). Streamed frame by frame.
pub async fn get_series_stack(
    State(svc): Svc,
    PatientSession(scope): PatientSession,
    Path(series_id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<StackQuery>,
) -> Result<Response, WebError> {
    use crate::studies::prepared::{PREVIEW, SCROLL, THUMBNAIL};
    if !is_valid_id(&series_id) {
        return Err(WebError::not_found());
    }
    let bad = |what: &'static str| WebError::bad_request("invalid_stack_request", what);
    let (options, format) = match q.variant.as_deref().unwrap_or("scroll") {
        "scroll" => SCROLL,
        "preview" => PREVIEW,
        "thumb" => THUMBNAIL,
        _ => return Err(bad("variant is scroll, preview or thumb.")),
    };
    let count = q.count.unwrap_or(50);
    if !(1..=MAX_STACK).contains(&count) {
        return Err(bad("count is between 1 and 100."));
    }
    let from = q.from.unwrap_or(0);
    let detail = crate::studies::view::detail(&svc, &scope.practice_id, &scope.study_id).await?;
    let series = detail
        .series
        .iter()
        .find(|s| s.series.id == series_id)
        .ok_or_else(WebError::not_found)?;
    let frames: Vec<(String, u32)> = series
        .instances
        .iter()
        // The viewer's own list: images with both dimensions.
        .filter(|i| i.rows > 0 && i.columns > 0)
        .flat_map(|i| (0..i.frames.max(1) as u32).map(move |f| (i.id.clone(), f)))
        .skip(from)
        .take(count)
        .collect();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        for (instance_id, frame) in frames {
            let drawn = crate::studies::view::render_image(
                &svc,
                &scope.practice_id,
                &scope.study_id,
                &instance_id,
                frame,
                options,
                format,
            )
            .await
            .unwrap_or_default();
            let mut piece = Vec::with_capacity(drawn.len() + 4);
            piece.extend_from_slice(&(drawn.len() as u32).to_be_bytes());
            piece.extend_from_slice(&drawn);
            if tx.send(Ok(piece.into())).await.is_err() {
                // The page went away: stop drawing.
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    });
    Ok(private(
        (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            Body::from_stream(stream),
        )
            .into_response(),
    ))
}
