//! HTTP: the only module that knows axum, askama and status codes. Every route and
//! who may call it fits on one screen here.

pub mod api;
pub mod assets;
pub mod dicomweb;
pub mod docs;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod pages;
pub mod patient;
pub mod patient_files;
pub mod practice_admin;
pub mod staff;
pub mod upload_body;

use crate::app::Services;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use std::sync::Arc;

/// Form posts (sign-in) are tiny; anything bigger is refused before reading.
const FORM_LIMIT: usize = 16 * 1024;

pub fn router(svc: Arc<Services>) -> Router {
    let upload_limit = usize::try_from(svc.config.max_upload_bytes).unwrap_or(usize::MAX);
    let api = Router::new()
        // anyone with client credentials
        .route("/api/v1/token", post(api::post_token))
        // the practice's API clients (ApiCaller)
        .route(
            "/api/v1/studies",
            get(api::get_studies)
                .post(api::post_studies)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route(
            "/api/v1/studies/{id}",
            get(api::get_study).delete(api::delete_study),
        )
        .route("/api/v1/studies/{id}/grants", post(api::post_grant))
        .route("/api/v1/studies/{id}/audit", get(api::get_study_audit))
        .route(
            "/api/v1/studies/{id}/findings",
            post(api::post_findings).layer(DefaultBodyLimit::max(
                crate::studies::findings::MAX_FINDINGS_BYTES,
            )),
        )
        .route("/api/v1/grants/{id}", delete(api::delete_grant))
        .route("/api/v1/grants/{id}/letter.pdf", get(api::get_grant_letter))
        .route("/api/v1/grants/{id}/reissue", post(api::post_reissue))
        .route("/api/v1/grants/{id}/extend", post(api::post_extend))
        .route(
            "/api/v1/studies/{id}/patient-letter.pdf",
            get(api::get_patient_letter),
        )
        // DICOMweb (STOW-RS, QIDO-RS): the practice's API clients
        .route(
            "/dicomweb/studies",
            get(dicomweb::get_studies)
                .post(dicomweb::post_studies)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route(
            "/dicomweb/studies/{study}/series",
            get(dicomweb::get_series),
        )
        .route(
            "/dicomweb/studies/{study}/series/{series}/instances",
            get(dicomweb::get_instances),
        )
        .route(
            "/dicomweb/studies/{study}/series/{series}/instances/{instance}/rendered",
            get(dicomweb::get_rendered_instance),
        )
        .route(
            "/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/rendered",
            get(dicomweb::get_rendered_frame),
        );
    let patient = Router::new()
        // anyone: sign-in pages (the grant's secrets decide)
        .route(
            "/access",
            get(patient::get_access).post(patient::post_access),
        )
        .route(
            "/s",
            get(patient::get_link_form).post(patient::post_link_form),
        )
        .route(
            "/s/{token}",
            get(patient::get_link).post(patient::post_link),
        )
        // a live patient/referrer session (PatientSession)
        .route("/view", get(patient::get_viewer))
        .route("/view/api/study", get(patient::get_manifest))
        .route(
            "/view/api/instances/{id}/thumbnail",
            get(patient::get_thumbnail),
        )
        .route(
            "/view/api/series/{id}/stack",
            get(patient_files::get_series_stack),
        )
        .route(
            "/view/api/instances/{id}/frames/{frame}/rendered",
            get(patient::get_rendered),
        )
        .route("/view/api/heartbeat", post(patient::post_heartbeat))
        .route("/view/api/leave", post(patient::post_leave))
        .route("/view/forward", post(patient::post_forward))
        .route(
            "/view/forwards/{id}/letter.pdf",
            get(patient::get_forward_letter),
        )
        .route(
            "/view/forwards/{id}/revoke",
            post(patient::post_forward_revoke),
        )
        .route("/view/api/findings/{id}", get(patient::get_findings_pdf))
        .route(
            "/view/api/findings/{id}/pages/{page}",
            get(patient_files::get_findings_page),
        )
        // ... and its grant allows downloads
        .route(
            "/view/api/instances/{id}/frames/{frame}/download",
            get(patient_files::get_image_download),
        )
        .route(
            "/view/download/study.zip",
            get(patient_files::get_study_zip),
        )
        .route("/view/logout", post(patient::post_logout))
        .layer(DefaultBodyLimit::max(FORM_LIMIT));
    let practice = Router::new()
        // anyone: staff sign-in (password, then TOTP)
        .route("/login", get(staff::get_login).post(staff::post_login))
        // a staff member half-way through the first sign-in (PendingStaff)
        .route("/login/password", post(staff::post_login_password))
        // a signed-in staff member (StaffSession), own practice only
        .route("/logout", post(staff::post_logout))
        .route(
            "/practice",
            get(staff::get_studies).post(staff::post_studies),
        )
        .route("/practice/studies/{id}", get(staff::get_study))
        .route("/practice/studies/{id}/grants", post(staff::post_grant))
        .route("/practice/studies/{id}/delete", post(staff::post_delete))
        .route(
            "/practice/studies/{id}/findings",
            post(staff::post_findings).layer(DefaultBodyLimit::max(
                crate::studies::findings::MAX_FINDINGS_BYTES + 64 * 1024,
            )),
        )
        .route(
            "/practice/studies/{study}/findings/{finding}",
            get(staff::get_findings_pdf),
        )
        .route("/practice/grants/{id}/revoke", post(staff::post_revoke))
        .route("/practice/grants/{id}/reissue", post(staff::post_reissue))
        .route("/practice/grants/{id}/extend", post(staff::post_extend))
        .route(
            "/practice/studies/{id}/patient-letter.pdf",
            get(staff::get_patient_letter),
        )
        .route(
            "/practice/grants/{id}/letter.pdf",
            get(staff::get_grant_letter),
        )
        .route(
            "/practice/api/studies/{study}/instances/{instance}/rendered",
            get(staff::get_rendered),
        )
        .route(
            "/practice/terms",
            get(practice_admin::get_terms).post(practice_admin::post_terms),
        )
        // an admin of the practice (AdminSession)
        .route(
            "/practice/users",
            get(practice_admin::get_users).post(practice_admin::post_user),
        )
        .route(
            "/practice/users/{id}/edit",
            post(practice_admin::post_user_edit),
        )
        .route(
            "/practice/users/{id}/{action}",
            post(practice_admin::post_user_action),
        )
        .route(
            "/practice/api-clients",
            get(practice_admin::get_api_clients).post(practice_admin::post_api_client),
        )
        .route(
            "/practice/api-clients/{id}/{action}",
            post(practice_admin::post_api_client_action),
        )
        .route(
            "/practice/settings",
            get(practice_admin::get_settings).post(practice_admin::post_settings),
        )
        .route("/practice/settings/dicom", post(practice_admin::post_dicom))
        .route(
            "/practice/settings/logo",
            post(practice_admin::post_logo).layer(DefaultBodyLimit::max(
                practice_admin::LOGO_MAX_BYTES + 16 * 1024,
            )),
        )
        .route("/practice/upload", get(staff::get_upload))
        .route(
            "/practice/api/upload",
            post(staff::post_upload).layer(DefaultBodyLimit::max(upload_limit)),
        );
    Router::new()
        .merge(api)
        .merge(patient)
        .merge(practice)
        // anyone
        .route("/", get(|| async { Redirect::to("/access") }))
        .route("/static/{name}", get(assets::get_static))
        .route("/lang/{code}", get(pages::get_lang))
        .route("/api/openapi.json", get(docs::get_openapi))
        .route("/api/docs", get(docs::get_docs))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(|| async { error::WebError::not_found() })
        .layer(axum::middleware::from_fn_with_state(
            svc.clone(),
            middleware::request_context,
        ))
        .with_state(svc)
}

/// Who: anyone (load balancers). Ready when the database and the store answer.
async fn readyz(State(svc): State<Arc<Services>>) -> Response {
    let db = svc.db.ping().await;
    let store = svc.blobs.raw().health().await;
    match (db, store) {
        (Ok(()), Ok(())) => "ready".into_response(),
        (db, store) => {
            tracing::warn!(db_ok = db.is_ok(), store_ok = store.is_ok(), "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
        }
    }
}

/// A PDF answer: shown in the browser (`inline`) or saved (`attachment`).
pub fn pdf_response(bytes: Vec<u8>, filename: &'static str, attachment: bool) -> Response {
    let disposition = if attachment { "attachment" } else { "inline" };
    let mut res = (
        [(axum::http::header::CONTENT_TYPE, "application/pdf")],
        bytes,
    )
        .into_response();
    if let Ok(v) =
        axum::http::HeaderValue::from_str(&format!("{disposition}; filename=\"{filename}\""))
    {
        res.headers_mut()
            .insert(axum::http::header::CONTENT_DISPOSITION, v);
    }
    if attachment {
        // Uploaded documents (findings): if a browser renders one anyway, it runs in
        // a sandbox without scripts, forms or same-origin access.
        res.headers_mut().insert(
            axum::http::header::CONTENT_SECURITY_POLICY,
            axum::http::HeaderValue::from_static(
                "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:",
            ),
        );
    }
    res
}

/// A small multipart form: its text fields (each cut to 100 characters) and its one
/// file field. Any unreadable part is an error.
pub async fn read_small_form(
    mut multipart: axum::extract::Multipart,
    file_field: &str,
) -> Result<
    (
        std::collections::HashMap<String, String>,
        Option<bytes::Bytes>,
    ),
    (),
> {
    let mut texts = std::collections::HashMap::new();
    let mut file = None;
    while let Some(field) = multipart.next_field().await.map_err(|_| ())? {
        let name = field.name().unwrap_or("").to_string();
        if name == file_field {
            file = Some(field.bytes().await.map_err(|_| ())?);
        } else if !name.is_empty() && texts.len() < 16 {
            let text: String = field
                .text()
                .await
                .map_err(|_| ())?
                .chars()
                .take(100)
                .collect();
            texts.insert(name, text);
        }
    }
    Ok((texts, file))
}
