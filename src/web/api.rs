//! The practice API (bearer tokens from `POST /api/v1/token`). Handlers are thin:
//! parse, call one use case, map the result.

use super::error::WebError;
use super::extract::ApiCaller;
use crate::access::{self, IssuedGrant};
use crate::app::Services;
use crate::audit::Actor;
use crate::auth::api_clients::{self, ApiAuthError, TOKEN_TTL_SECS};
use crate::domain::{Audience, is_valid_id};

use crate::studies::view;
use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

type Svc = State<Arc<Services>>;

#[derive(serde::Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// Who: anyone holding API client credentials (OAuth2 client credentials, RFC 6749 §4.4).
pub async fn post_token(State(svc): Svc, axum::Form(form): axum::Form<TokenForm>) -> Response {
    let oauth_error = |status: StatusCode, error: &str| {
        (status, Json(serde_json::json!({"error": error}))).into_response()
    };
    if form.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let (Some(id), Some(secret)) = (form.client_id, form.client_secret) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    match api_clients::issue_token(&svc.db, &svc.api_limiter, &id, &secret, svc.clock.now()).await {
        Ok(token) => Json(serde_json::json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_TTL_SECS,
        }))
        .into_response(),
        Err(ApiAuthError::InvalidClient) => oauth_error(StatusCode::UNAUTHORIZED, "invalid_client"),
        Err(ApiAuthError::RateLimited(wait_secs)) => super::extract::too_many_requests(wait_secs),
        Err(e) => WebError::internal(e).into_response(),
    }
}

/// Who: the practice's API clients. Body: one DICOM file, a ZIP, or multipart of
/// files; read and stored as it arrives.
pub async fn post_studies(
    State(svc): Svc,
    caller: ApiCaller,
    req: Request,
) -> Result<Response, WebError> {
    let report = super::upload_body::ingest_request(
        &svc,
        &caller.practice_id,
        Actor::ApiClient(caller.client_id),
        req,
        false,
    )
    .await?;
    let status = if report.studies.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)).into_response())
}

#[derive(serde::Deserialize)]
pub struct Page {
    limit: Option<i64>,
    offset: Option<i64>,
}

/// Who: the practice's API clients.
pub async fn get_studies(
    State(svc): Svc,
    caller: ApiCaller,
    Query(page): Query<Page>,
) -> Result<Response, WebError> {
    let studies = view::list(
        &svc,
        &caller.practice_id,
        page.limit.unwrap_or(50),
        page.offset.unwrap_or(0),
    )
    .await?;
    Ok(Json(serde_json::json!({ "studies": studies })).into_response())
}

fn checked_id(id: &str) -> Result<&str, WebError> {
    if is_valid_id(id) {
        Ok(id)
    } else {
        Err(WebError::not_found())
    }
}

/// Who: the practice's API clients; other practices' ids answer 404.
pub async fn get_study(
    State(svc): Svc,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let detail = view::detail(&svc, &caller.practice_id, checked_id(&id)?).await?;
    Ok(Json(detail).into_response())
}

/// Who: the practice's API clients. Crypto-shreds the study.
pub async fn delete_study(
    State(svc): Svc,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    view::delete(
        &svc,
        &caller.practice_id,
        checked_id(&id)?,
        &Actor::ApiClient(caller.client_id),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    audience: Option<Audience>,
    /// Unix seconds.
    expires_at: Option<i64>,
    expires_in_days: Option<i64>,
    /// Images and the study ZIP may be downloaded; default: the practice's setting.
    allow_download: Option<bool>,
}

fn grant_json(g: IssuedGrant) -> serde_json::Value {
    let expires = time::OffsetDateTime::from_unix_timestamp(g.expires_at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    serde_json::json!({
        "id": g.id,
        "access_code": g.access_code,
        "password": g.password,
        "link": g.link,
        "expires_at": expires,
    })
}

/// Who: the practice's API clients. Body (optional JSON): audience, expires_at or expires_in_days.
pub async fn post_grant(
    State(svc): Svc,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let req: GrantRequest = if body.is_empty() {
        GrantRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|_| {
            WebError::bad_request("invalid_json", "The request body is not valid grant JSON.")
        })?
    };
    if req
        .expires_in_days
        .is_some_and(|d| !(1..=access::MAX_GRANT_DAYS).contains(&d))
    {
        return Err(WebError::bad_request(
            "invalid_request",
            "expires_in_days must be between 1 and 1825.",
        ));
    }
    let expires_at = req
        .expires_at
        .or(req.expires_in_days.map(|d| svc.clock.now() + d * 86_400));
    let issued = access::issue_grant(
        &svc,
        &caller.practice_id,
        checked_id(&id)?,
        req.audience.unwrap_or(Audience::Patient),
        expires_at,
        req.allow_download,
        &Actor::ApiClient(caller.client_id),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(grant_json(issued))).into_response())
}

