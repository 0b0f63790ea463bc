//! Reading studies: lists and details for the practice, the manifest and rendered
//! frames for a grant's viewer, deletion with crypto-shredding.

use super::recent::{Parsed, RecentOriginals, RecentRenders};
use super::{StudyError, StudySummary, open_record};
use crate::app::Services;
use crate::audit::{self, Actor};
use crate::blob::BlobError;
use crate::crypto::stream::ObjectContext;
use crate::db::studies::{InstanceRow, SeriesRow};
use sha2::{Digest, Sha256};
use std::sync::Arc;

#[derive(Debug, Clone, serde::Serialize)]
pub struct SeriesView {
    #[serde(flatten)]
    pub series: SeriesRow,
    pub instances: Vec<InstanceRow>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StudyDetail {
    #[serde(flatten)]
    pub study: StudySummary,
    pub series: Vec<SeriesView>,
}

pub async fn list(
    svc: &Services,
    practice_id: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<StudySummary>, StudyError> {
    let records = svc
        .db
        .list_studies(practice_id, limit.clamp(1, 500), offset.max(0))
        .await?;
    let mut out = Vec::with_capacity(records.len());
    for rec in records {
        out.push(open_record(svc, rec).await?.0);
    }
    Ok(out)
}

pub async fn detail(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
) -> Result<StudyDetail, StudyError> {
    let record = svc
        .db
        .study_record(practice_id, study_id)
        .await?
        .ok_or(StudyError::NotFound)?;
    let (study, _) = open_record(svc, record).await?;
    let instances = svc.db.instances_of_study(study_id).await?;
    let series = svc
        .db
        .series_of_study(study_id)
        .await?
        .into_iter()
        .map(|s| {
            let mine: Vec<InstanceRow> = instances
                .iter()
                .filter(|i| i.series_id == s.id)
                .cloned()
                .collect();
            SeriesView {
                series: s,
                instances: mine,
            }
        })
        .filter(|s| !s.instances.is_empty())
        .collect();
    Ok(StudyDetail { study, series })
}

/// The original DICOM bytes of one instance, decrypted and checked against the
/// checksum taken at ingest.
pub async fn original(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
    instance_id: &str,
) -> Result<Vec<u8>, StudyError> {
    let (key_row, inst) = look_up_instance(svc, practice_id, study_id, instance_id).await?;
    read_checked(svc, &key_row, &inst).await
}

/// The study's key row (in the caller's practice) and the instance (in that study).
/// Looked up on every read and render, so a deleted study yields nothing.
async fn look_up_instance(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
    instance_id: &str,
) -> Result<(crate::db::studies::StudyKeyRow, InstanceRow), StudyError> {
    let key_row = svc
        .db
        .study_key(practice_id, study_id)
        .await?
        .ok_or(StudyError::NotFound)?;
    let inst = svc
        .db
        .instance(study_id, instance_id)
        .await?
        .ok_or(StudyError::NotFound)?;
    Ok((key_row, inst))
}

/// Decrypts one looked-up instance and checks it against its recorded size and hash.
async fn read_checked(
    svc: &Services,
    key_row: &crate::db::studies::StudyKeyRow,
    inst: &InstanceRow,
) -> Result<Vec<u8>, StudyError> {
    read_then(
        svc,
        key_row,
        StoredObject::original(inst),
        Checksum::Compare,
        Ok,
    )
    .await
}

/// Whether a read compares the file with the SHA-256 taken when it was stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Checksum {
    /// For files that leave as they are (downloads, forwarding).
    Compare,
    /// For renders: the object format already authenticates every segment, their
    /// number and the end under a key bound to this study and object id, so the
    /// bytes are the stored ones; the hash would add 0.3 ms per CT slice.
    Skip,
}

/// A stored file of an instance: its original, or the decoded copy kept beside a
/// compressed original.
#[derive(Debug, Clone, Copy)]
pub(super) struct StoredObject<'a> {
    blob_id: &'a str,
    object_key: &'a str,
    plain_size: i64,
    sha256: &'a str,
}

impl<'a> StoredObject<'a> {
    pub(super) fn original(inst: &'a InstanceRow) -> Self {
        StoredObject {
            blob_id: &inst.blob_id,
            object_key: &inst.object_key,
            plain_size: inst.plain_size,
            sha256: &inst.sha256,
        }
    }

    fn decoded(copy: &'a crate::db::studies::DecodedCopyRow) -> Self {
        StoredObject {
            blob_id: &copy.blob_id,
            object_key: &copy.object_key,
            plain_size: copy.plain_size,
            sha256: &copy.sha256,
        }
    }
}

