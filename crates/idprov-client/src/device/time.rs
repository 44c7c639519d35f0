//! Time on a device that may have no real-time clock.
//!
//! A device that boots without an RTC starts at 1970. When the system time
//! is earlier than this library's build date, the clock is known to be
//! wrong, and the device takes as "now" the latest of the system time, the
//! build date and the server's HTTP `Date` (learned only over verified TLS),
//! advanced by the time elapsed since it was learned.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use idprov_proto::clock::Clock;

/// When this library was built.
pub fn build_time() -> SystemTime {
    let secs: u64 = env!("IDPROV_BUILD_UNIX").parse().unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The device's view of time.
#[derive(Debug, Clone)]
pub struct TimeKeeper {
    clock: Arc<dyn Clock>,
    build_time: SystemTime,
    server: Arc<Mutex<Option<(SystemTime, Instant)>>>,
}

impl TimeKeeper {
    /// A time keeper over `clock`, trusting it from `build_time` on.
    pub fn new(clock: Arc<dyn Clock>, build_time: SystemTime) -> TimeKeeper {
        TimeKeeper {
            clock,
            build_time,
            server: Arc::new(Mutex::new(None)),
        }
    }

    /// True when the system clock is before the build date: no RTC.
    pub fn clock_is_wrong(&self) -> bool {
        self.clock.now() < self.build_time
    }

    /// The best estimate of now.
    pub fn now(&self) -> SystemTime {
        let system = self.clock.now();
        if system >= self.build_time {
            return system;
        }
        let server = self
            .server
            .lock()
            .ok()
            .and_then(|s| *s)
            .map(|(date, at)| date + at.elapsed());
        [Some(system), Some(self.build_time), server]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(system)
    }

    /// Learns the server's `Date` (call only after TLS verified the server).
    pub fn learn_server_date(&self, date: SystemTime) {
        if !self.clock_is_wrong() {
            return;
        }
        if let Ok(mut s) = self.server.lock() {
            let first = s.is_none();
            *s = Some((date, Instant::now()));
            if first {
                tracing::warn!(
                    system_time = ?self.clock.now(),
                    build_time = ?self.build_time,
                    server_date = ?date,
                    "the system clock is earlier than this software's build date (no real-time clock?); using the server's time"
                );
            }
        }
    }

    /// The underlying clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idprov_proto::clock::ManualClock;

    #[test]
    fn a_1970_clock_takes_the_latest_of_build_date_and_server_date() {
        let clock = Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(60)));
        let built = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let t = TimeKeeper::new(clock.clone(), built);
        assert!(t.clock_is_wrong());
        assert_eq!(t.now(), built);
        let server = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        t.learn_server_date(server);
        assert!(t.now() >= server && t.now() < server + Duration::from_secs(5));
        // Once the system clock is right, it is used as is.
        clock.set(UNIX_EPOCH + Duration::from_secs(1_900_000_000));
        assert!(!t.clock_is_wrong());
        assert_eq!(t.now(), UNIX_EPOCH + Duration::from_secs(1_900_000_000));
    }
}
