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

/// Requests per API client: each may send `per_minute` at once and then
/// `per_minute / 60` per second (a token bucket refilled evenly, kept as the time
/// the bucket is full again). Per node, like [`IpLimiter`]: behind N nodes a client
/// gets up to N times the rate, which still bounds what one key can pull.
pub struct KeyLimiter {
    /// Microseconds one request takes from the bucket; 0: no limit.
    cost_us: i64,
    full_again_at: Mutex<HashMap<String, i64>>,
}

const MINUTE_US: i64 = 60_000_000;

impl KeyLimiter {
    /// `per_minute` 0 turns the limit off (benchmarks that drive one key hard).
    pub fn new(per_minute: u32) -> Self {
        KeyLimiter {
            cost_us: if per_minute == 0 {
                0
            } else {
                (MINUTE_US / i64::from(per_minute)).max(1)
            },
            full_again_at: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request of `key` at `now` (Unix seconds); `Err(seconds)` to wait
    /// before the next one is let through.
    pub fn allow(&self, key: &str, now: i64) -> Result<(), u64> {
        if self.cost_us == 0 {
            return Ok(());
        }
        let now_us = now.saturating_mul(1_000_000);
        let Ok(mut map) = self.full_again_at.lock() else {
            return Err(1);
        };
        if map.len() > 10_000 {
            map.retain(|_, at| *at > now_us);
        }
        let full_at = map.get(key).copied().unwrap_or(now_us).max(now_us);
        let after = full_at + self.cost_us;
        let over = after - now_us - MINUTE_US;
        if over > 0 {
            // Whole seconds, rounded up: the clock this is counted on has no finer ones.
            return Err(((over + 999_999) / 1_000_000).max(1) as u64);
        }
        map.insert(key.to_string(), after);
        Ok(())
    }
}

#[cfg(test)]
mod key_limiter_tests {
    use super::*;

    #[test]
    fn a_minute_at_once_then_the_steady_rate() {
        let l = KeyLimiter::new(3);
        assert_eq!(l.allow("a", 100), Ok(()));
        assert_eq!(l.allow("a", 100), Ok(()));
        assert_eq!(l.allow("a", 100), Ok(()));
        // One request refills every 20 s.
        assert_eq!(l.allow("a", 100), Err(20));
        assert_eq!(l.allow("a", 110), Err(10));
        assert_eq!(l.allow("b", 110), Ok(()), "other keys are counted apart");
        assert_eq!(l.allow("a", 120), Ok(()));
        assert_eq!(l.allow("a", 120), Err(20));
        // A quiet minute fills the bucket again, and no further.
        assert_eq!(l.allow("a", 200), Ok(()));
        assert_eq!(l.allow("a", 200), Ok(()));
        assert_eq!(l.allow("a", 200), Ok(()));
        assert_eq!(l.allow("a", 200), Err(20));
    }

    #[test]
    fn six_hundred_a_minute() {
        let l = KeyLimiter::new(600);
        for _ in 0..600 {
            assert_eq!(l.allow("k", 0), Ok(()));
        }
        assert_eq!(l.allow("k", 0), Err(1));
        // Ten a second come back.
        for _ in 0..10 {
            assert_eq!(l.allow("k", 1), Ok(()));
        }
        assert_eq!(l.allow("k", 1), Err(1));
    }

    #[test]
    fn zero_is_no_limit() {
        let l = KeyLimiter::new(0);
        for _ in 0..10_000 {
            assert_eq!(l.allow("k", 0), Ok(()));
        }
    }
}
