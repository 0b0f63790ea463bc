//! The one ingest pipeline behind every door: parse, validate, zero the preamble,
//! match the patient, group by StudyInstanceUID, store the original encrypted, then
//! record it — an instance appears only once its object is completely stored.

use super::StudyError;
use super::upload::{Rejection, UploadedFile};
use crate::app::Services;
use crate::audit::{self, Actor};
use crate::blob::{object_key, once};
use crate::crypto::Key32;
use crate::crypto::stream::ObjectContext;
use crate::db::studies::{NewBlob, NewInstance, NewPatient, NewStudy};
use crate::dicom::parse::{ParsedInstance, normalize_preamble, parse};
use crate::domain::{PatientDetails, StudyDetails, new_id};
use crate::keys::{patient_index, seal_record};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestedStudy {
    pub id: String,
    pub study_instance_uid: String,
    pub accepted: usize,
    pub duplicates: usize,
}

#[derive(Debug, Clone, serde::Serialize, Default)]
pub struct IngestReport {
    pub studies: Vec<IngestedStudy>,
    pub rejected: Vec<Rejection>,
}

enum Outcome {
    Stored,
    Duplicate,
}

/// Ingests files already in memory (the demo, one C-STORE instance, tests).
pub async fn ingest_files(
    svc: &Services,
    practice_id: &str,
    actor: &Actor,
    files: Vec<UploadedFile>,
    rejected: Vec<Rejection>,
) -> Result<IngestReport, StudyError> {
    let mut intake = Intake::open(svc, practice_id, actor.clone()).await?;
    for r in rejected {
        intake.reject(r);
    }
    for file in files {
        intake.store(&file.name, file.bytes).await?;
    }
    intake.finish().await
}

/// What became of one file.
#[derive(Debug, Clone, PartialEq)]
pub enum FileOutcome {
    Stored {
        sop_class: String,
        sop_instance: String,
    },
    Duplicate {
        sop_class: String,
        sop_instance: String,
    },
    /// The rejection code (the message is in the report).
    Rejected(&'static str),
}

/// One upload (or association) in progress: files are stored one at a time as they
/// arrive, so only the file at hand is in memory, and the report grows as it goes.
pub struct Intake<'a> {
    svc: &'a Services,
    practice_id: String,
    kek_id: String,
    actor: Actor,
    /// Bytes the practice may still store, if it has a quota.
    quota_left: Option<u64>,
    per_study: BTreeMap<String, IngestedStudy>,
    rejected: Vec<Rejection>,
}

