//! Synthetic DICOM made here (no third-party image files): a CT-like phantom series
//! and an RGB secondary capture. Used by the demo, tests and benchmarks.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;
use rand::{CryptoRng, RngCore};

/// A fresh UID under the UUID-derived root 2.25 (PS3.5 B.2).
pub fn new_uid<R: RngCore + CryptoRng>(rng: &mut R) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    format!("2.25.{}", u128::from_be_bytes(b))
}

#[derive(Debug, Clone)]
pub struct StudySpec {
    pub patient_name: String,
    pub patient_id: String,
    pub birth_date: String,
    pub sex: String,
    pub study_uid: String,
    pub study_date: String,
    pub description: String,
    pub accession: String,
    pub referring_physician: String,
}

impl StudySpec {
    pub fn demo<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        StudySpec {
            patient_name: "Müller^Jürgen".into(),
            patient_id: "LK-DEMO-0001".into(),
            birth_date: "19630514".into(),
            sex: "M".into(),
            study_uid: new_uid(rng),
            study_date: "20261120".into(),
            description: "CT Thorax (Demo)".into(),
            accession: "A-2026-0001".into(),
            referring_physician: "Weiß^Grete^^Dr. med.".into(),
        }
    }
}

fn put_str(obj: &mut InMemDicomObject, tag: dicom_core::Tag, vr: VR, v: &str) {
    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
}

fn base_object(
    spec: &StudySpec,
    sop_class: &str,
    sop_uid: &str,
    series_uid: &str,
    modality: &str,
) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    put_str(&mut obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put_str(&mut obj, tags::SOP_CLASS_UID, VR::UI, sop_class);
    put_str(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, sop_uid);
    put_str(&mut obj, tags::STUDY_DATE, VR::DA, &spec.study_date);
    put_str(&mut obj, tags::ACCESSION_NUMBER, VR::SH, &spec.accession);
    put_str(&mut obj, tags::MODALITY, VR::CS, modality);
    put_str(
        &mut obj,
        tags::REFERRING_PHYSICIAN_NAME,
        VR::PN,
        &spec.referring_physician,
    );
    put_str(&mut obj, tags::STUDY_DESCRIPTION, VR::LO, &spec.description);
    put_str(&mut obj, tags::PATIENT_NAME, VR::PN, &spec.patient_name);
    put_str(&mut obj, tags::PATIENT_ID, VR::LO, &spec.patient_id);
    put_str(&mut obj, tags::PATIENT_BIRTH_DATE, VR::DA, &spec.birth_date);
    put_str(&mut obj, tags::PATIENT_SEX, VR::CS, &spec.sex);
    put_str(&mut obj, tags::STUDY_INSTANCE_UID, VR::UI, &spec.study_uid);
    put_str(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, series_uid);
    put_str(&mut obj, tags::STUDY_ID, VR::SH, "1");
    obj
}

fn finish(obj: InMemDicomObject, sop_class: &str, sop_uid: &str) -> Vec<u8> {
    let file = obj.with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
            .media_storage_sop_class_uid(sop_class)
            .media_storage_sop_instance_uid(sop_uid),
    );
    let mut out = Vec::new();
    // Writing a well-formed in-memory object to a Vec does not fail; an empty
    // result is caught by every caller's parse.
    if let Ok(file) = file {
        let _ = file.write_all(&mut out);
    }
    out
}

/// Hounsfield units of the phantom at (x, y) of slice `z` (all in 0..1).
fn phantom_hu(x: f64, y: f64, z: f64) -> f64 {
    let (cx, cy) = (x - 0.5, y - 0.5);
    let body = (cx / 0.42).powi(2) + (cy / 0.32).powi(2);
    if body > 1.0 {
        return -1000.0;
    }
    let lung_r = 0.13 + 0.04 * (z * std::f64::consts::PI).sin();
    for lx in [-0.17, 0.17] {
        if ((cx - lx) / lung_r).powi(2) + (cy / (lung_r * 1.5)).powi(2) < 1.0 {
            return -820.0 + 30.0 * ((x * 91.0).sin() * (y * 77.0).cos());
        }
    }
    if cx.powi(2) + (cy - 0.2).powi(2) < 0.05f64.powi(2) {
        return 900.0;
    }
    if body > 0.85 {
        return -90.0;
    }
    40.0 + 12.0 * ((x * 53.0).sin() + (y * 61.0).cos())
}

