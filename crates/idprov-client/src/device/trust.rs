//! The device's TLS trust: an unverified first contact (directory only),
//! then the pinned CA for everything else.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{
    CertificateError, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::time::TimeKeeper;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// rustls reads the device's best estimate of time through this.
#[derive(Debug)]
struct DeviceTime(TimeKeeper);

impl rustls::time_provider::TimeProvider for DeviceTime {
    fn current_time(&self) -> Option<UnixTime> {
        let secs = self
            .0
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        Some(UnixTime::since_unix_epoch(Duration::from_secs(secs)))
    }
}

/// Accepts any server certificate (but still checks handshake signatures).
/// Used only to read the directory on first contact, before a CA is known;
/// nothing signed is ever sent over it.
#[derive(Debug)]
struct FirstContact(Arc<CryptoProvider>);

impl ServerCertVerifier for FirstContact {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Verifies the server against the pinned CA. When the device's clock is
/// known to be wrong (before the build date), a server certificate that is
/// "not yet valid" only by that wrong clock is accepted: everything else —
/// chain, name, signature, expiry relative to its own start — still holds.
#[derive(Debug)]
struct Pinned {
    inner: Arc<WebPkiServerVerifier>,
    time: TimeKeeper,
}

fn not_before(cert: &CertificateDer<'_>) -> Option<UnixTime> {
    let (_, c) = X509Certificate::from_der(cert).ok()?;
    let secs = u64::try_from(c.validity().not_before.timestamp()).ok()?;
    Some(UnixTime::since_unix_epoch(Duration::from_secs(secs)))
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
            )) if self.time.clock_is_wrong() => {
                let start = not_before(end_entity)
                    .ok_or(TlsError::InvalidCertificate(CertificateError::BadEncoding))?;
                let at = UnixTime::since_unix_epoch(Duration::from_secs(start.as_secs() + 1));
                self.inner
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp, at)
            }
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TrustError(pub String);

/// The configuration for the unverified first contact.
pub fn first_contact_config(time: &TimeKeeper) -> Result<rustls::ClientConfig, TrustError> {
    let provider = provider();
    let mut config = rustls::ClientConfig::builder_with_details(
        provider.clone(),
        Arc::new(DeviceTime(time.clone())),
    )
    .with_safe_default_protocol_versions()
    .map_err(|e| TrustError(e.to_string()))?
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(FirstContact(provider)))
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The configuration that trusts only `ca_pem` (every certificate in it is an
/// anchor), optionally presenting a client certificate.
pub fn pinned_config(
    ca_pem: &str,
    client: Option<(&str, &str)>,
    time: &TimeKeeper,
) -> Result<rustls::ClientConfig, TrustError> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| TrustError(format!("CA PEM: {e:?}")))?;
        roots
            .add(cert)
            .map_err(|e| TrustError(format!("CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(TrustError("the pinned CA holds no certificate".into()));
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TrustError(e.to_string()))?;
    let builder =
        rustls::ClientConfig::builder_with_details(provider, Arc::new(DeviceTime(time.clone())))
            .with_safe_default_protocol_versions()
            .map_err(|e| TrustError(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                inner,
                time: time.clone(),
            }));
    let mut config = match client {
        Some((cert_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TrustError(format!("certificate PEM: {e:?}")))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|e| TrustError(format!("key PEM: {e:?}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TrustError(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // A device renews weeks apart: there is no session worth resuming, and a
    // full handshake lets the server check the certificate afresh.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}