impl<'a> Intake<'a> {
    pub async fn open(
        svc: &'a Services,
        practice_id: &str,
        actor: Actor,
    ) -> Result<Intake<'a>, StudyError> {
        let practice = svc
            .db
            .practice(practice_id)
            .await?
            .ok_or(StudyError::NotFound)?;
        let quota_left = match svc.db.practice_quota(practice_id).await? {
            Some(q) => Some(q.saturating_sub(svc.db.practice_stored_bytes(practice_id).await?)),
            None => None,
        };
        Ok(Intake {
            svc,
            practice_id: practice_id.to_string(),
            kek_id: practice.kek_id,
            actor,
            quota_left,
            per_study: BTreeMap::new(),
            rejected: Vec::new(),
        })
    }

    /// What the practice may still store, if it has a quota.
    pub fn quota_left(&self) -> Option<u64> {
        self.quota_left
    }

    pub fn reject(&mut self, r: Rejection) {
        self.rejected.push(r);
    }

    fn rejected_with(&mut self, name: &str, code: &'static str, message: &str) -> FileOutcome {
        self.rejected.push(Rejection::new(name, code, message));
        FileOutcome::Rejected(code)
    }

    /// Stores one file now. Errors are only those that make the whole upload fail
    /// (the database is gone); everything about the file itself is an outcome.
    pub async fn store(&mut self, name: &str, bytes: Bytes) -> Result<FileOutcome, StudyError> {
        if self
            .quota_left
            .is_some_and(|left| bytes.len() as u64 > left)
        {
            return Ok(self.rejected_with(
                name,
                "quota_exceeded",
                "The practice's storage quota is used up; the file was not stored.",
            ));
        }
        let normalized = match normalize_preamble(&bytes) {
            Ok(b) => b,
            Err(e) => return Ok(self.rejected_with(name, e.code(), &e.public_message())),
        };
        drop(bytes);
        let parsed = match parse(&normalized) {
            Ok(p) => p,
            Err(e) => return Ok(self.rejected_with(name, e.code(), &e.public_message())),
        };
        let bytes = Bytes::from(normalized);
        let size = bytes.len() as u64;
        match ingest_one(
            self.svc,
            &self.practice_id,
            &self.kek_id,
            &parsed,
            bytes.clone(),
        )
        .await
        {
            Ok((study_id, outcome)) => {
                if matches!(outcome, Outcome::Stored)
                    && parsed.sop_class_uid == crate::dicom::parse::ENCAPSULATED_PDF
                {
                    attach_encapsulated_report(
                        self.svc,
                        &self.practice_id,
                        &study_id,
                        &bytes,
                        &self.actor,
                    )
                    .await?;
                }
                let entry =
                    self.per_study
                        .entry(study_id.clone())
                        .or_insert_with(|| IngestedStudy {
                            id: study_id,
                            study_instance_uid: parsed.study_uid.clone(),
                            accepted: 0,
                            duplicates: 0,
                        });
                let (sop_class, sop_instance) = (
                    parsed.sop_class_uid.clone(),
                    parsed.sop_instance_uid.clone(),
                );
                Ok(match outcome {
                    Outcome::Stored => {
                        crate::metrics::INSTANCES_STORED.inc();
                        entry.accepted += 1;
                        if let Some(left) = self.quota_left.as_mut() {
                            *left = left.saturating_sub(size);
                        }
                        self.svc.preparer.ingested();
                        FileOutcome::Stored {
                            sop_class,
                            sop_instance,
                        }
                    }
                    Outcome::Duplicate => {
                        entry.duplicates += 1;
                        FileOutcome::Duplicate {
                            sop_class,
                            sop_instance,
                        }
                    }
                })
            }
            Err(StudyError::PatientMismatch) => Ok(self.rejected_with(
                name,
                "patient_mismatch",
                "The file belongs to a study of another patient; it was not stored.",
            )),
            Err(e) => {
                tracing::error!(error = %e, "ingest of one file failed");
                Ok(self.rejected_with(
                    name,
                    "storage_error",
                    "The file could not be stored; please send it again.",
                ))
            }
        }
    }

    /// Records the upload in the audit log and returns the report.
    pub async fn finish(self) -> Result<IngestReport, StudyError> {
        crate::metrics::INSTANCES_REJECTED.add(self.rejected.len() as u64);
        for s in self.per_study.values() {
            audit::record(
                self.svc,
                &self.practice_id,
                &self.actor,
                "study.ingest",
                Some(&s.id),
                &format!("accepted={} duplicates={}", s.accepted, s.duplicates),
            )
            .await?;
        }
        Ok(IngestReport {
            studies: self.per_study.into_values().collect(),
            rejected: self.rejected,
        })
    }
}

/// A report sent as an Encapsulated PDF instance becomes the study's findings, with
/// the practice's release delay, exactly as if it had been uploaded as a PDF. The
/// instance itself stays stored (it belongs on the patient's CD).
async fn attach_encapsulated_report(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
    instance: &[u8],
    actor: &Actor,
) -> Result<(), StudyError> {
    let Some(pdf) = crate::dicom::parse::encapsulated_pdf(instance) else {
        return Ok(());
    };
    if !super::findings::looks_like_pdf(&pdf) {
        tracing::warn!("an Encapsulated PDF instance holds no PDF; stored without findings");
        return Ok(());
    }
    super::findings::attach(
        svc,
        practice_id,
        study_id,
        Bytes::from(pdf),
        super::findings::Release::PracticeDefault,
        actor,
    )
    .await?;
    Ok(())
}

