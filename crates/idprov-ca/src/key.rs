//! Public keys submitted by devices: parsing, type checks, fingerprints.

use std::fmt;

use aws_lc_rs::signature::{self as lc, ParsedPublicKey};
use idprov_proto::KeyFingerprint;
use rustls_pki_types::pem::SectionKind;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey as ParsedKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::error::KeyError;

/// The key types idprov issues certificates for (PROTOCOL.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// ECDSA on NIST P-256 (what Go idprov clients send).
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
    /// RSA with the given modulus size in bits (2048–4096).
    Rsa(usize),
}

impl KeyType {
    /// True for RSA keys, whose certificates also get keyEncipherment.
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa(_))
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::EcdsaP256 => f.write_str("ECDSA-P256"),
            KeyType::EcdsaP384 => f.write_str("ECDSA-P384"),
            KeyType::Ed25519 => f.write_str("Ed25519"),
            KeyType::Rsa(bits) => write!(f, "RSA-{bits}"),
        }
    }
}

/// A validated public key: a PKIX SubjectPublicKeyInfo of an accepted type
/// whose key material decodes.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    spki_der: Vec<u8>,
    key_type: KeyType,
    rcgen: rcgen::SubjectPublicKeyInfo,
    /// Computed once: a request's key is looked up, queued, approved and
    /// recorded by it several times.
    fingerprint: KeyFingerprint,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("type", &self.key_type)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

/// The size of an RSA modulus in bits, counted exactly (the DER integer's
/// bytes times eight would call a 4 100-bit key 4 104 bits, or rather let
/// it pass as "4096", and a 2 047-bit key "2040").
fn modulus_bits(modulus: &[u8]) -> usize {
    let significant: &[u8] = match modulus.iter().position(|b| *b != 0) {
        Some(i) => &modulus[i..],
        None => return 0,
    };
    (significant.len() - 1) * 8 + (8 - significant[0].leading_zeros() as usize)
}

impl PublicKey {
    /// Parses `-----BEGIN PUBLIC KEY-----` PEM (exactly one block).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        use crate::pem::OneBlockError;
        let der = crate::pem::one_block(pem, SectionKind::PublicKey).map_err(|e| match e {
            OneBlockError::NotPem(why) => KeyError::NotPem(why),
            OneBlockError::Several => KeyError::MultipleBlocks,
            OneBlockError::OtherKind(kind) => KeyError::WrongPemKind(kind.into()),
        })?;
        Self::from_spki_der(&der)
    }

    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let (rest, spki) = SubjectPublicKeyInfo::from_der(der).map_err(|_| KeyError::Malformed)?;
        if !rest.is_empty() {
            return Err(KeyError::Malformed);
        }
        let alg = &spki.algorithm.algorithm;
        let key_bytes: &[u8] = &spki.subject_public_key.data;
        let key_type = if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .ok_or(KeyError::Malformed)?;
            let (key_type, verify_alg): (_, &'static dyn lc::VerificationAlgorithm) =
                if curve == OID_EC_P256 {
                    (KeyType::EcdsaP256, &lc::ECDSA_P256_SHA256_ASN1)
                } else if curve == OID_NIST_EC_P384 {
                    (KeyType::EcdsaP384, &lc::ECDSA_P384_SHA384_ASN1)
                } else {
                    return Err(KeyError::Unsupported(ec_curve_name(&curve.to_id_string())));
                };
            // The "hybrid" point encodings (0x06, 0x07: both coordinates and
            // the parity bit) are in X9.62 but not in RFC 5480, and no client
            // sends them; refused rather than left to the crypto library.
            if matches!(key_bytes.first(), Some(0x06 | 0x07)) {
                return Err(KeyError::InvalidKey(if key_type == KeyType::EcdsaP256 {
                    "ECDSA-P256 (a hybrid point encoding)"
                } else {
                    "ECDSA-P384 (a hybrid point encoding)"
                }));
            }
            ParsedPublicKey::new(verify_alg, key_bytes).map_err(|_| {
                KeyError::InvalidKey(if key_type == KeyType::EcdsaP256 {
                    "ECDSA-P256"
                } else {
                    "ECDSA-P384"
                })
            })?;
            key_type
        } else if *alg == OID_SIG_ED25519 {
            if spki.algorithm.parameters.is_some() || key_bytes.len() != 32 {
                return Err(KeyError::InvalidKey("Ed25519"));
            }
            ParsedPublicKey::new(&lc::ED25519, key_bytes)
                .map_err(|_| KeyError::InvalidKey("Ed25519"))?;
            KeyType::Ed25519
        } else if *alg == OID_PKCS1_RSAENCRYPTION {
            let bits = match spki.parsed() {
                Ok(ParsedKey::RSA(rsa)) => modulus_bits(rsa.modulus),
                _ => return Err(KeyError::InvalidKey("RSA")),
            };
            if !(2048..=4096).contains(&bits) {
                return Err(KeyError::RsaSize(bits));
            }
            ParsedPublicKey::new(&lc::RSA_PKCS1_2048_8192_SHA256, key_bytes)
                .map_err(|_| KeyError::InvalidKey("RSA"))?;
            KeyType::Rsa(bits)
        } else {
            return Err(KeyError::Unsupported(algorithm_name(&alg.to_id_string())));
        };
        let rcgen = rcgen::SubjectPublicKeyInfo::from_der(der)
            .map_err(|_| KeyError::Unsupported(key_type.to_string()))?;
        Ok(PublicKey {
            spki_der: der.to_vec(),
            key_type,
            rcgen,
            fingerprint: KeyFingerprint::of_spki(der),
        })
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// SHA-256 of the DER SubjectPublicKeyInfo: identifies a device key in the
    /// waiting queue, approvals and re-delivery.
    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint.clone()
    }

    /// PKIX PEM of the key.
    pub fn to_pem(&self) -> String {
        crate::pem::encode("PUBLIC KEY", &self.spki_der)
    }

    pub(crate) fn rcgen(&self) -> &rcgen::SubjectPublicKeyInfo {
        &self.rcgen
    }
}

