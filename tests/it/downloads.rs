//! Downloads: the study as a CD-like ZIP (DICOM files, DICOMDIR that lists exactly
//! them, README, INDEX.HTM, previews, the released findings), one image as a marked
//! JPEG, findings pages as images, and a grant that may not download.

use super::helpers::{TestApp, session_cookie};
use std::collections::BTreeSet;
use std::io::Read;

async fn sign_in(app: &TestApp, code: &str, password: &str) -> String {
    let res = app.post_access(code, password).await;
    assert_eq!(res.status(), 303);
    session_cookie(&res).expect("session")
}

fn dicom_strings(obj: &dicom_object::InMemDicomObject, group: u16, elem: u16) -> String {
    obj.element(dicom_core::Tag(group, elem))
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_study_zip_is_shaped_like_a_patient_cd() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let cookie = sign_in(
        &app,
        demo["access_code"].as_str().expect("c"),
        demo["password"].as_str().expect("p"),
    )
    .await;
    let res = app
        .get_with_cookie("/view/download/study.zip", &cookie)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .expect("cc")
            .contains("no-store")
    );
    let bytes = res.bytes().await.expect("zip").to_vec();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    for must in ["README.TXT", "INDEX.HTM", "DICOMDIR", "REPORT/BEFUND1.PDF"] {
        assert!(names.iter().any(|n| n == must), "{must} missing: {names:?}");
    }
    let mut read = |name: &str| {
        let mut out = Vec::new();
        zip.by_name(name)
            .expect("entry")
            .read_to_end(&mut out)
            .expect("read");
        out
    };
    // Every DICOM file parses, and the DICOMDIR lists exactly those files and UIDs.
    let dicom_files: BTreeSet<String> = names
        .iter()
        .filter(|n| n.starts_with("DICOM/"))
        .cloned()
        .collect();
    assert_eq!(
        dicom_files.len(),
        14,
        "12 CT slices, a capture and a cine loop"
    );
    let mut uids_in_files = BTreeSet::new();
    for name in &dicom_files {
        for part in name.split('/') {
            assert!(
                part.len() <= 8
                    && part
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            );
        }
        let obj = dicom_object::from_reader(std::io::Cursor::new(read(name)[128..].to_vec()))
            .expect("DICOM file");
        uids_in_files.insert((name.clone(), dicom_strings(&obj, 0x0008, 0x0018)));
    }
    let dicomdir = read("DICOMDIR");
    let dir = dicom_object::from_reader(std::io::Cursor::new(dicomdir[128..].to_vec()))
        .expect("DICOMDIR parses");
    let records = dir
        .element(dicom_core::Tag(0x0004, 0x1220))
        .expect("records")
        .items()
        .expect("items")
        .to_vec();
    let listed: BTreeSet<(String, String)> = records
        .iter()
        .filter(|r| dicom_strings(r, 0x0004, 0x1430) == "IMAGE")
        .map(|r| {
            (
                dicom_strings(r, 0x0004, 0x1500).replace('\\', "/"),
                dicom_strings(r, 0x0004, 0x1511),
            )
        })
        .collect();
    assert_eq!(listed, uids_in_files);
    let index = String::from_utf8(read("INDEX.HTM")).expect("html");
    assert!(index.contains("Müller"));
    assert!(!index.contains("<script"));
    for src in index.split("src=\"").skip(1) {
        let target = src.split('"').next().expect("src").replace("&#x2f;", "/");
        assert!(
            names.contains(&target),
            "INDEX.HTM shows {target}, not in the ZIP"
        );
        assert_eq!(&read(&target)[..2], &[0xFF, 0xD8], "a JPEG preview");
    }
    assert!(read("REPORT/BEFUND1.PDF").starts_with(b"%PDF-"));
}

