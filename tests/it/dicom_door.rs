//! The DICOM door, driven by dcmtk's echoscu and storescu (clients we did not write):
//! AE titles decide at association, a folder of files in several transfer syntaxes
//! lands in one study, re-sending is idempotent, another patient's file under the
//! same study is refused.

use super::helpers::TestApp;
use std::path::Path;
use std::process::{Command, Output};

fn tools_present() -> bool {
    let ok = ["echoscu", "storescu", "dcmcjpeg", "gdcmconv"]
        .iter()
        .all(|t| Command::new(dcmtk(t)).arg("--version").output().is_ok());
    if !ok && std::env::var("CI").is_ok() {
        panic!("dcmtk/libgdcm-tools missing in CI");
    }
    if !ok {
        eprintln!("dcmtk not installed: DICOM door checks skipped (they run in .ci/run)");
    }
    ok
}

/// dcmtk's tool by its Debian path: pynetdicom installs Python tools of the same
/// names (echoscu, storescu) that may come first on PATH.
fn dcmtk(tool: &str) -> String {
    let debian = format!("/usr/bin/{tool}");
    if std::path::Path::new(&debian).exists() {
        debian
    } else {
        tool.to_string()
    }
}

/// Runs a dcmtk client off the async threads (the server runs on them).
async fn run(tool: &'static str, args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(dcmtk(tool))
            .args(&args)
            // Debian's dcmtk leaves Nagle's algorithm on otherwise.
            .env("TCP_NODELAY", "1")
            .output()
            .expect("tool runs")
    })
    .await
    .expect("join")
}

fn args(list: &[&str], port: u16, files: &[&Path]) -> Vec<String> {
    let mut out: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    out.push("127.0.0.1".into());
    out.push(port.to_string());
    out.extend(files.iter().map(|f| f.display().to_string()));
    out
}

async fn instance_count(app: &TestApp, token: &str, study_uid: &str) -> Option<i64> {
    let list: serde_json::Value = app
        .get_api(token, "/api/v1/studies")
        .await
        .json()
        .await
        .expect("list");
    list["studies"]
        .as_array()
        .expect("studies")
        .iter()
        .find(|s| s["study_uid"] == study_uid)
        .map(|s| s["instance_count"].as_i64().expect("count"))
}

