//! Uploads read as they arrive: the practice's quota refuses a body by its declared
//! length before reading it, and file by file while reading; a body that outgrows
//! the request limit part-way is refused with the files before it kept; a ZIP goes
//! through the sealed spool and leaves nothing in the spool folder.

use super::helpers::{TestApp, post_unsized, test_config, zip_of};
use lichtkasten::dicom::synth::{StudySpec, demo_study};

fn study(slices: usize, size: u16) -> (StudySpec, Vec<Vec<u8>>) {
    let mut rng = rand::thread_rng();
    let spec = StudySpec::demo(&mut rng);
    let files = demo_study(&mut rng, &spec, slices, size);
    (spec, files)
}

fn multipart(files: &[Vec<u8>]) -> (String, Vec<u8>) {
    // Mixed case, as browsers send it: the boundary is case-sensitive.
    let boundary = "----LimitsBoundaryX42";
    let mut body = Vec::new();
    for (i, f) in files.iter().enumerate() {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f{i}.dcm\"\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(f);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn practice_id(app: &TestApp) -> String {
    app.services().db.practices().await.expect("practices")[0]
        .id
        .clone()
}

#[tokio::test]
async fn the_quota_refuses_before_reading_and_file_by_file() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let practice = practice_id(&app).await;
    let stored = app
        .services()
        .db
        .practice_stored_bytes(&practice)
        .await
        .expect("stored");
    assert!(stored > 0, "the demo study counts");
    // Room for about 1.5 MB more.
    let quota_mb = (stored / (1024 * 1024)) as i64 + 2;
    assert!(
        app.services()
            .db
            .set_practice_quota(&practice, quota_mb)
            .await
            .expect("set")
    );
    let left = quota_mb as u64 * 1024 * 1024 - stored;

    // Declared larger than what is left: 413 before the body is read.
    let (_, files) = study(30, 256);
    let (ct, body) = multipart(&files);
    assert!(body.len() as u64 > left);
    let res = app.post_studies(&token, &ct, body).await;
    assert_eq!(res.status(), 413);
    let err: serde_json::Value = res.json().await.expect("json");
    assert_eq!(err["error"]["code"], "quota_exceeded");

    // Without a declared length the files are stored until the quota is used up,
    // and the rest are refused one by one.
    let (_, files) = study(30, 256);
    let (ct, body) = multipart(&files);
    let res = post_unsized(&app, &token, &ct, body, 64 * 1024).await;
    assert_eq!(res.status(), 200);
    let report: serde_json::Value = res.json().await.expect("json");
    let accepted = report["studies"][0]["accepted"].as_u64().expect("accepted");
    let over: Vec<&serde_json::Value> = report["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .filter(|r| r["code"] == "quota_exceeded")
        .collect();
    assert!(accepted > 0 && !over.is_empty(), "{report}");
    assert_eq!(accepted as usize + over.len(), files.len());
    let now_stored = app
        .services()
        .db
        .practice_stored_bytes(&practice)
        .await
        .expect("stored");
    assert!(now_stored <= quota_mb as u64 * 1024 * 1024);
}

#[tokio::test]
async fn a_body_outgrowing_the_limit_keeps_the_files_before_it() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(dir.path()).await;
    config.max_upload_bytes = 1024 * 1024;
    let app = TestApp::spawn_with(dir, config).await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let (spec, files) = study(20, 256);
    let (ct, body) = multipart(&files);
    assert!(body.len() > 1024 * 1024);
    // Sent without a length, so the limit can only be found while reading.
    let res = post_unsized(&app, &token, &ct, body, 32 * 1024).await;
    assert_eq!(res.status(), 413);
    let err: serde_json::Value = res.json().await.expect("json");
    assert_eq!(err["error"]["code"], "upload_too_large");
    let message = err["error"]["message"].as_str().expect("message");
    let list: serde_json::Value = app
        .get_api(&token, "/api/v1/studies")
        .await
        .json()
        .await
        .expect("list");
    let kept = list["studies"]
        .as_array()
        .expect("studies")
        .iter()
        .find(|s| s["study_uid"] == spec.study_uid.as_str())
        .map(|s| s["instance_count"].as_i64().expect("count"))
        .expect("the files before the limit are stored");
    assert!(kept > 0 && (kept as usize) < files.len());
    assert!(
        message.contains(&format!("{kept} file(s) were stored")),
        "{message}"
    );
}

#[tokio::test]
async fn a_zip_goes_through_the_sealed_spool_and_leaves_nothing() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let (spec, files) = study(9, 128);
    let res = app
        .post_studies(&token, "application/zip", zip_of(&files))
        .await;
    assert_eq!(res.status(), 200);
    let report: serde_json::Value = res.json().await.expect("json");
    assert_eq!(report["studies"][0]["accepted"], 10, "{report}");
    assert_eq!(
        report["studies"][0]["study_instance_uid"],
        spec.study_uid.as_str()
    );
    let spool = app.config.data_dir.join("spool");
    let left = std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "the spool file has no name and is gone");
    // A ZIP inside multipart goes the same way.
    let (_, more) = study(3, 64);
    let (ct, body) = multipart(&[zip_of(&more)]);
    let res = app.post_studies(&token, &ct, body).await;
    assert_eq!(res.status(), 200);
    let report: serde_json::Value = res.json().await.expect("json");
    assert_eq!(report["studies"][0]["accepted"], 4, "{report}");
}

/// Files are stored a few at a time and may be recorded in any order: the study
/// still lists every modality of the upload, and a later upload that adds a series
/// keeps the earlier ones.
#[tokio::test]
async fn every_series_modality_survives_files_stored_out_of_order() {
    use lichtkasten::dicom::synth::{new_uid, us_loop};
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let mut rng = rand::thread_rng();
    let spec = StudySpec::demo(&mut rng);
    // CT slices and a key image (OT) first, the US loop last: its modality is the
    // last one seen, while earlier files may still be in flight.
    let mut files = demo_study(&mut rng, &spec, 8, 128);
    files.push(us_loop(
        &spec,
        &new_uid(&mut rng),
        &new_uid(&mut rng),
        4,
        64,
    ));
    let (ct, body) = multipart(&files);
    let res = app.post_studies(&token, &ct, body).await;
    assert_eq!(res.status(), 200);
    let report: serde_json::Value = res.json().await.expect("json");
    assert_eq!(report["studies"][0]["accepted"], files.len(), "{report}");
    let id = report["studies"][0]["id"].as_str().expect("id").to_string();
    let modalities = || async {
        let study: serde_json::Value = app
            .get_api(&token, &format!("/api/v1/studies/{id}"))
            .await
            .json()
            .await
            .expect("json");
        let mut m: Vec<String> = study["modalities"]
            .as_str()
            .expect("modalities")
            .split(',')
            .map(str::to_string)
            .collect();
        m.sort();
        m
    };
    assert_eq!(modalities().await, ["CT", "OT", "US"]);

    // A second upload to the same study with another CT slice of a new series.
    let (ct, body) = multipart(&[demo_study(&mut rng, &spec, 1, 64).remove(0)]);
    assert_eq!(app.post_studies(&token, &ct, body).await.status(), 200);
    assert_eq!(modalities().await, ["CT", "OT", "US"]);
}
