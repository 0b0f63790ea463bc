//! Patients, studies, series, instances and their stored objects.

use super::{Db, DbResult, get_bytes, get_i64, get_str};
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone)]
pub struct NewPatient<'a> {
    pub id: &'a str,
    pub practice_id: &'a str,
    /// Blind index of normalised ID + name + birth date, for matching.
    pub patient_key: &'a str,
    pub kek_id: &'a str,
    /// Name, ID, birth date and sex, sealed under the practice key.
    pub sealed: &'a [u8],
}

/// What a Retrieve Rendered request's one read finds: the API client whose token
/// it was (for its rate), the study's key rows and the instance.
pub struct TokenInstance {
    pub client_row_id: String,
    pub study: StudyKeyRow,
    pub instance: InstanceRow,
}

#[derive(Debug, Clone)]
pub struct StudyKeyRow {
    pub id: String,
    pub practice_id: String,
    pub kek_id: String,
    pub wrapped_dek: Vec<u8>,
    /// The practice key it is wrapped under, read in the same query where the
    /// caller is about to open the study (saves a look-up per request).
    pub practice_key: Option<crate::db::practices::PracticeKeyRow>,
}

#[derive(Debug, Clone)]
pub struct NewStudy<'a> {
    pub id: &'a str,
    pub practice_id: &'a str,
    pub patient_id: &'a str,
    pub study_uid: &'a str,
    pub study_date: &'a str,
    pub modalities: &'a str,
    pub kek_id: &'a str,
    pub wrapped_dek: &'a [u8],
    /// Description, accession, referring physician, sealed under the study key.
    pub sealed: &'a [u8],
}

/// A study row with its sealed parts; `studies::view` opens them.
#[derive(Debug, Clone)]
pub struct StudyRecord {
    pub id: String,
    pub study_uid: String,
    pub study_date: String,
    pub modalities: String,
    pub instance_count: i64,
    pub created_at: i64,
    pub key: StudyKeyRow,
    pub study_sealed: Vec<u8>,
    pub patient_row_id: String,
    pub patient_kek_id: String,
    pub patient_sealed: Vec<u8>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SeriesRow {
    pub id: String,
    pub series_uid: String,
    pub series_number: i64,
    pub modality: String,
    pub description: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct InstanceRow {
    pub id: String,
    pub series_id: String,
    pub sop_uid: String,
    pub sop_class_uid: String,
    pub instance_number: i64,
    pub rows: i64,
    pub columns: i64,
    pub frames: i64,
    pub view: crate::dicom::parse::ViewMeta,
    #[serde(skip)]
    pub blob_id: String,
    #[serde(skip)]
    pub object_key: String,
    #[serde(skip)]
    pub plain_size: i64,
    /// Of the plaintext, taken at ingest; every read is checked against it.
    #[serde(skip)]
    pub sha256: String,
    #[serde(skip)]
    pub transfer_syntax: String,
    /// The decoded copy of a compressed original, once one is kept.
    #[serde(skip)]
    pub decoded: Option<DecodedCopyRow>,
}

/// Where the decoded copy of a compressed original is stored (a `decoded` blob,
/// recorded with the instance's renders under [`crate::db::renders::DECODED_COPY`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedCopyRow {
    pub blob_id: String,
    pub object_key: String,
    pub plain_size: i64,
    pub sha256: String,
}

#[derive(Debug, Clone)]
pub struct BlobCheckRow {
    pub id: String,
    pub study_id: String,
    pub practice_id: String,
    pub kind: String,
    pub object_key: String,
    pub plain_size: i64,
    pub sha256: String,
}

#[derive(Debug, Clone)]
pub struct NewBlob<'a> {
    pub id: &'a str,
    pub study_id: &'a str,
    pub kind: &'a str,
    pub object_key: &'a str,
    pub plain_size: i64,
    pub stored_size: i64,
    pub sha256: &'a str,
}

