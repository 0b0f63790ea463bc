//! The ZIP walker on any bytes: never a panic, never an entry larger than the
//! per-file limit handed on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lichtkasten::studies::upload::UploadLimits;
use lichtkasten::studies::upload_stream::{ZipItem, walk_zip};

fuzz_target!(|data: &[u8]| {
    let limits = UploadLimits {
        max_files: 64,
        max_file_bytes: 1 << 20,
        max_total_bytes: 4 << 20,
        max_ratio: 200,
    };
    let _ = walk_zip(std::io::Cursor::new(data), &limits, |item| {
        if let ZipItem::File(_, bytes) = item {
            assert!(bytes.len() as u64 <= limits.max_file_bytes);
        }
        true
    });
});
