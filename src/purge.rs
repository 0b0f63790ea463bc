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
}

pub async fn purge(svc: &Services) -> anyhow::Result<PurgeReport> {
    let now = svc.clock.now();
    let dead_rows = svc.db.purge_dead_sessions(now).await?;
    let known: std::collections::HashSet<String> =
        svc.db.all_object_keys().await?.into_iter().collect();
    let mut orphaned_objects = 0;
    for (key, modified) in svc.blobs.raw().list_with_times().await? {
        if !known.contains(&key) && modified < now - ORPHAN_MIN_AGE_SECS {
            svc.blobs.delete(&key).await?;
            orphaned_objects += 1;
        }
    }
    tracing::info!(dead_rows, orphaned_objects, "purge done");
    Ok(PurgeReport {
        dead_rows,
        orphaned_objects,
    })
}
