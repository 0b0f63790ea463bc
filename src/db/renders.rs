//! The render cache's index and the leased queue of renders to prepare.

use super::{Db, DbResult, get_i64, get_str};
use crate::db::studies::NewBlob;

/// A leased job: render this instance's prepared variants.
#[derive(Debug, Clone)]
pub struct RenderJob {
    pub instance_id: String,
    pub study_id: String,
    pub practice_id: String,
    pub attempts: i64,
}

/// The name a decoded copy is recorded under among an instance's renders (frame 0;
/// it holds every frame).
pub const DECODED_COPY: &str = decoded_copy_variant!();

/// A job is tried this often before it is left alone (a file that cannot be drawn).
pub const MAX_ATTEMPTS: i64 = 3;

impl Db {
    /// The cached render's object, if there is one.
    pub async fn cached_render(
        &self,
        instance_id: &str,
        frame: u32,
        variant: &str,
    ) -> DbResult<Option<(String, String, String)>> {
        let row = sqlx::query(
            "SELECT r.blob_id, b.object_key, b.sha256 FROM renders r JOIN blobs b ON b.id = r.blob_id
             WHERE r.instance_id = $1 AND r.frame = $2 AND r.variant = $3",
        )
        .bind(instance_id)
        .bind(frame as i64)
        .bind(variant)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok((
                get_str(&r, "blob_id")?,
                get_str(&r, "object_key")?,
                get_str(&r, "sha256")?,
            ))
        })
        .transpose()
    }

    /// Records a stored render. False if another node recorded the same one first
    /// (the caller then deletes its own object).
    pub async fn insert_render(
        &self,
        blob: &NewBlob<'_>,
        instance_id: &str,
        frame: u32,
        variant: &str,
        media_type: &str,
        now: i64,
    ) -> DbResult<bool> {
        let (_gate, mut tx) = self.begin_write().await?;
        let exists = sqlx::query(
            "SELECT blob_id FROM renders WHERE instance_id = $1 AND frame = $2 AND variant = $3",
        )
        .bind(instance_id)
        .bind(frame as i64)
        .bind(variant)
        .fetch_optional(&mut *tx)
        .await?;
        // The instance may have gone with its study meanwhile.
        let instance = sqlx::query("SELECT id FROM instances WHERE id = $1")
            .bind(instance_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() || instance.is_none() {
            tx.rollback().await?;
            return Ok(false);
        }
        super::studies::insert_blob(&mut tx, blob, now).await?;
        sqlx::query(
            "INSERT INTO renders (instance_id, frame, variant, blob_id, media_type)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(instance_id)
        .bind(frame as i64)
        .bind(variant)
        .bind(blob.id)
        .bind(media_type)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Takes the oldest job nobody holds, for `lease_secs`. The outer condition on
    /// `leased_until` is checked again on the row itself, so two nodes racing for the
    /// same job cannot both win it.
    pub async fn lease_render_job(
        &self,
        owner: &str,
        now: i64,
        lease_secs: i64,
    ) -> DbResult<Option<RenderJob>> {
        let (_gate, mut tx) = self.begin_write().await?;
        // PostgreSQL: nodes asking at once each skip the rows the others have
        // locked, so each gets a job of its own. SQLite has one writer at a time.
        let skip_locked = match self.dialect {
            super::Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            super::Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE render_jobs SET leased_until = $1, lease_owner = $2, attempts = attempts + 1
             WHERE instance_id = (
                 SELECT instance_id FROM render_jobs
                 WHERE leased_until < $3 AND attempts < $4
                 ORDER BY created_at, instance_id LIMIT 1 {skip_locked})
               AND leased_until < $3
             RETURNING instance_id, study_id, attempts"
        );
        let row = sqlx::query(&sql)
            .bind(now + lease_secs)
            .bind(owner)
            .bind(now)
            .bind(MAX_ATTEMPTS)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let study_id = get_str(&row, "study_id")?;
        let practice = sqlx::query("SELECT practice_id FROM studies WHERE id = $1")
            .bind(&study_id)
            .fetch_one(&mut *tx)
            .await?;
        let job = RenderJob {
            instance_id: get_str(&row, "instance_id")?,
            practice_id: get_str(&practice, "practice_id")?,
            study_id,
            attempts: get_i64(&row, "attempts")?,
        };
        tx.commit().await?;
        Ok(Some(job))
    }

    /// Done: only the lease holder removes the job.
    pub async fn finish_render_job(&self, instance_id: &str, owner: &str) -> DbResult<bool> {
        let (_gate, mut tx) = self.begin_write().await?;
        let done =
            sqlx::query("DELETE FROM render_jobs WHERE instance_id = $1 AND lease_owner = $2")
                .bind(instance_id)
                .bind(owner)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Jobs still waiting or held (for tests and /metrics).
    pub async fn pending_render_jobs(&self) -> DbResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM render_jobs WHERE attempts < $1")
            .bind(MAX_ATTEMPTS)
            .fetch_one(self.pool())
            .await?;
        get_i64(&row, "n")
    }

    /// The study's render blobs, for the cache's share of deletion and purge.
    pub async fn render_count(&self, instance_id: &str) -> DbResult<i64> {
        let row = sqlx::query(concat!(
            "SELECT COUNT(*) AS n FROM renders WHERE instance_id = $1 AND variant <> '",
            decoded_copy_variant!(),
            "'"
        ))
        .bind(instance_id)
        .fetch_one(self.pool())
        .await?;
        get_i64(&row, "n")
    }
}
