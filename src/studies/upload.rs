//! Turns an upload body (one DICOM file, a ZIP, or multipart parts) into named files,
//! with limits. ZIP entry names are only ever labels in the report, never paths.

use bytes::Bytes;
use std::io::Read;

#[derive(Debug, Clone)]
pub struct UploadedFile {
    /// For the per-file report only (sanitised, length-limited).
    pub name: String,
    pub bytes: Bytes,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Rejection {
    pub file: String,
    pub code: String,
    pub message: String,
}

impl Rejection {
    pub fn new(file: &str, code: &str, message: impl Into<String>) -> Self {
        Rejection {
            file: file.to_string(),
            code: code.to_string(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    pub max_files: usize,
    pub max_file_bytes: u64,
    pub max_total_bytes: u64,
    /// Uncompressed / compressed; above this an entry is treated as a zip bomb.
    pub max_ratio: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the upload is empty")]
    Empty,
    #[error("the ZIP archive cannot be read")]
    BadZip,
    #[error("too many files in one upload (limit {0})")]
    TooManyFiles(usize),
    #[error("the unpacked upload is larger than allowed")]
    TooLarge,
}

impl UploadError {
    pub fn code(&self) -> &'static str {
        match self {
            UploadError::Empty => "empty_upload",
            UploadError::BadZip => "bad_zip",
            UploadError::TooManyFiles(_) => "too_many_files",
            UploadError::TooLarge => "upload_too_large",
        }
    }
}

/// Keeps a name printable and short; it is shown back to the uploader only.
pub fn label(name: &str) -> String {
    let cleaned: String = name.chars().filter(|c| !c.is_control()).take(200).collect();
    if cleaned.is_empty() {
        "upload".into()
    } else {
        cleaned
    }
}

pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// Unpacks a ZIP: regular files only; directories skipped; symlinks, absolute or
/// escaping names, oversize and over-compressed entries rejected per entry.
pub fn expand_zip(
    bytes: &Bytes,
    limits: &UploadLimits,
    files: &mut Vec<UploadedFile>,
    rejected: &mut Vec<Rejection>,
) -> Result<(), UploadError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.as_ref()))
        .map_err(|_| UploadError::BadZip)?;
    if files.len() + archive.len() > limits.max_files {
        return Err(UploadError::TooManyFiles(limits.max_files));
    }
    let mut total: u64 = files.iter().map(|f| f.bytes.len() as u64).sum();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|_| UploadError::BadZip)?;
        let name = label(entry.name());
        if entry.is_dir() {
            continue;
        }
        let is_symlink = entry.unix_mode().is_some_and(|m| m & 0o170000 == 0o120000);
        if is_symlink {
            rejected.push(Rejection::new(
                &name,
                "zip_symlink",
                "Symbolic links are not accepted.",
            ));
            continue;
        }
        if entry.enclosed_name().is_none()
            || name.starts_with('/')
            || name.contains('\\') && name.contains("..")
        {
            rejected.push(Rejection::new(
                &name,
                "zip_unsafe_name",
                "The file name points outside the archive.",
            ));
            continue;
        }
        let base = name.rsplit(['/', '\\']).next().unwrap_or("");
        if base.eq_ignore_ascii_case("DICOMDIR") {
            continue;
        }
        let declared = entry.size();
        let compressed = entry.compressed_size().max(1);
        if declared > limits.max_file_bytes {
            rejected.push(Rejection::new(
                &name,
                "file_too_large",
                "The file is larger than allowed.",
            ));
            continue;
        }
        if declared / compressed > limits.max_ratio {
            rejected.push(Rejection::new(
                &name,
                "zip_bomb",
                "The file is compressed suspiciously well and was not unpacked.",
            ));
            continue;
        }
        // Read at most one byte past what the header declares: sizes in ZIP headers
        // can lie, and a lie is a bomb or a broken archive either way.
        let mut buf = Vec::with_capacity(declared.min(limits.max_file_bytes) as usize);
        let read = (&mut entry).take(declared + 1).read_to_end(&mut buf);
        if read.is_err() {
            rejected.push(Rejection::new(
                &name,
                "zip_entry_damaged",
                "The file inside the ZIP is damaged.",
            ));
            continue;
        }
        if buf.len() as u64 > declared {
            rejected.push(Rejection::new(
                &name,
                "zip_bomb",
                "The file is larger than the archive says and was not unpacked.",
            ));
            continue;
        }
        total += buf.len() as u64;
        if total > limits.max_total_bytes {
            return Err(UploadError::TooLarge);
        }
        files.push(UploadedFile {
            name,
            bytes: Bytes::from(buf),
        });
    }
    Ok(())
}

/// One body: a ZIP is unpacked, anything else is taken as a single file.
pub fn expand_body(
    name: &str,
    bytes: Bytes,
    limits: &UploadLimits,
    files: &mut Vec<UploadedFile>,
    rejected: &mut Vec<Rejection>,
) -> Result<(), UploadError> {
    if is_zip(&bytes) {
        expand_zip(&bytes, limits, files, rejected)
    } else if name
        .rsplit(['/', '\\'])
        .next()
        .is_some_and(|b| b.eq_ignore_ascii_case("DICOMDIR"))
    {
        // A DICOMDIR only indexes the media; the images arrive as the other files.
        Ok(())
    } else {
        if files.len() >= limits.max_files {
            return Err(UploadError::TooManyFiles(limits.max_files));
        }
        if bytes.len() as u64 > limits.max_file_bytes {
            return Err(UploadError::TooLarge);
        }
        files.push(UploadedFile {
            name: label(name),
            bytes,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn limits() -> UploadLimits {
        UploadLimits {
            max_files: 10,
            max_file_bytes: 1024 * 1024,
            max_total_bytes: 4 * 1024 * 1024,
            max_ratio: 100,
        }
    }

    fn zip_of(entries: &[(&str, Vec<u8>)]) -> Bytes {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            for (name, data) in entries {
                w.start_file(*name, zip::write::SimpleFileOptions::default())
                    .expect("start");
                w.write_all(data).expect("write");
            }
            w.finish().expect("finish");
        }
        Bytes::from(buf.into_inner())
    }

    #[test]
    fn zip_entries_are_checked() {
        let z = zip_of(&[
            ("a/one.dcm", vec![1u8; 100]),
            ("../../etc/passwd", vec![2u8; 10]),
            ("bomb.dcm", vec![0u8; 900_000]),
            ("DICOMDIR", vec![3u8; 10]),
        ]);
        let (mut files, mut rejected) = (Vec::new(), Vec::new());
        expand_body("x.zip", z, &limits(), &mut files, &mut rejected).expect("expand");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].name, "a/one.dcm");
        let codes: Vec<&str> = rejected.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(codes, vec!["zip_unsafe_name", "zip_bomb"]);
    }

    #[test]
    fn too_many_entries() {
        let entries: Vec<(String, Vec<u8>)> = (0..11)
            .map(|i| (format!("{i}.dcm"), vec![i as u8]))
            .collect();
        let refs: Vec<(&str, Vec<u8>)> = entries
            .iter()
            .map(|(n, d)| (n.as_str(), d.clone()))
            .collect();
        let (mut files, mut rejected) = (Vec::new(), Vec::new());
        let err = expand_body("x.zip", zip_of(&refs), &limits(), &mut files, &mut rejected);
        assert!(matches!(err, Err(UploadError::TooManyFiles(10))));
    }
}
