//! Practice staff: sign-in (password, then TOTP; first sign-in changes the password
//! and enrols TOTP), the study list and detail, grants, deletion and upload.

use super::error::{WebError, busy};
use super::extract::{PendingStaff, StaffSession, check_csrf, clear_staff_cookie, staff_cookie};
use super::pages::{ImageView, SeriesView, Texts, render, texts};
use crate::access::{self, IssuedGrant};
use crate::app::Services;
use crate::audit::Actor;
use crate::auth::passwords::HashError;
use crate::auth::staff::{self, NextStep, StaffAuthError, StaffScope};
use crate::clock::format_datetime;
use crate::dicom::display_person_name;
use crate::domain::{Audience, is_valid_id};

use crate::studies::StudySummary;
use crate::studies::view::{self, StudyFilter};
use askama::Template;
use axum::extract::{Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use std::sync::Arc;

type Svc = State<Arc<Services>>;

fn with_cookie(mut res: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

fn auth_error(e: StaffAuthError) -> WebError {
    match e {
        StaffAuthError::Hash(HashError::Busy) => busy(),
        other => WebError::internal(other),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    t: &'static Texts,
    mode: &'static str,
    error: Option<String>,
    csrf: String,
    qr_svg: String,
    secret: String,
}

fn qr_svg(data: &str) -> String {
    match qrcode::QrCode::new(data.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(220, 220)
            .quiet_zone(true)
            .build(),
        Err(_) => String::new(),
    }
}

async fn step_page(
    svc: &Services,
    t: &'static Texts,
    scope: &StaffScope,
    error: Option<String>,
) -> Result<Response, WebError> {
    let page = match scope.next_step {
        NextStep::ChangePassword => LoginPage {
            t,
            mode: "change_password",
            error,
            csrf: scope.csrf_token.clone(),
            qr_svg: String::new(),
            secret: String::new(),
        },
        NextStep::EnrolTotp => {
            let uri = staff::enrolment_uri(svc, scope).await.map_err(auth_error)?;
            let secret = uri
                .split("secret=")
                .nth(1)
                .and_then(|s| s.split('&').next())
                .unwrap_or("")
                .to_string();
            LoginPage {
                t,
                mode: "enrol",
                error,
                csrf: scope.csrf_token.clone(),
                qr_svg: qr_svg(&uri),
                secret,
            }
        }
        NextStep::Totp => LoginPage {
            t,
            mode: "totp",
            error,
            csrf: scope.csrf_token.clone(),
            qr_svg: String::new(),
            secret: String::new(),
        },
    };
    let status = if page.error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    Ok(render(status, &page))
}

fn credentials_page(t: &'static Texts, error: Option<String>) -> Response {
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    render(
        status,
        &LoginPage {
            t,
            mode: "credentials",
            error,
            csrf: String::new(),
            qr_svg: String::new(),
            secret: String::new(),
        },
    )
}

/// Who: anyone. The sign-in form, or the next step of a sign-in under way.
pub async fn get_login(
    State(svc): Svc,
    headers: HeaderMap,
    pending: Result<PendingStaff, Response>,
) -> Result<Response, WebError> {
    let t = texts(&headers);
    match pending {
        Ok(PendingStaff(scope)) => step_page(&svc, t, &scope, None).await,
        Err(_) => Ok(credentials_page(t, None)),
    }
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    username: Option<String>,
    password: Option<String>,
    totp: Option<String>,
}

/// Who: anyone. Form fields `username` + `password`, then `totp`.
pub async fn post_login(
    State(svc): Svc,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    pending: Result<PendingStaff, Response>,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    let t = texts(&headers);
    if let Some(code) = form.totp {
        let Ok(PendingStaff(scope)) = pending else {
            return Ok(credentials_page(t, Some(t.login_denied.into())));
        };
        return match staff::complete(&svc, &scope, &code).await {
            Ok(token) => Ok(with_cookie(
                Redirect::to("/practice").into_response(),
                &staff_cookie(&svc, &token),
            )),
            Err(StaffAuthError::Denied) | Err(StaffAuthError::WrongStage) => {
                // A locked account ends the half sign-in; otherwise the same step again.
                match staff::check(
                    &svc,
                    super::extract::cookie_in(&headers, super::extract::staff_cookie_name(&svc))
                        .unwrap_or(""),
                )
                .await
                {
                    Ok(Some(s)) if !s.full => {
                        step_page(&svc, t, &s, Some(t.login_denied.into())).await
                    }
                    _ => Ok(credentials_page(t, Some(t.login_denied.into()))),
                }
            }
            Err(e) => Err(auth_error(e)),
        };
    }
    let (Some(username), Some(password)) = (form.username, form.password) else {
        return Ok(credentials_page(t, Some(t.login_denied.into())));
    };
    let Some(_in_flight) = svc.password_checks.enter(peer.ip()) else {
        return Err(WebError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "Too many sign-in attempts from this address at once. Please wait a moment.",
        ));
    };
    if !svc.staff_login_limiter.allow(peer.ip(), svc.clock.now()) {
        return Err(WebError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "Too many sign-in attempts from this address. Please wait a few minutes.",
        ));
    }
    match staff::begin(&svc, &username, &password).await {
        Ok(token) => Ok(with_cookie(
            Redirect::to("/login").into_response(),
            &staff_cookie(&svc, &token),
        )),
        Err(StaffAuthError::Denied) => Ok(credentials_page(t, Some(t.login_denied.into()))),
        Err(e) => Err(auth_error(e)),
    }
}

#[derive(serde::Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    new_password: String,
    repeat_password: String,
}