#[derive(Debug, Clone)]
pub struct NewInstance<'a> {
    pub id: &'a str,
    pub study_id: &'a str,
    pub series_id: &'a str,
    pub sop_uid: &'a str,
    pub sop_class_uid: &'a str,
    pub instance_number: i64,
    pub transfer_syntax: &'a str,
    pub rows: i64,
    pub columns: i64,
    pub frames: i64,
    /// JSON of [`crate::dicom::parse::ViewMeta`].
    pub view_meta: &'a str,
    /// The first instance of its series in this upload: the study's list of
    /// modalities is worked out again (the others of the series need not).
    pub new_series: bool,
}

const SUMMARY_SELECT: &str =
    "SELECT s.id, s.practice_id, s.study_uid, s.study_date, s.modalities, s.created_at,
        s.kek_id, s.wrapped_dek, s.sealed AS study_sealed,
        p.id AS patient_row_id, p.kek_id AS patient_kek_id, p.sealed AS patient_sealed,
        (SELECT COUNT(*) FROM instances i WHERE i.study_id = s.id) AS instance_count
     FROM studies s JOIN patients p ON p.id = s.patient_id";

fn record_from(r: &AnyRow) -> DbResult<StudyRecord> {
    Ok(StudyRecord {
        id: get_str(r, "id")?,
        study_uid: get_str(r, "study_uid")?,
        study_date: get_str(r, "study_date")?,
        modalities: get_str(r, "modalities")?,
        instance_count: get_i64(r, "instance_count")?,
        created_at: get_i64(r, "created_at")?,
        key: study_key_from(r)?,
        study_sealed: get_bytes(r, "study_sealed")?,
        patient_row_id: get_str(r, "patient_row_id")?,
        patient_kek_id: get_str(r, "patient_kek_id")?,
        patient_sealed: get_bytes(r, "patient_sealed")?,
    })
}

fn instance_from(r: &AnyRow) -> DbResult<InstanceRow> {
    Ok(InstanceRow {
        id: get_str(r, "id")?,
        series_id: get_str(r, "series_id")?,
        sop_uid: get_str(r, "sop_uid")?,
        sop_class_uid: get_str(r, "sop_class_uid")?,
        instance_number: get_i64(r, "instance_number")?,
        rows: get_i64(r, "rows_count")?,
        columns: get_i64(r, "columns_count")?,
        frames: get_i64(r, "frames")?,
        // Rows from before the column existed hold '{}': every field absent.
        view: serde_json::from_str(&get_str(r, "view_meta")?).unwrap_or_default(),
        blob_id: get_str(r, "blob_id")?,
        object_key: get_str(r, "object_key")?,
        plain_size: get_i64(r, "plain_size")?,
        sha256: get_str(r, "sha256")?,
        transfer_syntax: get_str(r, "transfer_syntax")?,
        decoded: match r.try_get::<Option<String>, _>("decoded_blob_id")? {
            Some(blob_id) => Some(DecodedCopyRow {
                blob_id,
                object_key: get_str(r, "decoded_object_key")?,
                plain_size: get_i64(r, "decoded_plain_size")?,
                sha256: get_str(r, "decoded_sha256")?,
            }),
            None => None,
        },
    })
}

/// The columns [`instance_from`] reads (instances `i` joined with blobs `b` and with
/// [`decoded_copy_join`]).
macro_rules! instance_columns {
    () => {
        "i.id, i.series_id, i.sop_uid, i.sop_class_uid, i.instance_number, i.rows_count,
         i.columns_count, i.frames, i.view_meta, i.blob_id, b.object_key, b.plain_size, b.sha256,
         i.transfer_syntax, dcr.blob_id AS decoded_blob_id, dcb.object_key AS decoded_object_key,
         dcb.plain_size AS decoded_plain_size, dcb.sha256 AS decoded_sha256"
    };
}

/// The instance's decoded copy, if one is kept (a primary-key look-up in renders).
macro_rules! decoded_copy_join {
    () => {
        concat!(
            " LEFT JOIN renders dcr ON dcr.instance_id = i.id AND dcr.frame = 0 AND dcr.variant = '",
            decoded_copy_variant!(),
            "' LEFT JOIN blobs dcb ON dcb.id = dcr.blob_id "
        )
    };
}

