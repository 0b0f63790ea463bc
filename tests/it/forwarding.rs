//! A patient forwards the study to a doctor: a grant of its own, never longer than the
//! patient's, revocable by the patient and by the practice.

use super::helpers::{TestApp, session_cookie};

fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let at = html
        .find(start)
        .unwrap_or_else(|| panic!("{start} not found"))
        + start.len();
    html[at..].split(end).next().expect("end")
}

async fn forward(app: &TestApp, cookie: &str, days: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/view/forward", app.base))
        .header("cookie", cookie)
        .form(&[("days", days)])
        .send()
        .await
        .expect("forward")
}

#[tokio::test]
async fn patients_forward_to_doctors_and_can_take_it_back() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let patient = session_cookie(
        &app.post_access(
            demo["access_code"].as_str().expect("c"),
            demo["password"].as_str().expect("p"),
        )
        .await,
    )
    .expect("patient");
    let viewer = app
        .get_with_cookie("/view", &patient)
        .await
        .text()
        .await
        .expect("viewer");
    assert!(viewer.contains("action=\"/view/forward\""));

    // Asked for 400 days: capped at the patient's own end.
    let res = forward(&app, &patient, "400").await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.expect("page");
    let code = between(&page, "<dd><code>", "</code>").to_string();
    let password = between(&page, "</code></dd>\n    <dt>", "</dl>");
    let password = between(password, "<code>", "</code>").to_string();
    let id = between(&page, "/view/forwards/", "/letter.pdf").to_string();
    let forward_row = app
        .services()
        .db
        .grant_by_id(&id)
        .await
        .expect("db")
        .expect("grant");
    let parent = app
        .services()
        .db
        .grant_by_id(forward_row.parent_grant_id.as_deref().expect("parent"))
        .await
        .expect("db")
        .expect("parent");
    assert_eq!(forward_row.audience, "referrer");
    assert_eq!(forward_row.expires_at, parent.expires_at);

    // The doctor opens the same study; doctors cannot forward further.
    let doctor = session_cookie(&app.post_access(&code, &password).await).expect("doctor");
    let manifest: serde_json::Value = app
        .get_with_cookie("/view/api/study", &doctor)
        .await
        .json()
        .await
        .expect("m");
    assert_eq!(manifest["study"]["id"], demo["study_id"]);
    assert!(
        !app.get_with_cookie("/view", &doctor)
            .await
            .text()
            .await
            .expect("v")
            .contains("action=\"/view/forward\"")
    );
    assert_eq!(forward(&app, &doctor, "10").await.status(), 403);

    // Printable, and visible to the practice.
    let letter = app
        .get_with_cookie(&format!("/view/forwards/{id}/letter.pdf"), &patient)
        .await;
    assert_eq!(letter.status(), 200);
    assert_eq!(letter.headers()["content-type"], "application/pdf");
    assert_eq!(
        app.get_with_cookie(&format!("/view/forwards/{id}/letter.pdf"), &doctor)
            .await
            .status(),
        404
    );
    let audit: serde_json::Value = app
        .get_api(
            &token,
            &format!(
                "/api/v1/studies/{}/audit",
                demo["study_id"].as_str().expect("s")
            ),
        )
        .await
        .json()
        .await
        .expect("audit");
    assert!(
        audit["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["action"] == "grant.forward")
    );

    // The patient takes it back: the doctor's session ends.
    let res = app
        .post_with_cookie(&format!("/view/forwards/{id}/revoke"), &patient)
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        app.get_with_cookie("/view/api/study", &doctor)
            .await
            .status(),
        401
    );

    // The practice revokes the patient's grant: every forward of it goes too.
    let page = forward(&app, &patient, "10")
        .await
        .text()
        .await
        .expect("page");
    let code2 = between(&page, "<dd><code>", "</code>").to_string();
    let pw2 = between(
        between(&page, "</code></dd>\n    <dt>", "</dl>"),
        "<code>",
        "</code>",
    )
    .to_string();
    let doctor2 = session_cookie(&app.post_access(&code2, &pw2).await).expect("doctor2");
    let res = app
        .http
        .delete(format!("{}/api/v1/grants/{}", app.base, parent.id))
        .bearer_auth(&token)
        .send()
        .await
        .expect("revoke");
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.get_with_cookie("/view/api/study", &doctor2)
            .await
            .status(),
        401
    );
    assert_eq!(app.post_access(&code2, &pw2).await.status(), 401);
}

