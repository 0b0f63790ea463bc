//! Admin pages: users (create with letter, roles, deactivate, lock/unlock, reset),
//! API clients (secret once, disable takes effect at once), settings.

use super::helpers::TestApp;
use super::staff::{first_sign_in, sign_in};

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    html[at..].split('"').next().expect("value").to_string()
}

/// The literal strings of a PDF's text operators, in order (our letters are simple).
fn pdf_strings(pdf: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < pdf.len() {
        if pdf[i] == b'(' {
            let mut s = String::new();
            i += 1;
            while i < pdf.len() && pdf[i] != b')' {
                if pdf[i] == b'\\' && i + 3 < pdf.len() && pdf[i + 1].is_ascii_digit() {
                    let code = u8::from_str_radix(
                        std::str::from_utf8(&pdf[i + 1..i + 4]).expect("octal"),
                        8,
                    )
                    .expect("octal");
                    s.push(code as char);
                    i += 4;
                    continue;
                }
                if pdf[i] == b'\\' {
                    i += 1;
                }
                s.push(pdf[i] as char);
                i += 1;
            }
            out.push(s);
        }
        i += 1;
    }
    out
}

fn after(strings: &[String], label: &str) -> String {
    let at = strings
        .iter()
        .position(|s| s.starts_with(label))
        .unwrap_or_else(|| panic!("{label} not in letter"));
    strings[at + 1].clone()
}

async fn post_form(
    app: &TestApp,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    app.http
        .post(format!("{}{path}", app.base))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .expect("post")
}

