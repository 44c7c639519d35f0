//! The device side of the protocol (PROTOCOL.md §10): find the server, pin
//! its CA, send a signed request, verify the answer, and replace key,
//! certificate and CA as one set.

mod agent;
mod store;
mod time;
mod trust;
mod v2;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use idprov_proto::clock::{Clock, SystemClock};
use idprov_proto::{
    DeviceId, Directory, Fingerprint, OobSecret, ProvisionRequest, ProvisionResponse,
    ProvisionStatus,
};
use idprov_proto::{SerialNumber, UnixTime};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use zeroize::Zeroizing;

pub use agent::{AgentOptions, run};
pub use store::{CredentialSet, Store};
pub use time::{TimeKeeper, build_time};

#[cfg(feature = "discovery")]
use crate::discovery::{Discovered, discover};

/// Key algorithms a device can generate: the CA crate's list, defined
/// once (`p256`, `p384`, `ed25519`, `rsa2048`, `rsa3072`, `rsa4096`).
pub use idprov_ca::KeyAlgorithm;

/// A device's default key: ECDSA P-256, what Go idprov devices use.
pub const DEFAULT_KEY_ALGORITHM: KeyAlgorithm = KeyAlgorithm::EcdsaP256;

fn generate_key(algorithm: KeyAlgorithm) -> Result<rcgen::KeyPair, DeviceError> {
    algorithm
        .generate()
        .map_err(|e| DeviceError::Key(e.to_string()))
}

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerTarget {
    /// `HOST:PORT` or an `https://` base URL.
    Address(String),
    /// Found over DNS-SD within this time.
    #[cfg(feature = "discovery")]
    Discover(Duration),
}

/// What a device needs to know.
#[derive(Clone)]
pub struct DeviceOptions {
    /// The device's ID.
    pub device_id: DeviceId,
    /// Its OOB secret, if it has one (without, an administrator must approve).
    pub secret: Option<OobSecret>,
    /// The CA fingerprint from the label or configuration: checked before
    /// anything signed is sent.
    pub ca_fingerprint: Option<Fingerprint>,
    /// A CA (PEM) given out of band.
    pub ca_pem: Option<String>,
    /// Where the server is.
    pub server: ServerTarget,
    /// The credential directory.
    pub dir: PathBuf,
    /// The key type generated on first run.
    pub key_type: KeyAlgorithm,
    /// The free-text address the device claims (`ip`), e.g. `"<nil>"`.
    pub claimed_ip: String,
    /// The free-text MAC the device claims (`mac`).
    pub claimed_mac: String,
    /// Wall-clock time.
    pub clock: Arc<dyn Clock>,
    /// From when the clock is trusted.
    pub build_time: SystemTime,
    /// Accept an Approved answer signed with the empty key although the CA
    /// was trusted on first use. Dangerous: a rogue server on the network
    /// could then hand out its own CA.
    pub danger_accept_empty_key_after_first_contact: bool,
    /// First contact with idprov v2 (SPAKE2+, PROTOCOL.md §11) only: never
    /// v1, whatever the server's directory says (a label `idprov:2?…`).
    pub v2: bool,
}

impl std::fmt::Debug for DeviceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceOptions")
            .field("device_id", &self.device_id)
            .field("has_secret", &self.secret.is_some())
            .field("ca_fingerprint", &self.ca_fingerprint)
            .field("server", &self.server)
            .field("v2", &self.v2)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl DeviceOptions {
    /// Options with the defaults: discovery (10 s), ECDSA P-256, the system
    /// clock, `ip` and `mac` as `"<nil>"` and `""`.
    pub fn new(device_id: DeviceId, dir: PathBuf) -> DeviceOptions {
        DeviceOptions {
            device_id,
            secret: None,
            ca_fingerprint: None,
            ca_pem: None,
            #[cfg(feature = "discovery")]
            server: ServerTarget::Discover(Duration::from_secs(10)),
            // Without discovery the server must be given.
            #[cfg(not(feature = "discovery"))]
            server: ServerTarget::Address(String::new()),
            dir,
            key_type: DEFAULT_KEY_ALGORITHM,
            claimed_ip: "<nil>".into(),
            claimed_mac: String::new(),
            clock: Arc::new(SystemClock),
            build_time: build_time(),
            danger_accept_empty_key_after_first_contact: false,
            v2: false,
        }
    }
}

