//! Spawns the real app on port 0 with a fresh database and store: SQLite + files by
//! default, PostgreSQL + S3 when LICHTKASTEN_TEST_DATABASE_URL / LICHTKASTEN_TEST_S3_*
//! are set. Helpers are named after the routes they call.

use lichtkasten::app::Running;
use lichtkasten::clock::ManualClock;
use lichtkasten::config::{Config, S3Config, Secret};
use rand::RngCore;
use std::sync::Arc;

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub running: Option<Running>,
    pub clock: ManualClock,
    pub dir: tempfile::TempDir,
    pub config: Config,
}

pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

pub fn s3_from_env() -> Option<S3Config> {
    let bucket = std::env::var("LICHTKASTEN_TEST_S3_BUCKET").ok()?;
    Some(S3Config {
        endpoint: std::env::var("LICHTKASTEN_TEST_S3_ENDPOINT").ok(),
        region: std::env::var("LICHTKASTEN_TEST_S3_REGION").unwrap_or_else(|_| "garage".into()),
        bucket,
        access_key_id: std::env::var("LICHTKASTEN_TEST_S3_ACCESS_KEY_ID")
            .expect("S3 access key id"),
        secret_access_key: Secret::new(
            std::env::var("LICHTKASTEN_TEST_S3_SECRET_ACCESS_KEY").expect("S3 secret"),
        ),
        // Each test gets its own folder of the shared bucket.
        prefix: format!("test-{}", random_hex(8)),
    })
}

/// A fresh PostgreSQL database for one test, created through the admin URL.
pub async fn postgres_from_env() -> Option<String> {
    let admin = std::env::var("LICHTKASTEN_TEST_DATABASE_URL").ok()?;
    let name = format!("lk_test_{}", random_hex(6));
    let db = lichtkasten::db::Db::connect(&admin)
        .await
        .expect("connect postgres admin");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(db.pool())
        .await
        .expect("create test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Some(format!("{base}/{name}"))
}

pub async fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config {
        data_dir: dir.join("data"),
        listen: "127.0.0.1:0".into(),
        dicom_listen: "127.0.0.1:0".into(),
        max_upload_bytes: 64 * 1024 * 1024,
        // Tests that need prepared renders prepare them (`prepared::drain`), so the
        // stored objects a test counts do not depend on a background task's timing.
        render_workers: 0,
        ..Config::default()
    };
    if let Some(url) = postgres_from_env().await {
        c.database_url = Secret::new(url);
    }
    c.s3 = s3_from_env();
    c
}

