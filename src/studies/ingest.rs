//! The one ingest pipeline behind every door: parse, validate, zero the preamble,
//! match the patient, group by StudyInstanceUID, store the original encrypted, then
//! record it — an instance appears only once its object is completely stored.
//!
//! Files are checked and matched to their study one after another, as they arrive.
//! Storing them (hash, encrypt, write, sync, record) then runs in the background, a
//! few at a time, so the disk and the second core work while the next file is read.
//! A stored file is never abandoned half-way: a dropped request detaches its tasks,
//! which still finish (record the instance, or delete the object).

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
use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Files being stored at once per intake. Four keep a disk busy while each waits
/// for its own sync, and bound the memory they hold (see `MAX_IN_FLIGHT_BYTES`).
const MAX_IN_FLIGHT: usize = 4;
/// Bytes of files being stored at once per intake; a bigger file waits until the
/// others are done and is then stored alone.
const MAX_IN_FLIGHT_BYTES: u64 = 64 << 20;

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
    /// What became of each submitted file, by the number `submit` gave it.
    #[serde(skip)]
    pub outcomes: Vec<FileOutcome>,
}

impl IngestReport {
    pub fn outcome(&self, ticket: usize) -> Option<&FileOutcome> {
        self.outcomes.get(ticket)
    }
}

