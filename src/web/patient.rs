//! Patient and referrer pages: sign in by code or link (always with the password),
//! the viewer, its data, heartbeat and logout.

use super::error::WebError;
use super::extract::{PatientSession, clear_session_cookie, session_cookie};
use super::pages::{AccessPage, FindingView, ImageView, SeriesView, ViewerPage, render, texts};
use crate::access::{self, AccessError};
use crate::app::Services;
use crate::audit;
use crate::clock::format_datetime;
use crate::dicom::display_person_name;
use crate::domain::is_valid_id;
use crate::studies::view;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use std::net::SocketAddr;
use std::sync::Arc;

type Svc = State<Arc<Services>>;

/// Longest side of the viewer's preview images: sharp at phone width on a 2× screen.
const PREVIEW_PX: u32 = 768;

#[derive(serde::Deserialize, Default)]
pub struct AccessQuery {
    ended: Option<String>,
}

/// Who: anyone. The start page asks for access code and password.
pub async fn get_access(headers: HeaderMap, Query(q): Query<AccessQuery>) -> Response {
    render(
        StatusCode::OK,
        &AccessPage {
            t: texts(&headers),
            action: "/access".into(),
            ask_code: true,
            denied: false,
            ended: q.ended.is_some(),
        },
    )
}

#[derive(serde::Deserialize)]
pub struct AccessForm {
    access_code: Option<String>,
    password: Option<String>,
}

/// After a good password: a browser's form navigation gets the viewer at once (one
/// round trip less on a slow line; the page moves its address to `/view` itself),
/// anything else a redirect to it.
async fn signed_in(svc: &Services, headers: &HeaderMap, session: &str) -> Response {
    let navigating = headers
        .get("sec-fetch-mode")
        .is_some_and(|v| v == "navigate");
    let mut res = if navigating {
        match crate::access::sessions::check_patient_session(svc, session, true).await {
            Ok(Some(scope)) => match viewer_page(svc, scope, headers).await {
                Ok(page) => page,
                Err(e) => e.into_response(),
            },
            Ok(None) => Redirect::to("/view").into_response(),
            Err(e) => WebError::internal(e).into_response(),
        }
    } else {
        Redirect::to("/view").into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&session_cookie(svc, session)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

fn denied_page(headers: &HeaderMap, action: String, ask_code: bool) -> Response {
    render(
        StatusCode::UNAUTHORIZED,
        &AccessPage {
            t: texts(headers),
            action,
            ask_code,
            denied: true,
            ended: false,
        },
    )
}

async fn sign_in_result(
    svc: &Services,
    headers: &HeaderMap,
    result: Result<String, AccessError>,
    action: String,
    ask_code: bool,
) -> Response {
    match result {
        Ok(session) => {
            crate::metrics::SIGNIN_OK.inc();
            signed_in(svc, headers, &session).await
        }
        Err(AccessError::Denied) => {
            crate::metrics::SIGNIN_DENIED.inc();
            denied_page(headers, action, ask_code)
        }
        Err(e) => WebError::from(e).into_response(),
    }
}

/// Who: anyone; the grant's code and password decide.
pub async fn post_access(
    State(svc): Svc,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<AccessForm>,
) -> Response {
    let Some(_in_flight) = svc.password_checks.enter(peer.ip()) else {
        return WebError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "Too many attempts at once. Please wait a moment.",
        )
        .into_response();
    };
    if !svc.signin_limiter.allow(peer.ip(), svc.clock.now()) {
        return WebError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "Too many attempts. Please wait a few minutes.",
        )
        .into_response();
    }
    let result = access::redeem_code(
        &svc,
        form.access_code.as_deref().unwrap_or(""),
        form.password.as_deref().unwrap_or(""),
    )
    .await;
    sign_in_result(&svc, &headers, result, "/access".into(), true).await
}

fn link_cookie_name(svc: &Services) -> &'static str {
    if svc.secure_cookies {
        "__Host-lk_link"
    } else {
        "lk_link"
    }
}

fn clean_token(token: &str) -> String {
    token
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(128)
        .collect()
}

