//! Staff sign-in: username + password, then a TOTP code; first sign-in from a letter
//! forces a new password and TOTP enrolment. Sessions live in the database: half
//! authenticated after the password (5 minutes to finish), full after the code.

use crate::app::Services;
use crate::auth::passwords::HashError;
use crate::auth::totp;
use crate::crypto::wrap::{WrapPurpose, open as open_sealed};
use crate::db::DbError;
use crate::db::staff::StaffUserRow;
use crate::domain::{new_token, token_hash};

/// Failed steps (password or code) that lock the account until an admin unlocks it.
pub const LOCK_AFTER_FAILURES: i64 = 5;
/// Time to finish the second step after the password.
pub const PENDING_SECS: i64 = 5 * 60;
pub const IDLE_SECS: i64 = 30 * 60;
pub const ABSOLUTE_SECS: i64 = 10 * 3600;
pub const MIN_PASSWORD_LEN: usize = 12;
const MAX_PASSWORD_LEN: usize = 256;

const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

#[derive(Debug, thiserror::Error)]
pub enum StaffAuthError {
    /// One answer for unknown user, wrong password, wrong code, locked, inactive.
    #[error("sign-in refused")]
    Denied,
    #[error("{0}")]
    WeakPassword(&'static str),
    #[error("this step is not due")]
    WrongStage,
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
}

/// Where a half-finished sign-in goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    ChangePassword,
    EnrolTotp,
    Totp,
}

/// A checked staff session.
#[derive(Debug, Clone)]
pub struct StaffScope {
    pub user_id: String,
    pub practice_id: String,
    pub username: String,
    pub display_name: String,
    pub is_admin: bool,
    pub full: bool,
    pub csrf_token: String,
    pub session_hash: String,
    pub next_step: NextStep,
    /// The current terms of use are accepted.
    pub terms_accepted: bool,
    /// When this session passed the TOTP step (sessions are renewed at that step).
    pub authenticated_at: i64,
}

/// Changing credentials or API clients needs a sign-in at most this old.
pub const RECENT_AUTH_SECS: i64 = 15 * 60;

impl StaffScope {
    pub fn recently_authenticated(&self, now: i64) -> bool {
        self.full && now - self.authenticated_at <= RECENT_AUTH_SECS
    }
}

fn next_step(user: &StaffUserRow) -> NextStep {
    if user.must_change_password {
        NextStep::ChangePassword
    } else if !user.totp_enrolled {
        NextStep::EnrolTotp
    } else {
        NextStep::Totp
    }
}

async fn open_session(svc: &Services, user: &StaffUserRow, stage: &str) -> Result<String, DbError> {
    let token = new_token(&mut rand::rngs::OsRng);
    let csrf = new_token(&mut rand::rngs::OsRng);
    let now = svc.clock.now();
    let alive_until = if stage == "full" {
        now + ABSOLUTE_SECS
    } else {
        now + PENDING_SECS
    };
    svc.db
        .insert_staff_session(
            &token_hash("session", &token),
            &user.practice_id,
            &user.id,
            stage,
            &csrf,
            now,
            alive_until,
        )
        .await?;
    Ok(token)
}

/// Step one. Always spends one argon2 verification, also for unknown users.
pub async fn begin(
    svc: &Services,
    username: &str,
    password: &str,
) -> Result<String, StaffAuthError> {
    let user = if username.len() <= 64 {
        svc.db.staff_by_username(username.trim()).await?
    } else {
        None
    };
    let password = if password.len() <= MAX_PASSWORD_LEN {
        password
    } else {
        ""
    };
    let ok = svc
        .hasher
        .verify(user.as_ref().map(|u| u.password_hash.as_str()), password)
        .await?;
    let Some(user) = user else {
        return Err(StaffAuthError::Denied);
    };
    if !user.active || user.locked_at.is_some() {
        return Err(StaffAuthError::Denied);
    }
    if !ok {
        svc.db
            .record_staff_failure(&user.id, svc.clock.now(), LOCK_AFTER_FAILURES)
            .await?;
        return Err(StaffAuthError::Denied);
    }
    Ok(open_session(svc, &user, "password").await?)
}

/// Checks a staff session cookie; counts as user activity.
pub async fn check(svc: &Services, token: &str) -> Result<Option<StaffScope>, StaffAuthError> {
    if token.len() > 128 {
        return Ok(None);
    }
    let hash = token_hash("session", token);
    let Some(s) = svc.db.session(&hash).await? else {
        return Ok(None);
    };
    let now = svc.clock.now();
    let alive = s.kind == "staff"
        && s.ended_at.is_none()
        && now <= s.alive_until
        && now - s.last_input_at <= IDLE_SECS
        && now - s.created_at <= ABSOLUTE_SECS;
    let user = match (&s.user_id, alive) {
        (Some(id), true) => svc.db.staff_by_id(id).await?,
        _ => None,
    };
    let Some(user) = user.filter(|u| u.active && u.locked_at.is_none()) else {
        if s.ended_at.is_none() {
            svc.db.end_session(&hash, now).await?;
        }
        return Ok(None);
    };
    svc.db
        .touch_session(&hash, s.alive_until, Some(now))
        .await?;
    Ok(Some(StaffScope {
        next_step: next_step(&user),
        terms_accepted: user.terms_accepted_version >= crate::users::TERMS_VERSION,
        authenticated_at: s.created_at,
        user_id: user.id,
        practice_id: user.practice_id,
        username: user.username,
        display_name: user.display_name,
        is_admin: user.role == "admin",
        full: s.stage == "full",
        csrf_token: s.csrf_token.clone(),
        session_hash: hash,
    }))
}

