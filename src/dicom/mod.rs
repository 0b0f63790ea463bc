//! DICOM: parse, validate, extract metadata, render frames, synthesise demo data.
//! Bytes in, values out: no IO, so everything here can be fuzzed.

pub mod decoded_copy;
mod jpeg12;
mod jpeg_out;
mod jpegxl;
mod lengths;
pub mod parse;
pub mod render;
pub mod synth;

/// Names Lichtkasten as the writer of DICOM files it makes (DICOMDIR): a fixed UID
/// under the UUID-derived root 2.25.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.205485939062914366417398204467316541873";

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DicomError {
    #[error("not a DICOM file")]
    NotDicom,
    #[error("damaged DICOM file: {0}")]
    Malformed(String),
    #[error("required attribute missing: {0}")]
    Missing(&'static str),
    #[error("image dimensions out of range")]
    TooLarge,
    #[error("cannot render this image yet: {0}")]
    Unsupported(String),
}

impl DicomError {
    /// Stable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            DicomError::NotDicom => "not_dicom",
            DicomError::Malformed(_) => "malformed_dicom",
            DicomError::Missing(_) => "missing_attribute",
            DicomError::TooLarge => "image_too_large",
            DicomError::Unsupported(_) => "unsupported_image",
        }
    }

    /// A plain-words reason that never echoes file content.
    pub fn public_message(&self) -> String {
        match self {
            DicomError::NotDicom => "The file is not a DICOM file.".into(),
            DicomError::Malformed(_) => "The DICOM file is damaged or incomplete.".into(),
            DicomError::Missing(what) => {
                format!("The DICOM file lacks the required attribute {what}.")
            }
            DicomError::TooLarge => "The image dimensions are out of range.".into(),
            DicomError::Unsupported(_) => "This image type cannot be displayed yet.".into(),
        }
    }
}

/// "Family^Given^Middle^Prefix^Suffix" → "Given Middle Family" for display.
pub fn display_person_name(pn: &str) -> String {
    let first = pn.split('=').next().unwrap_or("");
    let parts: Vec<&str> = first.split('^').map(str::trim).collect();
    let family = parts.first().copied().unwrap_or("");
    let given: Vec<&str> = parts
        .iter()
        .skip(1)
        .take(2)
        .copied()
        .filter(|s| !s.is_empty())
        .collect();
    let mut out = String::new();
    if let Some(prefix) = parts.get(3).filter(|s| !s.is_empty()) {
        out.push_str(prefix);
        out.push(' ');
    }
    if !given.is_empty() {
        out.push_str(&given.join(" "));
        out.push(' ');
    }
    out.push_str(family);
    out.trim().to_string()
}

/// DICOM DA "YYYYMMDD" → "YYYY-MM-DD"; anything else passes through trimmed.
pub fn display_date(da: &str) -> String {
    let d = da.trim();
    if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..])
    } else {
        d.to_string()
    }
}

/// DICOM DA "YYYYMMDD" → "DD.MM.YYYY", as German letters and pages write dates.
pub fn display_date_de(da: &str) -> String {
    let d = da.trim();
    if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}.{}.{}", &d[6..], &d[4..6], &d[..4])
    } else {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates() {
        assert_eq!(display_person_name("Müller^Jürgen"), "Jürgen Müller");
        assert_eq!(display_person_name("Doe^John^Q^Dr."), "Dr. John Q Doe");
        assert_eq!(display_person_name("Solo"), "Solo");
        assert_eq!(display_date("20260131"), "2026-01-31");
        assert_eq!(display_date("bad"), "bad");
        assert_eq!(display_date_de("20260131"), "31.01.2026");
    }
}
