//! A decoded copy of a compressed image: its attributes with the pixel data decoded
//! once and stored natively (explicit VR little endian). Kept beside the original, it
//! lets a render with another window or size read the frame where it lies instead of
//! decoding it again: decoding a JPEG-LS or JPEG 2000 slice takes longer than drawing
//! and encoding it. The original stays as received, for download and forwarding.

use super::DicomError;
use super::parse::int;
use super::render::{ForRender, samples};
use dicom_core::header::Header;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;

/// The transfer syntax of every copy: its frames are read in place.
pub const COPY_SYNTAX: &str = uids::EXPLICIT_VR_LITTLE_ENDIAN;

/// Syntaxes that are lossless whatever the sender chose (deflate, RLE, JPEG lossless,
/// JPEG-LS lossless, JPEG 2000 lossless, HTJ2K lossless, JPEG XL lossless): their copy
/// is never bigger than the same file sent uncompressed.
const LOSSLESS: &[&str] = &[
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.110",
];

/// A copy is made in memory: never more pixel data than this.
pub const MAX_COPY_BYTES: usize = 256 << 20;

/// A file of a lossy (or possibly lossy) syntax gets a copy only when its pixel data
/// decodes to at most this many times the file: a lossy loop shrinks 20–50×, and
/// keeping it decoded would multiply what the practice stores.
const MAX_LOSSY_GROWTH: usize = 4;

/// Whether a file of this transfer syntax can need a copy at all: native
/// little-endian frames are read in place already, so their file is not even read.
pub fn may_need_copy(transfer_syntax: &str) -> bool {
    !matches!(
        transfer_syntax,
        uids::IMPLICIT_VR_LITTLE_ENDIAN | uids::EXPLICIT_VR_LITTLE_ENDIAN
    )
}

/// How many bytes of decoded pixel data a copy of this file (`file_len` bytes) may
/// hold, for [`decoded_copy`].
pub fn copy_budget(parsed: &ForRender, file_len: usize) -> usize {
    let ts = parsed.transfer_syntax();
    if LOSSLESS.contains(&ts.as_str()) {
        MAX_COPY_BYTES
    } else {
        file_len
            .saturating_mul(MAX_LOSSY_GROWTH)
            .min(MAX_COPY_BYTES)
    }
}

