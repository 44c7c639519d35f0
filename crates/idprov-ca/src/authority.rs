//! The certificate authority: generate or load a CA, issue certificates.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use idprov_proto::{Fingerprint, UnixTime};
use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::error::CaError;
use crate::inspect::CertInfo;
use crate::key::{KeyType, PublicKey};
use crate::pem::{certificate_pem, parse_certificates};

/// Certificates are backdated by this much so that a device whose clock runs
/// a little behind the server's accepts a certificate issued just now.
pub const BACKDATE: Duration = Duration::from_secs(60);

/// Key algorithms the CA generates keys with (for itself, the server and
/// administrators; devices bring their own keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA P-256 with SHA-256: the default, fast and universally supported.
    EcdsaP256,
    /// ECDSA P-384 with SHA-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
    /// RSA 2048 with SHA-256.
    Rsa2048,
    /// RSA 3072 with SHA-256.
    Rsa3072,
    /// RSA 4096 with SHA-256.
    Rsa4096,
}

impl KeyAlgorithm {
    /// Parses the names the CLI and configuration use.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "p256" | "ecdsa-p256" | "p-256" => KeyAlgorithm::EcdsaP256,
            "p384" | "ecdsa-p384" | "p-384" => KeyAlgorithm::EcdsaP384,
            "ed25519" => KeyAlgorithm::Ed25519,
            "rsa2048" | "rsa-2048" => KeyAlgorithm::Rsa2048,
            "rsa3072" | "rsa-3072" => KeyAlgorithm::Rsa3072,
            "rsa4096" | "rsa-4096" => KeyAlgorithm::Rsa4096,
            _ => return None,
        })
    }

    /// Generates a fresh key pair (PKCS#8 when serialized).
    pub fn generate(self) -> Result<KeyPair, CaError> {
        let rsa = |size| KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size);
        Ok(match self {
            KeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
            KeyAlgorithm::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?,
            KeyAlgorithm::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519)?,
            KeyAlgorithm::Rsa2048 => rsa(rcgen::RsaKeySize::_2048)?,
            KeyAlgorithm::Rsa3072 => rsa(rcgen::RsaKeySize::_3072)?,
            KeyAlgorithm::Rsa4096 => rsa(rcgen::RsaKeySize::_4096)?,
        })
    }
}

/// What an issued certificate may be used for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Usage {
    /// A TLS client (devices, administrators, plugins): EKU clientAuth.
    Client,
    /// A TLS server for these names and addresses: EKU serverAuth.
    Server {
        /// DNS names for the subjectAltName.
        dns_names: Vec<String>,
        /// IP addresses for the subjectAltName.
        ip_addresses: Vec<IpAddr>,
    },
    /// A service that is both (an MQTT broker that also connects out).
    ClientAndServer {
        /// DNS names for the subjectAltName.
        dns_names: Vec<String>,
        /// IP addresses for the subjectAltName.
        ip_addresses: Vec<IpAddr>,
    },
    /// The delegated OCSP responder: EKU OCSPSigning only, and
    /// `id-pkix-ocsp-nocheck` (RFC 6960 §4.2.2.2.1), so relying parties do
    /// not ask about the responder's own certificate.
    OcspSigning,
}

/// Everything the CA needs to issue one certificate.
#[derive(Debug, Clone)]
pub struct IssueParams<'a> {
    /// Subject CN (the device ID for devices).
    pub common_name: &'a str,
    /// Subject OU (`iotdevice`, `admin`, `plugin`, `service`, `client`).
    pub organizational_unit: &'a str,
    /// Subject O (the configured organisation).
    pub organization: &'a str,
    /// Client, server or both.
    pub usage: Usage,
    /// Issuance time; notBefore is [`BACKDATE`] earlier.
    pub now: SystemTime,
    /// Validity from `now`; capped at the CA's own notAfter.
    pub validity: Duration,
    /// CRL distribution point URL, if any.
    pub crl_url: Option<&'a str>,
    /// OCSP responder URL for the authority information access extension,
    /// if any.
    pub ocsp_url: Option<&'a str>,
}

/// A certificate the CA issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// Serial number, lower-case hex.
    pub serial: idprov_proto::SerialNumber,
    /// DER encoding.
    pub der: CertificateDer<'static>,
    /// PEM of the leaf alone.
    pub pem: String,
    /// notBefore, Unix seconds.
    pub not_before: UnixTime,
    /// notAfter, Unix seconds.
    pub not_after: UnixTime,
}

/// A freshly generated CA's files.
#[derive(Debug)]
pub struct GeneratedCa {
    /// The CA.
    pub ca: Ca,
    /// Its certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PKCS#8 PEM (the caller writes it with mode 0600).
    pub key_pem: String,
}

