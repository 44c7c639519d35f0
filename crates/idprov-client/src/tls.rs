//! rustls client configurations.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use crate::error::ClientError;

/// A client certificate with its key, and the CA to trust.
#[derive(Clone)]
pub struct Credentials {
    /// The CA chain (PEM) the server's certificate must chain to.
    pub ca_pem: String,
    /// The client certificate followed by intermediates (PEM), if any.
    pub cert_pem: Option<String>,
    /// Its private key (PEM), if any.
    pub key_pem: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("has_cert", &self.cert_pem.is_some())
            .finish_non_exhaustive()
    }
}

fn read(path: &std::path::Path, what: &str) -> Result<String, ClientError> {
    std::fs::read_to_string(path)
        .map_err(|e| ClientError::Credentials(format!("{what} {}: {e}", path.display())))
}

impl Credentials {
    /// Reads a certificate, its key and the CA from files.
    pub fn from_files(
        cert: &std::path::Path,
        key: &std::path::Path,
        ca: &std::path::Path,
    ) -> Result<Credentials, ClientError> {
        Ok(Credentials {
            ca_pem: read(ca, "CA file")?,
            cert_pem: Some(read(cert, "certificate file")?),
            key_pem: Some(Zeroizing::new(read(key, "key file")?)),
        })
    }

    /// Builds the rustls configuration: the CA as the only trust anchor and
    /// the client certificate, HTTP/2 and HTTP/1.1 by ALPN.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, ClientError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        let mut any = false;
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| ClientError::Credentials(format!("CA PEM: {e:?}")))?;
            roots
                .add(cert)
                .map_err(|e| ClientError::Credentials(format!("CA certificate: {e}")))?;
            any = true;
        }
        if !any {
            return Err(ClientError::Credentials(
                "the CA file holds no certificate".into(),
            ));
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Credentials(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match (&self.cert_pem, &self.key_pem) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ClientError::Credentials(format!("certificate PEM: {e:?}")))?;
                if chain.is_empty() {
                    return Err(ClientError::Credentials(
                        "the certificate file holds no certificate".into(),
                    ));
                }
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .map_err(|e| ClientError::Credentials(format!("key PEM: {e:?}")))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| ClientError::Credentials(format!("certificate and key: {e}")))?
            }
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}
