//! Staff sign-in over HTTP with TOTP codes computed here from the enrolment secret
//! and the pinned clock: first sign-in, replay, skew, lockout, timeouts, CSRF and
//! the practice pages.

use super::helpers::TestApp;
use lichtkasten::auth::totp;

const NEW_PASSWORD: &str = "Blauer-Kaffee-Tisch-47";

fn base32_decode(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buf, mut bits, mut out) = (0u32, 0, Vec::new());
    for c in s.bytes() {
        let v = alphabet.iter().position(|a| *a == c).expect("base32") as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

fn cookie_of(res: &reqwest::Response) -> String {
    res.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_string()
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    html[at..].split('"').next().expect("value").to_string()
}

struct Staff<'a> {
    app: &'a TestApp,
    secret: Vec<u8>,
}

impl Staff<'_> {
    fn code(&self, offset_steps: i64) -> String {
        totp::code_at(&self.secret, self.app.clock.now_secs() / 30 + offset_steps)
    }

    async fn post_login(&self, cookie: Option<&str>, form: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self
            .app
            .http
            .post(format!("{}/login", self.app.base))
            .form(form);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send().await.expect("login")
    }

    /// Username + password; returns the half-signed-in cookie.
    async fn password_step(&self, username: &str, password: &str) -> reqwest::Response {
        self.post_login(None, &[("username", username), ("password", password)])
            .await
    }
}

trait NowSecs {
    fn now_secs(&self) -> i64;
}
impl NowSecs for lichtkasten::clock::ManualClock {
    fn now_secs(&self) -> i64 {
        lichtkasten::clock::Clock::now(self)
    }
}

#[tokio::test]
async fn first_login_then_totp_replay_skew_lockout_and_timeouts() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let user = demo["staff_username"].as_str().expect("user");
    let one_time = demo["staff_password"].as_str().expect("pw");
    let staff = Staff {
        app: &app,
        secret: base32_decode(demo["totp_secret"].as_str().expect("secret")),
    };

    // First sign-in: one-time password → forced new password → TOTP enrolment.
    let res = staff.password_step(user, one_time).await;
    assert_eq!(res.status(), 303);
    let pending = cookie_of(&res);
    let page = app
        .get_with_cookie("/login", &pending)
        .await
        .text()
        .await
        .expect("html");
    assert!(page.contains("name=\"new_password\""));
    // Pages of the practice are closed until the sign-in is complete.
    assert_eq!(
        app.get_with_cookie("/practice", &pending).await.status(),
        303
    );
    let csrf = csrf_of(&page);
    let weak = app
        .http
        .post(format!("{}/login/password", app.base))
        .header("cookie", &pending)
        .form(&[
            ("csrf", csrf.as_str()),
            ("new_password", "password1234"),
            ("repeat_password", "password1234"),
        ])
        .send()
        .await
        .expect("weak");
    assert_eq!(weak.status(), 401, "common password refused");
    let res = app
        .http
        .post(format!("{}/login/password", app.base))
        .header("cookie", &pending)
        .form(&[
            ("csrf", csrf.as_str()),
            ("new_password", NEW_PASSWORD),
            ("repeat_password", NEW_PASSWORD),
        ])
        .send()
        .await
        .expect("change");
    assert_eq!(res.status(), 303);
    let enrol = app
        .get_with_cookie("/login", &pending)
        .await
        .text()
        .await
        .expect("html");
    assert!(enrol.contains("<svg") && enrol.contains(demo["totp_secret"].as_str().expect("s")));
    let res = staff
        .post_login(Some(&pending), &[("totp", &staff.code(0))])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/practice");
    let full = cookie_of(&res);
    assert_ne!(full, pending, "a new session id after the second step");
    // The terms of use come first, once per version.
    let res = app.get_with_cookie("/practice", &full).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/practice/terms");
    accept_terms(&app, &full).await;
    let list = app.get_with_cookie("/practice", &full).await;
    assert_eq!(list.status(), 200);
    assert!(list.text().await.expect("html").contains("Jürgen Müller"));
    // The half session is gone.
    let after = app
        .get_with_cookie("/login", &pending)
        .await
        .text()
        .await
        .expect("h");
    assert!(!after.contains("name=\"totp\""), "the half session is gone");

    // Replay: the same code (same step) does not sign in twice.
    let again = cookie_of(&staff.password_step(user, NEW_PASSWORD).await);
    let res = staff
        .post_login(Some(&again), &[("totp", &staff.code(0))])
        .await;
    assert_eq!(res.status(), 401);
    // Skew: one step late or early is fine, two are not.
    app.clock.advance(60);
    let res = staff
        .post_login(Some(&again), &[("totp", &staff.code(2))])
        .await;
    assert_eq!(res.status(), 401);
    let res = staff
        .post_login(Some(&again), &[("totp", &staff.code(-1))])
        .await;
    assert_eq!(res.status(), 303, "one step behind accepted");
    let next = cookie_of(&staff.password_step(user, NEW_PASSWORD).await);
    app.clock.advance(30);
    let res = staff
        .post_login(Some(&next), &[("totp", &staff.code(1))])
        .await;
    assert_eq!(res.status(), 303, "one step ahead accepted");
    let session = cookie_of(&res);

    // Idle 30 minutes ends the session; activity keeps it up to 10 hours.
    app.clock.advance(29 * 60);
    assert_eq!(
        app.get_with_cookie("/practice", &session).await.status(),
        200
    );
    app.clock.advance(31 * 60);
    assert_eq!(
        app.get_with_cookie("/practice", &session).await.status(),
        303
    );
    app.clock.advance(60);
    let s = cookie_of(&staff.password_step(user, NEW_PASSWORD).await);
    let session = cookie_of(
        &staff
            .post_login(Some(&s), &[("totp", &staff.code(0))])
            .await,
    );
    for _ in 0..24 {
        app.clock.advance(25 * 60);
        assert_eq!(
            app.get_with_cookie("/practice", &session).await.status(),
            200
        );
    }
    app.clock.advance(25 * 60);
    assert_eq!(
        app.get_with_cookie("/practice", &session).await.status(),
        303,
        "absolute 10 h"
    );

    // Unknown user and wrong password get the same answer.
    let unknown = staff
        .password_step("nobody-here", "whatever-password")
        .await;
    let wrong = staff.password_step(user, "wrong-password-1").await;
    assert_eq!(unknown.status(), 401);
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        unknown.text().await.expect("a"),
        wrong.text().await.expect("b")
    );
    // Lockout after five failures (this is the first); restarting the flow does not reset it.
    for _ in 0..4 {
        assert_eq!(
            staff.password_step(user, "wrong-password-1").await.status(),
            401
        );
    }
    assert_eq!(
        staff.password_step(user, NEW_PASSWORD).await.status(),
        401,
        "locked even with the right password"
    );
}

