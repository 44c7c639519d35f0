//! PKCS#10 certification requests (RFC 2986), as EST devices send them:
//! parsed with x509-parser, their proof of possession (the signature over
//! the request with the key it carries) verified with aws-lc-rs, their key
//! held to the same rules as a v1 `publicKeyPEM` ([`PublicKey`]).
//!
//! What a request asks for beyond its CN and key — other subject
//! attributes, requested extensions, a challenge password — is read by
//! nobody: the certificate's profile is the CA's (PROTOCOL.md §7).

use aws_lc_rs::signature::{self as lc, UnparsedPublicKey, VerificationAlgorithm};
use der::asn1::SetOfVec;
use der::{Any, Encode};
use rustls_pki_types::pem::SectionKind;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_PKCS1_RSASSAPSS, OID_PKCS1_SHA1WITHRSA, OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA,
    OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384,
    OID_SIG_ECDSA_WITH_SHA512, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::AlgorithmIdentifier;

use crate::error::{CaError, CsrError};
use crate::key::{KeyType, PublicKey};

/// A certification request whose signature verified: the subject's CN and
/// the key it proved it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRequest {
    common_name: String,
    key: PublicKey,
}

impl CertRequest {
    /// Parses a DER `CertificationRequest` and verifies its signature;
    /// trailing bytes are an error.
    pub fn from_der(der: &[u8]) -> Result<Self, CsrError> {
        let (rest, csr) =
            X509CertificationRequest::from_der(der).map_err(|_| CsrError::NotPkcs10)?;
        if !rest.is_empty() {
            return Err(CsrError::NotPkcs10);
        }
        let info = &csr.certification_request_info;
        if info.version.0 != 0 {
            return Err(CsrError::Version(info.version.0));
        }
        let key = PublicKey::from_spki_der(info.subject_pki.raw)?;
        let algorithm = verification_algorithm(&csr.signature_algorithm, key.key_type())?;
        // The signature is a BIT STRING of whole bytes.
        if csr.signature_value.unused_bits != 0 {
            return Err(CsrError::BadSignature);
        }
        UnparsedPublicKey::new(algorithm, &info.subject_pki.subject_public_key.data)
            .verify(info.raw, &csr.signature_value.data)
            .map_err(|_| CsrError::BadSignature)?;
        let mut names = info.subject.iter_common_name();
        let common_name = match (names.next(), names.next()) {
            (None, _) => return Err(CsrError::CommonName("the subject has no CN")),
            (Some(_), Some(_)) => {
                return Err(CsrError::CommonName("the subject has more than one CN"));
            }
            (Some(cn), None) => cn
                .as_str()
                .map_err(|_| CsrError::CommonName("the subject's CN is not a text string"))?
                .to_owned(),
        };
        Ok(CertRequest { common_name, key })
    }

    /// Parses `-----BEGIN CERTIFICATE REQUEST-----` PEM (exactly one block).
    pub fn from_pem(pem: &str) -> Result<Self, CsrError> {
        use crate::pem::OneBlockError;
        let der = crate::pem::one_block(pem, SectionKind::Csr).map_err(|e| {
            CsrError::NotPem(match e {
                OneBlockError::NotPem(why) => why,
                OneBlockError::Several => "more than one PEM block".into(),
                OneBlockError::OtherKind(kind) => {
                    format!("a {kind} PEM block, expected CERTIFICATE REQUEST")
                }
            })
        })?;
        Self::from_der(&der)
    }

    /// The subject's CN, as the request spells it (not yet checked as a
    /// device ID: that is the caller's rule).
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// The key the request proved it holds.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// The key, taking the request apart.
    pub fn into_public_key(self) -> PublicKey {
        self.key
    }
}

