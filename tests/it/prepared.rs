//! Renders prepared at ingest: a leased queue (no job done twice by two nodes, a
//! dead node's job taken over), the cache encrypted like the originals, used by
//! the viewer's routes, and deleted with the study.

use super::helpers::{TestApp, contains, session_cookie, test_config};
use lichtkasten::studies::prepared;

async fn app_without_workers() -> TestApp {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(dir.path()).await;
    // The test plays the nodes itself.
    config.render_workers = 0;
    TestApp::spawn_with(dir, config).await
}

#[tokio::test]
async fn renders_are_leased_prepared_encrypted_and_served_from_the_cache() {
    let app = app_without_workers().await;
    let demo = app.demo().await;
    let svc = app.services();
    let db = &svc.db;
    // The demo study: 12 CT slices, a cine loop and a key image; its PDF report
    // instance has no pixels and no job.
    assert_eq!(db.pending_render_jobs().await.expect("count"), 14);

    // Eight nodes asking at the same moment get eight different jobs.
    let now = svc.clock.now();
    let mut leases = Vec::new();
    for n in 0..8 {
        let db = db.clone();
        leases.push(tokio::spawn(async move {
            db.lease_render_job(&format!("node-{n}"), now, 60).await
        }));
    }
    let mut leased = std::collections::HashSet::new();
    let mut first = None;
    for l in leases {
        let job = l.await.expect("join").expect("lease").expect("a job");
        first.get_or_insert(job.clone());
        assert!(leased.insert(job.instance_id), "one job leased twice");
    }
    let first = first.expect("job");
    // Only the holder may mark its job done.
    let holder = db
        .lease_render_job("late", now, 60)
        .await
        .expect("lease")
        .expect("job");
    assert!(
        !db.finish_render_job(&holder.instance_id, "someone-else")
            .await
            .expect("finish")
    );

    // A live node drains what nobody holds; the held jobs wait for their leases.
    let done = prepared::drain(svc, "worker", &svc.preparer)
        .await
        .expect("drain");
    assert_eq!(done, 14 - 9);
    assert_eq!(db.pending_render_jobs().await.expect("count"), 9);
    // The other nodes died: their leases run out and the jobs are taken over.
    app.clock.advance(61);
    assert_eq!(
        prepared::drain(svc, "worker", &svc.preparer)
            .await
            .expect("drain"),
        9
    );
    assert_eq!(db.pending_render_jobs().await.expect("count"), 0);
    // A thumbnail, and the preview and the scrolling size of every frame.
    let frames = db
        .instance(&first.study_id, &first.instance_id)
        .await
        .expect("db")
        .expect("instance")
        .frames;
    assert_eq!(
        db.render_count(&first.instance_id).await.expect("renders"),
        1 + 2 * frames
    );
    // The loop too: every frame plays at preview quality without being drawn.
    let instances = db.instances_of_study(&first.study_id).await.expect("db");
    let cine = instances.iter().find(|i| i.frames > 1).expect("cine loop");
    assert_eq!(
        db.render_count(&cine.id).await.expect("renders"),
        1 + 2 * cine.frames
    );
    let last = u32::try_from(cine.frames - 1).expect("frame");
    assert!(
        db.cached_render(&cine.id, last, lichtkasten::studies::prepared::PREVIEW_NAME)
            .await
            .expect("db")
            .is_some()
    );

    // The patient's viewer gets them from the cache: with every original gone from
    // the store, thumbnails and previews still answer, the uncached exact PNG not.
    let res = app
        .post_link(
            demo["patient_link"].as_str().expect("link"),
            demo["password"].as_str().expect("pw"),
        )
        .await;
    let cookie = session_cookie(&res).expect("session");
    let manifest = app.manifest(&cookie).await;
    let images: Vec<String> = manifest["study"]["series"]
        .as_array()
        .expect("series")
        .iter()
        .flat_map(|s| s["instances"].as_array().expect("instances").clone())
        .filter(|i| i["rows"].as_i64() > Some(0))
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(images.len(), 14);
    let id = &first.instance_id;
    let thumb_url = format!("/view/api/instances/{id}/thumbnail");
    let preview_url =
        format!("/view/api/instances/{id}/frames/1/rendered?viewport=768,768&format=jpeg");
    let before = app.get_with_cookie(&preview_url, &cookie).await;
    assert_eq!(before.status(), 200);
    let preview = before.bytes().await.expect("body").to_vec();
    assert!(preview.starts_with(&[0xFF, 0xD8]), "a JPEG");
    let (_, render_key, _) = db
        .cached_render(id, 0, lichtkasten::studies::prepared::PREVIEW_NAME)
        .await
        .expect("lookup")
        .expect("cached");
    let objects = app.stored_objects().await;
    let stored = &objects
        .iter()
        .find(|(k, _)| *k == render_key)
        .expect("render object")
        .1;
    // Encrypted at rest like the original: no run of the JPEG in the object.
    assert!(!contains(stored, &preview[200..264]));
    assert!(!contains(stored, b"JFIF"));

    let originals: Vec<String> = db
        .all_blobs()
        .await
        .expect("blobs")
        .into_iter()
        .filter(|b| b.kind == "original")
        .map(|b| b.object_key)
        .collect();
    for key in &originals {
        svc.blobs.delete(key).await.expect("delete original");
    }
    // As on a node that has not read them a moment ago.
    svc.recent_originals.forget_all();
    svc.recent_renders.forget_all();
    for url in [&thumb_url, &preview_url] {
        let res = app.get_with_cookie(url, &cookie).await;
        assert_eq!(res.status(), 200, "{url} from the cache");
    }
    let again = app.get_with_cookie(&preview_url, &cookie).await;
    assert_eq!(again.bytes().await.expect("body").to_vec(), preview);
    let exact = app
        .get_with_cookie(
            &format!("/view/api/instances/{id}/frames/1/rendered"),
            &cookie,
        )
        .await;
    assert_ne!(exact.status(), 200, "the exact PNG needs the original");

    // Deleting the study deletes its renders with it.
    let token = app.bearer(&demo).await;
    let res = app
        .delete_study(&token, demo["study_id"].as_str().expect("study"))
        .await;
    assert!(res.status().is_success());
    let left = app.stored_objects().await;
    assert!(
        left.iter().all(|(k, _)| *k != render_key),
        "render object left behind"
    );
}