/// Who: the practice's API clients. Ends the grant's live sessions too.
pub async fn delete_grant(
    State(svc): Svc,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    access::revoke_grant(
        &svc,
        &caller.practice_id,
        checked_id(&id)?,
        &Actor::ApiClient(caller.client_id),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Who: the practice's API clients.
pub async fn get_study_audit(
    State(svc): Svc,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let events = view::audit_log(&svc, &caller.practice_id, checked_id(&id)?).await?;
    Ok(Json(serde_json::json!({ "events": events })).into_response())
}

/// Who: the practice's API clients. The access letter of a live grant.
pub async fn get_grant_letter(
    State(svc): Svc,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let pdf = access::grant_letter(
        &svc,
        &caller.practice_id,
        checked_id(&id)?,
        &Actor::ApiClient(caller.client_id),
    )
    .await?;
    Ok(super::pdf_response(pdf, "zugangsbrief.pdf", false))
}

/// Who: the practice's API clients. One page for all studies of this study's patient
/// that have a live patient grant.
pub async fn get_patient_letter(
    State(svc): Svc,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let pdf = access::patient_letter(
        &svc,
        &caller.practice_id,
        checked_id(&id)?,
        &Actor::ApiClient(caller.client_id),
    )
    .await?;
    Ok(super::pdf_response(pdf, "zugangsbrief.pdf", false))
}

/// Who: the practice's API clients. A new password; the old one and live sessions end.
pub async fn post_reissue(
    State(svc): Svc,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let issued = access::reissue_grant(
        &svc,
        &caller.practice_id,
        checked_id(&id)?,
        &Actor::ApiClient(caller.client_id),
    )
    .await?;
    Ok(Json(grant_json(issued)).into_response())
}

#[derive(serde::Deserialize)]
pub struct ExtendRequest {
    /// Unix seconds.
    expires_at: Option<i64>,
    expires_in_days: Option<i64>,
}

/// Who: the practice's API clients. Moves a live grant's end date.
pub async fn post_extend(
    State(svc): Svc,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    // Another practice's grant answers like a missing one, whatever the body.
    let id = checked_id(&id)?;
    if svc.db.grant(&caller.practice_id, id).await?.is_none() {
        return Err(WebError::not_found());
    }
    let req: ExtendRequest = serde_json::from_slice(&body).map_err(|_| {
        WebError::bad_request(
            "invalid_json",
            "Send {\"expires_in_days\": N} or {\"expires_at\": unix seconds}.",
        )
    })?;
    let expires_at = match (req.expires_at, req.expires_in_days) {
        (Some(t), None) => t,
        (None, Some(d)) if (1..=access::MAX_GRANT_DAYS).contains(&d) => {
            svc.clock.now() + d * 86_400
        }
        _ => {
            return Err(WebError::bad_request(
                "invalid_request",
                "Give either expires_at or expires_in_days (1 to 1825).",
            ));
        }
    };
    access::extend_grant(
        &svc,
        &caller.practice_id,
        id,
        expires_at,
        &Actor::ApiClient(caller.client_id),
    )
    .await?;
    Ok(Json(serde_json::json!({ "id": id, "expires_at": expires_at })).into_response())
}

#[derive(serde::Deserialize, Default)]
pub struct FindingsQuery {
    /// `now`, `default` (the practice's delay), or absent with `release_at`.
    release: Option<String>,
    /// Unix seconds.
    release_at: Option<i64>,
}

/// Who: the practice's API clients. Body: the findings PDF (`application/pdf`).
pub async fn post_findings(
    State(svc): Svc,
    caller: ApiCaller,
    Path(id): Path<String>,
    Query(q): Query<FindingsQuery>,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    use crate::studies::findings::{self, Release};
    let release = match (q.release.as_deref(), q.release_at) {
        (_, Some(t)) => Release::At(t),
        (Some("now"), None) => Release::Now,
        (None | Some("default"), None) => Release::PracticeDefault,
        _ => {
            return Err(WebError::bad_request(
                "invalid_request",
                "release is now, default, or give release_at.",
            ));
        }
    };
    let f = findings::attach(
        &svc,
        &caller.practice_id,
        checked_id(&id)?,
        body,
        release,
        &Actor::ApiClient(caller.client_id),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"id": f.id, "release_at": f.release_at})),
    )
        .into_response())
}