#[tokio::test]
async fn practice_pages_csrf_isolation_and_upload() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let other = app.demo().await;
    let session = sign_in(&app, &demo).await;
    let other_session = sign_in(&app, &other).await;
    let study = demo["study_id"].as_str().expect("study");

    let page = app
        .get_with_cookie(&format!("/practice/studies/{study}"), &session)
        .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("LK-DEMO-0001"));
    let csrf = csrf_of(&html);

    // The other practice sees nothing of it, exactly like a missing id.
    let foreign = app
        .get_with_cookie(&format!("/practice/studies/{study}"), &other_session)
        .await;
    let missing = app
        .get_with_cookie(
            "/practice/studies/0123456789abcdef0123456789abcdef",
            &other_session,
        )
        .await;
    assert_eq!(foreign.status(), 404);
    assert_eq!(missing.status(), 404);
    let other_list = app
        .get_with_cookie("/practice", &other_session)
        .await
        .text()
        .await
        .expect("list");
    assert!(!other_list.contains(study));

    // A state change without the token, or from another origin, is refused.
    let post = |path: String, cookie: String, form: Vec<(&'static str, String)>| {
        let http = app.http.clone();
        let base = app.base.clone();
        async move {
            http.post(format!("{base}{path}"))
                .header("cookie", cookie)
                .form(&form)
                .send()
                .await
                .expect("post")
        }
    };
    let res = post(
        format!("/practice/studies/{study}/grants"),
        session.clone(),
        vec![("days", "30".into())],
    )
    .await;
    assert_eq!(res.status(), 403);
    let res = app
        .http
        .post(format!("{}/practice/studies/{study}/grants", app.base))
        .header("cookie", &session)
        .header("origin", "https://elsewhere.example")
        .form(&[("csrf", csrf.as_str()), ("days", "30")])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 403);
    // With the token: a grant, shown once.
    let res = post(
        format!("/practice/studies/{study}/grants"),
        session.clone(),
        vec![("csrf", csrf.clone()), ("days", "30".into())],
    )
    .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.expect("html");
    assert!(html.contains("/s/"));

    // Upload through the staff page's endpoint, then find it with an umlaut-free search.
    let mut rng = rand::thread_rng();
    let mut spec = lichtkasten::dicom::synth::StudySpec::demo(&mut rng);
    spec.patient_name = "Bäcker^Käthe".into();
    spec.patient_id = "P-UPLOAD-1".into();
    spec.study_uid = lichtkasten::dicom::synth::new_uid(&mut rng);
    let file = lichtkasten::dicom::synth::ct_slice(&spec, "1.2.3.9", "1.2.3.9.1", 0, 1, 32);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(file).file_name("a.dcm"),
    );
    let res = app
        .http
        .post(format!("{}/practice/api/upload", app.base))
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), 200);
    let report: serde_json::Value = res.json().await.expect("json");
    assert_eq!(report["studies"][0]["accepted"], 1);
    let found = super::helpers::search_studies(&app, &session, &[("q", "baecker kaethe")])
        .await
        .text()
        .await
        .expect("html");
    assert!(found.contains("Käthe Bäcker"));
    assert!(!found.contains("Jürgen Müller"));
    let by_birth = super::helpers::search_studies(&app, &session, &[("q", "14.05.1963")])
        .await
        .text()
        .await
        .expect("html");
    assert!(by_birth.contains("Jürgen Müller"));

    // Delete needs the box ticked, then the study is gone.
    let res = post(
        format!("/practice/studies/{study}/delete"),
        session.clone(),
        vec![("csrf", csrf.clone())],
    )
    .await;
    assert_eq!(res.status(), 400);
    let res = post(
        format!("/practice/studies/{study}/delete"),
        session.clone(),
        vec![("csrf", csrf.clone()), ("confirm", "yes".into())],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        app.get_with_cookie(&format!("/practice/studies/{study}"), &session)
            .await
            .status(),
        404
    );
}

