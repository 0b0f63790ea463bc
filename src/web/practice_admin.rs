//! Admin pages of the practice portal: users, API clients, settings; and the terms
//! page every staff member passes once per terms version.

use super::error::WebError;
use super::extract::{AdminSession, StaffSession, check_csrf};
use super::pages::{Texts, render, texts};
use crate::app::Services;
use crate::auth::staff::StaffScope;
use crate::clock::format_datetime;
use crate::domain::is_valid_id;
use crate::users::{self, UserAdminError};
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;

type Svc = State<Arc<Services>>;

/// Credentials and API clients change only shortly after a full sign-in.
fn recent_auth(svc: &Services, scope: &StaffScope) -> Result<(), WebError> {
    if scope.recently_authenticated(svc.clock.now()) {
        Ok(())
    } else {
        Err(WebError::new(
            StatusCode::FORBIDDEN,
            "reauthentication_required",
            "For this change, please sign out and sign in again (at most 15 minutes ago).",
        ))
    }
}

fn admin_error(e: UserAdminError) -> WebError {
    match e {
        UserAdminError::NotFound => WebError::not_found(),
        UserAdminError::Invalid(msg) => WebError::bad_request("invalid_request", msg),
        other => WebError::internal(other),
    }
}

fn checked_id(id: &str) -> Result<&str, WebError> {
    if is_valid_id(id) {
        Ok(id)
    } else {
        Err(WebError::not_found())
    }
}

struct UserRow {
    id: String,
    username: String,
    display_name: String,
    role: String,
    state: String,
    last_login: String,
    active: bool,
    locked: bool,
}

#[derive(Template)]
#[template(path = "practice_users.html")]
struct UsersPage {
    t: &'static Texts,
    staff: StaffScope,
    users: Vec<UserRow>,
    admins: usize,
    error: Option<String>,
}

