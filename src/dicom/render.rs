//! Renders one frame of an uncompressed image to 8-bit pixels: modality LUT
//! (rescale), VOI window (from the file, or the frame's range), MONOCHROME1
//! inverted, RGB in either planar configuration. Compressed transfer syntaxes
//! answer [`DicomError::Unsupported`].

use super::DicomError;
use super::parse::{int, open, text};
use dicom_dictionary_std::tags;

const NATIVE_SYNTAXES: &[&str] = &[
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub width: u32,
    pub height: u32,
    /// 1 (gray) or 3 (RGB) bytes per pixel.
    pub channels: u8,
    pub pixels: Vec<u8>,
}

impl Rendered {
    pub fn to_png(&self) -> Result<Vec<u8>, DicomError> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.width, self.height);
            enc.set_color(if self.channels == 3 {
                png::ColorType::Rgb
            } else {
                png::ColorType::Grayscale
            });
            enc.set_depth(png::BitDepth::Eight);
            enc.set_compression(png::Compression::Fast);
            let mut w = enc
                .write_header()
                .map_err(|e| DicomError::Unsupported(e.to_string()))?;
            w.write_image_data(&self.pixels)
                .map_err(|e| DicomError::Unsupported(e.to_string()))?;
        }
        Ok(out)
    }
}

fn float(obj: &dicom_object::DefaultDicomObject, tag: dicom_core::Tag) -> Option<f64> {
    let s = text(obj, tag);
    s.split('\\').next()?.trim().parse().ok()
}

