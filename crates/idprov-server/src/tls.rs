//! The rustls server configuration: TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by
//! ALPN, client certificates requested but optional, and verified against
//! the issuing CA when presented.

use std::sync::Arc;
use std::time::SystemTime;

use idprov_ca::Ca;
use idprov_proto::clock::Clock;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, UnixTime};

use crate::bootstrap::ServerCredential;
use crate::error::StartError;

/// rustls reads time through this, so the injected clock also governs the
/// validity checks of full handshakes.
#[derive(Debug)]
struct ClockTime(Arc<dyn Clock>);

impl rustls::time_provider::TimeProvider for ClockTime {
    fn current_time(&self) -> Option<UnixTime> {
        let since = self.0.now().duration_since(SystemTime::UNIX_EPOCH).ok()?;
        Some(UnixTime::since_unix_epoch(since))
    }
}

/// The server's certificate, swapped in place when it is re-issued, so a
/// new certificate needs no restart.
#[derive(Debug)]
pub struct CertSwap(arc_swap::ArcSwap<rustls::sign::CertifiedKey>);

impl CertSwap {
    /// The resolver for `credential`.
    pub fn new(credential: &ServerCredential) -> Result<Arc<CertSwap>, StartError> {
        Ok(Arc::new(CertSwap(arc_swap::ArcSwap::from_pointee(
            certified_key(credential)?,
        ))))
    }

    /// Serves `credential` from the next handshake on.
    pub fn swap(&self, credential: &ServerCredential) -> Result<(), StartError> {
        self.0.store(Arc::new(certified_key(credential)?));
        Ok(())
    }

    /// The certificate being served (leaf first).
    pub fn current_leaf(&self) -> rustls_pki_types::CertificateDer<'static> {
        self.0.load().cert[0].clone()
    }
}

impl rustls::server::ResolvesServerCert for CertSwap {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.load_full())
    }
}

fn certified_key(credential: &ServerCredential) -> Result<rustls::sign::CertifiedKey, StartError> {
    let key = PrivateKeyDer::from_pem_slice(credential.key_pem.as_bytes())
        .map_err(|e| StartError::Tls(format!("server key: {e}")))?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|e| StartError::Tls(format!("server key: {e}")))?;
    Ok(rustls::sign::CertifiedKey::new(
        credential.chain.clone(),
        signing,
    ))
}

/// The crypto provider the server's TLS uses: aws-lc-rs, with the suites
/// whose hash is SHA-256 preferred. SHA-256 runs on the CPU's SHA
/// extensions where SHA-384 cannot, and a full handshake hashes its
/// transcript many times: preferring AES-128-GCM-SHA256 (as strong as a
/// device needs) measurably raises handshakes per second. The server's order
/// decides (`ignore_client_order`).
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    // Stable: keeps each group's relative order, SHA-256 suites first.
    provider.cipher_suites.sort_by_key(|s| {
        let hash = match s {
            rustls::SupportedCipherSuite::Tls13(t) => t.common.hash_provider.algorithm(),
            rustls::SupportedCipherSuite::Tls12(t) => t.common.hash_provider.algorithm(),
        };
        hash != rustls::crypto::hash::HashAlgorithm::SHA256
    });
    provider
}

/// Builds the server's TLS configuration.
pub fn server_config(
    ca: &Ca,
    certs: Arc<CertSwap>,
    clock: Arc<dyn Clock>,
    resumption: bool,
) -> Result<Arc<rustls::ServerConfig>, StartError> {
    let provider = Arc::new(crypto_provider());
    let mut roots = RootCertStore::empty();
    // The issuing CA is the trust anchor, so the acceptable-CA hint names the
    // issuer of device certificates (PROTOCOL.md §7); during a rollover's
    // transition the previous CA is one too, so devices, administrators and
    // services holding its certificates still connect.
    for anchor in ca.trust_anchors() {
        roots
            .add(anchor)
            .map_err(|e| StartError::Tls(format!("CA certificate: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| StartError::Tls(format!("client verifier: {e}")))?;
    let mut config =
        rustls::ServerConfig::builder_with_details(provider, Arc::new(ClockTime(clock)))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| StartError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    if !resumption {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(Arc::new(config))
}
