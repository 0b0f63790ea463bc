//! Renders prepared at ingest and kept: the thumbnail and the first view of every
//! image (and a decoded copy of a compressed original, which later renders read
//! instead of decoding again), encrypted under the study key like the original
//! (renders are patient data too) and deleted with the study. A queue in the
//! database, leased per job, lets any number of nodes prepare them without doing one
//! twice.

use super::StudyError;
use super::view::ImageFormat;
use crate::app::Services;
use crate::blob::{object_key, once};
use crate::crypto::stream::ObjectContext;
use crate::db::renders::DECODED_COPY;
use crate::db::studies::NewBlob;
use crate::dicom::render::RenderOptions;
use crate::domain::new_id;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// The series strip's small picture.
pub const THUMBNAIL: (RenderOptions, ImageFormat) = (
    RenderOptions {
        window: None,
        viewport: Some((160, 160)),
    },
    ImageFormat::Jpeg(80),
);

/// What the viewer shows first and while scrolling: fits a phone screen.
pub const PREVIEW: (RenderOptions, ImageFormat) = (
    RenderOptions {
        window: None,
        viewport: Some((768, 768)),
    },
    ImageFormat::Jpeg(85),
);

/// What the viewer scrolls through before the preview of a slice arrives: small
/// enough that every slice of a 300-slice CT reaches a phone within seconds.
pub const SCROLL: (RenderOptions, ImageFormat) = (
    RenderOptions {
        window: None,
        viewport: Some((256, 256)),
    },
    ImageFormat::Jpeg(75),
);

/// The exact image at full size, as the viewer asks for it after the preview.
pub const FULL: (RenderOptions, ImageFormat) = (
    RenderOptions {
        window: None,
        viewport: None,
    },
    ImageFormat::Png,
);

/// The names kept renders are stored under: the variant, then the version of the
/// rendering rules it was drawn with. Raise the version when a rule changes what a
/// kept render looks like (2: 8-bit grey images without a window shown as stored):
/// renders kept under the old names are then no longer found and are drawn again
/// when asked (the old ones are deleted with their study).
pub const THUMBNAIL_NAME: &str = "thumb.2";
pub const SCROLL_NAME: &str = "scroll.2";
pub const PREVIEW_NAME: &str = "preview.2";
pub const FULL_NAME: &str = "full.2";

/// The name under which a request's render is cached, if it is one we keep. Other
/// windows and sizes are drawn on demand and not stored, so the cache stays bounded
/// (four renders per frame at most).
pub fn variant_of(options: &RenderOptions, format: ImageFormat) -> Option<&'static str> {
    [
        (THUMBNAIL_NAME, THUMBNAIL),
        (SCROLL_NAME, SCROLL),
        (PREVIEW_NAME, PREVIEW),
        (FULL_NAME, FULL),
    ]
    .into_iter()
    .find(|(_, (o, f))| o == options && *f == format)
    .map(|(name, _)| name)
}

/// A cached render, decrypted and checked; `None` when there is none (or it is
/// unreadable, in which case it is drawn again).
pub async fn cached(
    svc: &Services,
    study_id: &str,
    dek: &crate::crypto::Key32,
    instance_id: &str,
    frame: u32,
    variant: &str,
) -> Result<Option<Vec<u8>>, StudyError> {
    let Some((blob_id, key, sha)) = svc.db.cached_render(instance_id, frame, variant).await? else {
        return Ok(None);
    };
    let ctx = ObjectContext {
        study_id,
        object_id: &blob_id,
    };
    match svc.blobs.get_all(&key, dek, ctx).await {
        Ok(bytes) if hex::encode(Sha256::digest(&bytes)) == sha => {
            crate::metrics::RENDER_CACHE_HITS.inc();
            Ok(Some(bytes))
        }
        _ => {
            tracing::warn!("a cached render could not be read; drawing it again");
            Ok(None)
        }
    }
}

