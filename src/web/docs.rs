//! The OpenAPI 3.1 document and a readable reference page made from it, both served
//! from the binary (nothing from a CDN).

use super::pages::render;
use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

pub const OPENAPI: &str = include_str!("openapi.json");

/// Who: anyone. The API contract; no patient data.
pub async fn get_openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub struct Operation {
    pub method: String,
    pub path: String,
    pub summary: String,
    pub auth: String,
}

#[derive(Template)]
#[template(path = "api_docs.html")]
pub struct DocsPage {
    pub t: &'static super::pages::Texts,
    pub title: String,
    pub description: String,
    pub operations: Vec<Operation>,
}

/// Every (method, path) of the document, in document order.
pub fn operations() -> Vec<Operation> {
    let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap_or_default();
    let mut out = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in ["get", "post", "put", "delete"] {
                let op = &item[method];
                if op.is_null() {
                    continue;
                }
                let auth = match op["security"][0]
                    .as_object()
                    .and_then(|o| o.keys().next().cloned())
                {
                    Some(s) if s == "bearer" => "Bearer token".to_string(),
                    Some(s) if s == "patientSession" => "Patient session".to_string(),
                    Some(s) => s,
                    None => "—".to_string(),
                };
                out.push(Operation {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    summary: op["summary"].as_str().unwrap_or("").to_string(),
                    auth,
                });
            }
        }
    }
    out
}

/// Who: anyone.
pub async fn get_docs(headers: axum::http::HeaderMap) -> Response {
    let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap_or_default();
    render(
        StatusCode::OK,
        &DocsPage {
            t: super::pages::texts(&headers),
            title: doc["info"]["title"].as_str().unwrap_or("API").to_string(),
            description: doc["info"]["description"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            operations: operations(),
        },
    )
}
