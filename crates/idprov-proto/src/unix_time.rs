//! Unix times: how the registry, the core and the audit log write an
//! instant (whole seconds since 1970-01-01T00:00:00Z, negative before it).

use core::fmt;
use core::time::Duration;

/// An instant in whole seconds since the Unix epoch. Arithmetic saturates:
/// a configured "forever" stays the latest time there is instead of
/// wrapping into the past. JSON and SQL carry it as the bare integer.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct UnixTime(i64);

impl UnixTime {
    /// The epoch itself.
    pub const EPOCH: UnixTime = UnixTime(0);
    /// The latest time there is ("never" for an expiry).
    pub const MAX: UnixTime = UnixTime(i64::MAX);

    /// The time `secs` seconds after the epoch.
    pub const fn from_secs(secs: i64) -> UnixTime {
        UnixTime(secs)
    }

    /// Seconds since the epoch.
    pub const fn secs(self) -> i64 {
        self.0
    }

    /// `secs` seconds later (earlier when negative), saturating.
    pub const fn plus_secs(self, secs: i64) -> UnixTime {
        UnixTime(self.0.saturating_add(secs))
    }

    /// `d` later, saturating.
    pub fn plus(self, d: Duration) -> UnixTime {
        self.plus_secs(duration_secs(d))
    }

    /// `d` earlier, saturating.
    pub fn minus(self, d: Duration) -> UnixTime {
        UnixTime(self.0.saturating_sub(duration_secs(d)))
    }

    /// Seconds from `earlier` to `self` (negative when `earlier` is later),
    /// saturating.
    pub const fn secs_since(self, earlier: UnixTime) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// `t + secs`: [`UnixTime::plus_secs`].
impl core::ops::Add<i64> for UnixTime {
    type Output = UnixTime;

    fn add(self, secs: i64) -> UnixTime {
        self.plus_secs(secs)
    }
}

/// `t - secs`, saturating.
impl core::ops::Sub<i64> for UnixTime {
    type Output = UnixTime;

    fn sub(self, secs: i64) -> UnixTime {
        UnixTime(self.0.saturating_sub(secs))
    }
}

/// `later - earlier`: the seconds between, [`UnixTime::secs_since`].
impl core::ops::Sub for UnixTime {
    type Output = i64;

    fn sub(self, earlier: UnixTime) -> i64 {
        self.secs_since(earlier)
    }
}

/// A duration in whole seconds, saturating at `i64::MAX`.
pub fn duration_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(feature = "std")]
impl From<std::time::SystemTime> for UnixTime {
    fn from(t: std::time::SystemTime) -> UnixTime {
        match t.duration_since(std::time::SystemTime::UNIX_EPOCH) {
            Ok(d) => UnixTime(duration_secs(d)),
            Err(e) => UnixTime(-duration_secs(e.duration())),
        }
    }
}

#[cfg(feature = "std")]
impl From<UnixTime> for std::time::SystemTime {
    fn from(t: UnixTime) -> std::time::SystemTime {
        let magnitude = Duration::from_secs(t.0.unsigned_abs());
        if t.0 >= 0 {
            std::time::SystemTime::UNIX_EPOCH + magnitude
        } else {
            std::time::SystemTime::UNIX_EPOCH - magnitude
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = UnixTime::from_secs(1_000);
        assert_eq!(t.plus(Duration::from_secs(5)).secs(), 1_005);
        assert_eq!(t.plus(Duration::MAX), UnixTime::MAX);
        assert_eq!(UnixTime::MAX.plus_secs(1), UnixTime::MAX);
        assert_eq!(t.minus(Duration::from_secs(2_000)).secs(), -1_000);
        assert_eq!(t.secs_since(UnixTime::from_secs(400)), 600);
        assert_eq!(t + 5, UnixTime::from_secs(1_005));
        assert_eq!(t - 5, UnixTime::from_secs(995));
        assert_eq!(t - UnixTime::from_secs(400), 600);
        assert_eq!(UnixTime::MAX + 1, UnixTime::MAX);
        assert_eq!(serde_json::to_string(&t).unwrap(), "1000");
    }

    #[cfg(feature = "std")]
    #[test]
    fn system_times_round_trip_either_side_of_the_epoch() {
        for secs in [-86_400, 0, 1_700_000_000] {
            let t = UnixTime::from_secs(secs);
            assert_eq!(UnixTime::from(std::time::SystemTime::from(t)), t);
        }
    }
}
