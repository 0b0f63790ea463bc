//! Per-IP limit on sign-in attempts, on top of the per-grant counter in the
//! database. Kept per node: it slows down one noisy address; the per-grant lock is
//! what protects a grant across nodes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

pub struct IpLimiter {
    max_attempts: u32,
    window_secs: i64,
    seen: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

impl IpLimiter {
    pub fn new(max_attempts: u32, window_secs: i64) -> Self {
        IpLimiter {
            max_attempts,
            window_secs,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt; false once the address has used up its window.
    pub fn allow(&self, ip: IpAddr, now: i64) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        if seen.len() > 100_000 {
            seen.retain(|_, (start, _)| now - *start < self.window_secs);
        }
        let entry = seen.entry(ip).or_insert((now, 0));
        if now - entry.0 >= self.window_secs {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_resets() {
        let l = IpLimiter::new(3, 60);
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        assert!(l.allow(ip, 0) && l.allow(ip, 1) && l.allow(ip, 2));
        assert!(!l.allow(ip, 3));
        assert!(l.allow("127.0.0.2".parse().expect("ip"), 3));
        assert!(l.allow(ip, 61));
    }
}

/// At most `max` requests of one address inside a costly step at once; more are
/// refused at once instead of taking the places of other users.
pub struct InFlight {
    max: usize,
    current: std::sync::Arc<Mutex<HashMap<IpAddr, usize>>>,
}

pub struct InFlightGuard {
    ip: IpAddr,
    current: std::sync::Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl InFlight {
    pub fn new(max: usize) -> Self {
        InFlight {
            max,
            current: Default::default(),
        }
    }

    pub fn enter(&self, ip: IpAddr) -> Option<InFlightGuard> {
        let mut map = self.current.lock().ok()?;
        let n = map.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(InFlightGuard {
            ip,
            current: self.current.clone(),
        })
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Ok(mut map) = self.current.lock()
            && let Some(n) = map.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod in_flight_tests {
    use super::*;

    #[test]
    fn per_address_cap() {
        let f = InFlight::new(2);
        let ip: IpAddr = "127.0.0.2".parse().expect("ip");
        let a = f.enter(ip);
        let b = f.enter(ip);
        assert!(a.is_some() && b.is_some());
        assert!(f.enter(ip).is_none());
        assert!(f.enter("127.0.0.1".parse().expect("ip")).is_some());
        drop(a);
        assert!(f.enter(ip).is_some());
    }
}