/// Why provisioning failed. The messages are written for a device's log.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// DNS-SD found no idprov server.
    #[error("no idprov server found on the local network (DNS-SD _idprov._tcp)")]
    NoServerFound,
    /// DNS-SD itself failed.
    #[error("discovery failed: {0}")]
    Discovery(String),
    /// The server could not be reached.
    #[error("cannot reach the server at {server}: {detail}")]
    Unreachable {
        /// Where.
        server: String,
        /// Why.
        detail: String,
    },
    /// The TLS handshake failed while presenting the device's certificate.
    #[error("the server refused the device certificate in the TLS handshake: {0}")]
    CertificateRefused(String),
    /// The server's certificate does not chain to the pinned CA.
    #[error("the server at {server} is not trusted: {detail}")]
    ServerUntrusted {
        /// Where.
        server: String,
        /// Why.
        detail: String,
    },
    /// The directory's CA does not match the configured fingerprint.
    #[error(
        "the server's CA does not match the expected fingerprint {expected} (it offered {offered}); nothing was sent"
    )]
    FingerprintMismatch {
        /// What the label or configuration said.
        expected: String,
        /// What the server offered.
        offered: String,
    },
    /// The directory carried no CA and none is pinned.
    #[error("the server's directory carries no CA certificate, and no CA is configured")]
    NoCa,
    /// An HTTP error from the server.
    #[error("the server refused the request ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Its message.
        message: String,
    },
    /// The answer did not make sense.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The Approved answer's signature verifies under no acceptable key.
    #[error(
        "the Approved answer's signature does not verify under any acceptable key; its certificate was discarded"
    )]
    BadSignature,
    /// The Approved answer is signed with the empty key (an administrator's
    /// approval), and this device may not accept that: it trusts the
    /// server's CA only from this first contact on the network (PROTOCOL.md
    /// §5). The server re-delivers the same certificate within its
    /// re-delivery window, so trying again with a pinned CA (or, knowingly,
    /// the danger option) still gets it.
    #[error(
        "the Approved answer is signed with the empty key (an administrator approved this device), which this device \
         accepts only from a server whose CA it knows from outside the network; its certificate was discarded. \
         Pin the server's CA (its fingerprint, from the device's label or `idprov ca-fingerprint` on the server, or \
         the CA file) and ask again, or allow the empty key after an unpinned first contact, which lets whoever \
         answered this device first hand it a certificate of a CA of their own. The server gives the same \
         certificate again for a few minutes (its re-delivery window); after that an administrator approves again"
    )]
    EmptyKeyUntrusted,
    /// The server's certificate no longer chains to the CA this device
    /// holds from its last certificate: the server's CA was replaced (a
    /// rollover's transition ended while the device was away). The next
    /// attempt goes the OOB path without that CA.
    #[error(
        "the server at {server} no longer presents a certificate of the CA this device trusts: its CA was \
         replaced (a CA rollover ended while this device was away). Falling back to the OOB path: register a new \
         secret for this device (idprov oob add ID) or approve its request, and give it the server's new CA \
         fingerprint (idprov ca-fingerprint) ({detail})"
    )]
    CaReplaced {
        /// Where.
        server: String,
        /// The TLS error.
        detail: String,
    },
    /// The device speaks idprov v2 only, and the server does not offer it.
    #[error(
        "the server does not offer idprov v2 ({0} is unknown there); this device is configured for v2 \
         (its label says idprov:2) and never falls back to v1: enable v2 on the server (provisioning.v2)"
    )]
    NoV2(String),
    /// The server could not prove it holds this device's v2 verifier.
    #[error(
        "idprov v2: the server's confirmation does not match: it holds no verifier for this device and secret \
         (not registered, already used or expired, or another secret), or the exchange was relayed over another \
         TLS connection; nothing more was sent"
    )]
    PakeFailed,
    /// The issued certificate is not acceptable.
    #[error("the issued certificate was refused: {0}")]
    BadCertificate(String),
    /// Reading or writing the credential directory failed.
    #[error("credential directory: {0}")]
    Storage(String),
    /// The device's key could not be generated or read.
    #[error("device key: {0}")]
    Key(String),
}

/// What a provisioning attempt ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new (or re-delivered) certificate is installed.
    Approved(Installed),
    /// Ask again after this long.
    Waiting(Duration),
    /// Refused; another attempt counts after this long (zero: no back-off).
    Rejected(Duration),
    /// Locked out or rate limited for this long.
    RateLimited(Duration),
}

