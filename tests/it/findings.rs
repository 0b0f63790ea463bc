//! Findings: PDFs only, stored encrypted, released to the patient at their time,
//! and the practice's "not yet released" filter.

use super::helpers::{TestApp, search_studies, session_cookie};

fn sample_pdf() -> Vec<u8> {
    let mut page = lichtkasten::letters::pdf::Page::default();
    page.text(
        20.0,
        30.0,
        12.0,
        lichtkasten::letters::pdf::Font::Regular,
        "Befund: unauffällig",
    );
    lichtkasten::letters::pdf::render(&[page], "Befund")
}

#[tokio::test]
async fn findings_are_released_at_their_time() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let study = demo["study_id"].as_str().expect("study");
    let post = |body: Vec<u8>, query: String| {
        app.http
            .post(format!(
                "{}/api/v1/studies/{study}/findings?{query}",
                app.base
            ))
            .bearer_auth(&token)
            .header("content-type", "application/pdf")
            .body(body)
            .send()
    };
    // Not a PDF.
    let res = post(b"<html>not a pdf</html>".to_vec(), String::new())
        .await
        .expect("post");
    assert_eq!(res.status(), 422);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_pdf");

    let pdf = sample_pdf();
    let tomorrow = lichtkasten::clock::Clock::now(&app.clock) + 86_400;
    let res = post(pdf.clone(), format!("release_at={tomorrow}"))
        .await
        .expect("post");
    assert_eq!(res.status(), 201);
    let finding: serde_json::Value = res.json().await.expect("json");
    let id = finding["id"].as_str().expect("id");

    // Stored encrypted: the PDF's text is nowhere in the store.
    for (_, bytes) in app.stored_objects().await {
        assert!(
            !bytes
                .windows(8)
                .any(|w| w == b"unauff\xe4l" || w == b"%PDF-1.4")
        );
    }

    // Before release the patient sees nothing of it.
    let cookie = session_cookie(
        &app.post_access(
            demo["access_code"].as_str().expect("c"),
            demo["password"].as_str().expect("p"),
        )
        .await,
    )
    .expect("cookie");
    let manifest: serde_json::Value = app
        .get_with_cookie("/view/api/study", &cookie)
        .await
        .json()
        .await
        .expect("m");
    // Only the demo's own report (released at once) is listed.
    let listed = manifest["findings"].as_array().expect("findings");
    assert_eq!(listed.len(), 1);
    assert_ne!(listed[0]["id"], id);
    assert_eq!(
        app.get_with_cookie(&format!("/view/api/findings/{id}"), &cookie)
            .await
            .status(),
        404
    );

    // The practice's filter finds it.
    let admin = super::staff::sign_in(&app, &demo).await;
    let pending = search_studies(&app, &admin, &[("unreleased", "1")])
        .await
        .text()
        .await
        .expect("list");
    assert!(pending.contains(study));

    // After release: listed and downloadable, byte for byte.
    app.clock.advance(86_401);
    let cookie = session_cookie(
        &app.post_access(
            demo["access_code"].as_str().expect("c"),
            demo["password"].as_str().expect("p"),
        )
        .await,
    )
    .expect("cookie");
    let manifest: serde_json::Value = app
        .get_with_cookie("/view/api/study", &cookie)
        .await
        .json()
        .await
        .expect("m");
    assert!(
        manifest["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|f| f["id"] == id)
    );
    let res = app
        .get_with_cookie(&format!("/view/api/findings/{id}"), &cookie)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    // Never run anything an uploaded PDF carries.
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .starts_with("sandbox")
    );
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.bytes().await.expect("pdf").to_vec(), pdf);
    let page = app
        .get_with_cookie("/view", &cookie)
        .await
        .text()
        .await
        .expect("viewer");
    assert!(page.contains(&format!("/view/api/findings/{id}")));
    let admin = super::practice_admin::sign_in_again(&app, &demo).await;
    let pending = search_studies(&app, &admin, &[("unreleased", "1")])
        .await
        .text()
        .await
        .expect("list");
    assert!(!pending.contains(study));

    // Staff attach through the page, released at once.
    let detail = app
        .get_with_cookie(&format!("/practice/studies/{study}"), &admin)
        .await
        .text()
        .await
        .expect("page");
    let at = detail.find("name=\"csrf\" value=\"").expect("csrf") + 19;
    let csrf = detail[at..].split('"').next().expect("v").to_string();
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf)
        .text("release", "now")
        .part(
            "file",
            reqwest::multipart::Part::bytes(sample_pdf()).file_name("befund.pdf"),
        );
    let res = app
        .http
        .post(format!("{}/practice/studies/{study}/findings", app.base))
        .header("cookie", &admin)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), 303);
    let manifest: serde_json::Value = app
        .get_with_cookie("/view/api/study", &cookie)
        .await
        .json()
        .await
        .expect("m");
    // The demo's report, the one released tomorrow, and this one.
    assert_eq!(manifest["findings"].as_array().expect("findings").len(), 3);
}

#[tokio::test]
async fn a_report_sent_as_encapsulated_pdf_becomes_the_findings() {
    use lichtkasten::dicom::synth::{StudySpec, demo_study, encapsulated_pdf, new_uid};
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let mut rng = rand::thread_rng();
    let spec = StudySpec::demo(&mut rng);
    let pdf = sample_pdf();
    let mut files = demo_study(&mut rng, &spec, 2, 64);
    let report = encapsulated_pdf(&spec, &new_uid(&mut rng), &new_uid(&mut rng), &pdf);
    files.push(report.clone());
    // Sent twice, as a PACS may: one finding, not two.
    files.push(report);
    let mut form = reqwest::multipart::Form::new();
    for (i, f) in files.into_iter().enumerate() {
        form = form.part(
            format!("f{i}"),
            reqwest::multipart::Part::bytes(f).file_name(format!("{i}.dcm")),
        );
    }
    let res = app
        .http
        .post(format!("{}/api/v1/studies", app.base))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["rejected"].as_array().expect("r").len(), 0, "{body}");
    let study = body["studies"][0]["id"].as_str().expect("id").to_string();
    let practice = app.services().db.practices().await.expect("p")[0]
        .id
        .clone();
    let findings = lichtkasten::studies::findings::list(app.services(), &practice, &study)
        .await
        .expect("findings");
    assert_eq!(findings.len(), 1);
    let stored = lichtkasten::studies::findings::read(
        app.services(),
        &practice,
        &study,
        &findings[0].id,
        false,
    )
    .await
    .expect("pdf");
    assert_eq!(stored, pdf, "the report byte for byte");
    // The viewer shows images only: the report instance is not drawn as one.
    let res = app.post_grant(&token, &study).await;
    let grant: serde_json::Value = res.json().await.expect("grant");
    let cookie = session_cookie(
        &app.post_access(
            grant["access_code"].as_str().expect("c"),
            grant["password"].as_str().expect("p"),
        )
        .await,
    )
    .expect("cookie");
    // Once its previews are prepared (test apps run no preparing worker of their
    // own), the page carries its first image inside it.
    let svc = app.services();
    lichtkasten::studies::prepared::drain(svc, "test", &svc.preparer)
        .await
        .expect("prepare");
    let page = app
        .get_with_cookie("/view", &cookie)
        .await
        .text()
        .await
        .expect("viewer");
    // Three images in the no-script gallery, the first once more inside the page as
    // its first image; the report instance is none of them.
    assert_eq!(page.matches("/frames/1/rendered?viewport").count(), 3);
    assert_eq!(page.matches("src=\"data:image/jpeg;base64,").count(), 1);
}