/// Who: anyone with a link. The token moves into a short-lived HttpOnly cookie and
/// leaves the address bar (and the history) at once; the page then asks for the
/// password — the link alone never opens a study.
pub async fn get_link(State(svc): Svc, Path(token): Path<String>) -> Response {
    let secure = if svc.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=900{secure}",
        link_cookie_name(&svc),
        clean_token(&token)
    );
    let mut res = Redirect::to("/s").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// Who: anyone. The password form of a link opened before.
pub async fn get_link_form(headers: HeaderMap) -> Response {
    render(
        StatusCode::OK,
        &AccessPage {
            t: texts(&headers),
            action: "/s".into(),
            ask_code: false,
            denied: false,
            ended: false,
        },
    )
}

/// Who: anyone holding a link cookie and its password.
pub async fn post_link_form(
    State(svc): Svc,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LinkForm>,
) -> Response {
    let token = super::extract::cookie_in(&headers, link_cookie_name(&svc))
        .unwrap_or_default()
        .to_string();
    let mut res = post_link(
        State(svc.clone()),
        ConnectInfo(peer),
        headers,
        Path(token),
        Form(form),
    )
    .await;
    if res.status().is_success() || res.status() == StatusCode::SEE_OTHER {
        // Signed in: the link cookie has done its job.
        let secure = if svc.secure_cookies { "; Secure" } else { "" };
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}",
            link_cookie_name(&svc)
        )) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

#[derive(serde::Deserialize)]
pub struct LinkForm {
    password: Option<String>,
}

/// Who: anyone with a link and its password.
pub async fn post_link(
    State(svc): Svc,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<LinkForm>,
) -> Response {
    let Some(_in_flight) = svc.password_checks.enter(peer.ip()) else {
        return WebError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "Too many attempts at once. Please wait a moment.",
        )
        .into_response();
    };
    if !svc.signin_limiter.allow(peer.ip(), svc.clock.now()) {
        return WebError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "Too many attempts. Please wait a few minutes.",
        )
        .into_response();
    }
    let result = access::redeem_link(&svc, &token, form.password.as_deref().unwrap_or("")).await;
    let action = format!(
        "/s/{}",
        token
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .take(128)
            .collect::<String>()
    );
    sign_in_result(&svc, &headers, result, action, false).await
}

/// Who: a live patient or referrer session; shows only its grant's study.
pub async fn get_viewer(
    State(svc): Svc,
    PatientSession(scope): PatientSession,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    viewer_page(&svc, scope, &headers).await
}