#[tokio::test]
async fn the_practice_can_switch_forwarding_off() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let practice = app.services().db.practices().await.expect("p")[0]
        .id
        .clone();
    let mut settings = app
        .services()
        .db
        .practice_settings(&practice)
        .await
        .expect("db")
        .expect("s");
    settings.allow_forwarding = false;
    app.services()
        .db
        .update_practice_settings(&practice, &settings)
        .await
        .expect("update");
    let patient = session_cookie(
        &app.post_access(
            demo["access_code"].as_str().expect("c"),
            demo["password"].as_str().expect("p"),
        )
        .await,
    )
    .expect("patient");
    assert!(
        !app.get_with_cookie("/view", &patient)
            .await
            .text()
            .await
            .expect("v")
            .contains("/view/forward")
    );
    assert_eq!(forward(&app, &patient, "10").await.status(), 403);
}

#[tokio::test]
async fn referring_doctors_see_findings_early_if_the_practice_says_so() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let study = demo["study_id"].as_str().expect("study");
    let referrer: serde_json::Value = app
        .http
        .post(format!("{}/api/v1/studies/{study}/grants", app.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"audience": "referrer"}))
        .send()
        .await
        .expect("grant")
        .json()
        .await
        .expect("json");
    let mut page = lichtkasten::letters::pdf::Page::default();
    page.text(
        20.0,
        20.0,
        12.0,
        lichtkasten::letters::pdf::Font::Regular,
        "Befund",
    );
    let pdf = lichtkasten::letters::pdf::render(&[page], "Befund");
    let tomorrow = lichtkasten::clock::Clock::now(&app.clock) + 86_400;
    let res = app
        .http
        .post(format!(
            "{}/api/v1/studies/{study}/findings?release_at={tomorrow}",
            app.base
        ))
        .bearer_auth(&token)
        .body(pdf)
        .send()
        .await
        .expect("findings");
    assert_eq!(res.status(), 201);
    let doctor = session_cookie(
        &app.post_access(
            referrer["access_code"].as_str().expect("c"),
            referrer["password"].as_str().expect("p"),
        )
        .await,
    )
    .expect("doctor");
    let patient = session_cookie(
        &app.post_access(
            demo["access_code"].as_str().expect("c"),
            demo["password"].as_str().expect("p"),
        )
        .await,
    )
    .expect("patient");
    let count = |cookie: String| {
        let app = &app;
        async move {
            let m: serde_json::Value = app
                .get_with_cookie("/view/api/study", &cookie)
                .await
                .json()
                .await
                .expect("m");
            // The demo's own report is released at once; count the others.
            m["findings"].as_array().expect("findings").len() - 1
        }
    };
    assert_eq!(
        count(doctor.clone()).await,
        1,
        "the doctor sees it before release"
    );
    assert_eq!(count(patient.clone()).await, 0, "the patient does not");
    // Switched off: the doctor waits like the patient.
    let practice = app.services().db.practices().await.expect("p")[0]
        .id
        .clone();
    let mut settings = app
        .services()
        .db
        .practice_settings(&practice)
        .await
        .expect("db")
        .expect("s");
    settings.referrer_findings_early = false;
    app.services()
        .db
        .update_practice_settings(&practice, &settings)
        .await
        .expect("update");
    assert_eq!(count(doctor).await, 0);
}