#[tokio::test]
async fn images_download_as_marked_jpegs_and_findings_show_as_pages_and_text() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let cookie = sign_in(
        &app,
        demo["access_code"].as_str().expect("c"),
        demo["password"].as_str().expect("p"),
    )
    .await;
    let manifest = app.manifest(&cookie).await;
    let instance = manifest["study"]["series"][0]["instances"][0]["id"]
        .as_str()
        .expect("instance");
    let res = app
        .get_with_cookie(
            &format!("/view/api/instances/{instance}/frames/1/download"),
            &cookie,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .expect("cd")
            .starts_with("attachment")
    );
    assert_eq!(&res.bytes().await.expect("jpeg")[..2], &[0xFF, 0xD8]);

    let page = app
        .get_with_cookie("/view", &cookie)
        .await
        .text()
        .await
        .expect("html");
    assert!(page.contains("id=\"download-study\""));
    assert!(page.contains("class=\"findings-text\""));
    assert!(page.contains("Kein Nachweis einer"), "the text version");
    let finding = manifest["findings"][0]["id"].as_str().expect("finding");
    let res = app
        .get_with_cookie(&format!("/view/api/findings/{finding}/pages/1"), &cookie)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    let png = res.bytes().await.expect("png");
    let decoder = png::Decoder::new(std::io::Cursor::new(png.to_vec()));
    let mut reader = decoder.read_info().expect("png");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("frame");
    assert!(info.width >= 1000, "readable on a phone");
    let pixels = &pixels[..info.buffer_size()];
    let white = pixels.iter().filter(|&&b| b > 240).count();
    let dark = pixels.iter().filter(|&&b| b < 80).count();
    assert!(white > pixels.len() / 2, "a white page");
    assert!(dark > 1000, "with text on it");
    let res = app
        .get_with_cookie(&format!("/view/api/findings/{finding}/pages/2"), &cookie)
        .await;
    assert_eq!(res.status(), 404, "the report has one page");
}

#[tokio::test]
async fn a_grant_without_downloads_gets_none() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let study = demo["study_id"].as_str().expect("study");
    let res = app
        .http
        .post(format!("{}/api/v1/studies/{study}/grants", app.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"allow_download": false}))
        .send()
        .await
        .expect("grant");
    assert_eq!(res.status(), 201);
    let grant: serde_json::Value = res.json().await.expect("json");
    let cookie = sign_in(
        &app,
        grant["access_code"].as_str().expect("c"),
        grant["password"].as_str().expect("p"),
    )
    .await;
    let page = app
        .get_with_cookie("/view", &cookie)
        .await
        .text()
        .await
        .expect("html");
    assert!(!page.contains("download-study"));
    assert!(!page.contains("download-image"));
    let res = app
        .get_with_cookie("/view/download/study.zip", &cookie)
        .await;
    assert_eq!(res.status(), 403);
    let manifest = app.manifest(&cookie).await;
    let instance = manifest["study"]["series"][0]["instances"][0]["id"]
        .as_str()
        .expect("instance");
    let res = app
        .get_with_cookie(
            &format!("/view/api/instances/{instance}/frames/1/download"),
            &cookie,
        )
        .await;
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn the_practice_moves_a_grants_end_date() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let study = demo["study_id"].as_str().expect("study");
    let res = app.post_grant(&token, study).await;
    let grant: serde_json::Value = res.json().await.expect("json");
    let id = grant["id"].as_str().expect("id");
    let extend = |body: serde_json::Value| {
        app.http
            .post(format!("{}/api/v1/grants/{id}/extend", app.base))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let res = extend(serde_json::json!({"expires_in_days": 60}))
        .await
        .expect("extend");
    assert_eq!(res.status(), 200);
    for bad in [
        serde_json::json!({"expires_in_days": 0}),
        serde_json::json!({"expires_in_days": 5000}),
        serde_json::json!({"expires_at": 1}),
        serde_json::json!({}),
    ] {
        let res = extend(bad.clone()).await.expect("extend");
        assert_eq!(res.status(), 400, "{bad}");
    }
    // Day 45: the original 30 days are over, the extension holds.
    app.clock.advance(45 * 86_400);
    let res = app
        .post_access(
            grant["access_code"].as_str().expect("c"),
            grant["password"].as_str().expect("p"),
        )
        .await;
    assert_eq!(res.status(), 303);
}
