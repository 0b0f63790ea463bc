//! What patients and doctors take home: one image as a marked JPEG, or the whole
//! study as a ZIP shaped like a patient CD (IHE PDI: DICOM files under PS3.10 names,
//! DICOMDIR, README, INDEX.HTM with previews, the released findings). The ZIP is
//! streamed one instance at a time, so memory stays flat whatever the study's size.

pub mod dicomdir;
pub mod mark;
pub mod zip;

use crate::access::sessions::PatientScope;
use crate::app::Services;
use crate::audit;
use crate::studies::view::{self, StudyDetail};
use crate::studies::{StudyError, findings};
use askama::Template;
use bytes::Bytes;
use dicomdir::{DirInstance, DirSeries, DirStudy};

/// Pieces in flight between the ZIP writer and a slow client: back-pressure, not a
/// buffer of the study.
const PIECES_IN_FLIGHT: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("downloads are not allowed for this access")]
    NotAllowed,
    #[error(transparent)]
    Study(#[from] StudyError),
}

fn check_allowed(scope: &PatientScope) -> Result<(), DownloadError> {
    if scope.allow_download {
        Ok(())
    } else {
        Err(DownloadError::NotAllowed)
    }
}

fn actor(scope: &PatientScope) -> audit::Actor {
    crate::access::actor_of_scope(scope)
}

/// One frame as a JPEG with the "not for diagnostic use" band.
pub async fn image_jpeg(
    svc: &Services,
    scope: &PatientScope,
    instance_id: &str,
    frame: u32,
) -> Result<Vec<u8>, DownloadError> {
    check_allowed(scope)?;
    let bytes = view::original(svc, &scope.practice_id, &scope.study_id, instance_id).await?;
    let jpeg = tokio::task::spawn_blocking(move || {
        let image = crate::dicom::render::render_frame(&bytes, frame)?;
        mark::to_jpeg(&mark::marked(&image))
            .map_err(|e| crate::dicom::DicomError::Unsupported(e.to_string()))
    })
    .await
    .map_err(|_| StudyError::Integrity)?
    .map_err(StudyError::from)?;
    audit::record(
        svc,
        &scope.practice_id,
        &actor(scope),
        "download.image",
        Some(&scope.study_id),
        &format!("instance={instance_id}"),
    )
    .await
    .map_err(StudyError::from)?;
    Ok(jpeg)
}

fn series_dir(n: usize) -> String {
    format!("SER{:04}", n + 1)
}

fn image_name(n: usize) -> String {
    format!("IMG{:05}", n + 1)
}

#[derive(Template)]
#[template(path = "pdi_index.html")]
struct IndexPage<'a> {
    patient_name: String,
    birth_date: String,
    study_date: String,
    description: &'a str,
    practice: &'a str,
    series: Vec<IndexSeries>,
    reports: Vec<String>,
}

struct IndexSeries {
    number: i64,
    description: String,
    modality: String,
    images: usize,
    preview: Option<String>,
}

const README: &str = "\
Lichtkasten – Ihre Untersuchung / your study
============================================

DEUTSCH
Dieses Archiv enthält Ihre Untersuchung wie eine Patienten-CD:
  INDEX.HTM   Übersicht mit Vorschaubildern; im Browser öffnen.
  DICOMDIR    Inhaltsverzeichnis für DICOM-Programme (Praxis, Klinik).
  DICOM/      die Originalbilder im DICOM-Format.
  REPORT/     der Befund als PDF, wenn er freigegeben ist.
Die Vorschaubilder sind nicht für die Befundung geeignet.
Bewahren Sie die Dateien sicher auf: Sie enthalten Gesundheitsdaten.

ENGLISH
This archive holds your study like a patient CD:
  INDEX.HTM   overview with previews; open it in a browser.
  DICOMDIR    index for DICOM programs (practice, hospital).
  DICOM/      the original images in DICOM format.
  REPORT/     the findings as PDF, once released.
The previews are not for diagnostic use.
Keep the files safe: they contain health data.
";

/// What goes into the ZIP, in order, without the bytes of the DICOM files.
struct Plan {
    detail: StudyDetail,
    practice_name: String,
    /// Released findings and their file names in the ZIP.
    reports: Vec<(crate::db::studies::FindingRow, String)>,
}

async fn plan(svc: &Services, scope: &PatientScope) -> Result<Plan, DownloadError> {
    let detail = view::detail(svc, &scope.practice_id, &scope.study_id).await?;
    let early = findings::early_access(svc, &scope.practice_id, &scope.audience).await?;
    let now = svc.clock.now();
    let reports = findings::list(svc, &scope.practice_id, &scope.study_id)
        .await?
        .into_iter()
        .filter(|f| early || f.release_at <= now)
        .enumerate()
        .map(|(n, f)| (f, format!("REPORT/BEFUND{}.PDF", n + 1)))
        .collect();
    let practice_name = svc
        .db
        .practice_settings(&scope.practice_id)
        .await
        .map_err(StudyError::from)?
        .map(|s| s.name)
        .unwrap_or_default();
    Ok(Plan {
        detail,
        practice_name,
        reports,
    })
}

