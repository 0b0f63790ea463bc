//! Prometheus counters, served on their own listener (`metrics_listen`) so the
//! public port never exposes them. Counts only: no ids, no patient data.

use std::sync::atomic::{AtomicU64, Ordering};

pub struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub static HTTP_2XX: Counter = Counter::new();
pub static HTTP_3XX: Counter = Counter::new();
pub static HTTP_4XX: Counter = Counter::new();
pub static HTTP_5XX: Counter = Counter::new();
pub static INSTANCES_STORED: Counter = Counter::new();
pub static INSTANCES_REJECTED: Counter = Counter::new();
pub static SIGNIN_OK: Counter = Counter::new();
pub static SIGNIN_DENIED: Counter = Counter::new();
pub static RENDER_CACHE_HITS: Counter = Counter::new();
pub static RENDER_CACHE_MISSES: Counter = Counter::new();
pub static RECENT_RENDER_HITS: Counter = Counter::new();

pub fn record_status(status: u16) {
    match status {
        200..=299 => HTTP_2XX.inc(),
        300..=399 => HTTP_3XX.inc(),
        400..=499 => HTTP_4XX.inc(),
        _ => HTTP_5XX.inc(),
    }
}

/// The Prometheus text exposition format.
pub fn render() -> String {
    let mut out = String::new();
    out.push_str("# HELP lichtkasten_http_responses_total HTTP responses by status class.\n");
    out.push_str("# TYPE lichtkasten_http_responses_total counter\n");
    for (class, c) in [
        ("2xx", &HTTP_2XX),
        ("3xx", &HTTP_3XX),
        ("4xx", &HTTP_4XX),
        ("5xx", &HTTP_5XX),
    ] {
        out.push_str(&format!(
            "lichtkasten_http_responses_total{{class=\"{class}\"}} {}\n",
            c.get()
        ));
    }
    out.push_str("# HELP lichtkasten_instances_total DICOM instances by ingest outcome.\n");
    out.push_str("# TYPE lichtkasten_instances_total counter\n");
    out.push_str(&format!(
        "lichtkasten_instances_total{{outcome=\"stored\"}} {}\n",
        INSTANCES_STORED.get()
    ));
    out.push_str(&format!(
        "lichtkasten_instances_total{{outcome=\"rejected\"}} {}\n",
        INSTANCES_REJECTED.get()
    ));
    out.push_str("# HELP lichtkasten_signins_total Patient sign-ins by outcome.\n");
    out.push_str("# TYPE lichtkasten_signins_total counter\n");
    out.push_str(&format!(
        "lichtkasten_signins_total{{outcome=\"ok\"}} {}\n",
        SIGNIN_OK.get()
    ));
    out.push_str(&format!(
        "lichtkasten_signins_total{{outcome=\"denied\"}} {}\n",
        SIGNIN_DENIED.get()
    ));
    out.push_str(
        "# HELP lichtkasten_render_cache_total Renders of kept variants by cache outcome.\n",
    );
    out.push_str("# TYPE lichtkasten_render_cache_total counter\n");
    out.push_str(&format!(
        "lichtkasten_render_cache_total{{outcome=\"hit\"}} {}\n",
        RENDER_CACHE_HITS.get()
    ));
    out.push_str(&format!(
        "lichtkasten_render_cache_total{{outcome=\"miss\"}} {}\n",
        RENDER_CACHE_MISSES.get()
    ));
    out.push_str(
        "# HELP lichtkasten_recent_render_hits_total Renders drawn on request and answered again from memory.\n",
    );
    out.push_str("# TYPE lichtkasten_recent_render_hits_total counter\n");
    out.push_str(&format!(
        "lichtkasten_recent_render_hits_total {}\n",
        RECENT_RENDER_HITS.get()
    ));
    out
}