/// The copy as a DICOM file, or `None` when there is nothing to gain (the frames
/// are read in place already) or its pixel data would exceed `max_pixel_bytes`. An
/// image that cannot be decoded is an error, as for its render.
pub fn decoded_copy(
    parsed: &ForRender,
    max_pixel_bytes: usize,
) -> Result<Option<Vec<u8>>, DicomError> {
    if parsed.reads_in_place() {
        return Ok(None);
    }
    let obj = parsed.object();
    let ts = parsed.transfer_syntax();
    let (w, h, frames) = parsed.geometry()?;
    let spp = int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1).clamp(1, 3) as usize;
    let bits_allocated = int(obj, tags::BITS_ALLOCATED).unwrap_or(16);
    let bytes_per_sample = if bits_allocated > 8 { 2 } else { 1 };
    // Known before decoding anything: a loop too big to keep twice is left as it is.
    let decoded_len = (w * h * spp * bytes_per_sample).saturating_mul(frames);
    if decoded_len > max_pixel_bytes {
        return Ok(None);
    }
    let mut pixels = Vec::with_capacity(decoded_len);
    let mut photometric = None;
    for frame in 0..frames as u32 {
        let s = samples(parsed, &ts, frame, (w, h))?;
        let start = pixels.len();
        pixels.extend_from_slice(&s.bytes);
        if s.big_endian && s.bits_allocated == 16 {
            pixels[start..]
                .chunks_exact_mut(2)
                .for_each(|p| p.swap(0, 1));
        }
        // Every frame of one file decodes to the same interpretation.
        photometric.get_or_insert(s.photometric);
    }
    let photometric = photometric.ok_or(DicomError::Missing("frame"))?;
    // Word-aligned, as the standard wants a value of even length.
    if pixels.len() % 2 == 1 {
        pixels.push(0);
    }
    let mut copy = InMemDicomObject::from_element_iter(
        obj.iter().filter(|e| e.tag() != tags::PIXEL_DATA).cloned(),
    );
    copy.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from(photometric),
    ));
    if spp == 3 {
        // Decoded colour is interleaved: R G B R G B …
        copy.put(DataElement::new(
            tags::PLANAR_CONFIGURATION,
            VR::US,
            PrimitiveValue::from(0u16),
        ));
    }
    let vr = if bytes_per_sample == 2 {
        VR::OW
    } else {
        VR::OB
    };
    copy.put(DataElement::new(
        tags::PIXEL_DATA,
        vr,
        PrimitiveValue::from(pixels),
    ));
    let meta = obj.meta();
    let file = copy
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(COPY_SYNTAX)
                .media_storage_sop_class_uid(
                    meta.media_storage_sop_class_uid().trim_end_matches('\0'),
                )
                .media_storage_sop_instance_uid(
                    meta.media_storage_sop_instance_uid().trim_end_matches('\0'),
                )
                .implementation_class_uid(super::IMPLEMENTATION_CLASS_UID),
        )
        .map_err(|e| DicomError::Malformed(e.to_string()))?;
    let mut out = Vec::with_capacity(decoded_len + 4096);
    file.write_all(&mut out)
        .map_err(|e| DicomError::Malformed(e.to_string()))?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dicom::render::{RenderOptions, parse_for_render, render_parsed};

    /// A 32×32 CT slice of the demo, and the same file RLE-compressed (literal runs
    /// only: the decoder need not care how well it is packed).
    fn native_and_rle() -> (Vec<u8>, Vec<u8>) {
        let mut rng = rand::thread_rng();
        let spec = crate::dicom::synth::StudySpec::demo(&mut rng);
        let native = crate::dicom::synth::ct_slice(&spec, "1.2.3", "1.2.3.4", 0, 1, 32);
        let obj = dicom_object::from_reader(&native[128..]).expect("parse");
        let words = obj
            .element(tags::PIXEL_DATA)
            .expect("pixels")
            .to_bytes()
            .expect("bytes")
            .to_vec();
        // One segment per byte of a sample, most significant first.
        let segments: Vec<Vec<u8>> = [1, 0]
            .iter()
            .map(|&b| {
                let plane: Vec<u8> = words.chunks_exact(2).map(|w| w[b]).collect();
                plane
                    .chunks(128)
                    .flat_map(|run| std::iter::once(run.len() as u8 - 1).chain(run.iter().copied()))
                    .collect()
            })
            .collect();
        let mut fragment = vec![0u8; 64];
        fragment[..4].copy_from_slice(&2u32.to_le_bytes());
        let mut offset = 64u32;
        for (i, segment) in segments.iter().enumerate() {
            fragment[4 + 4 * i..8 + 4 * i].copy_from_slice(&offset.to_le_bytes());
            offset += segment.len() as u32;
        }
        segments.iter().for_each(|s| fragment.extend_from_slice(s));
        if fragment.len() % 2 == 1 {
            fragment.push(0);
        }
        let mut dataset = obj.into_inner();
        dataset.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            dicom_core::value::PixelFragmentSequence::new(vec![], vec![fragment]),
        ));
        let file = dataset
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(uids::RLE_LOSSLESS)
                    .media_storage_sop_class_uid(uids::CT_IMAGE_STORAGE)
                    .media_storage_sop_instance_uid("1.2.3.4"),
            )
            .expect("meta");
        let mut rle = Vec::new();
        file.write_all(&mut rle).expect("write");
        (native, rle)
    }

    #[test]
    fn a_native_file_needs_no_copy() {
        let (native, _) = native_and_rle();
        let parsed = parse_for_render(native).expect("parse");
        assert_eq!(decoded_copy(&parsed, usize::MAX).expect("copy"), None);
        assert!(!may_need_copy(uids::EXPLICIT_VR_LITTLE_ENDIAN));
        assert!(!may_need_copy(uids::IMPLICIT_VR_LITTLE_ENDIAN));
        assert!(may_need_copy(uids::RLE_LOSSLESS));
        assert!(may_need_copy(uids::JPEGLS_LOSSLESS));
    }

    #[test]
    fn a_compressed_file_copies_to_the_same_picture_read_in_place() {
        let (native, rle) = native_and_rle();
        let original = parse_for_render(rle.clone()).expect("parse");
        assert!(!original.reads_in_place());
        // Too big for the budget: no copy. RLE is lossless: any size up to the cap.
        assert_eq!(decoded_copy(&original, 1000).expect("copy"), None);
        assert_eq!(copy_budget(&original, 1000), MAX_COPY_BYTES);
        let copy = decoded_copy(&original, usize::MAX)
            .expect("copy")
            .expect("a copy");
        let copied = parse_for_render(copy).expect("parse copy");
        assert!(copied.reads_in_place());
        for options in [
            RenderOptions::default(),
            RenderOptions {
                window: Some((-600.0, 1500.0)),
                viewport: Some((100, 100)),
            },
        ] {
            let a = render_parsed(&original, 0, options).expect("render original");
            let b = render_parsed(&copied, 0, options).expect("render copy");
            assert_eq!((a.width, a.height), (b.width, b.height));
            assert!(a.pixels == b.pixels, "the copy draws another picture");
            let from_native = parse_for_render(native.clone()).expect("parse native");
            let c = render_parsed(&from_native, 0, options).expect("render native");
            assert!(a.pixels == c.pixels, "the RLE file was not decoded");
        }
    }
}