/// Who: a staff member in the first-sign-in step "change password".
pub async fn post_login_password(
    State(svc): Svc,
    headers: HeaderMap,
    PendingStaff(scope): PendingStaff,
    Form(form): Form<PasswordForm>,
) -> Result<Response, WebError> {
    check_csrf(&scope, &form.csrf)?;
    let t = texts(&headers);
    match staff::change_password(&svc, &scope, &form.new_password, &form.repeat_password).await {
        Ok(()) => Ok(Redirect::to("/login").into_response()),
        Err(StaffAuthError::WeakPassword(why)) => {
            step_page(&svc, t, &scope, Some(why.to_string())).await
        }
        Err(StaffAuthError::WrongStage) => Ok(Redirect::to("/login").into_response()),
        Err(e) => Err(auth_error(e)),
    }
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Who: a signed-in staff member. Ends the session and clears the site's data.
pub async fn post_logout(
    State(svc): Svc,
    StaffSession(scope): StaffSession,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    check_csrf(&scope, &form.csrf)?;
    staff::logout(&svc, &scope).await?;
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut().insert(
        "clear-site-data",
        HeaderValue::from_static("\"cache\", \"cookies\", \"storage\""),
    );
    Ok(with_cookie(res, &clear_staff_cookie(&svc)))
}

struct StudyRow {
    id: String,
    patient_name: String,
    birth_date: String,
    patient_id: String,
    study_date: String,
    description: String,
    modalities: String,
    instance_count: i64,
}

#[derive(Template)]
#[template(path = "practice_studies.html")]
struct StudiesPage {
    t: &'static Texts,
    staff: StaffScope,
    warnings: Vec<String>,
    rows: Vec<StudyRow>,
    q: String,
    modality: String,
    from: String,
    to: String,
    expiring: bool,
    unopened: bool,
    unreleased: bool,
    prev_page: Option<usize>,
    next_page: Option<usize>,
}

const PAGE_SIZE: usize = 50;

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    csrf: String,
    expiring: Option<String>,
    unopened: Option<String>,
    unreleased: Option<String>,
    page: Option<usize>,
    q: Option<String>,
    modality: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

fn limited(s: Option<String>, max: usize) -> String {
    s.unwrap_or_default().chars().take(max).collect()
}

/// Who: a signed-in staff member; only the own practice's studies.
/// Who: a signed-in staff member; only the own practice's studies. Without filters:
/// search terms name patients, so they travel in POST bodies, never in URLs.
pub async fn get_studies(
    State(svc): Svc,
    headers: HeaderMap,
    StaffSession(staff): StaffSession,
    Query(page): Query<PageQuery>,
) -> Result<Response, WebError> {
    let q = ListQuery {
        page: page.page,
        ..ListQuery::default()
    };
    studies_page(&svc, &headers, staff, q).await
}

#[derive(serde::Deserialize, Default)]
pub struct PageQuery {
    page: Option<usize>,
}

/// Who: a signed-in staff member. The search form.
pub async fn post_studies(
    State(svc): Svc,
    headers: HeaderMap,
    StaffSession(staff): StaffSession,
    Form(q): Form<ListQuery>,
) -> Result<Response, WebError> {
    check_csrf(&staff, &q.csrf)?;
    studies_page(&svc, &headers, staff, q).await
}

async fn studies_page(
    svc: &Services,
    headers: &HeaderMap,
    staff: StaffScope,
    q: ListQuery,
) -> Result<Response, WebError> {
    let (text, modality, from, to) = (
        limited(q.q, 100),
        limited(q.modality, 16),
        limited(q.from, 10),
        limited(q.to, 10),
    );
    let filter = StudyFilter {
        text: text.clone(),
        modality: modality.clone(),
        date_from: from.replace('-', ""),
        date_to: to.replace('-', ""),
        expiring_soon: q.expiring.is_some(),
        never_opened: q.unopened.is_some(),
        findings_unreleased: q.unreleased.is_some(),
    };
    let t = texts(headers);
    let page = q.page.unwrap_or(0).min(100);
    let mut studies =
        view::search(svc, &staff.practice_id, &filter, (page + 1) * PAGE_SIZE + 1).await?;
    let has_next = studies.len() > (page + 1) * PAGE_SIZE;
    studies.truncate((page + 1) * PAGE_SIZE);
    let studies: Vec<StudySummary> = studies.into_iter().skip(page * PAGE_SIZE).collect();
    let rows = studies
        .into_iter()
        .map(|s: StudySummary| StudyRow {
            patient_name: display_person_name(&s.patient_name),
            birth_date: super::pages::dicom_date(t, &s.patient_birth_date),
            study_date: super::pages::dicom_date(t, &s.study_date),
            id: s.id,
            patient_id: s.patient_id,
            description: s.description,
            modalities: s.modalities,
            instance_count: s.instance_count,
        })
        .collect();
    let mut warnings = Vec::new();
    if staff.is_admin {
        if crate::users::active_admins(svc, &staff.practice_id)
            .await
            .map_err(WebError::internal)?
            < 2
        {
            warnings.push(t.admin_warning.to_string());
        }
        let expiring = crate::users::expiring_api_clients(svc, &staff.practice_id)
            .await
            .map_err(WebError::internal)?;
        if expiring > 0 {
            warnings.push(format!("{} {expiring}", t.expiring_warning));
        }
    }
    Ok(render(
        StatusCode::OK,
        &StudiesPage {
            t,
            staff,
            warnings,
            rows,
            q: text,
            modality,
            from,
            to,
            expiring: filter.expiring_soon,
            unopened: filter.never_opened,
            unreleased: filter.findings_unreleased,
            prev_page: (page > 0).then(|| page - 1),
            next_page: has_next.then_some(page + 1),
        },
    ))
}

struct GrantView {
    id: String,
    audience: String,
    expires: String,
    state: String,
    revocable: bool,
    /// Not revoked: the end date can still be moved (`YYYY-MM-DD` for the date field).
    extendable: bool,
    until_iso: String,
    downloads: bool,
}

struct HistoryRow {
    when: String,
    who: String,
    what: String,
}

struct FindingView {
    id: String,
    created: String,
    release: String,
    state: String,
}

struct IssuedView {
    id: String,
    access_code: String,
    password: String,
    link: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "practice_study.html")]
