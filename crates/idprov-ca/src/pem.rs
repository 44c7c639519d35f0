//! PEM encoding and decoding of certificates and keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::{PemObject, SectionKind};

use crate::error::CaError;
use crate::key::{pem_error_text, section_name};

/// Encodes DER as a PEM block with 64-character lines and a final newline.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// PEM of one certificate.
pub fn certificate_pem(der: &[u8]) -> String {
    encode("CERTIFICATE", der)
}

/// Reads every CERTIFICATE block of `pem`, refusing other block kinds and
/// malformed blocks; at least one certificate is required.
pub fn parse_certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let mut certs = Vec::new();
    for block in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem.as_bytes()) {
        match block {
            Ok((SectionKind::Certificate, der)) => certs.push(CertificateDer::from(der)),
            Ok((kind, _)) => {
                return Err(CaError::BadPem(format!(
                    "expected CERTIFICATE blocks, found {}",
                    section_name(kind)
                )));
            }
            Err(e) => return Err(CaError::BadPem(pem_error_text(&e))),
        }
    }
    if certs.is_empty() {
        return Err(CaError::BadPem("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}