/// Reads a sealed file in one go, then opens and checks it and hands it to `then`,
/// all in one blocking step off the async threads (a few MB of AES-GCM would
/// otherwise stall them). From a local store the file is read in that step too: one
/// thread hand-off per read, not two.
pub(super) async fn read_then<T: Send + 'static>(
    svc: &Services,
    key_row: &crate::db::studies::StudyKeyRow,
    object: StoredObject<'_>,
    checksum: Checksum,
    then: impl FnOnce(Vec<u8>) -> Result<T, StudyError> + Send + 'static,
) -> Result<T, StudyError> {
    let dek = svc.keys.study_key(&svc.db, key_row).await?;
    let unreadable = |e: BlobError| match e {
        BlobError::NotFound => StudyError::Blob(BlobError::NotFound),
        _ => StudyError::Integrity,
    };
    let source = svc
        .blobs
        .sealed_source(object.object_key)
        .await
        .map_err(unreadable)?;
    let (study_id, blob_id) = (key_row.id.clone(), object.blob_id.to_string());
    let (plain_size, sha256) = (object.plain_size, object.sha256.to_string());
    tokio::task::spawn_blocking(move || {
        let ctx = ObjectContext {
            study_id: &study_id,
            object_id: &blob_id,
        };
        let sealed = source.read().map_err(unreadable)?;
        let bytes = crate::blob::sealed::open_whole(&dek, ctx, sealed)
            .map_err(|_| StudyError::Integrity)?;
        let sha_matches = || hex::encode(Sha256::digest(&bytes)) == sha256;
        if bytes.len() as i64 != plain_size || (checksum == Checksum::Compare && !sha_matches()) {
            return Err(StudyError::Integrity);
        }
        then(bytes)
    })
    .await
    .map_err(|_| StudyError::Integrity)?
}

/// How a rendered frame is encoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ImageFormat {
    /// Exact.
    Png,
    /// Smaller, for previews; quality 1–100.
    Jpeg(u8),
    /// Exact, like PNG, usually smaller (lossless WebP).
    WebP,
}

impl ImageFormat {
    pub fn media_type(self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg(_) => "image/jpeg",
            ImageFormat::WebP => "image/webp",
        }
    }
}

/// One frame (zero-based) rendered and encoded. The kept variants (thumbnail,
/// preview, full) come from the encrypted render cache when there; when drawn, the
/// answer does not wait for them to be kept: a background task seals, writes and
/// records the copy (a crash loses only a render, drawn again when next asked).
/// Rendering runs off the async threads.
pub async fn render_image(
    svc: &Arc<Services>,
    practice_id: &str,
    study_id: &str,
    instance_id: &str,
    frame: u32,
    options: crate::dicom::render::RenderOptions,
    format: ImageFormat,
) -> Result<bytes::Bytes, StudyError> {
    let request = (practice_id, study_id, instance_id, frame, options, format);
    render_maybe_kept(svc, request, Some(svc), &mut None).await
}

/// Like [`render_image`], but a drawn variant is kept before this returns: the
/// preparing job must not call an instance done before its renders are stored.
/// `held` carries the parsed original from one of the instance's renders to the
/// next, so a loop too big for the node's memory of originals is still read once.
#[allow(clippy::too_many_arguments)]
pub async fn prepare_image(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
    instance_id: &str,
    frame: u32,
    options: crate::dicom::render::RenderOptions,
    format: ImageFormat,
    held: &mut Option<Parsed>,
) -> Result<bytes::Bytes, StudyError> {
    let request = (practice_id, study_id, instance_id, frame, options, format);
    render_maybe_kept(svc, request, None, held).await
}

type RenderRequest<'a> = (
    &'a str,
    &'a str,
    &'a str,
    u32,
    crate::dicom::render::RenderOptions,
    ImageFormat,
);