/// The whole first sign-in for a demo practice's admin; returns the full session cookie.
pub async fn sign_in(app: &TestApp, demo: &serde_json::Value) -> String {
    let staff = Staff {
        app,
        secret: base32_decode(demo["totp_secret"].as_str().expect("secret")),
    };
    let user = demo["staff_username"].as_str().expect("user");
    let pending = cookie_of(
        &staff
            .password_step(user, demo["staff_password"].as_str().expect("pw"))
            .await,
    );
    let page = app
        .get_with_cookie("/login", &pending)
        .await
        .text()
        .await
        .expect("html");
    let csrf = csrf_of(&page);
    app.http
        .post(format!("{}/login/password", app.base))
        .header("cookie", &pending)
        .form(&[
            ("csrf", csrf.as_str()),
            ("new_password", NEW_PASSWORD),
            ("repeat_password", NEW_PASSWORD),
        ])
        .send()
        .await
        .expect("change");
    let res = staff
        .post_login(Some(&pending), &[("totp", &staff.code(0))])
        .await;
    assert_eq!(res.status(), 303);
    let session = cookie_of(&res);
    let terms = app.get_with_cookie("/practice", &session).await;
    if terms
        .headers()
        .get("location")
        .is_some_and(|l| l == "/practice/terms")
    {
        accept_terms(app, &session).await;
    }
    session
}

pub async fn accept_terms(app: &TestApp, session: &str) {
    let page = app
        .get_with_cookie("/practice/terms", session)
        .await
        .text()
        .await
        .expect("terms");
    let res = app
        .http
        .post(format!("{}/practice/terms", app.base))
        .header("cookie", session)
        .form(&[("csrf", csrf_of(&page))])
        .send()
        .await
        .expect("accept");
    assert_eq!(res.status(), 303);
}

/// Signs in a user created by an admin, with the credentials from their letter.
pub async fn first_sign_in(
    app: &TestApp,
    username: &str,
    password: &str,
    totp_secret: &str,
) -> String {
    let demo = serde_json::json!({"staff_username": username, "staff_password": password, "totp_secret": totp_secret});
    sign_in(app, &demo).await
}
