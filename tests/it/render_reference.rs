//! The renderer against references computed independently: tests/corpus/
//! reference_render.py makes images with pydicom + numpy (12-, 14-, 16-bit, signed,
//! rescaled, with and without windows, MONOCHROME1, RGB in both planar
//! configurations, YBR_FULL, PALETTE COLOR, multi-frame) and renders each with numpy
//! from the standard's formulas. Native files and their lossless compressions (by
//! dcmtk, gdcm and, for High-Throughput JPEG 2000, OpenJPH) must match within rounding: mean absolute difference at most 0.5
//! of 255 and no pixel more than 1 apart. Lossy JPEG baseline must stay within a
//! mean absolute difference of 6. Every compressed file's decoded copy draws exactly
//! what the file draws.

use lichtkasten::dicom::parse::normalize_preamble;
use lichtkasten::dicom::render::render_frame;
use std::path::{Path, PathBuf};
use std::process::Command;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/corpus/reference_render.py"
);
const HTJ2K_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/htj2k.py");
const JPEG_XL_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/jpegxl.py");

fn tools_present() -> bool {
    let python = Command::new("python3")
        .args(["-c", "import pydicom, numpy"])
        .status()
        .is_ok_and(|s| s.success());
    let dcmtk = [
        "dcmcjpeg",
        "dcmcjpls",
        "dcmcrle",
        "gdcmconv",
        "ojph_compress",
        "cjxl",
    ]
    .iter()
    .all(|t| Command::new(t).arg("--version").output().is_ok());
    if !(python && dcmtk) {
        assert!(
            std::env::var("CI").is_err(),
            "pydicom, numpy, dcmtk, gdcm and openjph-tools are installed by .ci/run"
        );
        eprintln!("pydicom/numpy or dcmtk/gdcm missing: reference renders skipped");
    }
    python && dcmtk
}

/// (width, height, channels, pixels) of a binary PGM or PPM.
fn read_pnm(path: &Path) -> (u32, u32, u8, Vec<u8>) {
    let bytes = std::fs::read(path).expect("pnm");
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..at]).to_string());
    }
    let channels = if fields[0] == "P6" { 3 } else { 1 };
    let width = fields[1].parse().expect("width");
    let height = fields[2].parse().expect("height");
    (width, height, channels, bytes[at + 1..].to_vec())
}

fn reference(file: &Path, frame: u32, dir: &Path) -> (u32, u32, u8, Vec<u8>) {
    let out = dir.join(format!(
        "{}-{frame}.pnm",
        file.file_stem().expect("stem").to_string_lossy()
    ));
    let ok = Command::new("python3")
        .arg(SCRIPT)
        .arg("render")
        .arg(file)
        .arg(&out)
        .arg(frame.to_string())
        .status()
        .expect("python");
    assert!(ok.success(), "reference of {}", file.display());
    read_pnm(&out)
}

/// (mean absolute difference, largest difference) of our render and a reference.
fn compare(ours: &Path, frame: u32, refd: &(u32, u32, u8, Vec<u8>)) -> (f64, u8) {
    let bytes = normalize_preamble(&std::fs::read(ours).expect("file")).expect("DICOM");
    let image = render_frame(&bytes, frame)
        .unwrap_or_else(|e| panic!("{} frame {frame}: {e}", ours.display()));
    assert_eq!(
        (image.width, image.height, image.channels),
        (refd.0, refd.1, refd.2),
        "{}",
        ours.display()
    );
    let diffs: Vec<u8> = image
        .pixels
        .iter()
        .zip(&refd.3)
        .map(|(a, b)| a.abs_diff(*b))
        .collect();
    let mean = diffs.iter().map(|d| f64::from(*d)).sum::<f64>() / diffs.len() as f64;
    (mean, diffs.iter().copied().max().unwrap_or(0))
}

