//! Parse and validate one DICOM Part 10 file and pull out what the index needs.
//! Pixel data is not decoded here.

use super::DicomError;
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, OpenFileOptions};

/// Longest text value kept from a file; longer values are cut.
const MAX_TEXT: usize = 256;
/// Upper bound on one uncompressed frame, to refuse absurd dimensions early.
const MAX_FRAME_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, Clone, Default)]
pub struct ParsedInstance {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_uid: String,
    pub series_uid: String,
    pub transfer_syntax: String,
    pub patient_name: String,
    pub patient_id: String,
    pub patient_birth_date: String,
    pub patient_sex: String,
    pub study_date: String,
    pub study_description: String,
    pub accession: String,
    pub referring_physician: String,
    pub series_number: i64,
    pub series_description: String,
    pub modality: String,
    pub instance_number: i64,
    pub rows: i64,
    pub columns: i64,
    pub frames: i64,
    pub view: ViewMeta,
}

/// What the viewer needs to draw and measure an instance without opening it. No
/// patient data: geometry, the file's window and the cine frame time only.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ViewMeta {
    /// Row and column spacing in mm (PixelSpacing, else ImagerPixelSpacing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_spacing: Option<[f64; 2]>,
    /// The window the images are drawn with unless another is asked for, as (center,
    /// width): the file's first, else for grey images of at most 8 stored bits their
    /// whole range (`render::as_stored_window`); otherwise none (not windowable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<[f64; 2]>,
    /// ImageOrientationPatient: row then column direction cosines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orientation: Option<[f64; 6]>,
    /// ImagePositionPatient, for sorting slices and syncing two series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<[f64; 3]>,
    /// PatientOrientation (e.g. `L`, `F`) for projection images without geometry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_orientation: Option<[String; 2]>,
    /// Milliseconds between frames of a multi-frame loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_time_ms: Option<f64>,
}

fn floats<const N: usize>(obj: &DefaultDicomObject, tag: Tag) -> Option<[f64; N]> {
    let s = text(obj, tag);
    let values: Vec<f64> = s
        .split('\\')
        .map(|v| v.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .ok()?;
    let arr: [f64; N] = values.get(..N)?.try_into().ok()?;
    arr.iter().all(|v| v.is_finite()).then_some(arr)
}

fn view_meta(obj: &DefaultDicomObject) -> ViewMeta {
    let spacing = floats::<2>(obj, tags::PIXEL_SPACING)
        .or_else(|| floats::<2>(obj, tags::IMAGER_PIXEL_SPACING))
        .filter(|s| s.iter().all(|v| *v > 0.0 && *v < 1000.0));
    let window = floats::<1>(obj, tags::WINDOW_CENTER)
        .zip(floats::<1>(obj, tags::WINDOW_WIDTH))
        .map(|(c, w)| [c[0], w[0]])
        // As the renderer: a width under 1 is no window (PS3.3 C.11.2.1.2).
        .filter(|w| w[1] >= 1.0)
        .or_else(|| super::render::as_stored_window(obj).map(|(c, w)| [c, w]));
    let patient_orientation = {
        let s = text(obj, tags::PATIENT_ORIENTATION);
        let parts: Vec<String> = s
            .split('\\')
            .map(|p| {
                p.chars()
                    .filter(|c| "LRAPHFI".contains(*c))
                    .take(3)
                    .collect()
            })
            .collect();
        match parts.as_slice() {
            [a, b] if !a.is_empty() && !b.is_empty() => Some([a.clone(), b.clone()]),
            _ => None,
        }
    };
    let frame_time_ms = floats::<1>(obj, tags::FRAME_TIME)
        .map(|f| f[0])
        .or_else(|| floats::<1>(obj, tags::CINE_RATE).map(|r| 1000.0 / r[0]))
        .or_else(|| floats::<1>(obj, tags::RECOMMENDED_DISPLAY_FRAME_RATE).map(|r| 1000.0 / r[0]))
        .filter(|ms| (1.0..=10_000.0).contains(ms));
    ViewMeta {
        pixel_spacing: spacing,
        window,
        orientation: floats::<6>(obj, tags::IMAGE_ORIENTATION_PATIENT),
        position: floats::<3>(obj, tags::IMAGE_POSITION_PATIENT),
        patient_orientation,
        frame_time_ms,
    }
}

/// The file's bytes with the 128-byte preamble zeroed (a preamble can carry another
/// file format: a polyglot). Files without a preamble get a zeroed one.
pub fn normalize_preamble(bytes: &[u8]) -> Result<Vec<u8>, DicomError> {
    if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        let mut out = bytes.to_vec();
        out[..128].fill(0);
        Ok(out)
    } else if bytes.len() >= 4 && &bytes[..4] == b"DICM" {
        let mut out = vec![0u8; 128];
        out.extend_from_slice(bytes);
        Ok(out)
    } else {
        Err(DicomError::NotDicom)
    }
}

pub(crate) fn open(bytes: &[u8], with_pixels: bool) -> Result<DefaultDicomObject, DicomError> {
    checked(bytes)?;
    parse_checked(bytes, with_pixels)
}

