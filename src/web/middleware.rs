//! Every response passes here: a request id, security headers, `no-store` unless a
//! handler chose otherwise, error bodies filled in, and one log line without
//! patient data (paths with tokens are not logged).

use super::error::ErrorInfo;
use crate::app::Services;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct RequestId(pub String);

// Content-Security-Policy: no inline script or style, nothing cross-origin.
// https://developer.mozilla.org/docs/Web/HTTP/Headers/Content-Security-Policy
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn json_path(path: &str) -> bool {
    path.starts_with("/api/")
        || path.starts_with("/dicomweb/")
        || path.starts_with("/view/api/")
        || path.starts_with("/practice/api/")
}

/// A route name for logs: the path with ids and tokens replaced.
fn log_path(path: &str) -> String {
    path.split('/')
        .enumerate()
        .map(|(i, seg)| {
            if i > 0
                && (seg.len() >= 16 || seg.bytes().any(|b| b.is_ascii_digit()) && seg.len() > 4)
            {
                ":id"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

pub async fn request_context(
    State(svc): State<Arc<Services>>,
    mut req: Request,
    next: Next,
) -> Response {
    let mut raw = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let request_id = hex::encode(raw);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let started = std::time::Instant::now();

    // Browsers send Origin on cross-site form posts; refuse state changes from elsewhere.
    // A state change from another site: a foreign Origin, or the browser's own Fetch
    // Metadata saying so. Clients without either (API tools) send
    // no ambient cookies, so there is nothing to forge.
    let headers = req.headers();
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    let fetch_site = headers.get("sec-fetch-site").and_then(|o| o.to_str().ok());
    let cross_site = method != Method::GET
        && method != Method::HEAD
        // "null" is what browsers send for our own forms under no-referrer; Fetch
        // Metadata then tells same-origin from an opaque foreign frame.
        && (origin.is_some_and(|o| o != "null" && o != svc.public_url)
            || fetch_site.is_some_and(|f| f != "same-origin" && f != "none"));
    let mut res = if cross_site && !path.starts_with("/api/") && !path.starts_with("/dicomweb/") {
        super::error::WebError::new(
            StatusCode::FORBIDDEN,
            "cross_site_request",
            "Request refused.",
        )
        .into_response()
    } else {
        next.run(req).await
    };

    if let Some(info) = res.extensions_mut().remove::<ErrorInfo>() {
        if let Some(internal) = &info.internal {
            tracing::error!(request_id, route = %log_path(&path), error = %internal, "request failed");
        }
        let status = res.status();
        let mut new = if json_path(&path) {
            axum::Json(serde_json::json!({
                "error": {"code": info.code, "message": info.message, "request_id": request_id}
            }))
            .into_response()
        } else {
            super::pages::error_page(status, info.code, &info.message, &request_id)
        };
        *new.status_mut() = status;
        for (k, v) in res.headers() {
            if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                new.headers_mut().insert(k.clone(), v.clone());
            }
        }
        res = new;
    }

    let h = res.headers_mut();
    h.insert(
        "x-request-id",
        HeaderValue::from_str(&request_id).unwrap_or(HeaderValue::from_static("-")),
    );
    // A handler may set a stricter policy (uploaded PDFs get `sandbox`).
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if svc.public_url.starts_with("https://") {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    crate::metrics::record_status(res.status().as_u16());
    tracing::info!(
        request_id,
        method = %method,
        route = %log_path(&path),
        status = res.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    res
}

pub fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}
