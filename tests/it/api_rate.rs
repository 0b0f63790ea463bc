//! An API client gets its requests per minute, then 429 with `Retry-After`
//! (SECURITY.md FI-8): on the API, on Retrieve Rendered (which checks its token in
//! its own lookup) and on the token endpoint, so new tokens buy no fresh rate. Other
//! clients are counted apart, refused tokens stay 401, and waiting lets it in again.

use super::helpers::{TestApp, test_config};

fn first_uid(answer: &serde_json::Value, tag: &str) -> String {
    answer[0][tag]["Value"][0]
        .as_str()
        .unwrap_or_else(|| panic!("{tag} in {answer}"))
        .to_string()
}

#[tokio::test]
async fn a_client_over_its_rate_is_told_when_to_retry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path()).await;
    // One request every 10 s, six at once.
    config.api_requests_per_minute = 6;
    let app = TestApp::spawn_with(dir, config).await;
    let demo = app.demo().await;

    // 1: the token; 2–4: finding an instance.
    let token = app.bearer(&demo).await;
    let json = |res: reqwest::Response| async move {
        assert_eq!(res.status(), 200);
        res.json::<serde_json::Value>().await.expect("json")
    };
    let study = first_uid(
        &json(app.get_api(&token, "/dicomweb/studies").await).await,
        "0020000D",
    );
    let series = first_uid(
        &json(
            app.get_api(&token, &format!("/dicomweb/studies/{study}/series"))
                .await,
        )
        .await,
        "0020000E",
    );
    let sop = first_uid(
        &json(
            app.get_api(
                &token,
                &format!("/dicomweb/studies/{study}/series/{series}/instances"),
            )
            .await,
        )
        .await,
        "00080018",
    );
    let rendered = format!("/dicomweb/studies/{study}/series/{series}/instances/{sop}/rendered");
    // 5 and 6.
    assert_eq!(app.get_api(&token, &rendered).await.status(), 200);
    assert_eq!(app.get_api(&token, "/api/v1/studies").await.status(), 200);

    // The seventh, whatever the route.
    let res = app.get_api(&token, "/api/v1/studies").await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "10");
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limited");
    let res = app.get_api(&token, &rendered).await;
    assert_eq!(res.status(), 429, "Retrieve Rendered");
    assert_eq!(res.headers()["retry-after"], "10");
    let res = app
        .post_token(
            demo["api_client_id"].as_str().expect("id"),
            demo["api_client_secret"].as_str().expect("secret"),
        )
        .await;
    assert_eq!(res.status(), 429, "a new token");
    assert!(res.headers().contains_key("retry-after"));
    // A wrong secret is still just wrong, and an unknown token still 401.
    let res = app
        .post_token(demo["api_client_id"].as_str().expect("id"), "wrong")
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        app.get_api("lk_no_such_token", &rendered).await.status(),
        401
    );
    assert_eq!(
        app.get_api("lk_no_such_token", "/api/v1/studies")
            .await
            .status(),
        401
    );

    // Another client of the same practice has its own rate.
    let svc = app.services();
    let practice_id = svc.db.practices().await.expect("practices")[0].id.clone();
    let other = lichtkasten::auth::api_clients::create_client(
        &svc.db,
        &practice_id,
        "second RIS",
        svc.clock.now(),
    )
    .await
    .expect("client");
    let res = app.post_token(&other.client_id, &other.client_secret).await;
    assert_eq!(res.status(), 200);
    let other_token = res.json::<serde_json::Value>().await.expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(app.get_api(&other_token, &rendered).await.status(), 200);

    // Ten seconds buy one request, not two.
    app.clock.advance(10);
    assert_eq!(app.get_api(&token, &rendered).await.status(), 200);
    assert_eq!(app.get_api(&token, "/api/v1/studies").await.status(), 429);
    // A quiet minute gives back the whole minute's worth.
    app.clock.advance(60);
    for n in 0..6 {
        assert_eq!(
            app.get_api(&token, "/api/v1/studies").await.status(),
            200,
            "{n}"
        );
    }
    assert_eq!(app.get_api(&token, "/api/v1/studies").await.status(), 429);
}