/// A certificate the device installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Serial.
    pub serial: SerialNumber,
    /// notBefore.
    pub not_before: UnixTime,
    /// notAfter.
    pub not_after: UnixTime,
    /// Which key verified the answer: "secret", "empty key" or "v2 session key".
    pub verified_with: &'static str,
}

/// The facts of a certificate the device needs: the CA crate's
/// [`idprov_ca::CertInfo`], defined once.
pub use idprov_ca::CertInfo as LeafFacts;

/// Reads the first certificate of a PEM chain.
pub fn leaf_of_pem(pem: &str) -> Result<LeafFacts, DeviceError> {
    let der = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| DeviceError::BadCertificate("no certificate in the PEM".into()))?
        .map_err(|e| DeviceError::BadCertificate(format!("PEM: {e:?}")))?;
    LeafFacts::from_der(&der).map_err(|e| DeviceError::BadCertificate(e.to_string()))
}

fn spki_of(key: &rcgen::KeyPair) -> Vec<u8> {
    rcgen::PublicKeyData::subject_public_key_info(key)
}

/// Where to send requests: a base URL and, for discovered servers, the
/// addresses its host name resolves to (IPv6 link-local ones with scope).
#[derive(Debug, Clone)]
struct Target {
    base: String,
    host: Option<(String, Vec<SocketAddr>)>,
}

/// A device: its options, its credential directory and its key.
pub struct Device {
    opts: DeviceOptions,
    store: Store,
    key: rcgen::KeyPair,
    time: TimeKeeper,
    /// The installed set's CA no longer verifies the server (its CA was
    /// replaced): attempts go the OOB path with a new first contact.
    ca_replaced: bool,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

fn storage(e: std::io::Error) -> DeviceError {
    DeviceError::Storage(e.to_string())
}

impl Device {
    /// Opens the credential directory and loads the device's key, generating
    /// (and keeping) one on first run.
    pub fn open(opts: DeviceOptions) -> Result<Device, DeviceError> {
        let store = Store::open(&opts.dir).map_err(storage)?;
        let key_pem = match store.current().map_err(storage)? {
            Some(set) => set.key_pem,
            None => match store.pending_key().map_err(storage)? {
                Some(k) => k,
                None => {
                    let key = generate_key(opts.key_type)?;
                    let pem = Zeroizing::new(key.serialize_pem());
                    store.save_pending_key(&pem).map_err(storage)?;
                    tracing::info!(device_id = %opts.device_id, key_type = ?opts.key_type, "generated the device key");
                    pem
                }
            },
        };
        let key =
            rcgen::KeyPair::from_pem(&key_pem).map_err(|e| DeviceError::Key(e.to_string()))?;
        let time = TimeKeeper::new(opts.clock.clone(), opts.build_time);
        Ok(Device {
            opts,
            store,
            key,
            time,
            ca_replaced: false,
        })
    }

    /// The options.
    pub fn options(&self) -> &DeviceOptions {
        &self.opts
    }

    /// The device's view of time.
    pub fn time(&self) -> &TimeKeeper {
        &self.time
    }

    /// The installed certificate, if any.
    pub fn current(&self) -> Result<Option<(CredentialSet, LeafFacts)>, DeviceError> {
        match self.store.current().map_err(storage)? {
            None => Ok(None),
            Some(set) => {
                let facts = leaf_of_pem(&set.cert_pem)?;
                Ok(Some((set, facts)))
            }
        }
    }

    async fn target(&self) -> Result<Target, DeviceError> {
        match &self.opts.server {
            ServerTarget::Address(a) if a.starts_with("https://") => Ok(Target {
                base: a.trim_end_matches('/').to_owned(),
                host: None,
            }),
            ServerTarget::Address(a) if a.is_empty() => Err(DeviceError::NoServerFound),
            ServerTarget::Address(a) => Ok(Target {
                base: format!("https://{a}"),
                host: None,
            }),
            #[cfg(feature = "discovery")]
            ServerTarget::Discover(timeout) => {
                let found = discover(*timeout, true)
                    .await
                    .map_err(|e| DeviceError::Discovery(e.to_string()))?;
                let d: &Discovered = found.first().ok_or(DeviceError::NoServerFound)?;
                tracing::info!(instance = %d.instance, host = %d.host, port = d.port, addresses = ?d.addresses, "discovered an idprov server");
                Ok(Target {
                    base: d.base_url(),
                    host: Some((d.host.clone(), d.addresses.clone())),
                })
            }
        }
    }

