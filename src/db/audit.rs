//! Append-only audit events, hash-chained per practice.

use super::{Db, DbResult, get_i64, get_str};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: i64,
    pub actor_kind: String,
    pub actor_id: String,
    pub action: String,
    pub study_id: Option<String>,
    pub detail: String,
    #[serde(skip)]
    pub prev_hash: String,
    #[serde(skip)]
    pub hash: String,
}

pub struct NewAuditEvent<'a> {
    pub practice_id: &'a str,
    pub at: i64,
    pub actor_kind: &'a str,
    pub actor_id: &'a str,
    pub action: &'a str,
    pub study_id: Option<&'a str>,
    pub detail: &'a str,
}

/// The chain link: each event's hash covers the previous hash and every field.
pub fn chain_hash(prev: &str, e: &NewAuditEvent<'_>) -> String {
    let mut h = Sha256::new();
    for part in [
        prev,
        e.practice_id,
        &e.at.to_string(),
        e.actor_kind,
        e.actor_id,
        e.action,
        e.study_id.unwrap_or(""),
        e.detail,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

impl Db {
    /// Appends an event. The practice's chain head is advanced by compare-and-swap so
    /// concurrent writers on several nodes never fork the chain.
    pub async fn append_audit(&self, e: &NewAuditEvent<'_>) -> DbResult<()> {
        for _ in 0..50 {
            let (_gate, mut tx) = self.begin_write().await?;
            let row = sqlx::query("SELECT audit_head FROM practices WHERE id = $1")
                .bind(e.practice_id)
                .fetch_one(&mut *tx)
                .await?;
            let prev = get_str(&row, "audit_head")?;
            let hash = chain_hash(&prev, e);
            let moved = sqlx::query(
                "UPDATE practices SET audit_head = $1 WHERE id = $2 AND audit_head = $3",
            )
            .bind(hash.as_str())
            .bind(e.practice_id)
            .bind(prev.as_str())
            .execute(&mut *tx)
            .await?;
            if moved.rows_affected() != 1 {
                tx.rollback().await?;
                continue;
            }
            sqlx::query(
                "INSERT INTO audit_events (practice_id, at, actor_kind, actor_id, action, study_id, detail, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(e.practice_id)
            .bind(e.at)
            .bind(e.actor_kind)
            .bind(e.actor_id)
            .bind(e.action)
            .bind(e.study_id)
            .bind(e.detail)
            .bind(prev.as_str())
            .bind(hash.as_str())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(());
        }
        Err(super::DbError::Conflict)
    }

    pub async fn audit_of_practice(&self, practice_id: &str) -> DbResult<Vec<AuditEvent>> {
        self.audit_query("WHERE practice_id = $1", practice_id, None)
            .await
    }

    pub async fn audit_of_study(
        &self,
        practice_id: &str,
        study_id: &str,
    ) -> DbResult<Vec<AuditEvent>> {
        self.audit_query(
            "WHERE practice_id = $1 AND study_id = $2",
            practice_id,
            Some(study_id),
        )
        .await
    }

    async fn audit_query(
        &self,
        filter: &str,
        practice_id: &str,
        study_id: Option<&str>,
    ) -> DbResult<Vec<AuditEvent>> {
        let sql = format!(
            "SELECT seq, at, actor_kind, actor_id, action, study_id, detail, prev_hash, hash
             FROM audit_events {filter} ORDER BY seq"
        );
        let mut q = sqlx::query(&sql).bind(practice_id);
        if let Some(s) = study_id {
            q = q.bind(s);
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEvent {
                    seq: get_i64(r, "seq")?,
                    at: get_i64(r, "at")?,
                    actor_kind: get_str(r, "actor_kind")?,
                    actor_id: get_str(r, "actor_id")?,
                    action: get_str(r, "action")?,
                    study_id: sqlx::Row::try_get(r, "study_id")?,
                    detail: get_str(r, "detail")?,
                    prev_hash: get_str(r, "prev_hash")?,
                    hash: get_str(r, "hash")?,
                })
            })
            .collect()
    }
}
