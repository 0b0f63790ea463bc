//! JPEG XL frames (lossless, JPEG recompression and lossy), decoded with jxl-oxide
//! directly rather than through dicom-pixeldata's adapter: the decoder's memory is
//! capped, the codestream's own size must match the frame the file declares before
//! anything is drawn, and samples keep their values whatever bit depth the
//! codestream was written with.

use super::DicomError;

pub const SYNTAXES: [&str; 3] = [
    "1.2.840.10008.1.2.4.110",
    "1.2.840.10008.1.2.4.111",
    "1.2.840.10008.1.2.4.112",
];

pub fn is_jpeg_xl(transfer_syntax: &str) -> bool {
    SYNTAXES.contains(&transfer_syntax)
}

/// One frame's samples as the renderer reads native pixel data: interleaved, one
/// byte per sample for 8 bits allocated, else two (little-endian).
pub fn decode(
    codestream: &[u8],
    (w, h): (usize, usize),
    samples_per_pixel: usize,
    bits_allocated: usize,
) -> Result<Vec<u8>, DicomError> {
    let damaged = || DicomError::Malformed("the JPEG XL data cannot be decoded".into());
    // Room for the decoder's floating-point planes and working buffers of a frame
    // this size, and no more: a fuzzed codestream must not reserve gigabytes.
    let limit = w * h * samples_per_pixel * 16 + (32 << 20);
    let image = jxl_oxide::JxlImage::builder()
        .alloc_tracker(jxl_oxide::AllocTracker::with_limit(limit))
        .read(codestream)
        .map_err(|_| damaged())?;
    if image.width() as usize != w || image.height() as usize != h {
        return Err(DicomError::Malformed(
            "the JPEG XL data does not fit the image".into(),
        ));
    }
    let bits = image.image_header().metadata.bit_depth.bits_per_sample();
    if !(1..=16).contains(&bits) {
        return Err(DicomError::Unsupported(format!(
            "{bits}-bit JPEG XL samples"
        )));
    }
    let render = image.render_frame(0).map_err(|_| damaged())?;
    let mut stream = render.stream_no_alpha();
    if stream.channels() as usize != samples_per_pixel {
        return Err(DicomError::Malformed(
            "the JPEG XL data has another number of colour channels".into(),
        ));
    }
    let mut plane = vec![0f32; w * h * samples_per_pixel];
    if stream.write_to_buffer(&mut plane) != plane.len() {
        return Err(damaged());
    }
    // The decoder hands out 0.0–1.0 for 0..=2^bits-1 of the codestream; back to the
    // stored values (f32 holds 16-bit integers exactly).
    let top = ((1u32 << bits) - 1) as f32;
    let value = |v: f32| (v * top).round().clamp(0.0, top) as u16;
    Ok(if bits_allocated == 8 {
        plane.iter().map(|&v| value(v).min(255) as u8).collect()
    } else {
        plane.iter().flat_map(|&v| value(v).to_le_bytes()).collect()
    })
}