    fn http(
        &self,
        target: &Target,
        tls: rustls::ClientConfig,
    ) -> Result<reqwest::Client, DeviceError> {
        let mut b = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(0);
        if let Some((host, addrs)) = &target.host {
            b = b.resolve_to_addrs(host, addrs);
        }
        b.build()
            .map_err(|e| DeviceError::Protocol(format!("HTTP client: {e}")))
    }

    fn transport_error(&self, target: &Target, e: &reqwest::Error, with_cert: bool) -> DeviceError {
        let text = chain_text(e);
        if text.contains("invalid peer certificate") {
            return DeviceError::ServerUntrusted {
                server: target.base.clone(),
                detail: text,
            };
        }
        if with_cert && text.contains("received fatal alert") {
            return DeviceError::CertificateRefused(text);
        }
        DeviceError::Unreachable {
            server: target.base.clone(),
            detail: text,
        }
    }

    /// Reads the directory; returns it with the `Date` the server sent.
    async fn directory(
        &self,
        client: &reqwest::Client,
        target: &Target,
    ) -> Result<(Directory, Option<SystemTime>), DeviceError> {
        let url = format!("{}{}", target.base, idprov_proto::messages::DIRECTORY_PATH);
        let resp = client
            .get(&url)
            .send()
            .await
            .map_err(|e| self.transport_error(target, &e, false))?;
        let date = server_date(resp.headers());
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(target, &e, false))?;
        if !status.is_success() {
            return Err(DeviceError::Refused {
                status: status.as_u16(),
                message: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        let dir = Directory::from_json(&body)
            .map_err(|e| DeviceError::Protocol(format!("directory: {e}")))?;
        Ok((dir, date))
    }

    /// The CA to trust and whether it was pinned out of band (or confirmed
    /// by an earlier verified provisioning), first contacting the server
    /// unverified when no CA is known yet.
    async fn trust(&self, target: &Target) -> Result<(String, bool), DeviceError> {
        let matches = |pem: &str, fp: &Fingerprint| pem_fingerprints(pem).any(|c| c.ct_eq(fp));
        if let Some(ca) = &self.opts.ca_pem {
            return Ok((ca.clone(), true));
        }
        if let Some((set, _)) = self.current()?.filter(|_| !self.ca_replaced) {
            match &self.opts.ca_fingerprint {
                Some(fp) if !matches(&set.ca_pem, fp) => {}
                _ => return Ok((set.ca_pem, true)),
            }
        }
        if self.opts.ca_fingerprint.is_none()
            && let Some(ca) = self.store.pending_ca().map_err(storage)?
        {
            return Ok((ca, false));
        }
        // First contact: read the directory without verifying the server.
        let tls =
            trust::first_contact_config(&self.time).map_err(|e| DeviceError::Protocol(e.0))?;
        let (dir, _) = self.directory(&self.http(target, tls)?, target).await?;
        let ca = dir
            .ca_pem()
            .map_err(|e| DeviceError::Protocol(e.to_string()))?
            .ok_or(DeviceError::NoCa)?;
        match &self.opts.ca_fingerprint {
            Some(fp) => {
                if !matches(&ca, fp) {
                    let offered = pem_fingerprints(&ca)
                        .next()
                        .map(|fp| fp.to_string())
                        .unwrap_or_default();
                    return Err(DeviceError::FingerprintMismatch {
                        expected: fp.to_string(),
                        offered,
                    });
                }
                tracing::info!(fingerprint = %fp, "the server's CA matches the expected fingerprint");
                Ok((ca, true))
            }
            None => {
                tracing::warn!(
                    "trusting the server's CA on first use (no CA fingerprint configured)"
                );
                self.store.save_pending_ca(&ca).map_err(storage)?;
                Ok((ca, false))
            }
        }
    }

    /// One provisioning attempt. With `use_certificate`, the installed
    /// certificate is presented (renewal over mutual TLS).
    pub async fn provision(&mut self, use_certificate: bool) -> Result<Outcome, DeviceError> {
        if self.opts.v2 && !use_certificate {
            // First contact of a v2 device: v2 or nothing (no downgrade).
            return self.provision_v2().await;
        }
        let target = self.target().await?;
        let from_set = self.opts.ca_pem.is_none()
            && !self.ca_replaced
            && self.current()?.is_some_and(|(set, _)| {
                self.opts
                    .ca_fingerprint
                    .as_ref()
                    .is_none_or(|fp| pem_fingerprints(&set.ca_pem).any(|c| c.ct_eq(fp)))
            });
        let (ca_pem, pinned) = self.trust(&target).await?;
        let current = if use_certificate {
            self.current()?
        } else {
            None
        };
        let client_cert = current
            .as_ref()
            .map(|(set, _)| (set.cert_pem.as_str(), set.key_pem.as_str()));
        let tls = trust::pinned_config(&ca_pem, client_cert, &self.time)
            .map_err(|e| DeviceError::Protocol(e.0))?;
        let client = self.http(&target, tls)?;
        let presented = client_cert.is_some();

        // The directory over verified TLS: where to post, and the server's time.
        let (dir, date) = self
            .directory(&client, &target)
            .await
            .map_err(|e| match e {
                DeviceError::Unreachable { detail, .. }
                    if presented && detail.contains("alert") =>
                {
                    DeviceError::CertificateRefused(detail)
                }
                other => other,
            })
            .map_err(|e| match e {
                // The CA of the installed set no longer verifies the server: a
                // CA rollover ended while this device was away. Not trusted
                // again; the next attempt makes a new first contact.
                DeviceError::ServerUntrusted { server, detail } if from_set => {
                    self.ca_replaced = true;
                    DeviceError::CaReplaced { server, detail }
                }
                other => other,
            })?;
        if let Some(d) = date {
            self.time.learn_server_date(d);
        }
        let url = endpoint(&target.base, &dir.endpoints.post_provision_request);

        let mut request = ProvisionRequest {
            device_id: self.opts.device_id.to_string(),
            ip: self.opts.claimed_ip.clone(),
            mac: self.opts.claimed_mac.clone(),
            public_key_pem: self.key.public_key_pem(),
            signature: String::new(),
        };
        if let Some(secret) = &self.opts.secret {
            request.sign(secret.expose().as_bytes());
        }
        let resp = client
            .post(&url)
            .header("content-type", "application/json")
            .body(request.to_json())
            .send()
            .await
            .map_err(|e| self.transport_error(&target, &e, presented))?;
        if let Some(d) = server_date(resp.headers()) {
            self.time.learn_server_date(d);
        }
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(&target, &e, presented))?;
        if status.as_u16() == 429 {
            return Ok(Outcome::RateLimited(Duration::from_secs(
                retry_after.unwrap_or(60),
            )));
        }
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(DeviceError::Refused {
                status: status.as_u16(),
                message,
            });
        }
        let answer = ProvisionResponse::from_json(&body)
            .map_err(|e| DeviceError::Protocol(e.to_string()))?;
        match not_approved(&answer) {
            Some(outcome) => Ok(outcome),
            None => {
                let installed = self.accept(&answer, &ca_pem, pinned, presented)?;
                Ok(Outcome::Approved(installed))
            }
        }
    }