/// `keep_later`: who stores a drawn variant after the answer; `None` stores it first.
async fn render_maybe_kept(
    svc: &Services,
    (practice_id, study_id, instance_id, frame, options, format): RenderRequest<'_>,
    keep_later: Option<&Arc<Services>>,
    held: &mut Option<Parsed>,
) -> Result<bytes::Bytes, StudyError> {
    let Some(variant) = super::prepared::variant_of(&options, format) else {
        let (key_row, inst) = look_up_instance(svc, practice_id, study_id, instance_id).await?;
        return draw_remembered(svc, &key_row, &inst, frame, options, format).await;
    };
    let key_row = svc
        .db
        .study_key(practice_id, study_id)
        .await?
        .ok_or(StudyError::NotFound)?;
    let dek = svc.keys.study_key(&svc.db, &key_row).await?;
    if let Some(hit) =
        super::prepared::cached(svc, study_id, &dek, instance_id, frame, variant).await?
    {
        return Ok(hit.into());
    }
    crate::metrics::RENDER_CACHE_MISSES.inc();
    let inst = svc
        .db
        .instance(study_id, instance_id)
        .await?
        .ok_or(StudyError::NotFound)?;
    let drawn = draw_looked_up(svc, &key_row, &inst, (frame, options, format), held).await?;
    let encoded = bytes::Bytes::from(drawn);
    let Some(owner) = keep_later else {
        super::prepared::store(
            svc,
            study_id,
            &dek,
            instance_id,
            frame,
            variant,
            format,
            encoded.clone(),
        )
        .await?;
        return Ok(encoded);
    };
    let pending = format!("{instance_id}/{frame}/{variant}");
    let Some(pending) = super::recent::PendingKeeps::start(owner, pending) else {
        // Being kept already, or too many stores waiting: drawn again when asked.
        return Ok(encoded);
    };
    let kept = encoded.clone();
    let (study_id, instance_id) = (study_id.to_string(), instance_id.to_string());
    tokio::spawn(async move {
        let stored = super::prepared::store(
            pending.services(),
            &study_id,
            &dek,
            &instance_id,
            frame,
            variant,
            format,
            kept,
        )
        .await;
        if let Err(e) = stored {
            tracing::warn!(error = %e, "a render could not be kept; it is drawn again when asked");
        }
        drop(pending);
    });
    Ok(encoded)
}

static RENDER_SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();

/// A render that is never kept (another window or size than the kept variants), for
/// a caller that has already looked up the study (in the caller's practice) and the
/// instance (in that study): the DICOMweb route. Kept variants go through
/// [`render_image`].
pub async fn render_uncached(
    svc: &Services,
    key_row: &crate::db::studies::StudyKeyRow,
    inst: &InstanceRow,
    frame: u32,
    options: crate::dicom::render::RenderOptions,
    format: ImageFormat,
) -> Result<Option<bytes::Bytes>, StudyError> {
    if super::prepared::variant_of(&options, format).is_some() {
        return Ok(None);
    }
    draw_remembered(svc, key_row, inst, frame, options, format)
        .await
        .map(Some)
}

/// A render that is not a kept variant: from the node's recent renders when the same
/// frame was asked for the same way a moment ago, else drawn and remembered (the
/// answer and the memory share one buffer).
async fn draw_remembered(
    svc: &Services,
    key_row: &crate::db::studies::StudyKeyRow,
    inst: &InstanceRow,
    frame: u32,
    options: crate::dicom::render::RenderOptions,
    format: ImageFormat,
) -> Result<bytes::Bytes, StudyError> {
    let key = RecentRenders::key(&inst.blob_id, frame, &options, format);
    if let Some(hit) = svc.recent_renders.get(&key) {
        crate::metrics::RECENT_RENDER_HITS.inc();
        return Ok(hit);
    }
    let mut encoded =
        draw_looked_up(svc, key_row, inst, (frame, options, format), &mut None).await?;
    // The encoders leave room to spare (libjpeg-turbo's buffer is sized for the
    // worst case); the memory must hold no more than it counts.
    encoded.shrink_to_fit();
    let encoded = bytes::Bytes::from(encoded);
    svc.recent_renders.put(key, encoded.clone());
    Ok(encoded)
}