/// Stores a render in the cache. Losing a race to another node is fine: its copy
/// is used and ours deleted.
#[allow(clippy::too_many_arguments)]
pub async fn store(
    svc: &Services,
    study_id: &str,
    dek: &crate::crypto::Key32,
    instance_id: &str,
    frame: u32,
    variant: &str,
    format: ImageFormat,
    encoded: Bytes,
) -> Result<(), StudyError> {
    let what = ("render", format.media_type());
    store_object(
        svc,
        study_id,
        dek,
        (instance_id, frame, variant),
        what,
        encoded,
    )
    .await
    .map(|_| ())
}

/// Stores an object recorded with an instance's renders: `(kind, media type)`.
/// Returns its blob id, or `None` when another node recorded the same one first.
async fn store_object(
    svc: &Services,
    study_id: &str,
    dek: &crate::crypto::Key32,
    (instance_id, frame, variant): (&str, u32, &str),
    (kind, media_type): (&str, &str),
    encoded: Bytes,
) -> Result<Option<String>, StudyError> {
    let blob_id = new_id(&mut rand::rngs::OsRng);
    let key = object_key(&blob_id);
    let sha = hex::encode(Sha256::digest(&encoded));
    let ctx = ObjectContext {
        study_id,
        object_id: &blob_id,
    };
    let report = svc.blobs.put(&key, dek, ctx, once(encoded)).await?;
    let recorded = svc
        .db
        .insert_render(
            &NewBlob {
                id: &blob_id,
                study_id,
                kind,
                object_key: &key,
                plain_size: report.plain_len as i64,
                stored_size: report.stored_len as i64,
                sha256: &sha,
            },
            instance_id,
            frame,
            variant,
            media_type,
            svc.clock.now(),
        )
        .await;
    match recorded {
        Ok(true) => Ok(Some(blob_id)),
        Ok(false) => {
            svc.blobs.delete(&key).await?;
            Ok(None)
        }
        Err(e) => {
            let _ = svc.blobs.delete(&key).await;
            Err(e.into())
        }
    }
}

/// Frames of one instance prepared for scrolling at most (a longer loop gets the
/// rest drawn when asked).
const MAX_PREPARED_FRAMES: i64 = 1000;

/// Prepares one leased job: a decoded copy of a compressed original first (the
/// renders below are then drawn from it), thumbnail and preview of the first frame,
/// the scrolling size of every frame, then the preview of every other frame (the
/// viewer loads those next: a loop plays at preview quality without drawing any of
/// it).
async fn prepare(svc: &Services, job: &crate::db::renders::RenderJob) -> Result<(), StudyError> {
    let instance = svc
        .db
        .instance(&job.study_id, &job.instance_id)
        .await?
        .ok_or(StudyError::NotFound)?;
    let copy_blob_id = keep_decoded_copy(svc, job, &instance)
        .await
        .unwrap_or_else(|e| {
            // Renders are then decoded from the original each time, as before.
            tracing::warn!(error = %e, "no decoded copy kept");
            None
        });
    let frames = instance.frames.clamp(1, MAX_PREPARED_FRAMES) as u32;
    let mut wanted = vec![(0, THUMBNAIL), (0, PREVIEW)];
    wanted.extend((0..frames).map(|f| (f, SCROLL)));
    wanted.extend((1..frames).map(|f| (f, PREVIEW)));
    // The parsed file, read once for all of them whatever its size.
    let mut held = None;
    for (frame, (options, format)) in wanted {
        super::view::prepare_image(
            svc,
            &job.practice_id,
            &job.study_id,
            &job.instance_id,
            frame,
            options,
            format,
            &mut held,
        )
        .await?;
    }
    drop(held);
    // Its renders are kept now; holding the parsed file for a viewer that may never
    // come would only fill memory during a big ingest.
    svc.recent_originals.forget(&instance.blob_id);
    if let Some(blob_id) = copy_blob_id {
        svc.recent_originals.forget(&blob_id);
    }
    Ok(())
}

