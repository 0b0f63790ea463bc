//! The ingest's parse-and-validate step on any bytes: never a panic, and whatever
//! is accepted has its preamble zeroed and sane dimensions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lichtkasten::dicom::parse::{normalize_preamble, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(normalized) = normalize_preamble(data) else {
        return;
    };
    assert!(normalized[..128].iter().all(|b| *b == 0));
    if let Ok(p) = parse(&normalized) {
        assert!((0..=65535).contains(&p.rows) && (0..=65535).contains(&p.columns));
        assert!(p.frames >= 1);
    }
});
