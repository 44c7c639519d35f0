//! Certificate revocation lists, and signatures by the CA key (audit
//! checkpoints).

use std::time::SystemTime;

use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;

use crate::authority::Ca;
use crate::error::CaError;

/// A revoked certificate to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlEntry {
    /// Serial, hex.
    pub serial: idprov_proto::SerialNumber,
    /// Revocation time.
    pub revoked_at: SystemTime,
    /// RFC 5280 reason code (0 = unspecified).
    pub reason: i64,
}

/// RFC 5280 reason codes by name, as the CLI accepts them.
pub const REASONS: &[(&str, i64)] = &[
    ("unspecified", 0),
    ("keyCompromise", 1),
    ("cACompromise", 2),
    ("affiliationChanged", 3),
    ("superseded", 4),
    ("cessationOfOperation", 5),
    ("certificateHold", 6),
    ("privilegeWithdrawn", 9),
    ("aACompromise", 10),
];

/// A reason code by name (case-insensitive) or number.
pub fn reason_code(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return REASONS.iter().any(|(_, c)| *c == n).then_some(n);
    }
    REASONS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, c)| *c)
}

fn reason(code: i64) -> RevocationReason {
    match code {
        1 => RevocationReason::KeyCompromise,
        2 => RevocationReason::CaCompromise,
        3 => RevocationReason::AffiliationChanged,
        4 => RevocationReason::Superseded,
        5 => RevocationReason::CessationOfOperation,
        6 => RevocationReason::CertificateHold,
        9 => RevocationReason::PrivilegeWithdrawn,
        10 => RevocationReason::AaCompromise,
        _ => RevocationReason::Unspecified,
    }
}

impl Ca {
    /// Signs a CRL listing `entries`, DER.
    pub fn sign_crl(
        &self,
        entries: &[CrlEntry],
        number: i64,
        this_update: SystemTime,
        next_update: SystemTime,
    ) -> Result<Vec<u8>, CaError> {
        let revoked_certs = entries
            .iter()
            .map(|e| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&e.serial.octets()),
                    revocation_time: OffsetDateTime::from(e.revoked_at),
                    reason_code: Some(reason(e.reason)),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, CaError>>()?;
        let number = u64::try_from(number)
            .map_err(|_| CaError::BadCertificate("negative CRL number".into()))?;
        let mut number_bytes = number.to_be_bytes().to_vec();
        while number_bytes.len() > 1 && number_bytes[0] == 0 {
            number_bytes.remove(0);
        }
        let params = CertificateRevocationListParams {
            this_update: OffsetDateTime::from(this_update),
            next_update: OffsetDateTime::from(next_update),
            crl_number: SerialNumber::from_slice(&number_bytes),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(self.issuer())
            .map_err(crate::error::signing)?;
        Ok(crl.der().to_vec())
    }

    /// Signs `message` with the CA key (DER ECDSA for ECDSA keys).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        self.key().sign_message(message)
    }
}

/// Verifies a signature made by the key of the certificate `cert_der`.
pub fn verify_signed_by(cert_der: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use aws_lc_rs::signature as sig;
    let Ok((_, cert)) =
        <x509_parser::certificate::X509Certificate as x509_parser::prelude::FromDer<
            x509_parser::error::X509Error,
        >>::from_der(cert_der)
    else {
        return false;
    };
    let spki = cert.public_key();
    let Ok(key) = crate::key::PublicKey::from_spki_der(spki.raw) else {
        return false;
    };
    let alg: &'static dyn sig::VerificationAlgorithm = match key.key_type() {
        crate::KeyType::EcdsaP256 => &sig::ECDSA_P256_SHA256_ASN1,
        crate::KeyType::EcdsaP384 => &sig::ECDSA_P384_SHA384_ASN1,
        crate::KeyType::Ed25519 => &sig::ED25519,
        crate::KeyType::Rsa(_) => &sig::RSA_PKCS1_2048_8192_SHA256,
    };
    sig::UnparsedPublicKey::new(alg, &spki.subject_public_key.data)
        .verify(message, signature)
        .is_ok()
}
