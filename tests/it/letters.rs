//! Letters are real PDFs: `pdftotext` reads what they say and `zbarimg` decodes their
//! QR codes (poppler-utils and zbar-tools; .ci/run installs them).

use super::helpers::{TestApp, session_cookie};
use std::process::Command;

/// Whether the outside tools are here; in CI their absence is a failure.
fn tools_present() -> bool {
    let ok = ["pdftotext", "pdftoppm", "zbarimg"]
        .iter()
        .all(|t| Command::new(t).arg("-v").output().is_ok());
    if !ok && std::env::var("CI").is_ok() {
        panic!("pdftotext/pdftoppm/zbarimg missing in CI");
    }
    if !ok {
        eprintln!(
            "poppler-utils/zbar-tools not installed: letter checks skipped (they run in .ci/run)"
        );
    }
    ok
}

fn pdf_text(pdf: &[u8], dir: &std::path::Path) -> String {
    let path = dir.join("letter.pdf");
    std::fs::write(&path, pdf).expect("write pdf");
    let out = Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext");
    assert!(
        out.status.success(),
        "pdftotext failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

fn qr_codes(pdf: &[u8], dir: &std::path::Path) -> Vec<String> {
    let path = dir.join("qr.pdf");
    std::fs::write(&path, pdf).expect("write pdf");
    let prefix = dir.join("page");
    let status = Command::new("pdftoppm")
        .args(["-r", "150", "-png"])
        .arg(&path)
        .arg(&prefix)
        .status()
        .expect("pdftoppm");
    assert!(status.success());
    let png = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .expect("rendered page");
    let out = Command::new("zbarimg")
        .args(["--quiet", "--raw"])
        .arg(&png)
        .output()
        .expect("zbarimg");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn access_letter_reads_and_scans_and_reissue_replaces_the_password() {
    if !tools_present() {
        return;
    }
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let study = demo["study_id"].as_str().expect("study");
    let grant: serde_json::Value = app
        .post_grant(&token, study)
        .await
        .json()
        .await
        .expect("grant");
    let id = grant["id"].as_str().expect("id");
    let res = app
        .get_api(&token, &format!("/api/v1/grants/{id}/letter.pdf"))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let pdf = res.bytes().await.expect("pdf");
    let dir = tempfile::tempdir().expect("tmp");
    let text = pdf_text(&pdf, dir.path());
    for needle in [
        grant["access_code"].as_str().expect("code"),
        grant["password"].as_str().expect("pw"),
        grant["link"].as_str().expect("link"),
        &german_date(&grant["expires_at"].as_str().expect("exp")[..10]),
        "Jürgen Müller",
        "14.05.1963",
    ] {
        assert!(text.contains(needle), "letter lacks {needle}:\n{text}");
    }
    assert_eq!(
        qr_codes(&pdf, dir.path()),
        vec![grant["link"].as_str().expect("link").to_string()]
    );

    // Reissue: a new password, the old one dead, live sessions ended.
    let code = grant["access_code"].as_str().expect("code");
    let old_pw = grant["password"].as_str().expect("pw");
    let cookie = session_cookie(&app.post_access(code, old_pw).await).expect("signed in");
    let res = app
        .http
        .post(format!("{}/api/v1/grants/{id}/reissue", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("reissue");
    assert_eq!(res.status(), 200);
    let again: serde_json::Value = res.json().await.expect("json");
    let new_pw = again["password"].as_str().expect("new pw");
    assert_ne!(new_pw, old_pw);
    assert_eq!(again["access_code"], grant["access_code"]);
    assert_eq!(
        app.get_with_cookie("/view/api/study", &cookie)
            .await
            .status(),
        401
    );
    assert_eq!(app.post_access(code, old_pw).await.status(), 401);
    assert_eq!(app.post_access(code, new_pw).await.status(), 303);
    let reprinted = app
        .get_api(&token, &format!("/api/v1/grants/{id}/letter.pdf"))
        .await
        .bytes()
        .await
        .expect("pdf");
    let dir2 = tempfile::tempdir().expect("tmp");
    assert!(pdf_text(&reprinted, dir2.path()).contains(new_pw));
}

#[tokio::test]
async fn practice_create_writes_the_admin_letter() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(env!("CARGO_BIN_EXE_lichtkasten"))
        .args([
            "practice",
            "create",
            "--name",
            "Radiologie Süd",
            "--admin",
            "anna.schäfer-test",
        ])
        .arg("--letter-dir")
        .arg(dir.path())
        .env("LICHTKASTEN_DATA_DIR", dir.path().join("data"))
        .env("LICHTKASTEN_PUBLIC_URL", "https://bilder.example.de")
        .env_remove("LICHTKASTEN_DATABASE_URL")
        .env_remove("LICHTKASTEN_S3_BUCKET")
        .output()
        .expect("run");
    // Usernames are ASCII: the umlaut is refused with a clear message.
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("username must be"));
    let out = Command::new(env!("CARGO_BIN_EXE_lichtkasten"))
        .args([
            "practice",
            "create",
            "--name",
            "Radiologie Süd",
            "--admin",
            "anna.schaefer",
        ])
        .arg("--letter-dir")
        .arg(dir.path())
        .env("LICHTKASTEN_DATA_DIR", dir.path().join("data"))
        .env("LICHTKASTEN_PUBLIC_URL", "https://bilder.example.de")
        .env_remove("LICHTKASTEN_DATABASE_URL")
        .env_remove("LICHTKASTEN_S3_BUCKET")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json line");
    let path = std::path::PathBuf::from(line["letter"].as_str().expect("letter path"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path)
            .expect("letter")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let pdf = std::fs::read(&path).expect("read");
    let work = tempfile::tempdir().expect("tmp");
    let text = pdf_text(&pdf, work.path());
    for needle in [
        "anna.schaefer",
        "Radiologie Süd",
        "https://bilder.example.de/login",
        "Einmal-Passwort",
        "One-time password",
    ] {
        assert!(text.contains(needle), "letter lacks {needle}:\n{text}");
    }
    let codes = qr_codes(&pdf, work.path());
    assert_eq!(codes.len(), 1);
    assert!(
        codes[0].starts_with("otpauth://totp/Lichtkasten:anna.schaefer?secret="),
        "{}",
        codes[0]
    );
}

fn german_date(iso: &str) -> String {
    format!("{}.{}.{}", &iso[8..10], &iso[5..7], &iso[..4])
}

#[tokio::test]
async fn the_practice_logo_is_printed_on_letters() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let admin = super::staff::sign_in(&app, &demo).await;
    let page = app
        .get_with_cookie("/practice/settings", &admin)
        .await
        .text()
        .await
        .expect("settings");
    let at = page.find("name=\"csrf\" value=\"").expect("csrf") + 19;
    let csrf = page[at..].split('"').next().expect("v").to_string();
    let mut jpeg = Vec::new();
    let pixels: Vec<u8> = (0..40 * 20)
        .flat_map(|i| [(i % 40 * 6) as u8, 80, 160])
        .collect();
    jpeg_encoder::Encoder::new(&mut jpeg, 90)
        .encode(&pixels, 40, 20, jpeg_encoder::ColorType::Rgb)
        .expect("jpeg");
    let upload = |bytes: Vec<u8>| {
        let form = reqwest::multipart::Form::new()
            .text("csrf", csrf.clone())
            .part(
                "logo",
                reqwest::multipart::Part::bytes(bytes).file_name("logo.jpg"),
            );
        app.http
            .post(format!("{}/practice/settings/logo", app.base))
            .header("cookie", &admin)
            .multipart(form)
            .send()
    };
    assert_eq!(
        upload(b"GIF89a not a jpeg".to_vec())
            .await
            .expect("post")
            .status(),
        400
    );
    assert_eq!(upload(jpeg.clone()).await.expect("post").status(), 303);
    let token = app.bearer(&demo).await;
    let grant: serde_json::Value = app
        .post_grant(&token, demo["study_id"].as_str().expect("s"))
        .await
        .json()
        .await
        .expect("grant");
    let pdf = app
        .get_api(
            &token,
            &format!(
                "/api/v1/grants/{}/letter.pdf",
                grant["id"].as_str().expect("id")
            ),
        )
        .await
        .bytes()
        .await
        .expect("pdf");
    assert!(
        pdf.windows(jpeg.len()).any(|w| w == jpeg.as_slice()),
        "the logo is embedded unchanged"
    );
    assert!(pdf.windows(10).any(|w| w == b"/DCTDecode"));
    if tools_present() {
        let dir = tempfile::tempdir().expect("tmp");
        // The file still reads and scans with the image in it.
        assert!(pdf_text(&pdf, dir.path()).contains(grant["password"].as_str().expect("pw")));
        assert_eq!(qr_codes(&pdf, dir.path()).len(), 1);
    }
}

#[tokio::test]
async fn one_letter_carries_every_study_of_the_patient() {
    if !tools_present() {
        return;
    }
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let study = demo["study_id"].as_str().expect("study");
    // A second study of the same patient: the demo study's files under a new study UID.
    let second = crate::journey::same_patient_new_study(&app, &token, study).await;
    let res = app.post_grant(&token, &second).await;
    assert_eq!(res.status(), 201);
    let g2: serde_json::Value = res.json().await.expect("grant");
    let res = app
        .get_api(
            &token,
            &format!("/api/v1/studies/{study}/patient-letter.pdf"),
        )
        .await;
    assert_eq!(res.status(), 200);
    let pdf = res.bytes().await.expect("pdf").to_vec();
    let dir = tempfile::tempdir().expect("dir");
    let text = pdf_text(&pdf, dir.path());
    for g in [&demo, &g2] {
        let code = g["access_code"].as_str().expect("code");
        assert!(text.contains(code), "code {code} missing in:\n{text}");
        assert!(text.contains(g["password"].as_str().expect("pw")));
    }
    assert_eq!(text.matches("\u{c}").count().max(1), 1, "one page");
    let mut codes = qr_codes(&pdf, dir.path());
    codes.sort();
    let mut links = vec![
        demo["patient_link"].as_str().expect("l").to_string(),
        g2["link"].as_str().expect("l").to_string(),
    ];
    links.sort();
    assert_eq!(codes, links);
}
