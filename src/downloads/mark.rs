//! The current image as a JPEG for the patient's own use, with a band along the
//! bottom that says it is not for diagnosis (burnt in, so it survives any copy).

use crate::dicom::render::Rendered;
use font8x8::UnicodeFonts;

/// The mark, one line per language; on wide images the two lines share one.
pub const MARK_LINES: [&str; 2] = ["NICHT FÜR DIAGNOSTISCHE ZWECKE", "NOT FOR DIAGNOSTIC USE"];
const JPEG_QUALITY: u8 = 90;

#[derive(Debug, thiserror::Error)]
#[error("the image cannot be written as JPEG")]
pub struct JpegError;

/// A copy of `image` (gray or RGB) grown by a black band with the mark in white.
pub fn marked(image: &Rendered) -> Rendered {
    let width = image.width as usize;
    let joined = format!("{} · {}", MARK_LINES[0], MARK_LINES[1]);
    let lines: Vec<&str> = if joined.chars().count() * 8 <= width * 9 / 10 {
        vec![joined.as_str()]
    } else {
        MARK_LINES.to_vec()
    };
    let widest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(1) * 8;
    // Glyphs are 8×8; grow them with the image, up to four times.
    let scale = (width * 9 / 10 / widest).clamp(1, 4);
    let line_height = 10 * scale;
    let band = lines.len() * line_height + 4 * scale;
    let channels = usize::from(image.channels);
    let height = image.height as usize + band;
    let mut pixels = image.pixels.clone();
    pixels.resize(width * height * channels, 0);
    for (row_no, line) in lines.iter().enumerate() {
        let left = width.saturating_sub(line.chars().count() * 8 * scale) / 2;
        let top = image.height as usize + 2 * scale + row_no * line_height;
        draw_line(&mut pixels, width, channels, left, top, scale, line);
    }
    Rendered {
        width: image.width,
        height: height as u32,
        channels: image.channels,
        pixels,
    }
}

fn draw_line(
    pixels: &mut [u8],
    width: usize,
    channels: usize,
    left: usize,
    top: usize,
    scale: usize,
    line: &str,
) {
    for (n, c) in line.chars().enumerate() {
        let glyph = font8x8::BASIC_FONTS
            .get(c)
            .or_else(|| font8x8::LATIN_FONTS.get(c))
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
                        let at = (y * width + x) * channels;
                        if x < width && at + channels <= pixels.len() {
                            pixels[at..at + channels].fill(255);
                        }
                    }
                }
            }
        }
    }
}

pub fn to_jpeg(image: &Rendered) -> Result<Vec<u8>, JpegError> {
    image.to_jpeg(JPEG_QUALITY).map_err(|_| JpegError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_a_small_image_the_mark_takes_two_lines_that_fit() {
        let image = Rendered {
            width: 256,
            height: 256,
            channels: 3,
            pixels: vec![0; 256 * 256 * 3],
        };
        let out = marked(&image);
        // Nothing drawn in the outermost columns: the text is not cut off.
        for y in 256..out.height as usize {
            for x in [0usize, 1, 254, 255] {
                assert_eq!(out.pixels[(y * 256 + x) * 3], 0, "({x}, {y})");
            }
        }
        assert!(out.pixels[256 * 256 * 3..].contains(&255));
    }

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
