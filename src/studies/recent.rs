//! What a node keeps in memory (never on disk) between requests: decrypted originals,
//! parsed, and encoded renders. Both are patient data; they are reached only after
//! the request's study and instance were looked up in its practice, so a deleted
//! study's entries are unreachable and age out.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Decrypted originals kept in memory (never on disk), parsed, for the renders that
/// follow each other: the frames of a loop, a window being tried, the preview and
/// then the exact image. Without it every frame decrypts, checks and parses the whole
/// object again (a 60-frame ultrasound loop is tens of MB).
#[derive(Default)]
pub struct RecentOriginals(Mutex<Recent>, Mutex<Loading>);

/// One gate per original being read: requests that miss at the same moment (the
/// first frames of a loop, asked for in parallel) read and parse it once, not each.
type Loading = HashMap<String, Arc<tokio::sync::Mutex<()>>>;

/// Three mammograms or three loops: what the renders that
/// follow each other need. More mostly raises the node's peak memory under load
/// (BENCHMARKS.md), since a repeated request is answered from the recent renders.
const RECENT_ORIGINALS_BYTES: usize = 96 * 1024 * 1024;

pub type Parsed = Arc<crate::dicom::render::ForRender>;

#[derive(Default)]
struct Recent {
    /// Least recently used first; keyed by the stored object's id, with the size
    /// of the original the parsed object was read from.
    items: VecDeque<(String, Parsed, usize)>,
    bytes: usize,
}

/// Single-frame originals below this size are not kept: reading, decrypting and
/// parsing a CT slice again takes about a fifth of a millisecond, while keeping every
/// slice put each first render on fresh pages (page faults) and filled the node's
/// memory with slices that are seldom drawn twice from the original (a repeated
/// render comes from the recent renders).
const KEEP_SINGLE_FRAME_FROM_BYTES: usize = 4 * 1024 * 1024;

impl RecentOriginals {
    /// Whether an original is worth keeping after a render: a multi-frame object
    /// (its frames are asked for one after another) or a big image (a mammogram
    /// takes tens of milliseconds to read and decrypt).
    pub fn worth_keeping(frames: i64, size: usize) -> bool {
        frames > 1 || size >= KEEP_SINGLE_FRAME_FROM_BYTES
    }

    /// Drops everything (what a restarted node starts with).
    pub fn forget_all(&self) {
        if let Ok(mut r) = self.0.lock() {
            *r = Recent::default();
        }
    }

    /// Drops one original (its renders are prepared).
    pub fn forget(&self, blob_id: &str) {
        let Ok(mut r) = self.0.lock() else {
            return;
        };
        if let Some(at) = r.items.iter().position(|(k, _, _)| k == blob_id)
            && let Some((_, _, size)) = r.items.remove(at)
        {
            r.bytes -= size;
        }
    }

    pub fn get(&self, blob_id: &str) -> Option<Parsed> {
        self.0.lock().ok()?.get(blob_id)
    }

    pub fn put(&self, blob_id: &str, parsed: Parsed, size: usize) {
        if let Ok(mut r) = self.0.lock() {
            r.put(blob_id, parsed, size);
        }
    }

    /// Waits for any other request reading `blob_id` to finish, then holds the gate
    /// while this one reads; whoever waited looks in memory again before reading.
    pub async fn reading(&self, blob_id: &str) -> Reading<'_> {
        let gate = self
            .1
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(blob_id.to_string())
            .or_default()
            .clone();
        let held = gate.clone().lock_owned().await;
        Reading {
            originals: self,
            blob_id: blob_id.to_string(),
            gate,
            _held: held,
        }
    }
}