/// A kept variant drawn on request (here the exact PNG, never prepared) is answered
/// first and kept by a background task: it shows up in the cache shortly after, and
/// from then on answers without the original.
#[tokio::test]
async fn a_variant_drawn_on_request_is_kept_after_the_answer() {
    let app = app_without_workers().await;
    let demo = app.demo().await;
    let svc = app.services();
    let res = app
        .post_link(
            demo["patient_link"].as_str().expect("link"),
            demo["password"].as_str().expect("pw"),
        )
        .await;
    let cookie = session_cookie(&res).expect("session");
    let manifest = app.manifest(&cookie).await;
    let id = manifest["study"]["series"][0]["instances"][0]["id"]
        .as_str()
        .expect("instance")
        .to_string();
    assert!(
        svc.db
            .cached_render(&id, 0, lichtkasten::studies::prepared::FULL_NAME)
            .await
            .expect("lookup")
            .is_none(),
        "nothing prepared without workers"
    );
    let url = format!("/view/api/instances/{id}/frames/1/rendered");
    let res = app.get_with_cookie(&url, &cookie).await;
    assert_eq!(res.status(), 200);
    let exact = res.bytes().await.expect("body").to_vec();
    assert!(exact.starts_with(b"\x89PNG"), "a PNG");
    let mut kept = None;
    for _ in 0..200 {
        kept = svc
            .db
            .cached_render(&id, 0, lichtkasten::studies::prepared::FULL_NAME)
            .await
            .expect("lookup");
        if kept.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(kept.is_some(), "the drawn PNG was not kept within 10 s");
    // With the originals gone, the kept copy answers, byte for byte.
    for blob in svc.db.all_blobs().await.expect("blobs") {
        if blob.kind == "original" {
            svc.blobs.delete(&blob.object_key).await.expect("delete");
        }
    }
    svc.recent_originals.forget_all();
    svc.recent_renders.forget_all();
    let again = app.get_with_cookie(&url, &cookie).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.bytes().await.expect("body").to_vec(), exact);
}