/// Draws and encodes one frame of rows just looked up, from the decoded copy when one
/// is kept (else, or when the copy cannot be read, from the original). The parsed
/// file comes from `held`, else from memory, else it is read, opened, parsed and
/// drawn in one blocking step (the rows serve the decryption too, no second lookup).
/// A loop or a big image is then kept for the next frame, also when this frame
/// cannot be drawn (a request that fails again and again must not decrypt the whole
/// object each time); a small single-frame image is cheaper to read again than to
/// keep.
async fn draw_looked_up(
    svc: &Services,
    key_row: &crate::db::studies::StudyKeyRow,
    inst: &InstanceRow,
    (frame, options, format): (u32, crate::dicom::render::RenderOptions, ImageFormat),
    held: &mut Option<Parsed>,
) -> Result<Vec<u8>, StudyError> {
    if i64::from(frame) >= inst.frames.max(1) {
        return Err(StudyError::NotFound);
    }
    // A few renders at a time, so a burst of requests for a big image (a mammogram
    // decodes to tens of MB) cannot hold many copies at once; the rest wait.
    let _slot = RENDER_SLOTS
        .get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            tokio::sync::Semaphore::new(cores)
        })
        .acquire()
        .await
        .map_err(|_| StudyError::Integrity)?;
    let draw = move |parsed: &crate::dicom::render::ForRender| -> Result<Vec<u8>, StudyError> {
        let image = crate::dicom::render::render_parsed(parsed, frame, options)?;
        Ok(match format {
            ImageFormat::Png => image.to_png(),
            ImageFormat::Jpeg(q) => image.to_jpeg(q),
            ImageFormat::WebP => image.to_webp(),
        }?)
    };
    let from_memory = |parsed: Parsed| async move {
        tokio::task::spawn_blocking(move || draw(&parsed))
            .await
            .map_err(|_| StudyError::Integrity)?
    };
    let source = inst
        .decoded
        .as_ref()
        .map_or(StoredObject::original(inst), StoredObject::decoded);
    let recent = &svc.recent_originals;
    let size = source.plain_size.max(0) as usize;
    let keep = RecentOriginals::worth_keeping(inst.frames, size);
    // (A small single-frame file is never kept, so it is simply not found.)
    if let Some(hit) = held.clone().or_else(|| recent.get(source.blob_id)) {
        *held = Some(hit.clone());
        return from_memory(hit).await;
    }
    // Requests that miss the same kept file at once read it once; the others wait
    // for the reader (and its render) and then draw from memory, side by side.
    let reading = if keep {
        Some(recent.reading(source.blob_id).await)
    } else {
        None
    };
    if reading.is_some()
        && let Some(hit) = recent.get(source.blob_id)
    {
        drop(reading);
        *held = Some(hit.clone());
        return from_memory(hit).await;
    }
    let parse_and_draw = move |bytes| {
        let parsed = Arc::new(crate::dicom::render::parse_for_render(bytes)?);
        let encoded = draw(&parsed);
        Ok((parsed, encoded))
    };
    let read = read_then(svc, key_row, source, Checksum::Skip, parse_and_draw).await;
    let (parsed, encoded) = match read {
        Err(e) if inst.decoded.is_some() => {
            // The copy is a convenience: the original is still there to draw from.
            tracing::warn!(error = %e, "a decoded copy could not be read; drawing from the original");
            let original = StoredObject::original(inst);
            let (parsed, encoded) =
                read_then(svc, key_row, original, Checksum::Skip, parse_and_draw).await?;
            *held = Some(parsed);
            return encoded;
        }
        read => read?,
    };
    if keep {
        recent.put(source.blob_id, parsed.clone(), size);
    }
    *held = Some(parsed);
    encoded
}

/// Deletes a study: its data key goes in the same transaction as its rows, so the
/// objects are unreadable from that moment; then the objects are removed.
pub async fn delete(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
    actor: &Actor,
) -> Result<(), StudyError> {
    let keys = svc
        .db
        .delete_study(practice_id, study_id)
        .await?
        .ok_or(StudyError::NotFound)?;
    audit::record(
        svc,
        practice_id,
        actor,
        "study.delete",
        Some(study_id),
        &format!("objects={}", keys.len()),
    )
    .await?;
    for key in keys {
        // What this node holds of it in memory goes too (unreachable already, but
        // a deleted study should not linger anywhere).
        if let Some(blob_id) = key.rsplit('/').next() {
            svc.recent_originals.forget(blob_id);
            svc.recent_renders.forget(blob_id);
        }
        if let Err(e) = svc.blobs.delete(&key).await {
            // The key is gone already; a leftover object is unreadable ciphertext
            // that `lichtkasten purge` removes later.
            tracing::warn!(error = %e, "object removal after study delete failed");
        }
    }
    Ok(())
}

pub async fn audit_log(
    svc: &Services,
    practice_id: &str,
    study_id: &str,
) -> Result<Vec<crate::db::audit::AuditEvent>, StudyError> {
    svc.db
        .study_record(practice_id, study_id)
        .await?
        .ok_or(StudyError::NotFound)?;
    Ok(svc.db.audit_of_study(practice_id, study_id).await?)
}

