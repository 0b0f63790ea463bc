//! Compressed transfer syntaxes render like the native original: the files are made
//! by tools we did not write (dcmtk's dcmcjpeg/dcmcjpls/dcmcrle/dcmconv, gdcm's gdcmconv,
//! OpenJPH's ojph_compress for High-Throughput JPEG 2000, libjxl's cjxl for JPEG XL) from
//! a generated CT slice and an RGB capture. Lossless syntaxes must give the same
//! pixels; lossy ones stay within a stated mean absolute difference.

use lichtkasten::dicom::render::{Rendered, render_frame};
use std::path::Path;
use std::process::Command;

/// Wraps an OpenJPH codestream into a DICOM file (no DICOM tool writes HTJ2K yet).
const HTJ2K_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/htj2k.py");
/// Wraps a libjxl codestream into a DICOM file (no DICOM tool writes JPEG XL yet).
const JPEG_XL_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/jpegxl.py");

fn tools_present() -> bool {
    let ok = [
        "dcmcjpeg",
        "dcmdjpeg",
        "dcmcrle",
        "dcmconv",
        "gdcmconv",
        "dcmcjpls",
        "ojph_compress",
        "cjxl",
    ]
    .iter()
    .all(|t| Command::new(t).arg("--version").output().is_ok())
        // htj2k.py and jpegxl.py wrap their codestreams with pydicom.
        && Command::new("python3")
            .args(["-c", "import pydicom, numpy"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok && std::env::var("CI").is_ok() {
        panic!("dcmtk/libgdcm-tools missing in CI");
    }
    if !ok {
        eprintln!("dcmtk or gdcm tools not installed: render corpus skipped (it runs in .ci/run)");
    }
    ok
}

fn convert(tool: &str, args: &[&str], input: &Path, output: &Path) -> Vec<u8> {
    let status = Command::new(tool)
        .args(args)
        .arg(input)
        .arg(output)
        .status()
        .expect("tool runs");
    assert!(status.success(), "{tool} {args:?} failed");
    std::fs::read(output).expect("converted file")
}

fn transfer_syntax(bytes: &[u8]) -> String {
    lichtkasten::dicom::parse::parse(bytes)
        .expect("parses")
        .transfer_syntax
}

/// The pixels of an 8-bit PNG.
fn png_pixels(png: &[u8]) -> Vec<u8> {
    let mut reader = png::Decoder::new(std::io::Cursor::new(png.to_vec()))
        .read_info()
        .expect("png");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("frame");
    buf.truncate(info.buffer_size());
    buf
}

fn mean_abs_diff(a: &Rendered, b: &Rendered) -> f64 {
    assert_eq!(
        (a.width, a.height, a.channels),
        (b.width, b.height, b.channels)
    );
    let sum: u64 = a
        .pixels
        .iter()
        .zip(&b.pixels)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.pixels.len() as f64
}

#[test]
fn every_decodable_syntax_renders_like_the_original() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let mut rng = rand::thread_rng();
    let spec = lichtkasten::dicom::synth::StudySpec::demo(&mut rng);
    let files = lichtkasten::dicom::synth::demo_study(&mut rng, &spec, 3, 128);
    // The middle slice (12 of 16 bits stored, rescaled, windowed) and the RGB capture.
    let ct = dir.path().join("ct.dcm");
    let rgb = dir.path().join("rgb.dcm");
    std::fs::write(&ct, &files[1]).expect("write");
    std::fs::write(&rgb, &files[3]).expect("write");
    let ct_ref = render_frame(&files[1], 0).expect("native CT");
    let rgb_ref = render_frame(&files[3], 0).expect("native RGB");
    assert_eq!(rgb_ref.channels, 3);

    // (tool, arguments, source, expected transfer syntax, largest mean abs difference)
    type Case<'a> = (&'a str, &'a [&'a str], &'a Path, &'a Rendered, &'a str, f64);
    let mut cases: Vec<Case<'_>> = vec![
        ("dcmcjpeg", &[], &ct, &ct_ref, "1.2.840.10008.1.2.4.70", 0.0),
        ("dcmcrle", &[], &ct, &ct_ref, "1.2.840.10008.1.2.5", 0.0),
        (
            "gdcmconv",
            &["--j2k"],
            &ct,
            &ct_ref,
            "1.2.840.10008.1.2.4.90",
            0.0,
        ),
        (
            "dcmconv",
            &["+td"],
            &ct,
            &ct_ref,
            "1.2.840.10008.1.2.1.99",
            0.0,
        ),
        // Native, in the other byte orders and VR encodings.
        ("dcmconv", &["+ti"], &ct, &ct_ref, "1.2.840.10008.1.2", 0.0),
        (
            "dcmconv",
            &["+tb"],
            &ct,
            &ct_ref,
            "1.2.840.10008.1.2.2",
            0.0,
        ),
        (
            "dcmconv",
            &["+tb"],
            &rgb,
            &rgb_ref,
            "1.2.840.10008.1.2.2",
            0.0,
        ),
        (
            "python3",
            &[HTJ2K_SCRIPT],
            &ct,
            &ct_ref,
            "1.2.840.10008.1.2.4.201",
            0.0,
        ),
        (
            "python3",
            &[JPEG_XL_SCRIPT],
            &ct,
            &ct_ref,
            "1.2.840.10008.1.2.4.110",
            0.0,
        ),
        (
            "dcmcjpeg",
            &["+eb"],
            &rgb,
            &rgb_ref,
            "1.2.840.10008.1.2.4.50",
            4.0,
        ),
        ("dcmcrle", &[], &rgb, &rgb_ref, "1.2.840.10008.1.2.5", 0.0),
        (
            "gdcmconv",
            &["--j2k"],
            &rgb,
            &rgb_ref,
            "1.2.840.10008.1.2.4.90",
            0.0,
        ),
        (
            "python3",
            &[HTJ2K_SCRIPT],
            &rgb,
            &rgb_ref,
            "1.2.840.10008.1.2.4.201",
            0.0,
        ),
        (
            "python3",
            &[JPEG_XL_SCRIPT],
            &rgb,
            &rgb_ref,
            "1.2.840.10008.1.2.4.110",
            0.0,
        ),
    ];
    // JPEG-LS (built with the `jpeg-ls` feature): lossless from two encoders, and
    // near-lossless, each stored value within 2 of the original, far less than one
    // grey level after the CT window.
    let jpeg_ls: Vec<Case<'_>> = vec![
        (
            "gdcmconv",
            &["--jpegls"],
            &ct,
            &ct_ref,
            "1.2.840.10008.1.2.4.80",
            0.0,
        ),
        ("dcmcjpls", &[], &ct, &ct_ref, "1.2.840.10008.1.2.4.80", 0.0),
        (
            "dcmcjpls",
            &[],
            &rgb,
            &rgb_ref,
            "1.2.840.10008.1.2.4.80",
            0.0,
        ),
        (
            "dcmcjpls",
            &["+en", "+md", "2"],
            &ct,
            &ct_ref,
            "1.2.840.10008.1.2.4.81",
            0.5,
        ),
    ];
    // Not decodable: JPEG-LS without the `jpeg-ls` feature. A clear refusal, not a
    // panic or a wrong image.
    let mut unsupported: Vec<(&str, &[&str], &Path)> = Vec::new();
    if cfg!(feature = "jpeg-ls") {
        cases.extend(jpeg_ls);
    } else {
        unsupported.extend(jpeg_ls.iter().map(|c| (c.0, c.1, c.2)));
    }
    for (n, (tool, args, source, reference, syntax, tolerance)) in cases.iter().enumerate() {
        let out = dir.path().join(format!("case{n}.dcm"));
        let bytes = convert(tool, args, source, &out);
        assert_eq!(&transfer_syntax(&bytes), syntax, "{tool} {args:?}");
        let rendered = render_frame(&bytes, 0)
            .unwrap_or_else(|e| panic!("{tool} {args:?} ({syntax}) does not render: {e}"));
        let diff = mean_abs_diff(reference, &rendered);
        assert!(
            diff <= *tolerance,
            "{tool} {args:?} ({syntax}): mean abs difference {diff:.3} > {tolerance}"
        );
    }
    // 12-bit JPEG extended (our own decoder): as dcmtk's decoder reads the same file,
    // up to rounding in the inverse DCT, and close to the lossless original.
    let twelve = convert("dcmcjpeg", &["+ee"], &ct, &dir.path().join("ct.ee.dcm"));
    assert_eq!(transfer_syntax(&twelve), "1.2.840.10008.1.2.4.51");
    let by_dcmtk = convert(
        "dcmdjpeg",
        &[],
        &dir.path().join("ct.ee.dcm"),
        &dir.path().join("ct.ee.native.dcm"),
    );
    let ours = render_frame(&twelve, 0).expect("12-bit JPEG renders");
    let theirs = render_frame(&by_dcmtk, 0).expect("dcmtk's decoding renders");
    let against_dcmtk = mean_abs_diff(&theirs, &ours);
    let against_original = mean_abs_diff(&ct_ref, &ours);
    assert!(
        against_dcmtk <= 0.05,
        "12-bit JPEG vs dcmdjpeg: {against_dcmtk:.3}"
    );
    assert!(
        against_original <= 1.0,
        "12-bit JPEG vs original: {against_original:.3}"
    );
    // A JPEG XL codestream larger than the frame the file declares is refused before
    // it is decoded (the decoder would allocate by the codestream).
    let jxl = convert(
        "python3",
        &[JPEG_XL_SCRIPT],
        &ct,
        &dir.path().join("ct.jxl.dcm"),
    );
    let mut obj = dicom_object::OpenFileOptions::new()
        .from_reader(&jxl[128..])
        .expect("JPEG XL file");
    for tag in [
        dicom_dictionary_std::tags::ROWS,
        dicom_dictionary_std::tags::COLUMNS,
    ] {
        obj.put(dicom_object::mem::InMemElement::new(
            tag,
            dicom_core::VR::US,
            dicom_core::PrimitiveValue::from(64_u16),
        ));
    }
    let mut shrunk = Vec::new();
    obj.write_all(&mut shrunk).expect("write");
    match render_frame(&shrunk[..], 0) {
        Err(lichtkasten::dicom::DicomError::Malformed(m)) => {
            assert!(m.contains("does not fit"), "{m}")
        }
        other => panic!("expected Malformed, got {:?}", other.map(|r| r.width)),
    }
    for (tool, args, source) in unsupported {
        let out = dir.path().join("unsupported.dcm");
        let bytes = convert(tool, args, source, &out);
        match render_frame(&bytes, 0) {
            Err(lichtkasten::dicom::DicomError::Unsupported(_)) => {}
            other => panic!(
                "{tool} {args:?}: expected Unsupported, got {:?}",
                other.map(|r| r.width)
            ),
        }
    }
}