/// The aws-lc-rs algorithm that checks a signature of `alg` made with a
/// key of `key_type`: the signature algorithms a device's own key can make
/// (SHA-1 and RSA-PSS are refused, so are parameters where none belong).
fn verification_algorithm(
    alg: &AlgorithmIdentifier<'_>,
    key_type: KeyType,
) -> Result<&'static dyn VerificationAlgorithm, CsrError> {
    let oid = &alg.algorithm;
    let unsupported = |name: &str| {
        Err(CsrError::SignatureAlgorithm(format!(
            "{name} is not accepted; sign with SHA-256, SHA-384 or SHA-512 \
             (ECDSA, RSA PKCS#1 v1.5) or Ed25519"
        )))
    };
    if *oid == OID_PKCS1_SHA1WITHRSA || oid.to_id_string() == "1.2.840.10045.4.1" {
        return unsupported("a SHA-1 signature");
    }
    if *oid == OID_PKCS1_RSASSAPSS {
        return unsupported("RSA-PSS");
    }
    let sha = if *oid == OID_SIG_ECDSA_WITH_SHA256 || *oid == OID_PKCS1_SHA256WITHRSA {
        256
    } else if *oid == OID_SIG_ECDSA_WITH_SHA384 || *oid == OID_PKCS1_SHA384WITHRSA {
        384
    } else if *oid == OID_SIG_ECDSA_WITH_SHA512 || *oid == OID_PKCS1_SHA512WITHRSA {
        512
    } else if *oid == OID_SIG_ED25519 {
        0
    } else {
        return unsupported(&format!("signature algorithm {}", oid.to_id_string()));
    };
    let ecdsa_or_eddsa = *oid == OID_SIG_ED25519
        || *oid == OID_SIG_ECDSA_WITH_SHA256
        || *oid == OID_SIG_ECDSA_WITH_SHA384
        || *oid == OID_SIG_ECDSA_WITH_SHA512;
    // RFC 5758 and RFC 8410: no parameters; RFC 4055: NULL or none.
    let parameters_ok = match &alg.parameters {
        None => true,
        Some(p) => !ecdsa_or_eddsa && p.tag() == x509_parser::der_parser::asn1_rs::Tag::Null,
    };
    if !parameters_ok {
        return Err(CsrError::SignatureAlgorithm(format!(
            "signature algorithm {} with parameters that do not belong to it",
            oid.to_id_string()
        )));
    }
    let rsa = !ecdsa_or_eddsa;
    let chosen: Option<&'static dyn VerificationAlgorithm> = match (key_type, sha, rsa) {
        (KeyType::EcdsaP256, 256, false) => Some(&lc::ECDSA_P256_SHA256_ASN1),
        (KeyType::EcdsaP256, 384, false) => Some(&lc::ECDSA_P256_SHA384_ASN1),
        (KeyType::EcdsaP256, 512, false) => Some(&lc::ECDSA_P256_SHA512_ASN1),
        (KeyType::EcdsaP384, 256, false) => Some(&lc::ECDSA_P384_SHA256_ASN1),
        (KeyType::EcdsaP384, 384, false) => Some(&lc::ECDSA_P384_SHA384_ASN1),
        (KeyType::EcdsaP384, 512, false) => Some(&lc::ECDSA_P384_SHA512_ASN1),
        (KeyType::Ed25519, 0, false) => Some(&lc::ED25519),
        (KeyType::Rsa(_), 256, true) => Some(&lc::RSA_PKCS1_2048_8192_SHA256),
        (KeyType::Rsa(_), 384, true) => Some(&lc::RSA_PKCS1_2048_8192_SHA384),
        (KeyType::Rsa(_), 512, true) => Some(&lc::RSA_PKCS1_2048_8192_SHA512),
        _ => None,
    };
    chosen.ok_or_else(|| {
        CsrError::SignatureAlgorithm(format!(
            "signature algorithm {} does not go with a {key_type} key",
            oid.to_id_string()
        ))
    })
}

/// The object identifiers [`csr_attributes`] names.
mod oids {
    pub use const_oid::db::rfc4519::COMMON_NAME as ID_AT_COMMON_NAME;
    pub use const_oid::db::rfc5912::{
        ECDSA_WITH_SHA_256, ID_EC_PUBLIC_KEY, RSA_ENCRYPTION, SECP_256_R_1, SECP_384_R_1,
    };
    pub use const_oid::db::rfc8410::ID_ED_25519 as ID_ED25519;
}

/// What EST's `csrattrs` answers (RFC 7030 §4.5.2): a DER `CsrAttrs`
/// naming what a request must carry here — a CN (the device ID), and a key
/// of a type PROTOCOL.md §4 accepts: ECDSA on P-256 or P-384 (the
/// `id-ecPublicKey` attribute with those curves), Ed25519 or RSA (2048 to
/// 4096 bits) — with ecdsa-with-SHA256 as the signature suggested.
pub fn csr_attributes() -> Result<Vec<u8>, CaError> {
    csr_attributes_der().map_err(|e| CaError::Encode {
        what: "the CSR attributes",
        detail: e.to_string(),
    })
}

