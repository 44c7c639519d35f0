//! Certs-only PKCS#7: the "degenerate" CMS `SignedData` (RFC 5652) that
//! carries certificates and nothing else — no signers, no content — as EST
//! answers `cacerts` and an enrollment (RFC 7030 §4.1.3, §4.2.3). Built with
//! RustCrypto's `cms` types, never by hand.

use der::{Decode, Encode};

use crate::error::CaError;

/// The certs-only `ContentInfo` holding `certs` (DER), DER-encoded.
pub fn certs_only(certs: &[&[u8]]) -> Result<Vec<u8>, CaError> {
    let certs = certs
        .iter()
        .map(|der| x509_cert::Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CaError::BadCertificate(e.to_string()))?;
    cms::content_info::ContentInfo::try_from(certs)
        .and_then(|content| content.to_der())
        .map_err(|e| CaError::Encode {
            what: "a certs-only PKCS#7",
            detail: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cms::cert::CertificateChoices;
    use cms::content_info::ContentInfo;
    use cms::signed_data::SignedData;

    #[test]
    fn certs_only_holds_the_certificates_and_nothing_else() {
        let now = std::time::SystemTime::now();
        let year = std::time::Duration::from_secs(365 * 86_400);
        let ca = crate::Ca::generate("test", crate::KeyAlgorithm::EcdsaP256, now, year)
            .expect("CA")
            .ca;
        let ca_der = ca.cert_der().as_ref().to_vec();
        let der = certs_only(&[&ca_der]).expect("encodes");
        let info = ContentInfo::from_der(&der).expect("a ContentInfo");
        assert_eq!(info.content_type, const_oid::db::rfc5911::ID_SIGNED_DATA);
        let signed: SignedData = info.content.decode_as().expect("SignedData");
        assert!(signed.signer_infos.0.is_empty());
        assert!(signed.encap_content_info.econtent.is_none());
        let certs = signed.certificates.expect("certificates");
        assert_eq!(certs.0.len(), 1);
        let Some(CertificateChoices::Certificate(cert)) = certs.0.iter().next() else {
            panic!("a certificate");
        };
        assert_eq!(cert.to_der().expect("DER"), ca_der);
        assert!(matches!(
            certs_only(&[b"not a certificate"]),
            Err(CaError::BadCertificate(_))
        ));
    }
}