/// A render that is not kept (here a custom window through DICOMweb) is answered from
/// the node's memory when asked again, even with the original gone from the store;
/// once the study is deleted it is not served, memory or not, to a caller whose token
/// stays valid.
#[tokio::test]
async fn a_render_asked_again_comes_from_memory_until_its_study_is_gone() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let svc = app.services();
    let token = app.bearer(&demo).await;
    let json = |path: String| {
        let (app, token) = (&app, &token);
        async move {
            let v: serde_json::Value = app.get_api(token, &path).await.json().await.expect("json");
            v
        }
    };
    let studies = json("/dicomweb/studies".into()).await;
    let study_uid = studies[0]["0020000D"]["Value"][0]
        .as_str()
        .expect("study")
        .to_string();
    let series = json(format!("/dicomweb/studies/{study_uid}/series")).await;
    let series_uid = series[0]["0020000E"]["Value"][0]
        .as_str()
        .expect("series")
        .to_string();
    let instances = json(format!(
        "/dicomweb/studies/{study_uid}/series/{series_uid}/instances"
    ))
    .await;
    let sop = instances[0]["00080018"]["Value"][0]
        .as_str()
        .expect("sop")
        .to_string();
    let url = format!(
        "/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop}/rendered?window=-600,1500"
    );
    let first = app.get_api(&token, &url).await;
    assert_eq!(first.status(), 200);
    let first = first.bytes().await.expect("body").to_vec();
    for blob in svc.db.all_blobs().await.expect("blobs") {
        if blob.kind == "original" {
            svc.blobs.delete(&blob.object_key).await.expect("delete");
        }
    }
    svc.recent_originals.forget_all();
    let again = app.get_api(&token, &url).await;
    assert_eq!(again.status(), 200, "the render is remembered");
    assert_eq!(again.bytes().await.expect("body").to_vec(), first);
    // Another window is a new render, and the original is gone.
    let other = url.replace("-600,1500", "40,400");
    assert_ne!(app.get_api(&token, &other).await.status(), 200);

    let res = app
        .delete_study(&token, demo["study_id"].as_str().expect("study"))
        .await;
    assert!(res.status().is_success());
    assert_eq!(
        app.get_api(&token, &url).await.status(),
        404,
        "a deleted study's render is not served"
    );
    assert!(
        app.get_api(&token, "/api/v1/studies")
            .await
            .status()
            .is_success(),
        "the token itself still works"
    );
}

