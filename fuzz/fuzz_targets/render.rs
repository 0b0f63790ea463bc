//! The renderer on any bytes that parse: never a panic. Frames are drawn fitted
//! into a small viewport, as a thumbnail would be.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lichtkasten::dicom::parse::{normalize_preamble, parse};
use lichtkasten::dicom::render::{RenderOptions, render_frame_with};

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
    if let Ok(image) = render_frame_with(&normalized, 0, options) {
        assert!(image.width <= 64 && image.height <= 64);
        let _ = image.to_jpeg(80);
    }
});
