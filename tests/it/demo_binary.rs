//! `lichtkasten demo` as a newcomer runs it: one JSON line on stdout, a server that
//! answers at base_url.

use std::io::BufRead;
use std::process::{Command, Stdio};

#[tokio::test]
async fn demo_command_prints_one_json_line_and_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lichtkasten"))
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("demo"))
        .env_remove("LICHTKASTEN_DATABASE_URL")
        .env_remove("LICHTKASTEN_S3_BUCKET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    })
    .await
    .expect("join")
    .expect("read line");
    let parsed: Result<serde_json::Value, _> = serde_json::from_str(line.trim());
    let health = match &parsed {
        Ok(v) => reqwest::get(format!("{}/healthz", v["base_url"].as_str().unwrap_or("")))
            .await
            .ok(),
        Err(_) => None,
    };
    let _ = child.kill();
    let _ = child.wait();
    let v = parsed.expect("one JSON line");
    assert_eq!(health.map(|r| r.status().as_u16()), Some(200));
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
            v[key].as_str().is_some_and(|s| !s.is_empty()),
            "missing {key}"
        );
    }
    assert!(
        v["patient_link"]
            .as_str()
            .expect("link")
            .starts_with(v["base_url"].as_str().expect("base"))
    );
}