struct StudyPage {
    t: &'static Texts,
    staff: StaffScope,
    study: StudySummary,
    patient_name: String,
    birth_date: String,
    study_date: String,
    series: Vec<SeriesView>,
    grants: Vec<GrantView>,
    history: Vec<HistoryRow>,
    findings: Vec<FindingView>,
    issued: Option<IssuedView>,
    default_days: i64,
    downloads_default: bool,
}

async fn study_page(
    svc: &Services,
    t: &'static Texts,
    staff: StaffScope,
    study_id: &str,
    issued: Option<IssuedGrant>,
) -> Result<Response, WebError> {
    let detail = view::detail(svc, &staff.practice_id, study_id).await?;
    let now = svc.clock.now();
    let grants = svc
        .db
        .grants_of_study(&staff.practice_id, study_id)
        .await?
        .into_iter()
        .map(|g| {
            let state = if g.revoked_at.is_some() {
                "widerrufen / revoked"
            } else if g.locked_at.is_some() {
                "gesperrt / locked"
            } else if g.expires_at <= now {
                "abgelaufen / expired"
            } else {
                "aktiv / active"
            };
            GrantView {
                revocable: g.revoked_at.is_none() && g.expires_at > now,
                extendable: g.revoked_at.is_none(),
                until_iso: crate::clock::format_date(g.expires_at),
                downloads: g.allow_download,
                id: g.id,
                audience: if g.audience == "referrer" {
                    t.referrer
                } else {
                    t.patient
                }
                .to_string(),
                expires: super::pages::unix_date(t, g.expires_at),
                state: state.into(),
            }
        })
        .collect();
    let history = view::audit_log(svc, &staff.practice_id, study_id)
        .await?
        .into_iter()
        .rev()
        .map(|e| HistoryRow {
            when: format_datetime(e.at),
            who: e.actor_kind,
            what: e.action,
        })
        .collect();
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
                    src: format!(
                        "/practice/api/studies/{study_id}/instances/{}/rendered?viewport=192,192&format=jpeg",
                        i.id
                    ),
                    full: String::new(),
                    download: String::new(),
                    number: i.instance_number,
                    width: i.columns,
                    height: i.rows,
                })
                .collect(),
        })
        .collect();
    let findings = crate::studies::findings::list(svc, &staff.practice_id, study_id)
        .await?
        .into_iter()
        .map(|f| FindingView {
            created: format_datetime(f.created_at),
            release: format_datetime(f.release_at),
            state: if f.release_at <= now {
                t.released
            } else {
                t.pending
            }
            .to_string(),
            id: f.id,
        })
        .collect();
    let default_days = svc
        .db
        .practice(&staff.practice_id)
        .await?
        .map(|p| p.default_access_days)
        .unwrap_or(90);
    let downloads_default = svc
        .db
        .practice_settings(&staff.practice_id)
        .await?
        .is_none_or(|s| s.downloads_default);
    let issued = issued.map(|g| IssuedView {
        id: g.id,
        access_code: g.access_code,
        password: g.password,
        link: g.link,
        expires: super::pages::unix_date(t, g.expires_at),
    });
    Ok(render(
        StatusCode::OK,
        &StudyPage {
            t,
            patient_name: display_person_name(&detail.study.patient_name),
            birth_date: super::pages::dicom_date(t, &detail.study.patient_birth_date),
            study_date: super::pages::dicom_date(t, &detail.study.study_date),
            study: detail.study,
            staff,
            series,
            grants,
            history,
            findings,
            issued,
            default_days,
            downloads_default,
        },
    ))
}

