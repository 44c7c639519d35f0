//! The device agent: provision, wait, renew at a random point between 45%
//! and 55% of the validity, fall back to the OOB path when the certificate is
//! refused, and keep going across server restarts and network loss.

use std::time::{Duration, SystemTime};

use idprov_proto::UnixTime;
use tokio::sync::watch;

use super::{Device, DeviceError, DeviceOptions, Outcome};

/// How the agent paces itself.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// How often it wakes to look at the clock while waiting. Waits are
    /// measured on the device's clock, so an injected clock moves them.
    pub poll: Duration,
    /// Longest wait between attempts, whatever the server suggests.
    pub max_wait: Duration,
    /// Shortest wait between attempts.
    pub min_wait: Duration,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            poll: Duration::from_secs(5),
            max_wait: Duration::from_secs(3600),
            min_wait: Duration::from_secs(1),
        }
    }
}

/// A random fraction in `[lo, hi)` from the system's CSPRNG.
fn random_fraction(lo: f64, hi: f64) -> f64 {
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut b);
    let unit = (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
    lo + (hi - lo) * unit
}

/// `d` with ±10% jitter, so a building's devices do not retry in lockstep.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(random_fraction(0.9, 1.1))
}

/// When to renew a certificate: a random point between 45% and 55% of its
/// validity, chosen once per certificate.
pub fn renewal_time(not_before: UnixTime, not_after: UnixTime) -> SystemTime {
    let span = not_after.secs_since(not_before).max(0) as f64;
    let at = not_before.secs() as f64 + span * random_fraction(0.45, 0.55);
    SystemTime::from(UnixTime::from_secs(at as i64))
}

/// Waits until the device clock reaches `until`, or shutdown.
async fn wait_until(
    device: &Device,
    until: SystemTime,
    poll: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        let now = device.time().now();
        if now >= until {
            return true;
        }
        let left = until.duration_since(now).unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(left.min(poll)) => {}
            _ = shutdown.changed() => return false,
        }
        if *shutdown.borrow() {
            return false;
        }
    }
}

/// Runs the agent until `shutdown` turns true.
pub async fn run(
    options: DeviceOptions,
    pace: AgentOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), DeviceError> {
    let mut device = Device::open(options)?;
    let id = device.options().device_id.to_string();
    let mut backoff = pace.min_wait;
    let mut renew_at: Option<(idprov_proto::SerialNumber, SystemTime)> = None;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let now = device.time().now();
        let current = device.current()?;
        // Decide what to do: renew a valid certificate when due, or go the
        // OOB path when there is none (or it expired).
        let renewing = match &current {
            Some((_, leaf)) if UnixTime::from(now) < leaf.not_after => {
                let due = match &renew_at {
                    Some((serial, at)) if *serial == leaf.serial => *at,
                    _ => {
                        let at = renewal_time(leaf.not_before, leaf.not_after);
                        tracing::info!(device_id = %id, serial = %leaf.serial, renew_at = %humantime::format_rfc3339_seconds(at), "certificate valid; renewal scheduled");
                        renew_at = Some((leaf.serial.clone(), at));
                        at
                    }
                };
                if !wait_until(&device, due, pace.poll, &mut shutdown).await {
                    return Ok(());
                }
                true
            }
            Some((_, leaf)) => {
                tracing::warn!(device_id = %id, serial = %leaf.serial, "the certificate has expired; asking again without it");
                false
            }
            None => false,
        };
        let mut fell_back = false;
        let result = if renewing {
            match device.provision(true).await {
                Ok(Outcome::Approved(i)) => Ok(Outcome::Approved(i)),
                other => {
                    let why = match &other {
                        Ok(o) => format!("{o:?}"),
                        Err(e) => e.to_string(),
                    };
                    tracing::warn!(device_id = %id, reason = %why, "renewal with the certificate failed; retrying once without it");
                    fell_back = true;
                    device.provision(false).await
                }
            }
        } else {
            device.provision(false).await
        };
        let wait = match result {
            Ok(Outcome::Approved(installed)) => {
                backoff = pace.min_wait;
                tracing::info!(device_id = %id, serial = %installed.serial, verified_with = installed.verified_with, "provisioned");
                continue;
            }
            Ok(Outcome::Waiting(retry)) => {
                backoff = pace.min_wait;
                if fell_back || current.is_some() || device.options().secret.is_none() {
                    tracing::warn!(device_id = %id, "waiting: re-register or approve device {id}");
                } else {
                    tracing::info!(device_id = %id, retry = ?retry, "waiting for the server");
                }
                jitter(retry.max(pace.min_wait)).min(pace.max_wait)
            }
            Ok(Outcome::Rejected(retry)) => {
                tracing::warn!(device_id = %id, "rejected: the secret is wrong or an administrator rejected device {id}");
                jitter(retry.max(Duration::from_secs(60))).min(pace.max_wait)
            }
            Ok(Outcome::RateLimited(retry)) => {
                tracing::warn!(device_id = %id, retry = ?retry, "rate limited or locked out");
                retry.max(pace.min_wait).min(pace.max_wait)
            }
            Err(e) => {
                tracing::warn!(device_id = %id, error = %e, retry = ?backoff, "provisioning attempt failed");
                let w = jitter(backoff);
                backoff = (backoff * 2)
                    .min(Duration::from_secs(300))
                    .min(pace.max_wait);
                w
            }
        };
        let until = device.time().now() + wait;
        if !wait_until(&device, until, pace.poll, &mut shutdown).await {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_falls_between_45_and_55_percent() {
        for _ in 0..1000 {
            let at = UnixTime::from(renewal_time(
                UnixTime::from_secs(1000),
                UnixTime::from_secs(2000),
            ))
            .secs();
            assert!((1450..=1550).contains(&at), "{at}");
        }
        for _ in 0..1000 {
            let j = jitter(Duration::from_secs(100));
            assert!(j >= Duration::from_secs(90) && j <= Duration::from_secs(110));
        }
    }
}