async fn viewer_page(
    svc: &Services,
    scope: crate::access::sessions::PatientScope,
    headers: &HeaderMap,
) -> Result<Response, WebError> {
    let detail = view::detail(svc, &scope.practice_id, &scope.study_id).await?;
    audit::record(
        svc,
        &scope.practice_id,
        &access_actor(&scope),
        "study.view",
        Some(&scope.study_id),
        &format!("grant={}", scope.grant_id),
    )
    .await?;
    let t = texts(headers);
    let can_forward = scope.audience == "patient"
        && svc
            .db
            .practice_allows_forwarding(&scope.practice_id)
            .await?;
    let now_secs = svc.clock.now();
    let forwards = if can_forward {
        access::forwards(svc, &scope)
            .await?
            .into_iter()
            .map(|g| {
                let live = g.revoked_at.is_none() && g.expires_at > now_secs;
                (g.id, super::pages::unix_date(t, g.expires_at), live)
            })
            .collect()
    } else {
        Vec::new()
    };
    // Openings of the study, as the patient may see them: who in plain words.
    let accesses = svc
        .db
        .audit_of_study(&scope.practice_id, &scope.study_id)
        .await?
        .into_iter()
        .rev()
        .filter(|e| {
            matches!(
                e.action.as_str(),
                "grant.redeem" | "findings.open" | "study.view"
            )
        })
        .filter(|e| e.action != "study.view" || e.actor_kind != "patient")
        .take(30)
        .map(|e| {
            let who = match e.actor_kind.as_str() {
                "patient" => t.by_you,
                "referrer" => t.by_doctor,
                _ => t.by_practice,
            };
            let when = if t.lang == "de" {
                crate::clock::format_datetime_de(e.at)
            } else {
                format_datetime(e.at)
            };
            (when, who)
        })
        .collect();
    let now = svc.clock.now();
    let early =
        crate::studies::findings::early_access(svc, &scope.practice_id, &scope.audience).await?;
    let mut findings = Vec::new();
    for f in crate::studies::findings::list(svc, &scope.practice_id, &scope.study_id)
        .await?
        .into_iter()
        .filter(|f| early || f.release_at <= now)
    {
        let pdf = crate::studies::findings::read_row(svc, &scope.practice_id, &scope.study_id, &f)
            .await?;
        let (pages, text) = tokio::task::spawn_blocking(move || {
            let text = crate::studies::findings_view::text(&pdf);
            (crate::studies::findings_view::page_count(pdf), text)
        })
        .await
        .map_err(WebError::internal)?;
        findings.push(FindingView {
            id: f.id,
            date: super::pages::unix_date(t, f.created_at),
            pages: (1..=pages.unwrap_or(0)).collect(),
            text,
        });
    }
    let series = detail
        .series
        .iter()
        .map(|s| SeriesView {
            number: s.series.series_number,
            description: s.series.description.clone(),
            modality: s.series.modality.clone(),
            images: s
                .instances
                .iter()
                // Reports and other documents have no pixels to show.
                .filter(|i| i.rows > 0)
                .map(|i| ImageView {
                    instance: i.id.clone(),
                    // A small JPEG first (fast on a phone); a tap opens the exact PNG.
                    src: format!(
                        "/view/api/instances/{}/frames/1/rendered?viewport={PREVIEW_PX},{PREVIEW_PX}&format=jpeg",
                        i.id
                    ),
                    full: format!("/view/api/instances/{}/frames/1/rendered", i.id),
                    download: format!("/view/api/instances/{}/frames/1/download", i.id),
                    number: i.instance_number,
                    width: i.columns,
                    height: i.rows,
                })
                .collect(),
        })
        .collect();
    let manifest = viewer_manifest(svc, &scope, &detail, t).await?;
    let first_instance = detail
        .series
        .iter()
        .flat_map(|s| s.instances.iter())
        .find(|i| i.rows > 0);
    let first_src = match first_instance {
        Some(i) => Some(first_image_src(svc, &scope, &i.id).await),
        None => None,
    };
    let first = first_instance.zip(first_src).map(|(i, src)| ImageView {
        instance: i.id.clone(),
        src,
        full: String::new(),
        download: String::new(),
        number: i.instance_number,
        width: i.columns,
        height: i.rows,
    });
    Ok(render(
        StatusCode::OK,
        &ViewerPage {
            t,
            patient_name: display_person_name(&detail.study.patient_name),
            study_date: super::pages::dicom_date(t, &detail.study.study_date),
            study_description: detail.study.description.clone(),
            access_until: super::pages::unix_date(t, scope.grant_expires_at),
            series,
            first,
            manifest_json: script_json(&manifest),
            findings,
            accesses,
            can_forward,
            forwards,
            can_download: scope.allow_download,
        },
    ))
}

/// Largest first image sent inside the page (a 768 px preview is 15–110 kB).
const INLINE_FIRST_IMAGE_MAX: usize = 192 * 1024;

/// The page's first image, inside the page as a `data:` URL: on a phone far from the
/// server that saves the round trip of a second request before anything is seen.
/// Only a preview already in the render cache goes in (the page never waits for a
/// render); otherwise, or when it is too big, the page links to it.
async fn first_image_src(
    svc: &Services,
    scope: &crate::access::sessions::PatientScope,
    instance_id: &str,
) -> String {
    use base64::Engine as _;
    let url = format!(
        "/view/api/instances/{instance_id}/frames/1/rendered?viewport={PREVIEW_PX},{PREVIEW_PX}&format=jpeg"
    );
    let cached = async {
        let key_row = svc
            .db
            .study_key(&scope.practice_id, &scope.study_id)
            .await
            .ok()??;
        let dek = svc.keys.study_key(&svc.db, &key_row).await.ok()?;
        crate::studies::prepared::cached(
            svc,
            &scope.study_id,
            &dek,
            instance_id,
            0,
            crate::studies::prepared::PREVIEW_NAME,
        )
        .await
        .ok()?
    };
    match cached.await {
        Some(jpeg) if jpeg.len() <= INLINE_FIRST_IMAGE_MAX => format!(
            "data:image/jpeg;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(jpeg)
        ),
        _ => url,
    }
}