fn csr_attributes_der() -> Result<Vec<u8>, der::Error> {
    let curves = SetOfVec::try_from(vec![
        Any::encode_from(&oids::SECP_256_R_1)?,
        Any::encode_from(&oids::SECP_384_R_1)?,
    ])?;
    let attrs: Vec<Any> = vec![
        Any::encode_from(&oids::ID_AT_COMMON_NAME)?,
        Any::encode_from(&x509_cert::attr::Attribute {
            oid: oids::ID_EC_PUBLIC_KEY,
            values: curves,
        })?,
        Any::encode_from(&oids::ID_ED25519)?,
        Any::encode_from(&oids::RSA_ENCRYPTION)?,
        Any::encode_from(&oids::ECDSA_WITH_SHA_256)?,
    ];
    attrs.to_der()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyError;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    fn request_for(key: &KeyPair, names: &[(DnType, &str)]) -> Vec<u8> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        for (ty, value) in names {
            dn.push(ty.clone(), *value);
        }
        params.distinguished_name = dn;
        params.serialize_request(key).expect("a CSR").der().to_vec()
    }

    fn device_request(key: &KeyPair) -> Vec<u8> {
        request_for(key, &[(DnType::CommonName, "sensor-1")])
    }

    #[test]
    fn every_accepted_key_type_proves_possession() {
        let keys = [
            (
                KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key"),
                KeyType::EcdsaP256,
            ),
            (
                KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key"),
                KeyType::EcdsaP384,
            ),
            (
                KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key"),
                KeyType::Ed25519,
            ),
            (
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                    .expect("key"),
                KeyType::Rsa(2048),
            ),
        ];
        for (key, want) in keys {
            let der = device_request(&key);
            let csr = CertRequest::from_der(&der).expect("verifies");
            assert_eq!(csr.common_name(), "sensor-1");
            assert_eq!(csr.public_key().key_type(), want);
            assert_eq!(
                csr.public_key().spki_der(),
                rcgen::PublicKeyData::subject_public_key_info(&key)
            );
            let pem = crate::pem::encode("CERTIFICATE REQUEST", &der);
            assert_eq!(CertRequest::from_pem(&pem).expect("PEM"), csr);
        }
    }

    #[test]
    fn a_signature_that_does_not_verify_is_no_proof() {
        let key = KeyPair::generate().expect("key");
        let mut der = device_request(&key);
        let last = der.len() - 1;
        der[last] ^= 1;
        assert_eq!(CertRequest::from_der(&der), Err(CsrError::BadSignature));
    }

    #[test]
    fn refusals_name_the_problem() {
        let p521 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).expect("key");
        let e = CertRequest::from_der(&device_request(&p521)).unwrap_err();
        assert_eq!(e, CsrError::Key(KeyError::Unsupported("ECDSA-P521".into())));
        assert!(e.to_string().contains("ECDSA-P521"), "{e}");

        let key = KeyPair::generate().expect("key");
        let none = request_for(&key, &[(DnType::OrganizationName, "nobody")]);
        assert_eq!(
            CertRequest::from_der(&none),
            Err(CsrError::CommonName("the subject has no CN"))
        );
        let two = request_for(
            &key,
            &[
                (DnType::CommonName, "a"),
                (DnType::CustomDnType(vec![2, 5, 4, 3]), "b"),
            ],
        );
        assert_eq!(
            CertRequest::from_der(&two),
            Err(CsrError::CommonName("the subject has more than one CN"))
        );

        let mut trailing = device_request(&key);
        trailing.push(0);
        assert_eq!(CertRequest::from_der(&trailing), Err(CsrError::NotPkcs10));
        assert_eq!(
            CertRequest::from_der(b"not DER at all"),
            Err(CsrError::NotPkcs10)
        );
        assert!(matches!(
            CertRequest::from_pem(&key.public_key_pem()),
            Err(CsrError::NotPem(m)) if m.contains("PUBLIC KEY")
        ));
    }

    #[test]
    fn the_attributes_name_the_cn_and_the_accepted_keys() {
        use der::Decode;
        let der = csr_attributes().expect("encodes");
        let attrs = Vec::<Any>::from_der(&der).expect("a SEQUENCE OF");
        assert_eq!(attrs.len(), 5);
        let oid = |a: &Any| a.decode_as::<const_oid::ObjectIdentifier>().ok();
        assert_eq!(oid(&attrs[0]), Some(oids::ID_AT_COMMON_NAME));
        let ec = attrs[1]
            .decode_as::<x509_cert::attr::Attribute>()
            .expect("an attribute");
        assert_eq!(ec.oid, oids::ID_EC_PUBLIC_KEY);
        let curves: Vec<_> = ec.values.iter().filter_map(oid).collect();
        // A SET OF, in DER order (the shorter encoding first).
        assert_eq!(curves, [oids::SECP_384_R_1, oids::SECP_256_R_1]);
        assert_eq!(oid(&attrs[2]), Some(oids::ID_ED25519));
        assert_eq!(oid(&attrs[3]), Some(oids::RSA_ENCRYPTION));
        assert_eq!(oid(&attrs[4]), Some(oids::ECDSA_WITH_SHA_256));
    }
}
