//! What the core decided.

use idprov_proto::sign::KeyVariant;
use idprov_proto::{OobSecret, SerialNumber, UnixTime};

/// The key an Approved answer is signed with (PROTOCOL.md §5).
#[derive(Debug, Clone)]
pub enum AnswerKey {
    /// The empty key: a verified client certificate was presented, or an
    /// administrator approved.
    Empty,
    /// The secret the request proved, in the variant it used.
    Secret(OobSecret, KeyVariant),
    /// An idprov v2 run's `K_answer`.
    Session(SessionKey),
}

/// An idprov v2 run's `K_answer`: zeroized on drop, never shown.
#[derive(Clone)]
pub struct SessionKey(pub(crate) zeroize::Zeroizing<[u8; 32]>);

impl SessionKey {
    /// The key's bytes, to sign the answer with.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

/// A certificate handed out: issued now, or re-delivered.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Serial, lower-case hex.
    pub serial: SerialNumber,
    /// The leaf followed by the CA's intermediates, PEM.
    pub chain_pem: String,
    /// notBefore, Unix seconds.
    pub not_before: UnixTime,
    /// notAfter, Unix seconds.
    pub not_after: UnixTime,
    /// When to renew: half the validity, seconds.
    pub renew_after_secs: i64,
    /// How the answer is signed.
    pub key: AnswerKey,
    /// The certificate was issued before (§6 4.4), not now.
    pub redelivered: bool,
}

/// Why a request was refused before it was decided (HTTP's 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many wrong secrets for this device from this source.
    LockedOut,
    /// The device's budget of wrong secrets across every source is spent.
    GuessBudgetSpent,
    /// Too many waiting requests from this source.
    WaitingFromSource,
    /// Too many unfinished idprov v2 runs (from this source, or in all).
    PakeSessions,
}

impl Refusal {
    /// What to tell the device.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::LockedOut => "too many wrong secrets for this device from this address",
            Refusal::GuessBudgetSpent => {
                "too many wrong secrets for this device from all addresses; \
                 an administrator can approve this request or register a new secret"
            }
            Refusal::WaitingFromSource => "too many waiting requests from this address",
            Refusal::PakeSessions => "too many unfinished idprov v2 runs; try again shortly",
        }
    }
}

/// Why a request was Rejected: a front door whose wire tells them apart
/// (EST: 403 against 401) needs to know; idprov v1 answers all alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// An administrator rejected this device ID and key (§6 4.2), until
    /// cleared; not counted.
    Administrator,
    /// A secret is registered and the request proved none; no guess, not
    /// counted.
    NoProof,
    /// The proof verifies under no variant of the registered secret (§6
    /// 4.6); counted toward the lockout and the guess budget. (For idprov
    /// v2: a run that did not confirm, counted when it started.)
    WrongSecret,
    /// The device is registered for idprov v2 only (PROTOCOL.md §11.1): no
    /// form of its secret is kept, so a proof of the secret itself (v1's
    /// HMAC, EST's password) is never checked; not counted.
    V2Only,
}

/// The decision.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A certificate.
    Approved(Issued),
    /// Ask again later.
    Waiting {
        /// Seconds.
        retry_secs: u64,
    },
    /// Refused; another attempt counts after `retry_secs` (0: no back-off).
    Rejected {
        /// Seconds.
        retry_secs: u64,
        /// Why.
        why: RejectReason,
    },
    /// Refused unevaluated; ask again after `retry_after_secs`.
    Refused {
        /// Why.
        reason: Refusal,
        /// Seconds.
        retry_after_secs: u64,
    },
}