/// One CT slice: 16-bit unsigned, rescale intercept −1024, soft-tissue window.
pub fn ct_slice(
    spec: &StudySpec,
    series_uid: &str,
    sop_uid: &str,
    index: usize,
    total: usize,
    size: u16,
) -> Vec<u8> {
    let sop_class = uids::CT_IMAGE_STORAGE;
    let mut obj = base_object(spec, sop_class, sop_uid, series_uid, "CT");
    put_str(
        &mut obj,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        "Thorax axial 5 mm",
    );
    obj.put(DataElement::new(
        tags::SERIES_NUMBER,
        VR::IS,
        PrimitiveValue::from("2"),
    ));
    obj.put(DataElement::new(
        tags::INSTANCE_NUMBER,
        VR::IS,
        PrimitiveValue::from((index + 1).to_string()),
    ));
    put_str(
        &mut obj,
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        &format!("-160\\-160\\{}", index as f64 * -5.0),
    );
    put_str(
        &mut obj,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        "1\\0\\0\\0\\1\\0",
    );
    put_str(&mut obj, tags::SLICE_THICKNESS, VR::DS, "5");
    put_str(
        &mut obj,
        tags::PIXEL_SPACING,
        VR::DS,
        &format!(
            "{:.4}\\{:.4}",
            320.0 / f64::from(size),
            320.0 / f64::from(size)
        ),
    );
    obj.put(DataElement::new(
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(1u16),
    ));
    put_str(
        &mut obj,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    obj.put(DataElement::new(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(size),
    ));
    obj.put(DataElement::new(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(size),
    ));
    obj.put(DataElement::new(
        tags::BITS_ALLOCATED,
        VR::US,
        PrimitiveValue::from(16u16),
    ));
    obj.put(DataElement::new(
        tags::BITS_STORED,
        VR::US,
        PrimitiveValue::from(12u16),
    ));
    obj.put(DataElement::new(
        tags::HIGH_BIT,
        VR::US,
        PrimitiveValue::from(11u16),
    ));
    obj.put(DataElement::new(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0u16),
    ));
    put_str(&mut obj, tags::WINDOW_CENTER, VR::DS, "40");
    put_str(&mut obj, tags::WINDOW_WIDTH, VR::DS, "400");
    put_str(&mut obj, tags::RESCALE_INTERCEPT, VR::DS, "-1024");
    put_str(&mut obj, tags::RESCALE_SLOPE, VR::DS, "1");
    let n = usize::from(size);
    let z = if total > 1 {
        index as f64 / (total - 1) as f64
    } else {
        0.5
    };
    let mut pixels = Vec::with_capacity(n * n);
    for row in 0..n {
        for col in 0..n {
            let hu = phantom_hu(col as f64 / n as f64, row as f64 / n as f64, z);
            pixels.push((hu + 1024.0).clamp(0.0, 4095.0) as u16);
        }
    }
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(pixels.into()),
    ));
    finish(obj, sop_class, sop_uid)
}

/// An RGB secondary capture (e.g. a key image or a photo of a finding).
pub fn rgb_capture(spec: &StudySpec, series_uid: &str, sop_uid: &str, size: u16) -> Vec<u8> {
    let sop_class = uids::SECONDARY_CAPTURE_IMAGE_STORAGE;
    let mut obj = base_object(spec, sop_class, sop_uid, series_uid, "OT");
    put_str(&mut obj, tags::SERIES_DESCRIPTION, VR::LO, "Key images");
    obj.put(DataElement::new(
        tags::SERIES_NUMBER,
        VR::IS,
        PrimitiveValue::from("90"),
    ));
    obj.put(DataElement::new(
        tags::INSTANCE_NUMBER,
        VR::IS,
        PrimitiveValue::from("1"),
    ));
    obj.put(DataElement::new(
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(3u16),
    ));
    put_str(&mut obj, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB");
    obj.put(DataElement::new(
        tags::PLANAR_CONFIGURATION,
        VR::US,
        PrimitiveValue::from(0u16),
    ));
    obj.put(DataElement::new(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(size),
    ));
    obj.put(DataElement::new(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(size),
    ));
    obj.put(DataElement::new(
        tags::BITS_ALLOCATED,
        VR::US,
        PrimitiveValue::from(8u16),
    ));
    obj.put(DataElement::new(
        tags::BITS_STORED,
        VR::US,
        PrimitiveValue::from(8u16),
    ));
    obj.put(DataElement::new(
        tags::HIGH_BIT,
        VR::US,
        PrimitiveValue::from(7u16),
    ));
    obj.put(DataElement::new(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0u16),
    ));
    let n = usize::from(size);
    let mut pixels = Vec::with_capacity(n * n * 3);
    for row in 0..n {
        for col in 0..n {
            pixels.extend_from_slice(&[(col * 255 / n) as u8, (row * 255 / n) as u8, 160]);
        }
    }
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::U8(pixels.into()),
    ));
    finish(obj, sop_class, sop_uid)
}