fn ec_curve_name(oid: &str) -> String {
    match oid {
        "1.3.132.0.35" => "ECDSA-P521".into(),
        "1.3.132.0.10" => "ECDSA-secp256k1".into(),
        "1.2.840.10045.3.1.1" => "ECDSA-P192".into(),
        "1.3.132.0.33" => "ECDSA-P224".into(),
        other => format!("ECDSA on curve {other}"),
    }
}

fn algorithm_name(oid: &str) -> String {
    match oid {
        "1.3.101.111" => "X448".into(),
        "1.3.101.110" => "X25519".into(),
        "1.3.101.113" => "Ed448".into(),
        "1.2.840.10040.4.1" => "DSA".into(),
        "1.2.840.113549.1.1.10" => "RSA-PSS".into(),
        other => format!("with algorithm OID {other}"),
    }
}

pub(crate) fn section_name(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "CERTIFICATE",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        _ => "unrecognised",
    }
}

pub(crate) fn pem_error_text(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { .. } => "a PEM block has no END line".into(),
        Error::IllegalSectionStart { .. } => "malformed BEGIN line".into(),
        Error::Base64Decode(_) => "the PEM body is not valid base64".into(),
        Error::NoItemsFound => "no PEM block found".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::KeyPair;

    fn pem_of(alg: &'static rcgen::SignatureAlgorithm) -> String {
        KeyPair::generate_for(alg).expect("keygen").public_key_pem()
    }

    /// A DER length.
    fn der_len(n: usize) -> Vec<u8> {
        match n {
            0..=127 => vec![n as u8],
            128..=255 => vec![0x81, n as u8],
            _ => vec![0x82, (n >> 8) as u8, n as u8],
        }
    }

    fn der(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend(der_len(body.len()));
        out.extend_from_slice(body);
        out
    }

    /// An RSA SubjectPublicKeyInfo with a modulus of exactly `bits` bits.
    fn rsa_spki(bits: usize) -> Vec<u8> {
        let bytes = bits.div_ceil(8);
        let mut modulus = vec![0xffu8; bytes];
        modulus[0] = 0xff >> (bytes * 8 - bits);
        if modulus[0] & 0x80 != 0 {
            modulus.insert(0, 0); // a positive INTEGER
        }
        let rsa_key = der(0x30, &[der(0x02, &modulus), der(0x02, &[1, 0, 1])].concat());
        let alg = der(
            0x30,
            &[
                der(
                    0x06,
                    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
                ),
                vec![0x05, 0x00],
            ]
            .concat(),
        );
        let bit_string = der(0x03, &[&[0u8][..], &rsa_key].concat());
        der(0x30, &[alg, bit_string].concat())
    }

    #[test]
    fn rsa_sizes_are_counted_in_bits() {
        assert_eq!(modulus_bits(&[0x00, 0x80]), 8);
        assert_eq!(modulus_bits(&[0x7f, 0xff]), 15);
        for (bits, refused) in [(2047, true), (4097, true), (4100, true), (4102, true)] {
            match PublicKey::from_spki_der(&rsa_spki(bits)) {
                Err(KeyError::RsaSize(n)) => assert_eq!((n, refused), (bits, true), "{bits}"),
                other => panic!("{bits}: {other:?}"),
            }
        }
        let e = PublicKey::from_spki_der(&rsa_spki(2047)).unwrap_err();
        assert!(e.to_string().contains("2047"), "{e}");
    }

    #[test]
    fn hybrid_ec_point_encodings_are_refused() {
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
        ] {
            let pem = KeyPair::generate_for(alg).expect("keygen").public_key_pem();
            let der = PublicKey::from_pem(&pem).expect("key").spki_der().to_vec();
            // The BIT STRING's content starts after its unused-bits byte: the
            // point's first byte is 0x04 (uncompressed).
            let at = der.len()
                - if std::ptr::eq(alg, &rcgen::PKCS_ECDSA_P256_SHA256) {
                    65
                } else {
                    97
                };
            assert_eq!(der[at], 0x04);
            let y_odd = der[der.len() - 1] & 1;
            for prefix in [0x06u8, 0x07] {
                let mut hybrid = der.clone();
                hybrid[at] = prefix;
                let e = PublicKey::from_spki_der(&hybrid).unwrap_err();
                assert!(
                    e.to_string().contains("hybrid"),
                    "{prefix:#x} (y odd: {y_odd}): {e}"
                );
            }
        }
    }

    #[test]
    fn accepted_key_types() {
        let cases = [
            (&rcgen::PKCS_ECDSA_P256_SHA256, KeyType::EcdsaP256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, KeyType::EcdsaP384),
            (&rcgen::PKCS_ED25519, KeyType::Ed25519),
        ];
        for (alg, want) in cases {
            let key = PublicKey::from_pem(&pem_of(alg)).expect("accepted");
            assert_eq!(key.key_type(), want);
            assert_eq!(PublicKey::from_pem(&key.to_pem()).expect("round trip"), key);
        }
        let rsa = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            .expect("rsa keygen");
        assert_eq!(
            PublicKey::from_pem(&rsa.public_key_pem())
                .expect("rsa")
                .key_type(),
            KeyType::Rsa(2048)
        );
    }

    #[test]
    fn refusals_name_the_problem() {
        let p521 = PublicKey::from_pem(&pem_of(&rcgen::PKCS_ECDSA_P521_SHA512)).unwrap_err();
        assert_eq!(p521, KeyError::Unsupported("ECDSA-P521".into()));
        assert!(p521.to_string().contains("ECDSA-P521"));

        assert!(matches!(
            PublicKey::from_pem("garbage"),
            Err(KeyError::NotPem(_))
        ));
        assert!(matches!(
            PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n"),
            Err(KeyError::NotPem(_))
        ));
        assert_eq!(
            PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
            Err(KeyError::Malformed)
        );
        let kp = KeyPair::generate().expect("keygen");
        assert_eq!(
            PublicKey::from_pem(&kp.serialize_pem()),
            Err(KeyError::WrongPemKind("PRIVATE KEY".into()))
        );
        let two = format!("{}{}", kp.public_key_pem(), kp.public_key_pem());
        assert_eq!(PublicKey::from_pem(&two), Err(KeyError::MultipleBlocks));
    }

    #[test]
    fn a_point_off_the_curve_is_refused() {
        let kp = KeyPair::generate().expect("keygen");
        let mut der = rcgen::PublicKeyData::subject_public_key_info(&kp);
        // Flip a bit of the last coordinate byte: still well-formed DER.
        let last = der.len() - 1;
        der[last] ^= 0x01;
        assert_eq!(
            PublicKey::from_spki_der(&der),
            Err(KeyError::InvalidKey("ECDSA-P256"))
        );
    }
}
