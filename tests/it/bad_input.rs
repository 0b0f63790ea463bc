//! Bad input gets a clear error and changes nothing.

use super::helpers::TestApp;
use lichtkasten::dicom::synth::{StudySpec, ct_slice, new_uid};

#[tokio::test]
async fn bad_uploads_are_rejected_and_store_nothing() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let objects_before = app.stored_objects().await.len();
    let list_before: serde_json::Value = app
        .get_api(&token, "/api/v1/studies")
        .await
        .json()
        .await
        .expect("list");

    // Not DICOM.
    let res = app
        .post_studies(
            &token,
            "application/dicom",
            b"%PDF-1.4 this is not an image".to_vec(),
        )
        .await;
    assert_eq!(res.status(), 422);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["rejected"][0]["code"], "not_dicom");
    assert!(
        body["rejected"][0]["message"]
            .as_str()
            .expect("msg")
            .contains("not a DICOM")
    );

    // Truncated DICOM.
    let mut rng = rand::thread_rng();
    let spec = StudySpec::demo(&mut rng);
    let file = ct_slice(&spec, &new_uid(&mut rng), &new_uid(&mut rng), 0, 1, 64);
    let res = app
        .post_studies(&token, "application/dicom", file[..300].to_vec())
        .await;
    assert_eq!(res.status(), 422);
    let body: serde_json::Value = res.json().await.expect("json");
    let code = body["rejected"][0]["code"].as_str().expect("code");
    assert!(
        ["malformed_dicom", "missing_attribute"].contains(&code),
        "{code}"
    );

    // Empty body.
    let res = app
        .post_studies(&token, "application/dicom", Vec::new())
        .await;
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "empty_upload");
    assert!(
        body["error"]["request_id"]
            .as_str()
            .is_some_and(|r| r.len() == 16)
    );

    // Unsupported media type, oversized declared length, bad ZIP.
    let res = app
        .post_studies(&token, "text/plain", b"hello".to_vec())
        .await;
    assert_eq!(res.status(), 415);
    let res = app
        .post_studies(&token, "application/zip", b"PK\x03\x04broken".to_vec())
        .await;
    assert_eq!(res.status(), 400);

    // A bad file beside a good one: the good one is stored, the bad one reported.
    let boundary = "XlichtkastenX";
    let mut multipart = Vec::new();
    for (name, data) in [("good.dcm", file.clone()), ("bad.dcm", b"garbage".to_vec())] {
        multipart.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/dicom\r\n\r\n").as_bytes());
        multipart.extend_from_slice(&data);
        multipart.extend_from_slice(b"\r\n");
    }
    multipart.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let res = app
        .post_studies(
            &token,
            &format!("multipart/form-data; boundary={boundary}"),
            multipart,
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["studies"][0]["accepted"], 1);
    assert_eq!(body["rejected"][0]["file"], "bad.dcm");
    assert_eq!(app.stored_objects().await.len(), objects_before + 1);
    let list_after: serde_json::Value = app
        .get_api(&token, "/api/v1/studies")
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(
        list_after["studies"].as_array().expect("a").len(),
        list_before["studies"].as_array().expect("b").len() + 1
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_code_look_the_same() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let code = demo["access_code"].as_str().expect("code");

    let wrong = app.post_access(code, "aaaaaaaaaa").await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let wrong_body = wrong.text().await.expect("body");
    let unknown = app.post_access("ABCD-EFGH-JKMN", "aaaaaaaaaa").await;
    assert_eq!(unknown.status(), 401);
    let unknown_body = unknown.text().await.expect("body");
    let garbage = app.post_access("<script>alert(1)</script>", "x").await;
    assert_eq!(garbage.status(), 401);
    let garbage_body = garbage.text().await.expect("body");
    assert_eq!(wrong_body, unknown_body);
    assert_eq!(wrong_body, garbage_body);
    assert!(!garbage_body.contains("<script>alert"));
    let bad_link = app
        .post_link(&format!("{}/s/not-a-real-token", app.base), "aaaaaaaaaa")
        .await;
    assert_eq!(bad_link.status(), 401);

    // Bad API credentials and tokens.
    assert_eq!(
        app.post_token(demo["api_client_id"].as_str().expect("id"), "wrong")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.get_api("not-a-token", "/api/v1/studies").await.status(),
        401
    );
}

