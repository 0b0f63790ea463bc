//! The first journey of DESIGN §5, end to end over HTTP: demo line → token → upload
//! → grant → patient sign-in by code and by link → viewer → every image rendered.

use super::helpers::{TestApp, backend_name, session_cookie, zip_of};
use lichtkasten::dicom::synth::{StudySpec, demo_study, new_uid};

fn other_patient() -> StudySpec {
    let mut rng = rand::thread_rng();
    StudySpec {
        patient_name: "Öztürk^Ayşe".into(),
        patient_id: "P-7781".into(),
        birth_date: "19880203".into(),
        sex: "F".into(),
        study_uid: new_uid(&mut rng),
        study_date: "20261101".into(),
        description: "CT Abdomen".into(),
        accession: "ACC-77".into(),
        referring_physician: "Schulz^Karl".into(),
    }
}

#[tokio::test]
async fn demo_journey_end_to_end() {
    eprintln!("backend: {}", backend_name());
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    for key in [
        "base_url",
        "patient_link",
        "access_code",
        "password",
        "staff_username",
        "staff_password",
        "totp_secret",
        "api_client_id",
        "api_client_secret",
    ] {
        assert!(
            demo[key].as_str().is_some_and(|v| !v.is_empty()),
            "demo line lacks {key}"
        );
    }

    // The demo grant opens the demo study by code + password.
    let res = app
        .post_access(
            demo["access_code"].as_str().expect("code"),
            demo["password"].as_str().expect("pw"),
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/view");
    let set_cookie = res.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(set_cookie.starts_with("__Host-lk_session="), "{set_cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(
            set_cookie.contains(flag),
            "cookie lacks {flag}: {set_cookie}"
        );
    }
    assert!(!set_cookie.contains("Expires") && !set_cookie.contains("Max-Age"));
    let cookie = session_cookie(&res).expect("session cookie");
    let page = app.get_with_cookie("/view", &cookie).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.expect("html");
    assert!(
        html.contains("Jürgen Müller"),
        "viewer shows the patient name"
    );
    // Transparency: until when, and who opened the study.
    assert!(html.contains("Zugang bis"));
    assert!(
        html.contains("Wer hat Ihre Untersuchung geöffnet?")
            && html.contains("Sie (dieser Zugang)")
    );

    // API: token, upload a ZIP of a second patient's study, list, detail.
    let token = app.bearer(&demo).await;
    let spec = other_patient();
    let files = demo_study(&mut rand::thread_rng(), &spec, 4, 64);
    let res = app
        .post_studies(&token, "application/zip", zip_of(&files))
        .await;
    assert_eq!(res.status(), 200);
    let report: serde_json::Value = res.json().await.expect("json");
    assert_eq!(
        report["rejected"].as_array().expect("rejected").len(),
        0,
        "{report}"
    );
    let study_id = report["studies"][0]["id"]
        .as_str()
        .expect("study id")
        .to_string();
    assert_eq!(report["studies"][0]["accepted"], 5);

    // Sending the same files again is idempotent.
    let again = app
        .post_studies(&token, "application/zip", zip_of(&files))
        .await;
    let again: serde_json::Value = again.json().await.expect("json");
    assert_eq!(again["studies"][0]["id"], study_id.as_str());
    assert_eq!(again["studies"][0]["duplicates"], 5);
    assert_eq!(again["studies"][0]["accepted"], 0);

    let detail: serde_json::Value = app
        .get_api(&token, &format!("/api/v1/studies/{study_id}"))
        .await
        .json()
        .await
        .expect("detail");
    assert_eq!(detail["patient_name"], "Öztürk^Ayşe");
    assert_eq!(detail["patient_id"], "P-7781");
    assert_eq!(detail["patient_birth_date"], "19880203");
    assert_eq!(detail["accession"], "ACC-77");
    assert_eq!(detail["instance_count"], 5);
    assert_eq!(detail["series"].as_array().expect("series").len(), 2);
    let list: serde_json::Value = app
        .get_api(&token, "/api/v1/studies")
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(list["studies"].as_array().expect("studies").len(), 2);

    // A grant for it: code, password, link, end date in the shapes of DESIGN §3.
    let res = app.post_grant(&token, &study_id).await;
    assert_eq!(res.status(), 201);
    let grant: serde_json::Value = res.json().await.expect("grant");
    let code = grant["access_code"].as_str().expect("code");
    let password = grant["password"].as_str().expect("password");
    let link = grant["link"].as_str().expect("link");
    assert_eq!(code.len(), 14);
    assert_eq!(code.matches('-').count(), 2);
    assert_eq!(password.len(), 10);
    assert!(link.starts_with(&format!("{}/s/", app.base)));
    assert!(
        link.rsplit('/').next().expect("token").len() >= 22,
        "link token carries ≥128 bits"
    );
    assert!(grant["expires_at"].as_str().expect("expires").contains('T'));

    // Patient by link: the token moves into a cookie and leaves the address bar; the
    // page asks only for the password.
    let opened = app.http.get(link).send().await.expect("link");
    assert_eq!(opened.status(), 303);
    assert_eq!(opened.headers()["location"], "/s");
    let link_cookie = session_cookie(&opened).expect("link cookie");
    assert!(link_cookie.starts_with("__Host-lk_link="));
    let form = app.get_with_cookie("/s", &link_cookie).await;
    assert_eq!(form.status(), 200);
    let form_html = form.text().await.expect("html");
    assert!(form_html.contains("name=\"password\"") && !form_html.contains("Öztürk"));
    let res = app
        .http
        .post(format!("{}/s", app.base))
        .header("cookie", &link_cookie)
        .form(&[("password", password)])
        .send()
        .await
        .expect("sign in by link");
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/view");
    // Posting straight to the link works as well (API clients, old bookmarks).
    assert_eq!(app.post_link(link, password).await.status(), 303);
    let cookie = session_cookie(&res).expect("cookie");

    // Code typed in lower case and without dashes works too.
    let res = app
        .post_access(&code.replace('-', "").to_lowercase(), password)
        .await;
    assert_eq!(res.status(), 303);

    // The viewer shows this study only, and every image renders as a PNG of the right size.
    let manifest: serde_json::Value = app
        .get_with_cookie("/view/api/study", &cookie)
        .await
        .json()
        .await
        .expect("manifest");
    assert_eq!(manifest["study"]["id"], study_id.as_str());
    let mut rendered = 0;
    for series in manifest["study"]["series"].as_array().expect("series") {
        for inst in series["instances"].as_array().expect("instances") {
            let id = inst["id"].as_str().expect("id");
            let res = app
                .get_with_cookie(
                    &format!("/view/api/instances/{id}/frames/1/rendered"),
                    &cookie,
                )
                .await;
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["content-type"], "image/png");
            assert!(
                res.headers()["cache-control"]
                    .to_str()
                    .expect("cc")
                    .contains("no-store")
            );
            let png = res.bytes().await.expect("png");
            let decoder = png::Decoder::new(std::io::Cursor::new(png.to_vec()));
            let reader = decoder.read_info().expect("valid png");
            assert_eq!((reader.info().width, reader.info().height), (64, 64));
            rendered += 1;
        }
    }
    assert_eq!(rendered, 5);
    // A frame the instance does not have, kept size or not: not found.
    let first = manifest["study"]["series"][0]["instances"][0]["id"]
        .as_str()
        .expect("id");
    for query in ["", "?viewport=10,10"] {
        let res = app
            .get_with_cookie(
                &format!("/view/api/instances/{first}/frames/2/rendered{query}"),
                &cookie,
            )
            .await;
        assert_eq!(res.status(), 404, "frame 2 {query}");
    }
    // The demo study's instances are not reachable from this grant's session.
    let demo_study_id = demo["study_id"].as_str().expect("demo study");
    let other = app
        .get_api(&token, &format!("/api/v1/studies/{demo_study_id}"))
        .await;
    let other: serde_json::Value = other.json().await.expect("json");
    let foreign = other["series"][0]["instances"][0]["id"]
        .as_str()
        .expect("instance");
    let res = app
        .get_with_cookie(
            &format!("/view/api/instances/{foreign}/frames/1/rendered"),
            &cookie,
        )
        .await;
    assert_eq!(res.status(), 404);

    // The audit trail saw the upload, the grant and the patient's sign-in.
    let audit: serde_json::Value = app
        .get_api(&token, &format!("/api/v1/studies/{study_id}/audit"))
        .await
        .json()
        .await
        .expect("audit");
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in ["study.ingest", "grant.issue", "grant.redeem"] {
        assert!(actions.contains(&a), "audit lacks {a}: {actions:?}");
    }

    // Revoking the grant ends the live session at its next request.
    let res = app
        .http
        .delete(format!(
            "{}/api/v1/grants/{}",
            app.base,
            grant["id"].as_str().expect("id")
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("revoke");
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.get_with_cookie("/view/api/study", &cookie)
            .await
            .status(),
        401
    );
    assert_eq!(app.post_access(code, password).await.status(), 401);

    // Deleting the study removes it, its objects and its key.
    let before = app.stored_objects().await.len();
    // Its originals, its report and the renders the viewer had cached.
    let of_study = app
        .services()
        .db
        .all_blobs()
        .await
        .expect("blobs")
        .into_iter()
        .filter(|b| b.study_id == study_id)
        .count();
    assert!(of_study > 5, "originals, report and cached renders");
    let res = app.delete_study(&token, &study_id).await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.get_api(&token, &format!("/api/v1/studies/{study_id}"))
            .await
            .status(),
        404
    );
    assert_eq!(app.stored_objects().await.len(), before - of_study);
}

