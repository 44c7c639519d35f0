//! Audit entries that anyone on the network can cause — failed sign-ins,
//! first-seen waiting requests, lockouts, spent guess budgets — must not
//! grow the audit log at the rate requests arrive. Per event and source,
//! the first occurrence in an interval is written as it happens; the rest
//! are counted and written as one `audit_aggregated` entry when the
//! interval ends. Past [`MAX_KEYS`] sources in one interval, further
//! sources share one key (`*`), so a flood from many addresses is bounded
//! too: at most about `2 × MAX_KEYS` entries per event per interval.
//!
//! Entries by authenticated callers (administrators, issued certificates)
//! never pass through here: each is written in its own transaction with
//! the change it records.

use std::collections::HashMap;
use std::sync::Mutex;

use idprov_proto::UnixTime;
use idprov_store::{Actor, AuditEvent, AuditRecord};

/// Distinct sources tracked in one interval before the rest share a key.
pub const MAX_KEYS: usize = 1000;

/// The shared key past [`MAX_KEYS`].
const OTHERS: &str = "*";

#[derive(Debug)]
struct Window {
    start: UnixTime,
    last: UnixTime,
    suppressed: u64,
}

/// Per-interval aggregation of unauthenticated audit events.
#[derive(Debug)]
pub struct Aggregator {
    interval: i64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    windows: HashMap<(&'static str, String), Window>,
    /// Summaries of windows that ended when a new one began.
    pending: Vec<AuditRecord>,
}

fn summary(event: &str, source: &str, w: &Window, now: UnixTime) -> AuditRecord {
    AuditRecord::new(
        now,
        Actor::system(),
        AuditEvent::AuditAggregated {
            event: event.to_owned(),
            source: source.to_owned(),
            count: w.suppressed,
            from: w.start,
            to: w.last,
        },
        None,
    )
}

impl Aggregator {
    /// Intervals of `interval_secs`.
    pub fn new(interval_secs: i64) -> Aggregator {
        Aggregator {
            interval: interval_secs.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Whether [`Aggregator::first`] would say "write it now", without
    /// counting anything: for an entry that must be prepared before it is
    /// known whether the event happens (a request that may or may not be
    /// new to the queue).
    pub fn would_write(&self, event: &'static str, source: &str, now: UnixTime) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.windows.get(&(event, source.to_owned())) {
            Some(w) => now.secs_since(w.start) >= self.interval,
            None => state.windows.len() < MAX_KEYS,
        }
    }

    /// Whether an occurrence of `event` from `source` at `now` is written
    /// now (the first of its interval) or only counted.
    pub fn first(&self, event: &'static str, source: &str, now: UnixTime) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let State { windows, pending } = &mut *state;
        let fresh = Window {
            start: now,
            last: now,
            suppressed: 0,
        };
        let key = (event, source.to_owned());
        if let Some(w) = windows.get_mut(&key) {
            if now.secs_since(w.start) < self.interval {
                w.suppressed += 1;
                w.last = now;
                return false;
            }
            if w.suppressed > 0 {
                pending.push(summary(event, source, w, now));
            }
            *w = fresh;
            return true;
        }
        if windows.len() >= MAX_KEYS {
            let others = windows.entry((event, OTHERS.to_owned())).or_insert(fresh);
            others.suppressed += 1;
            others.last = now;
            return false;
        }
        windows.insert(key, fresh);
        true
    }

    /// The summaries of intervals that ended by `now` (or all, with
    /// `flush_all`, at shutdown), each as one audit entry; their windows
    /// are forgotten.
    pub fn due(&self, now: UnixTime, flush_all: bool) -> Vec<AuditRecord> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let State { windows, pending } = &mut *state;
        let mut out = std::mem::take(pending);
        windows.retain(|(event, source), w| {
            if !flush_all && now.secs_since(w.start) < self.interval {
                return true;
            }
            if w.suppressed > 0 {
                out.push(summary(event, source, w, now));
            }
            false
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_of_an_interval_is_written_the_rest_counted() {
        let a = Aggregator::new(60);
        assert!(a.first("web_signin_failed", "10.0.0.1", UnixTime::from_secs(100)));
        for t in 101..150 {
            assert!(!a.first("web_signin_failed", "10.0.0.1", UnixTime::from_secs(t)));
        }
        // Another source or event is its own.
        assert!(a.first("web_signin_failed", "10.0.0.2", UnixTime::from_secs(120)));
        assert!(a.first("request_queued", "10.0.0.1", UnixTime::from_secs(120)));
        assert!(
            a.due(UnixTime::from_secs(150), false).is_empty(),
            "intervals not over yet"
        );
        let due = a.due(UnixTime::from_secs(161), false);
        assert_eq!(due.len(), 1, "one summary: the suppressed 49");
        assert_eq!(due[0].event().detail()["count"], 49);
        assert_eq!(due[0].event().detail()["event"], "web_signin_failed");
        // A new interval writes its first again.
        assert!(a.first("web_signin_failed", "10.0.0.1", UnixTime::from_secs(170)));
    }

    #[test]
    fn many_sources_share_one_key_past_the_limit() {
        let a = Aggregator::new(60);
        let mut written = 0;
        for i in 0..(MAX_KEYS + 500) {
            if a.first(
                "web_signin_failed",
                &format!("src-{i}"),
                UnixTime::from_secs(100),
            ) {
                written += 1;
            }
        }
        assert_eq!(written, MAX_KEYS);
        let due = a.due(UnixTime::from_secs(200), false);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].event().detail()["source"], "*");
        assert_eq!(due[0].event().detail()["count"], 500);
    }
}