/// `frame` is zero-based.
pub fn render_frame(bytes: &[u8], frame: u32) -> Result<Rendered, DicomError> {
    let obj = open(bytes, true)?;
    let ts = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .trim()
        .to_string();
    if !NATIVE_SYNTAXES.contains(&ts.as_str()) {
        return Err(DicomError::Unsupported(format!("transfer syntax {ts}")));
    }
    let big_endian = ts == "1.2.840.10008.1.2.2";
    let rows = int(&obj, tags::ROWS).ok_or(DicomError::Missing("Rows"))?;
    let cols = int(&obj, tags::COLUMNS).ok_or(DicomError::Missing("Columns"))?;
    let spp = int(&obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let bits_alloc = int(&obj, tags::BITS_ALLOCATED).ok_or(DicomError::Missing("BitsAllocated"))?;
    let bits_stored = int(&obj, tags::BITS_STORED).unwrap_or(bits_alloc);
    let signed = int(&obj, tags::PIXEL_REPRESENTATION).unwrap_or(0) == 1;
    let frames = int(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    let planar = int(&obj, tags::PLANAR_CONFIGURATION).unwrap_or(0);
    let photometric = text(&obj, tags::PHOTOMETRIC_INTERPRETATION).to_uppercase();
    if !(1..=65535).contains(&rows) || !(1..=65535).contains(&cols) {
        return Err(DicomError::TooLarge);
    }
    if i64::from(frame) >= frames {
        return Err(DicomError::Missing("frame"));
    }
    if !(bits_alloc == 8 || bits_alloc == 16) || !(1..=bits_alloc).contains(&bits_stored) {
        return Err(DicomError::Unsupported(format!("{bits_alloc}-bit pixels")));
    }
    let data = obj
        .element(tags::PIXEL_DATA)
        .map_err(|_| DicomError::Missing("PixelData"))?
        .to_bytes()
        .map_err(|_| DicomError::Unsupported("encapsulated pixel data".into()))?;
    let (w, h) = (cols as usize, rows as usize);
    let bpp = (bits_alloc / 8) as usize;
    let frame_len = w * h * spp as usize * bpp;
    let start = frame as usize * frame_len;
    let frame_bytes = data
        .get(start..start + frame_len)
        .ok_or_else(|| DicomError::Malformed("pixel data shorter than its dimensions".into()))?;

    match (photometric.as_str(), spp) {
        ("MONOCHROME1" | "MONOCHROME2", 1) => {
            let stored = read_samples(frame_bytes, bpp, bits_stored as u32, signed, big_endian);
            let slope = float(&obj, tags::RESCALE_SLOPE).unwrap_or(1.0);
            let intercept = float(&obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0);
            let values: Vec<f64> = stored
                .iter()
                .map(|v| *v as f64 * slope + intercept)
                .collect();
            let window = match (
                float(&obj, tags::WINDOW_CENTER),
                float(&obj, tags::WINDOW_WIDTH),
            ) {
                (Some(c), Some(w)) if w >= 1.0 => (c, w),
                _ => auto_window(&values),
            };
            let invert = photometric == "MONOCHROME1";
            let pixels = values
                .iter()
                .map(|v| {
                    let g = voi_linear(*v, window.0, window.1);
                    if invert { 255 - g } else { g }
                })
                .collect();
            Ok(Rendered {
                width: w as u32,
                height: h as u32,
                channels: 1,
                pixels,
            })
        }
        ("RGB", 3) if bpp == 1 => {
            let n = w * h;
            let pixels = if planar == 1 {
                let mut out = Vec::with_capacity(n * 3);
                for i in 0..n {
                    out.extend_from_slice(&[
                        frame_bytes[i],
                        frame_bytes[n + i],
                        frame_bytes[2 * n + i],
                    ]);
                }
                out
            } else {
                frame_bytes.to_vec()
            };
            Ok(Rendered {
                width: w as u32,
                height: h as u32,
                channels: 3,
                pixels,
            })
        }
        (other, _) => Err(DicomError::Unsupported(format!(
            "photometric interpretation {other}"
        ))),
    }
}

fn read_samples(
    bytes: &[u8],
    bpp: usize,
    bits_stored: u32,
    signed: bool,
    big_endian: bool,
) -> Vec<i64> {
    let mask: u32 = if bits_stored >= 32 {
        u32::MAX
    } else {
        (1u32 << bits_stored) - 1
    };
    bytes
        .chunks_exact(bpp)
        .map(|c| {
            let raw: u32 = match (bpp, big_endian) {
                (1, _) => u32::from(c[0]),
                (_, false) => u32::from(u16::from_le_bytes([c[0], c[1]])),
                (_, true) => u32::from(u16::from_be_bytes([c[0], c[1]])),
            } & mask;
            if signed && bits_stored > 0 && raw & (1 << (bits_stored - 1)) != 0 {
                i64::from(raw) - (1i64 << bits_stored)
            } else {
                i64::from(raw)
            }
        })
        .collect()
}

/// DICOM PS3.3 C.11.2.1.2 linear VOI function, to 0..=255.
pub fn voi_linear(x: f64, center: f64, width: f64) -> u8 {
    let lo = center - 0.5 - (width - 1.0) / 2.0;
    let hi = center - 0.5 + (width - 1.0) / 2.0;
    if x <= lo {
        0
    } else if x > hi {
        255
    } else {
        (((x - (center - 0.5)) / (width - 1.0) + 0.5) * 255.0)
            .round()
            .clamp(0.0, 255.0) as u8
    }
}

/// A window over the 1st–99th percentile, so a few extreme pixels (metal, air
/// outside the patient) do not wash out the image.
fn auto_window(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 1.0);
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let lo = sorted[sorted.len() / 100];
    let hi = sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)];
    let width = (hi - lo).max(1.0) + 1.0;
    (lo + (hi - lo) / 2.0 + 0.5, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voi_matches_the_standard() {
        assert_eq!(voi_linear(-1000.0, 40.0, 400.0), 0);
        assert_eq!(voi_linear(1000.0, 40.0, 400.0), 255);
        let mid = voi_linear(40.0, 40.0, 400.0);
        assert!((126..=129).contains(&mid), "{mid}");
    }

    #[test]
    fn signed_samples() {
        let bytes = [0xff, 0x0f, 0x00, 0x08];
        // 12 bits stored, signed: 0x0fff = -1, 0x0800 = -2048.
        assert_eq!(read_samples(&bytes, 2, 12, true, false), vec![-1, -2048]);
        assert_eq!(read_samples(&bytes, 2, 12, false, false), vec![4095, 2048]);
    }
}