/// JSON placed inside a `<script type="application/json">`: `<`, `>` and `&` written
/// as escapes, so no patient text can close the element or start markup.
fn script_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// What the viewer script draws from: the study's series and images with their
/// geometry, the URL patterns of rendered frames, and what the grant allows. The
/// same JSON is embedded in the page (no extra round trip) and served at
/// `/view/api/study`.
async fn viewer_manifest(
    svc: &Services,
    scope: &crate::access::sessions::PatientScope,
    detail: &view::StudyDetail,
    t: &'static super::pages::Texts,
) -> Result<serde_json::Value, WebError> {
    let now = svc.clock.now();
    let early =
        crate::studies::findings::early_access(svc, &scope.practice_id, &scope.audience).await?;
    let findings: Vec<_> = crate::studies::findings::list(svc, &scope.practice_id, &scope.study_id)
        .await?
        .into_iter()
        .filter(|f| early || f.release_at <= now)
        .collect();
    Ok(serde_json::json!({
        "findings": findings,
        "study": detail,
        "display": {
            "patient_name": display_person_name(&detail.study.patient_name),
            "study_date": super::pages::dicom_date(t, &detail.study.study_date),
            "description": detail.study.description,
        },
        "urls": {
            "frame": "/view/api/instances/{instance}/frames/{frame}/rendered",
            "thumbnail": "/view/api/instances/{instance}/thumbnail",
            "stack": "/view/api/series/{series}/stack",
            "download": if scope.allow_download { "/view/api/instances/{instance}/frames/{frame}/download" } else { "" },
        },
        "preview_px": PREVIEW_PX,
        "can_download": scope.allow_download,
        "access_until": scope.grant_expires_at,
        "session_ends_at": scope.ends_at,
    }))
}

fn access_actor(scope: &crate::access::sessions::PatientScope) -> audit::Actor {
    crate::access::actor_of_scope(scope)
}

/// Who: a live patient or referrer session. The study as JSON for the viewer.
pub async fn get_manifest(
    State(svc): Svc,
    PatientSession(scope): PatientSession,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let detail = view::detail(&svc, &scope.practice_id, &scope.study_id).await?;
    let manifest = viewer_manifest(&svc, &scope, &detail, texts(&headers)).await?;
    Ok(Json(manifest).into_response())
}

/// Who: a live patient or referrer session; instances of other studies answer 404.
/// The first frame as a small JPEG for the series strip (prepared at ingest).
pub async fn get_thumbnail(
    State(svc): Svc,
    PatientSession(scope): PatientSession,
    Path(instance_id): Path<String>,
) -> Result<Response, WebError> {
    if !is_valid_id(&instance_id) {
        return Err(WebError::not_found());
    }
    let (options, format) = crate::studies::prepared::THUMBNAIL;
    session_image(&svc, &scope, &instance_id, 0, options, format).await
}

/// One frame of the session's study, rendered and sent `no-store`.
async fn session_image(
    svc: &Arc<Services>,
    scope: &crate::access::sessions::PatientScope,
    instance_id: &str,
    frame: u32,
    options: crate::dicom::render::RenderOptions,
    format: view::ImageFormat,
) -> Result<Response, WebError> {
    let image = view::render_image(
        svc,
        &scope.practice_id,
        &scope.study_id,
        instance_id,
        frame,
        options,
        format,
    )
    .await?;
    let mut res = ([(header::CONTENT_TYPE, format.media_type())], image).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(res)
}

/// Who: a live patient or referrer session; instances of other studies answer 404.
pub async fn get_rendered(
    State(svc): Svc,
    PatientSession(scope): PatientSession,
    Path((instance_id, frame)): Path<(String, u32)>,
    Query(q): Query<super::patient_files::RenderQuery>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    if !is_valid_id(&instance_id) || frame == 0 {
        return Err(WebError::not_found());
    }
    let (options, format) = super::patient_files::render_request(&q, &headers)?;
    session_image(&svc, &scope, &instance_id, frame - 1, options, format).await
}