#[tokio::test]
async fn a_jpeg_2000_study_is_seen_through_the_viewer() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let mut rng = rand::thread_rng();
    let spec = lichtkasten::dicom::synth::StudySpec::demo(&mut rng);
    let native = lichtkasten::dicom::synth::demo_study(&mut rng, &spec, 1, 64);
    let input = dir.path().join("ct.dcm");
    std::fs::write(&input, &native[0]).expect("write");
    let j2k = convert("gdcmconv", &["--j2k"], &input, &dir.path().join("j2k.dcm"));

    let app = crate::helpers::TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let res = app.post_studies(&token, "application/dicom", j2k).await;
    assert_eq!(res.status(), 200);
    let report: serde_json::Value = res.json().await.expect("json");
    let study = report["studies"][0]["id"]
        .as_str()
        .expect("study")
        .to_string();
    let grant: serde_json::Value = app
        .post_grant(&token, &study)
        .await
        .json()
        .await
        .expect("g");
    let res = app
        .post_access(
            grant["access_code"].as_str().expect("c"),
            grant["password"].as_str().expect("p"),
        )
        .await;
    let cookie = crate::helpers::session_cookie(&res).expect("session");
    let manifest = app.manifest(&cookie).await;
    let instance = manifest["study"]["series"][0]["instances"][0]["id"]
        .as_str()
        .expect("instance");
    let res = app
        .get_with_cookie(
            &format!("/view/api/instances/{instance}/frames/1/rendered"),
            &cookie,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    let png = res.bytes().await.expect("png");
    let decoded = png_pixels(&png);
    assert_eq!(decoded, render_frame(&native[0], 0).expect("native").pixels);
}

