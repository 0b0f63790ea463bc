//! Patient/referrer grants and server-side sessions.

use super::{Db, DbResult, get_i64, get_opt_i64, get_str};
use sqlx::any::AnyRow;

#[derive(Debug, Clone)]
pub struct GrantRow {
    pub id: String,
    pub practice_id: String,
    pub study_id: String,
    pub audience: String,
    pub password_hash: String,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub failed_count: i64,
    pub failed_window_start: i64,
    pub last_failed_at: i64,
    pub locked_at: Option<i64>,
    /// Set for a referrer grant a patient made by forwarding their own.
    pub parent_grant_id: Option<String>,
    /// May download images and the study ZIP.
    pub allow_download: bool,
}

#[derive(Debug, Clone)]
pub struct NewGrant<'a> {
    pub id: &'a str,
    pub practice_id: &'a str,
    pub study_id: &'a str,
    pub audience: &'a str,
    pub code_hash: &'a str,
    pub link_hash: &'a str,
    pub password_hash: &'a str,
    pub expires_at: i64,
    pub parent_grant_id: Option<&'a str>,
    pub allow_download: bool,
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub kind: String,
    pub practice_id: String,
    pub grant_id: Option<String>,
    pub user_id: Option<String>,
    pub created_at: i64,
    pub alive_until: i64,
    pub last_input_at: i64,
    pub ended_at: Option<i64>,
    /// Staff: "password" (half signed in) or "full".
    pub stage: String,
    pub csrf_token: String,
    /// Patients: when the owning tab said it was closing.
    pub leaving_at: Option<i64>,
}

const GRANT_SELECT: &str =
    "SELECT id, practice_id, study_id, audience, password_hash, expires_at, revoked_at,
        failed_count, failed_window_start, last_failed_at, locked_at, parent_grant_id, allow_download FROM grants";

fn grant_from(r: &AnyRow) -> DbResult<GrantRow> {
    Ok(GrantRow {
        id: get_str(r, "id")?,
        practice_id: get_str(r, "practice_id")?,
        study_id: get_str(r, "study_id")?,
        audience: get_str(r, "audience")?,
        password_hash: get_str(r, "password_hash")?,
        expires_at: get_i64(r, "expires_at")?,
        revoked_at: get_opt_i64(r, "revoked_at")?,
        failed_count: get_i64(r, "failed_count")?,
        failed_window_start: get_i64(r, "failed_window_start")?,
        last_failed_at: get_i64(r, "last_failed_at")?,
        locked_at: get_opt_i64(r, "locked_at")?,
        parent_grant_id: sqlx::Row::try_get(r, "parent_grant_id")?,
        allow_download: get_i64(r, "allow_download")? != 0,
    })
}

