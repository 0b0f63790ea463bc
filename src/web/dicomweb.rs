//! DICOMweb for a practice's RIS or PACS (PS3.18): STOW-RS stores instances sent as
//! `multipart/related; type="application/dicom"` through the one ingest pipeline;
//! QIDO-RS searches the caller's practice only. Both take API bearer tokens.

use super::error::WebError;
use super::extract::{ApiBearer, ApiCaller, over_rate};
use crate::app::Services;
use crate::audit::Actor;
use crate::db::studies::TokenInstance;
use crate::studies::view;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

type Svc = State<Arc<Services>>;

/// Studies looked at for one QIDO search (their details are sealed, so the search
/// opens them).
const MAX_SEARCHED: i64 = 5000;
/// PS3.18 failure reason: processing failure.
const FAILURE_PROCESSING: u16 = 0x0110;
/// PS3.18 failure reason: cannot understand.
const FAILURE_CANNOT_UNDERSTAND: u16 = 0xC000;
/// Data set does not match (here: another patient's study).
const FAILURE_MISMATCH: u16 = 0xA900;

fn dicom_json(body: Value, status: StatusCode) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/dicom+json")],
        body.to_string(),
    )
        .into_response()
}

/// The boundary of a `multipart/related; type="application/dicom"` body.
fn boundary(content_type: &str) -> Option<String> {
    let lower = content_type.to_ascii_lowercase();
    if !lower.starts_with("multipart/related") {
        return None;
    }
    let params: Vec<&str> = content_type.split(';').map(str::trim).collect();
    let value = |name: &str| {
        params.iter().find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().trim_matches('"').to_string())
        })
    };
    let part_type = value("type").unwrap_or_default();
    if !part_type.is_empty() && !part_type.eq_ignore_ascii_case("application/dicom") {
        return None;
    }
    value("boundary").filter(|b| !b.is_empty() && b.len() <= 200)
}

fn sop_item(class: &str, instance: &str) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    if !class.is_empty() {
        m.insert("00081150".into(), json!({"vr": "UI", "Value": [class]}));
    }
    if !instance.is_empty() {
        m.insert("00081155".into(), json!({"vr": "UI", "Value": [instance]}));
    }
    m
}

