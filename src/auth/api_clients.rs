//! OAuth2 client credentials: client id + secret → short-lived bearer token.

use crate::access::ratelimit::KeyLimiter;
use crate::db::Db;
use crate::domain::{new_id, new_token, token_hash};
use subtle::ConstantTimeEq;

pub const TOKEN_TTL_SECS: i64 = 15 * 60;
pub const CLIENT_LIFETIME_SECS: i64 = 183 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum ApiAuthError {
    #[error("invalid client")]
    InvalidClient,
    /// The client has used up its requests per minute; seconds to wait.
    #[error("rate limited")]
    RateLimited(u64),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

/// A new client's credentials; the secret is shown once and stored only as a hash.
pub struct IssuedClient {
    pub client_id: String,
    pub client_secret: String,
}

pub async fn create_client(
    db: &Db,
    practice_id: &str,
    name: &str,
    now: i64,
) -> Result<IssuedClient, ApiAuthError> {
    let mut rng = rand::rngs::OsRng;
    let client_id = format!("lk_{}", new_id(&mut rng));
    let client_secret = new_token(&mut rng);
    db.insert_api_client(
        &new_id(&mut rng),
        practice_id,
        &client_id,
        &token_hash("api-client-secret", &client_secret),
        name,
        now,
        now + CLIENT_LIFETIME_SECS,
    )
    .await?;
    Ok(IssuedClient {
        client_id,
        client_secret,
    })
}

/// Checks client credentials and issues a bearer token. Every refusal of the
/// credentials looks the same.
/// A token issued counts as one of the client's requests (`limiter`), so new tokens
/// do not buy a fresh rate.
pub async fn issue_token(
    db: &Db,
    limiter: &KeyLimiter,
    client_id: &str,
    client_secret: &str,
    now: i64,
) -> Result<String, ApiAuthError> {
    if client_id.len() > 128 || client_secret.len() > 256 {
        return Err(ApiAuthError::InvalidClient);
    }
    let presented = token_hash("api-client-secret", client_secret);
    let client = db.api_client_by_client_id(client_id).await?;
    let Some(client) = client else {
        return Err(ApiAuthError::InvalidClient);
    };
    let secret_ok: bool = presented
        .as_bytes()
        .ct_eq(client.secret_hash.as_bytes())
        .into();
    if !secret_ok || client.disabled_at.is_some() || client.expires_at <= now {
        return Err(ApiAuthError::InvalidClient);
    }
    limiter
        .allow(&client.id, now)
        .map_err(ApiAuthError::RateLimited)?;
    let token = new_token(&mut rand::rngs::OsRng);
    db.insert_api_token(
        &token_hash("api-token", &token),
        &client.id,
        &client.practice_id,
        now,
        now + TOKEN_TTL_SECS,
    )
    .await?;
    Ok(token)
}

/// The hash a bearer token is stored and looked up by; None for a token longer than
/// any we issue (not worth hashing).
pub fn lookup_hash(bearer: &str) -> Option<String> {
    (bearer.len() <= 256).then(|| token_hash("api-token", bearer))
}

/// `(practice_id, api_client_row_id)` of a live bearer token.
pub async fn authenticate(
    db: &Db,
    bearer: &str,
    now: i64,
) -> Result<Option<(String, String)>, ApiAuthError> {
    let Some(hash) = lookup_hash(bearer) else {
        return Ok(None);
    };
    Ok(db.api_token_caller(&hash, now).await?)
}