#[tokio::test]
async fn grant_locks_after_ten_failures_and_practices_are_isolated() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let code = demo["access_code"].as_str().expect("code");
    let password = demo["password"].as_str().expect("pw");
    for _ in 0..11 {
        assert_eq!(app.post_access(code, "wrongwrong").await.status(), 401);
        // Step past the growing delay so each try is counted as a real attempt.
        app.clock.advance(301);
    }
    // Locked: even the right password is refused, with the same answer.
    assert_eq!(app.post_access(code, password).await.status(), 401);

    // A second practice's client sees none of the first practice's studies.
    let other = app.demo().await;
    let other_token = app.bearer(&other).await;
    let first_study = demo["study_id"].as_str().expect("study");
    let res = app
        .get_api(&other_token, &format!("/api/v1/studies/{first_study}"))
        .await;
    assert_eq!(res.status(), 404);
    let missing = app
        .get_api(
            &other_token,
            "/api/v1/studies/0123456789abcdef0123456789abcdef",
        )
        .await;
    assert_eq!(missing.status(), 404);
    // Another practice's id answers exactly like an id that does not exist.
    let a: serde_json::Value = res.json().await.expect("a");
    let b: serde_json::Value = missing.json().await.expect("b");
    assert_eq!(a["error"]["code"], b["error"]["code"]);
    assert_eq!(a["error"]["message"], b["error"]["message"]);
    let list: serde_json::Value = app
        .get_api(&other_token, "/api/v1/studies")
        .await
        .json()
        .await
        .expect("list");
    assert!(
        list["studies"]
            .as_array()
            .expect("s")
            .iter()
            .all(|s| s["id"] != first_study)
    );
    let res = app.post_grant(&other_token, first_study).await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn concurrent_uploads_of_one_new_study_all_land() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let mut rng = rand::thread_rng();
    let mut spec = StudySpec::demo(&mut rng);
    spec.study_uid = new_uid(&mut rng);
    spec.patient_id = "P-RACE".into();
    let series = new_uid(&mut rng);
    let files: Vec<Vec<u8>> = (0..8)
        .map(|i| ct_slice(&spec, &series, &new_uid(&mut rng), i, 8, 32))
        .collect();
    // All at once, as a browser or a PACS with several associations sends them.
    let uploads = files
        .into_iter()
        .map(|f| app.post_studies(&token, "application/dicom", f));
    let results = futures_util::future::join_all(uploads).await;
    let mut study_ids = std::collections::BTreeSet::new();
    for res in results {
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.expect("json");
        assert_eq!(body["studies"][0]["accepted"], 1, "{body}");
        study_ids.insert(body["studies"][0]["id"].as_str().expect("id").to_string());
    }
    assert_eq!(study_ids.len(), 1, "one study, not several");
    let id = study_ids.into_iter().next().expect("id");
    let detail: serde_json::Value = app
        .get_api(&token, &format!("/api/v1/studies/{id}"))
        .await
        .json()
        .await
        .expect("detail");
    assert_eq!(detail["instance_count"], 8);
}

#[tokio::test]
async fn a_file_of_another_patient_cannot_join_a_study() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let mut rng = rand::thread_rng();
    let spec = StudySpec::demo(&mut rng);
    let first = ct_slice(&spec, "1.2.3.4", &new_uid(&mut rng), 0, 2, 32);
    assert_eq!(
        app.post_studies(&token, "application/dicom", first)
            .await
            .status(),
        200
    );
    // Same StudyInstanceUID, another patient: refused, nothing added.
    let mut other = spec.clone();
    other.patient_name = "Fremd^Frieda".into();
    other.patient_id = "OTHER-1".into();
    let intruder = ct_slice(&other, "1.2.3.4", &new_uid(&mut rng), 1, 2, 32);
    let res = app
        .post_studies(&token, "application/dicom", intruder)
        .await;
    assert_eq!(res.status(), 422);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["rejected"][0]["code"], "patient_mismatch");
    assert!(
        !body.to_string().contains("Fremd"),
        "no patient data in the answer"
    );
}