pub fn backend_name() -> &'static str {
    if std::env::var("LICHTKASTEN_TEST_DATABASE_URL").is_ok() {
        "postgres+s3"
    } else {
        "sqlite+fs"
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = test_config(dir.path()).await;
        Self::spawn_with(dir, config).await
    }

    pub async fn spawn_with(dir: tempfile::TempDir, config: Config) -> TestApp {
        let clock = ManualClock::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("time")
                .as_secs() as i64,
        );
        let running = lichtkasten::app::start(config.clone(), Arc::new(clock.clone()))
            .await
            .expect("app starts");
        let base = format!("http://{}", running.addr);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        TestApp {
            base,
            http,
            running: Some(running),
            clock,
            dir,
            config,
        }
    }

    pub fn services(&self) -> &lichtkasten::app::Services {
        &self.running.as_ref().expect("running").services
    }

    /// Stops the server and starts it again on the same database, store and keys.
    pub async fn restart(mut self) -> TestApp {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        let TestApp { dir, config, .. } = self;
        TestApp::spawn_with(dir, config).await
    }

    pub async fn demo(&self) -> serde_json::Value {
        let line = lichtkasten::demo::set_up(self.running.as_ref().expect("running"))
            .await
            .expect("demo set up");
        serde_json::from_str(&line).expect("demo line is JSON")
    }

    pub async fn post_token(&self, client_id: &str, secret: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/api/v1/token", self.base))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
            ])
            .send()
            .await
            .expect("token request")
    }

    pub async fn bearer(&self, demo: &serde_json::Value) -> String {
        let res = self
            .post_token(
                demo["api_client_id"].as_str().expect("id"),
                demo["api_client_secret"].as_str().expect("secret"),
            )
            .await;
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.expect("json");
        body["access_token"].as_str().expect("token").to_string()
    }

    pub async fn post_studies(
        &self,
        token: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.http
            .post(format!("{}/api/v1/studies", self.base))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("upload")
    }

    pub async fn get_api(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{}", self.base, path))
            .bearer_auth(token)
            .send()
            .await
            .expect("get")
    }

    pub async fn post_grant(&self, token: &str, study_id: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/api/v1/studies/{study_id}/grants", self.base))
            .bearer_auth(token)
            .json(&serde_json::json!({"expires_in_days": 30}))
            .send()
            .await
            .expect("grant")
    }

    pub async fn post_access(&self, code: &str, password: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/access", self.base))
            .form(&[("access_code", code), ("password", password)])
            .send()
            .await
            .expect("access")
    }

    pub async fn post_link(&self, link: &str, password: &str) -> reqwest::Response {
        self.http
            .post(link)
            .form(&[("password", password)])
            .send()
            .await
            .expect("link")
    }

    /// `DELETE /api/v1/studies/{id}` as an API client.
    pub async fn delete_study(&self, token: &str, study_id: &str) -> reqwest::Response {
        self.http
            .delete(format!("{}/api/v1/studies/{study_id}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("delete")
    }

    /// GET with a session cookie, as a browser would send it.
    pub async fn get_with_cookie(&self, path: &str, cookie: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{}", self.base, path))
            .header("cookie", cookie)
            .send()
            .await
            .expect("get")
    }

    /// The patient viewer's study manifest for a session cookie.
    pub async fn manifest(&self, cookie: &str) -> serde_json::Value {
        self.get_with_cookie("/view/api/study", cookie)
            .await
            .json()
            .await
            .expect("manifest")
    }

    pub async fn post_with_cookie(&self, path: &str, cookie: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{}", self.base, path))
            .header("cookie", cookie)
            // The viewer's per-tab nonce; one fixed tab per test.
            .header("x-tab", "test-tab-0123456789abcdef")
            .send()
            .await
            .expect("post")
    }

    /// Every stored object's raw (encrypted) bytes, from whichever backend runs.
    pub async fn stored_objects(&self) -> Vec<(String, Vec<u8>)> {
        // Renders answered before they were kept are stored by now.
        self.services().pending_keeps.settled().await;
        let store = self.services().blobs.raw().clone();
        let mut out = Vec::new();
        for key in store.list().await.expect("list") {
            let bytes = lichtkasten::blob::collect(store.get(&key).await.expect("get"))
                .await
                .expect("read");
            out.push((key, bytes));
        }
        out
    }
}

/// `name=value` of the session cookie from a sign-in response.
pub fn session_cookie(res: &reqwest::Response) -> Option<String> {
    let raw = res.headers().get("set-cookie")?.to_str().ok()?;
    raw.split(';').next().map(str::to_string)
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file under a directory, recursively.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// The staff study search (a POST with the page's CSRF token), as the form sends it.
pub async fn search_studies(
    app: &TestApp,
    session: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let page = app
        .get_with_cookie("/practice", session)
        .await
        .text()
        .await
        .expect("list");
    let at = page.find("name=\"csrf\" value=\"").expect("csrf") + 19;
    let csrf = page[at..].split('"').next().expect("value").to_string();
    let mut form: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    app.http
        .post(format!("{}/practice", app.base))
        .header("cookie", session)
        .form(&form)
        .send()
        .await
        .expect("search")
}

/// The files as a ZIP, named like a CD's `DICOM/IMG0001`.
pub fn zip_of(files: &[Vec<u8>]) -> Vec<u8> {
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        for (i, f) in files.iter().enumerate() {
            w.start_file(
                format!("DICOM/IMG{i:04}"),
                zip::write::SimpleFileOptions::default(),
            )
            .expect("start");
            w.write_all(f).expect("write");
        }
        w.finish().expect("finish");
    }
    buf.into_inner()
}

/// A POST whose body is sent in chunks without a declared length, so the server
/// can only find its size while reading.
pub async fn post_unsized(
    app: &TestApp,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
    chunk: usize,
) -> reqwest::Response {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(chunk).map(|c| Ok(c.to_vec())).collect();
    app.http
        .post(format!("{}/api/v1/studies", app.base))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("upload")
}
