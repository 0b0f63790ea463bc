//! The OpenAPI document and the router agree, and every response carries the
//! security headers.

use super::helpers::TestApp;

#[tokio::test]
async fn every_documented_operation_exists() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value = app
        .http
        .get(format!("{}/api/openapi.json", app.base))
        .send()
        .await
        .expect("spec")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = lichtkasten::web::docs::operations();
    assert!(ops.len() >= 20, "{}", ops.len());
    for op in ops {
        let path = op
            .path
            .replace("{id}", "0123456789abcdef0123456789abcdef")
            .replace("{frame}", "1")
            .replace("{page}", "1")
            .replace("{study}", "1.2.3")
            .replace("{series}", "1.2.3.4")
            .replace("{instance}", "1.2.3.4.5")
            .replace("{token}", "sometoken")
            .replace("{code}", "en");
        let method = reqwest::Method::from_bytes(op.method.as_bytes()).expect("method");
        let res = app
            .http
            .request(method, format!("{}{}", app.base, path))
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        // Unauthenticated calls are refused by the caller check, which runs before any
        // lookup: a 404 or 405 here means the route itself is missing.
        assert!(
            status != 404 && status != 405,
            "{} {} answered {status}",
            op.method,
            op.path
        );
        let h = res.headers();
        assert!(
            h["content-security-policy"]
                .to_str()
                .expect("csp")
                .contains("frame-ancestors 'none'")
        );
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h.contains_key("x-request-id"));
    }
    let docs = app
        .http
        .get(format!("{}/api/docs", app.base))
        .send()
        .await
        .expect("docs");
    assert_eq!(docs.status(), 200);
    assert!(
        docs.text()
            .await
            .expect("html")
            .contains("/api/v1/studies/{id}/grants")
    );
}

#[tokio::test]
async fn cross_site_form_posts_are_refused() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let res = app
        .http
        .post(format!("{}/access", app.base))
        .header("origin", "https://evil.example")
        .form(&[
            ("access_code", demo["access_code"].as_str().expect("c")),
            ("password", demo["password"].as_str().expect("p")),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("set-cookie").is_none());
    // An opaque origin (sandboxed frame, data: page) and Fetch Metadata saying
    // "cross-site" are refused too.
    for origin in ["null", app.base.as_str()] {
        let res = app
            .http
            .post(format!("{}/access", app.base))
            .header("origin", origin)
            .header("sec-fetch-site", "cross-site")
            .form(&[("access_code", "x"), ("password", "y")])
            .send()
            .await
            .expect("post");
        assert_eq!(res.status(), 403, "origin {origin}");
    }
}

#[tokio::test]
async fn metrics_are_served_on_their_own_listener() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = super::helpers::test_config(dir.path()).await;
    config.metrics_listen = "127.0.0.1:0".into();
    let app = TestApp::spawn_with(dir, config).await;
    let demo = app.demo().await;
    assert_eq!(
        app.post_access(demo["access_code"].as_str().expect("c"), "wrongwrong")
            .await
            .status(),
        401
    );
    let metrics_addr = app
        .running
        .as_ref()
        .expect("running")
        .metrics_addr
        .expect("metrics addr");
    let text = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains("lichtkasten_signins_total{outcome=\"denied\"}"),
        "{text}"
    );
    assert!(text.contains("lichtkasten_instances_total{outcome=\"stored\"}"));
    // Not on the public port.
    assert_eq!(
        app.http
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .expect("get")
            .status(),
        404
    );
}