/// Stores the decoded copy of a compressed original (see
/// [`crate::dicom::decoded_copy`]), unless it has one, needs none or would be too big
/// (`copy_budget`). Returns the blob id of the copy the renders will read (none when
/// another node stored it first).
async fn keep_decoded_copy(
    svc: &Services,
    job: &crate::db::renders::RenderJob,
    instance: &crate::db::studies::InstanceRow,
) -> Result<Option<String>, StudyError> {
    if let Some(copy) = &instance.decoded {
        return Ok(Some(copy.blob_id.clone()));
    }
    if !crate::dicom::decoded_copy::may_need_copy(&instance.transfer_syntax) {
        return Ok(None);
    }
    let key_row = svc
        .db
        .study_key(&job.practice_id, &job.study_id)
        .await?
        .ok_or(StudyError::NotFound)?;
    let original = super::view::StoredObject::original(instance);
    let checksum = super::view::Checksum::Skip;
    let copy = super::view::read_then(svc, &key_row, original, checksum, move |bytes| {
        use crate::dicom::decoded_copy::{copy_budget, decoded_copy};
        let file_len = bytes.len();
        let parsed = crate::dicom::render::parse_for_render(bytes)?;
        Ok(decoded_copy(&parsed, copy_budget(&parsed, file_len))?)
    })
    .await?;
    let Some(copy) = copy else {
        return Ok(None);
    };
    let dek = svc.keys.study_key(&svc.db, &key_row).await?;
    let at = (job.instance_id.as_str(), 0, DECODED_COPY);
    let what = ("decoded", "application/dicom");
    store_object(svc, &job.study_id, &dek, at, what, copy.into()).await
}

/// How long a node holds a job before another may take it over.
const LEASE_SECS: i64 = 120;

/// Works off the queue until there is nothing left (pausing while files arrive);
/// returns how many jobs it did.
pub async fn drain(svc: &Services, owner: &str, preparer: &Preparer) -> Result<usize, StudyError> {
    let mut done = 0;
    loop {
        preparer.until_quiet().await;
        let Some(job) = svc
            .db
            .lease_render_job(owner, svc.clock.now(), LEASE_SECS)
            .await?
        else {
            break;
        };
        match prepare(svc, &job).await {
            Ok(()) => {
                svc.db.finish_render_job(&job.instance_id, owner).await?;
                done += 1;
            }
            // The study went away meanwhile: nothing left to prepare.
            Err(StudyError::NotFound) => {
                svc.db.finish_render_job(&job.instance_id, owner).await?;
            }
            Err(e) => {
                // The lease runs out and the job is tried again, a few times at most.
                tracing::warn!(error = %e, attempts = job.attempts, "preparing renders failed");
            }
        }
    }
    Ok(done)
}

/// Wakes the preparer after an ingest (it also looks every few seconds, for jobs
/// left by other nodes or by a crash).
#[derive(Default)]
pub struct Preparer {
    pub wake: tokio::sync::Notify,
    /// When this node last stored a file (ms since the epoch).
    last_ingest_ms: std::sync::atomic::AtomicU64,
}

impl Preparer {
    /// Called for every stored file: wakes the worker, which waits for the burst to end.
    pub fn ingested(&self) {
        self.last_ingest_ms
            .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// While files keep arriving, preparing waits: the sender is waiting for each
    /// answer, a thumbnail nobody looks at yet is not.
    async fn until_quiet(&self) {
        loop {
            let last = self
                .last_ingest_ms
                .load(std::sync::atomic::Ordering::Relaxed);
            let quiet_for = now_ms().saturating_sub(last);
            if quiet_for >= QUIET_MS {
                return;
            }
            tokio::time::sleep(Duration::from_millis(QUIET_MS - quiet_for)).await;
        }
    }
}

/// How long no file must have arrived before renders are prepared.
const QUIET_MS: u64 = 300;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub fn spawn_worker(svc: Arc<Services>, preparer: Arc<Preparer>) -> tokio::task::JoinHandle<()> {
    let owner = new_id(&mut rand::rngs::OsRng);
    tokio::spawn(async move {
        loop {
            preparer.until_quiet().await;
            if let Err(e) = drain(&svc, &owner, &preparer).await {
                tracing::warn!(error = %e, "render queue unavailable");
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), preparer.wake.notified()).await;
        }
    })
}