impl Db {
    pub async fn insert_grant(&self, g: &NewGrant<'_>, now: i64) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO grants (id, practice_id, study_id, audience, code_hash, link_hash, password_hash,
                 expires_at, created_at, parent_grant_id, allow_download)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(g.id)
        .bind(g.practice_id)
        .bind(g.study_id)
        .bind(g.audience)
        .bind(g.code_hash)
        .bind(g.link_hash)
        .bind(g.password_hash)
        .bind(g.expires_at)
        .bind(now)
        .bind(g.parent_grant_id)
        .bind(i64::from(g.allow_download))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn grant_by_code_hash(&self, code_hash: &str) -> DbResult<Option<GrantRow>> {
        let sql = format!("{GRANT_SELECT} WHERE code_hash = $1");
        let row = sqlx::query(&sql)
            .bind(code_hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(grant_from).transpose()
    }

    pub async fn grant_by_link_hash(&self, link_hash: &str) -> DbResult<Option<GrantRow>> {
        let sql = format!("{GRANT_SELECT} WHERE link_hash = $1");
        let row = sqlx::query(&sql)
            .bind(link_hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(grant_from).transpose()
    }

    pub async fn grant(&self, practice_id: &str, grant_id: &str) -> DbResult<Option<GrantRow>> {
        let sql = format!("{GRANT_SELECT} WHERE practice_id = $1 AND id = $2");
        let row = sqlx::query(&sql)
            .bind(practice_id)
            .bind(grant_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(grant_from).transpose()
    }

    pub async fn grant_by_id(&self, grant_id: &str) -> DbResult<Option<GrantRow>> {
        let sql = format!("{GRANT_SELECT} WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(grant_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(grant_from).transpose()
    }

    /// Records a failed password: the count restarts when the 24 h window has passed,
    /// and the grant locks once `lock_after` failures fall inside one window.
    pub async fn record_grant_failure(
        &self,
        grant_id: &str,
        now: i64,
        window_secs: i64,
        lock_after: i64,
    ) -> DbResult<()> {
        let (_gate, mut tx) = self.begin_write().await?;
        sqlx::query(
            "UPDATE grants SET
                failed_count = CASE WHEN failed_window_start + $2 < $3 THEN 1 ELSE failed_count + 1 END,
                failed_window_start = CASE WHEN failed_window_start + $2 < $3 THEN $3 ELSE failed_window_start END,
                last_failed_at = $3
             WHERE id = $1",
        )
        .bind(grant_id)
        .bind(window_secs)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE grants SET locked_at = $2 WHERE id = $1 AND failed_count >= $3 AND locked_at IS NULL")
            .bind(grant_id)
            .bind(now)
            .bind(lock_after)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn record_grant_success(&self, grant_id: &str, now: i64) -> DbResult<()> {
        sqlx::query(
            "UPDATE grants SET failed_count = 0, first_opened_at = COALESCE(first_opened_at, $2) WHERE id = $1",
        )
        .bind(grant_id)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Moves a live grant's end date. Forwards made from it keep their own.
    pub async fn set_grant_expiry(
        &self,
        practice_id: &str,
        grant_id: &str,
        expires_at: i64,
    ) -> DbResult<bool> {
        let done = sqlx::query(
            "UPDATE grants SET expires_at = $3 WHERE practice_id = $1 AND id = $2 AND revoked_at IS NULL",
        )
        .bind(practice_id)
        .bind(grant_id)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes a grant and ends its live sessions at once.
    pub async fn revoke_grant(
        &self,
        practice_id: &str,
        grant_id: &str,
        now: i64,
    ) -> DbResult<bool> {
        let (_gate, mut tx) = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE grants SET revoked_at = $3 WHERE practice_id = $1 AND id = $2 AND revoked_at IS NULL",
        )
        .bind(practice_id)
        .bind(grant_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        end_sessions_in(&mut tx, SessionOwner::Grant, grant_id, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    // One parameter per column of a flat row insert.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_session(
        &self,
        id_hash: &str,
        kind: &str,
        practice_id: &str,
        grant_id: Option<&str>,
        user_id: Option<&str>,
        now: i64,
        alive_until: i64,
    ) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, kind, practice_id, grant_id, user_id, created_at, alive_until, last_input_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $6)",
        )
        .bind(id_hash)
        .bind(kind)
        .bind(practice_id)
        .bind(grant_id)
        .bind(user_id)
        .bind(now)
        .bind(alive_until)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn session(&self, id_hash: &str) -> DbResult<Option<SessionRow>> {
        let row = sqlx::query(
            "SELECT kind, practice_id, grant_id, user_id, created_at, alive_until, last_input_at, ended_at,
                    stage, csrf_token, leaving_at
             FROM sessions WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(SessionRow {
                kind: get_str(&r, "kind")?,
                practice_id: get_str(&r, "practice_id")?,
                grant_id: sqlx::Row::try_get(&r, "grant_id")?,
                user_id: sqlx::Row::try_get(&r, "user_id")?,
                created_at: get_i64(&r, "created_at")?,
                alive_until: get_i64(&r, "alive_until")?,
                last_input_at: get_i64(&r, "last_input_at")?,
                ended_at: get_opt_i64(&r, "ended_at")?,
                stage: get_str(&r, "stage")?,
                csrf_token: get_str(&r, "csrf_token")?,
                leaving_at: get_opt_i64(&r, "leaving_at")?,
            })
        })
        .transpose()
    }

    pub async fn touch_session(
        &self,
        id_hash: &str,
        alive_until: i64,
        user_input_at: Option<i64>,
    ) -> DbResult<()> {
        sqlx::query(
            "UPDATE sessions SET alive_until = $2, last_input_at = COALESCE($3, last_input_at)
             WHERE id_hash = $1 AND ended_at IS NULL",
        )
        .bind(id_hash)
        .bind(alive_until)
        .bind(user_input_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn end_session(&self, id_hash: &str, now: i64) -> DbResult<()> {
        sqlx::query("UPDATE sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL")
            .bind(id_hash)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

impl Db {
    pub async fn grants_of_study(
        &self,
        practice_id: &str,
        study_id: &str,
    ) -> DbResult<Vec<GrantRow>> {
        let sql =
            format!("{GRANT_SELECT} WHERE practice_id = $1 AND study_id = $2 ORDER BY created_at");
        let rows = sqlx::query(&sql)
            .bind(practice_id)
            .bind(study_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(grant_from).collect()
    }
}

impl Db {
    pub async fn set_grant_letter(&self, grant_id: &str, sealed: &[u8]) -> DbResult<()> {
        sqlx::query("UPDATE grants SET letter_sealed = $2 WHERE id = $1")
            .bind(grant_id)
            .bind(sealed.to_vec())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn grant_letter(&self, grant_id: &str) -> DbResult<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT letter_sealed FROM grants WHERE id = $1")
            .bind(grant_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => sqlx::Row::try_get::<Option<Vec<u8>>, _>(&r, "letter_sealed")?,
            None => None,
        })
    }

    /// Reissue: a new password, counters and lock cleared, live sessions ended.
    pub async fn reissue_grant(
        &self,
        practice_id: &str,
        grant_id: &str,
        password_hash: &str,
        sealed: &[u8],
        now: i64,
    ) -> DbResult<bool> {
        let (_gate, mut tx) = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE grants SET password_hash = $3, letter_sealed = $4, failed_count = 0, locked_at = NULL, last_failed_at = 0
             WHERE practice_id = $1 AND id = $2 AND revoked_at IS NULL",
        )
        .bind(practice_id)
        .bind(grant_id)
        .bind(password_hash)
        .bind(sealed.to_vec())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        end_sessions_in(&mut tx, SessionOwner::Grant, grant_id, now).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Per study: the earliest end of a live grant and whether any patient grant was opened.
#[derive(Debug, Clone, Default)]
pub struct GrantSummary {
    pub next_expiry: Option<i64>,
    pub opened: bool,
}

impl Db {
    pub async fn grant_summaries(
        &self,
        practice_id: &str,
        now: i64,
    ) -> DbResult<std::collections::HashMap<String, GrantSummary>> {
        let rows = sqlx::query(
            "SELECT study_id, expires_at, revoked_at, first_opened_at, audience FROM grants WHERE practice_id = $1",
        )
        .bind(practice_id)
        .fetch_all(self.pool())
        .await?;
        let mut out: std::collections::HashMap<String, GrantSummary> =
            std::collections::HashMap::new();
        for r in &rows {
            let entry = out.entry(get_str(r, "study_id")?).or_default();
            let live = get_opt_i64(r, "revoked_at")?.is_none() && get_i64(r, "expires_at")? > now;
            if live {
                let exp = get_i64(r, "expires_at")?;
                entry.next_expiry = Some(entry.next_expiry.map_or(exp, |e| e.min(exp)));
            }
            if get_str(r, "audience")? == "patient" && get_opt_i64(r, "first_opened_at")?.is_some()
            {
                entry.opened = true;
            }
        }
        Ok(out)
    }
}

impl Db {
    /// Drops session rows that can no longer be used (ended or past every limit)
    /// and expired API tokens. Returns how many rows went.
    pub async fn purge_dead_sessions(&self, before: i64) -> DbResult<u64> {
        let sessions = sqlx::query(
            "DELETE FROM sessions WHERE (ended_at IS NOT NULL AND ended_at < $1) OR alive_until < $1",
        )
        .bind(before)
        .execute(self.pool())
        .await?;
        let tokens = sqlx::query("DELETE FROM api_tokens WHERE expires_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(sessions.rows_affected() + tokens.rows_affected())
    }
}

impl Db {
    /// `(tab_nonce, leaving_at)` of a session.
    pub async fn session_tab(&self, id_hash: &str) -> DbResult<(Option<String>, Option<i64>)> {
        let row = sqlx::query("SELECT tab_nonce, leaving_at FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => (
                sqlx::Row::try_get(&r, "tab_nonce")?,
                get_opt_i64(&r, "leaving_at")?,
            ),
            None => (None, None),
        })
    }

    /// The first tab to speak owns the session; returns false if another tab owns it.
    pub async fn claim_tab(&self, id_hash: &str, nonce: &str) -> DbResult<bool> {
        sqlx::query("UPDATE sessions SET tab_nonce = $2 WHERE id_hash = $1 AND tab_nonce IS NULL")
            .bind(id_hash)
            .bind(nonce)
            .execute(self.pool())
            .await?;
        Ok(self.session_tab(id_hash).await?.0.as_deref() == Some(nonce))
    }

    pub async fn set_leaving(&self, id_hash: &str, at: Option<i64>) -> DbResult<()> {
        sqlx::query("UPDATE sessions SET leaving_at = $2 WHERE id_hash = $1")
            .bind(id_hash)
            .bind(at)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

impl Db {
    /// Revokes the forwards a grant made (and their sessions): a patient who lost
    /// access cannot keep a forward alive.
    pub async fn revoke_forwards_of(&self, parent_grant_id: &str, now: i64) -> DbResult<()> {
        let (_gate, mut tx) = self.begin_write().await?;
        sqlx::query(
            "UPDATE sessions SET ended_at = $2 WHERE ended_at IS NULL
               AND grant_id IN (SELECT id FROM grants WHERE parent_grant_id = $1)",
        )
        .bind(parent_grant_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE grants SET revoked_at = $2 WHERE parent_grant_id = $1 AND revoked_at IS NULL",
        )
        .bind(parent_grant_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn forwards_of(&self, parent_grant_id: &str) -> DbResult<Vec<GrantRow>> {
        let sql = format!("{GRANT_SELECT} WHERE parent_grant_id = $1 ORDER BY created_at");
        let rows = sqlx::query(&sql)
            .bind(parent_grant_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(grant_from).collect()
    }

    pub async fn practice_allows_forwarding(&self, practice_id: &str) -> DbResult<bool> {
        let row = sqlx::query("SELECT allow_forwarding FROM practices WHERE id = $1")
            .bind(practice_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => get_i64(&r, "allow_forwarding")? != 0,
            None => false,
        })
    }
}

/// Whose sessions to end.
#[derive(Clone, Copy)]
pub(crate) enum SessionOwner {
    Grant,
    User,
}

/// Ends every live session of a grant or a staff user, inside the caller's transaction.
pub(crate) async fn end_sessions_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    owner: SessionOwner,
    id: &str,
    now: i64,
) -> DbResult<()> {
    let sql = match owner {
        SessionOwner::Grant => {
            "UPDATE sessions SET ended_at = $2 WHERE grant_id = $1 AND ended_at IS NULL"
        }
        SessionOwner::User => {
            "UPDATE sessions SET ended_at = $2 WHERE user_id = $1 AND ended_at IS NULL"
        }
    };
    sqlx::query(sql)
        .bind(id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