/// One request's turn to read an original. Ending it, however the request ends
/// (answered, failed or dropped by its client), takes its gate away.
pub struct Reading<'a> {
    originals: &'a RecentOriginals,
    blob_id: String,
    gate: Arc<tokio::sync::Mutex<()>>,
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut loading = self.originals.1.lock().unwrap_or_else(|e| e.into_inner());
        // Only our own gate: a later request may have opened a new one meanwhile.
        if loading
            .get(&self.blob_id)
            .is_some_and(|g| Arc::ptr_eq(g, &self.gate))
        {
            loading.remove(&self.blob_id);
        }
    }
}

impl Recent {
    fn get(&mut self, blob_id: &str) -> Option<Parsed> {
        let at = self.items.iter().position(|(k, _, _)| k == blob_id)?;
        let item = self.items.remove(at)?;
        let parsed = item.1.clone();
        self.items.push_back(item);
        Some(parsed)
    }

    fn put(&mut self, blob_id: &str, parsed: Parsed, size: usize) {
        // One object may take half the room at most (a 60-frame loop of 29 MB fits).
        if size > RECENT_ORIGINALS_BYTES / 2 || self.get(blob_id).is_some() {
            return;
        }
        self.bytes += size;
        self.items.push_back((blob_id.to_string(), parsed, size));
        while self.bytes > RECENT_ORIGINALS_BYTES {
            match self.items.pop_front() {
                Some((_, _, old)) => self.bytes -= old,
                None => break,
            }
        }
    }
}

/// Kept variants drawn on request and answered before they are stored: the stores
/// run in the background, a bounded number at a time and each variant once. When
/// all slots are busy a render is simply not kept (it is drawn again when asked).
pub struct PendingKeeps {
    slots: Arc<tokio::sync::Semaphore>,
    in_flight: Mutex<std::collections::HashSet<String>>,
}

const MAX_PENDING_KEEPS: u32 = 16;

impl Default for PendingKeeps {
    fn default() -> Self {
        PendingKeeps {
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_KEEPS as usize)),
            in_flight: Mutex::default(),
        }
    }
}

/// One background store in progress; dropping it frees its slot and its key.
pub struct PendingKeep {
    owner: Arc<crate::app::Services>,
    key: String,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl PendingKeep {
    pub fn services(&self) -> &Arc<crate::app::Services> {
        &self.owner
    }
}

impl Drop for PendingKeep {
    fn drop(&mut self) {
        if let Ok(mut keys) = self.owner.pending_keeps.in_flight.lock() {
            keys.remove(&self.key);
        }
    }
}

impl PendingKeeps {
    /// A slot for keeping `key` in the background, unless it is being kept already
    /// or every slot is taken.
    pub fn start(owner: &Arc<crate::app::Services>, key: String) -> Option<PendingKeep> {
        let me = &owner.pending_keeps;
        let slot = me.slots.clone().try_acquire_owned().ok()?;
        let mut keys = me.in_flight.lock().ok()?;
        if !keys.insert(key.clone()) {
            return None;
        }
        drop(keys);
        Some(PendingKeep {
            owner: owner.clone(),
            key,
            _slot: slot,
        })
    }

    /// Waits until every background store has finished (tests and shutdown).
    pub async fn settled(&self) {
        if let Ok(all) = self.slots.acquire_many(MAX_PENDING_KEEPS).await {
            drop(all);
        }
    }
}

/// Encoded renders drawn on request (another size or window than the kept variants,
/// e.g. the full-size JPEG of DICOMweb's Retrieve Rendered): a second request for the
/// same frame with the same options is answered from memory, not drawn again.
#[derive(Default)]
pub struct RecentRenders(Mutex<Renders>);

const RECENT_RENDERS_BYTES: usize = 64 * 1024 * 1024;

#[derive(Default)]
struct Renders {
    /// Render key -> (encoded image, last use).
    items: HashMap<String, (bytes::Bytes, u64)>,
    bytes: usize,
    clock: u64,
}

impl RecentRenders {
    /// The key of one render: the stored object (a random id), the frame, what was
    /// asked and how it is encoded.
    pub fn key(
        blob_id: &str,
        frame: u32,
        options: &crate::dicom::render::RenderOptions,
        format: super::view::ImageFormat,
    ) -> String {
        format!("{blob_id}/{frame}/{options:?}/{format:?}")
    }