#[tokio::test]
async fn a_pacs_pushes_a_study_with_storescu() {
    if !tools_present() {
        return;
    }
    let app = TestApp::spawn().await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let port = demo["dicom_port"].as_u64().expect("dicom port") as u16;
    let ae = demo["dicom_ae_title"].as_str().expect("ae").to_string();

    // Verification: the practice's title answers, another title is refused.
    let ok = run("echoscu", args(&["-aec", &ae], port, &[])).await;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let wrong = run("echoscu", args(&["-aec", "NOBODY"], port, &[])).await;
    assert!(!wrong.status.success());
    // dcmtk versions spell it "Recognized" or "recognised".
    assert!(
        String::from_utf8_lossy(&wrong.stderr)
            .to_lowercase()
            .contains("called ae title not recogni")
    );

    // Only the listed calling titles, once the practice has a list.
    let practice = app.services().db.practices().await.expect("p")[0]
        .id
        .clone();
    app.services()
        .db
        .set_dicom_node(&practice, Some(&ae), &["PACS1".to_string()])
        .await
        .expect("set");
    let stranger = run("echoscu", args(&["-aet", "OTHER", "-aec", &ae], port, &[])).await;
    assert!(!stranger.status.success());
    assert!(
        String::from_utf8_lossy(&stranger.stderr)
            .to_lowercase()
            .contains("calling ae title not recogni")
    );
    let pacs = run("echoscu", args(&["-aet", "PACS1", "-aec", &ae], port, &[])).await;
    assert!(pacs.status.success());

    // A study of 8 files: 6 uncompressed, one JPEG lossless, one JPEG 2000.
    let dir = tempfile::tempdir().expect("dir");
    let mut rng = rand::thread_rng();
    let mut spec = lichtkasten::dicom::synth::StudySpec::demo(&mut rng);
    spec.patient_name = "Tür^Pacs".into();
    spec.patient_id = "PACS-1".into();
    let files = lichtkasten::dicom::synth::demo_study(&mut rng, &spec, 7, 64);
    let folder = dir.path().join("study");
    std::fs::create_dir(&folder).expect("mkdir");
    for (i, f) in files.iter().enumerate() {
        std::fs::write(folder.join(format!("{i}.dcm")), f).expect("write");
    }
    let convert = |tool: &str, arg: &str, name: &str| {
        let src = folder.join(name);
        let out = dir.path().join(format!("{name}.{tool}"));
        assert!(
            Command::new(tool)
                .args([arg])
                .arg(&src)
                .arg(&out)
                .status()
                .expect("run")
                .success()
        );
        std::fs::remove_file(&src).expect("rm");
        out
    };
    let jpeg = convert("dcmcjpeg", "+e1", "1.dcm");
    let j2k = convert("gdcmconv", "--j2k", "2.dcm");
    let store = |extra: &'static [&'static str], targets: Vec<&Path>| {
        let mut a: Vec<&str> = vec!["-aet", "PACS1", "-aec", &ae];
        a.extend_from_slice(extra);
        run("storescu", args(&a, port, &targets))
    };
    let folder_run = store(&["+sd"], vec![folder.as_path()]).await;
    assert!(
        folder_run.status.success(),
        "{}",
        String::from_utf8_lossy(&folder_run.stderr)
    );
    assert!(store(&["-xs"], vec![jpeg.as_path()]).await.status.success());
    assert!(store(&["-xv"], vec![j2k.as_path()]).await.status.success());
    assert_eq!(instance_count(&app, &token, &spec.study_uid).await, Some(8));

    // Sent again: nothing doubles.
    assert!(
        store(&["+sd"], vec![folder.as_path()])
            .await
            .status
            .success()
    );
    assert_eq!(instance_count(&app, &token, &spec.study_uid).await, Some(8));

    // Another patient's file claiming the same study is refused, the study unchanged.
    let mut intruder = spec.clone();
    intruder.patient_name = "Fremd^Eva".into();
    intruder.patient_id = "OTHER-9".into();
    let other = lichtkasten::dicom::synth::demo_study(&mut rng, &intruder, 1, 64);
    let path = dir.path().join("intruder.dcm");
    std::fs::write(&path, &other[0]).expect("write");
    let refused = store(&["-v"], vec![path.as_path()]).await;
    let said = String::from_utf8_lossy(&refused.stderr).to_string()
        + &String::from_utf8_lossy(&refused.stdout);
    // 0xA900: the data set does not match (here: the study belongs to someone else).
    assert!(
        said.contains("Error: DataSetDoesNotMatchSOPClass"),
        "{said}"
    );
    assert_eq!(instance_count(&app, &token, &spec.study_uid).await, Some(8));

    // What came over DICOM is seen like any upload: a grant opens it and every
    // slice renders, the compressed ones too.
    let res = app
        .post_grant(&token, &study_id(&app, &token, &spec.study_uid).await)
        .await;
    assert_eq!(res.status(), 201);
    let grant: serde_json::Value = res.json().await.expect("grant");
    let res = app
        .post_access(
            grant["access_code"].as_str().expect("c"),
            grant["password"].as_str().expect("p"),
        )
        .await;
    let cookie = super::helpers::session_cookie(&res).expect("session");
    let manifest = app.manifest(&cookie).await;
    let mut rendered = 0;
    for series in manifest["study"]["series"].as_array().expect("series") {
        for inst in series["instances"].as_array().expect("instances") {
            let id = inst["id"].as_str().expect("id");
            let res = app
                .get_with_cookie(
                    &format!("/view/api/instances/{id}/frames/1/rendered"),
                    &cookie,
                )
                .await;
            assert_eq!(res.status(), 200);
            rendered += 1;
        }
    }
    assert_eq!(rendered, 8);
}

async fn study_id(app: &TestApp, token: &str, study_uid: &str) -> String {
    let list: serde_json::Value = app
        .get_api(token, "/api/v1/studies")
        .await
        .json()
        .await
        .expect("list");
    list["studies"]
        .as_array()
        .expect("studies")
        .iter()
        .find(|s| s["study_uid"] == study_uid)
        .and_then(|s| s["id"].as_str())
        .expect("study")
        .to_string()
}

