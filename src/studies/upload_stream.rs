//! Reads upload bodies as they arrive and hands their files to an [`Intake`] one at
//! a time, so memory holds one file, never the upload. A ZIP (known by its first
//! bytes) must be read out of order, so it is spooled first — sealed, see
//! [`crate::crypto::spool`] — and then walked entry by entry.

use super::ingest::Intake;
use super::upload::{Rejection, UploadError, UploadLimits, label};
use crate::crypto::spool::{SpoolReader, SpoolWriter};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use std::io::{Read, Seek};
use std::path::Path;

/// What one request has used so far, against its limits.
#[derive(Debug, Default)]
pub struct Tally {
    /// Bytes read off the wire.
    pub wire: u64,
    pub files: usize,
    /// Bytes of files after unpacking.
    pub unpacked: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Bytes one request may send.
    pub max_wire: u64,
    pub files: UploadLimits,
}

impl Tally {
    fn count_file(&mut self, limits: &RequestLimits, len: u64) -> Result<(), UploadError> {
        self.files += 1;
        self.unpacked += len;
        if self.files > limits.files.max_files {
            return Err(UploadError::TooManyFiles(limits.files.max_files));
        }
        if self.unpacked > limits.files.max_total_bytes {
            return Err(UploadError::TooLarge);
        }
        Ok(())
    }
}

fn is_dicomdir(name: &str) -> bool {
    name.rsplit(['/', '\\'])
        .next()
        .is_some_and(|b| b.eq_ignore_ascii_case("DICOMDIR"))
}

async fn next_chunk<S, E>(body: &mut S, limit: u64) -> Result<Option<Bytes>, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    match body.next().await {
        None => Ok(None),
        Some(Ok(chunk)) => Ok(Some(chunk)),
        Some(Err(_)) => Err(UploadError::Interrupted { limit }),
    }
}

/// Feeds one body (a whole request body, or one part of a multipart body) into the
/// intake. `Err` means the whole request is refused from here on (over a limit, or
/// the connection broke); files stored before stay stored and are in the report.
pub async fn feed<S, E>(
    intake: &mut Intake,
    name: &str,
    mut body: S,
    limits: &RequestLimits,
    spool_dir: &Path,
    tally: &mut Tally,
    allow_zip: bool,
) -> Result<Option<usize>, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let name = label(name);
    let mut head = BytesMut::new();
    // Enough to tell a ZIP from anything else.
    while head.len() < 4 {
        match next_chunk(&mut body, limits.max_wire).await? {
            Some(chunk) => {
                tally.wire += chunk.len() as u64;
                head.extend_from_slice(&chunk);
            }
            None => break,
        }
    }
    if tally.wire > limits.max_wire {
        return Err(UploadError::TooLarge);
    }
    if head.is_empty() {
        intake.reject(Rejection::new(&name, "empty_file", "The file is empty."));
        return Ok(None);
    }
    if allow_zip && super::upload::is_zip(&head) {
        let dir = spool_dir.to_path_buf();
        let mut spool = tokio::task::spawn_blocking(move || SpoolWriter::new(&dir))
            .await
            .map_err(|_| UploadError::Spool)?
            .map_err(|_| UploadError::Spool)?;
        spool.write(&head).map_err(|_| UploadError::Spool)?;
        while let Some(chunk) = next_chunk(&mut body, limits.max_wire).await? {
            tally.wire += chunk.len() as u64;
            if tally.wire > limits.max_wire {
                return Err(UploadError::TooLarge);
            }
            // Small writes into the page cache; not worth a thread hop each.
            spool.write(&chunk).map_err(|_| UploadError::Spool)?;
        }
        let reader = spool.finish().map_err(|_| UploadError::Spool)?;
        feed_zip(intake, reader, limits, tally).await?;
        return Ok(None);
    }
    let mut file = head;
    while let Some(chunk) = next_chunk(&mut body, limits.max_wire).await? {
        tally.wire += chunk.len() as u64;
        if tally.wire > limits.max_wire {
            return Err(UploadError::TooLarge);
        }
        if (file.len() + chunk.len()) as u64 > limits.files.max_file_bytes {
            return Err(UploadError::TooLarge);
        }
        file.extend_from_slice(&chunk);
    }
    if is_dicomdir(&name) {
        // A DICOMDIR only indexes the media; the images arrive as the other files.
        return Ok(None);
    }
    tally.count_file(limits, file.len() as u64)?;
    let ticket = intake
        .submit(&name, file.freeze())
        .await
        .map_err(|_| UploadError::Storage)?;
    Ok(Some(ticket))
}

