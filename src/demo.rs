//! `lichtkasten demo`: a practice, an admin, an API client, a generated study and a
//! patient grant, all through the same use cases the real doors use.

use crate::admin;
use crate::app::Running;
use crate::audit::Actor;
use crate::dicom::synth::{StudySpec, demo_study};
use crate::domain::Audience;
use crate::studies::ingest::ingest_files;
use crate::studies::upload::UploadedFile;
use anyhow::Context;
use bytes::Bytes;

pub async fn set_up(running: &Running) -> anyhow::Result<String> {
    let svc = &running.services;
    let mut rng = rand::rngs::OsRng;
    let username = if svc.db.practices().await?.is_empty() {
        "demo-admin".to_string()
    } else {
        format!("demo-admin-{}", &crate::domain::new_id(&mut rng)[..6])
    };
    let practice = admin::create_practice(
        svc,
        "Radiologie am Lichtkasten (Demo)",
        &username,
        "Demo Admin",
    )
    .await?;
    let client = admin::create_api_client(svc, &practice.practice_id, "Demo RIS").await?;
    // The first demo practice is LICHTKASTEN; more in one database get their own.
    let ae_title = if username == "demo-admin" {
        "LICHTKASTEN".to_string()
    } else {
        format!(
            "LK-{}",
            &crate::domain::new_id(&mut rng)[..8].to_uppercase()
        )
    };
    svc.db
        .set_dicom_node(&practice.practice_id, Some(&ae_title), &["*".to_string()])
        .await?;
    let spec = StudySpec::demo(&mut rng);
    let mut files = demo_study(&mut rng, &spec, 12, 256);
    // A cine loop, so the viewer's play button has something to play.
    let us_series = crate::dicom::synth::new_uid(&mut rng);
    let us_sop = crate::dicom::synth::new_uid(&mut rng);
    files.push(crate::dicom::synth::us_loop(
        &spec, &us_series, &us_sop, 24, 192,
    ));
    let files = files
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| UploadedFile {
            name: format!("demo-{i}.dcm"),
            bytes: Bytes::from(bytes),
        })
        .collect();
    let report = ingest_files(
        svc,
        &practice.practice_id,
        &Actor::Operator,
        files,
        Vec::new(),
    )
    .await?;
    anyhow::ensure!(
        report.rejected.is_empty(),
        "demo study was rejected: {:?}",
        report.rejected
    );
    let study = report.studies.first().context("demo study missing")?;
    let grant = crate::access::issue_grant(
        svc,
        &practice.practice_id,
        &study.id,
        Audience::Patient,
        None,
        None,
        &Actor::Operator,
    )
    .await?;
    crate::studies::findings::attach(
        svc,
        &practice.practice_id,
        &study.id,
        Bytes::from(demo_findings(&spec)),
        crate::studies::findings::Release::Now,
        &Actor::Operator,
    )
    .await?;
    Ok(serde_json::json!({
        "base_url": svc.public_url,
        "patient_link": grant.link,
        "access_code": grant.access_code,
        "password": grant.password,
        "staff_username": practice.admin_username,
        "staff_password": practice.admin_password,
        "totp_secret": practice.totp_secret,
        "api_client_id": client.client_id,
        "api_client_secret": client.client_secret,
        "study_id": study.id,
        "dicom_port": running.dicom_addr.map(|a| a.port()),
        "dicom_ae_title": ae_title,
    })
    .to_string())
}

/// A one-page findings report in the demo's own words, for the viewer to show.
fn demo_findings(spec: &StudySpec) -> Vec<u8> {
    use crate::letters::pdf::{Font, Page, render};
    let mut page = Page::default();
    page.text(20.0, 25.0, 16.0, Font::Bold, "Befund (Demo)");
    page.text(
        20.0,
        33.0,
        10.0,
        Font::Regular,
        &spec.patient_name.replace('^', ", "),
    );
    let mut y = 45.0;
    for para in [
        "Fragestellung: Kontrolle nach Sturz. Keine frische Verletzung?",
        "Befund: Regelrechte Darstellung der abgebildeten Strukturen. Kein Nachweis einer Fraktur. Keine Raumforderung.",
        "Beurteilung: Unauffälliger Befund. Dieser Bericht ist ein Beispiel und gehört zu keiner echten Person.",
    ] {
        y = page.paragraph(20.0, y, 170.0, 11.0, Font::Regular, para) + 3.0;
    }
    render(&[page], "Befund")
}
