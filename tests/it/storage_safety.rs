//! What is at rest: no plaintext anywhere in the data directory or the bucket, and
//! tampered or moved objects are refused, never served.

use super::helpers::{TestApp, contains, files_under, session_cookie};
use lichtkasten::blob::ByteStream;
use lichtkasten::dicom::synth::{StudySpec, ct_slice, new_uid};

fn stream(bytes: Vec<u8>) -> ByteStream {
    lichtkasten::blob::once(bytes::Bytes::from(bytes))
}

#[tokio::test]
async fn nothing_is_stored_in_plaintext() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let mut rng = rand::thread_rng();
    let mut spec = StudySpec::demo(&mut rng);
    spec.patient_name = "Plaintextsucher^Zacharias".into();
    spec.patient_id = "UNIQUE-PID-55123".into();
    spec.study_uid = new_uid(&mut rng);
    let file = ct_slice(&spec, &new_uid(&mut rng), &new_uid(&mut rng), 0, 1, 128);
    let res = app
        .post_studies(&token, "application/dicom", file.clone())
        .await;
    assert_eq!(res.status(), 200);

    // A run of pixel bytes from the middle of the image, and the identifiers.
    let pixels = &file[file.len() - 9000..file.len() - 8936];
    let needles: [&[u8]; 4] = [
        b"Plaintextsucher",
        b"Zacharias",
        b"UNIQUE-PID-55123",
        pixels,
    ];

    // Let SQLite write everything back from its WAL, then scan every file.
    if app.services().db.dialect() == lichtkasten::db::Dialect::Sqlite {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(app.services().db.pool())
            .await
            .expect("checkpoint");
    }
    let files = files_under(&app.config.data_dir);
    assert!(!files.is_empty());
    for path in files {
        let bytes = std::fs::read(&path).expect("read");
        for n in needles {
            assert!(
                !contains(&bytes, n),
                "plaintext found in {}",
                path.display()
            );
        }
    }
    let objects = app.stored_objects().await;
    assert!(!objects.is_empty());
    for (key, bytes) in objects {
        assert!(!key.contains("Plaintext") && !key.contains("55123"));
        for n in needles {
            assert!(!contains(&bytes, n), "plaintext found in object {key}");
        }
    }
}

#[tokio::test]
async fn tampered_and_moved_objects_are_refused() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
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
        .expect("manifest");
    let ids: Vec<String> = manifest["study"]["series"][0]["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect();
    // A window of its own: drawn from the original every time, never from the cache.
    let url = |id: &str| format!("/view/api/instances/{id}/frames/1/rendered?window=40,400");
    assert_eq!(
        app.get_with_cookie(&url(&ids[0]), &cookie).await.status(),
        200
    );

    let store = app.services().blobs.raw().clone();
    let key_of = |id: &str| {
        let db = app.services().db.clone();
        let study_id = manifest["study"]["id"].as_str().expect("study").to_string();
        let id = id.to_string();
        async move {
            db.instance(&study_id, &id)
                .await
                .expect("db")
                .expect("instance")
                .object_key
        }
    };
    let k0 = key_of(&ids[0]).await;
    let k1 = key_of(&ids[1]).await;
    let k2 = key_of(&ids[2]).await;
    let k3 = key_of(&ids[3]).await;
    let original0 = lichtkasten::blob::collect(store.get(&k0).await.expect("get"))
        .await
        .expect("read");
    let original1 = lichtkasten::blob::collect(store.get(&k1).await.expect("get"))
        .await
        .expect("read");

    // A flipped byte in the middle.
    let mut flipped = original0.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    store.put(&k0, stream(flipped)).await.expect("put");
    // Truncated.
    store
        .put(&k1, stream(original1[..original1.len() - 20].to_vec()))
        .await
        .expect("put");
    // Another object's bytes under this name (moved/swapped object).
    store
        .put(&k2, stream(original0.clone()))
        .await
        .expect("put");
    // Swapped segments within the object.
    let mut swapped = lichtkasten::blob::collect(store.get(&k3).await.expect("get"))
        .await
        .expect("read");
    let seg = lichtkasten::crypto::stream::SEALED_SEGMENT_SIZE;
    let h = lichtkasten::crypto::stream::HEADER_SIZE;
    assert!(
        swapped.len() > h + 2 * seg,
        "test image spans several segments"
    );
    let a = swapped[h..h + seg].to_vec();
    let b = swapped[h + seg..h + 2 * seg].to_vec();
    swapped[h..h + seg].copy_from_slice(&b);
    swapped[h + seg..h + 2 * seg].copy_from_slice(&a);
    store.put(&k3, stream(swapped)).await.expect("put");
    // What a node read before the tampering it may still hold in memory; a node
    // reading the store now must refuse.
    app.services().recent_originals.forget_all();
    app.services().recent_renders.forget_all();

    for id in &ids[..4] {
        let res = app.get_with_cookie(&url(id), &cookie).await;
        assert_eq!(res.status(), 500, "tampered object {id} must not be served");
        let body: serde_json::Value = res.json().await.expect("json");
        assert_eq!(body["error"]["code"], "integrity_error");
        assert!(body["error"]["request_id"].as_str().is_some());
    }
    // Untouched neighbours still render.
    assert_eq!(
        app.get_with_cookie(&url(&ids[4]), &cookie).await.status(),
        200
    );
}

#[tokio::test]
async fn purge_removes_orphans_but_nothing_in_use() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let store = app.services().blobs.raw().clone();
    let before = app.stored_objects().await.len();
    // An object no row refers to, as a crash between storing and recording leaves.
    let orphan = lichtkasten::blob::object_key("00ff00ff00ff00ff00ff00ff00ff00ff");
    store
        .put(&orphan, stream(vec![1, 2, 3]))
        .await
        .expect("put");
    // A patient session that will be long dead after the clock moves on.
    let old = app
        .post_access(
            demo["access_code"].as_str().expect("c"),
            demo["password"].as_str().expect("p"),
        )
        .await;
    assert_eq!(old.status(), 303);
    // Too young: it might be an upload in progress.
    let report = lichtkasten::purge::purge(app.services(), lichtkasten::purge::ORPHAN_MIN_AGE_SECS)
        .await
        .expect("purge");
    assert_eq!(report.orphaned_objects, 0);
    app.clock.advance(2 * 3600);
    let report = lichtkasten::purge::purge(app.services(), lichtkasten::purge::ORPHAN_MIN_AGE_SECS)
        .await
        .expect("purge");
    assert_eq!(report.orphaned_objects, 1);
    assert!(
        report.dead_rows >= 1,
        "the dead patient session row is gone"
    );
    let left = app.stored_objects().await;
    assert_eq!(left.len(), before);
    assert!(left.iter().all(|(k, _)| *k != orphan));
    // Everything in use still opens.
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
        .expect("manifest");
    let id = manifest["study"]["series"][0]["instances"][0]["id"]
        .as_str()
        .expect("id");
    assert_eq!(
        app.get_with_cookie(
            &format!("/view/api/instances/{id}/frames/1/rendered"),
            &cookie
        )
        .await
        .status(),
        200
    );
}