/// For a render: where native little-endian pixel data lies in `bytes` (see
/// [`super::lengths::check`]) and the file parsed up to it; any other file parsed
/// with its pixel data.
pub(crate) fn open_for_render(
    bytes: &[u8],
) -> Result<(DefaultDicomObject, Option<std::ops::Range<usize>>), DicomError> {
    let pixels = checked(bytes)?;
    Ok((parse_checked(bytes, pixels.is_none())?, pixels))
}

/// The length walk every file passes before the parser sees it.
fn checked(bytes: &[u8]) -> Result<Option<std::ops::Range<usize>>, DicomError> {
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        return Err(DicomError::NotDicom);
    }
    super::lengths::check(bytes)
}

fn parse_checked(bytes: &[u8], with_pixels: bool) -> Result<DefaultDicomObject, DicomError> {
    let mut opts = OpenFileOptions::new();
    if !with_pixels {
        opts = opts.read_until(tags::PIXEL_DATA);
    }
    opts.from_reader(&bytes[128..])
        .map_err(|e| DicomError::Malformed(e.to_string()))
}

pub(crate) fn text(obj: &DefaultDicomObject, tag: Tag) -> String {
    let s = obj
        .element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok().map(|s| s.to_string()))
        .unwrap_or_default();
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    let cleaned: String = s
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TEXT)
        .collect();
    cleaned
}

pub(crate) fn int(obj: &DefaultDicomObject, tag: Tag) -> Option<i64> {
    let e = obj.element_opt(tag).ok().flatten()?;
    if let Ok(v) = e.to_int::<i64>() {
        return Some(v);
    }
    e.to_str().ok()?.trim().parse().ok()
}

fn uid(obj: &DefaultDicomObject, tag: Tag, name: &'static str) -> Result<String, DicomError> {
    let v = text(obj, tag);
    let valid =
        !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if valid {
        Ok(v)
    } else {
        Err(DicomError::Missing(name))
    }
}

pub fn parse(bytes: &[u8]) -> Result<ParsedInstance, DicomError> {
    let obj = open(bytes, false)?;
    let meta = obj.meta();
    let transfer_syntax = meta
        .transfer_syntax()
        .trim_end_matches('\0')
        .trim()
        .to_string();
    let rows = int(&obj, tags::ROWS).unwrap_or(0);
    let columns = int(&obj, tags::COLUMNS).unwrap_or(0);
    let frames = int(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    let samples = int(&obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let bits = int(&obj, tags::BITS_ALLOCATED).unwrap_or(8);
    if !(0..=65535).contains(&rows)
        || !(0..=65535).contains(&columns)
        || !(1..=100_000).contains(&frames)
        || !(1..=4).contains(&samples)
        || !(1..=64).contains(&bits)
    {
        return Err(DicomError::TooLarge);
    }
    let frame_bytes = (rows * columns * samples) as u64 * ((bits + 7) / 8) as u64;
    if frame_bytes > MAX_FRAME_BYTES {
        return Err(DicomError::TooLarge);
    }
    Ok(ParsedInstance {
        sop_class_uid: uid(&obj, tags::SOP_CLASS_UID, "SOPClassUID")?,
        sop_instance_uid: uid(&obj, tags::SOP_INSTANCE_UID, "SOPInstanceUID")?,
        study_uid: uid(&obj, tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
        series_uid: uid(&obj, tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
        transfer_syntax,
        patient_name: text(&obj, tags::PATIENT_NAME),
        patient_id: text(&obj, tags::PATIENT_ID),
        patient_birth_date: text(&obj, tags::PATIENT_BIRTH_DATE),
        patient_sex: text(&obj, tags::PATIENT_SEX),
        study_date: text(&obj, tags::STUDY_DATE),
        study_description: text(&obj, tags::STUDY_DESCRIPTION),
        accession: text(&obj, tags::ACCESSION_NUMBER),
        referring_physician: text(&obj, tags::REFERRING_PHYSICIAN_NAME),
        series_number: int(&obj, tags::SERIES_NUMBER).unwrap_or(0),
        series_description: text(&obj, tags::SERIES_DESCRIPTION),
        modality: text(&obj, tags::MODALITY),
        instance_number: int(&obj, tags::INSTANCE_NUMBER).unwrap_or(0),
        rows,
        columns,
        frames,
        view: view_meta(&obj),
    })
}

/// SOP class of Encapsulated PDF Storage: a findings report sent over DICOM.
pub const ENCAPSULATED_PDF: &str = "1.2.840.10008.5.1.4.1.1.104.1";

/// The document inside an Encapsulated PDF instance (the padding byte removed).
pub fn encapsulated_pdf(bytes: &[u8]) -> Option<Vec<u8>> {
    let obj = open(bytes, true).ok()?;
    let doc = obj
        .element(tags::ENCAPSULATED_DOCUMENT)
        .ok()?
        .to_bytes()
        .ok()?
        .into_owned();
    let end = doc.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    Some(doc[..end].to_vec())
}
