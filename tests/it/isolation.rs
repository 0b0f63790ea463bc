//! Tenant isolation matrix: every documented API route with an id, and every staff
//! page with an id, called by another practice with this practice's ids, answers
//! exactly like an id that does not exist.

use super::helpers::TestApp;
use super::staff::sign_in;

const UNKNOWN: &str = "0123456789abcdef0123456789abcdef";

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    html[at..].split('"').next().expect("value").to_string()
}

/// Status and error code, the parts that must match (request ids differ).
async fn shape(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body = res.text().await.unwrap_or_default();
    let code = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_else(|| {
            // HTML error pages show the code in <code>…</code>.
            body.split("<code>")
                .nth(1)
                .and_then(|s| s.split('<').next())
                .unwrap_or("")
                .to_string()
        });
    (status, code)
}

#[tokio::test]
async fn another_practice_sees_nothing() {
    let app = TestApp::spawn().await;
    let a = app.demo().await;
    let b = app.demo().await;
    let a_token = app.bearer(&a).await;
    let b_token = app.bearer(&b).await;
    let study = a["study_id"].as_str().expect("study");
    let grant: serde_json::Value = app
        .post_grant(&a_token, study)
        .await
        .json()
        .await
        .expect("grant");
    let grant_id = grant["id"].as_str().expect("grant id");
    let detail: serde_json::Value = app
        .get_api(&a_token, &format!("/api/v1/studies/{study}"))
        .await
        .json()
        .await
        .expect("detail");
    let instance = detail["series"][0]["instances"][0]["id"]
        .as_str()
        .expect("instance");

    // API: every documented route with an id.
    let mut checked = 0;
    for op in lichtkasten::web::docs::operations() {
        if !op.path.starts_with("/api/v1/") || !op.path.contains("{id}") {
            continue;
        }
        let a_id = if op.path.starts_with("/api/v1/grants/") {
            grant_id
        } else {
            study
        };
        let method = reqwest::Method::from_bytes(op.method.as_bytes()).expect("method");
        let call = |id: &str| {
            app.http
                .request(
                    method.clone(),
                    format!("{}{}", app.base, op.path.replace("{id}", id)),
                )
                .bearer_auth(&b_token)
                .send()
        };
        let foreign = shape(call(a_id).await.expect("foreign")).await;
        let missing = shape(call(UNKNOWN).await.expect("missing")).await;
        assert_eq!(foreign, missing, "{} {}", op.method, op.path);
        assert_eq!(foreign.0, 404, "{} {}", op.method, op.path);
        checked += 1;
    }
    assert!(checked >= 7, "{checked}");
    // A's study is untouched by all of that.
    assert_eq!(
        app.get_api(&a_token, &format!("/api/v1/studies/{study}"))
            .await
            .status(),
        200
    );

    // Staff pages: B's admin with A's ids.
    let b_session = sign_in(&app, &b).await;
    let csrf = csrf_of(
        &app.get_with_cookie("/practice/users", &b_session)
            .await
            .text()
            .await
            .expect("page"),
    );
    let a_user = app
        .services()
        .db
        .staff_by_username(a["staff_username"].as_str().expect("u"))
        .await
        .expect("db")
        .expect("user")
        .id;
    let a_practice = app
        .services()
        .db
        .staff_by_id(&a_user)
        .await
        .expect("db")
        .expect("u")
        .practice_id;
    let a_client = app
        .services()
        .db
        .api_clients_of_practice(&a_practice)
        .await
        .expect("db")[0]
        .id
        .clone();
    let pages: Vec<(&str, String)> = vec![
        ("GET", format!("/practice/studies/{study}")),
        (
            "GET",
            format!("/practice/api/studies/{study}/instances/{instance}/rendered"),
        ),
        ("GET", format!("/practice/grants/{grant_id}/letter.pdf")),
        ("POST", format!("/practice/studies/{study}/grants")),
        ("POST", format!("/practice/studies/{study}/delete")),
        ("POST", format!("/practice/grants/{grant_id}/revoke")),
        ("POST", format!("/practice/grants/{grant_id}/reissue")),
        ("POST", format!("/practice/users/{a_user}/edit")),
        ("POST", format!("/practice/users/{a_user}/deactivate")),
        ("POST", format!("/practice/users/{a_user}/unlock")),
        ("POST", format!("/practice/users/{a_user}/reset")),
        ("POST", format!("/practice/api-clients/{a_client}/renew")),
        ("POST", format!("/practice/api-clients/{a_client}/disable")),
    ];
    for (method, path) in pages {
        let call = |p: String| {
            let req = if method == "GET" {
                app.http.get(format!("{}{p}", app.base))
            } else {
                app.http.post(format!("{}{p}", app.base))
            };
            req.header("cookie", &b_session)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("confirm", "yes"),
                    ("days", "30"),
                    ("username", "x.y.z"),
                    ("display_name", "X"),
                    ("role", "staff"),
                ])
                .send()
        };
        let missing_path = path
            .replace(study, UNKNOWN)
            .replace(grant_id, UNKNOWN)
            .replace(&a_user, UNKNOWN)
            .replace(&a_client, UNKNOWN)
            .replace(instance, UNKNOWN);
        let foreign = shape(call(path.clone()).await.expect("foreign")).await;
        let missing = shape(call(missing_path).await.expect("missing")).await;
        assert_eq!(foreign, missing, "{method} {path}");
        assert_eq!(foreign.0, 404, "{method} {path}");
    }
    // Still intact for A.
    assert_eq!(
        app.get_api(&a_token, &format!("/api/v1/studies/{study}"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_access(
            grant["access_code"].as_str().expect("c"),
            grant["password"].as_str().expect("p")
        )
        .await
        .status(),
        303
    );
    let a_row = app
        .services()
        .db
        .staff_by_id(&a_user)
        .await
        .expect("db")
        .expect("user");
    assert!(a_row.active && a_row.username == a["staff_username"].as_str().expect("u"));
}