/// A compressed file's decoded copy (kept beside it for later renders) is read in
/// place and draws exactly what the file draws, with its own window and another.
fn assert_copy_draws_the_same(file: &Path) {
    use lichtkasten::dicom::decoded_copy::decoded_copy;
    use lichtkasten::dicom::render::{RenderOptions, parse_for_render, render_parsed};
    let bytes = normalize_preamble(&std::fs::read(file).expect("file")).expect("DICOM");
    let original = parse_for_render(bytes).expect("parse");
    let copy = decoded_copy(&original, usize::MAX)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .unwrap_or_else(|| panic!("{}: no copy", file.display()));
    let copied = parse_for_render(copy).expect("parse copy");
    assert!(copied.reads_in_place(), "{}", file.display());
    let windowed = RenderOptions {
        window: Some((100.0, 700.0)),
        viewport: None,
    };
    for options in [RenderOptions::default(), windowed] {
        let a = render_parsed(&original, 0, options).expect("render");
        let b = render_parsed(&copied, 0, options).expect("render copy");
        assert!(a == b, "{}: the copy draws another picture", file.display());
    }
}

fn convert(tool: &str, args: &[&str], input: &Path, output: &Path) -> bool {
    Command::new(tool)
        .args(args)
        .arg(input)
        .arg(output)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn renders_match_independent_references() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let corpus = dir.path().join("corpus");
    assert!(
        Command::new("python3")
            .arg(SCRIPT)
            .arg("generate")
            .arg(&corpus)
            .status()
            .expect("python")
            .success()
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    let mut checked = Vec::new();
    for file in &files {
        let name = file
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .to_string();
        let frames: &[u32] = if name.contains("multiframe") {
            &[0, 1, 2]
        } else {
            &[0]
        };
        for &frame in frames {
            let refd = reference(file, frame, dir.path());
            let (mean, max) = compare(file, frame, &refd);
            assert!(
                mean <= 0.5 && max <= 1,
                "{name} frame {frame}: mean {mean:.3}, max {max}"
            );
            checked.push(format!("{name}#{frame}"));
        }
        // Lossless compressions of the single-frame images decode to the same picture.
        if frames.len() > 1 {
            continue;
        }
        let refd = reference(file, 0, dir.path());
        let grey = refd.2 == 1;
        let mut lossless = vec![
            ("rle", "dcmcrle", vec![]),
            ("j2k", "gdcmconv", vec!["--j2k"]),
        ];
        if grey && !name.contains("palette") {
            lossless.push(("jpegll", "dcmcjpeg", vec!["+e1"]));
        }
        if cfg!(feature = "jpeg-ls") && !name.contains("ybr") {
            lossless.push(("jls", "dcmcjpls", vec![]));
        }
        // Signed samples are left out: OpenJPEG (C and its Rust port alike) and
        // OpenJPH's own decoder disagree on the signed codestreams Debian's OpenJPH
        // 0.9 writes, so the file itself is in doubt, not only our reading of it.
        let signed = name.starts_with("s16");
        if (grey && !name.contains("palette") && !signed) || name.starts_with("rgb") {
            lossless.push(("htj2k", "python3", vec![HTJ2K_SCRIPT]));
            // JPEG XL has no signed samples and no palette.
            lossless.push(("jxl", "python3", vec![JPEG_XL_SCRIPT]));
        }
        for (label, tool, args) in lossless {
            let out = dir.path().join(format!("{name}.{label}.dcm"));
            assert!(convert(tool, &args, file, &out), "{tool} {name}");
            let (mean, max) = compare(&out, 0, &refd);
            assert!(
                mean <= 0.5 && max <= 1,
                "{name} as {label}: mean {mean:.3}, max {max}"
            );
            assert_copy_draws_the_same(&out);
            checked.push(format!("{name}.{label}"));
        }
        // Lossy JPEG baseline for 8-bit images.
        let eight_bit = name.starts_with("u8") || name.starts_with("rgb") || name == "ybr_full";
        if eight_bit {
            let out = dir.path().join(format!("{name}.jpeg.dcm"));
            // +sr: dcmtk's default stretches a grey image's own min..max over the
            // 8 bits before compressing, which changes the stored values.
            assert!(
                convert("dcmcjpeg", &["+eb", "+sr"], file, &out),
                "dcmcjpeg {name}"
            );
            let (mean, _) = compare(&out, 0, &refd);
            assert!(mean <= 6.0, "{name} as JPEG baseline: mean {mean:.3}");
            assert_copy_draws_the_same(&out);
            checked.push(format!("{name}.jpeg"));
        }
    }
    eprintln!("checked against references: {checked:?}");
    assert!(checked.len() >= 30, "{}", checked.len());
}
