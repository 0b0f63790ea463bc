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

/// What a live patient session may see.
#[derive(Debug, Clone)]
pub struct PatientScope {
    pub practice_id: String,
    pub study_id: String,
    pub grant_id: String,
    pub audience: String,
    pub grant_expires_at: i64,
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
        session_hash: hash,
        ends_at: (last_input + IDLE_SECS).min(s.created_at + ABSOLUTE_SECS),
    }))
}

pub async fn end_session(svc: &Services, scope: &PatientScope) -> Result<(), DbError> {
    svc.db
        .end_session(&scope.session_hash, svc.clock.now())
        .await
}
