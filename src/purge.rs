//! `lichtkasten purge`: housekeeping an operator runs from cron. Removes dead session
//! and token rows, and stored objects no database row refers to (left by a crash
//! between storing and recording, or by a study deleted while the store was down).

use crate::app::Services;

/// Objects younger than this may belong to an upload still in progress.
pub const ORPHAN_MIN_AGE_SECS: i64 = 3600;

#[derive(Debug, Default, serde::Serialize)]
pub struct PurgeReport {
    pub dead_rows: u64,
    pub orphaned_objects: usize,
    pub empty_studies: u64,
}

/// `orphan_min_age`: objects (and studies without any object) younger than this
/// are left alone, as they may belong to an upload in progress.
pub async fn purge(svc: &Services, orphan_min_age: i64) -> anyhow::Result<PurgeReport> {
    let now = svc.clock.now();
    let dead_rows = svc.db.purge_dead_sessions(now).await?;
    let empty_studies = svc.db.delete_empty_studies(now - orphan_min_age).await?;
    let known: std::collections::HashSet<String> =
        svc.db.all_object_keys().await?.into_iter().collect();
    let mut orphaned_objects = 0;
    for (key, modified) in svc.blobs.raw().list_with_times().await? {
        if !known.contains(&key) && modified <= now - orphan_min_age {
            svc.blobs.delete(&key).await?;
            orphaned_objects += 1;
        }
    }
    tracing::info!(dead_rows, orphaned_objects, empty_studies, "purge done");
    Ok(PurgeReport {
        dead_rows,
        orphaned_objects,
        empty_studies,
    })
}
