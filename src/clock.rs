//! Time as a parameter: production reads the system clock, tests pin and move it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// A clock tests set and advance.
#[derive(Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(at: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(at)))
    }
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
    pub fn set(&self, at: i64) {
        self.0.store(at, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub type SharedClock = Arc<dyn Clock>;

/// `YYYY-MM-DD` (UTC) of a Unix time, for letters and the viewer.
pub fn format_date(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => {
            let d = t.date();
            format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
        }
        Err(_) => String::new(),
    }
}

pub fn format_datetime(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{} {:02}:{:02} UTC",
            format_date(unix),
            t.hour(),
            t.minute()
        ),
        Err(_) => String::new(),
    }
}

/// `DD.MM.YYYY, HH:MM UTC`, as German pages write a moment.
pub fn format_datetime_de(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{}, {:02}:{:02} UTC",
            format_date_de(unix),
            t.hour(),
            t.minute()
        ),
        Err(_) => String::new(),
    }
}

/// `DD.MM.YYYY` (UTC), as German letters write dates.
pub fn format_date_de(unix: i64) -> String {
    let iso = format_date(unix);
    match (iso.get(..4), iso.get(5..7), iso.get(8..10)) {
        (Some(y), Some(m), Some(d)) => format!("{d}.{m}.{y}"),
        _ => iso,
    }
}

/// The system clock plus an offset read from a file on every reading. Only `demo`
/// uses it (env `LICHTKASTEN_CLOCK_OFFSET_FILE`), so browser tests can let a session
/// idle out without waiting 15 minutes. A missing or unreadable file means no offset.
pub struct OffsetFileClock {
    pub path: std::path::PathBuf,
}

impl Clock for OffsetFileClock {
    fn now(&self) -> i64 {
        let offset = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        SystemClock.now().saturating_add(offset)
    }
}
