//! User administration inside a practice (admins only): create, edit, deactivate,
//! reset password and TOTP, unlock; terms of use; the two-admins rule of thumb.

use crate::admin::{fresh_credentials, staff_letter};
use crate::app::Services;
use crate::audit::{self, Actor};
use crate::auth::staff::StaffScope;
use crate::db::practices::NewStaffUser;
use crate::db::staff::StaffUserRow;
use crate::domain::new_id;

/// Bump when the terms change: every user accepts again before working on.
pub const TERMS_VERSION: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum UserAdminError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

pub fn valid_username(u: &str) -> bool {
    (3..=64).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

fn valid_display_name(n: &str) -> bool {
    !n.trim().is_empty() && n.chars().count() <= 100 && !n.chars().any(char::is_control)
}

fn valid_role(r: &str) -> bool {
    r == "admin" || r == "staff"
}

pub async fn list(svc: &Services, admin: &StaffScope) -> Result<Vec<StaffUserRow>, UserAdminError> {
    Ok(svc.db.staff_of_practice(&admin.practice_id).await?)
}

pub async fn active_admins(svc: &Services, practice_id: &str) -> Result<usize, UserAdminError> {
    Ok(svc
        .db
        .staff_of_practice(practice_id)
        .await?
        .iter()
        .filter(|u| u.active && u.role == "admin")
        .count())
}

async fn user_of(
    svc: &Services,
    admin: &StaffScope,
    user_id: &str,
) -> Result<StaffUserRow, UserAdminError> {
    svc.db
        .staff_by_id(user_id)
        .await?
        .filter(|u| u.practice_id == admin.practice_id)
        .ok_or(UserAdminError::NotFound)
}

/// Creates a user and returns their first-login letter (PDF).
pub async fn create(
    svc: &Services,
    admin: &StaffScope,
    username: &str,
    display_name: &str,
    role: &str,
) -> Result<Vec<u8>, UserAdminError> {
    let username = username.trim();
    if !valid_username(username) {
        return Err(UserAdminError::Invalid(
            "username: 3–64 letters, digits or . _ - @",
        ));
    }
    if !valid_display_name(display_name) || !valid_role(role) {
        return Err(UserAdminError::Invalid(
            "name (1–100 characters) and role are required",
        ));
    }
    if svc.db.staff_by_username(username).await?.is_some() {
        return Err(UserAdminError::Invalid("this username is taken"));
    }
    let user_id = new_id(&mut rand::rngs::OsRng);
    let creds = fresh_credentials(svc, &admin.practice_id, &user_id).await?;
    svc.db
        .insert_staff_user(&NewStaffUser {
            id: &user_id,
            practice_id: &admin.practice_id,
            username,
            display_name: display_name.trim(),
            role,
            password_hash: &creds.password_hash,
            must_change_password: true,
            totp_sealed: Some(&creds.totp_sealed),
            created_at: svc.clock.now(),
        })
        .await?;
    audit::record(
        svc,
        &admin.practice_id,
        &Actor::Staff(admin.user_id.clone()),
        "user.create",
        None,
        &format!("user={user_id} role={role}"),
    )
    .await?;
    Ok(staff_letter(
        svc,
        &admin.practice_id,
        display_name.trim(),
        username,
        &creds.password,
        &creds.totp_secret,
    )
    .await?)
}

pub async fn edit(
    svc: &Services,
    admin: &StaffScope,
    user_id: &str,
    username: &str,
    display_name: &str,
    role: &str,
) -> Result<(), UserAdminError> {
    let user = user_of(svc, admin, user_id).await?;
    let username = username.trim();
    if !valid_username(username) || !valid_display_name(display_name) || !valid_role(role) {
        return Err(UserAdminError::Invalid("username, name or role not valid"));
    }
    if username != user.username && svc.db.staff_by_username(username).await?.is_some() {
        return Err(UserAdminError::Invalid("this username is taken"));
    }
    if user.role == "admin"
        && role != "admin"
        && user.active
        && active_admins(svc, &admin.practice_id).await? <= 1
    {
        return Err(UserAdminError::Invalid(
            "the last active admin cannot lose the admin role",
        ));
    }
    svc.db
        .update_staff_profile(
            &admin.practice_id,
            user_id,
            username,
            display_name.trim(),
            role,
        )
        .await?;
    audit::record(
        svc,
        &admin.practice_id,
        &Actor::Staff(admin.user_id.clone()),
        "user.edit",
        None,
        &format!("user={user_id} role={role}"),
    )
    .await?;
    Ok(())
}

pub async fn set_active(
    svc: &Services,
    admin: &StaffScope,
    user_id: &str,
    active: bool,
) -> Result<(), UserAdminError> {
    let user = user_of(svc, admin, user_id).await?;
    if !active
        && user.role == "admin"
        && user.active
        && active_admins(svc, &admin.practice_id).await? <= 1
    {
        return Err(UserAdminError::Invalid(
            "the last active admin cannot be deactivated",
        ));
    }
    svc.db
        .set_staff_active(&admin.practice_id, user_id, active, svc.clock.now())
        .await?;
    let action = if active {
        "user.activate"
    } else {
        "user.deactivate"
    };
    audit::record(
        svc,
        &admin.practice_id,
        &Actor::Staff(admin.user_id.clone()),
        action,
        None,
        &format!("user={user_id}"),
    )
    .await?;
    Ok(())
}

/// New one-time password and TOTP seed; returns the new letter (PDF).
pub async fn reset(
    svc: &Services,
    admin: &StaffScope,
    user_id: &str,
) -> Result<Vec<u8>, UserAdminError> {
    let user = user_of(svc, admin, user_id).await?;
    let creds = fresh_credentials(svc, &admin.practice_id, user_id).await?;
    svc.db
        .reset_staff_credentials(
            &admin.practice_id,
            user_id,
            &creds.password_hash,
            &creds.totp_sealed,
            svc.clock.now(),
        )
        .await?;
    audit::record(
        svc,
        &admin.practice_id,
        &Actor::Staff(admin.user_id.clone()),
        "user.reset",
        None,
        &format!("user={user_id}"),
    )
    .await?;
    Ok(staff_letter(
        svc,
        &admin.practice_id,
        &user.display_name,
        &user.username,
        &creds.password,
        &creds.totp_secret,
    )
    .await?)
}

pub async fn unlock(
    svc: &Services,
    admin: &StaffScope,
    user_id: &str,
) -> Result<(), UserAdminError> {
    user_of(svc, admin, user_id).await?;
    svc.db.unlock_staff(&admin.practice_id, user_id).await?;
    audit::record(
        svc,
        &admin.practice_id,
        &Actor::Staff(admin.user_id.clone()),
        "user.unlock",
        None,
        &format!("user={user_id}"),
    )
    .await?;
    Ok(())
}

pub async fn accept_terms(svc: &Services, scope: &StaffScope) -> Result<(), UserAdminError> {
    svc.db.accept_terms(&scope.user_id, TERMS_VERSION).await?;
    audit::record(
        svc,
        &scope.practice_id,
        &Actor::Staff(scope.user_id.clone()),
        "terms.accept",
        None,
        &format!("version={TERMS_VERSION}"),
    )
    .await?;
    Ok(())
}

/// API clients of the practice: list, create (secret shown once), renew, disable.
pub async fn api_clients(
    svc: &Services,
    admin: &StaffScope,
) -> Result<Vec<crate::db::practices::ApiClientInfo>, UserAdminError> {
    Ok(svc.db.api_clients_of_practice(&admin.practice_id).await?)
}

pub async fn create_api_client(
    svc: &Services,
    admin: &StaffScope,
    name: &str,
) -> Result<crate::auth::api_clients::IssuedClient, UserAdminError> {
    if !valid_display_name(name) {
        return Err(UserAdminError::Invalid(
            "a name of 1–100 characters is required",
        ));
    }
    let issued = crate::auth::api_clients::create_client(
        &svc.db,
        &admin.practice_id,
        name.trim(),
        svc.clock.now(),
    )
    .await
    .map_err(|e| UserAdminError::Other(e.into()))?;
    audit::record(
        svc,
        &admin.practice_id,
        &Actor::Staff(admin.user_id.clone()),
        "api_client.create",
        None,
        &format!("client={}", issued.client_id),
    )
    .await?;
    Ok(issued)
}

pub async fn renew_api_client(
    svc: &Services,
    admin: &StaffScope,
    id: &str,
) -> Result<(), UserAdminError> {
    let until = svc.clock.now() + crate::auth::api_clients::CLIENT_LIFETIME_SECS;
    if !svc
        .db
        .renew_api_client(&admin.practice_id, id, until)
        .await?
    {
        return Err(UserAdminError::NotFound);
    }
    audit::record(
        svc,
        &admin.practice_id,
        &Actor::Staff(admin.user_id.clone()),
        "api_client.renew",
        None,
        &format!("client={id}"),
    )
    .await?;
    Ok(())
}

pub async fn disable_api_client(
    svc: &Services,
    admin: &StaffScope,
    id: &str,
) -> Result<(), UserAdminError> {
    if !svc
        .db
        .disable_api_client(&admin.practice_id, id, svc.clock.now())
        .await?
    {
        return Err(UserAdminError::NotFound);
    }
    audit::record(
        svc,
        &admin.practice_id,
        &Actor::Staff(admin.user_id.clone()),
        "api_client.disable",
        None,
        &format!("client={id}"),
    )
    .await?;
    Ok(())
}

/// Clients of the practice that expire within 30 days (admins are warned).
pub async fn expiring_api_clients(
    svc: &Services,
    practice_id: &str,
) -> Result<usize, UserAdminError> {
    let now = svc.clock.now();
    Ok(svc
        .db
        .api_clients_of_practice(practice_id)
        .await?
        .iter()
        .filter(|c| {
            c.disabled_at.is_none() && c.expires_at > now && c.expires_at - now <= 30 * 86_400
        })
        .count())
}

pub async fn update_settings(
    svc: &Services,
    admin: &StaffScope,
    s: &crate::db::practices::PracticeSettings,
) -> Result<(), UserAdminError> {
    if s.name.trim().is_empty() || s.name.chars().count() > 200 || s.address.chars().count() > 500 {
        return Err(UserAdminError::Invalid(
            "name 1–200 characters, address at most 500",
        ));
    }
    if !(1..=crate::access::MAX_GRANT_DAYS).contains(&s.default_access_days)
        || !(0..=24 * 365).contains(&s.findings_delay_hours)
        || !(1..=4096).contains(&s.max_upload_mb)
    {
        return Err(UserAdminError::Invalid(
            "access 1–1825 days, findings delay 0–8760 hours, upload limit 1–4096 MB",
        ));
    }
    svc.db
        .update_practice_settings(&admin.practice_id, s)
        .await?;
    audit::record(
        svc,
        &admin.practice_id,
        &Actor::Staff(admin.user_id.clone()),
        "practice.settings",
        None,
        "",
    )
    .await?;
    Ok(())
}