    /// Verifies an Approved answer (PROTOCOL.md §5, §10) and installs it.
    fn accept(
        &self,
        answer: &ProvisionResponse,
        pinned_ca: &str,
        pinned: bool,
        presented: bool,
    ) -> Result<Installed, DeviceError> {
        let empty_key_ok = pinned || presented;
        let by_secret = self
            .opts
            .secret
            .as_ref()
            .is_some_and(|s| answer.verify(s.expose().as_bytes()).is_some());
        let verified_with = if by_secret {
            "secret"
        } else if answer.verify(b"").is_some() {
            if !(empty_key_ok || self.opts.danger_accept_empty_key_after_first_contact) {
                return Err(DeviceError::EmptyKeyUntrusted);
            }
            "empty key"
        } else {
            return Err(DeviceError::BadSignature);
        };
        tracing::info!(verified_with, "the Approved answer's signature verified");
        self.install(answer, pinned_ca, pinned, by_secret, verified_with)
    }

    /// Checks the certificate of an Approved answer whose signature
    /// verified (`by_secret`: under a key only the device and the server
    /// share) and installs it with its CA. An answer without a CA (the Go
    /// server never fills `caCert`) is checked against the CA pinned out of
    /// band, and installed with it; without a pinned CA it is refused.
    fn install(
        &self,
        answer: &ProvisionResponse,
        pinned_ca: &str,
        pinned: bool,
        by_secret: bool,
        verified_with: &'static str,
    ) -> Result<Installed, DeviceError> {
        let ca_pem = if answer.ca_cert.trim().is_empty() {
            if !pinned {
                return Err(DeviceError::BadCertificate(
                    "the answer carries no CA, and no CA is pinned to check it against".into(),
                ));
            }
            tracing::info!(
                "the answer carries no CA; checking the certificate against the pinned CA"
            );
            pinned_ca
        } else {
            answer.ca_cert.as_str()
        };
        let answer_ca: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(ca_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| DeviceError::BadCertificate(format!("caCert: {e:?}")))?;
        if !by_secret {
            // Only an answer signed with the device's own secret may bring a
            // CA other than the one already pinned.
            let pinned: Vec<Fingerprint> = pem_fingerprints(pinned_ca).collect();
            if !answer_ca
                .iter()
                .any(|c| pinned.iter().any(|p| p.ct_eq(&Fingerprint::of_der(c))))
            {
                return Err(DeviceError::BadCertificate(
                    "the answer names a CA other than the pinned one, without the device's secret"
                        .into(),
                ));
            }
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(answer.client_cert.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| DeviceError::BadCertificate(format!("clientCert: {e:?}")))?;
        let leaf_der = chain
            .first()
            .ok_or_else(|| DeviceError::BadCertificate("no certificate in clientCert".into()))?;
        let leaf = leaf_of_pem(&answer.client_cert)?;
        if leaf.spki_der != spki_of(&self.key) {
            return Err(DeviceError::BadCertificate(
                "the certificate is not for this device's key".into(),
            ));
        }
        if leaf.common_names != [self.opts.device_id.to_string()] {
            return Err(DeviceError::BadCertificate(format!(
                "the certificate's CN is {:?}, not the device ID",
                leaf.common_names
            )));
        }
        let now = self.time.now();
        let anchors: Vec<_> = answer_ca
            .iter()
            .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
            .map(|a| a.to_owned())
            .collect();
        let cert = webpki::EndEntityCert::try_from(leaf_der)
            .map_err(|e| DeviceError::BadCertificate(e.to_string()))?;
        cert.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &chain[1..],
            rustls_pki_types::UnixTime::since_unix_epoch(
                now.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default(),
            ),
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map_err(|e| {
            DeviceError::BadCertificate(format!(
                "it does not chain to the CA or is not valid now: {e}"
            ))
        })?;
        let stamp = time_stamp(now);
        let serial = leaf.serial.as_str();
        let name = format!("{stamp}-{}", &serial[..serial.len().min(16)]);
        let key_pem = Zeroizing::new(self.key.serialize_pem());
        self.store
            .install(&name, &key_pem, &answer.client_cert, ca_pem)
            .map_err(storage)?;
        tracing::info!(device_id = %self.opts.device_id, serial = %leaf.serial, not_after = %unix_rfc3339(leaf.not_after), "installed a new certificate");
        Ok(Installed {
            serial: leaf.serial,
            not_before: leaf.not_before,
            not_after: leaf.not_after,
            verified_with,
        })
    }
}

/// An endpoint from the directory: relative paths are appended to the base
/// URL (the Go reference's convention); absolute URLs are used as they are.
fn endpoint(base: &str, value: &str) -> String {
    if value.starts_with("https://") || value.starts_with("http://") {
        value.to_owned()
    } else if value.starts_with('/') {
        format!("{base}{value}")
    } else if value.is_empty() {
        format!("{base}{}", idprov_proto::messages::PROVISION_REQUEST_PATH)
    } else {
        format!("{base}/{value}")
    }
}

/// A Waiting or Rejected answer as the outcome it is; `None` for Approved.
fn not_approved(answer: &ProvisionResponse) -> Option<Outcome> {
    let secs = Duration::from_secs(u64::try_from(answer.retry_sec).unwrap_or(0));
    match answer.status {
        ProvisionStatus::Waiting => Some(Outcome::Waiting(secs)),
        ProvisionStatus::Rejected => Some(Outcome::Rejected(secs)),
        ProvisionStatus::Approved => None,
    }
}

/// The server's `Date`, if it sent a valid one.
fn server_date(headers: &reqwest::header::HeaderMap) -> Option<SystemTime> {
    headers
        .get("date")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
}

/// A `Retry-After` in seconds, if the server sent one.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn time_stamp(t: SystemTime) -> String {
    format!("{:012}", UnixTime::from(t).secs().max(0))
}

fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(err) = source {
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i.to_string());
        parts.push(inner.unwrap_or_else(|| err.to_string()));
        source = err.source();
    }
    parts.dedup();
    parts.join(": ")
}

