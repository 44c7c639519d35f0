//! What a front door hands the core: who asks, for what key, with what
//! proof.

use std::net::IpAddr;

use idprov_ca::PublicKey;
use idprov_proto::kinds::Protocol;
use idprov_proto::sign::KeyVariant;
use idprov_proto::{DeviceId, KeyFingerprint, OobSecret};
use idprov_store::Actor;
use zeroize::Zeroizing;

/// The role a verified certificate's subject OU grants (PROTOCOL.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// OU `admin`: every administrative operation.
    Admin,
    /// OU `plugin`: the protocol's privileged operations.
    Plugin,
    /// OU `service`: a hub service (reads the CRL, metrics).
    Service,
    /// OU `iotdevice`: a device, CN = device ID.
    Device,
    /// Any other OU: authenticated, privileged for nothing.
    Client,
}

impl Role {
    /// The role of a certificate with these OUs (the most privileged wins).
    pub fn of(ous: &[String]) -> Role {
        let has = |ou: &str| ous.iter().any(|o| o == ou);
        if has("admin") {
            Role::Admin
        } else if has("plugin") {
            Role::Plugin
        } else if has("service") {
            Role::Service
        } else if has("iotdevice") {
            Role::Device
        } else {
            Role::Client
        }
    }

    /// The prefix of this role's actor names in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Plugin => "plugin",
            Role::Service => "service",
            Role::Device => "device",
            Role::Client => "client",
        }
    }
}

/// A caller the transport verified (a client certificate that chains to
/// the CA, is valid, allows client authentication and is not revoked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// What it may do.
    pub role: Role,
    /// Its CN (a device ID for devices).
    pub name: String,
    /// Its certificate's SubjectPublicKeyInfo (a renewal keeps the key;
    /// another is a re-key).
    pub spki_der: Vec<u8>,
}

/// What the device claims about itself: free text, recorded, never trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claimed {
    /// Its address (the Go client may send `<nil>`).
    pub ip: String,
    /// Its MAC address.
    pub mac: String,
}

/// How the request proves the device knows its out-of-band secret.
#[derive(Debug, Clone)]
pub enum Proof {
    /// Nothing: it asks to be approved (or presents a certificate).
    None,
    /// idprov v1: an HMAC over the canonical form of this message (§5);
    /// an empty signature proves nothing and is no guess.
    V1(idprov_proto::ProvisionRequest),
    /// The secret itself, as EST's HTTP Basic password carries it (inside
    /// TLS): compared in constant time with the registered secret, and a
    /// guess like a v1 HMAC — counted when wrong, toward the same lockout
    /// and guess budget.
    Secret(OobSecret),
    /// idprov v2: a SPAKE2+ run of this TLS connection
    /// ([`crate::Provisioner::pake_finish`]). Always a guess.
    V2(PakeProof),
}

/// What an idprov v2 run proved: against which registration it ran, and,
/// when the device's confirmation matched and its request verified under
/// the run's `K_request`, the key that signs the answer (`K_answer`).
#[derive(Clone)]
pub struct PakeProof {
    pub(crate) registration: Option<i64>,
    pub(crate) answer_key: Option<Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for PakeProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PakeProof")
            .field("registration", &self.registration)
            .field("confirmed", &self.answer_key.is_some())
            .finish()
    }
}

impl Proof {
    /// Whether it is a guess at a secret (and so counted when wrong).
    pub fn is_guess(&self) -> bool {
        match self {
            Proof::None => false,
            Proof::V1(m) => !m.signature.is_empty(),
            // An OobSecret is never empty.
            Proof::Secret(_) => true,
            Proof::V2(_) => true,
        }
    }

    /// How a proof of the secret itself (v1, EST) verifies under `secret`,
    /// if it does: the variant the answer is then signed in. A v2 run is
    /// never checked against a secret.
    pub(crate) fn verify_secret(&self, secret: &OobSecret) -> Option<KeyVariant> {
        match self {
            Proof::V1(m) => m.verify(secret.expose().as_bytes()).map(|v| v.variant),
            // Digests of equal length compared in constant time, so the
            // time taken says nothing of the secret, not even its length.
            // (An answer that carried a signature would be signed with the
            // raw secret; EST's carry none.)
            Proof::Secret(presented) => {
                let digest = |s: &OobSecret| {
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.expose().as_bytes())
                };
                aws_lc_rs::constant_time::verify_slices_are_equal(
                    digest(presented).as_ref(),
                    digest(secret).as_ref(),
                )
                .ok()
                .map(|()| KeyVariant::RawSecret)
            }
            Proof::None | Proof::V2(_) => None,
        }
    }

    /// The answer's key of a v2 run that confirmed, against whichever
    /// registration.
    pub(crate) fn run_key(&self) -> Option<Zeroizing<[u8; 32]>> {
        match self {
            Proof::V2(p) => p.answer_key.clone(),
            _ => None,
        }
    }

    /// The answer's key of a v2 run that proved the registration
    /// `registration` (the one live now: a run against a replaced
    /// registration proves nothing).
    pub(crate) fn verify_run(&self, registration: i64) -> Option<Zeroizing<[u8; 32]>> {
        match self {
            Proof::V2(p) if p.registration == Some(registration) => p.answer_key.clone(),
            _ => None,
        }
    }
}

/// One provisioning request, parsed by its front door.
#[derive(Debug, Clone)]
pub struct Request {
    /// The device.
    pub device_id: DeviceId,
    /// The key it asks a certificate for.
    pub key: PublicKey,
    /// What it claims.
    pub claimed: Claimed,
    /// The address it came from (limits, lockouts and the queue count by it).
    pub source: IpAddr,
    /// Who the transport verified it to be, if anyone.
    pub caller: Option<Identity>,
    /// Its proof of a secret.
    pub proof: Proof,
    /// The front door it came through: recorded with the certificate, the
    /// waiting request and their audit entries.
    pub protocol: Protocol,
}

impl Request {
    /// The key's fingerprint (unpadded base64url of SHA-256 of the SPKI).
    pub fn key_fingerprint(&self) -> KeyFingerprint {
        self.key.fingerprint()
    }

    /// The audit actor: the verified identity, else the source address.
    pub fn actor(&self) -> Actor {
        match &self.caller {
            Some(id) => Actor::named(id.role.as_str(), &id.name),
            None => Actor::source(&self.source.to_string()),
        }
    }
}