/// The stack route: many frames of a series in one answer, length-prefixed JPEGs in
/// the manifest's order; bounded counts; another study's series is not found.
#[tokio::test]
async fn a_series_comes_as_one_stack_of_jpegs() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let res = app
        .post_link(
            demo["patient_link"].as_str().expect("link"),
            demo["password"].as_str().expect("pw"),
        )
        .await;
    let cookie = session_cookie(&res).expect("session");
    let manifest = app.manifest(&cookie).await;
    let series = manifest["study"]["series"].as_array().expect("series");
    let ct = series
        .iter()
        .find(|s| s["modality"] == "CT")
        .expect("CT series");
    let cine = series
        .iter()
        .find(|s| s["modality"] == "US")
        .expect("cine series");
    let split = |body: &[u8]| {
        let mut items = Vec::new();
        let mut at = 0;
        while at < body.len() {
            let len = u32::from_be_bytes(body[at..at + 4].try_into().expect("len")) as usize;
            items.push(body[at + 4..at + 4 + len].to_vec());
            at += 4 + len;
        }
        items
    };
    let get = |url: String| {
        let (app, cookie) = (&app, &cookie);
        async move { app.get_with_cookie(&url, cookie).await }
    };
    let ct_id = ct["id"].as_str().expect("id");
    let res = get(format!("/view/api/series/{ct_id}/stack?from=2&count=5")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "private, no-store");
    let items = split(&res.bytes().await.expect("body"));
    assert_eq!(items.len(), 5);
    // Each is the scrolling size of the slice at that place in the manifest.
    let third = ct["instances"][2]["id"].as_str().expect("id");
    let alone = get(format!(
        "/view/api/instances/{third}/frames/1/rendered?viewport=256,256&format=jpeg&quality=75"
    ))
    .await
    .bytes()
    .await
    .expect("body");
    assert_eq!(items[0], alone.to_vec());
    assert!(items.iter().all(|i| i.starts_with(&[0xFF, 0xD8])));
    // The loop's frames, each its own picture; the end of the list ends the answer.
    let cine_id = cine["id"].as_str().expect("id");
    let frames = split(
        &get(format!(
            "/view/api/series/{cine_id}/stack?from=20&count=100"
        ))
        .await
        .bytes()
        .await
        .expect("body"),
    );
    assert_eq!(frames.len(), 4, "frames 21 to 24 of 24");
    assert_ne!(frames[0], frames[1]);
    for bad in ["count=0", "count=101", "variant=huge"] {
        let res = get(format!("/view/api/series/{ct_id}/stack?{bad}")).await;
        assert_eq!(res.status(), 400, "{bad}");
    }
    let res = get("/view/api/series/0123456789abcdef0123456789abcdef/stack".into()).await;
    assert_eq!(res.status(), 404);
}

/// Files of one series of a new study, with the study, series and SOP UIDs.
struct Series {
    files: Vec<Vec<u8>>,
    study_uid: String,
    series_uid: String,
    sops: Vec<String>,
}

/// Two CT slices of a new study, compressed to lossless JPEG 2000 by gdcmconv.
/// `None` where gdcm is missing (not in CI).
fn jpeg2000_slices() -> Option<Series> {
    use lichtkasten::dicom::synth::{StudySpec, ct_slice, new_uid};
    let mut rng = rand::thread_rng();
    let spec = StudySpec::demo(&mut rng);
    let series = new_uid(&mut rng);
    let sops: Vec<String> = (0..2).map(|_| new_uid(&mut rng)).collect();
    let dir = tempfile::tempdir().expect("dir");
    let mut files = Vec::new();
    for (i, sop) in sops.iter().enumerate() {
        let (input, output) = (dir.path().join("in.dcm"), dir.path().join("out.dcm"));
        std::fs::write(&input, ct_slice(&spec, &series, sop, i, 2, 128)).expect("write");
        let done = std::process::Command::new("gdcmconv")
            .arg("--j2k")
            .arg(&input)
            .arg(&output)
            .status();
        if !done.is_ok_and(|s| s.success()) {
            assert!(std::env::var("CI").is_err(), ".ci/run installs gdcm");
            eprintln!("gdcmconv missing: decoded copies not tested");
            return None;
        }
        files.push(std::fs::read(&output).expect("read"));
    }
    Some(Series {
        files,
        study_uid: spec.study_uid,
        series_uid: series,
        sops,
    })
}