/// Who: the practice's API clients (bearer token). STOW-RS: stores the instances of
/// the body as they arrive (one part in memory at a time); answers which were
/// stored and which failed, and why.
pub async fn post_studies(
    State(svc): Svc,
    caller: ApiCaller,
    req: axum::extract::Request,
) -> Result<Response, WebError> {
    use crate::studies::ingest::FileOutcome;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let Some(boundary) = boundary(&content_type) else {
        return Err(WebError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send multipart/related; type=\"application/dicom\".",
        ));
    };
    let limits = super::upload_body::request_limits(&svc, &caller.practice_id).await?;
    let mut intake = super::upload_body::open_intake(
        &svc,
        &caller.practice_id,
        Actor::ApiClient(caller.client_id.clone()),
        req.headers(),
        &limits,
    )
    .await?;
    let spool = svc.config.data_dir.join("spool");
    let mut tally = crate::studies::upload_stream::Tally::default();
    let mut multipart = multer::Multipart::new(req.into_body().into_data_stream(), boundary);
    // Each part's answer, in the order of the parts: its file is stored in the
    // background, so most outcomes are known only once the intake is finished.
    enum Part {
        Ticket(usize),
        NotDicom,
    }
    let mut parts = Vec::new();
    let mut index = 0;
    let mut broken = None;
    loop {
        let part = match multipart.next_field().await {
            Ok(Some(part)) => part,
            Ok(None) => break,
            Err(_) => {
                broken = Some("malformed_multipart");
                break;
            }
        };
        index += 1;
        let part_type = part
            .content_type()
            .map(|m| m.essence_str().to_ascii_lowercase())
            .unwrap_or_default();
        if !part_type.is_empty() && part_type != "application/dicom" {
            parts.push(Part::NotDicom);
            continue;
        }
        let name = format!("part-{index}");
        let fed = crate::studies::upload_stream::feed(
            &mut intake,
            &name,
            part,
            &limits,
            &spool,
            &mut tally,
            false,
        )
        .await;
        match fed {
            Ok(Some(ticket)) => parts.push(Part::Ticket(ticket)),
            Ok(None) => {}
            Err(e) => {
                broken = Some(e.code());
                break;
            }
        }
    }
    let report = intake.finish().await?;
    let (mut stored, mut failed) = (Vec::new(), Vec::new());
    for part in parts {
        let outcome = match part {
            Part::NotDicom => None,
            Part::Ticket(t) => report.outcome(t).cloned(),
        };
        let reason = match outcome {
            Some(FileOutcome::Stored {
                sop_class,
                sop_instance,
            })
            | Some(FileOutcome::Duplicate {
                sop_class,
                sop_instance,
            }) => {
                stored.push(Value::Object(sop_item(&sop_class, &sop_instance)));
                continue;
            }
            Some(FileOutcome::Rejected("patient_mismatch")) => FAILURE_MISMATCH,
            Some(FileOutcome::Rejected("storage_error" | "quota_exceeded")) => FAILURE_PROCESSING,
            Some(FileOutcome::Rejected(_)) | None => FAILURE_CANNOT_UNDERSTAND,
        };
        let mut item = sop_item("", "");
        item.insert("00081197".into(), json!({"vr": "US", "Value": [reason]}));
        failed.push(item);
    }
    if let Some(code) = broken {
        if stored.is_empty() {
            let status = if code == "upload_too_large" || code == "too_many_files" {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return Err(WebError::new(
                status,
                code,
                "The multipart body could not be read to its end.",
            ));
        }
        // What arrived before the break is stored; the rest is reported as failed.
        let mut item = sop_item("", "");
        item.insert(
            "00081197".into(),
            json!({"vr": "US", "Value": [FAILURE_PROCESSING]}),
        );
        failed.push(item);
    }
    let failed: Vec<Value> = failed.into_iter().map(Value::Object).collect();
    let mut answer = serde_json::Map::new();
    if !stored.is_empty() {
        answer.insert("00081199".into(), json!({"vr": "SQ", "Value": stored}));
    }
    if !failed.is_empty() {
        answer.insert("00081198".into(), json!({"vr": "SQ", "Value": failed}));
    }
    let status = match (stored.is_empty(), failed.is_empty()) {
        (false, true) => StatusCode::OK,
        (false, false) => StatusCode::ACCEPTED,
        (true, _) => StatusCode::CONFLICT,
    };
    Ok(dicom_json(Value::Object(answer), status))
}

