//! Practices, their keys, staff users and API clients.

use super::{Db, DbResult, get_bytes, get_i64, get_opt_i64, get_str};
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct PracticeRow {
    pub id: String,
    pub name: String,
    pub address: String,
    pub default_access_days: i64,
    pub kek_id: String,
    pub audit_head: String,
}

#[derive(Debug, Clone)]
pub struct PracticeKeyRow {
    pub id: String,
    pub practice_id: String,
    pub root_key_id: String,
    pub wrapped: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct NewStaffUser<'a> {
    pub id: &'a str,
    pub practice_id: &'a str,
    pub username: &'a str,
    pub display_name: &'a str,
    pub role: &'a str,
    pub password_hash: &'a str,
    pub must_change_password: bool,
    pub totp_sealed: Option<&'a [u8]>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct ApiClientRow {
    pub id: String,
    pub practice_id: String,
    pub client_id: String,
    pub secret_hash: String,
    pub expires_at: i64,
    pub disabled_at: Option<i64>,
}

fn practice_from(row: &sqlx::any::AnyRow) -> DbResult<PracticeRow> {
    Ok(PracticeRow {
        id: get_str(row, "id")?,
        name: get_str(row, "name")?,
        address: get_str(row, "address")?,
        default_access_days: get_i64(row, "default_access_days")?,
        kek_id: get_str(row, "kek_id")?,
        audit_head: get_str(row, "audit_head")?,
    })
}

fn key_from(row: &sqlx::any::AnyRow) -> DbResult<PracticeKeyRow> {
    Ok(PracticeKeyRow {
        id: get_str(row, "id")?,
        practice_id: get_str(row, "practice_id")?,
        root_key_id: get_str(row, "root_key_id")?,
        wrapped: get_bytes(row, "wrapped")?,
    })
}

