//! The renderer on any bytes that parse: never a panic. Frames are drawn fitted
//! into a small viewport, as a thumbnail would be. A file's decoded copy (kept at
//! ingest for compressed files) draws the same first frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lichtkasten::dicom::decoded_copy::decoded_copy;
use lichtkasten::dicom::parse::{normalize_preamble, parse};
use lichtkasten::dicom::render::{RenderOptions, parse_for_render, render_frame_with};

fuzz_target!(|data: &[u8]| {
    // The renderer catches a decoder's panic and reports the frame as undecodable;
    // libFuzzer's hook would abort on it first. A panic it does not catch still
    // reaches libFuzzer and counts as a crash.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let Ok(normalized) = normalize_preamble(data) else {
        return;
    };
    // Only what ingest would accept ever reaches the renderer.
    if parse(&normalized).is_err() {
        return;
    }
    let options = RenderOptions {
        window: None,
        viewport: Some((64, 64)),
    };
    let Ok(image) = render_frame_with(&normalized, 0, options) else {
        return;
    };
    assert!(image.width <= 64 && image.height <= 64);
    let _ = image.to_jpeg(80);
    let Ok(parsed) = parse_for_render(normalized.to_vec()) else {
        return;
    };
    // As at ingest: at most four times the file's size (another frame may fail).
    if let Ok(Some(copy)) = decoded_copy(&parsed, normalized.len() * 4) {
        // A copy that cannot be read is skipped for the original at render time; one
        // that can must show the same picture.
        if let Ok(again) = render_frame_with(&copy, 0, options) {
            assert!(again == image, "the copy draws another picture");
        }
    }
});