#[tokio::test]
async fn users_are_administered_with_letters() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let admin = sign_in(&app, &demo).await;
    let page = app
        .get_with_cookie("/practice/users", &admin)
        .await
        .text()
        .await
        .expect("users");
    assert!(
        page.contains("weniger als zwei aktive"),
        "warns about a single admin"
    );
    let csrf = csrf_of(&page);

    // Create: the answer is the first-login letter.
    let res = post_form(
        &app,
        "/practice/users",
        &admin,
        &[
            ("csrf", &csrf),
            ("username", "mara.k"),
            ("display_name", "Mara Kühn"),
            ("role", "staff"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    let strings = pdf_strings(&res.bytes().await.expect("pdf"));
    let password = after(&strings, "Einmal-Passwort");
    let secret = after(&strings, "TOTP-Schl");
    assert_eq!(after(&strings, "Benutzername"), "mara.k");
    // Taken usernames are refused with a message.
    let res = post_form(
        &app,
        "/practice/users",
        &admin,
        &[
            ("csrf", &csrf),
            ("username", "mara.k"),
            ("display_name", "X"),
            ("role", "staff"),
        ],
    )
    .await;
    assert_eq!(res.status(), 400);

    // The new user signs in from the letter; staff may not open admin pages.
    let mara = first_sign_in(&app, "mara.k", &password, &secret).await;
    assert_eq!(app.get_with_cookie("/practice", &mara).await.status(), 200);
    assert_eq!(
        app.get_with_cookie("/practice/users", &mara).await.status(),
        403
    );

    let mara_id = {
        let users = app
            .services()
            .db
            .staff_by_username("mara.k")
            .await
            .expect("db")
            .expect("user");
        users.id
    };
    // Deactivation ends her session at once.
    let res = post_form(
        &app,
        &format!("/practice/users/{mara_id}/deactivate"),
        &admin,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.get_with_cookie("/practice", &mara).await.status(), 303);
    post_form(
        &app,
        &format!("/practice/users/{mara_id}/activate"),
        &admin,
        &[("csrf", &csrf)],
    )
    .await;

    // Five failures lock her; the admin unlocks.
    for _ in 0..5 {
        let res = app
            .http
            .post(format!("{}/login", app.base))
            .form(&[("username", "mara.k"), ("password", "wrong-password-x")])
            .send()
            .await
            .expect("login");
        assert_eq!(res.status(), 401);
    }
    let locked = app
        .http
        .post(format!("{}/login", app.base))
        .form(&[
            ("username", "mara.k"),
            ("password", "Blauer-Kaffee-Tisch-47"),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(locked.status(), 401);
    post_form(
        &app,
        &format!("/practice/users/{mara_id}/unlock"),
        &admin,
        &[("csrf", &csrf)],
    )
    .await;
    let unlocked = app
        .http
        .post(format!("{}/login", app.base))
        .form(&[
            ("username", "mara.k"),
            ("password", "Blauer-Kaffee-Tisch-47"),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(unlocked.status(), 303);

    // Reset: a new letter, the old password no longer works.
    let res = post_form(
        &app,
        &format!("/practice/users/{mara_id}/reset"),
        &admin,
        &[("csrf", &csrf)],
    )
    .await;
    let strings = pdf_strings(&res.bytes().await.expect("pdf"));
    let new_password = after(&strings, "Einmal-Passwort");
    assert_ne!(new_password, password);
    let old = app
        .http
        .post(format!("{}/login", app.base))
        .form(&[
            ("username", "mara.k"),
            ("password", "Blauer-Kaffee-Tisch-47"),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(old.status(), 401);

    // Promote her to admin; the warning goes. The last admin cannot step down alone.
    let res = post_form(
        &app,
        &format!("/practice/users/{mara_id}/edit"),
        &admin,
        &[
            ("csrf", &csrf),
            ("username", "mara.k"),
            ("display_name", "Mara Kühn"),
            ("role", "admin"),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    let page = app
        .get_with_cookie("/practice/users", &admin)
        .await
        .text()
        .await
        .expect("users");
    assert!(!page.contains("weniger als zwei aktive"));
    post_form(
        &app,
        &format!("/practice/users/{mara_id}/deactivate"),
        &admin,
        &[("csrf", &csrf)],
    )
    .await;
    let me = app
        .services()
        .db
        .staff_by_username(demo["staff_username"].as_str().expect("u"))
        .await
        .expect("db")
        .expect("me")
        .id;
    let res = post_form(
        &app,
        &format!("/practice/users/{me}/deactivate"),
        &admin,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), 400, "the last active admin stays");

    // Credential changes need a recent sign-in.
    app.clock.advance(16 * 60);
    let res = post_form(
        &app,
        &format!("/practice/users/{mara_id}/reset"),
        &admin,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), 403);
    let body = res.text().await.expect("body");
    assert!(body.contains("reauthentication_required"));

    // Another practice's admin cannot touch her.
    let other = app.demo().await;
    let other_admin = sign_in(&app, &other).await;
    let other_csrf = csrf_of(
        &app.get_with_cookie("/practice/users", &other_admin)
            .await
            .text()
            .await
            .expect("users"),
    );
    let res = post_form(
        &app,
        &format!("/practice/users/{mara_id}/unlock"),
        &other_admin,
        &[("csrf", &other_csrf)],
    )
    .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn api_clients_and_settings() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let admin = sign_in(&app, &demo).await;
    let page = app
        .get_with_cookie("/practice/api-clients", &admin)
        .await
        .text()
        .await
        .expect("clients");
    let csrf = csrf_of(&page);
    let res = post_form(
        &app,
        "/practice/api-clients",
        &admin,
        &[("csrf", &csrf), ("name", "RIS")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.expect("html");
    let codes: Vec<&str> = html
        .split("<code>")
        .skip(1)
        .map(|s| s.split('<').next().expect("code"))
        .collect();
    let (client_id, secret) = (codes[0], codes[1]);
    assert!(client_id.starts_with("lk_"));
    let token_res = app.post_token(client_id, secret).await;
    assert_eq!(token_res.status(), 200);
    let token: serde_json::Value = token_res.json().await.expect("json");
    let token = token["access_token"].as_str().expect("token").to_string();
    assert_eq!(app.get_api(&token, "/api/v1/studies").await.status(), 200);
    // The secret is not shown again.
    let again = app
        .get_with_cookie("/practice/api-clients", &admin)
        .await
        .text()
        .await
        .expect("html");
    assert!(!again.contains(secret));

    // Disable: refused at once, token and new tokens alike.
    let row_id = app
        .services()
        .db
        .api_clients_of_practice(&app.services().db.practices().await.expect("p")[0].id)
        .await
        .expect("clients")
        .into_iter()
        .find(|c| c.client_id == client_id)
        .expect("row")
        .id;
    let res = post_form(
        &app,
        &format!("/practice/api-clients/{row_id}/disable"),
        &admin,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.get_api(&token, "/api/v1/studies").await.status(), 401);
    assert_eq!(app.post_token(client_id, secret).await.status(), 401);

    // The demo client expires in six months: within the last 30 days admins are warned.
    app.clock.advance(160 * 86_400);
    let list = app
        .get_with_cookie("/practice", &sign_in_again(&app, &demo).await)
        .await
        .text()
        .await
        .expect("list");
    assert!(
        list.contains("API-Zugänge laufen in weniger als 30 Tagen ab: 1"),
        "expiry warning"
    );

    // Settings: saved, and bad values refused.
    let admin = sign_in_again(&app, &demo).await;
    let page = app
        .get_with_cookie("/practice/settings", &admin)
        .await
        .text()
        .await
        .expect("settings");
    let csrf = csrf_of(&page);
    let res = post_form(
        &app,
        "/practice/settings",
        &admin,
        &[
            ("csrf", &csrf),
            ("name", "Praxis Nord"),
            ("address", "Hauptstraße 1\n12345 Musterstadt"),
            ("default_access_days", "30"),
            ("findings_delay_hours", "24"),
            ("max_upload_mb", "1024"),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    let page = app
        .get_with_cookie("/practice/settings", &admin)
        .await
        .text()
        .await
        .expect("settings");
    assert!(page.contains("Praxis Nord") && page.contains("Hauptstraße 1"));
    let res = post_form(
        &app,
        "/practice/settings",
        &admin,
        &[
            ("csrf", &csrf),
            ("name", "X"),
            ("default_access_days", "0"),
            ("findings_delay_hours", "0"),
            ("max_upload_mb", "10"),
        ],
    )
    .await;
    assert_eq!(res.status(), 400);

    // The DICOM node: AE title and the callers it accepts.
    let res = post_form(
        &app,
        "/practice/settings/dicom",
        &admin,
        &[
            ("csrf", &csrf),
            ("ae_title", "PRAXIS_NORD"),
            ("calling", "PACS1, CT_2"),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    let practice = app.services().db.practices().await.expect("p")[0]
        .id
        .clone();
    let node = app
        .services()
        .db
        .dicom_node(&practice)
        .await
        .expect("db")
        .expect("node");
    assert_eq!(node.ae_title, "PRAXIS_NORD");
    assert_eq!(node.calling_ae_titles, ["PACS1", "CT_2"]);
    for (ae, calling) in [("<b>x</b>", ""), ("OK", "TOO-LONG-CALLING-AE")] {
        let res = post_form(
            &app,
            "/practice/settings/dicom",
            &admin,
            &[("csrf", &csrf), ("ae_title", ae), ("calling", calling)],
        )
        .await;
        assert_eq!(res.status(), 400, "{ae} {calling}");
    }
    let page = app
        .get_with_cookie("/practice/settings", &admin)
        .await
        .text()
        .await
        .expect("settings");
    assert!(page.contains("PRAXIS_NORD") && page.contains("PACS1, CT_2"));
}

/// A fresh full session for an admin who already changed the password and enrolled.
pub async fn sign_in_again(app: &TestApp, demo: &serde_json::Value) -> String {
    use lichtkasten::clock::Clock;
    app.clock.advance(31);
    let res = app
        .http
        .post(format!("{}/login", app.base))
        .form(&[
            ("username", demo["staff_username"].as_str().expect("u")),
            ("password", "Blauer-Kaffee-Tisch-47"),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 303);
    let pending = res.headers()["set-cookie"]
        .to_str()
        .expect("c")
        .split(';')
        .next()
        .expect("p")
        .to_string();
    let secret = {
        let s = demo["totp_secret"].as_str().expect("s");
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let (mut buf, mut bits, mut out) = (0u32, 0, Vec::new());
        for c in s.bytes() {
            buf = (buf << 5) | alphabet.iter().position(|a| *a == c).expect("b32") as u32;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out.push((buf >> bits) as u8);
            }
        }
        out
    };
    let code = lichtkasten::auth::totp::code_at(&secret, app.clock.now() / 30);
    let res = app
        .http
        .post(format!("{}/login", app.base))
        .header("cookie", &pending)
        .form(&[("totp", code.as_str())])
        .send()
        .await
        .expect("totp");
    assert_eq!(res.status(), 303);
    res.headers()["set-cookie"]
        .to_str()
        .expect("c")
        .split(';')
        .next()
        .expect("p")
        .to_string()
}

#[tokio::test]
async fn study_list_filters_language_and_upload_limit() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let admin = sign_in(&app, &demo).await;
    let study = demo["study_id"].as_str().expect("study");

    // Never opened: listed until the patient signs in.
    let unopened = super::helpers::search_studies(&app, &admin, &[("unopened", "1")])
        .await
        .text()
        .await
        .expect("list");
    assert!(unopened.contains(study));
    let res = app
        .post_access(
            demo["access_code"].as_str().expect("c"),
            demo["password"].as_str().expect("p"),
        )
        .await;
    assert_eq!(res.status(), 303);
    let unopened = super::helpers::search_studies(&app, &admin, &[("unopened", "1")])
        .await
        .text()
        .await
        .expect("list");
    assert!(!unopened.contains(study));

    // Access ending within 5 days: the 90-day demo grant qualifies after 86 days.
    let soon = super::helpers::search_studies(&app, &admin, &[("expiring", "1")])
        .await
        .text()
        .await
        .expect("list");
    assert!(!soon.contains(study));
    app.clock.advance(86 * 86_400);
    let admin = sign_in_again(&app, &demo).await;
    let soon = super::helpers::search_studies(&app, &admin, &[("expiring", "1")])
        .await
        .text()
        .await
        .expect("list");
    assert!(soon.contains(study));

    // The language switch overrides the browser's preference.
    let res = app
        .http
        .get(format!("{}/lang/en?back=/practice", app.base))
        .send()
        .await
        .expect("lang");
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/practice");
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .expect("c")
            .starts_with("lk_lang=en")
    );
    let english = app
        .get_with_cookie("/practice", &format!("{admin}; lk_lang=en"))
        .await
        .text()
        .await
        .expect("en");
    assert!(english.contains("<html lang=\"en\">") && english.contains("Studies"));
    let evil = app
        .http
        .get(format!("{}/lang/en?back=//evil.example", app.base))
        .send()
        .await
        .expect("lang");
    assert_eq!(evil.headers()["location"], "/");

    // The practice's own upload limit applies before the body is read.
    let page = app
        .get_with_cookie("/practice/settings", &admin)
        .await
        .text()
        .await
        .expect("settings");
    let csrf = csrf_of(&page);
    let res = post_form(
        &app,
        "/practice/settings",
        &admin,
        &[
            ("csrf", &csrf),
            ("name", "Praxis"),
            ("address", ""),
            ("default_access_days", "90"),
            ("findings_delay_hours", "0"),
            ("max_upload_mb", "1"),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    let token = app.bearer(&demo).await;
    let res = app
        .post_studies(&token, "application/dicom", vec![0u8; 2 * 1024 * 1024])
        .await;
    assert_eq!(res.status(), 413);
}