/// A compressed original is kept decoded too when its renders are prepared. Renders
/// then read the copy (they still answer with the original gone) and draw exactly
/// what the original draws; a copy that cannot be read falls back to the original;
/// the copy is encrypted like every object and goes with its study.
#[tokio::test]
async fn a_compressed_original_is_kept_decoded_and_drawn_from_the_copy() {
    let Some(Series {
        files,
        study_uid,
        series_uid,
        sops,
    }) = jpeg2000_slices()
    else {
        return;
    };
    let app = app_without_workers().await;
    let demo = app.demo().await;
    let svc = app.services();
    let token = app.bearer(&demo).await;
    let res = app
        .post_studies(&token, "application/zip", super::helpers::zip_of(&files))
        .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["studies"][0]["accepted"], 2, "{body}");
    let study_id = body["studies"][0]["id"].as_str().expect("id").to_string();
    let url = |sop: &str, window: &str| {
        format!(
            "/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop}/rendered?window={window}"
        )
    };
    let get = |path: String| {
        let (app, token) = (&app, &token);
        async move {
            svc.recent_renders.forget_all();
            svc.recent_originals.forget_all();
            let res = app.get_api(token, &path).await;
            let status = res.status();
            (status, res.bytes().await.expect("body").to_vec())
        }
    };
    // Drawn from the originals, before anything is prepared.
    let mut drawn_from_originals = Vec::new();
    for sop in &sops {
        let (status, jpeg) = get(url(sop, "-600,1500")).await;
        assert_eq!(status, 200);
        drawn_from_originals.push(jpeg);
    }

    prepared::drain(svc, "worker", &svc.preparer)
        .await
        .expect("drain");
    let instances = svc.db.instances_of_study(&study_id).await.expect("db");
    assert_eq!(instances.len(), 2);
    let copies: Vec<_> = instances
        .iter()
        .map(|i| i.decoded.clone().expect("a decoded copy"))
        .collect();
    for (instance, copy) in instances.iter().zip(&copies) {
        // 128×128 16-bit samples and the attributes: bigger than the compressed file.
        assert!(copy.plain_size > 128 * 128 * 2, "{}", copy.plain_size);
        assert!(copy.plain_size > instance.plain_size);
        // Thumbnail, preview, scrolling size: the copy is not counted as a render.
        assert_eq!(svc.db.render_count(&instance.id).await.expect("count"), 3);
    }
    let blobs = svc.db.all_blobs().await.expect("blobs");
    let decoded: Vec<_> = blobs.iter().filter(|b| b.kind == "decoded").collect();
    assert_eq!(decoded.len(), 2);
    // Sealed like the rest: no DICOM header, no run of the samples in the store.
    let objects = app.stored_objects().await;
    for blob in &decoded {
        let stored = &objects
            .iter()
            .find(|(k, _)| *k == blob.object_key)
            .expect("copy object")
            .1;
        assert!(!contains(stored, b"DICM"));
        assert!(!contains(stored, b"1.2.840.10008.1.2.1"));
    }
    // The first slice's original gone: its renders come from the copy. The second
    // slice's copy gone: drawn from its original. Both the same picture as before.
    let by_sop = |sop: &str| {
        instances
            .iter()
            .position(|i| i.sop_uid == sop)
            .expect("instance")
    };
    let (first, second) = (by_sop(&sops[0]), by_sop(&sops[1]));
    let gone = [
        (&instances[first].object_key, "drawn from the decoded copy"),
        (&copies[second].object_key, "drawn from the original"),
    ];
    for (slice, (key, how)) in gone.into_iter().enumerate() {
        svc.blobs.delete(key).await.expect("delete");
        let (status, jpeg) = get(url(&sops[slice], "-600,1500")).await;
        assert_eq!(status, 200, "{how}");
        assert!(
            jpeg == drawn_from_originals[slice],
            "{how}: another picture"
        );
    }

    // Deleting the study deletes the copies.
    let res = app.delete_study(&token, &study_id).await;
    assert!(res.status().is_success());
    let left = app.stored_objects().await;
    assert!(
        left.iter().all(|(k, _)| *k != copies[first].object_key),
        "a decoded copy left behind"
    );
}
