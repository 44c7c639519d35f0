//! Certificate extensions rcgen has no type for, encoded with RustCrypto's
//! DER types (never by hand) and handed to rcgen as custom extensions.

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280::{ID_AD_OCSP, ID_PE_AUTHORITY_INFO_ACCESS};
use const_oid::db::rfc6960::ID_PKIX_OCSP_NOCHECK;
use der::Encode;
use der::asn1::{Ia5String, Null};
use rcgen::CustomExtension;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};

use crate::error::CaError;

/// rcgen names an extension by its OID's arcs.
fn arcs(oid: ObjectIdentifier) -> Vec<u64> {
    oid.arcs().map(u64::from).collect()
}

fn encoding(what: &str, e: der::Error) -> CaError {
    CaError::BadCertificate(format!("encoding {what}: {e}"))
}

/// Authority information access (RFC 5280 §4.2.2.1) naming one OCSP
/// responder; non-critical.
pub(crate) fn authority_info_access(ocsp_url: &str) -> Result<CustomExtension, CaError> {
    let location = Ia5String::new(ocsp_url).map_err(|e| encoding("the OCSP URL", e))?;
    let value = AuthorityInfoAccessSyntax(vec![AccessDescription {
        access_method: ID_AD_OCSP,
        access_location: GeneralName::UniformResourceIdentifier(location),
    }])
    .to_der()
    .map_err(|e| encoding("authority information access", e))?;
    Ok(CustomExtension::from_oid_content(
        &arcs(ID_PE_AUTHORITY_INFO_ACCESS),
        value,
    ))
}

/// `id-pkix-ocsp-nocheck` (RFC 6960 §4.2.2.2.1): its value is NULL;
/// non-critical.
pub(crate) fn ocsp_nocheck() -> Result<CustomExtension, CaError> {
    let value = Null.to_der().map_err(|e| encoding("ocsp-nocheck", e))?;
    Ok(CustomExtension::from_oid_content(
        &arcs(ID_PKIX_OCSP_NOCHECK),
        value,
    ))
}