#[derive(serde::Deserialize, Default)]
pub struct QidoQuery {
    #[serde(rename = "PatientID")]
    patient_id: Option<String>,
    #[serde(rename = "PatientName")]
    patient_name: Option<String>,
    #[serde(rename = "StudyInstanceUID")]
    study_uid: Option<String>,
    #[serde(rename = "StudyDate")]
    study_date: Option<String>,
    #[serde(rename = "AccessionNumber")]
    accession: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

fn tag(vr: &str, value: &str) -> Value {
    if value.is_empty() {
        json!({"vr": vr})
    } else if vr == "PN" {
        json!({"vr": vr, "Value": [{"Alphabetic": value}]})
    } else {
        json!({"vr": vr, "Value": [value]})
    }
}

/// DICOM date range `A-B`, `A-`, `-B` or one date.
fn date_matches(range: &str, date: &str) -> bool {
    match range.split_once('-') {
        Some((from, to)) => (from.is_empty() || date >= from) && (to.is_empty() || date <= to),
        None => date == range,
    }
}

/// `*` and `?` wildcards, case- and umlaut-insensitive like the portal's search.
fn name_matches(pattern: &str, name: &str) -> bool {
    fn m(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => m(&p[1..], n) || (!n.is_empty() && m(p, &n[1..])),
            (Some('?'), Some(_)) => m(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = view::fold_text(pattern).chars().take(64).collect();
    let n: Vec<char> = view::fold_text(name).chars().collect();
    m(&p, &n)
}

/// Who: the practice's API clients. QIDO-RS: the practice's studies matching the
/// query (PatientID, PatientName with wildcards, StudyInstanceUID, StudyDate range,
/// AccessionNumber; limit and offset).
pub async fn get_studies(
    State(svc): Svc,
    caller: ApiCaller,
    Query(q): Query<QidoQuery>,
) -> Result<Response, WebError> {
    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let page = view::list(&svc, &caller.practice_id, 500, offset).await?;
        let n = page.len() as i64;
        all.extend(page);
        offset += n;
        if n < 500 || offset >= MAX_SEARCHED {
            break;
        }
    }
    let matches: Vec<Value> = all
        .into_iter()
        .filter(|s| q.patient_id.as_ref().is_none_or(|v| &s.patient_id == v))
        .filter(|s| q.study_uid.as_ref().is_none_or(|v| &s.study_uid == v))
        .filter(|s| q.accession.as_ref().is_none_or(|v| &s.accession == v))
        .filter(|s| q.study_date.as_ref().is_none_or(|v| date_matches(v, &s.study_date)))
        .filter(|s| {
            q.patient_name
                .as_ref()
                .is_none_or(|v| name_matches(v, &s.patient_name))
        })
        .skip(q.offset.unwrap_or(0))
        .take(q.limit.unwrap_or(100).clamp(1, 1000))
        .map(|s| {
            json!({
                "00080020": tag("DA", &s.study_date),
                "00080050": tag("SH", &s.accession),
                "00080061": {"vr": "CS", "Value": s.modalities.split(['\\', ',']).filter(|m| !m.is_empty()).collect::<Vec<_>>()},
                "00081030": tag("LO", &s.description),
                "00100010": tag("PN", &s.patient_name),
                "00100020": tag("LO", &s.patient_id),
                "00100030": tag("DA", &s.patient_birth_date),
                "0020000D": tag("UI", &s.study_uid),
                "00201208": {"vr": "IS", "Value": [s.instance_count]},
            })
        })
        .collect();
    Ok(dicom_json(Value::Array(matches), StatusCode::OK))
}

async fn study_by_uid(
    svc: &Services,
    practice_id: &str,
    study_uid: &str,
) -> Result<view::StudyDetail, WebError> {
    if study_uid.is_empty()
        || study_uid.len() > 64
        || !study_uid.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        return Err(WebError::not_found());
    }
    let Some(row) = svc.db.study_key_by_uid(practice_id, study_uid).await? else {
        return Err(WebError::not_found());
    };
    Ok(view::detail(svc, practice_id, &row.id).await?)
}

/// Who: the practice's API clients. QIDO-RS: the series of one of its studies.
pub async fn get_series(
    State(svc): Svc,
    caller: ApiCaller,
    Path(study_uid): Path<String>,
) -> Result<Response, WebError> {
    let detail = study_by_uid(&svc, &caller.practice_id, &study_uid).await?;
    let out: Vec<Value> = detail
        .series
        .iter()
        .map(|s| {
            json!({
                "0020000D": tag("UI", &detail.study.study_uid),
                "0020000E": tag("UI", &s.series.series_uid),
                "00080060": tag("CS", &s.series.modality),
                "0008103E": tag("LO", &s.series.description),
                "00200011": {"vr": "IS", "Value": [s.series.series_number]},
                "00201209": {"vr": "IS", "Value": [s.instances.len()]},
            })
        })
        .collect();
    Ok(dicom_json(Value::Array(out), StatusCode::OK))
}

/// Who: the practice's API clients. QIDO-RS: the instances of one series.
pub async fn get_instances(
    State(svc): Svc,
    caller: ApiCaller,
    Path((study_uid, series_uid)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let detail = study_by_uid(&svc, &caller.practice_id, &study_uid).await?;
    let series = detail
        .series
        .iter()
        .find(|s| s.series.series_uid == series_uid)
        .ok_or_else(WebError::not_found)?;
    let out: Vec<Value> = series
        .instances
        .iter()
        .map(|i| {
            json!({
                "0020000D": tag("UI", &detail.study.study_uid),
                "0020000E": tag("UI", &series.series.series_uid),
                "00080016": tag("UI", &i.sop_class_uid),
                "00080018": tag("UI", &i.sop_uid),
                "00200013": {"vr": "IS", "Value": [i.instance_number]},
                "00280010": {"vr": "US", "Value": [i.rows]},
                "00280011": {"vr": "US", "Value": [i.columns]},
                "00280008": {"vr": "IS", "Value": [i.frames]},
            })
        })
        .collect();
    Ok(dicom_json(Value::Array(out), StatusCode::OK))
}

/// Who: the practice's API clients (the bearer token is checked in the instance's
/// lookup). WADO-RS Retrieve Rendered: one frame (from 1) of an instance of the
/// practice's study, with `viewport`, `window` (or a preset), `quality` and JPEG or
/// PNG by `Accept`, like the viewer's images.
pub async fn get_rendered_frame(
    State(svc): Svc,
    bearer: ApiBearer,
    Path((study_uid, series_uid, sop_uid, frame)): Path<(String, String, String, u32)>,
    Query(q): Query<super::patient_files::RenderQuery>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    if frame == 0 {
        return bearer.nothing_found(&svc).await;
    }
    rendered(
        &svc,
        &bearer,
        (&study_uid, &series_uid, &sop_uid),
        frame - 1,
        &q,
        &headers,
    )
    .await
}

/// Who: the practice's API clients (as above). WADO-RS Retrieve Rendered of an
/// instance (its first frame).
pub async fn get_rendered_instance(
    State(svc): Svc,
    bearer: ApiBearer,
    Path((study_uid, series_uid, sop_uid)): Path<(String, String, String)>,
    Query(q): Query<super::patient_files::RenderQuery>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    rendered(
        &svc,
        &bearer,
        (&study_uid, &series_uid, &sop_uid),
        0,
        &q,
        &headers,
    )
    .await
}

async fn rendered(
    svc: &Arc<Services>,
    bearer: &ApiBearer,
    (study_uid, series_uid, sop_uid): (&str, &str, &str),
    frame: u32,
    q: &super::patient_files::RenderQuery,
    headers: &HeaderMap,
) -> Result<Response, WebError> {
    let valid_uid = |u: &str| {
        !u.is_empty() && u.len() <= 64 && u.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    };
    let valid = [study_uid, series_uid, sop_uid]
        .iter()
        .all(|u| valid_uid(u));
    // Straight to the one instance, the token checked in the same read: no study
    // details are opened for a render.
    let found = match bearer.lookup_hash() {
        Some(hash) if valid => {
            svc.db
                .study_key_and_instance_for_token(
                    &hash,
                    svc.clock.now(),
                    (study_uid, series_uid, sop_uid),
                )
                .await?
        }
        _ => None,
    };
    let Some(TokenInstance {
        client_row_id,
        study,
        instance,
    }) = found
    else {
        return bearer.nothing_found(svc).await;
    };
    if let Some(refused) = over_rate(svc, &client_row_id) {
        return Ok(refused);
    }
    let (options, format) = super::patient_files::render_request(q, headers)?;
    // The rows just read serve the render: no second lookup on this path.
    let image = match view::render_uncached(svc, &study, &instance, frame, options, format).await? {
        Some(image) => image,
        None => {
            view::render_image(
                svc,
                &study.practice_id,
                &study.id,
                &instance.id,
                frame,
                options,
                format,
            )
            .await?
        }
    };
    let mut res = ([(header::CONTENT_TYPE, format.media_type())], image).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("private, no-store"),
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_matching() {
        assert!(name_matches("mül*", "Müller^Jürgen"));
        assert!(name_matches("MUELLER*", "Müller^Jürgen"));
        assert!(!name_matches("Meier*", "Müller^Jürgen"));
        assert!(date_matches("20260101-20261231", "20261120"));
        assert!(date_matches("-20261231", "20261120"));
        assert!(!date_matches("20270101-", "20261120"));
    }
}
