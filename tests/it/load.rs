//! Benchmark (ignored by default; run with
//! `cargo test --test it login_under_load -- --ignored --nocapture`): 200 concurrent
//! wrong-password sign-ins from one address while a real user signs in from another.
//! Prints the figures recorded in BENCHMARKS.md.

use super::helpers::TestApp;
use super::staff::sign_in;
use std::time::Instant;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_string)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn login_under_load() {
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let _ = sign_in(&app, &demo).await;
    let user = demo["staff_username"].as_str().expect("user").to_string();
    let attacker = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().expect("ip")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let rss_before = rss_kib();
    let started = Instant::now();
    let flood: Vec<_> = (0..200)
        .map(|i| {
            let c = attacker.clone();
            let url = format!("{}/login", app.base);
            let user = user.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let res = c
                    .post(url)
                    .form(&[
                        ("username", user.as_str()),
                        ("password", &format!("wrong-password-{i}")),
                    ])
                    .send()
                    .await
                    .expect("attempt");
                (res.status().as_u16(), t.elapsed().as_millis())
            })
        })
        .collect();
    // The real user, from another address, while the flood runs.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let t = Instant::now();
    let res = app
        .http
        .post(format!("{}/login", app.base))
        .form(&[
            ("username", user.as_str()),
            ("password", "Blauer-Kaffee-Tisch-47"),
        ])
        .send()
        .await
        .expect("login");
    let real_status = res.status().as_u16();
    let real_ms = t.elapsed().as_millis();
    let mut statuses = std::collections::BTreeMap::new();
    let mut slowest = 0;
    for f in flood {
        let (s, ms) = f.await.expect("join");
        *statuses.entry(s).or_insert(0) += 1;
        slowest = slowest.max(ms);
    }
    let total_ms = started.elapsed().as_millis();
    println!(
        "flood: 200 wrong-password attempts from 127.0.0.2 → {statuses:?}, slowest answer {slowest} ms, all done in {total_ms} ms"
    );
    println!("real user from 127.0.0.1: password step {real_status} in {real_ms} ms");
    println!(
        "process RSS before {rss_before} KiB, peak {} KiB",
        peak_rss_kib()
    );
    assert!(
        statuses.keys().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(real_status, 303);
}