/// A certificate authority able to sign: the issuing certificate, its key and
/// the chain above it.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    info: CertInfo,
    cert_der: CertificateDer<'static>,
    /// The issuing CA followed by its chain up to the root, PEM.
    chain_pem: String,
    /// The issuing CA and further intermediates (not the root), PEM: what
    /// follows a leaf in `clientCert`.
    intermediates_pem: String,
    chain_der: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("subject_cn", &self.info.common_names)
            .field("fingerprint", &self.info.fingerprint)
            .finish_non_exhaustive()
    }
}

fn to_offset(t: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(t)
}

/// A random positive serial of 127 bits: never derived from the key, so
/// renewals with the same key get new serials (rcgen's default would not).
fn random_serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| CaError::Random)?;
    // Positive, and a non-zero first byte keeps the DER length fixed.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

impl Ca {
    /// Generates a self-signed root CA: ECDSA key, no EKU, keyCertSign +
    /// cRLSign, path length 0.
    pub fn generate(
        organization: &str,
        algorithm: KeyAlgorithm,
        now: SystemTime,
        validity: Duration,
    ) -> Result<GeneratedCa, CaError> {
        let key = algorithm.generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, organization);
        dn.push(
            DnType::CommonName,
            format!("{organization} provisioning CA"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = to_offset(now - BACKDATE);
        params.not_after = to_offset(now + validity);
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key)?;
        let cert_pem = certificate_pem(cert.der());
        let key_pem = key.serialize_pem();
        let ca = Ca::load(&cert_pem, &key_pem, None, now)?;
        Ok(GeneratedCa {
            ca,
            cert_pem,
            key_pem,
        })
    }