    pub fn get(&self, key: &str) -> Option<bytes::Bytes> {
        let mut r = self.0.lock().ok()?;
        r.clock += 1;
        let now = r.clock;
        let item = r.items.get_mut(key)?;
        item.1 = now;
        Some(item.0.clone())
    }

    /// What one entry costs: the image, its key and the map's own share.
    fn cost(key: &str, encoded: &bytes::Bytes) -> usize {
        encoded.len() + key.len() + 64
    }

    pub fn put(&self, key: String, encoded: bytes::Bytes) {
        // One render may take a sixteenth of the room at most (a full mammogram JPEG
        // is about 2 MB).
        if encoded.len() > RECENT_RENDERS_BYTES / 16 {
            return;
        }
        let Ok(mut r) = self.0.lock() else {
            return;
        };
        r.clock += 1;
        let now = r.clock;
        let size = Self::cost(&key, &encoded);
        if let Some((old, _)) = r.items.insert(key.clone(), (encoded, now)) {
            r.bytes -= Self::cost(&key, &old);
        }
        r.bytes += size;
        if r.bytes > RECENT_RENDERS_BYTES {
            // Least recently used out, down to 90 %, so this scan is not paid per put.
            let mut by_age: Vec<(u64, String, usize)> = r
                .items
                .iter()
                .map(|(k, (b, used))| (*used, k.clone(), Self::cost(k, b)))
                .collect();
            by_age.sort_unstable_by_key(|(used, _, _)| *used);
            for (_, k, len) in by_age {
                if r.bytes <= RECENT_RENDERS_BYTES * 9 / 10 {
                    break;
                }
                r.items.remove(&k);
                r.bytes -= len;
            }
        }
    }

    pub fn forget_all(&self) {
        if let Ok(mut r) = self.0.lock() {
            *r = Renders::default();
        }
    }

    /// Drops every render of one stored object (its study was deleted).
    pub fn forget(&self, blob_id: &str) {
        let Ok(mut r) = self.0.lock() else {
            return;
        };
        let prefix = format!("{blob_id}/");
        let gone: Vec<String> = r
            .items
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        for k in gone {
            if let Some((b, _)) = r.items.remove(&k) {
                r.bytes -= Self::cost(&k, &b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_are_kept_within_their_budget_least_recent_out_first() {
        let cache = RecentRenders::default();
        let piece = bytes::Bytes::from(vec![7u8; 1024 * 1024]);
        cache.put("first".into(), piece.clone());
        for n in 0..100 {
            cache.put(format!("r{n}"), piece.clone());
            // "first" stays in use, so it is never the least recent.
            assert!(cache.get("first").is_some(), "evicted while in use at {n}");
        }
        let r = cache.0.lock().expect("lock");
        assert!(r.bytes <= RECENT_RENDERS_BYTES, "{}", r.bytes);
        let expected: usize = r.items.keys().map(|k| 1024 * 1024 + k.len() + 64).sum();
        assert_eq!(r.bytes, expected);
        assert!(
            !r.items.contains_key("r0"),
            "the oldest unused render stays"
        );
        assert!(r.items.contains_key("r99"));
        drop(r);
        cache.forget("r99");
        cache.put("r99x/1".into(), piece.clone());
        cache.put("r98/0/a".into(), piece.clone());
        cache.forget("r98");
        assert!(cache.get("r98/0/a").is_none());
        assert!(
            cache.get("r99x/1").is_some(),
            "only that object's renders go"
        );
        // Too big for the cache: not kept at all.
        cache.put(
            "huge".into(),
            bytes::Bytes::from(vec![0u8; RECENT_RENDERS_BYTES / 8]),
        );
        assert!(cache.get("huge").is_none());
    }
}
