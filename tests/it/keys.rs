//! Key handling: rotation keeps every object readable without touching it, the old
//! root key can then be removed, and the server refuses to start without its key or
//! with a key file others can read.

use super::helpers::{TestApp, files_under, session_cookie};
use lichtkasten::clock::Clock;
use std::os::unix::fs::PermissionsExt;

async fn renders_all(app: &TestApp, demo: &serde_json::Value) -> usize {
    let cookie = session_cookie(
        &app.post_access(
            demo["access_code"].as_str().expect("c"),
            demo["password"].as_str().expect("p"),
        )
        .await,
    )
    .expect("signed in");
    let manifest: serde_json::Value = app
        .get_with_cookie("/view/api/study", &cookie)
        .await
        .json()
        .await
        .expect("manifest");
    let mut n = 0;
    for s in manifest["study"]["series"].as_array().expect("series") {
        for i in s["instances"].as_array().expect("instances") {
            let url = format!(
                "/view/api/instances/{}/frames/1/rendered",
                i["id"].as_str().expect("id")
            );
            assert_eq!(app.get_with_cookie(&url, &cookie).await.status(), 200);
            n += 1;
        }
    }
    assert_eq!(manifest["study"]["patient_name"], "Müller^Jürgen");
    n
}

fn key_files(app: &TestApp) -> Vec<std::path::PathBuf> {
    files_under(&app.config.keys_dir())
}

#[tokio::test]
async fn rotation_keeps_objects_readable_and_old_root_removable() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    assert_eq!(renders_all(&app, &demo).await, 14);
    let objects_before = app.stored_objects().await;
    let old_keys = key_files(&app);
    assert_eq!(old_keys.len(), 1);
    let mode = std::fs::metadata(&old_keys[0])
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o400);

    // Rotate the root key through a second instance on the same data (as the CLI does).
    let config = app.config.clone();
    let clock = std::sync::Arc::new(app.clock.clone());
    let mut ops = lichtkasten::app::build(config.clone(), clock.clone(), "http://127.0.0.1".into())
        .await
        .expect("build");
    let retired = ops
        .keys
        .rotate_root(&ops.db, app.clock.now())
        .await
        .expect("rotate root");
    assert_eq!(retired.len(), 1);
    // And the practice key, which rewraps every study key and reseals patient rows.
    let practice = ops.db.practices().await.expect("practices")[0].id.clone();
    let n = ops
        .keys
        .rotate_practice(&ops.db, &practice, app.clock.now())
        .await
        .expect("rotate practice");
    assert_eq!(n, 1);
    drop(ops);

    // Objects are untouched: same names, same bytes.
    assert_eq!(app.stored_objects().await, objects_before);
    // The old root key can go; after a restart everything still opens.
    std::fs::remove_file(&old_keys[0]).expect("remove old root key");
    let app = app.restart().await;
    assert_eq!(renders_all(&app, &demo).await, 14);
    // Re-sending a file of the study still matches the same patient and study.
    let token = app.bearer(&demo).await;
    let list: serde_json::Value = app
        .get_api(&token, "/api/v1/studies")
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(list["studies"].as_array().expect("studies").len(), 1);
    // TOTP seeds were resealed under the new practice key: staff can still sign in.
    let session = super::staff::sign_in(&app, &demo).await;
    assert_eq!(
        app.get_with_cookie("/practice", &session).await.status(),
        200
    );
}

#[tokio::test]
async fn refuses_to_start_without_its_key_or_with_an_open_key_file() {
    let app = TestApp::spawn().await;
    app.demo().await;
    let key = key_files(&app).pop().expect("root key");
    let TestApp {
        dir,
        config,
        running,
        ..
    } = app;
    running.expect("running").stop().await;

    // World-readable key file.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = lichtkasten::app::start(
        config.clone(),
        std::sync::Arc::new(lichtkasten::clock::SystemClock),
    )
    .await
    .err()
    .expect("must refuse");
    assert!(
        format!("{err:#}").contains("readable by group or others"),
        "{err:#}"
    );

    // Missing key file.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    let moved = dir.path().join("elsewhere.key");
    std::fs::rename(&key, &moved).expect("move key");
    let err = lichtkasten::app::start(
        config.clone(),
        std::sync::Arc::new(lichtkasten::clock::SystemClock),
    )
    .await
    .err()
    .expect("must refuse");
    assert!(format!("{err:#}").contains("is missing"), "{err:#}");

    // Back in place: starts again.
    std::fs::rename(&moved, &key).expect("restore key");
    let running =
        lichtkasten::app::start(config, std::sync::Arc::new(lichtkasten::clock::SystemClock))
            .await
            .expect("starts with its key");
    running.stop().await;
}