fn checked_id(id: &str) -> Result<&str, WebError> {
    if is_valid_id(id) {
        Ok(id)
    } else {
        Err(WebError::not_found())
    }
}

/// Who: a signed-in staff member of the study's practice (others get 404).
pub async fn get_study(
    State(svc): Svc,
    headers: HeaderMap,
    StaffSession(staff): StaffSession,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    study_page(&svc, texts(&headers), staff, checked_id(&id)?, None).await
}

#[derive(serde::Deserialize)]
pub struct GrantForm {
    #[serde(default)]
    csrf: String,
    days: Option<i64>,
    audience: Option<Audience>,
    allow_download: Option<String>,
}

/// Who: a signed-in staff member. Shows the new code and password once.
pub async fn post_grant(
    State(svc): Svc,
    headers: HeaderMap,
    StaffSession(staff): StaffSession,
    Path(id): Path<String>,
    Form(form): Form<GrantForm>,
) -> Result<Response, WebError> {
    check_csrf(&staff, &form.csrf)?;
    let days = form.days.unwrap_or(90);
    if !(1..=access::MAX_GRANT_DAYS).contains(&days) {
        return Err(WebError::bad_request(
            "invalid_request",
            "The validity must be between 1 and 1825 days.",
        ));
    }
    let id = checked_id(&id)?;
    let issued = access::issue_grant(
        &svc,
        &staff.practice_id,
        id,
        form.audience.unwrap_or(Audience::Patient),
        Some(svc.clock.now() + days * 86_400),
        Some(form.allow_download.is_some()),
        &Actor::Staff(staff.user_id.clone()),
    )
    .await?;
    study_page(&svc, texts(&headers), staff, id, Some(issued)).await
}