/// Columns and rows from a JPEG's start-of-frame marker.
fn jpeg_size(jpeg: &[u8]) -> (u16, u16) {
    let at = jpeg
        .windows(2)
        .position(|w| w[0] == 0xFF && (w[1] == 0xC0 || w[1] == 0xC1))
        .expect("SOF marker");
    let h = u16::from_be_bytes([jpeg[at + 5], jpeg[at + 6]]);
    let w = u16::from_be_bytes([jpeg[at + 7], jpeg[at + 8]]);
    (w, h)
}

#[tokio::test]
async fn rendered_frames_take_a_size_a_window_and_a_format() {
    let app = crate::helpers::TestApp::spawn().await;
    let demo = app.demo().await;
    let res = app
        .post_access(
            demo["access_code"].as_str().expect("c"),
            demo["password"].as_str().expect("p"),
        )
        .await;
    let cookie = crate::helpers::session_cookie(&res).expect("session");
    let manifest = app.manifest(&cookie).await;
    let instance = manifest["study"]["series"][0]["instances"][5]["id"]
        .as_str()
        .expect("instance")
        .to_string();
    let get = |query: &str| {
        let path = format!("/view/api/instances/{instance}/frames/1/rendered{query}");
        let (app, cookie) = (&app, &cookie);
        async move { app.get_with_cookie(&path, cookie).await }
    };
    // A preview: JPEG, fitted inside the viewport (the demo slices are 256 × 256).
    let res = get("?viewport=100,60&format=jpeg&quality=70").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(jpeg_size(&res.bytes().await.expect("jpeg")), (60, 60));
    // Never enlarged.
    let res = get("?viewport=4000,4000&format=jpeg").await;
    assert_eq!(jpeg_size(&res.bytes().await.expect("jpeg")), (256, 256));
    // A window of its own changes the picture; the file's window is the default.
    let default = get("").await.bytes().await.expect("png");
    let same = get("?window=40,400").await.bytes().await.expect("png");
    let bone = get("?window=500,2000").await.bytes().await.expect("png");
    assert_eq!(default, same, "the demo files carry window 40/400");
    assert_ne!(default, bone);
    let soft = get("?window=soft").await.bytes().await.expect("png");
    assert_eq!(soft, default, "the soft-tissue preset is 40/400");
    let lung = get("?window=lung").await.bytes().await.expect("png");
    assert_ne!(lung, default);
    // Lossless WebP: the PNG's pixels, in fewer bytes.
    let res = get("?format=webp").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/webp");
    let webp = res.bytes().await.expect("webp");
    let grey = png_pixels(&default);
    let mut decoder =
        image_webp::WebPDecoder::new(std::io::Cursor::new(webp.to_vec())).expect("webp");
    assert_eq!(decoder.dimensions(), (256, 256));
    let mut rgb = vec![0; decoder.output_buffer_size().expect("size")];
    decoder.read_image(&mut rgb).expect("decode");
    let channels = rgb.len() / grey.len();
    let decoded: Vec<u8> = rgb.chunks(channels).map(|p| p[0]).collect();
    assert!(
        rgb.chunks(channels).all(|p| p[0] == p[1] && p[1] == p[2]),
        "grey stays grey"
    );
    assert_eq!(decoded, grey, "lossless");
    assert!(
        webp.len() < default.len(),
        "{} vs {} bytes",
        webp.len(),
        default.len()
    );
    for bad in [
        "?viewport=0,10",
        "?viewport=10",
        "?viewport=99999,10",
        "?window=40,0",
        "?window=nan,400",
        "?window=liver",
        "?quality=0&format=jpeg",
        "?format=gif",
        "?format=WEBP",
    ] {
        let res = get(bad).await;
        assert_eq!(res.status(), 400, "{bad}");
        let body: serde_json::Value = res.json().await.expect("json");
        assert_eq!(body["error"]["code"], "invalid_render_request", "{bad}");
    }
}
