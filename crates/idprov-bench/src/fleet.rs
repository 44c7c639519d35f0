//! Simulated devices, each with its own key, and the bodies they send,
//! prepared before a phase so the generator spends its time on connections.

use std::sync::Arc;

use bytes::Bytes;
use idprov_proto::ProvisionRequest;
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// One simulated device.
#[derive(Debug)]
pub struct Device {
    /// Its ID.
    pub id: String,
    /// Its secret (registered for the OOB phase).
    pub secret: String,
    /// Its key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// The signed OOB request.
    pub oob_body: Bytes,
    /// The unsigned request (renewal over mutual TLS, or a waiting poll).
    pub plain_body: Bytes,
}

/// Generates `n` devices named `prefix-N`, on every core.
pub async fn generate(prefix: &str, n: usize) -> anyhow::Result<Vec<Device>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = n.div_ceil(threads.max(1));
    let mut tasks = Vec::new();
    for t in 0..threads {
        let prefix = prefix.to_owned();
        let range = (t * per)..((t + 1) * per).min(n);
        tasks.push(tokio::task::spawn_blocking(move || {
            range
                .map(|i| device(&format!("{prefix}-{i}")))
                .collect::<anyhow::Result<Vec<_>>>()
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

fn device(id: &str) -> anyhow::Result<Device> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let public_key_pem = key.public_key_pem();
    let secret = format!("{id}-bench-secret-4f9a2c");
    let mut req = ProvisionRequest {
        device_id: id.to_owned(),
        ip: String::new(),
        mac: String::new(),
        public_key_pem,
        signature: String::new(),
    };
    let plain_body = Bytes::from(req.to_json());
    req.sign(secret.as_bytes());
    Ok(Device {
        id: id.to_owned(),
        secret,
        key_der: key.serialize_der(),
        oob_body: Bytes::from(req.to_json()),
        plain_body,
    })
}

impl Device {
    /// A CSR for this device's key (for the cfssl reference).
    pub fn csr_body(&self) -> anyhow::Result<Bytes> {
        let key = rcgen::KeyPair::try_from(self.key_der.as_slice())?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, self.id.clone());
        let csr = params.serialize_request(&key)?.pem()?;
        Ok(Bytes::from(serde_json::to_vec(
            &serde_json::json!({ "certificate_request": csr }),
        )?))
    }

    /// A non-resuming TLS client configuration presenting `chain` with this
    /// device's key.
    pub fn mtls_config(
        &self,
        roots: &[CertificateDer<'static>],
        chain: Vec<CertificateDer<'static>>,
    ) -> anyhow::Result<Arc<ClientConfig>> {
        crate::load::client_config(
            roots,
            Some((
                chain,
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )),
        )
    }
}