/// Who: a signed-in staff member of the grant's practice.
pub async fn post_revoke(
    State(svc): Svc,
    StaffSession(staff): StaffSession,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    check_csrf(&staff, &form.csrf)?;
    let grant = svc
        .db
        .grant(&staff.practice_id, checked_id(&id)?)
        .await?
        .ok_or_else(WebError::not_found)?;
    access::revoke_grant(
        &svc,
        &staff.practice_id,
        &grant.id,
        &Actor::Staff(staff.user_id.clone()),
    )
    .await?;
    Ok(Redirect::to(&format!("/practice/studies/{}", grant.study_id)).into_response())
}

#[derive(serde::Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    csrf: String,
    confirm: Option<String>,
}

/// Who: a signed-in staff member. Needs the confirmation box ticked.
pub async fn post_delete(
    State(svc): Svc,
    StaffSession(staff): StaffSession,
    Path(id): Path<String>,
    Form(form): Form<DeleteForm>,
) -> Result<Response, WebError> {
    check_csrf(&staff, &form.csrf)?;
    if form.confirm.as_deref() != Some("yes") {
        return Err(WebError::bad_request(
            "confirmation_missing",
            "Please confirm the deletion.",
        ));
    }
    view::delete(
        &svc,
        &staff.practice_id,
        checked_id(&id)?,
        &Actor::Staff(staff.user_id.clone()),
    )
    .await?;
    Ok(Redirect::to("/practice").into_response())
}

