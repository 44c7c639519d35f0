//! CA rollover: a new CA beside the old one, cross-certificates in both
//! directions, and the transition during which both are trusted.
//!
//! During a transition the new CA issues. What it issues travels with the
//! cross-certificate "new CA, signed by the old" ([`Ca::intermediates_pem`]),
//! so a device or service that still trusts only the old CA accepts it;
//! the chain clients are told to trust ([`Ca::chain_pem`]) holds both; client
//! certificates of both are accepted ([`Ca::trust_anchors`]); and CRLs are
//! signed by both ([`Ca::previous`]).

use std::time::SystemTime;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::authority::{BACKDATE, Ca, IssuedCert};
use crate::error::{CaError, signing};
use crate::inspect::CertInfo;
use crate::pem::parse_certificates;

/// The subject of a certificate, as rcgen rebuilds it: every attribute
/// with its type and string value, in order (names of the CAs idprov
/// makes are UTF8Strings, so the rebuilt name matches byte for byte).
fn subject_of(der: &[u8]) -> Result<DistinguishedName, CaError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| CaError::BadCertificate(e.to_string()))?;
    let mut dn = DistinguishedName::new();
    for attr in cert.subject().iter_attributes() {
        let arcs: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| CaError::BadCertificate("an attribute OID too large".into()))?
            .collect();
        let value = attr
            .as_str()
            .map_err(|_| CaError::BadCertificate("a subject attribute is not text".into()))?;
        dn.push(DnType::from_oid(&arcs), value);
    }
    Ok(dn)
}

impl Ca {
    /// A cross-certificate: `other`'s subject and key, as a CA, issued by
    /// this CA, valid as long as both are.
    pub fn cross_certify(
        &self,
        other: &CertificateDer<'_>,
        now: SystemTime,
    ) -> Result<IssuedCert, CaError> {
        let info = CertInfo::from_der(other)?;
        if !info.is_ca {
            return Err(CaError::UnusableCa(
                "a cross-certificate is for a CA certificate".into(),
            ));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = subject_of(other)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(crate::authority::random_serial()?);
        let not_before = now - BACKDATE;
        let not_after = SystemTime::from(info.not_after.min(self.info().not_after));
        params.not_before = time::OffsetDateTime::from(not_before);
        params.not_after = time::OffsetDateTime::from(not_after);
        let key = rcgen::SubjectPublicKeyInfo::from_der(&info.spki_der)?;
        let cert = params.signed_by(&key, self.issuer()).map_err(signing)?;
        let der = cert.der().clone();
        let serial = CertInfo::from_der(&der)?.serial;
        Ok(IssuedCert::new(serial, der, not_before, not_after))
    }

    /// This (new) CA in a transition from `previous`: it issues, and what
    /// it issues carries `new_by_old` (this CA certified by the previous
    /// one, PEM) so the previous CA's anchor accepts it; the previous CA
    /// stays trusted for client certificates and signs its own CRL.
    /// `old_by_new` (the previous CA certified by this one) is published
    /// beside them ([`Ca::key_update_certs`]).
    pub fn with_previous(
        mut self,
        previous: Ca,
        new_by_old: &str,
        old_by_new: &str,
    ) -> Result<Ca, CaError> {
        let new_by_old = parse_certificates(new_by_old)?.remove(0);
        let old_by_new = parse_certificates(old_by_new)?.remove(0);
        if CertInfo::from_der(&new_by_old)?.spki_der != self.info().spki_der
            || !is_signed_by(&new_by_old, previous.cert_der())
        {
            return Err(CaError::UnusableCa(
                "the cross-certificate new-by-old is not the new CA's key signed by the previous CA"
                    .into(),
            ));
        }
        if CertInfo::from_der(&old_by_new)?.spki_der != previous.info().spki_der
            || !is_signed_by(&old_by_new, self.cert_der())
        {
            return Err(CaError::UnusableCa(
                "the cross-certificate old-by-new is not the previous CA's key signed by the new CA"
                    .into(),
            ));
        }
        self.extend_for_transition(&previous, new_by_old, old_by_new);
        self.set_previous(previous);
        Ok(self)
    }

    /// The CA being replaced, during a transition.
    pub fn previous(&self) -> Option<&Ca> {
        self.previous_ca()
    }

    /// Every CA certificate whose client certificates are accepted: the
    /// issuing CA and, during a transition, the previous one.
    pub fn trust_anchors(&self) -> Vec<CertificateDer<'static>> {
        let mut anchors = vec![self.cert_der().clone()];
        if let Some(p) = self.previous() {
            anchors.push(p.cert_der().clone());
        }
        anchors
    }

    /// Adds CAs retired by earlier rollovers (PEM): trusted for nothing,
    /// known only to verify the audit checkpoints they signed.
    pub fn add_retired(&mut self, pem: &str) -> Result<(), CaError> {
        self.retired_mut().extend(parse_certificates(pem)?);
        Ok(())
    }

    /// Every CA certificate that signed for this installation: the issuing
    /// CA, during a transition the previous one, and retired ones — what an
    /// audit checkpoint's signature is checked against.
    pub fn signing_history(&self) -> Vec<CertificateDer<'static>> {
        let mut all = self.trust_anchors();
        all.extend(self.retired().iter().cloned());
        all
    }
}

/// True when `cert`'s signature verifies with `issuer`'s public key (the
/// signature only: names, validity and extensions are not checked).
pub fn is_signed_by(cert: &[u8], issuer: &[u8]) -> bool {
    let Ok((_, parsed)) = X509Certificate::from_der(cert) else {
        return false;
    };
    crate::crl::verify_signed_by(
        issuer,
        parsed.tbs_certificate.as_ref(),
        &parsed.signature_value.data,
    )
}

/// Verifies a signature made by the key of any of `certs` (an audit
/// checkpoint signed before or after a rollover).
pub fn verify_signed_by_any(
    certs: &[CertificateDer<'_>],
    message: &[u8],
    signature: &[u8],
) -> bool {
    certs
        .iter()
        .any(|c| crate::crl::verify_signed_by(c, message, signature))
}
