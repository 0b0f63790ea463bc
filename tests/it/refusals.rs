//! Patient sign-in refusals: one answer for every reason, per-grant lockout after the
//! 11th failure in 24 h, and nothing shared between grants behind one address.

use crate::helpers::{TestApp, session_cookie};

/// Status, content type and body, with the request id (the one part allowed to
/// differ) cut out.
async fn refusal(res: reqwest::Response) -> (u16, String, String) {
    let status = res.status().as_u16();
    let request_id = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(res.headers().get("set-cookie").is_none());
    let mut body = res.text().await.expect("body");
    if !request_id.is_empty() {
        body = body.replace(&request_id, "<request-id>");
    }
    (status, content_type, body)
}

async fn new_grant(app: &TestApp, token: &str, study: &str) -> serde_json::Value {
    let res = app.post_grant(token, study).await;
    assert_eq!(res.status(), 201);
    res.json().await.expect("grant json")
}

#[tokio::test]
async fn five_refusal_reasons_give_byte_identical_answers() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let study = demo["study_id"].as_str().expect("study");

    // Grants first: API tokens are short-lived and the clock moves below.
    let live = new_grant(&app, &token, study).await;
    let revoked = new_grant(&app, &token, study).await;
    let locked = new_grant(&app, &token, study).await;
    let expiring = new_grant(&app, &token, study).await;
    let res = app
        .http
        .delete(format!(
            "{}/api/v1/grants/{}",
            app.base,
            revoked["id"].as_str().expect("id")
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("revoke");
    assert!(res.status().is_success());

    // Wrong password on a live grant.
    let wrong = refusal(
        app.post_access(live["access_code"].as_str().expect("c"), "WRONGWRONG")
            .await,
    )
    .await;
    // A code nobody was given.
    let unknown = refusal(app.post_access("ABCD-EFGH-JKMN", "WRONGWRONG").await).await;
    // Revoked, with its right password.
    let revoked = refusal(
        app.post_access(
            revoked["access_code"].as_str().expect("c"),
            revoked["password"].as_str().expect("p"),
        )
        .await,
    )
    .await;
    // Locked, with its right password.
    let code = locked["access_code"].as_str().expect("c");
    for _ in 0..11 {
        assert_eq!(app.post_access(code, "WRONGWRONG").await.status(), 401);
        app.clock.advance(301);
    }
    let locked = refusal(
        app.post_access(code, locked["password"].as_str().expect("p"))
            .await,
    )
    .await;
    // Expired, with its right password: 30 days and more later.
    app.clock.advance(31 * 86_400);
    let expired = refusal(
        app.post_access(
            expiring["access_code"].as_str().expect("c"),
            expiring["password"].as_str().expect("p"),
        )
        .await,
    )
    .await;

    assert_eq!(wrong.0, 401);
    for (name, other) in [
        ("unknown code", &unknown),
        ("revoked", &revoked),
        ("locked", &locked),
        ("expired", &expired),
    ] {
        assert_eq!(
            &wrong, other,
            "{name} answers differently from a wrong password"
        );
    }
}

#[tokio::test]
async fn the_eleventh_failure_locks_one_grant_and_no_other() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let study = demo["study_id"].as_str().expect("study");
    let target = new_grant(&app, &token, study).await;
    let neighbour = new_grant(&app, &token, study).await;
    let code = target["access_code"].as_str().expect("c");
    let password = target["password"].as_str().expect("p");

    // Ten failures spread over 20 hours are tolerated...
    for _ in 0..10 {
        assert_eq!(app.post_access(code, "WRONGWRONG").await.status(), 401);
        app.clock.advance(2 * 3600);
    }
    let grant_id = target["id"].as_str().expect("id");
    let row = app.services().db.grant_by_id(grant_id).await.expect("db");
    assert!(
        row.expect("grant").locked_at.is_none(),
        "ten failures do not lock"
    );
    // ... the 11th within 24 h locks, and then the right password is refused too.
    assert_eq!(app.post_access(code, "WRONGWRONG").await.status(), 401);
    app.clock.advance(301);
    let res = app.post_access(code, password).await;
    assert_eq!(res.status(), 401, "locked: the right password is refused");
    assert!(session_cookie(&res).is_none());

    // The same address signs in to another grant at once.
    let res = app
        .post_access(
            neighbour["access_code"].as_str().expect("c"),
            neighbour["password"].as_str().expect("p"),
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(session_cookie(&res).is_some());

    // Only the practice lifts the lock: a new password for the same code.
    let token = app.bearer(&demo).await;
    let res = app
        .http
        .post(format!("{}/api/v1/grants/{grant_id}/reissue", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("reissue");
    assert_eq!(res.status(), 200);
    let reissued: serde_json::Value = res.json().await.expect("json");
    let res = app
        .post_access(code, reissued["password"].as_str().expect("p"))
        .await;
    assert_eq!(res.status(), 303);
}