/// The fingerprints of the certificates of a PEM text, skipping blocks that
/// do not parse (a CA offered by a server is only compared, never trusted
/// for its form).
fn pem_fingerprints(pem: &str) -> impl Iterator<Item = Fingerprint> + '_ {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .map(|c| Fingerprint::of_der(&c))
}

/// A certificate time for the device's log: RFC 3339, or the raw number
/// when it is outside what `SystemTime` holds.
fn unix_rfc3339(unix: UnixTime) -> String {
    u64::try_from(unix.secs())
        .ok()
        .and_then(|secs| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_relative_or_absolute() {
        assert_eq!(
            endpoint("https://h:1", "/idprov/provreq"),
            "https://h:1/idprov/provreq"
        );
        assert_eq!(endpoint("https://h:1", "https://o:2/p"), "https://o:2/p");
        assert_eq!(
            endpoint("https://h:1", "idprov/provreq"),
            "https://h:1/idprov/provreq"
        );
        assert_eq!(endpoint("https://h:1", ""), "https://h:1/idprov/provreq");
    }

    /// The original Go server never fills `caCert`: with a CA pinned out of
    /// band (a label's fingerprint, `--ca`) the certificate is checked
    /// against that CA and installed with it; without one it is refused.
    #[test]
    fn an_answer_without_a_ca_is_checked_against_the_pinned_ca() {
        let now = SystemTime::now();
        let generated = idprov_ca::Ca::generate(
            "test",
            KeyAlgorithm::EcdsaP256,
            now,
            Duration::from_secs(86_400),
        )
        .expect("CA");
        let dir = tempfile::tempdir().expect("dir");
        let mut opts = DeviceOptions::new(
            DeviceId::parse("go-served").expect("id"),
            dir.path().join("device"),
        );
        opts.secret = Some(OobSecret::parse("the-device-secret").expect("secret"));
        let device = Device::open(opts).expect("open");
        let key = idprov_ca::PublicKey::from_pem(&device.key.public_key_pem()).expect("key");
        let issued = generated
            .ca
            .issue(
                &key,
                &idprov_ca::IssueParams {
                    common_name: "go-served",
                    organizational_unit: "iotdevice",
                    organization: "test",
                    usage: idprov_ca::Usage::Client,
                    now,
                    validity: Duration::from_secs(3600),
                    crl_url: None,
                    ocsp_url: None,
                },
            )
            .expect("issue");
        let mut answer = ProvisionResponse {
            retry_sec: 1800,
            status: ProvisionStatus::Approved,
            ca_cert: String::new(),
            client_cert: issued.pem,
            signature: String::new(),
        };
        answer.sign(b"the-device-secret", idprov_proto::KeyVariant::RawSecret);
        let ca_pem = generated.cert_pem.clone();
        let err = device
            .accept(&answer, &ca_pem, false, false)
            .expect_err("no CA to check against");
        assert!(err.to_string().contains("no CA is pinned"), "{err}");
        let installed = device
            .accept(&answer, &ca_pem, true, false)
            .expect("checked against the pinned CA");
        assert_eq!(installed.verified_with, "secret");
        let (set, _) = device.current().expect("read").expect("installed");
        assert_eq!(set.ca_pem, ca_pem);
        // A certificate of another CA is still refused.
        let other = idprov_ca::Ca::generate(
            "other",
            KeyAlgorithm::EcdsaP256,
            now,
            Duration::from_secs(86_400),
        )
        .expect("CA");
        assert!(matches!(
            device.accept(&answer, &other.cert_pem, true, false),
            Err(DeviceError::BadCertificate(_))
        ));
    }

    #[test]
    fn key_types_parse() {
        assert_eq!(KeyAlgorithm::parse("P-384"), Some(KeyAlgorithm::EcdsaP384));
        assert_eq!(KeyAlgorithm::parse("rsa-2048"), Some(KeyAlgorithm::Rsa2048));
        assert_eq!(KeyAlgorithm::parse("dsa"), None);
    }
}