async fn users_page(
    svc: &Services,
    t: &'static Texts,
    staff: StaffScope,
    error: Option<String>,
) -> Result<Response, WebError> {
    let users = users::list(svc, &staff).await.map_err(admin_error)?;
    let admins = users
        .iter()
        .filter(|u| u.active && u.role == "admin")
        .count();
    let rows = users
        .into_iter()
        .map(|u| UserRow {
            state: if !u.active {
                t.state_inactive
            } else if u.locked_at.is_some() {
                t.state_locked
            } else {
                t.state_active
            }
            .to_string(),
            last_login: u
                .last_login_at
                .map(format_datetime)
                .unwrap_or_else(|| t.never.to_string()),
            active: u.active,
            locked: u.locked_at.is_some(),
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            role: u.role,
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(render(
        status,
        &UsersPage {
            t,
            staff,
            users: rows,
            admins,
            error,
        },
    ))
}

/// Who: an admin of the practice.
pub async fn get_users(
    State(svc): Svc,
    headers: HeaderMap,
    AdminSession(admin): AdminSession,
) -> Result<Response, WebError> {
    users_page(&svc, texts(&headers), admin, None).await
}

#[derive(serde::Deserialize)]
pub struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    role: String,
}

/// Who: an admin. Answers with the new user's first-login letter (PDF).
pub async fn post_user(
    State(svc): Svc,
    headers: HeaderMap,
    AdminSession(admin): AdminSession,
    Form(f): Form<UserForm>,
) -> Result<Response, WebError> {
    check_csrf(&admin, &f.csrf)?;
    recent_auth(&svc, &admin)?;
    match users::create(&svc, &admin, &f.username, &f.display_name, &f.role).await {
        Ok(letter) => Ok(super::pdf_response(letter, "zugang.pdf", false)),
        Err(UserAdminError::Invalid(msg)) => {
            users_page(&svc, texts(&headers), admin, Some(msg.into())).await
        }
        Err(e) => Err(admin_error(e)),
    }
}

/// Who: an admin.
pub async fn post_user_edit(
    State(svc): Svc,
    headers: HeaderMap,
    AdminSession(admin): AdminSession,
    Path(id): Path<String>,
    Form(f): Form<UserForm>,
) -> Result<Response, WebError> {
    check_csrf(&admin, &f.csrf)?;
    recent_auth(&svc, &admin)?;
    match users::edit(
        &svc,
        &admin,
        checked_id(&id)?,
        &f.username,
        &f.display_name,
        &f.role,
    )
    .await
    {
        Ok(()) => Ok(Redirect::to("/practice/users").into_response()),
        Err(UserAdminError::Invalid(msg)) => {
            users_page(&svc, texts(&headers), admin, Some(msg.into())).await
        }
        Err(e) => Err(admin_error(e)),
    }
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Who: an admin. `action` is deactivate, activate, unlock or reset (reset answers with the new letter).
pub async fn post_user_action(
    State(svc): Svc,
    headers: HeaderMap,
    AdminSession(admin): AdminSession,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, WebError> {
    check_csrf(&admin, &f.csrf)?;
    recent_auth(&svc, &admin)?;
    let id = checked_id(&id)?;
    let result = match action.as_str() {
        "deactivate" => users::set_active(&svc, &admin, id, false).await,
        "activate" => users::set_active(&svc, &admin, id, true).await,
        "unlock" => users::unlock(&svc, &admin, id).await,
        "reset" => {
            return match users::reset(&svc, &admin, id).await {
                Ok(letter) => Ok(super::pdf_response(letter, "zugang-neu.pdf", false)),
                Err(e) => Err(admin_error(e)),
            };
        }
        _ => return Err(WebError::not_found()),
    };
    match result {
        Ok(()) => Ok(Redirect::to("/practice/users").into_response()),
        Err(UserAdminError::Invalid(msg)) => {
            users_page(&svc, texts(&headers), admin, Some(msg.into())).await
        }
        Err(e) => Err(admin_error(e)),
    }
}

struct ClientRow {
    id: String,
    name: String,
    client_id: String,
    expires: String,
    expiring: bool,
    last_used: String,
    state: String,
    enabled: bool,
}

#[derive(Template)]
#[template(path = "practice_api_clients.html")]
struct ClientsPage {
    t: &'static Texts,
    staff: StaffScope,
    clients: Vec<ClientRow>,
    created: Option<(String, String)>,
    error: Option<String>,
}

async fn clients_page(
    svc: &Services,
    t: &'static Texts,
    staff: StaffScope,
    created: Option<(String, String)>,
    error: Option<String>,
) -> Result<Response, WebError> {
    let now = svc.clock.now();
    let clients = users::api_clients(svc, &staff)
        .await
        .map_err(admin_error)?
        .into_iter()
        .map(|c| {
            let enabled = c.disabled_at.is_none() && c.expires_at > now;
            ClientRow {
                expiring: enabled && c.expires_at - now <= 30 * 86_400,
                expires: crate::clock::format_date(c.expires_at),
                last_used: c
                    .last_used_at
                    .map(format_datetime)
                    .unwrap_or_else(|| t.never.to_string()),
                state: if enabled {
                    t.state_active
                } else {
                    t.state_disabled
                }
                .to_string(),
                enabled,
                id: c.id,
                name: c.name,
                client_id: c.client_id,
            }
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(render(
        status,
        &ClientsPage {
            t,
            staff,
            clients,
            created,
            error,
        },
    ))
}

/// Who: an admin of the practice.
pub async fn get_api_clients(
    State(svc): Svc,
    headers: HeaderMap,
    AdminSession(admin): AdminSession,
) -> Result<Response, WebError> {
    clients_page(&svc, texts(&headers), admin, None, None).await
}

#[derive(serde::Deserialize)]
pub struct ClientForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

/// Who: an admin. Shows the new secret once.
pub async fn post_api_client(
    State(svc): Svc,
    headers: HeaderMap,
    AdminSession(admin): AdminSession,
    Form(f): Form<ClientForm>,
) -> Result<Response, WebError> {
    check_csrf(&admin, &f.csrf)?;
    recent_auth(&svc, &admin)?;
    match users::create_api_client(&svc, &admin, &f.name).await {
        Ok(c) => {
            clients_page(
                &svc,
                texts(&headers),
                admin,
                Some((c.client_id, c.client_secret)),
                None,
            )
            .await
        }
        Err(UserAdminError::Invalid(msg)) => {
            clients_page(&svc, texts(&headers), admin, None, Some(msg.into())).await
        }
        Err(e) => Err(admin_error(e)),
    }
}

/// Who: an admin. `action` is renew or disable.
pub async fn post_api_client_action(
    State(svc): Svc,
    AdminSession(admin): AdminSession,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, WebError> {
    check_csrf(&admin, &f.csrf)?;
    recent_auth(&svc, &admin)?;
    let id = checked_id(&id)?;
    match action.as_str() {
        "renew" => users::renew_api_client(&svc, &admin, id).await,
        "disable" => users::disable_api_client(&svc, &admin, id).await,
        _ => return Err(WebError::not_found()),
    }
    .map_err(admin_error)?;
    Ok(Redirect::to("/practice/api-clients").into_response())
}

#[derive(Template)]
#[template(path = "practice_settings.html")]
struct SettingsPage {
    t: &'static Texts,
    staff: StaffScope,
    name: String,
    address: String,
    default_access_days: i64,
    findings_delay_hours: i64,
    max_upload_mb: i64,
    allow_forwarding: bool,
    referrer_findings_early: bool,
    downloads_default: bool,
    dicom_ae_title: String,
    dicom_calling: String,
    dicom_listen: String,
    error: Option<String>,
}

/// Who: an admin of the practice.
pub async fn get_settings(
    State(svc): Svc,
    headers: HeaderMap,
    AdminSession(admin): AdminSession,
) -> Result<Response, WebError> {
    let s = svc
        .db
        .practice_settings(&admin.practice_id)
        .await?
        .ok_or_else(WebError::not_found)?;
    let node = svc.db.dicom_node(&admin.practice_id).await?;
    Ok(render(
        StatusCode::OK,
        &SettingsPage {
            t: texts(&headers),
            staff: admin,
            name: s.name,
            address: s.address,
            default_access_days: s.default_access_days,
            findings_delay_hours: s.findings_delay_hours,
            max_upload_mb: s.max_upload_mb,
            allow_forwarding: s.allow_forwarding,
            referrer_findings_early: s.referrer_findings_early,
            downloads_default: s.downloads_default,
            dicom_ae_title: node
                .as_ref()
                .map(|n| n.ae_title.clone())
                .unwrap_or_default(),
            dicom_calling: node
                .map(|n| n.calling_ae_titles.join(", "))
                .unwrap_or_default(),
            dicom_listen: svc.config.dicom_listen.clone(),
            error: None,
        },
    ))
}

#[derive(serde::Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    address: String,
    default_access_days: Option<i64>,
    findings_delay_hours: Option<i64>,
    max_upload_mb: Option<i64>,
    allow_forwarding: Option<String>,
    referrer_findings_early: Option<String>,
    downloads_default: Option<String>,
}

/// Who: an admin.
pub async fn post_settings(
    State(svc): Svc,
    headers: HeaderMap,
    AdminSession(admin): AdminSession,
    Form(f): Form<SettingsForm>,
) -> Result<Response, WebError> {
    check_csrf(&admin, &f.csrf)?;
    let settings = crate::db::practices::PracticeSettings {
        name: f.name.trim().to_string(),
        address: f.address.replace("\r\n", "\n"),
        default_access_days: f.default_access_days.unwrap_or(0),
        findings_delay_hours: f.findings_delay_hours.unwrap_or(-1),
        max_upload_mb: f.max_upload_mb.unwrap_or(0),
        allow_forwarding: f.allow_forwarding.is_some(),
        referrer_findings_early: f.referrer_findings_early.is_some(),
        downloads_default: f.downloads_default.is_some(),
    };
    match users::update_settings(&svc, &admin, &settings).await {
        Ok(()) => Ok(Redirect::to("/practice/settings").into_response()),
        Err(UserAdminError::Invalid(msg)) => Ok(render(
            StatusCode::BAD_REQUEST,
            &SettingsPage {
                t: texts(&headers),
                staff: admin,
                name: settings.name,
                address: settings.address,
                default_access_days: settings.default_access_days,
                findings_delay_hours: settings.findings_delay_hours,
                max_upload_mb: settings.max_upload_mb,
                allow_forwarding: settings.allow_forwarding,
                referrer_findings_early: settings.referrer_findings_early,
                downloads_default: settings.downloads_default,
                dicom_ae_title: String::new(),
                dicom_calling: String::new(),
                dicom_listen: svc.config.dicom_listen.clone(),
                error: Some(msg.into()),
            },
        )),
        Err(e) => Err(admin_error(e)),
    }
}

#[derive(serde::Deserialize)]
pub struct DicomForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    ae_title: String,
    #[serde(default)]
    calling: String,
}

/// Who: an admin. The practice's DICOM node: its AE title and accepted callers.
pub async fn post_dicom(
    State(svc): Svc,
    AdminSession(admin): AdminSession,
    Form(f): Form<DicomForm>,
) -> Result<Response, WebError> {
    check_csrf(&admin, &f.csrf)?;
    if f.ae_title.len() > 64 || f.calling.len() > 2000 {
        return Err(WebError::bad_request("invalid_dicom_node", "Too long."));
    }
    let (title, calling) = crate::scp::parse_node(&f.ae_title, &f.calling)
        .map_err(|msg| WebError::bad_request("invalid_dicom_node", msg))?;
    if !svc
        .db
        .set_dicom_node(&admin.practice_id, title.as_deref(), &calling)
        .await?
    {
        return Err(WebError::bad_request(
            "ae_title_taken",
            "Another practice already uses this AE title.",
        ));
    }
    crate::audit::record(
        &svc,
        &admin.practice_id,
        &crate::audit::Actor::Staff(admin.user_id.clone()),
        "practice.dicom_node",
        None,
        &format!("ae_title={}", title.as_deref().unwrap_or("-")),
    )
    .await?;
    Ok(Redirect::to("/practice/settings").into_response())
}

#[derive(Template)]
#[template(path = "practice_terms.html")]
struct TermsPage {
    t: &'static Texts,
    staff: StaffScope,
    version: i64,
}

/// Who: a signed-in staff member.
pub async fn get_terms(headers: HeaderMap, StaffSession(staff): StaffSession) -> Response {
    render(
        StatusCode::OK,
        &TermsPage {
            t: texts(&headers),
            staff,
            version: users::TERMS_VERSION,
        },
    )
}

/// Who: a signed-in staff member; accepts the current terms.
pub async fn post_terms(
    State(svc): Svc,
    StaffSession(staff): StaffSession,
    Form(f): Form<CsrfForm>,
) -> Result<Response, WebError> {
    check_csrf(&staff, &f.csrf)?;
    users::accept_terms(&svc, &staff)
        .await
        .map_err(admin_error)?;
    Ok(Redirect::to("/practice").into_response())
}

/// Largest accepted logo file.
pub const LOGO_MAX_BYTES: usize = 256 * 1024;

/// Who: an admin. Multipart fields `csrf` and `logo` (a JPEG up to 256 KB; empty removes it).
pub async fn post_logo(
    State(svc): Svc,
    AdminSession(admin): AdminSession,
    multipart: axum::extract::Multipart,
) -> Result<Response, WebError> {
    let bad = || WebError::bad_request("bad_logo", "Please choose a JPEG image of at most 256 KB.");
    let (texts, logo) = super::read_small_form(multipart, "logo")
        .await
        .map_err(|_| bad())?;
    let csrf = texts.get("csrf").map(String::as_str).unwrap_or("");
    check_csrf(&admin, csrf)?;
    let logo = logo.filter(|l| !l.is_empty());
    if let Some(bytes) = &logo {
        let ok = bytes.len() <= LOGO_MAX_BYTES
            && crate::letters::pdf::Jpeg::parse(bytes)
                .is_some_and(|j| j.width <= 4000 && j.height <= 4000);
        if !ok {
            return Err(bad());
        }
    }
    svc.db
        .set_practice_logo(&admin.practice_id, logo.as_deref())
        .await?;
    crate::audit::record(
        &svc,
        &admin.practice_id,
        &crate::audit::Actor::Staff(admin.user_id.clone()),
        "practice.logo",
        None,
        "",
    )
    .await?;
    Ok(Redirect::to("/practice/settings").into_response())
}
