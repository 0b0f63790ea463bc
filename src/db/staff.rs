//! Staff users and their sign-in state.

use super::access::{SessionOwner, end_sessions_in};
use super::{Db, DbResult, get_i64, get_opt_i64, get_str};
use sqlx::any::AnyRow;

#[derive(Debug, Clone)]
pub struct StaffUserRow {
    pub id: String,
    pub practice_id: String,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub password_hash: String,
    pub must_change_password: bool,
    pub totp_sealed: Option<Vec<u8>>,
    pub totp_last_step: i64,
    pub totp_enrolled: bool,
    pub failed_logins: i64,
    pub locked_at: Option<i64>,
    pub active: bool,
    pub last_login_at: Option<i64>,
    pub terms_accepted_version: i64,
}

const USER_SELECT: &str = "SELECT id, practice_id, username, display_name, role, password_hash,
        must_change_password, totp_sealed, totp_last_step, totp_enrolled, failed_logins, locked_at,
        active, last_login_at, terms_accepted_version FROM staff_users";

fn user_from(r: &AnyRow) -> DbResult<StaffUserRow> {
    Ok(StaffUserRow {
        id: get_str(r, "id")?,
        practice_id: get_str(r, "practice_id")?,
        username: get_str(r, "username")?,
        display_name: get_str(r, "display_name")?,
        role: get_str(r, "role")?,
        password_hash: get_str(r, "password_hash")?,
        must_change_password: get_i64(r, "must_change_password")? != 0,
        totp_sealed: sqlx::Row::try_get(r, "totp_sealed")?,
        totp_last_step: get_i64(r, "totp_last_step")?,
        totp_enrolled: get_i64(r, "totp_enrolled")? != 0,
        failed_logins: get_i64(r, "failed_logins")?,
        locked_at: get_opt_i64(r, "locked_at")?,
        active: get_i64(r, "active")? != 0,
        last_login_at: get_opt_i64(r, "last_login_at")?,
        terms_accepted_version: get_i64(r, "terms_accepted_version")?,
    })
}

impl Db {
    pub async fn staff_by_username(&self, username: &str) -> DbResult<Option<StaffUserRow>> {
        let sql = format!("{USER_SELECT} WHERE username = $1");
        let row = sqlx::query(&sql)
            .bind(username)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    pub async fn staff_by_id(&self, user_id: &str) -> DbResult<Option<StaffUserRow>> {
        let sql = format!("{USER_SELECT} WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    pub async fn staff_of_practice(&self, practice_id: &str) -> DbResult<Vec<StaffUserRow>> {
        let sql = format!("{USER_SELECT} WHERE practice_id = $1 ORDER BY username");
        let rows = sqlx::query(&sql)
            .bind(practice_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(user_from).collect()
    }

    /// Counts a failed step and locks the account once `lock_after` failures add up.
    /// Only a complete sign-in resets the count, so restarting the flow does not.
    pub async fn record_staff_failure(
        &self,
        user_id: &str,
        now: i64,
        lock_after: i64,
    ) -> DbResult<()> {
        sqlx::query(
            "UPDATE staff_users SET failed_logins = failed_logins + 1,
                locked_at = CASE WHEN failed_logins + 1 >= $3 AND locked_at IS NULL THEN $2 ELSE locked_at END
             WHERE id = $1",
        )
        .bind(user_id)
        .bind(now)
        .bind(lock_after)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A completed sign-in: the TOTP step is spent, the failure count cleared.
    /// Returns false when the step was already used (a replay).
    pub async fn record_staff_login(
        &self,
        user_id: &str,
        totp_step: i64,
        now: i64,
    ) -> DbResult<bool> {
        let done = sqlx::query(
            "UPDATE staff_users SET failed_logins = 0, totp_last_step = $2, last_login_at = $3
             WHERE id = $1 AND totp_last_step < $2",
        )
        .bind(user_id)
        .bind(totp_step)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_staff_password(&self, user_id: &str, hash: &str) -> DbResult<()> {
        sqlx::query(
            "UPDATE staff_users SET password_hash = $2, must_change_password = 0 WHERE id = $1",
        )
        .bind(user_id)
        .bind(hash)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn set_staff_totp_enrolled(&self, user_id: &str) -> DbResult<()> {
        sqlx::query("UPDATE staff_users SET totp_enrolled = 1 WHERE id = $1")
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    // One parameter per column of a flat row insert.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_staff_session(
        &self,
        id_hash: &str,
        practice_id: &str,
        user_id: &str,
        stage: &str,
        csrf_token: &str,
        now: i64,
        alive_until: i64,
    ) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, kind, practice_id, user_id, created_at, alive_until, last_input_at, stage, csrf_token)
             VALUES ($1, 'staff', $2, $3, $4, $5, $4, $6, $7)",
        )
        .bind(id_hash)
        .bind(practice_id)
        .bind(user_id)
        .bind(now)
        .bind(alive_until)
        .bind(stage)
        .bind(csrf_token)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

impl Db {
    pub async fn update_staff_profile(
        &self,
        practice_id: &str,
        user_id: &str,
        username: &str,
        display_name: &str,
        role: &str,
    ) -> DbResult<bool> {
        let done = sqlx::query(
            "UPDATE staff_users SET username = $3, display_name = $4, role = $5 WHERE practice_id = $1 AND id = $2",
        )
        .bind(practice_id)
        .bind(user_id)
        .bind(username)
        .bind(display_name)
        .bind(role)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deactivates (or reactivates) a user; deactivation ends their sessions at once.
    pub async fn set_staff_active(
        &self,
        practice_id: &str,
        user_id: &str,
        active: bool,
        now: i64,
    ) -> DbResult<bool> {
        let (_gate, mut tx) = self.begin_write().await?;
        let done =
            sqlx::query("UPDATE staff_users SET active = $3 WHERE practice_id = $1 AND id = $2")
                .bind(practice_id)
                .bind(user_id)
                .bind(i64::from(active))
                .execute(&mut *tx)
                .await?;
        if !active && done.rows_affected() == 1 {
            end_sessions_in(&mut tx, SessionOwner::User, user_id, now).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// A new one-time password and a new TOTP seed: the user signs in as for the first time.
    pub async fn reset_staff_credentials(
        &self,
        practice_id: &str,
        user_id: &str,
        password_hash: &str,
        totp_sealed: &[u8],
        now: i64,
    ) -> DbResult<bool> {
        let (_gate, mut tx) = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE staff_users SET password_hash = $3, must_change_password = 1, totp_sealed = $4, totp_enrolled = 0,
                 totp_last_step = 0, failed_logins = 0, locked_at = NULL
             WHERE practice_id = $1 AND id = $2",
        )
        .bind(practice_id)
        .bind(user_id)
        .bind(password_hash)
        .bind(totp_sealed.to_vec())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        end_sessions_in(&mut tx, SessionOwner::User, user_id, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn unlock_staff(&self, practice_id: &str, user_id: &str) -> DbResult<bool> {
        let done = sqlx::query("UPDATE staff_users SET failed_logins = 0, locked_at = NULL WHERE practice_id = $1 AND id = $2")
            .bind(practice_id)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn accept_terms(&self, user_id: &str, version: i64) -> DbResult<()> {
        sqlx::query("UPDATE staff_users SET terms_accepted_version = $2 WHERE id = $1")
            .bind(user_id)
            .bind(version)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