/// Ingests files already in memory (the demo, tests).
pub async fn ingest_files(
    svc: &Arc<Services>,
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
        intake.submit(&file.name, file.bytes).await?;
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

/// A study this intake has already matched: its key, its patient and its series, so
/// the files after the first need no lookups.
struct KnownStudy {
    id: String,
    dek: Key32,
    patient_key: String,
    series: HashMap<String, String>,
}

/// A file checked and matched, ready to be stored in the background.
struct StoreJob {
    ticket: usize,
    name: String,
    study_id: String,
    study_uid: String,
    dek: Key32,
    series_id: String,
    new_series: bool,
    parsed: ParsedInstance,
    bytes: Bytes,
}

enum Stored {
    New,
    Duplicate,
    /// The file could not be stored (it is not recorded and leaves no object).
    Failed(StudyError),
    /// The file is stored but the upload must fail (its findings could not be kept).
    Fatal(StudyError),
}

struct Finished {
    ticket: usize,
    name: String,
    size: u64,
    study_id: String,
    study_uid: String,
    sop_class: String,
    sop_instance: String,
    stored: Stored,
}

/// One upload (or association) in progress: files are taken one at a time as they
/// arrive, so only the files at hand are in memory, and the report grows as it goes.
pub struct Intake {
    svc: Arc<Services>,
    practice_id: String,
    kek_id: String,
    kek: Key32,
    actor: Actor,
    /// Bytes the practice may still store, if it has a quota (files in flight are
    /// already counted and given back if they are not stored).
    quota_left: Option<u64>,
    known: HashMap<String, KnownStudy>,
    per_study: BTreeMap<String, IngestedStudy>,
    rejected: Vec<Rejection>,
    outcomes: Vec<Option<FileOutcome>>,
    in_flight: FuturesUnordered<JoinHandle<Finished>>,
    in_flight_bytes: u64,
    fatal: Option<StudyError>,
}

impl Intake {
    pub async fn open(
        svc: &Arc<Services>,
        practice_id: &str,
        actor: Actor,
    ) -> Result<Intake, StudyError> {
        let practice = svc
            .db
            .practice(practice_id)
            .await?
            .ok_or(StudyError::NotFound)?;
        let quota_left = match svc.db.practice_quota(practice_id).await? {
            Some(q) => Some(q.saturating_sub(svc.db.practice_stored_bytes(practice_id).await?)),
            None => None,
        };
        let kek = svc.keys.practice_key(&svc.db, &practice.kek_id).await?;
        Ok(Intake {
            svc: svc.clone(),
            practice_id: practice_id.to_string(),
            kek_id: practice.kek_id,
            kek,
            actor,
            quota_left,
            known: HashMap::new(),
            per_study: BTreeMap::new(),
            rejected: Vec::new(),
            outcomes: Vec::new(),
            in_flight: FuturesUnordered::new(),
            in_flight_bytes: 0,
            fatal: None,
        })
    }

    /// What the practice may still store, if it has a quota.
    pub fn quota_left(&self) -> Option<u64> {
        self.quota_left
    }

    pub fn reject(&mut self, r: Rejection) {
        self.rejected.push(r);
    }

    fn settle(&mut self, ticket: usize, outcome: FileOutcome) {
        self.outcomes[ticket] = Some(outcome);
    }

    fn rejected_with(&mut self, ticket: usize, name: &str, code: &'static str, message: &str) {
        self.rejected.push(Rejection::new(name, code, message));
        self.settle(ticket, FileOutcome::Rejected(code));
    }

    /// Stores one file and waits until it is stored (a DICOM association answers
    /// each instance on its own). Errors are only those that make the whole upload
    /// fail; everything about the file itself is an outcome.
    pub async fn store(&mut self, name: &str, bytes: Bytes) -> Result<FileOutcome, StudyError> {
        let ticket = self.submit(name, bytes).await?;
        self.outcome_of(ticket).await
    }

    /// [`Intake::store`] for a file in a buffer of its own: one with a zeroed
    /// preamble (the DICOM door makes them so) is stored without another copy.
    pub async fn store_file(
        &mut self,
        name: &str,
        file: Vec<u8>,
    ) -> Result<FileOutcome, StudyError> {
        let as_stored =
            file.len() >= 132 && file[128..132] == *b"DICM" && file[..128].iter().all(|&b| b == 0);
        let ticket = if as_stored {
            self.submit_normalized(name, file).await?
        } else {
            self.submit(name, Bytes::from(file)).await?
        };
        self.outcome_of(ticket).await
    }

    async fn outcome_of(&mut self, ticket: usize) -> Result<FileOutcome, StudyError> {
        self.drain().await?;
        Ok(self.outcomes[ticket]
            .clone()
            .unwrap_or(FileOutcome::Rejected("storage_error")))
    }

    /// Takes one file: checks and matches it now, stores it in the background.
    /// Returns its number for [`IngestReport::outcome`]. Waits while as many files
    /// as allowed are being stored.
    pub async fn submit(&mut self, name: &str, bytes: Bytes) -> Result<usize, StudyError> {
        if self
            .quota_left
            .is_some_and(|left| bytes.len() as u64 > left)
        {
            let ticket = self.new_ticket();
            return Ok(self.over_quota(ticket, name));
        }
        match normalize_preamble(&bytes) {
            Ok(normalized) => {
                drop(bytes);
                self.submit_normalized(name, normalized).await
            }
            Err(e) => {
                let ticket = self.new_ticket();
                self.rejected_with(ticket, name, e.code(), &e.public_message());
                Ok(ticket)
            }
        }
    }

    fn new_ticket(&mut self) -> usize {
        self.outcomes.push(None);
        self.outcomes.len() - 1
    }

    /// [`Intake::submit`] for a file with a zeroed preamble.
    async fn submit_normalized(
        &mut self,
        name: &str,
        normalized: Vec<u8>,
    ) -> Result<usize, StudyError> {
        let ticket = self.new_ticket();
        // What is stored, reserved and given back: the file with its preamble.
        let size = normalized.len() as u64;
        if self.quota_left.is_some_and(|left| size > left) {
            return Ok(self.over_quota(ticket, name));
        }
        let parsed = match parse(&normalized) {
            Ok(p) => p,
            Err(e) => {
                self.rejected_with(ticket, name, e.code(), &e.public_message());
                return Ok(ticket);
            }
        };
        let study = match self.known_study(&parsed).await {
            Ok(s) => s,
            Err(StudyError::PatientMismatch) => {
                self.rejected_with(
                    ticket,
                    name,
                    "patient_mismatch",
                    "The file belongs to a study of another patient; it was not stored.",
                );
                return Ok(ticket);
            }
            Err(e) => return Ok(self.failed_now(ticket, name, e)),
        };
        let (study_id, dek) = study;
        match self
            .svc
            .db
            .instance_exists(&study_id, &parsed.sop_instance_uid)
            .await
        {
            Ok(true) => {
                self.count(&study_id, &parsed.study_uid, false);
                let outcome = FileOutcome::Duplicate {
                    sop_class: parsed.sop_class_uid,
                    sop_instance: parsed.sop_instance_uid,
                };
                self.settle(ticket, outcome);
                return Ok(ticket);
            }
            Ok(false) => {}
            Err(e) => return Ok(self.failed_now(ticket, name, e.into())),
        }
        let (series_id, new_series) = match self.series_of(&parsed).await {
            Ok(s) => s,
            Err(e) => {
                // The study may have been deleted meanwhile: look it up afresh next time.
                self.known.remove(&parsed.study_uid);
                return Ok(self.failed_now(ticket, name, e));
            }
        };
        while !self.in_flight.is_empty()
            && (self.in_flight.len() >= MAX_IN_FLIGHT
                || self.in_flight_bytes + size > MAX_IN_FLIGHT_BYTES)
        {
            self.collect_one().await;
        }
        if let Some(left) = self.quota_left.as_mut() {
            *left = left.saturating_sub(size);
        }
        self.in_flight_bytes += size;
        let job = StoreJob {
            ticket,
            name: name.to_string(),
            study_id,
            study_uid: parsed.study_uid.clone(),
            dek,
            series_id,
            new_series,
            parsed,
            bytes: Bytes::from(normalized),
        };
        let svc = self.svc.clone();
        let practice_id = self.practice_id.clone();
        let actor = self.actor.clone();
        self.in_flight.push(tokio::spawn(async move {
            let (ticket, name, size) = (job.ticket, job.name.clone(), job.bytes.len() as u64);
            let (study_id, study_uid) = (job.study_id.clone(), job.study_uid.clone());
            let (sop_class, sop_instance) = (
                job.parsed.sop_class_uid.clone(),
                job.parsed.sop_instance_uid.clone(),
            );
            let stored = std::panic::AssertUnwindSafe(store_job(&svc, &practice_id, &actor, job))
                .catch_unwind()
                .await
                .unwrap_or(Stored::Failed(StudyError::Integrity));
            Finished {
                ticket,
                name,
                size,
                study_id,
                study_uid,
                sop_class,
                sop_instance,
                stored,
            }
        }));
        Ok(ticket)
    }

    fn over_quota(&mut self, ticket: usize, name: &str) -> usize {
        self.rejected_with(
            ticket,
            name,
            "quota_exceeded",
            "The practice's storage quota is used up; the file was not stored.",
        );
        ticket
    }

    /// Looking the file up or storing it failed: the file is refused, the upload
    /// goes on.
    fn failed_now(&mut self, ticket: usize, name: &str, e: StudyError) -> usize {
        tracing::error!(error = %e, "ingest of one file failed");
        self.rejected_with(
            ticket,
            name,
            "storage_error",
            "The file could not be stored; please send it again.",
        );
        ticket
    }

    fn count(&mut self, study_id: &str, study_uid: &str, stored: bool) {
        let entry = self
            .per_study
            .entry(study_id.to_string())
            .or_insert_with(|| IngestedStudy {
                id: study_id.to_string(),
                study_instance_uid: study_uid.to_string(),
                accepted: 0,
                duplicates: 0,
            });
        if stored {
            entry.accepted += 1;
        } else {
            entry.duplicates += 1;
        }
    }

    /// Waits for one file being stored and books its outcome.
    async fn collect_one(&mut self) {
        let Some(joined) = self.in_flight.next().await else {
            return;
        };
        // The task catches panics and is never aborted, so joining cannot fail.
        let Ok(done) = joined else {
            return;
        };
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(done.size);
        let refund = |intake: &mut Intake| {
            if let Some(left) = intake.quota_left.as_mut() {
                *left += done.size;
            }
        };
        match done.stored {
            Stored::New | Stored::Fatal(_) => {
                crate::metrics::INSTANCES_STORED.inc();
                self.count(&done.study_id, &done.study_uid, true);
                if let Stored::Fatal(e) = done.stored {
                    self.fatal.get_or_insert(e);
                }
                self.settle(
                    done.ticket,
                    FileOutcome::Stored {
                        sop_class: done.sop_class,
                        sop_instance: done.sop_instance,
                    },
                );
            }
            Stored::Duplicate => {
                refund(self);
                self.count(&done.study_id, &done.study_uid, false);
                self.settle(
                    done.ticket,
                    FileOutcome::Duplicate {
                        sop_class: done.sop_class,
                        sop_instance: done.sop_instance,
                    },
                );
            }
            Stored::Failed(e) => {
                refund(self);
                // The study may have been deleted meanwhile: look it up afresh next time.
                self.known.remove(&done.study_uid);
                self.failed_now(done.ticket, &done.name, e);
            }
        }
    }

    /// Waits until every file handed on is stored (or refused).
    async fn drain(&mut self) -> Result<(), StudyError> {
        while !self.in_flight.is_empty() {
            self.collect_one().await;
        }
        match self.fatal.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits for the files still being stored, records the upload in the audit log
    /// and returns the report.
    pub async fn finish(mut self) -> Result<IngestReport, StudyError> {
        // What was stored is audited even if the upload as a whole fails.
        let drained = self.drain().await;
        crate::metrics::INSTANCES_REJECTED.add(self.rejected.len() as u64);
        for s in self.per_study.values() {
            audit::record(
                &self.svc,
                &self.practice_id,
                &self.actor,
                "study.ingest",
                Some(&s.id),
                &format!("accepted={} duplicates={}", s.accepted, s.duplicates),
            )
            .await?;
        }
        drained?;
        let outcomes = std::mem::take(&mut self.outcomes)
            .into_iter()
            .map(|o| o.unwrap_or(FileOutcome::Rejected("storage_error")))
            .collect();
        Ok(IngestReport {
            studies: std::mem::take(&mut self.per_study).into_values().collect(),
            rejected: std::mem::take(&mut self.rejected),
            outcomes,
        })
    }

    /// The study of this file, matched once per intake: the first file of a study
    /// looks it up (or creates it and its key); the ones after only check that they
    /// name the same patient. A file that names an existing study but another
    /// patient must not join it: that would show one patient's images to another.
    async fn known_study(&mut self, p: &ParsedInstance) -> Result<(String, Key32), StudyError> {
        let details = PatientDetails {
            name: p.patient_name.clone(),
            patient_id: p.patient_id.clone(),
            birth_date: p.patient_birth_date.clone(),
            sex: p.patient_sex.clone(),
        };
        let patient_key = patient_index(&self.kek, &details.match_text());
        if !self.known.contains_key(&p.study_uid) {
            let study = self.look_up_study(p, &details, &patient_key).await?;
            self.known.insert(p.study_uid.clone(), study);
        }
        let study = &self.known[&p.study_uid];
        if study.patient_key != patient_key {
            return Err(StudyError::PatientMismatch);
        }
        Ok((study.id.clone(), study.dek.clone()))
    }

    async fn look_up_study(
        &self,
        p: &ParsedInstance,
        details: &PatientDetails,
        patient_key: &str,
    ) -> Result<KnownStudy, StudyError> {
        let svc = &self.svc;
        let row = match svc
            .db
            .study_key_by_uid(&self.practice_id, &p.study_uid)
            .await?
        {
            Some(row) => row,
            None => {
                self.create_study(p, details, patient_key).await?;
                // Ours, or another upload's that created it a moment ago.
                svc.db
                    .study_key_by_uid(&self.practice_id, &p.study_uid)
                    .await?
                    .ok_or(StudyError::NotFound)?
            }
        };
        let study_patient_key = svc.db.study_patient_key(&row.id).await?.unwrap_or_default();
        let dek = svc.keys.study_key(&svc.db, &row).await?;
        Ok(KnownStudy {
            id: row.id,
            dek,
            patient_key: study_patient_key,
            series: HashMap::new(),
        })
    }

    async fn create_study(
        &self,
        p: &ParsedInstance,
        details: &PatientDetails,
        patient_key: &str,
    ) -> Result<(), StudyError> {
        let svc = &self.svc;
        let now = svc.clock.now();
        let new_patient_id = new_id(&mut rand::rngs::OsRng);
        let patient_json = serde_json::to_vec(details).map_err(|_| StudyError::Integrity)?;
        let patient_id = svc
            .db
            .upsert_patient(
                &NewPatient {
                    id: &new_patient_id,
                    practice_id: &self.practice_id,
                    patient_key,
                    kek_id: &self.kek_id,
                    sealed: &seal_record(&self.kek, &self.kek_id, &new_patient_id, &patient_json),
                },
                now,
            )
            .await?;
        let study_id = new_id(&mut rand::rngs::OsRng);
        let (dek, wrapped) = svc
            .keys
            .new_study_key(&svc.db, &self.kek_id, &study_id)
            .await?;
        let study_json = serde_json::to_vec(&StudyDetails {
            description: p.study_description.clone(),
            accession: p.accession.clone(),
            referring_physician: p.referring_physician.clone(),
        })
        .map_err(|_| StudyError::Integrity)?;
        svc.db
            .insert_study(
                &NewStudy {
                    id: &study_id,
                    practice_id: &self.practice_id,
                    patient_id: &patient_id,
                    study_uid: &p.study_uid,
                    study_date: &p.study_date,
                    modalities: &p.modality,
                    kek_id: &self.kek_id,
                    wrapped_dek: &wrapped,
                    sealed: &seal_record(&dek, &study_id, &study_id, &study_json),
                },
                now,
            )
            .await?;
        Ok(())
    }

    /// The file's series, created on first sight; and whether this is its first
    /// file in this intake.
    async fn series_of(&mut self, p: &ParsedInstance) -> Result<(String, bool), StudyError> {
        let svc = self.svc.clone();
        let study = self
            .known
            .get_mut(&p.study_uid)
            .ok_or(StudyError::NotFound)?;
        if let Some(id) = study.series.get(&p.series_uid) {
            return Ok((id.clone(), false));
        }
        let id = svc
            .db
            .upsert_series(
                &new_id(&mut rand::rngs::OsRng),
                &study.id,
                &p.series_uid,
                p.series_number,
                &p.modality,
                &p.series_description,
            )
            .await?;
        study.series.insert(p.series_uid.clone(), id.clone());
        Ok((id, true))
    }
}

/// Files up to this size are hashed on the storing task (about 0.6 ms per MiB),
/// larger ones on a blocking thread.
const HASH_INLINE_BYTES: usize = 2 << 20;

/// Stores one checked file: its object first (encrypted, synced), then its record,
/// so a study never lists an instance whose bytes are not there.
async fn store_job(svc: &Services, practice_id: &str, actor: &Actor, job: StoreJob) -> Stored {
    let p = &job.parsed;
    let blob_id = new_id(&mut rand::rngs::OsRng);
    let key = object_key(&blob_id);
    let ctx = ObjectContext {
        study_id: &job.study_id,
        object_id: &blob_id,
    };
    // The checksum is worked out on another core while the object is encrypted and
    // written: both read the same bytes, neither waits for the other.
    let bytes = job.bytes.clone();
    let hashing = async move {
        if bytes.len() <= HASH_INLINE_BYTES {
            // Hashed on this task once the write below has gone to its thread: it
            // fills the wait for the disk's sync without another thread hop.
            tokio::task::yield_now().await;
            Ok(hex::encode(Sha256::digest(&bytes)))
        } else {
            tokio::task::spawn_blocking(move || hex::encode(Sha256::digest(&bytes))).await
        }
    };
    let (hashed, put) = tokio::join!(
        hashing,
        svc.blobs.put(&key, &job.dek, ctx, once(job.bytes.clone()))
    );
    let report = match put {
        Ok(r) => r,
        Err(e) => return Stored::Failed(e.into()),
    };
    let Ok(sha) = hashed else {
        let _ = svc.blobs.delete(&key).await;
        return Stored::Failed(StudyError::Integrity);
    };
    let view_meta = match serde_json::to_string(&p.view) {
        Ok(v) => v,
        Err(_) => return Stored::Failed(StudyError::Integrity),
    };
    let recorded = svc
        .db
        .insert_instance(
            &NewBlob {
                id: &blob_id,
                study_id: &job.study_id,
                kind: "original",
                object_key: &key,
                plain_size: report.plain_len as i64,
                stored_size: report.stored_len as i64,
                sha256: &sha,
            },
            &NewInstance {
                id: &new_id(&mut rand::rngs::OsRng),
                study_id: &job.study_id,
                series_id: &job.series_id,
                sop_uid: &p.sop_instance_uid,
                sop_class_uid: &p.sop_class_uid,
                instance_number: p.instance_number,
                transfer_syntax: &p.transfer_syntax,
                rows: p.rows,
                columns: p.columns,
                frames: p.frames,
                view_meta: &view_meta,
                new_series: job.new_series,
            },
            svc.clock.now(),
        )
        .await;
    match recorded {
        Ok(true) => {
            svc.preparer.ingested();
            if p.sop_class_uid == crate::dicom::parse::ENCAPSULATED_PDF
                && let Err(e) =
                    attach_encapsulated_report(svc, practice_id, &job.study_id, &job.bytes, actor)
                        .await
            {
                return Stored::Fatal(e);
            }
            Stored::New
        }
        // Sent twice within one upload: the other copy won.
        Ok(false) => match svc.blobs.delete(&key).await {
            Ok(()) => Stored::Duplicate,
            Err(e) => Stored::Failed(e.into()),
        },
        Err(e) => {
            // Never leave an object the database does not know about.
            let _ = svc.blobs.delete(&key).await;
            Stored::Failed(e.into())
        }
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