/// What staff search for in the study list.
#[derive(Debug, Clone, Default)]
pub struct StudyFilter {
    /// Matches patient name (case and umlaut tolerant), patient ID, birth date or accession.
    pub text: String,
    pub modality: String,
    /// `YYYYMMDD`, inclusive.
    pub date_from: String,
    pub date_to: String,
    /// Only studies whose access ends within 5 days.
    pub expiring_soon: bool,
    /// Only studies the patient has never opened.
    pub never_opened: bool,
    /// Only studies with findings not yet released to the patient.
    pub findings_unreleased: bool,
}

/// Lower case, umlauts spelled out, other accents dropped, DICOM name separators as
/// spaces: "Müller^Jürgen" and "mueller juergen" meet.
pub fn fold_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        match c {
            'ä' => out.push_str("ae"),
            'ö' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            'à' | 'á' | 'â' | 'ã' | 'å' => out.push('a'),
            'è' | 'é' | 'ê' | 'ë' => out.push('e'),
            'ì' | 'í' | 'î' | 'ï' | 'ı' => out.push('i'),
            'ò' | 'ó' | 'ô' | 'õ' | 'ø' => out.push('o'),
            'ù' | 'ú' | 'û' => out.push('u'),
            'ç' => out.push('c'),
            'ş' | 'š' => out.push('s'),
            'ñ' => out.push('n'),
            '^' | ',' | '-' | '.' => out.push(' '),
            c => out.push(c),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl StudyFilter {
    pub fn matches(&self, s: &StudySummary) -> bool {
        let text_ok = self.text.trim().is_empty() || {
            let q = fold_text(&self.text);
            let digits: String = self.text.chars().filter(char::is_ascii_digit).collect();
            let name = fold_text(&s.patient_name);
            // Every word of the query in the name, in any order ("juergen mueller").
            q.split(' ').all(|w| name.contains(w))
                || fold_text(&s.patient_id).contains(&q)
                || fold_text(&s.accession).contains(&q)
                || (digits.len() >= 4 && birth_date_matches(&s.patient_birth_date, &self.text))
        };
        let modality_ok = self.modality.trim().is_empty()
            || s.modalities
                .split(',')
                .any(|m| m.eq_ignore_ascii_case(self.modality.trim()));
        let from_ok = self.date_from.is_empty() || s.study_date.as_str() >= self.date_from.as_str();
        let to_ok = self.date_to.is_empty() || s.study_date.as_str() <= self.date_to.as_str();
        text_ok && modality_ok && from_ok && to_ok
    }
}

/// Accepts `YYYYMMDD`, `YYYY-MM-DD` and `DD.MM.YYYY`.
fn birth_date_matches(stored: &str, query: &str) -> bool {
    let q = query.trim();
    let normalized = if let [d, m, y] = q.split('.').collect::<Vec<_>>()[..] {
        format!("{y:0>4}{m:0>2}{d:0>2}")
    } else {
        q.replace('-', "")
    };
    !stored.is_empty() && stored == normalized
}

/// The practice's studies that match, newest first, at most `limit`.
pub async fn search(
    svc: &Services,
    practice_id: &str,
    filter: &StudyFilter,
    limit: usize,
) -> Result<Vec<StudySummary>, StudyError> {
    // Patient details are sealed, so matching happens after opening them.
    let records = svc.db.list_studies(practice_id, 100_000, 0).await?;
    let now = svc.clock.now();
    let grants = if filter.expiring_soon || filter.never_opened {
        svc.db.grant_summaries(practice_id, now).await?
    } else {
        Default::default()
    };
    let unreleased = if filter.findings_unreleased {
        svc.db
            .studies_with_unreleased_findings(practice_id, now)
            .await?
    } else {
        Default::default()
    };
    let mut out = Vec::new();
    for rec in records {
        if filter.findings_unreleased && !unreleased.contains(&rec.id) {
            continue;
        }
        let g = grants.get(&rec.id).cloned().unwrap_or_default();
        if filter.expiring_soon && g.next_expiry.is_none_or(|e| e - now > 5 * 86_400) {
            continue;
        }
        if filter.never_opened && g.opened {
            continue;
        }
        let (summary, _) = open_record(svc, rec).await?;
        if filter.matches(&summary) {
            out.push(summary);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_meets_umlauts_and_case() {
        assert_eq!(fold_text("Müller^Jürgen"), "mueller juergen");
        assert_eq!(fold_text("  MUELLER,  Jürgen "), "mueller juergen");
        assert_eq!(fold_text("Öztürk^Ayşe"), "oeztuerk ayse");
        assert!(birth_date_matches("19630514", "14.05.1963"));
        assert!(birth_date_matches("19630514", "1963-05-14"));
        assert!(!birth_date_matches("19630514", "1963-05-15"));
    }
}