/// The study's data key, creating the study (and its key) on first sight.
async fn study_and_key(
    svc: &Services,
    practice_id: &str,
    kek_id: &str,
    p: &ParsedInstance,
) -> Result<(String, Key32), StudyError> {
    if let Some(row) = svc.db.study_key_by_uid(practice_id, &p.study_uid).await? {
        // A file that names an existing study but another patient must not join it:
        // that would show one patient's images to another.
        let kek = svc.keys.practice_key(&svc.db, kek_id).await?;
        let details = PatientDetails {
            name: p.patient_name.clone(),
            patient_id: p.patient_id.clone(),
            birth_date: p.patient_birth_date.clone(),
            sex: p.patient_sex.clone(),
        };
        if svc.db.study_patient_key(&row.id).await?.as_deref()
            != Some(patient_index(&kek, &details.match_text()).as_str())
        {
            return Err(StudyError::PatientMismatch);
        }
        let dek = svc.keys.study_key(&svc.db, &row).await?;
        return Ok((row.id, dek));
    }
    let now = svc.clock.now();
    let kek = svc.keys.practice_key(&svc.db, kek_id).await?;
    let details = PatientDetails {
        name: p.patient_name.clone(),
        patient_id: p.patient_id.clone(),
        birth_date: p.patient_birth_date.clone(),
        sex: p.patient_sex.clone(),
    };
    let new_patient_id = new_id(&mut rand::rngs::OsRng);
    let patient_json = serde_json::to_vec(&details).map_err(|_| StudyError::Integrity)?;
    let patient_id = svc
        .db
        .upsert_patient(
            &NewPatient {
                id: &new_patient_id,
                practice_id,
                patient_key: &patient_index(&kek, &details.match_text()),
                kek_id,
                sealed: &seal_record(&kek, kek_id, &new_patient_id, &patient_json),
            },
            now,
        )
        .await?;
    let study_id = new_id(&mut rand::rngs::OsRng);
    let (dek, wrapped) = svc.keys.new_study_key(&svc.db, kek_id, &study_id).await?;
    let study_json = serde_json::to_vec(&StudyDetails {
        description: p.study_description.clone(),
        accession: p.accession.clone(),
        referring_physician: p.referring_physician.clone(),
    })
    .map_err(|_| StudyError::Integrity)?;
    let inserted = svc
        .db
        .insert_study(
            &NewStudy {
                id: &study_id,
                practice_id,
                patient_id: &patient_id,
                study_uid: &p.study_uid,
                study_date: &p.study_date,
                modalities: &p.modality,
                kek_id,
                wrapped_dek: &wrapped,
                sealed: &seal_record(&dek, &study_id, &study_id, &study_json),
            },
            now,
        )
        .await?;
    if inserted {
        return Ok((study_id, dek));
    }
    // Another upload created it a moment ago: use theirs.
    let row = svc
        .db
        .study_key_by_uid(practice_id, &p.study_uid)
        .await?
        .ok_or(StudyError::NotFound)?;
    let dek = svc.keys.study_key(&svc.db, &row).await?;
    Ok((row.id, dek))
}

async fn ingest_one(
    svc: &Services,
    practice_id: &str,
    kek_id: &str,
    p: &ParsedInstance,
    bytes: Bytes,
) -> Result<(String, Outcome), StudyError> {
    let (study_id, dek) = study_and_key(svc, practice_id, kek_id, p).await?;
    if svc
        .db
        .instance_exists(&study_id, &p.sop_instance_uid)
        .await?
    {
        return Ok((study_id, Outcome::Duplicate));
    }
    let series_id = svc
        .db
        .upsert_series(
            &new_id(&mut rand::rngs::OsRng),
            &study_id,
            &p.series_uid,
            p.series_number,
            &p.modality,
            &p.series_description,
        )
        .await?;
    let blob_id = new_id(&mut rand::rngs::OsRng);
    let key = object_key(&blob_id);
    let sha = hex::encode(Sha256::digest(&bytes));
    let ctx = ObjectContext {
        study_id: &study_id,
        object_id: &blob_id,
    };
    let report = svc.blobs.put(&key, &dek, ctx, once(bytes)).await?;
    let modalities = svc.db.study_modalities(&study_id).await?.join(",");
    let view_meta = serde_json::to_string(&p.view).map_err(|_| StudyError::Integrity)?;
    let recorded = svc
        .db
        .insert_instance(
            &NewBlob {
                id: &blob_id,
                study_id: &study_id,
                kind: "original",
                object_key: &key,
                plain_size: report.plain_len as i64,
                stored_size: report.stored_len as i64,
                sha256: &sha,
            },
            &NewInstance {
                id: &new_id(&mut rand::rngs::OsRng),
                study_id: &study_id,
                series_id: &series_id,
                sop_uid: &p.sop_instance_uid,
                sop_class_uid: &p.sop_class_uid,
                instance_number: p.instance_number,
                transfer_syntax: &p.transfer_syntax,
                rows: p.rows,
                columns: p.columns,
                frames: p.frames,
                view_meta: &view_meta,
            },
            &modalities,
            svc.clock.now(),
        )
        .await;
    match recorded {
        Ok(true) => Ok((study_id, Outcome::Stored)),
        Ok(false) => {
            svc.blobs.delete(&key).await?;
            Ok((study_id, Outcome::Duplicate))
        }
        Err(e) => {
            // Never leave an object the database does not know about.
            let _ = svc.blobs.delete(&key).await;
            Err(e.into())
        }
    }
}