/// Who: a signed-in staff member; images of the own practice's studies only.
pub async fn get_rendered(
    State(svc): Svc,
    StaffSession(staff): StaffSession,
    Path((study, instance)): Path<(String, String)>,
    Query(q): Query<super::patient_files::RenderQuery>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let (options, format) = super::patient_files::render_request(&q, &headers)?;
    let image = view::render_image(
        &svc,
        &staff.practice_id,
        checked_id(&study)?,
        checked_id(&instance)?,
        0,
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

#[derive(Template)]
#[template(path = "practice_upload.html")]
struct UploadPage {
    t: &'static Texts,
    staff: StaffScope,
}

/// Who: a signed-in staff member.
pub async fn get_upload(headers: HeaderMap, StaffSession(staff): StaffSession) -> Response {
    render(
        StatusCode::OK,
        &UploadPage {
            t: texts(&headers),
            staff,
        },
    )
}

/// Who: a signed-in staff member (CSRF token in `X-CSRF-Token`). One request per file
/// or ZIP, so the browser shows progress per file and memory stays per file.
pub async fn post_upload(
    State(svc): Svc,
    StaffSession(staff): StaffSession,
    req: Request,
) -> Result<Response, WebError> {
    let presented = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    check_csrf(&staff, presented)?;
    let report = super::upload_body::ingest_request(
        &svc,
        &staff.practice_id,
        Actor::Staff(staff.user_id.clone()),
        req,
        true,
    )
    .await?;
    Ok(Json(report).into_response())
}

/// Who: a signed-in staff member of the grant's practice. The access letter as PDF.
pub async fn get_grant_letter(
    State(svc): Svc,
    StaffSession(staff): StaffSession,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let pdf = access::grant_letter(
        &svc,
        &staff.practice_id,
        checked_id(&id)?,
        &Actor::Staff(staff.user_id.clone()),
    )
    .await?;
    Ok(super::pdf_response(pdf, "zugangsbrief.pdf", false))
}

/// Who: a signed-in staff member. One letter for all of this patient's live accesses.
pub async fn get_patient_letter(
    State(svc): Svc,
    StaffSession(staff): StaffSession,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let pdf = access::patient_letter(
        &svc,
        &staff.practice_id,
        checked_id(&id)?,
        &Actor::Staff(staff.user_id.clone()),
    )
    .await?;
    Ok(super::pdf_response(pdf, "zugangsbrief.pdf", false))
}

#[derive(serde::Deserialize)]
pub struct ExtendForm {
    #[serde(default)]
    csrf: String,
    /// `YYYY-MM-DD`, the last day of access.
    #[serde(default)]
    until: String,
}

/// Who: a signed-in staff member of the grant's practice. A new end date.
pub async fn post_extend(
    State(svc): Svc,
    StaffSession(staff): StaffSession,
    Path(id): Path<String>,
    Form(form): Form<ExtendForm>,
) -> Result<Response, WebError> {
    check_csrf(&staff, &form.csrf)?;
    let date = time::Date::parse(
        form.until.trim(),
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| WebError::bad_request("invalid_date", "Give the date as YYYY-MM-DD."))?;
    // Access lasts through the chosen day.
    let expires_at = date
        .with_hms(23, 59, 59)
        .map_err(|_| WebError::bad_request("invalid_date", "Give the date as YYYY-MM-DD."))?
        .assume_utc()
        .unix_timestamp();
    let grant_id = checked_id(&id)?;
    access::extend_grant(
        &svc,
        &staff.practice_id,
        grant_id,
        expires_at,
        &Actor::Staff(staff.user_id.clone()),
    )
    .await?;
    let grant = svc
        .db
        .grant(&staff.practice_id, grant_id)
        .await?
        .ok_or_else(WebError::not_found)?;
    Ok(Redirect::to(&format!("/practice/studies/{}", grant.study_id)).into_response())
}

/// Who: a signed-in staff member. New password (shown once); old password and live sessions end.
pub async fn post_reissue(
    State(svc): Svc,
    headers: HeaderMap,
    StaffSession(staff): StaffSession,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    check_csrf(&staff, &form.csrf)?;
    let issued = access::reissue_grant(
        &svc,
        &staff.practice_id,
        checked_id(&id)?,
        &Actor::Staff(staff.user_id.clone()),
    )
    .await?;
    let grant = svc
        .db
        .grant(&staff.practice_id, &issued.id)
        .await?
        .ok_or_else(WebError::not_found)?;
    study_page(&svc, texts(&headers), staff, &grant.study_id, Some(issued)).await
}

/// Who: a signed-in staff member. Multipart fields `csrf`, `file` (PDF) and `release`
/// (`now`, `default`, or a date `YYYY-MM-DD`).
pub async fn post_findings(
    State(svc): Svc,
    StaffSession(staff): StaffSession,
    Path(id): Path<String>,
    multipart: Multipart,
) -> Result<Response, WebError> {
    use crate::studies::findings::{self, Release};
    let bad = || WebError::bad_request("bad_findings", "Please choose a PDF file.");
    let (texts, pdf) = super::read_small_form(multipart, "file")
        .await
        .map_err(|_| bad())?;
    let field = |name: &str| texts.get(name).map(String::as_str).unwrap_or("");
    check_csrf(&staff, field("csrf"))?;
    let release = match field("release") {
        "now" => Release::Now,
        "" | "default" => Release::PracticeDefault,
        date => {
            let d = time::Date::parse(
                date,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .map_err(|_| {
                WebError::bad_request(
                    "invalid_date",
                    "The release date must look like 2026-12-31.",
                )
            })?;
            Release::At(d.midnight().assume_utc().unix_timestamp())
        }
    };
    let id = checked_id(&id)?;
    findings::attach(
        &svc,
        &staff.practice_id,
        id,
        pdf.ok_or_else(bad)?,
        release,
        &Actor::Staff(staff.user_id.clone()),
    )
    .await?;
    Ok(Redirect::to(&format!("/practice/studies/{id}")).into_response())
}

/// Who: a signed-in staff member of the study's practice. The original findings PDF.
pub async fn get_findings_pdf(
    State(svc): Svc,
    StaffSession(staff): StaffSession,
    Path((study, finding)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let bytes = crate::studies::findings::original(
        &svc,
        &staff.practice_id,
        checked_id(&study)?,
        checked_id(&finding)?,
        false,
        &Actor::Staff(staff.user_id.clone()),
    )
    .await?;
    Ok(super::pdf_response(bytes, "befund.pdf", true))
}