#[tokio::test]
async fn patient_session_timeouts_and_logout() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let code = demo["access_code"].as_str().expect("code");
    let password = demo["password"].as_str().expect("pw");
    let sign_in =
        || async { session_cookie(&app.post_access(code, password).await).expect("cookie") };

    // Liveness: without requests for over 180 s (tab closed), the session is over.
    let cookie = sign_in().await;
    app.clock.advance(170);
    assert_eq!(
        app.post_with_cookie("/view/api/heartbeat", &cookie)
            .await
            .status(),
        200
    );
    app.clock.advance(170);
    assert_eq!(
        app.get_with_cookie("/view/api/study", &cookie)
            .await
            .status(),
        200
    );
    app.clock.advance(181);
    assert_eq!(
        app.get_with_cookie("/view/api/study", &cookie)
            .await
            .status(),
        401
    );
    // A page request after the end goes back to the start page.
    let res = app.get_with_cookie("/view", &cookie).await;
    assert_eq!(res.status(), 303);

    // Idle: heartbeats alone do not keep it open beyond 15 minutes.
    let cookie = sign_in().await;
    for _ in 0..15 {
        app.clock.advance(60);
        assert_eq!(
            app.post_with_cookie("/view/api/heartbeat", &cookie)
                .await
                .status(),
            200
        );
    }
    app.clock.advance(60);
    assert_eq!(
        app.post_with_cookie("/view/api/heartbeat", &cookie)
            .await
            .status(),
        401
    );

    // The viewer's own fetches are not the person: images loading in the
    // background do not keep an idle session open either.
    let cookie = sign_in().await;
    for _ in 0..15 {
        app.clock.advance(60);
        assert_eq!(
            app.get_with_cookie("/view/api/study", &cookie)
                .await
                .status(),
            200
        );
    }
    app.clock.advance(60);
    assert_eq!(
        app.get_with_cookie("/view/api/study", &cookie)
            .await
            .status(),
        401
    );

    // Absolute: 60 minutes even with activity (beats that report input).
    let cookie = sign_in().await;
    let active_beat = |cookie: String| {
        let app = &app;
        async move {
            app.http
                .post(format!("{}/view/api/heartbeat", app.base))
                .header("cookie", cookie)
                .header("x-tab", "test-tab-0123456789abcdef")
                .header("x-active", "1")
                .send()
                .await
                .expect("beat")
                .status()
        }
    };
    for _ in 0..21 {
        app.clock.advance(170);
        assert_eq!(active_beat(cookie.clone()).await, 200);
    }
    app.clock.advance(170);
    assert_eq!(active_beat(cookie.clone()).await, 401);

    // Logout clears the site's data and kills the session.
    let cookie = sign_in().await;
    let res = app.post_with_cookie("/view/logout", &cookie).await;
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["clear-site-data"]
            .to_str()
            .expect("csd")
            .contains("cookies")
    );
    assert_eq!(
        app.get_with_cookie("/view/api/study", &cookie)
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn closing_the_tab_ends_the_session_a_reload_does_not() {
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
    let tab = "tab-aaaaaaaaaaaaaaaaaaaa";
    let beat = |nonce: &'static str| {
        app.http
            .post(format!("{}/view/api/heartbeat", app.base))
            .header("cookie", &cookie)
            .header("x-tab", nonce)
            .send()
    };
    let leave = |nonce: &'static str| {
        app.http
            .post(format!("{}/view/api/leave", app.base))
            .header("cookie", &cookie)
            .body(nonce)
            .send()
    };
    assert_eq!(beat(tab).await.expect("beat").status(), 200);
    // The same cookie from another browser context (another tab nonce) is refused.
    assert_eq!(
        beat("tab-bbbbbbbbbbbbbbbbbbbb")
            .await
            .expect("beat")
            .status(),
        401
    );
    assert_eq!(beat(tab).await.expect("beat").status(), 200);
    // A reload: pagehide says goodbye, the same tab is back within seconds.
    assert_eq!(leave(tab).await.expect("leave").status(), 204);
    app.clock.advance(3);
    assert_eq!(beat(tab).await.expect("beat").status(), 200);
    app.clock.advance(30);
    assert_eq!(
        app.get_with_cookie("/view/api/study", &cookie)
            .await
            .status(),
        200
    );
    // Another context cannot cancel the goodbye of the owning tab.
    assert_eq!(
        leave("tab-bbbbbbbbbbbbbbbbbbbb")
            .await
            .expect("leave")
            .status(),
        204
    );
    assert_eq!(
        app.get_with_cookie("/view/api/study", &cookie)
            .await
            .status(),
        200
    );
    // Closed: after the grace period the session is over.
    assert_eq!(leave(tab).await.expect("leave").status(), 204);
    app.clock.advance(11);
    assert_eq!(
        app.get_with_cookie("/view/api/study", &cookie)
            .await
            .status(),
        401
    );
    assert_eq!(beat(tab).await.expect("beat").status(), 401);
}

/// Uploads a new study of the demo patient (same name, ID, birth date) and returns
/// its id; the study passed in is only there to say which practice.
pub async fn same_patient_new_study(app: &TestApp, token: &str, _of_study: &str) -> String {
    let mut rng = rand::thread_rng();
    let mut spec = StudySpec::demo(&mut rng);
    spec.study_date = "20261121".into();
    spec.description = "MRT Knie (Demo)".into();
    let files = demo_study(&mut rng, &spec, 3, 64);
    let res = app
        .post_studies(token, "application/zip", zip_of(&files))
        .await;
    assert_eq!(res.status(), 200);
    let report: serde_json::Value = res.json().await.expect("json");
    report["studies"][0]["id"]
        .as_str()
        .expect("study id")
        .to_string()
}
