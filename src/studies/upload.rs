//! Turns an upload body (one DICOM file, a ZIP, or multipart parts) into named files,
//! with limits. ZIP entry names are only ever labels in the report, never paths.

use bytes::Bytes;

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
    #[error("the upload is larger than allowed")]
    TooLarge,
    #[error("the upload was cut off before its end")]
    Interrupted { limit: u64 },
    #[error("the upload could not be buffered")]
    Spool,
    #[error("the files could not be stored")]
    Storage,
}

impl UploadError {
    pub fn code(&self) -> &'static str {
        match self {
            UploadError::Empty => "empty_upload",
            UploadError::BadZip => "bad_zip",
            UploadError::TooManyFiles(_) => "too_many_files",
            UploadError::TooLarge => "upload_too_large",
            UploadError::Interrupted { .. } => "upload_interrupted",
            UploadError::Spool | UploadError::Storage => "storage_error",
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

    type Walked = (Vec<(String, Vec<u8>)>, Vec<Rejection>);

    fn walk(z: Bytes) -> Result<Walked, UploadError> {
        let (mut files, mut rejected) = (Vec::new(), Vec::new());
        crate::studies::upload_stream::walk_zip(std::io::Cursor::new(z), &limits(), |item| {
            match item {
                crate::studies::upload_stream::ZipItem::File(n, b) => files.push((n, b)),
                crate::studies::upload_stream::ZipItem::Refused(r) => rejected.push(r),
            }
            true
        })?;
        Ok((files, rejected))
    }

    #[test]
    fn zip_entries_are_checked() {
        let z = zip_of(&[
            ("a/one.dcm", vec![1u8; 100]),
            ("../../etc/passwd", vec![2u8; 10]),
            ("bomb.dcm", vec![0u8; 900_000]),
            ("DICOMDIR", vec![3u8; 10]),
        ]);
        let (files, rejected) = walk(z).expect("walk");
        assert_eq!(files, vec![("a/one.dcm".to_string(), vec![1u8; 100])]);
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
        let err = walk(zip_of(&refs));
        assert!(matches!(err, Err(UploadError::TooManyFiles(10))));
    }
}
