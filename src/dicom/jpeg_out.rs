//! JPEG output of a rendered frame. Builds with the `libjpeg-turbo` feature encode
//! with libjpeg-turbo (SIMD, about three times faster per CT slice); the default
//! build uses a pure-Rust encoder, so the product builds with the Rust toolchain
//! alone. Both write baseline JFIF with the standard tables, grey as one component,
//! colour as YCbCr 4:2:0 below quality 90 and 4:4:4 from 90 on.

use super::DicomError;

/// Encodes 8-bit grey (`channels` 1) or interleaved RGB (`channels` 3) pixels.
pub fn encode(
    pixels: &[u8],
    width: u32,
    height: u32,
    channels: u8,
    quality: u8,
) -> Result<Vec<u8>, DicomError> {
    let too_big = || DicomError::Unsupported("image too large for JPEG".into());
    // Both encoders (and the format) stop at 65 535 pixels a side.
    let (w, h) = (
        u16::try_from(width).map_err(|_| too_big())?,
        u16::try_from(height).map_err(|_| too_big())?,
    );
    let expected = usize::from(w) * usize::from(h) * usize::from(channels);
    if !matches!(channels, 1 | 3) || pixels.len() != expected {
        return Err(DicomError::Malformed(
            "rendered pixels do not match their size".into(),
        ));
    }
    encode_checked(pixels, w, h, channels, quality.clamp(1, 100))
}

#[cfg(not(feature = "libjpeg-turbo"))]
fn encode_checked(
    pixels: &[u8],
    width: u16,
    height: u16,
    channels: u8,
    quality: u8,
) -> Result<Vec<u8>, DicomError> {
    let color = if channels == 3 {
        jpeg_encoder::ColorType::Rgb
    } else {
        jpeg_encoder::ColorType::Luma
    };
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, quality)
        .encode(pixels, width, height, color)
        .map_err(|e| DicomError::Unsupported(e.to_string()))?;
    Ok(out)
}

#[cfg(feature = "libjpeg-turbo")]
fn encode_checked(
    pixels: &[u8],
    width: u16,
    height: u16,
    channels: u8,
    quality: u8,
) -> Result<Vec<u8>, DicomError> {
    use turbojpeg::{Compressor, Image, PixelFormat, Subsamp};
    thread_local! {
        // A compressor per thread: set up once, reused by every render on it.
        static COMPRESSOR: std::cell::RefCell<Option<Compressor>> =
            const { std::cell::RefCell::new(None) };
    }
    let failed = |e: turbojpeg::Error| DicomError::Unsupported(format!("JPEG encoding: {e}"));
    let (format, subsamp) = match (channels, quality) {
        (3, q) if q < 90 => (PixelFormat::RGB, Subsamp::Sub2x2),
        (3, _) => (PixelFormat::RGB, Subsamp::None),
        _ => (PixelFormat::GRAY, Subsamp::Gray),
    };
    let image = Image {
        pixels,
        width: usize::from(width),
        pitch: usize::from(width) * usize::from(channels),
        height: usize::from(height),
        format,
    };
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(Compressor::new().map_err(failed)?),
        };
        compressor.set_quality(i32::from(quality)).map_err(failed)?;
        compressor.set_subsamp(subsamp).map_err(failed)?;
        compressor.compress_to_vec(image).map_err(failed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(jpeg: &[u8]) -> (Vec<u8>, jpeg_decoder::ImageInfo) {
        let mut d = jpeg_decoder::Decoder::new(jpeg);
        let pixels = d.decode().expect("a JPEG any decoder reads");
        (pixels, d.info().unwrap())
    }

    fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        let sum: u64 = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u64).sum();
        sum as f64 / a.len() as f64
    }

    #[test]
    fn grey_round_trips_within_the_quality() {
        // A ramp with a bright disc: edges and smooth areas, like a slice.
        let (w, h) = (301u32, 203u32);
        let pixels: Vec<u8> = (0..h)
            .flat_map(|y| {
                (0..w).map(move |x| {
                    let (dx, dy) = (x as i64 - 150, y as i64 - 100);
                    if dx * dx + dy * dy < 60 * 60 {
                        230
                    } else {
                        ((x + y) / 2) as u8
                    }
                })
            })
            .collect();
        let jpeg = encode(&pixels, w, h, 1, 85).unwrap();
        let (back, info) = decode(&jpeg);
        assert_eq!((info.width, info.height), (301, 203));
        assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::L8);
        let diff = mean_abs_diff(&pixels, &back);
        assert!(diff < 1.5, "mean difference {diff}");
    }

    #[test]
    fn colour_round_trips_at_both_subsamplings() {
        let (w, h) = (64u32, 48u32);
        let pixels: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                [(x * 4) as u8, (y * 5) as u8, 128]
            })
            .collect();
        for quality in [75, 95] {
            let jpeg = encode(&pixels, w, h, 3, quality).unwrap();
            let (back, info) = decode(&jpeg);
            assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
            let diff = mean_abs_diff(&pixels, &back);
            assert!(diff < 3.0, "quality {quality}: mean difference {diff}");
        }
    }

    #[test]
    fn sizes_that_do_not_fit_are_refused() {
        assert!(matches!(
            encode(&[0; 10], 70_000, 1, 1, 85),
            Err(DicomError::Unsupported(_))
        ));
        assert!(matches!(
            encode(&[0; 10], 4, 4, 1, 85),
            Err(DicomError::Malformed(_))
        ));
        assert!(matches!(
            encode(&[0; 32], 4, 4, 2, 85),
            Err(DicomError::Malformed(_))
        ));
    }
}
