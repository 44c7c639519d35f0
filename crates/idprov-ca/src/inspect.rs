//! Reading the fields of a certificate that authorization and the registry
//! need, once, into plain Rust values.

use std::net::IpAddr;

use idprov_proto::{Fingerprint, SerialNumber, UnixTime};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::CaError;

/// The facts of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Serial number, lower-case hex without separators.
    pub serial: SerialNumber,
    /// Subject CN values (normally one).
    pub common_names: Vec<String>,
    /// Subject OU values.
    pub organizational_units: Vec<String>,
    /// Subject O values.
    pub organizations: Vec<String>,
    /// notBefore, Unix seconds.
    pub not_before: UnixTime,
    /// notAfter, Unix seconds.
    pub not_after: UnixTime,
    /// The DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// Whether an extendedKeyUsage extension is present at all.
    pub has_eku: bool,
    /// Whether that extension lists clientAuth.
    pub eku_client_auth: bool,
    /// Whether that extension lists serverAuth.
    pub eku_server_auth: bool,
    /// BasicConstraints CA:true.
    pub is_ca: bool,
    /// DNS names of the subjectAltName extension.
    pub dns_names: Vec<String>,
    /// IP addresses of the subjectAltName extension.
    pub ip_addresses: Vec<IpAddr>,
    /// SHA-256 of the whole certificate.
    pub fingerprint: Fingerprint,
}

impl CertInfo {
    /// Parses a DER certificate; trailing bytes are an error.
    pub fn from_der(der: &[u8]) -> Result<Self, CaError> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| CaError::BadCertificate(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CaError::BadCertificate(
                "trailing bytes after the certificate".into(),
            ));
        }
        let strings =
            |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
                it.filter_map(|a| a.as_str().ok().map(str::to_owned))
                    .collect::<Vec<_>>()
            };
        let subject = cert.subject();
        let eku = cert
            .extended_key_usage()
            .map_err(|e| CaError::BadCertificate(e.to_string()))?;
        let bc = cert
            .basic_constraints()
            .map_err(|e| CaError::BadCertificate(e.to_string()))?;
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => dns_names.push((*n).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                            ip_addresses.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                            ip_addresses.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(CertInfo {
            serial: SerialNumber::from_octets(cert.raw_serial())
                .map_err(|e| CaError::BadCertificate(format!("serial number: {e}")))?,
            common_names: strings(&mut subject.iter_common_name()),
            organizational_units: strings(&mut subject.iter_organizational_unit()),
            organizations: strings(&mut subject.iter_organization()),
            not_before: UnixTime::from_secs(cert.validity().not_before.timestamp()),
            not_after: UnixTime::from_secs(cert.validity().not_after.timestamp()),
            spki_der: cert.public_key().raw.to_vec(),
            has_eku: eku.is_some(),
            eku_client_auth: eku.as_ref().is_some_and(|e| e.value.client_auth),
            eku_server_auth: eku.as_ref().is_some_and(|e| e.value.server_auth),
            is_ca: bc.is_some_and(|b| b.value.ca),
            dns_names,
            ip_addresses,
            fingerprint: Fingerprint::of_der(der),
        })
    }

    /// The single CN, if there is exactly one.
    pub fn common_name(&self) -> Option<&str> {
        match self.common_names.as_slice() {
            [cn] => Some(cn),
            _ => None,
        }
    }

    /// True when `now` lies inside the validity window.
    pub fn is_valid_at(&self, now: UnixTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// True when the leaf may authenticate a client: no EKU at all (the TLS
    /// library lets it through) is refused here, as PROTOCOL.md §2 requires.
    pub fn allows_client_auth(&self) -> bool {
        self.has_eku && self.eku_client_auth
    }
}