/// An ultrasound loop: a multi-frame 8-bit image whose bright blob moves from frame
/// to frame (so a viewer's cine visibly advances), 50 ms per frame.
pub fn us_loop(
    spec: &StudySpec,
    series_uid: &str,
    sop_uid: &str,
    frames: u16,
    size: u16,
) -> Vec<u8> {
    let sop_class = uids::ULTRASOUND_MULTI_FRAME_IMAGE_STORAGE;
    let mut obj = base_object(spec, sop_class, sop_uid, series_uid, "US");
    put_str(&mut obj, tags::SERIES_DESCRIPTION, VR::LO, "Herz Cine");
    for (tag, value) in [
        (tags::SERIES_NUMBER, "3"),
        (tags::INSTANCE_NUMBER, "1"),
        (tags::NUMBER_OF_FRAMES, &frames.to_string()),
        (tags::FRAME_TIME, "50"),
    ] {
        let vr = if tag == tags::FRAME_TIME {
            VR::DS
        } else {
            VR::IS
        };
        put_str(&mut obj, tag, vr, value);
    }
    put_str(
        &mut obj,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    for (tag, value) in [
        (tags::SAMPLES_PER_PIXEL, 1u16),
        (tags::ROWS, size),
        (tags::COLUMNS, size),
        (tags::BITS_ALLOCATED, 8),
        (tags::BITS_STORED, 8),
        (tags::HIGH_BIT, 7),
        (tags::PIXEL_REPRESENTATION, 0),
    ] {
        obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
    }
    let n = usize::from(size);
    let mut pixels = Vec::with_capacity(n * n * usize::from(frames));
    for f in 0..usize::from(frames) {
        let angle = f as f64 / f64::from(frames) * std::f64::consts::TAU;
        let (cx, cy) = (0.5 + 0.25 * angle.cos(), 0.5 + 0.25 * angle.sin());
        for row in 0..n {
            for col in 0..n {
                let (x, y) = (col as f64 / n as f64, row as f64 / n as f64);
                let d = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt();
                let speckle = ((row * 31 + col * 17 + f * 7) % 23) as f64;
                let v = if d < 0.12 {
                    230.0
                } else {
                    40.0 + speckle * 2.0
                };
                pixels.push(v as u8);
            }
        }
    }
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::U8(pixels.into()),
    ));
    finish(obj, sop_class, sop_uid)
}

/// A findings report wrapped as an Encapsulated PDF instance of the study, as a
/// PACS or RIS sends it over DICOM.
pub fn encapsulated_pdf(spec: &StudySpec, series_uid: &str, sop_uid: &str, pdf: &[u8]) -> Vec<u8> {
    let sop_class = crate::dicom::parse::ENCAPSULATED_PDF;
    let mut obj = base_object(spec, sop_class, sop_uid, series_uid, "DOC");
    put_str(&mut obj, tags::SERIES_DESCRIPTION, VR::LO, "Befund");
    put_str(
        &mut obj,
        tags::MIME_TYPE_OF_ENCAPSULATED_DOCUMENT,
        VR::LO,
        "application/pdf",
    );
    put_str(&mut obj, tags::DOCUMENT_TITLE, VR::ST, "Befund");
    let mut doc = pdf.to_vec();
    if doc.len() % 2 == 1 {
        doc.push(0);
    }
    obj.put(DataElement::new(
        tags::ENCAPSULATED_DOCUMENT,
        VR::OB,
        PrimitiveValue::U8(doc.into()),
    ));
    finish(obj, sop_class, sop_uid)
}

/// The demo study: a CT series of `slices` slices and one RGB key image.
pub fn demo_study<R: RngCore + CryptoRng>(
    rng: &mut R,
    spec: &StudySpec,
    slices: usize,
    size: u16,
) -> Vec<Vec<u8>> {
    let ct_series = new_uid(rng);
    let mut files: Vec<Vec<u8>> = (0..slices)
        .map(|i| {
            let sop = new_uid(rng);
            ct_slice(spec, &ct_series, &sop, i, slices, size)
        })
        .collect();
    let sc_series = new_uid(rng);
    let sop = new_uid(rng);
    files.push(rgb_capture(spec, &sc_series, &sop, size));
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dicom::{parse, render};

    #[test]
    fn synthetic_files_parse_and_render() {
        let mut rng = rand::thread_rng();
        let spec = StudySpec::demo(&mut rng);
        let files = demo_study(&mut rng, &spec, 3, 64);
        assert_eq!(files.len(), 4);
        let p = parse::parse(&files[0]).expect("parse");
        assert_eq!(p.patient_name, "Müller^Jürgen");
        assert_eq!(p.study_uid, spec.study_uid);
        assert_eq!((p.rows, p.columns, p.frames), (64, 64, 1));
        let img = render::render_frame(&files[0], 0).expect("render");
        assert_eq!((img.width, img.height, img.channels), (64, 64, 1));
        // Air outside the body is black, soft tissue mid-gray under the 40/400 window.
        assert_eq!(img.pixels[0], 0);
        let centre = img.pixels[26 * 64 + 32];
        assert!((100..200).contains(&centre), "soft tissue {centre}");
        let rgb = render::render_frame(&files[3], 0).expect("render rgb");
        assert_eq!(rgb.channels, 3);
        assert_eq!(&rgb.pixels[..3], &[0, 0, 160]);
        assert!(rgb.to_png().expect("png").starts_with(b"\x89PNG"));
    }

    #[test]
    fn non_dicom_and_truncated_are_refused() {
        assert!(parse::parse(b"hello world").is_err());
        let mut rng = rand::thread_rng();
        let spec = StudySpec::demo(&mut rng);
        let f = ct_slice(&spec, "1.2.3", "1.2.3.4", 0, 1, 32);
        assert!(parse::parse(&f[..200]).is_err());
        assert!(render::render_frame(&f[..f.len() - 100], 0).is_err());
    }
}
