//! Abuse limits per source address, kept in memory: connections and
//! handshakes are limited at accept time, before any TLS work; provisioning
//! requests by a token bucket. IPv6 sources are grouped by /64, which is
//! what one host usually holds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The key limits are counted under.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
        v4 => v4,
    }
}

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    /// Takes a token; on refusal, how long until one is available.
    fn take(&mut self, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                ((1.0 - self.tokens) / rate).max(0.001),
            ))
        }
    }
}

/// A token bucket per source, pruned as it grows.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// Most sources remembered before idle ones are forgotten.
const PRUNE_AT: usize = 65_536;

impl RateLimiter {
    /// `rate` per second, bursts of `burst`.
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one event from `source`, or says how long to wait.
    pub fn check(&self, source: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= PRUNE_AT {
            // A full bucket is the same as no bucket: forget those.
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
        }
        buckets
            .entry(source_key(source))
            .or_insert_with(|| Bucket::full(self.burst, now))
            .take(self.rate, self.burst, now)
    }
}

/// Connection and handshake limits applied in the accept loop.
#[derive(Debug)]
pub struct ConnectionLimits {
    per_source: u32,
    total: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
    open_total: AtomicU32,
    handshakes: RateLimiter,
}

/// Why a connection was refused before its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The source has its maximum of open connections.
    SourceConnections,
    /// The server has its maximum of open connections.
    TotalConnections,
    /// The source opens connections faster than its handshake rate.
    HandshakeRate,
}

impl Refusal {
    /// A label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::SourceConnections => "source_connections",
            Refusal::TotalConnections => "total_connections",
            Refusal::HandshakeRate => "handshake_rate",
        }
    }
}

/// An admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<ConnectionLimits>,
    key: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limits.open_total.fetch_sub(1, Ordering::SeqCst);
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

impl ConnectionLimits {
    /// Limits: open connections per source and in total, and new
    /// connections (handshakes) per second per source with a burst.
    pub fn new(
        per_source: u32,
        total: u32,
        handshake_rate: f64,
        handshake_burst: f64,
    ) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            per_source,
            total,
            open: Mutex::new(HashMap::new()),
            open_total: AtomicU32::new(0),
            handshakes: RateLimiter::new(handshake_rate, handshake_burst),
        })
    }

    /// Admits a new connection from `peer`, or refuses it.
    pub fn admit(self: &Arc<Self>, peer: IpAddr, now: Instant) -> Result<Permit, Refusal> {
        let key = source_key(peer);
        // Loopback is where the local administrator and health checks come
        // from; it is limited like any other source.
        if self.open_total.load(Ordering::SeqCst) >= self.total {
            return Err(Refusal::TotalConnections);
        }
        {
            let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            if open.get(&key).copied().unwrap_or(0) >= self.per_source {
                return Err(Refusal::SourceConnections);
            }
        }
        self.handshakes
            .check(peer, now)
            .map_err(|_| Refusal::HandshakeRate)?;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        *open.entry(key).or_insert(0) += 1;
        self.open_total.fetch_add(1, Ordering::SeqCst);
        Ok(Permit {
            limits: self.clone(),
            key,
        })
    }

    /// Open connections now.
    pub fn open(&self) -> u32 {
        self.open_total.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_their_rate() {
        let r = RateLimiter::new(10.0, 3.0);
        let t = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        for _ in 0..3 {
            assert!(r.check(a, t).is_ok());
        }
        let wait = r.check(a, t).unwrap_err();
        assert!(wait <= Duration::from_millis(100));
        assert!(r.check(a, t + Duration::from_millis(110)).is_ok());
        // Another source has its own bucket.
        assert!(r.check("10.0.0.2".parse().expect("ip"), t).is_ok());
    }

    #[test]
    fn connections_are_counted_per_source_and_freed() {
        let l = ConnectionLimits::new(2, 3, 1000.0, 1000.0);
        let t = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let p1 = l.admit(a, t).expect("first");
        let _p2 = l.admit(a, t).expect("second");
        assert_eq!(l.admit(a, t).unwrap_err(), Refusal::SourceConnections);
        let _p3 = l.admit(b, t).expect("other source");
        assert_eq!(l.admit(b, t).unwrap_err(), Refusal::TotalConnections);
        drop(p1);
        assert!(l.admit(a, t).is_ok());
    }

    #[test]
    fn ipv6_sources_are_grouped_by_64() {
        let x: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let y: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        assert_eq!(source_key(x), source_key(y));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(
            source_key(mapped),
            "10.0.0.1".parse::<IpAddr>().expect("ip")
        );
    }
}
