//! `lichtkasten verify`: reads back every object the database records (originals,
//! findings, renders), checks that it decrypts and matches the size and SHA-256
//! taken when it was stored, and counts stored objects no row refers to. An
//! operator's check after a crash or a restore; the crash tests rely on it.

use crate::app::Services;
use crate::crypto::stream::ObjectContext;
use sha2::{Digest, Sha256};
use std::collections::HashSet;

#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    /// Objects read back and found intact, by kind.
    pub intact: std::collections::BTreeMap<String, usize>,
    /// Recorded objects that are missing, altered or unreadable (blob ids only).
    pub damaged: Vec<String>,
    /// Stored objects without a row (left by a crash; `purge` removes them).
    pub unreferenced_objects: usize,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty()
    }
}

pub async fn verify(svc: &Services) -> anyhow::Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let blobs = svc.db.all_blobs().await?;
    let mut current_study: Option<(String, crate::crypto::Key32)> = None;
    for blob in &blobs {
        if current_study.as_ref().map(|(id, _)| id.as_str()) != Some(blob.study_id.as_str()) {
            let Some(row) = svc.db.study_key(&blob.practice_id, &blob.study_id).await? else {
                report.damaged.push(blob.id.clone());
                continue;
            };
            let dek = svc.keys.study_key(&svc.db, &row).await?;
            current_study = Some((blob.study_id.clone(), dek));
        }
        let Some((_, dek)) = current_study.as_ref() else {
            continue;
        };
        let ctx = ObjectContext {
            study_id: &blob.study_id,
            object_id: &blob.id,
        };
        let intact = match svc.blobs.get_all(&blob.object_key, dek, ctx).await {
            Ok(bytes) => {
                bytes.len() as i64 == blob.plain_size
                    && hex::encode(Sha256::digest(&bytes)) == blob.sha256
            }
            Err(_) => false,
        };
        if intact {
            *report.intact.entry(blob.kind.clone()).or_default() += 1;
        } else {
            report.damaged.push(blob.id.clone());
        }
    }
    let known: HashSet<&str> = blobs.iter().map(|b| b.object_key.as_str()).collect();
    report.unreferenced_objects = svc
        .blobs
        .raw()
        .list()
        .await?
        .iter()
        .filter(|k| !known.contains(k.as_str()))
        .count();
    Ok(report)
}
