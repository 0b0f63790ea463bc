//! Who may call a handler is in its signature: [`ApiCaller`] for API clients with a
//! bearer token ([`ApiBearer`] where the handler's own lookup checks it),
//! [`PatientSession`] for a live patient or referrer session.

use super::error::WebError;
use crate::access::sessions::{PatientScope, check_patient_session};
use crate::app::Services;
use crate::auth::api_clients;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;

/// A practice's API client, authenticated by a live bearer token.
pub struct ApiCaller {
    pub practice_id: String,
    pub client_id: String,
}

impl FromRequestParts<Arc<Services>> for ApiCaller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        svc: &Arc<Services>,
    ) -> Result<Self, Self::Rejection> {
        ApiBearer::from_headers(&parts.headers).caller(svc).await
    }
}

/// A request's bearer token, not checked yet: for a handler that checks it inside the
/// one database read its answer needs (Retrieve Rendered, where a second round trip
/// is a measurable share of a render) and, when that read finds nothing, calls
/// [`ApiBearer::caller`] to answer as [`ApiCaller`] would (401 or, for a live token,
/// the handler's 404).
pub struct ApiBearer(Option<String>);

impl ApiBearer {
    fn from_headers(headers: &axum::http::HeaderMap) -> Self {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string());
        ApiBearer(token)
    }

    /// The hash the token is looked up by; None when no usable token was sent.
    pub fn lookup_hash(&self) -> Option<String> {
        self.0.as_deref().and_then(api_clients::lookup_hash)
    }

    /// The answer when the handler's own lookup found nothing: 401 for a refused
    /// token and 429 for a client over its rate, as on every API route, else 404.
    pub async fn nothing_found(&self, svc: &Services) -> Result<Response, WebError> {
        match self.caller(svc).await {
            Ok(_) => Err(WebError::not_found()),
            Err(refused) => Ok(refused),
        }
    }

    /// The API client the token belongs to, or the 401 answer.
    pub async fn caller(&self, svc: &Services) -> Result<ApiCaller, Response> {
        let unauthorized = |why: &str| {
            tracing::info!(reason = why, "api call refused");
            let mut r = WebError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "A valid bearer token is required (POST /api/v1/token).",
            )
            .into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        };
        let Some(token) = self.0.as_deref() else {
            return Err(unauthorized("no bearer token"));
        };
        match api_clients::authenticate(&svc.db, token, svc.clock.now()).await {
            Ok(Some((practice_id, client_id))) => {
                if let Some(refused) = over_rate(svc, &client_id) {
                    return Err(refused);
                }
                Ok(ApiCaller {
                    practice_id,
                    client_id,
                })
            }
            Ok(None) => Err(unauthorized("unknown, expired or disabled token")),
            Err(e) => Err(WebError::internal(e).into_response()),
        }
    }
}

/// Counts a request of an API client (SECURITY.md FI-8); the 429 answer, with
/// `Retry-After`, once the client has used up its requests per minute.
pub fn over_rate(svc: &Services, client_row_id: &str) -> Option<Response> {
    let wait_secs = svc
        .api_limiter
        .allow(client_row_id, svc.clock.now())
        .err()?;
    tracing::info!(wait_secs, "api call over the client's rate");
    Some(too_many_requests(wait_secs))
}

/// 429 with the seconds to wait in `Retry-After`.
pub fn too_many_requests(wait_secs: u64) -> Response {
    let mut r = WebError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Too many requests from this API client. Please retry after the seconds in Retry-After.",
    )
    .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait_secs));
    r
}

impl FromRequestParts<Arc<Services>> for ApiBearer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _svc: &Arc<Services>,
    ) -> Result<Self, Self::Rejection> {
        Ok(ApiBearer::from_headers(&parts.headers))
    }
}

pub fn session_cookie_name(svc: &Services) -> &'static str {
    if svc.secure_cookies {
        "__Host-lk_session"
    } else {
        "lk_session"
    }
}

/// `Set-Cookie` for a new session: no Expires/Max-Age, so it dies with the browser.
pub fn session_cookie(svc: &Services, value: &str) -> String {
    let secure = if svc.secure_cookies { "; Secure" } else { "" };
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict{secure}",
        session_cookie_name(svc)
    )
}

pub fn clear_session_cookie(svc: &Services) -> String {
    let secure = if svc.secure_cookies { "; Secure" } else { "" };
    format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}",
        session_cookie_name(svc)
    )
}

pub fn cookie_value<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    cookie_in(&parts.headers, name)
}

/// The value of cookie `name` in the request headers.
pub fn cookie_in<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Every state-changing staff form carries its session's CSRF token.
pub fn check_csrf(scope: &crate::auth::staff::StaffScope, presented: &str) -> Result<(), WebError> {
    use subtle::ConstantTimeEq;
    if !presented.is_empty() && bool::from(presented.as_bytes().ct_eq(scope.csrf_token.as_bytes()))
    {
        Ok(())
    } else {
        Err(WebError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "The form has expired. Please reload the page and try again.",
        ))
    }
}

