//! Crash consistency: the real binary is killed (SIGKILL) at random moments while
//! clients upload, many times over one data directory (or one PostgreSQL database
//! and S3 prefix). Afterwards `lichtkasten verify` must find every recorded object
//! intact (decrypted, size and SHA-256 as recorded), every upload that was answered
//! 200 must be there in full, and `purge` must leave no unreferenced object behind.

use super::helpers::{postgres_from_env, s3_from_env};
use lichtkasten::dicom::synth::{StudySpec, demo_study};
use rand::Rng;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};

/// Kill-and-restart rounds; each round uploads until it is killed.
const ROUNDS: usize = 8;

struct Backend {
    env: Vec<(String, String)>,
}

impl Backend {
    async fn from_test_env(dir: &std::path::Path) -> Backend {
        let mut env = vec![(
            "LICHTKASTEN_DATA_DIR".to_string(),
            dir.join("data").display().to_string(),
        )];
        if let Some(url) = postgres_from_env().await {
            env.push(("LICHTKASTEN_DATABASE_URL".into(), url));
        }
        if let Some(s3) = s3_from_env() {
            env.push(("LICHTKASTEN_S3_BUCKET".into(), s3.bucket));
            env.push(("LICHTKASTEN_S3_REGION".into(), s3.region));
            if let Some(e) = s3.endpoint {
                env.push(("LICHTKASTEN_S3_ENDPOINT".into(), e));
            }
            env.push(("LICHTKASTEN_S3_ACCESS_KEY_ID".into(), s3.access_key_id));
            env.push((
                "LICHTKASTEN_S3_SECRET_ACCESS_KEY".into(),
                s3.secret_access_key.expose().to_string(),
            ));
            env.push(("LICHTKASTEN_S3_PREFIX".into(), s3.prefix));
        }
        Backend { env }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lichtkasten"));
        c.args(args)
            .env_remove("LICHTKASTEN_DATABASE_URL")
            .env_remove("LICHTKASTEN_S3_BUCKET")
            .env("LICHTKASTEN_LOG", "error");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// `demo` over the same data: each start adds a practice of its own and
    /// prints its credentials.
    async fn start(&self) -> (Child, serde_json::Value) {
        let data = self
            .env
            .iter()
            .find(|(k, _)| k == "LICHTKASTEN_DATA_DIR")
            .map(|(_, v)| v.clone())
            .expect("data dir");
        let mut child = self
            .command(&["demo", "--listen", "127.0.0.1:0", "--data-dir", &data])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .map(|_| line)
        })
        .await
        .expect("join")
        .expect("line");
        let demo: serde_json::Value = serde_json::from_str(line.trim()).expect("demo line");
        (child, demo)
    }

    fn verify(&self) -> serde_json::Value {
        let out = self.command(&["verify"]).output().expect("verify");
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("verify prints JSON");
        assert!(out.status.success(), "verify found damage: {report}");
        report
    }
}

fn multipart(files: &[Vec<u8>]) -> (String, Vec<u8>) {
    let boundary = "crashtestboundary7";
    let mut body = Vec::new();
    for (i, f) in files.iter().enumerate() {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f{i}.dcm\"\r\nContent-Type: application/dicom\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(f);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn token(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> String {
    let res = http
        .post(format!("{base}/api/v1/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .expect("token");
    let v: serde_json::Value = res.json().await.expect("json");
    v["access_token"].as_str().expect("token").to_string()
}

/// An upload that was answered: which practice's client, which study, how many.
struct Acknowledged {
    client: (String, String),
    study_id: String,
    instances: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_uploads_leaves_only_whole_instances() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Backend::from_test_env(dir.path()).await;
    let http = reqwest::Client::new();
    let mut acknowledged: Vec<Acknowledged> = Vec::new();
    let mut rng = rand::thread_rng();
    for _ in 0..ROUNDS {
        let (mut child, demo) = backend.start().await;
        let base = demo["base_url"].as_str().expect("base").to_string();
        let client = (
            demo["api_client_id"].as_str().expect("id").to_string(),
            demo["api_client_secret"]
                .as_str()
                .expect("secret")
                .to_string(),
        );
        let bearer = token(&http, &base, &client.0, &client.1).await;
        // Two clients upload at once, each study in one request, until the kill.
        let kill_after = std::time::Duration::from_millis(rng.gen_range(150..1500));
        let mut uploaders = Vec::new();
        for _ in 0..2 {
            let (http, base, bearer, client) =
                (http.clone(), base.clone(), bearer.clone(), client.clone());
            uploaders.push(tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let files = {
                        let mut rng = rand::thread_rng();
                        let spec = StudySpec::demo(&mut rng);
                        demo_study(&mut rng, &spec, 6, 128)
                    };
                    let (content_type, body) = multipart(&files);
                    let res = http
                        .post(format!("{base}/api/v1/studies"))
                        .bearer_auth(&bearer)
                        .header("content-type", content_type)
                        .body(body)
                        .send()
                        .await;
                    let Ok(res) = res else { return done };
                    if res.status() != 200 {
                        return done;
                    }
                    let Ok(v) = res.json::<serde_json::Value>().await else {
                        return done;
                    };
                    for s in v["studies"].as_array().into_iter().flatten() {
                        done.push(Acknowledged {
                            client: client.clone(),
                            study_id: s["id"].as_str().expect("id").to_string(),
                            instances: s["accepted"].as_i64().expect("accepted")
                                + s["duplicates"].as_i64().expect("dups"),
                        });
                    }
                }
            }));
        }
        tokio::time::sleep(kill_after).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        for u in uploaders {
            acknowledged.extend(u.await.expect("uploader"));
        }
    }
    assert!(
        acknowledged.len() >= ROUNDS,
        "too few uploads finished before the kills to mean anything: {}",
        acknowledged.len()
    );

    let report = backend.verify();
    assert!(
        report["intact"]["original"].as_u64().unwrap_or(0) >= acknowledged.len() as u64 * 7,
        "every answered upload's instances are intact: {report}"
    );

    // What was answered 200 is there in full.
    let (mut child, demo) = backend.start().await;
    let base = demo["base_url"].as_str().expect("base").to_string();
    let mut tokens = std::collections::HashMap::new();
    for ack in &acknowledged {
        if !tokens.contains_key(&ack.client.0) {
            let t = token(&http, &base, &ack.client.0, &ack.client.1).await;
            tokens.insert(ack.client.0.clone(), t);
        }
        let bearer = &tokens[&ack.client.0];
        let res = http
            .get(format!("{base}/api/v1/studies/{}", ack.study_id))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("study");
        assert_eq!(res.status(), 200, "an acknowledged study is gone");
        let study: serde_json::Value = res.json().await.expect("json");
        let instances: Vec<&serde_json::Value> = study["series"]
            .as_array()
            .expect("series")
            .iter()
            .flat_map(|s| s["instances"].as_array().expect("instances"))
            .collect();
        assert_eq!(instances.len() as i64, ack.instances, "study {study}");
    }
    let _ = child.kill();
    let _ = child.wait();

    // Objects written before a kill but never recorded: purge removes them all.
    let out = backend
        .command(&["purge", "--orphans-older-than", "0"])
        .output()
        .expect("purge");
    assert!(out.status.success());
    let after = backend.verify();
    assert_eq!(after["unreferenced_objects"], 0, "{after}");
    // The last start added the demo study of its own practice; nothing was lost.
    assert!(after["intact"]["original"].as_u64() > report["intact"]["original"].as_u64());
}