    /// Loads an existing CA or intermediate. `cert_pem` holds the issuing
    /// certificate, optionally followed by its chain; `chain_pem` may hold
    /// (more of) the chain up to the root.
    pub fn load(
        cert_pem: &str,
        key_pem: &str,
        chain_pem: Option<&str>,
        now: SystemTime,
    ) -> Result<Ca, CaError> {
        let mut certs = parse_certificates(cert_pem)?;
        if let Some(chain) = chain_pem {
            certs.extend(parse_certificates(chain)?);
        }
        let cert_der = certs[0].clone();
        let info = CertInfo::from_der(&cert_der)?;
        if !info.is_ca {
            return Err(CaError::UnusableCa(
                "the certificate is not a CA (BasicConstraints CA:true is missing)".into(),
            ));
        }
        if UnixTime::from(now) > info.not_after {
            return Err(CaError::UnusableCa("the CA certificate has expired".into()));
        }
        let key = KeyPair::from_pem(key_pem).map_err(|e| CaError::BadKey(e.to_string()))?;
        if rcgen::PublicKeyData::subject_public_key_info(&key) != info.spki_der {
            return Err(CaError::UnusableCa(
                "the private key does not belong to the CA certificate".into(),
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        if !issuer.key_usages().is_empty()
            && !issuer.key_usages().contains(&KeyUsagePurpose::KeyCertSign)
        {
            return Err(CaError::UnusableCa(
                "the CA certificate's key usage does not allow keyCertSign".into(),
            ));
        }
        let mut chain_pem = String::new();
        let mut intermediates_pem = String::new();
        for der in &certs {
            let pem = certificate_pem(der);
            chain_pem.push_str(&pem);
            if !is_self_issued(der)? {
                intermediates_pem.push_str(&pem);
            }
        }
        Ok(Ca {
            issuer,
            info,
            cert_der,
            chain_pem,
            intermediates_pem,
            chain_der: certs,
        })
    }

    /// Issues a certificate: random serial, notBefore backdated, SKI + AKI,
    /// CA:false, the usage's EKU, the CRL distribution point and the OCSP
    /// responder (authority information access) if given.
    pub fn issue(
        &self,
        public_key: &PublicKey,
        p: &IssueParams<'_>,
    ) -> Result<IssuedCert, CaError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, p.organization);
        dn.push(DnType::OrganizationalUnitName, p.organizational_unit);
        dn.push(DnType::CommonName, p.common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        let not_before = p.now - BACKDATE;
        let ca_not_after = SystemTime::from(self.info.not_after);
        let not_after = (p.now + p.validity).min(ca_not_after);
        params.not_before = to_offset(not_before);
        params.not_after = to_offset(not_after);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if public_key.key_type().is_rsa() {
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        let (client, server, dns_names, ip_addresses) = match &p.usage {
            Usage::Client => (true, false, &[][..], &[][..]),
            Usage::Server {
                dns_names,
                ip_addresses,
            } => (false, true, &dns_names[..], &ip_addresses[..]),
            Usage::ClientAndServer {
                dns_names,
                ip_addresses,
            } => (true, true, &dns_names[..], &ip_addresses[..]),
            Usage::OcspSigning => {
                params
                    .extended_key_usages
                    .push(ExtendedKeyUsagePurpose::OcspSigning);
                params.custom_extensions.push(crate::ext::ocsp_nocheck()?);
                (false, false, &[][..], &[][..])
            }
        };
        if client {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        if server {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        for name in dns_names {
            params
                .subject_alt_names
                .push(SanType::DnsName(name.clone().try_into()?));
        }
        for ip in ip_addresses {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        if let Some(url) = p.crl_url {
            params.crl_distribution_points = vec![CrlDistributionPoint {
                uris: vec![url.to_owned()],
            }];
        }
        if let Some(url) = p.ocsp_url {
            params
                .custom_extensions
                .push(crate::ext::authority_info_access(url)?);
        }
        let cert = params.signed_by(public_key.rcgen(), &self.issuer)?;
        let der = cert.der().clone();
        let serial = idprov_proto::SerialNumber::from_octets(
            &params
                .serial_number
                .as_ref()
                .map(SerialNumber::to_bytes)
                .unwrap_or_default(),
        )
        .map_err(|e| CaError::BadCertificate(format!("serial number: {e}")))?;
        Ok(IssuedCert {
            serial,
            pem: certificate_pem(&der),
            der,
            not_before: UnixTime::from(not_before),
            not_after: UnixTime::from(not_after),
        })
    }

    /// The issuing CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The issuing CA followed by its chain up to the root, PEM: the
    /// directory's and the responses' `caCert`.
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// The issuing CA and any intermediates above it (not the root), PEM:
    /// appended to an issued leaf in `clientCert`. Empty for a root CA.
    pub fn intermediates_pem(&self) -> &str {
        &self.intermediates_pem
    }

    /// The issuing CA and its chain, DER, issuing CA first.
    pub fn chain_der(&self) -> &[CertificateDer<'static>] {
        &self.chain_der
    }

    /// The CA fingerprint of PROTOCOL.md §9 (SHA-256 of the issuing CA's DER).
    pub fn fingerprint(&self) -> Fingerprint {
        self.info.fingerprint
    }

    /// The issuing certificate's facts.
    pub fn info(&self) -> &CertInfo {
        &self.info
    }

    /// The signing key (for CRLs and signed audit checkpoints).
    pub fn key(&self) -> &KeyPair {
        self.issuer.key()
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// Generates a key and issues a certificate for it in one step (server,
    /// administrator and service credentials). Returns the certificate and
    /// the key's PKCS#8 PEM.
    pub fn issue_with_new_key(
        &self,
        algorithm: KeyAlgorithm,
        params: IssueParams<'_>,
    ) -> Result<(IssuedCert, String), CaError> {
        let key = algorithm.generate()?;
        let public =
            PublicKey::from_spki_der(&rcgen::PublicKeyData::subject_public_key_info(&key))?;
        let issued = self.issue(&public, &params)?;
        Ok((issued, key.serialize_pem()))
    }
}

/// What a certificate is checked for by [`Ca::verifies`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// TLS client authentication.
    ClientAuth,
    /// TLS server authentication.
    ServerAuth,
    /// Signing OCSP answers (a delegated responder).
    OcspSigning,
}

impl Ca {
    /// True when `leaf` (followed by any `intermediates`) chains to this CA's
    /// chain, is valid at `now` and allows `purpose` (checked by webpki, the
    /// same code rustls uses).
    pub fn verifies(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: SystemTime,
        purpose: Purpose,
    ) -> bool {
        let anchors: Vec<_> = self
            .chain_der
            .iter()
            .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
            .map(|a| a.to_owned())
            .collect();
        let Ok(cert) = webpki::EndEntityCert::try_from(leaf) else {
            return false;
        };
        let time = rustls_pki_types::UnixTime::since_unix_epoch(
            now.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        let usage = match purpose {
            Purpose::ClientAuth => webpki::KeyUsage::client_auth(),
            Purpose::ServerAuth => webpki::KeyUsage::server_auth(),
            Purpose::OcspSigning => webpki::KeyUsage::required(EKU_OCSP_SIGNING_OID.as_bytes()),
        };
        cert.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            intermediates,
            time,
            usage,
            None,
            None,
        )
        .is_ok()
    }
}

/// id-kp-OCSPSigning, whose content octets are what webpki takes as an
/// extended key usage.
static EKU_OCSP_SIGNING_OID: const_oid::ObjectIdentifier =
    const_oid::db::rfc5280::ID_KP_OCSP_SIGNING;

fn is_self_issued(der: &[u8]) -> Result<bool, CaError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| CaError::BadCertificate(e.to_string()))?;
    Ok(cert.subject().as_raw() == cert.issuer().as_raw())
}

/// The key type of an rcgen key pair, for callers that generated one.
pub fn key_type_of(key: &KeyPair) -> Result<KeyType, CaError> {
    Ok(PublicKey::from_spki_der(&rcgen::PublicKeyData::subject_public_key_info(key))?.key_type())
}