/// pynetdicom as the PACS: C-ECHO and C-STORE of files in several transfer
/// syntaxes over plain TCP, then the same over TLS on the TLS listener (with a
/// certificate made by openssl), and plain TCP against the TLS port fails.
#[tokio::test]
async fn pynetdicom_pushes_over_tcp_and_tls() {
    let have_python = Command::new("python3")
        .args(["-c", "import pynetdicom, pydicom"])
        .status()
        .is_ok_and(|s| s.success());
    let have_openssl = Command::new("openssl").arg("version").output().is_ok();
    if !have_python || !have_openssl || !tools_present() {
        assert!(
            std::env::var("CI").is_err(),
            "pynetdicom and openssl are installed by .ci/run"
        );
        eprintln!("pynetdicom or openssl missing: skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg("/CN=localhost")
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let app_dir = tempfile::tempdir().expect("dir");
    let mut config = super::helpers::test_config(app_dir.path()).await;
    config.dicom_tls_listen = "127.0.0.1:0".into();
    config.dicom_tls_cert = Some(cert.clone());
    config.dicom_tls_key = Some(key.clone());
    let app = TestApp::spawn_with(app_dir, config).await;
    let demo = app.demo().await;
    let token = app.bearer(&demo).await;
    let port = demo["dicom_port"].as_u64().expect("port") as u16;
    let tls_port = app
        .running
        .as_ref()
        .and_then(|r| r.dicom_tls_addr)
        .expect("TLS listener")
        .port();
    let ae = demo["dicom_ae_title"].as_str().expect("ae").to_string();

    let mut rng = rand::thread_rng();
    let mut spec = lichtkasten::dicom::synth::StudySpec::demo(&mut rng);
    spec.patient_id = "PYNET-1".into();
    let files = lichtkasten::dicom::synth::demo_study(&mut rng, &spec, 4, 64);
    let mut paths = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let p = dir.path().join(format!("{i}.dcm"));
        std::fs::write(&p, f).expect("write");
        paths.push(p);
    }
    // One slice as JPEG lossless, so two transfer syntaxes travel.
    let jpeg = dir.path().join("jpeg.dcm");
    assert!(
        Command::new("dcmcjpeg")
            .arg("+e1")
            .arg(&paths[0])
            .arg(&jpeg)
            .status()
            .expect("dcmcjpeg")
            .success()
    );
    paths[0] = jpeg;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/pynetdicom_store.py"
    );
    let push = |port: u16, tls: bool, files: Vec<std::path::PathBuf>| {
        let mut args: Vec<String> = vec![
            script.into(),
            "127.0.0.1".into(),
            port.to_string(),
            ae.clone(),
        ];
        if tls {
            args.push("--tls".into());
            args.push(cert.display().to_string());
        }
        args.extend(files.iter().map(|p| p.display().to_string()));
        tokio::task::spawn_blocking(move || {
            let out = Command::new("python3")
                .args(&args)
                .output()
                .expect("python");
            let line = String::from_utf8_lossy(&out.stdout).to_string();
            serde_json::from_str::<serde_json::Value>(line.trim()).unwrap_or_else(|_| {
                panic!(
                    "pynetdicom: {line} {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
        })
    };
    let plain = push(port, false, paths[..2].to_vec()).await.expect("join");
    assert_eq!(plain["echo"], 0, "{plain}");
    assert_eq!(plain["stored"], serde_json::json!([0, 0]), "{plain}");
    let tls = push(tls_port, true, paths[2..].to_vec())
        .await
        .expect("join");
    assert_eq!(tls["echo"], 0, "{tls}");
    assert_eq!(tls["stored"], serde_json::json!([0, 0, 0]), "{tls}");
    assert_eq!(instance_count(&app, &token, &spec.study_uid).await, Some(5));
    // Plain DICOM on the TLS port gets no association.
    let refused = push(tls_port, false, paths[..1].to_vec())
        .await
        .expect("join");
    assert_eq!(refused["echo"], serde_json::Value::Null, "{refused}");
}