/// The user's TOTP seed, unsealed with the practice key.
async fn totp_seed(svc: &Services, user: &StaffUserRow) -> Result<Vec<u8>, StaffAuthError> {
    let practice = svc
        .db
        .practice(&user.practice_id)
        .await?
        .ok_or(StaffAuthError::Denied)?;
    let sealed = user.totp_sealed.as_ref().ok_or(StaffAuthError::Denied)?;
    let kek = svc.keys.practice_key(&svc.db, &practice.kek_id).await?;
    open_sealed(
        &kek,
        &practice.kek_id,
        WrapPurpose::Secret,
        &user.id,
        sealed,
    )
    .map_err(|_| StaffAuthError::Denied)
}

/// The `otpauth://` URI an authenticator app scans during enrolment.
pub async fn enrolment_uri(svc: &Services, scope: &StaffScope) -> Result<String, StaffAuthError> {
    let user = svc
        .db
        .staff_by_id(&scope.user_id)
        .await?
        .ok_or(StaffAuthError::Denied)?;
    let seed = totp_seed(svc, &user).await?;
    Ok(format!(
        "otpauth://totp/Lichtkasten:{}?secret={}&issuer=Lichtkasten&algorithm=SHA1&digits=6&period=30",
        user.username,
        totp::base32_encode(&seed)
    ))
}

/// Step two (and the confirmation of enrolment): a TOTP code. Success replaces the
/// half-authenticated session by a full one with a new id.
pub async fn complete(
    svc: &Services,
    scope: &StaffScope,
    code: &str,
) -> Result<String, StaffAuthError> {
    if scope.full {
        return Err(StaffAuthError::WrongStage);
    }
    let user = svc
        .db
        .staff_by_id(&scope.user_id)
        .await?
        .ok_or(StaffAuthError::Denied)?;
    if user.must_change_password {
        return Err(StaffAuthError::WrongStage);
    }
    let seed = totp_seed(svc, &user).await?;
    let now = svc.clock.now();
    let code: String = code
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(16)
        .collect();
    let Some(step) = totp::verify(&seed, &code, now, user.totp_last_step) else {
        svc.db
            .record_staff_failure(&user.id, now, LOCK_AFTER_FAILURES)
            .await?;
        return Err(StaffAuthError::Denied);
    };
    if !svc.db.record_staff_login(&user.id, step, now).await? {
        return Err(StaffAuthError::Denied);
    }
    if !user.totp_enrolled {
        svc.db.set_staff_totp_enrolled(&user.id).await?;
    }
    svc.db.end_session(&scope.session_hash, now).await?;
    crate::audit::record(
        svc,
        &user.practice_id,
        &crate::audit::Actor::Staff(user.id.clone()),
        "staff.login",
        None,
        "",
    )
    .await?;
    Ok(open_session(svc, &user, "full").await?)
}

/// Refuses short, common or username-like passwords.
pub fn password_policy(username: &str, password: &str) -> Result<(), StaffAuthError> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(StaffAuthError::WeakPassword("at least 12 characters"));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(StaffAuthError::WeakPassword("at most 256 characters"));
    }
    let lower = password.to_lowercase();
    if COMMON_PASSWORDS.lines().any(|p| p == lower) || lower.contains(&username.to_lowercase()) {
        return Err(StaffAuthError::WeakPassword(
            "too common or contains the username",
        ));
    }
    if password
        .chars()
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        < 5
    {
        return Err(StaffAuthError::WeakPassword("too few different characters"));
    }
    Ok(())
}

/// The forced password change of a first sign-in.
pub async fn change_password(
    svc: &Services,
    scope: &StaffScope,
    new: &str,
    repeat: &str,
) -> Result<(), StaffAuthError> {
    if scope.full || scope.next_step != NextStep::ChangePassword {
        return Err(StaffAuthError::WrongStage);
    }
    if new != repeat {
        return Err(StaffAuthError::WeakPassword("the two entries differ"));
    }
    password_policy(&scope.username, new)?;
    let hash = svc.hasher.hash(new).await?;
    svc.db.set_staff_password(&scope.user_id, &hash).await?;
    crate::audit::record(
        svc,
        &scope.practice_id,
        &crate::audit::Actor::Staff(scope.user_id.clone()),
        "staff.password_change",
        None,
        "",
    )
    .await?;
    Ok(())
}

pub async fn logout(svc: &Services, scope: &StaffScope) -> Result<(), DbError> {
    svc.db
        .end_session(&scope.session_hash, svc.clock.now())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert!(password_policy("anna", "short").is_err());
        assert!(password_policy("anna", "password1234").is_err());
        assert!(password_policy("anna", "PASSWORD1234").is_err());
        assert!(password_policy("annamueller", "xx-annamueller-xx").is_err());
        assert!(password_policy("anna", "aaaaaaaaaaaaab").is_err());
        assert!(password_policy("anna", "Kaffee-Tasse-Blau-7").is_ok());
    }
}
