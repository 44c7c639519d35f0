//! What the operator configured that the decision depends on.

use std::time::Duration;

use idprov_store::{LockoutPolicy, WaitingCaps};

/// The rules' parameters (from the validated server configuration).
#[derive(Debug, Clone)]
pub struct Policy {
    /// O= of issued device certificates.
    pub organization: String,
    /// Validity of device certificates.
    pub device_validity: Duration,
    /// The CRL distribution point written into device certificates.
    pub crl_url: String,
    /// The OCSP responder written into device certificates (authority
    /// information access), if there is one to name.
    pub ocsp_url: Option<String>,
    /// When set, a new certificate of a device supersedes its older ones:
    /// they are revoked (reason superseded) this long after it was issued.
    pub supersede_after: Option<Duration>,
    /// How long a consumed secret or an approval's certificate may be
    /// re-delivered to the same key (§6 4.4).
    pub redelivery_window: Duration,
    /// Failed-secret locks and the per-device guess budget.
    pub lockout: LockoutPolicy,
    /// Waiting-queue caps.
    pub waiting_caps: WaitingCaps,
    /// The `retrySec` of a Waiting answer.
    pub waiting_retry: Duration,
    /// Device IDs refused because they name a role or this server
    /// (compared without case).
    pub reserved_device_ids: Vec<String>,
    /// idprov v2: PBKDF2 iterations of new v2-only registrations, and of
    /// the records derived from default registrations' sealed secrets.
    pub v2_iterations: u32,
    /// idprov v2: how long an unfinished run is kept, and how many are
    /// kept per source and in all.
    pub v2_sessions: crate::pake::SessionLimits,
}

impl Policy {
    /// The error for a reserved device ID given in `field`, if it is one.
    pub fn check_device_id(&self, field: &str, device_id: &str) -> Result<(), String> {
        reserved_device_id(&self.reserved_device_ids, field, device_id)
    }

    pub(crate) fn redelivery_window_secs(&self) -> i64 {
        secs(self.redelivery_window)
    }
}

pub(crate) use idprov_proto::clock::secs;

/// The one rule for reserved device IDs: `device_id` is refused when it
/// names (without case) one of `reserved`.
pub fn reserved_device_id(reserved: &[String], field: &str, device_id: &str) -> Result<(), String> {
    if reserved.iter().any(|r| r.eq_ignore_ascii_case(device_id)) {
        return Err(format!(
            "field \"{field}\": {device_id:?} names a certificate role or this server; \
             choose another device ID (or list it in provisioning.allow_device_ids)"
        ));
    }
    Ok(())
}
