//! The current image as a JPEG for the patient's own use, with a band along the
//! bottom that says it is not for diagnosis (burnt in, so it survives any copy).

use crate::dicom::render::Rendered;
use font8x8::UnicodeFonts;

pub const MARK_TEXT: &str = "NICHT FÜR DIAGNOSTISCHE ZWECKE · NOT FOR DIAGNOSTIC USE";
const JPEG_QUALITY: u8 = 90;

#[derive(Debug, thiserror::Error)]
#[error("the image cannot be written as JPEG")]
pub struct JpegError;

/// A copy of `image` (gray or RGB) grown by a black band with [`MARK_TEXT`] in white.
pub fn marked(image: &Rendered) -> Rendered {
    let channels = usize::from(image.channels);
    let width = image.width as usize;
    // Glyphs are 8×8; scale them so the text spans most of the width where it can.
    let text_px = MARK_TEXT.chars().count() * 8;
    let scale = (width * 9 / 10 / text_px).clamp(1, 4);
    let band = 8 * scale + 2 * (2 * scale);
    let height = image.height as usize + band;
    let mut pixels = image.pixels.clone();
    pixels.resize(width * height * channels, 0);
    let text_width = text_px * scale;
    let left = width.saturating_sub(text_width) / 2;
    let top = image.height as usize + 2 * scale;
    for (n, c) in MARK_TEXT.chars().enumerate() {
        let glyph = font8x8::BASIC_FONTS
            .get(c)
            .or_else(|| font8x8::LATIN_FONTS.get(c))
            .or_else(|| font8x8::BASIC_FONTS.get('?'))
            .unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let x = left + (n * 8 + col) * scale + dx;
                        let y = top + row * scale + dy;
                        if x < width {
                            let at = (y * width + x) * channels;
                            pixels[at..at + channels].fill(255);
                        }
                    }
                }
            }
        }
    }
    Rendered {
        width: image.width,
        height: height as u32,
        channels: image.channels,
        pixels,
    }
}

pub fn to_jpeg(image: &Rendered) -> Result<Vec<u8>, JpegError> {
    let width = u16::try_from(image.width).map_err(|_| JpegError)?;
    let height = u16::try_from(image.height).map_err(|_| JpegError)?;
    let color = if image.channels == 3 {
        jpeg_encoder::ColorType::Rgb
    } else {
        jpeg_encoder::ColorType::Luma
    };
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, JPEG_QUALITY)
        .encode(&image.pixels, width, height, color)
        .map_err(|_| JpegError)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_band_is_added_below_and_carries_white_text() {
        let image = Rendered {
            width: 600,
            height: 400,
            channels: 1,
            pixels: vec![100; 600 * 400],
        };
        let out = marked(&image);
        assert!(out.height > 400);
        assert_eq!(out.pixels[..600 * 400], image.pixels[..]);
        let band = &out.pixels[600 * 400..];
        assert!(band.contains(&255), "text is drawn");
        assert!(band.contains(&0), "on black");
        let jpeg = to_jpeg(&out).unwrap();
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    }
}