/// A live patient or referrer session. Pages without one go to the start page;
/// API calls get 401.
pub struct PatientSession(pub PatientScope);

impl FromRequestParts<Arc<Services>> for PatientSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        svc: &Arc<Services>,
    ) -> Result<Self, Self::Rejection> {
        let is_api = parts.uri.path().starts_with("/view/api/");
        // Heartbeats keep the session alive but count as the person using it only when
        // the page saw input since the last beat (`X-Active: 1`). The viewer's own
        // fetches (images loading in the background) are not a person either; pages
        // and downloads are.
        let path = parts.uri.path();
        let user_input = if path.ends_with("/heartbeat") {
            parts.headers.get("x-active").is_some_and(|v| v == "1")
        } else if is_api {
            path.ends_with("/download")
        } else {
            true
        };
        let token = cookie_value(parts, session_cookie_name(svc)).map(str::to_string);
        let scope = match token {
            Some(t) => check_patient_session(svc, &t, user_input)
                .await
                .map_err(|e| WebError::internal(e).into_response())?,
            None => None,
        };
        match scope {
            Some(s) => Ok(PatientSession(s)),
            None if is_api => Err(WebError::new(
                StatusCode::UNAUTHORIZED,
                "session_ended",
                "Your session has ended. Please sign in again.",
            )
            .into_response()),
            None => Err(Redirect::to("/access?ended=1").into_response()),
        }
    }
}

pub fn staff_cookie_name(svc: &Services) -> &'static str {
    if svc.secure_cookies {
        "__Host-lk_staff"
    } else {
        "lk_staff"
    }
}

pub fn staff_cookie(svc: &Services, value: &str) -> String {
    let secure = if svc.secure_cookies { "; Secure" } else { "" };
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict{secure}",
        staff_cookie_name(svc)
    )
}

pub fn clear_staff_cookie(svc: &Services) -> String {
    let secure = if svc.secure_cookies { "; Secure" } else { "" };
    format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}",
        staff_cookie_name(svc)
    )
}

async fn staff_scope(
    parts: &Parts,
    svc: &Services,
) -> Result<Option<crate::auth::staff::StaffScope>, Response> {
    let Some(token) = cookie_value(parts, staff_cookie_name(svc)) else {
        return Ok(None);
    };
    crate::auth::staff::check(svc, token)
        .await
        .map_err(|e| WebError::internal(e).into_response())
}

fn to_login(parts: &Parts) -> Response {
    if parts.uri.path().starts_with("/practice/api/") {
        WebError::new(
            StatusCode::UNAUTHORIZED,
            "signed_out",
            "Please sign in again.",
        )
        .into_response()
    } else {
        Redirect::to("/login").into_response()
    }
}

/// A fully signed-in staff member (password and TOTP).
pub struct StaffSession(pub crate::auth::staff::StaffScope);

impl FromRequestParts<Arc<Services>> for StaffSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        svc: &Arc<Services>,
    ) -> Result<Self, Self::Rejection> {
        match staff_scope(parts, svc).await? {
            // Until the current terms are accepted, only the terms page and sign-out work.
            Some(s)
                if s.full
                    && !s.terms_accepted
                    && !matches!(parts.uri.path(), "/practice/terms" | "/logout") =>
            {
                if parts.uri.path().starts_with("/practice/api/") {
                    Err(WebError::new(
                        StatusCode::FORBIDDEN,
                        "terms_not_accepted",
                        "Please accept the terms of use first.",
                    )
                    .into_response())
                } else {
                    Err(Redirect::to("/practice/terms").into_response())
                }
            }
            Some(s) if s.full => Ok(StaffSession(s)),
            _ => {
                tracing::info!("staff page without a full session");
                Err(to_login(parts))
            }
        }
    }
}

/// An admin of the practice.
pub struct AdminSession(pub crate::auth::staff::StaffScope);

impl FromRequestParts<Arc<Services>> for AdminSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        svc: &Arc<Services>,
    ) -> Result<Self, Self::Rejection> {
        let StaffSession(s) = StaffSession::from_request_parts(parts, svc).await?;
        if s.is_admin {
            Ok(AdminSession(s))
        } else {
            tracing::info!("admin page refused to a staff role");
            Err(WebError::new(
                StatusCode::FORBIDDEN,
                "admins_only",
                "Only administrators may do this.",
            )
            .into_response())
        }
    }
}

/// A staff member between password and TOTP (or in the first-login steps).
pub struct PendingStaff(pub crate::auth::staff::StaffScope);

impl FromRequestParts<Arc<Services>> for PendingStaff {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        svc: &Arc<Services>,
    ) -> Result<Self, Self::Rejection> {
        match staff_scope(parts, svc).await? {
            Some(s) if !s.full => Ok(PendingStaff(s)),
            _ => Err(Redirect::to("/login").into_response()),
        }
    }
}
