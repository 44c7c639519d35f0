//! The waiting queue's fullness, as this process saw it.

use std::sync::Mutex;

use idprov_proto::UnixTime;

/// Whether the queue is full, since when, and what that cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueState {
    /// Full since (Unix seconds), while it is.
    pub full_since: Option<UnixTime>,
    /// First-seen requests not recorded since then.
    pub not_recorded: u64,
    /// Entries of sources holding the most evicted for others since then.
    pub evicted: u64,
}

/// The state, shared.
#[derive(Debug, Default)]
pub(crate) struct Queue(Mutex<QueueState>);

impl Queue {
    /// A request was queued with room to spare: no longer full.
    pub(crate) fn has_room(&self) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(since) = q.full_since {
            tracing::info!(
                since = %since,
                not_recorded = q.not_recorded,
                evicted = q.evicted,
                "the waiting queue has room again"
            );
            *q = QueueState::default();
            metrics::gauge!(crate::metrics::QUEUE_IS_FULL).set(0.0);
        }
    }

    /// The queue was full at `now`; `recorded` when an entry was evicted to
    /// record the request.
    pub(crate) fn full(&self, now: UnixTime, recorded: bool) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if q.full_since.is_none() {
            q.full_since = Some(now);
            metrics::gauge!(crate::metrics::QUEUE_IS_FULL).set(1.0);
        }
        if recorded {
            q.evicted += 1;
            metrics::counter!(crate::metrics::QUEUE_EVICTED).increment(1);
        } else {
            q.not_recorded += 1;
            metrics::counter!(crate::metrics::QUEUE_FULL).increment(1);
        }
    }

    pub(crate) fn state(&self) -> QueueState {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
