//! Abuse limits per source address, kept in memory: connections and
//! handshakes are limited at accept time, before any TLS work; provisioning
//! requests by a token bucket. IPv6 sources are grouped by /64, which is
//! what one host usually holds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The key limits are counted under (an IPv6 source's /64; the core's rule).
pub use idprov_core::source_key;

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
///
/// Every open connection has a [`Slot`] saying what it is doing. When the
/// server nears its total, connections that do nothing for anyone — still
/// in the TLS handshake, or with no request in flight — are closed to make
/// room, the longest-idle of the source holding the most first; so no
/// small group of sources can hold the server by opening connections and
/// sitting on them.
#[derive(Debug)]
pub struct ConnectionLimits {
    per_source: u32,
    total: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
    open_total: AtomicU32,
    handshakes: RateLimiter,
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
    next_id: std::sync::atomic::AtomicU64,
    epoch: Instant,
    reclaimed: std::sync::atomic::AtomicU64,
}

/// What a connection is doing, for reclaiming.
#[derive(Debug)]
pub struct Slot {
    key: IpAddr,
    /// 0 = TLS handshake, 1 = open, no request in flight, 2 = serving.
    phase: std::sync::atomic::AtomicU8,
    in_flight: AtomicU32,
    /// Milliseconds since the limits' epoch when the phase last changed.
    since_ms: std::sync::atomic::AtomicU64,
    /// Requests started on this connection.
    requests: std::sync::atomic::AtomicU64,
    epoch: Instant,
    close: tokio::sync::Notify,
    closing: std::sync::atomic::AtomicBool,
}

const HANDSHAKE: u8 = 0;
const IDLE: u8 = 1;
const SERVING: u8 = 2;

impl Slot {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn set_phase(&self, phase: u8) {
        self.phase.store(phase, Ordering::SeqCst);
        self.since_ms.store(self.now_ms(), Ordering::SeqCst);
    }

    /// The TLS handshake finished.
    pub fn handshake_done(&self) {
        self.set_phase(IDLE);
    }

    /// A request began; the guard marks its end (when the response body is
    /// finished or dropped).
    pub fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if self.in_flight.fetch_add(1, Ordering::SeqCst) == 0 {
            self.set_phase(SERVING);
        }
        RequestGuard(self.clone())
    }

    /// Requests started so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// How long it has had no request in flight (zero while serving).
    pub fn idle_for(&self) -> Duration {
        if self.phase.load(Ordering::SeqCst) == SERVING {
            return Duration::ZERO;
        }
        Duration::from_millis(
            self.now_ms()
                .saturating_sub(self.since_ms.load(Ordering::SeqCst)),
        )
    }

    /// Resolves when the server wants this connection closed.
    pub async fn close_requested(&self) {
        if self.closing.load(Ordering::SeqCst) {
            return;
        }
        self.close.notified().await;
    }

    fn request_close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.close.notify_waiters();
        self.close.notify_one();
    }

    /// Whether it may be closed to make room, and how long it has been so.
    fn reclaimable(&self) -> Option<Duration> {
        if self.closing.load(Ordering::SeqCst) {
            return None;
        }
        match self.phase.load(Ordering::SeqCst) {
            SERVING => None,
            _ => Some(self.idle_for()),
        }
    }
}

/// Marks the end of one request on its connection.
#[derive(Debug)]
pub struct RequestGuard(Arc<Slot>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.set_phase(IDLE);
        }
    }
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
    id: u64,
    /// What the connection is doing.
    pub slot: Arc<Slot>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limits.open_total.fetch_sub(1, Ordering::SeqCst);
        self.limits
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// A connection in its handshake is reclaimable only after this long (a
/// full handshake takes milliseconds; a new legitimate one is left alone).
const RECLAIM_HANDSHAKE_AFTER: Duration = Duration::from_millis(500);

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
            slots: Mutex::new(HashMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(0),
            epoch: Instant::now(),
            reclaimed: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// When reclaiming starts: seven eighths of the total.
    fn high_water(&self) -> u32 {
        self.total - self.total / 8
    }

    /// Admits a new connection from `peer`, or refuses it.
    pub fn admit(self: &Arc<Self>, peer: IpAddr, now: Instant) -> Result<Permit, Refusal> {
        let key = source_key(peer);
        // Loopback is where the local administrator and health checks come
        // from; it is limited like any other source.
        {
            let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            if open.get(&key).copied().unwrap_or(0) >= self.per_source {
                return Err(Refusal::SourceConnections);
            }
        }
        let open_total = self.open_total.load(Ordering::SeqCst);
        if open_total >= self.high_water() {
            // Near the total: make room by closing a connection that serves
            // no one. At the total, a newcomer is admitted only if one was
            // found (it closes within moments).
            let found = self.reclaim_one(key);
            if open_total >= self.total && (!found || open_total >= self.total + self.total / 16) {
                return Err(Refusal::TotalConnections);
            }
        }
        self.handshakes
            .check(peer, now)
            .map_err(|_| Refusal::HandshakeRate)?;
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let slot = Arc::new(Slot {
            key,
            phase: std::sync::atomic::AtomicU8::new(HANDSHAKE),
            in_flight: AtomicU32::new(0),
            since_ms: std::sync::atomic::AtomicU64::new(
                u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX),
            ),
            requests: std::sync::atomic::AtomicU64::new(0),
            epoch: self.epoch,
            close: tokio::sync::Notify::new(),
            closing: std::sync::atomic::AtomicBool::new(false),
        });
        *self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_insert(0) += 1;
        self.open_total.fetch_add(1, Ordering::SeqCst);
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, slot.clone());
        Ok(Permit {
            limits: self.clone(),
            key,
            id,
            slot,
        })
    }

    /// Asks one connection that serves no one to close: of the source with
    /// the most open connections (never `newcomer`'s own unless it is
    /// that source), the one idle longest. Whether one was found.
    fn reclaim_one(&self, newcomer: IpAddr) -> bool {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let victim = slots
            .values()
            .filter_map(|s| {
                let idle = s.reclaimable()?;
                if s.phase.load(Ordering::SeqCst) == HANDSHAKE && idle < RECLAIM_HANDSHAKE_AFTER {
                    return None;
                }
                let weight = open.get(&s.key).copied().unwrap_or(0);
                // A newcomer's own connections go last.
                let own = s.key == newcomer;
                Some(((!own, weight, idle), s.clone()))
            })
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, s)| s);
        drop(slots);
        match victim {
            Some(s) => {
                s.request_close();
                self.reclaimed.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(crate::observe::CONNECTIONS_RECLAIMED).increment(1);
                true
            }
            None => false,
        }
    }

    /// Open connections now.
    pub fn open(&self) -> u32 {
        self.open_total.load(Ordering::SeqCst)
    }

    /// Connections closed to make room so far.
    pub fn reclaimed(&self) -> u64 {
        self.reclaimed.load(Ordering::Relaxed)
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