/// Starts the study ZIP: checks and plans before the first byte (so a refusal is a
/// clean error), then streams it from a task. The receiver yields the pieces; an
/// `Err` piece means the archive broke off and the client must not trust it.
pub async fn study_zip(
    svc: std::sync::Arc<Services>,
    scope: PatientScope,
) -> Result<tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>, DownloadError> {
    check_allowed(&scope)?;
    let plan = plan(&svc, &scope).await?;
    audit::record(
        &svc,
        &scope.practice_id,
        &actor(&scope),
        "download.study",
        Some(&scope.study_id),
        &format!("grant={}", scope.grant_id),
    )
    .await
    .map_err(StudyError::from)?;
    let (tx, rx) = tokio::sync::mpsc::channel(PIECES_IN_FLIGHT);
    tokio::spawn(async move {
        if let Err(e) = write_zip(&svc, &scope, plan, &tx).await {
            // The study's details stay out of the log; the kind of failure is enough.
            tracing::warn!(error = %e, "study download broke off");
            let _ = tx
                .send(Err(std::io::Error::other("the download broke off")))
                .await;
        }
    });
    Ok(rx)
}

type Tx = tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>;

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("client went away")]
    Gone,
    #[error(transparent)]
    Study(#[from] StudyError),
    #[error("render failed")]
    Render,
}

async fn send_entry(
    zip: &mut zip::ZipStream,
    tx: &Tx,
    name: &str,
    data: Vec<u8>,
) -> Result<(), WriteError> {
    let header = zip.entry_header(name, &data);
    tx.send(Ok(Bytes::from(header)))
        .await
        .map_err(|_| WriteError::Gone)?;
    tx.send(Ok(Bytes::from(data)))
        .await
        .map_err(|_| WriteError::Gone)
}

async fn preview_jpeg(bytes: Vec<u8>) -> Option<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        let image = crate::dicom::render::render_frame(&bytes, 0).ok()?;
        mark::to_jpeg(&mark::marked(&image)).ok()
    })
    .await
    .ok()
    .flatten()
}

async fn write_zip(
    svc: &Services,
    scope: &PatientScope,
    plan: Plan,
    tx: &Tx,
) -> Result<(), WriteError> {
    let mut zip = zip::ZipStream::new();
    send_entry(&mut zip, tx, "README.TXT", README.as_bytes().to_vec()).await?;
    let study = &plan.detail.study;
    let mut dir = DirStudy {
        patient_name: study.patient_name.clone(),
        patient_id: study.patient_id.clone(),
        patient_birth_date: study.patient_birth_date.clone(),
        patient_sex: study.patient_sex.clone(),
        study_uid: study.study_uid.clone(),
        study_date: study.study_date.clone(),
        study_description: study.description.clone(),
        accession: study.accession.clone(),
        series: Vec::new(),
    };
    let mut index_series = Vec::new();
    for (s_no, s) in plan.detail.series.iter().enumerate() {
        let middle = s.instances.len() / 2;
        let mut preview = None;
        let mut instances = Vec::new();
        for (i_no, inst) in s.instances.iter().enumerate() {
            let bytes = view::original(svc, &scope.practice_id, &scope.study_id, &inst.id).await?;
            let transfer_syntax = crate::dicom::parse::parse(&bytes)
                .map(|p| p.transfer_syntax)
                .unwrap_or_default();
            if i_no == middle && inst.rows > 0 {
                preview = preview_jpeg(bytes.clone()).await;
            }
            let file_id = vec!["DICOM".to_string(), series_dir(s_no), image_name(i_no)];
            send_entry(&mut zip, tx, &file_id.join("/"), bytes).await?;
            instances.push(DirInstance {
                file_id,
                sop_class_uid: inst.sop_class_uid.clone(),
                sop_instance_uid: inst.sop_uid.clone(),
                transfer_syntax_uid: transfer_syntax,
                instance_number: inst.instance_number,
            });
        }
        let preview_name = match preview {
            Some(jpeg) => {
                let name = format!("IHE_PDI/{}.JPG", series_dir(s_no));
                send_entry(&mut zip, tx, &name, jpeg).await?;
                Some(name)
            }
            None => None,
        };
        index_series.push(IndexSeries {
            number: s.series.series_number,
            description: s.series.description.clone(),
            modality: s.series.modality.clone(),
            images: s.instances.len(),
            preview: preview_name,
        });
        dir.series.push(DirSeries {
            series_uid: s.series.series_uid.clone(),
            modality: s.series.modality.clone(),
            number: s.series.series_number,
            instances,
        });
    }
    for (finding, name) in &plan.reports {
        let pdf = findings::read_row(svc, &scope.practice_id, &scope.study_id, finding).await?;
        send_entry(&mut zip, tx, name, pdf).await?;
    }
    let set_uid = crate::dicom::synth::new_uid(&mut rand::rngs::OsRng);
    send_entry(&mut zip, tx, "DICOMDIR", dicomdir::build(&dir, &set_uid)).await?;
    let index = IndexPage {
        patient_name: crate::dicom::display_person_name(&study.patient_name),
        birth_date: crate::dicom::display_date_de(&study.patient_birth_date),
        study_date: crate::dicom::display_date_de(&study.study_date),
        description: &study.description,
        practice: &plan.practice_name,
        series: index_series,
        reports: plan.reports.iter().map(|(_, n)| n.clone()).collect(),
    }
    .render()
    .map_err(|_| WriteError::Render)?;
    send_entry(&mut zip, tx, "INDEX.HTM", index.into_bytes()).await?;
    tx.send(Ok(Bytes::from(zip.finish())))
        .await
        .map_err(|_| WriteError::Gone)
}