const INSTANCE_SELECT: &str = concat!(
    "SELECT ",
    instance_columns!(),
    " FROM instances i JOIN blobs b ON b.id = i.blob_id",
    decoded_copy_join!()
);

impl Db {
    /// The practice's patient with this key, created if new. Safe under concurrent ingest.
    pub async fn upsert_patient(&self, p: &NewPatient<'_>, now: i64) -> DbResult<String> {
        let find = || async {
            let row =
                sqlx::query("SELECT id FROM patients WHERE practice_id = $1 AND patient_key = $2")
                    .bind(p.practice_id)
                    .bind(p.patient_key)
                    .fetch_optional(self.pool())
                    .await?;
            row.map(|r| get_str(&r, "id")).transpose()
        };
        if let Some(id) = find().await? {
            return Ok(id);
        }
        let inserted = sqlx::query(
            "INSERT INTO patients (id, practice_id, patient_key, kek_id, sealed, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (practice_id, patient_key) DO NOTHING",
        )
        .bind(p.id)
        .bind(p.practice_id)
        .bind(p.patient_key)
        .bind(p.kek_id)
        .bind(p.sealed.to_vec())
        .bind(now)
        .execute(self.pool())
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(p.id.to_string());
        }
        find().await?.ok_or(super::DbError::Conflict)
    }

    pub async fn study_key_by_uid(
        &self,
        practice_id: &str,
        study_uid: &str,
    ) -> DbResult<Option<StudyKeyRow>> {
        let row = sqlx::query(&format!(
            "{STUDY_KEY_WITH_PRACTICE_KEY} WHERE s.practice_id = $1 AND s.study_uid = $2"
        ))
        .bind(practice_id)
        .bind(study_uid)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref()
            .map(study_key_with_practice_key_from)
            .transpose()
    }

    pub async fn study_key(
        &self,
        practice_id: &str,
        study_id: &str,
    ) -> DbResult<Option<StudyKeyRow>> {
        let row = sqlx::query(&format!(
            "{STUDY_KEY_WITH_PRACTICE_KEY} WHERE s.practice_id = $1 AND s.id = $2"
        ))
        .bind(practice_id)
        .bind(study_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref()
            .map(study_key_with_practice_key_from)
            .transpose()
    }

    pub async fn study_keys_of_practice(&self, practice_id: &str) -> DbResult<Vec<StudyKeyRow>> {
        let rows = sqlx::query(
            "SELECT id, practice_id, kek_id, wrapped_dek FROM studies WHERE practice_id = $1",
        )
        .bind(practice_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(study_key_from).collect()
    }

    /// Inserts the study unless another upload created it first; returns true if inserted.
    pub async fn insert_study(&self, s: &NewStudy<'_>, now: i64) -> DbResult<bool> {
        let done = sqlx::query(
            "INSERT INTO studies (id, practice_id, patient_id, study_uid, study_date, modalities, kek_id,
                 wrapped_dek, sealed, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (practice_id, study_uid) DO NOTHING",
        )
        .bind(s.id)
        .bind(s.practice_id)
        .bind(s.patient_id)
        .bind(s.study_uid)
        .bind(s.study_date)
        .bind(s.modalities)
        .bind(s.kek_id)
        .bind(s.wrapped_dek.to_vec())
        .bind(s.sealed.to_vec())
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn upsert_series(
        &self,
        id: &str,
        study_id: &str,
        series_uid: &str,
        number: i64,
        modality: &str,
        description: &str,
    ) -> DbResult<String> {
        sqlx::query(
            "INSERT INTO series (id, study_id, series_uid, series_number, modality, description)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (study_id, series_uid) DO NOTHING",
        )
        .bind(id)
        .bind(study_id)
        .bind(series_uid)
        .bind(number)
        .bind(modality)
        .bind(description)
        .execute(self.pool())
        .await?;
        let row = sqlx::query("SELECT id FROM series WHERE study_id = $1 AND series_uid = $2")
            .bind(study_id)
            .bind(series_uid)
            .fetch_one(self.pool())
            .await?;
        get_str(&row, "id")
    }

    pub async fn instance_exists(&self, study_id: &str, sop_uid: &str) -> DbResult<bool> {
        let row = sqlx::query("SELECT id FROM instances WHERE study_id = $1 AND sop_uid = $2")
            .bind(study_id)
            .bind(sop_uid)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    /// Records a completely stored object and its instance in one transaction, so a
    /// study never lists an instance whose bytes are not there. Returns false if the
    /// instance already existed (the caller then deletes its now-unused object).
    /// The study's modalities are worked out from its series inside the same
    /// transaction, so instances recorded in any order (or by two uploads at once)
    /// never leave a shorter list behind.
    pub async fn insert_instance(
        &self,
        blob: &NewBlob<'_>,
        inst: &NewInstance<'_>,
        now: i64,
    ) -> DbResult<bool> {
        // A file sent twice meets the instance's unique key and is rolled back,
        // blob row included.
        let (_gate, mut tx) = self.begin_write_with_write().await?;
        insert_blob(&mut tx, blob, now).await?;
        let inserted = sqlx::query(
            "INSERT INTO instances (id, study_id, series_id, sop_uid, sop_class_uid, instance_number,
                 transfer_syntax, rows_count, columns_count, frames, blob_id, created_at, view_meta)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (study_id, sop_uid) DO NOTHING",
        )
        .bind(inst.id)
        .bind(inst.study_id)
        .bind(inst.series_id)
        .bind(inst.sop_uid)
        .bind(inst.sop_class_uid)
        .bind(inst.instance_number)
        .bind(inst.transfer_syntax)
        .bind(inst.rows)
        .bind(inst.columns)
        .bind(inst.frames)
        .bind(blob.id)
        .bind(now)
        .bind(inst.view_meta)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        if inst.new_series {
            let modalities = sqlx::query(
                "SELECT DISTINCT modality FROM series WHERE study_id = $1 ORDER BY modality",
            )
            .bind(inst.study_id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| get_str(r, "modality"))
            .collect::<DbResult<Vec<_>>>()?
            .join(",");
            sqlx::query("UPDATE studies SET modalities = $1 WHERE id = $2")
                .bind(modalities)
                .bind(inst.study_id)
                .execute(&mut *tx)
                .await?;
        }
        if inst.rows > 0 {
            // Queued with the instance itself: a crash cannot lose the job.
            sqlx::query(
                "INSERT INTO render_jobs (instance_id, study_id, created_at) VALUES ($1, $2, $3)",
            )
            .bind(inst.id)
            .bind(inst.study_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn list_studies(
        &self,
        practice_id: &str,
        limit: i64,
        offset: i64,
    ) -> DbResult<Vec<StudyRecord>> {
        let sql = format!(
            // A study shows once its first instance is completely stored.
            "{SUMMARY_SELECT} WHERE s.practice_id = $1
               AND EXISTS (SELECT 1 FROM instances i WHERE i.study_id = s.id)
             ORDER BY s.created_at DESC, s.id LIMIT $2 OFFSET $3"
        );
        let rows = sqlx::query(&sql)
            .bind(practice_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(record_from).collect()
    }

    pub async fn study_record(
        &self,
        practice_id: &str,
        study_id: &str,
    ) -> DbResult<Option<StudyRecord>> {
        let sql = format!("{SUMMARY_SELECT} WHERE s.practice_id = $1 AND s.id = $2");
        let row = sqlx::query(&sql)
            .bind(practice_id)
            .bind(study_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(record_from).transpose()
    }

    pub async fn series_of_study(&self, study_id: &str) -> DbResult<Vec<SeriesRow>> {
        let rows = sqlx::query(
            "SELECT id, series_uid, series_number, modality, description FROM series
             WHERE study_id = $1 ORDER BY series_number, series_uid",
        )
        .bind(study_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SeriesRow {
                    id: get_str(r, "id")?,
                    series_uid: get_str(r, "series_uid")?,
                    series_number: get_i64(r, "series_number")?,
                    modality: get_str(r, "modality")?,
                    description: get_str(r, "description")?,
                })
            })
            .collect()
    }

    pub async fn instances_of_study(&self, study_id: &str) -> DbResult<Vec<InstanceRow>> {
        let sql = format!(
            "{INSTANCE_SELECT} WHERE i.study_id = $1 ORDER BY i.series_id, i.instance_number, i.sop_uid"
        );
        let rows = sqlx::query(&sql)
            .bind(study_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(instance_from).collect()
    }

    /// The study's key rows and the instance for a Retrieve Rendered request, in one
    /// read that also checks the bearer token: the study must belong to the practice
    /// of a live token of an enabled client (`live_api_token!`, as in
    /// `api_token_caller`). None when the token is not live or the instance is not in
    /// its practice; the caller tells the two apart with `api_token_caller`.
    pub async fn study_key_and_instance_for_token(
        &self,
        token_hash: &str,
        now: i64,
        (study_uid, series_uid, sop_uid): (&str, &str, &str),
    ) -> DbResult<Option<TokenInstance>> {
        // The study's id and practice are renamed: the instance's own `id` is read too.
        const SQL: &str = concat!(
            "SELECT tok.client_row_id, s.id AS study_row_id, s.practice_id AS study_practice_id,
                s.kek_id, s.wrapped_dek, k.id AS key_id, k.practice_id AS key_practice_id,
                k.root_key_id, k.wrapped, ",
            instance_columns!(),
            " FROM (SELECT t.practice_id, c.id AS client_row_id FROM ",
            live_api_token!(),
            ") tok
             JOIN studies s ON s.practice_id = tok.practice_id
             LEFT JOIN practice_keys k ON k.id = s.kek_id
             JOIN instances i ON i.study_id = s.id
             JOIN blobs b ON b.id = i.blob_id",
            decoded_copy_join!(),
            "JOIN series se ON se.id = i.series_id
             WHERE s.study_uid = $3 AND se.series_uid = $4 AND i.sop_uid = $5"
        );
        let row = sqlx::query(SQL)
            .bind(token_hash)
            .bind(now)
            .bind(study_uid)
            .bind(series_uid)
            .bind(sop_uid)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let study = StudyKeyRow {
            id: get_str(&row, "study_row_id")?,
            practice_id: get_str(&row, "study_practice_id")?,
            kek_id: get_str(&row, "kek_id")?,
            wrapped_dek: get_bytes(&row, "wrapped_dek")?,
            practice_key: practice_key_of(&row)?,
        };
        Ok(Some(TokenInstance {
            client_row_id: get_str(&row, "client_row_id")?,
            study,
            instance: instance_from(&row)?,
        }))
    }

    pub async fn instance(
        &self,
        study_id: &str,
        instance_id: &str,
    ) -> DbResult<Option<InstanceRow>> {
        let sql = format!("{INSTANCE_SELECT} WHERE i.study_id = $1 AND i.id = $2");
        let row = sqlx::query(&sql)
            .bind(study_id)
            .bind(instance_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(instance_from).transpose()
    }

    /// Deletes the study and, with it, its wrapped data key (crypto-shredding): from
    /// this commit on its objects are unreadable. Returns their storage keys so the
    /// caller can remove them too.
    pub async fn delete_study(
        &self,
        practice_id: &str,
        study_id: &str,
    ) -> DbResult<Option<Vec<String>>> {
        let (_gate, mut tx) = self.begin_write().await?;
        let keys = sqlx::query(
            "SELECT b.object_key FROM blobs b JOIN studies s ON s.id = b.study_id
             WHERE s.practice_id = $1 AND s.id = $2",
        )
        .bind(practice_id)
        .bind(study_id)
        .fetch_all(&mut *tx)
        .await?;
        let keys: Vec<String> = keys
            .iter()
            .map(|r| get_str(r, "object_key"))
            .collect::<DbResult<_>>()?;
        let deleted = sqlx::query("DELETE FROM studies WHERE practice_id = $1 AND id = $2")
            .bind(practice_id)
            .bind(study_id)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(keys))
    }

    /// Every recorded object with what is needed to read it back (for `verify`).
    pub async fn all_blobs(&self) -> DbResult<Vec<BlobCheckRow>> {
        let rows = sqlx::query(
            "SELECT b.id, b.study_id, s.practice_id, b.kind, b.object_key, b.plain_size, b.sha256
             FROM blobs b JOIN studies s ON s.id = b.study_id ORDER BY b.study_id, b.id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BlobCheckRow {
                    id: get_str(r, "id")?,
                    study_id: get_str(r, "study_id")?,
                    practice_id: get_str(r, "practice_id")?,
                    kind: get_str(r, "kind")?,
                    object_key: get_str(r, "object_key")?,
                    plain_size: get_i64(r, "plain_size")?,
                    sha256: get_str(r, "sha256")?,
                })
            })
            .collect()
    }

    /// Studies that never got an instance (an upload that failed or crashed after
    /// creating the study), created before `before`: removed with their keys.
    pub async fn delete_empty_studies(&self, before: i64) -> DbResult<u64> {
        let (_gate, mut tx) = self.begin_write().await?;
        let done = sqlx::query(
            "DELETE FROM studies WHERE created_at < $1
               AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.study_id = studies.id)",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Every storage key the database knows, for finding orphaned objects.
    pub async fn all_object_keys(&self) -> DbResult<Vec<String>> {
        let rows = sqlx::query("SELECT object_key FROM blobs")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| get_str(r, "object_key")).collect()
    }
}

fn study_key_from(r: &AnyRow) -> DbResult<StudyKeyRow> {
    Ok(StudyKeyRow {
        id: get_str(r, "id")?,
        practice_id: get_str(r, "practice_id")?,
        kek_id: get_str(r, "kek_id")?,
        wrapped_dek: get_bytes(r, "wrapped_dek")?,
        practice_key: None,
    })
}

/// The study's key row and its practice key in one read.
const STUDY_KEY_WITH_PRACTICE_KEY: &str =
    "SELECT s.id, s.practice_id, s.kek_id, s.wrapped_dek, k.id AS key_id,
        k.practice_id AS key_practice_id, k.root_key_id, k.wrapped
     FROM studies s LEFT JOIN practice_keys k ON k.id = s.kek_id";

fn study_key_with_practice_key_from(r: &AnyRow) -> DbResult<StudyKeyRow> {
    let mut row = study_key_from(r)?;
    row.practice_key = practice_key_of(r)?;
    Ok(row)
}

/// The practice key columns of a row read with [`STUDY_KEY_WITH_PRACTICE_KEY`]'s join.
fn practice_key_of(r: &AnyRow) -> DbResult<Option<crate::db::practices::PracticeKeyRow>> {
    let key_id = r.try_get::<Option<String>, _>("key_id")?;
    let key_practice_id = r.try_get::<Option<String>, _>("key_practice_id")?;
    let root_key_id = r.try_get::<Option<String>, _>("root_key_id")?;
    let wrapped = r.try_get::<Option<Vec<u8>>, _>("wrapped")?;
    Ok(match (key_id, key_practice_id, root_key_id, wrapped) {
        (Some(id), Some(practice_id), Some(root_key_id), Some(wrapped)) => {
            Some(crate::db::practices::PracticeKeyRow {
                id,
                practice_id,
                root_key_id,
                wrapped,
            })
        }
        _ => None,
    })
}

impl Db {
    pub async fn blob_sha256(&self, blob_id: &str) -> DbResult<String> {
        let row = sqlx::query("SELECT sha256 FROM blobs WHERE id = $1")
            .bind(blob_id)
            .fetch_one(self.pool())
            .await?;
        get_str(&row, "sha256")
    }
}

impl Db {
    /// `(id, kek_id, sealed)` of every patient of a practice (for key rotation).
    pub async fn patients_of_practice(
        &self,
        practice_id: &str,
    ) -> DbResult<Vec<(String, String, Vec<u8>)>> {
        let rows = sqlx::query("SELECT id, kek_id, sealed FROM patients WHERE practice_id = $1")
            .bind(practice_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    get_str(r, "id")?,
                    get_str(r, "kek_id")?,
                    get_bytes(r, "sealed")?,
                ))
            })
            .collect()
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FindingRow {
    pub id: String,
    pub release_at: i64,
    pub created_at: i64,
    pub size: i64,
    #[serde(skip)]
    pub blob_id: String,
    #[serde(skip)]
    pub object_key: String,
}

impl Db {
    /// Records a completely stored findings PDF (blob and row in one transaction).
    pub async fn insert_finding(
        &self,
        id: &str,
        practice_id: &str,
        blob: &NewBlob<'_>,
        release_at: i64,
        now: i64,
    ) -> DbResult<()> {
        let (_gate, mut tx) = self.begin_write().await?;
        insert_blob(&mut tx, blob, now).await?;
        sqlx::query(
            "INSERT INTO findings (id, practice_id, study_id, blob_id, release_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(practice_id)
        .bind(blob.study_id)
        .bind(blob.id)
        .bind(release_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn findings_of_study(
        &self,
        practice_id: &str,
        study_id: &str,
    ) -> DbResult<Vec<FindingRow>> {
        let rows = sqlx::query(
            "SELECT f.id, f.release_at, f.created_at, b.plain_size, b.id AS blob_id, b.object_key
             FROM findings f JOIN blobs b ON b.id = f.blob_id
             WHERE f.practice_id = $1 AND f.study_id = $2 ORDER BY f.created_at",
        )
        .bind(practice_id)
        .bind(study_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FindingRow {
                    id: get_str(r, "id")?,
                    release_at: get_i64(r, "release_at")?,
                    created_at: get_i64(r, "created_at")?,
                    size: get_i64(r, "plain_size")?,
                    blob_id: get_str(r, "blob_id")?,
                    object_key: get_str(r, "object_key")?,
                })
            })
            .collect()
    }

    /// Studies of the practice with a finding not yet released at `now`.
    pub async fn studies_with_unreleased_findings(
        &self,
        practice_id: &str,
        now: i64,
    ) -> DbResult<std::collections::HashSet<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT study_id FROM findings WHERE practice_id = $1 AND release_at > $2",
        )
        .bind(practice_id)
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| get_str(r, "study_id")).collect()
    }
}

impl Db {
    /// The matching key of a study's patient.
    /// The practice's studies of the patient `study_id` belongs to, newest first.
    pub async fn studies_of_same_patient(
        &self,
        practice_id: &str,
        study_id: &str,
    ) -> DbResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT s.id FROM studies s
             WHERE s.practice_id = $1
               AND s.patient_id = (SELECT patient_id FROM studies WHERE id = $2 AND practice_id = $1)
             ORDER BY s.created_at DESC",
        )
        .bind(practice_id)
        .bind(study_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| get_str(r, "id")).collect()
    }

    pub async fn study_patient_key(&self, study_id: &str) -> DbResult<Option<String>> {
        let row = sqlx::query(
            "SELECT p.patient_key FROM studies s JOIN patients p ON p.id = s.patient_id WHERE s.id = $1",
        )
        .bind(study_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| get_str(&r, "patient_key")).transpose()
    }
}

/// The row of a completely stored object, inside the caller's transaction.
pub(super) async fn insert_blob(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    blob: &NewBlob<'_>,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO blobs (id, study_id, kind, object_key, plain_size, stored_size, sha256, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(blob.id)
    .bind(blob.study_id)
    .bind(blob.kind)
    .bind(blob.object_key)
    .bind(blob.plain_size)
    .bind(blob.stored_size)
    .bind(blob.sha256)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
