//! PEM encoding and decoding of certificates and keys.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::{PemObject, SectionKind};

use crate::error::CaError;
use crate::key::{pem_error_text, section_name};

/// Encodes DER as a PEM block (the `pem` crate: 64-character lines, LF line
/// endings, a final newline).
pub fn encode(label: &str, der: &[u8]) -> String {
    ::pem::encode_config(
        &::pem::Pem::new(label, der),
        ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF),
    )
}

/// PEM of one certificate.
pub fn certificate_pem(der: &[u8]) -> String {
    encode("CERTIFICATE", der)
}

/// Why a text is not exactly one PEM block of the kind expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OneBlockError {
    /// No block, or a malformed one (what is wrong).
    NotPem(String),
    /// More than one block.
    Several,
    /// A block of another kind (its label).
    OtherKind(&'static str),
}

/// The DER of the one PEM block of `text`, which must be of kind `want`.
pub(crate) fn one_block(text: &str, want: SectionKind) -> Result<Vec<u8>, OneBlockError> {
    let mut blocks = <(SectionKind, Vec<u8>)>::pem_slice_iter(text.as_bytes());
    let (kind, der) = match blocks.next() {
        None => return Err(OneBlockError::NotPem("no PEM block found".into())),
        Some(Err(e)) => return Err(OneBlockError::NotPem(pem_error_text(&e))),
        Some(Ok(block)) => block,
    };
    if blocks.next().is_some() {
        return Err(OneBlockError::Several);
    }
    if kind != want {
        return Err(OneBlockError::OtherKind(section_name(kind)));
    }
    Ok(der)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_have_64_character_lines_and_read_back() {
        let der: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        let text = encode("CERTIFICATE", &der);
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(text.ends_with("-----END CERTIFICATE-----\n"));
        assert!(
            text.lines()
                .all(|l| l.len() <= 64 || l.starts_with("-----"))
        );
        assert!(!text.contains('\r'));
        let back = parse_certificates(&text).expect("parses");
        assert_eq!(back[0].as_ref(), der.as_slice());
    }
}