/// One entry of a ZIP: a file to store or the reason it was refused.
pub enum ZipItem {
    File(String, Vec<u8>),
    Refused(Rejection),
}

/// Walks the entries of a ZIP (regular files only; directories and DICOMDIR
/// skipped; symlinks, absolute or escaping names, oversize and over-compressed
/// entries refused each on its own). Entry names are labels, never paths. Stops when
/// `on_item` returns false.
pub fn walk_zip<R: Read + Seek>(
    reader: R,
    limits: &UploadLimits,
    mut on_item: impl FnMut(ZipItem) -> bool,
) -> Result<(), UploadError> {
    let mut archive = zip::ZipArchive::new(reader).map_err(|_| UploadError::BadZip)?;
    if archive.len() > limits.max_files {
        return Err(UploadError::TooManyFiles(limits.max_files));
    }
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|_| UploadError::BadZip)?;
        let name = label(entry.name());
        if entry.is_dir() {
            continue;
        }
        let refuse =
            |code: &str, message: &str| ZipItem::Refused(Rejection::new(&name, code, message));
        let is_symlink = entry.unix_mode().is_some_and(|m| m & 0o170000 == 0o120000);
        let item = if is_symlink {
            refuse("zip_symlink", "Symbolic links are not accepted.")
        } else if entry.enclosed_name().is_none()
            || name.starts_with('/')
            || name.contains('\\') && name.contains("..")
        {
            refuse(
                "zip_unsafe_name",
                "The file name points outside the archive.",
            )
        } else if is_dicomdir(&name) {
            continue;
        } else if entry.size() > limits.max_file_bytes {
            refuse("file_too_large", "The file is larger than allowed.")
        } else if entry.size() / entry.compressed_size().max(1) > limits.max_ratio {
            refuse(
                "zip_bomb",
                "The file is compressed suspiciously well and was not unpacked.",
            )
        } else {
            // Read at most one byte past what the header declares: sizes in ZIP
            // headers can lie, and a lie is a bomb or a broken archive either way.
            let declared = entry.size();
            let mut buf = Vec::with_capacity(declared as usize);
            match (&mut entry).take(declared + 1).read_to_end(&mut buf) {
                Err(_) => refuse("zip_entry_damaged", "The file inside the ZIP is damaged."),
                Ok(_) if buf.len() as u64 > declared => refuse(
                    "zip_bomb",
                    "The file is larger than the archive says and was not unpacked.",
                ),
                Ok(_) => ZipItem::File(name.clone(), buf),
            }
        };
        if !on_item(item) {
            break;
        }
    }
    Ok(())
}

/// Walks a spooled ZIP on a blocking thread and hands its files to the intake as
/// they come out (one waiting in the channel, the intake's few being stored).
async fn feed_zip(
    intake: &mut Intake,
    reader: SpoolReader,
    limits: &RequestLimits,
    tally: &mut Tally,
) -> Result<(), UploadError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ZipItem>(1);
    let file_limits = limits.files;
    let walker = tokio::task::spawn_blocking(move || {
        walk_zip(reader, &file_limits, |item| tx.blocking_send(item).is_ok())
    });
    let mut outcome = Ok(());
    while let Some(item) = rx.recv().await {
        match item {
            ZipItem::Refused(r) => intake.reject(r),
            ZipItem::File(name, bytes) => {
                if let Err(e) = tally.count_file(limits, bytes.len() as u64) {
                    outcome = Err(e);
                    break;
                }
                if intake.submit(&name, Bytes::from(bytes)).await.is_err() {
                    outcome = Err(UploadError::Storage);
                    break;
                }
            }
        }
    }
    // Dropping the receiver stops the walker at its next entry.
    drop(rx);
    let walked = walker.await.map_err(|_| UploadError::BadZip)?;
    outcome.and(walked)
}