/// Who: a live patient or referrer session, from the tab that owns it (header
/// `X-Tab`: the viewer's per-tab nonce). Keeps the session alive while the page is open.
pub async fn post_heartbeat(
    State(svc): Svc,
    PatientSession(scope): PatientSession,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let nonce = headers
        .get("x-tab")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !crate::access::sessions::tab_heartbeat(&svc, &scope, nonce).await? {
        return Err(WebError::new(
            StatusCode::UNAUTHORIZED,
            "session_elsewhere",
            "This access is open in another window. Please sign in again here.",
        ));
    }
    // Seconds, not a time: the phone's clock may be wrong.
    let seconds_left = (scope.ends_at - svc.clock.now()).max(0);
    Ok(Json(serde_json::json!({ "seconds_left": seconds_left })).into_response())
}

/// Who: a live patient or referrer session. The viewer's `pagehide` beacon (body: the
/// tab nonce); the session ends within seconds unless the same tab returns.
pub async fn post_leave(
    State(svc): Svc,
    PatientSession(scope): PatientSession,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let nonce = std::str::from_utf8(&body[..body.len().min(64)]).unwrap_or("");
    crate::access::sessions::tab_leaving(&svc, &scope, nonce).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Who: anyone; ends the session if there is one and clears the site's data.
pub async fn post_logout(State(svc): Svc, session: Result<PatientSession, Response>) -> Response {
    if let Ok(PatientSession(scope)) = session
        && let Err(e) = crate::access::sessions::end_session(&svc, &scope).await
    {
        return WebError::internal(e).into_response();
    }
    let mut res = Redirect::to("/access").into_response();
    let h = res.headers_mut();
    h.insert(
        "clear-site-data",
        HeaderValue::from_static("\"cache\", \"cookies\", \"storage\""),
    );
    if let Ok(v) = HeaderValue::from_str(&clear_session_cookie(&svc)) {
        h.insert(header::SET_COOKIE, v);
    }
    res
}

/// Who: a live patient or referrer session. A released findings PDF of its study.
pub async fn get_findings_pdf(
    State(svc): Svc,
    PatientSession(scope): PatientSession,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    if !is_valid_id(&id) {
        return Err(WebError::not_found());
    }
    let early =
        crate::studies::findings::early_access(&svc, &scope.practice_id, &scope.audience).await?;
    let bytes = crate::studies::findings::original(
        &svc,
        &scope.practice_id,
        &scope.study_id,
        &id,
        !early,
        &access_actor(&scope),
    )
    .await?;
    Ok(super::pdf_response(bytes, "befund.pdf", true))
}

#[derive(serde::Deserialize)]
pub struct ForwardForm {
    days: Option<i64>,
}

/// Who: a live patient session (not a referrer), if the practice allows forwarding.
/// Shows the doctor's code and password once.
pub async fn post_forward(
    State(svc): Svc,
    headers: HeaderMap,
    PatientSession(scope): PatientSession,
    Form(form): Form<ForwardForm>,
) -> Result<Response, WebError> {
    let issued = access::forward_grant(&svc, &scope, form.days.unwrap_or(30)).await?;
    let t = texts(&headers);
    Ok(render(
        StatusCode::OK,
        &super::pages::ForwardIssuedPage {
            t,
            expires: super::pages::unix_date(t, issued.expires_at),
            id: issued.id,
            access_code: issued.access_code,
            password: issued.password,
            link: issued.link,
        },
    ))
}

/// Who: the patient session that made the forward. Its letter as PDF.
pub async fn get_forward_letter(
    State(svc): Svc,
    PatientSession(scope): PatientSession,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    if !is_valid_id(&id) {
        return Err(WebError::not_found());
    }
    let pdf = access::forward_letter(&svc, &scope, &id).await?;
    Ok(super::pdf_response(pdf, "zugang-arzt.pdf", false))
}

/// Who: the patient session that made the forward. Ends it and its sessions.
pub async fn post_forward_revoke(
    State(svc): Svc,
    PatientSession(scope): PatientSession,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    if !is_valid_id(&id) {
        return Err(WebError::not_found());
    }
    access::revoke_forward(&svc, &scope, &id).await?;
    Ok(Redirect::to("/view").into_response())
}
