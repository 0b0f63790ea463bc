//! Server-side patient sessions (DESIGN §3 "Patient sessions"): a random id in an
//! HttpOnly cookie, stored only hashed; alive while requests or heartbeats keep
//! coming, ended by idleness, total age, logout or the grant's revocation.

use crate::app::Services;
use crate::db::DbError;
use crate::db::access::GrantRow;
use crate::domain::{new_token, token_hash};

/// Without a request or heartbeat for this long the session is over (closed tab).
pub const LIVENESS_SECS: i64 = 180;
/// Without user input for this long the session is over.
pub const IDLE_SECS: i64 = 15 * 60;
/// Hard limit from sign-in.
pub const ABSOLUTE_SECS: i64 = 60 * 60;
/// After the tab says it is closing, this long for the same tab to come back (a reload).
pub const CLOSE_GRACE_SECS: i64 = 10;

/// What a live patient session may see.
#[derive(Debug, Clone)]
pub struct PatientScope {
    pub practice_id: String,
    pub study_id: String,
    pub grant_id: String,
    pub audience: String,
    pub grant_expires_at: i64,
    /// The practice let this grant download images and the study ZIP.
    pub allow_download: bool,
    pub session_hash: String,
    /// When the idle or absolute limit ends the session, whichever comes first.
    pub ends_at: i64,
}

pub async fn open_patient_session(svc: &Services, grant: &GrantRow) -> Result<String, DbError> {
    let token = new_token(&mut rand::rngs::OsRng);
    let now = svc.clock.now();
    svc.db
        .insert_session(
            &token_hash("session", &token),
            "patient",
            &grant.practice_id,
            Some(&grant.id),
            None,
            now,
            now + LIVENESS_SECS,
        )
        .await?;
    Ok(token)
}

/// Checks a session cookie and extends its liveness. `user_input` says whether this
/// request came from the person (not a heartbeat); only that resets the idle clock.
pub async fn check_patient_session(
    svc: &Services,
    token: &str,
    user_input: bool,
) -> Result<Option<PatientScope>, DbError> {
    if token.len() > 128 {
        return Ok(None);
    }
    let hash = token_hash("session", token);
    let Some(s) = svc.db.session(&hash).await? else {
        return Ok(None);
    };
    let now = svc.clock.now();
    let alive = s.kind == "patient"
        && s.ended_at.is_none()
        && now <= s.alive_until
        && now - s.last_input_at <= IDLE_SECS
        && now - s.created_at <= ABSOLUTE_SECS;
    if !alive {
        if s.ended_at.is_none() {
            svc.db.end_session(&hash, now).await?;
        }
        return Ok(None);
    }
    if s.leaving_at.is_some_and(|t| now > t + CLOSE_GRACE_SECS) {
        svc.db.end_session(&hash, now).await?;
        return Ok(None);
    }
    let Some(grant_id) = s.grant_id else {
        return Ok(None);
    };
    let Some(grant) = svc.db.grant_by_id(&grant_id).await? else {
        return Ok(None);
    };
    if grant.revoked_at.is_some() || grant.expires_at <= now || grant.locked_at.is_some() {
        svc.db.end_session(&hash, now).await?;
        return Ok(None);
    }
    svc.db
        .touch_session(&hash, now + LIVENESS_SECS, user_input.then_some(now))
        .await?;
    let last_input = if user_input { now } else { s.last_input_at };
    Ok(Some(PatientScope {
        practice_id: s.practice_id,
        study_id: grant.study_id,
        grant_id: grant.id,
        audience: grant.audience,
        grant_expires_at: grant.expires_at,
        allow_download: grant.allow_download,
        session_hash: hash,
        ends_at: (last_input + IDLE_SECS).min(s.created_at + ABSOLUTE_SECS),
    }))
}

pub async fn end_session(svc: &Services, scope: &PatientScope) -> Result<(), DbError> {
    svc.db
        .end_session(&scope.session_hash, svc.clock.now())
        .await
}

/// A per-tab nonce (the viewer keeps it in sessionStorage) is short and plain.
fn valid_nonce(nonce: &str) -> bool {
    (16..=64).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A heartbeat from a viewer tab. The first tab owns the session; another tab (the
/// cookie replayed in another browser context) is refused and ends nothing. The owning
/// tab coming back after saying goodbye is a reload: the session goes on.
pub async fn tab_heartbeat(
    svc: &Services,
    scope: &PatientScope,
    nonce: &str,
) -> Result<bool, DbError> {
    if !valid_nonce(nonce) || !svc.db.claim_tab(&scope.session_hash, nonce).await? {
        return Ok(false);
    }
    svc.db.set_leaving(&scope.session_hash, None).await?;
    Ok(true)
}

/// The owning tab is being closed or navigated away (`pagehide`): the session ends in
/// [`CLOSE_GRACE_SECS`] unless the same tab comes back.
pub async fn tab_leaving(svc: &Services, scope: &PatientScope, nonce: &str) -> Result<(), DbError> {
    let (owner, _) = svc.db.session_tab(&scope.session_hash).await?;
    if valid_nonce(nonce) && owner.as_deref() == Some(nonce) {
        svc.db
            .set_leaving(&scope.session_hash, Some(svc.clock.now()))
            .await?;
    }
    Ok(())
}