impl Db {
    pub async fn root_key_ids(&self) -> DbResult<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT id, state FROM root_keys ORDER BY created_at")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((get_str(r, "id")?, get_str(r, "state")?)))
            .collect()
    }

    pub async fn insert_root_key(&self, id: &str, now: i64) -> DbResult<()> {
        sqlx::query("INSERT INTO root_keys (id, state, created_at) VALUES ($1, 'current', $2)")
            .bind(id)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Root ids still referenced by a practice key.
    pub async fn root_keys_in_use(&self) -> DbResult<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT root_key_id FROM practice_keys")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| get_str(r, "root_key_id")).collect()
    }

    pub async fn all_practice_keys(&self) -> DbResult<Vec<PracticeKeyRow>> {
        let rows = sqlx::query("SELECT id, practice_id, root_key_id, wrapped FROM practice_keys")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(key_from).collect()
    }

    /// Root rotation in one transaction: every practice key rewrapped under the new
    /// root, the new root made current, the old ones retired.
    pub async fn rotate_root(
        &self,
        new_root_id: &str,
        rewrapped: &[(String, Vec<u8>)],
        now: i64,
    ) -> DbResult<()> {
        let (_gate, mut tx) = self.begin_write().await?;
        sqlx::query("UPDATE root_keys SET state = 'retired' WHERE state = 'current'")
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO root_keys (id, state, created_at) VALUES ($1, 'current', $2)")
            .bind(new_root_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for (key_id, wrapped) in rewrapped {
            sqlx::query("UPDATE practice_keys SET root_key_id = $1, wrapped = $2 WHERE id = $3")
                .bind(new_root_id)
                .bind(wrapped.clone())
                .bind(key_id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn insert_practice(
        &self,
        practice: &PracticeRow,
        key: &PracticeKeyRow,
        now: i64,
    ) -> DbResult<()> {
        let (_gate, mut tx) = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO practices (id, name, address, default_access_days, kek_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(practice.id.as_str())
        .bind(practice.name.as_str())
        .bind(practice.address.as_str())
        .bind(practice.default_access_days)
        .bind(key.id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO practice_keys (id, practice_id, root_key_id, wrapped, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(key.id.as_str())
        .bind(key.practice_id.as_str())
        .bind(key.root_key_id.as_str())
        .bind(key.wrapped.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn practice(&self, id: &str) -> DbResult<Option<PracticeRow>> {
        let row = sqlx::query(
            "SELECT id, name, address, default_access_days, kek_id, audit_head FROM practices WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(practice_from).transpose()
    }

    pub async fn practices(&self) -> DbResult<Vec<PracticeRow>> {
        let rows = sqlx::query(
            "SELECT id, name, address, default_access_days, kek_id, audit_head FROM practices ORDER BY created_at",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(practice_from).collect()
    }

    pub async fn practice_key(&self, key_id: &str) -> DbResult<Option<PracticeKeyRow>> {
        let row = sqlx::query(
            "SELECT id, practice_id, root_key_id, wrapped FROM practice_keys WHERE id = $1",
        )
        .bind(key_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(key_from).transpose()
    }

    /// Practice key rotation: the new key becomes current, every study key of the
    /// practice is rewrapped under it, and the old key row is destroyed.
    // One slice per kind of row the new key re-covers, all in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn rotate_practice_key(
        &self,
        practice_id: &str,
        new_key: &PracticeKeyRow,
        rewrapped_studies: &[(String, Vec<u8>)],
        resealed_patients: &[(String, String, Vec<u8>)],
        resealed_totp: &[(String, Vec<u8>)],
        now: i64,
    ) -> DbResult<()> {
        let (_gate, mut tx) = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO practice_keys (id, practice_id, root_key_id, wrapped, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(new_key.id.as_str())
        .bind(practice_id)
        .bind(new_key.root_key_id.as_str())
        .bind(new_key.wrapped.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (study_id, wrapped) in rewrapped_studies {
            sqlx::query("UPDATE studies SET kek_id = $1, wrapped_dek = $2 WHERE id = $3 AND practice_id = $4")
                .bind(new_key.id.as_str())
                .bind(wrapped.clone())
                .bind(study_id.as_str())
                .bind(practice_id)
                .execute(&mut *tx)
                .await?;
        }
        for (patient_id, patient_key, sealed) in resealed_patients {
            sqlx::query(
                "UPDATE patients SET kek_id = $1, patient_key = $2, sealed = $3 WHERE id = $4 AND practice_id = $5",
            )
            .bind(new_key.id.as_str())
            .bind(patient_key.as_str())
            .bind(sealed.clone())
            .bind(patient_id.as_str())
            .bind(practice_id)
            .execute(&mut *tx)
            .await?;
        }
        for (user_id, sealed) in resealed_totp {
            sqlx::query(
                "UPDATE staff_users SET totp_sealed = $1 WHERE id = $2 AND practice_id = $3",
            )
            .bind(sealed.clone())
            .bind(user_id.as_str())
            .bind(practice_id)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE practices SET kek_id = $1 WHERE id = $2")
            .bind(new_key.id.as_str())
            .bind(practice_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM practice_keys WHERE practice_id = $1 AND id <> $2")
            .bind(practice_id)
            .bind(new_key.id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn insert_staff_user(&self, u: &NewStaffUser<'_>) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO staff_users (id, practice_id, username, display_name, role, password_hash,
                 must_change_password, totp_sealed, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(u.id)
        .bind(u.practice_id)
        .bind(u.username)
        .bind(u.display_name)
        .bind(u.role)
        .bind(u.password_hash)
        .bind(i64::from(u.must_change_password))
        .bind(u.totp_sealed.map(<[u8]>::to_vec))
        .bind(u.created_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    // One parameter per column of a flat row insert.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_api_client(
        &self,
        id: &str,
        practice_id: &str,
        client_id: &str,
        secret_hash: &str,
        name: &str,
        now: i64,
        expires_at: i64,
    ) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO api_clients (id, practice_id, client_id, secret_hash, name, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(practice_id)
        .bind(client_id)
        .bind(secret_hash)
        .bind(name)
        .bind(now)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn api_client_by_client_id(&self, client_id: &str) -> DbResult<Option<ApiClientRow>> {
        let row = sqlx::query(
            "SELECT id, practice_id, client_id, secret_hash, expires_at, disabled_at
             FROM api_clients WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(ApiClientRow {
                id: get_str(&r, "id")?,
                practice_id: get_str(&r, "practice_id")?,
                client_id: get_str(&r, "client_id")?,
                secret_hash: get_str(&r, "secret_hash")?,
                expires_at: get_i64(&r, "expires_at")?,
                disabled_at: get_opt_i64(&r, "disabled_at")?,
            })
        })
        .transpose()
    }

    pub async fn insert_api_token(
        &self,
        token_hash: &str,
        api_client_id: &str,
        practice_id: &str,
        now: i64,
        expires_at: i64,
    ) -> DbResult<()> {
        let (_gate, mut tx) = self.begin_write().await?;
        sqlx::query("DELETE FROM api_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO api_tokens (token_hash, api_client_id, practice_id, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(api_client_id)
        .bind(practice_id)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE api_clients SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(api_client_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The caller of a bearer token, if the token is live and its client still usable.
    pub async fn api_token_caller(
        &self,
        token_hash: &str,
        now: i64,
    ) -> DbResult<Option<(String, String)>> {
        let row = sqlx::query(concat!(
            "SELECT t.practice_id, c.id AS client_id FROM ",
            live_api_token!()
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| Ok((r.try_get("practice_id")?, r.try_get("client_id")?)))
            .transpose()
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiClientInfo {
    pub id: String,
    pub client_id: String,
    pub name: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub disabled_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct PracticeSettings {
    pub name: String,
    pub address: String,
    pub default_access_days: i64,
    pub findings_delay_hours: i64,
    pub max_upload_mb: i64,
    pub allow_forwarding: bool,
    pub referrer_findings_early: bool,
    /// New grants may download images and the study ZIP unless the practice says no.
    pub downloads_default: bool,
}

impl Db {
    pub async fn api_clients_of_practice(&self, practice_id: &str) -> DbResult<Vec<ApiClientInfo>> {
        let rows = sqlx::query(
            "SELECT id, client_id, name, created_at, expires_at, disabled_at, last_used_at
             FROM api_clients WHERE practice_id = $1 ORDER BY created_at",
        )
        .bind(practice_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiClientInfo {
                    id: get_str(r, "id")?,
                    client_id: get_str(r, "client_id")?,
                    name: get_str(r, "name")?,
                    created_at: get_i64(r, "created_at")?,
                    expires_at: get_i64(r, "expires_at")?,
                    disabled_at: get_opt_i64(r, "disabled_at")?,
                    last_used_at: get_opt_i64(r, "last_used_at")?,
                })
            })
            .collect()
    }

    pub async fn renew_api_client(
        &self,
        practice_id: &str,
        id: &str,
        expires_at: i64,
    ) -> DbResult<bool> {
        let done = sqlx::query("UPDATE api_clients SET expires_at = $3 WHERE practice_id = $1 AND id = $2 AND disabled_at IS NULL")
            .bind(practice_id)
            .bind(id)
            .bind(expires_at)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Disables a client and drops its live tokens, so it is refused at once.
    pub async fn disable_api_client(
        &self,
        practice_id: &str,
        id: &str,
        now: i64,
    ) -> DbResult<bool> {
        let (_gate, mut tx) = self.begin_write().await?;
        let done = sqlx::query("UPDATE api_clients SET disabled_at = $3 WHERE practice_id = $1 AND id = $2 AND disabled_at IS NULL")
            .bind(practice_id)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        // Only the practice's own client: nothing else is touched for a foreign id.
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM api_tokens WHERE api_client_id = $1 AND practice_id = $2")
            .bind(id)
            .bind(practice_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn practice_settings(&self, practice_id: &str) -> DbResult<Option<PracticeSettings>> {
        let row = sqlx::query(
            "SELECT name, address, default_access_days, findings_delay_hours, max_upload_mb, allow_forwarding,
                 referrer_findings_early, downloads_default
             FROM practices WHERE id = $1",
        )
        .bind(practice_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(PracticeSettings {
                name: get_str(&r, "name")?,
                address: get_str(&r, "address")?,
                default_access_days: get_i64(&r, "default_access_days")?,
                findings_delay_hours: get_i64(&r, "findings_delay_hours")?,
                max_upload_mb: get_i64(&r, "max_upload_mb")?,
                allow_forwarding: get_i64(&r, "allow_forwarding")? != 0,
                referrer_findings_early: get_i64(&r, "referrer_findings_early")? != 0,
                downloads_default: get_i64(&r, "downloads_default")? != 0,
            })
        })
        .transpose()
    }

    pub async fn update_practice_settings(
        &self,
        practice_id: &str,
        s: &PracticeSettings,
    ) -> DbResult<()> {
        sqlx::query(
            "UPDATE practices SET name = $2, address = $3, default_access_days = $4, findings_delay_hours = $5,
                 max_upload_mb = $6, allow_forwarding = $7, referrer_findings_early = $8,
                 downloads_default = $9 WHERE id = $1",
        )
        .bind(practice_id)
        .bind(s.name.as_str())
        .bind(s.address.as_str())
        .bind(s.default_access_days)
        .bind(s.findings_delay_hours)
        .bind(s.max_upload_mb)
        .bind(i64::from(s.allow_forwarding))
        .bind(i64::from(s.referrer_findings_early))
        .bind(i64::from(s.downloads_default))
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

impl Db {
    pub async fn set_practice_logo(&self, practice_id: &str, jpeg: Option<&[u8]>) -> DbResult<()> {
        sqlx::query("UPDATE practices SET logo_jpeg = $2 WHERE id = $1")
            .bind(practice_id)
            .bind(jpeg.map(<[u8]>::to_vec))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn practice_logo(&self, practice_id: &str) -> DbResult<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT logo_jpeg FROM practices WHERE id = $1")
            .bind(practice_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => sqlx::Row::try_get::<Option<Vec<u8>>, _>(&r, "logo_jpeg")?,
            None => None,
        })
    }
}

/// A practice's DICOM node as the C-STORE door sees it.
#[derive(Debug, Clone)]
pub struct DicomNode {
    pub practice_id: String,
    pub ae_title: String,
    pub calling_ae_titles: Vec<String>,
}

/// The stored comma-separated list as titles.
pub fn split_ae_titles(list: &str) -> Vec<String> {
    list.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl Db {
    pub async fn dicom_nodes(&self) -> DbResult<Vec<DicomNode>> {
        let rows = sqlx::query(
            "SELECT id, dicom_ae_title, dicom_calling_aes FROM practices WHERE dicom_ae_title IS NOT NULL",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DicomNode {
                    practice_id: get_str(r, "id")?,
                    ae_title: get_str(r, "dicom_ae_title")?,
                    calling_ae_titles: split_ae_titles(&get_str(r, "dicom_calling_aes")?),
                })
            })
            .collect()
    }

    /// The practice's node, or `None` if it has no AE title yet.
    pub async fn dicom_node(&self, practice_id: &str) -> DbResult<Option<DicomNode>> {
        Ok(self
            .dicom_nodes()
            .await?
            .into_iter()
            .find(|n| n.practice_id == practice_id))
    }

    /// Sets (or with `None` removes) the practice's AE title and accepted callers.
    /// `false` if another practice has that title.
    pub async fn set_dicom_node(
        &self,
        practice_id: &str,
        ae_title: Option<&str>,
        calling: &[String],
    ) -> DbResult<bool> {
        if let Some(title) = ae_title
            && self
                .dicom_nodes()
                .await?
                .iter()
                .any(|n| n.ae_title == title && n.practice_id != practice_id)
        {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE practices SET dicom_ae_title = $2, dicom_calling_aes = $3 WHERE id = $1",
        )
        .bind(practice_id)
        .bind(ae_title)
        .bind(calling.join(","))
        .execute(self.pool())
        .await?;
        Ok(true)
    }
}

impl Db {
    /// The practice's storage quota in bytes, if the operator set one.
    pub async fn practice_quota(&self, practice_id: &str) -> DbResult<Option<u64>> {
        let row = sqlx::query("SELECT quota_mb FROM practices WHERE id = $1")
            .bind(practice_id)
            .fetch_optional(self.pool())
            .await?;
        let mb = match row {
            Some(r) => get_i64(&r, "quota_mb")?,
            None => 0,
        };
        Ok((mb > 0).then(|| mb as u64 * 1024 * 1024))
    }

    pub async fn set_practice_quota(&self, practice_id: &str, mb: i64) -> DbResult<bool> {
        let (_gate, mut tx) = self.begin_write().await?;
        let done = sqlx::query("UPDATE practices SET quota_mb = $1 WHERE id = $2")
            .bind(mb)
            .bind(practice_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Bytes the practice's originals take (renders are not counted: they are ours).
    pub async fn practice_stored_bytes(&self, practice_id: &str) -> DbResult<u64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(b.plain_size), 0) AS BIGINT) AS n FROM blobs b JOIN studies s ON s.id = b.study_id
             WHERE s.practice_id = $1 AND b.kind = 'original'",
        )
        .bind(practice_id)
        .fetch_one(self.pool())
        .await?;
        Ok(get_i64(&row, "n")?.max(0) as u64)
    }
}
