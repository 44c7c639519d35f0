//! OCSP (RFC 6960, in the lightweight profile of RFC 5019): reading a
//! request, and answering it as the CA's delegated responder.
//!
//! The responder is a certificate the CA issues to a key of its own (EKU
//! OCSPSigning, `id-pkix-ocsp-nocheck`): answers are signed per request by
//! that key, so the CA key signs only certificates and CRLs and stays out
//! of the per-request path. The ASN.1 is RustCrypto's (`x509-ocsp`,
//! `x509-cert`, `der`); signatures are aws-lc-rs's through rcgen's key.
//!
//! What a serial's status is comes from the caller (the registry): this
//! module only matches a request's CertIDs against the issuing CA and
//! encodes the answer.

use std::time::{Duration, SystemTime};

use const_oid_ocsp::ObjectIdentifier;
use const_oid_ocsp::db::rfc5912::{
    ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ID_SHA_1, ID_SHA_256, ID_SHA_384, ID_SHA_512,
    SHA_256_WITH_RSA_ENCRYPTION,
};
use const_oid_ocsp::db::rfc6960::ID_PKIX_OCSP_NONCE;
use const_oid_ocsp::db::rfc8410::ID_ED_25519;
use der_ocsp::asn1::{BitString, GeneralizedTime, Null, OctetString};
use der_ocsp::{Decode, Encode};
use idprov_proto::{SerialNumber, UnixTime};
use rcgen::{KeyPair, SigningKey};
use rustls_pki_types::CertificateDer;
use spki_ocsp::AlgorithmIdentifierOwned;
use x509_cert_ocsp::Certificate;
use x509_cert_ocsp::ext::Extension;
use x509_cert_ocsp::ext::pkix::CrlReason;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    OcspResponseStatus, ResponderId, ResponseData, RevokedInfo, SingleResponse, Version,
};

use crate::authority::{Ca, Purpose};
use crate::error::CaError;

/// Most certificates one request may ask about. RFC 5019 clients ask about
/// one; a few more cost little, a long list would make one request do the
/// work of many.
pub const MAX_CERTS_PER_REQUEST: usize = 16;

/// Longest nonce a request may carry (RFC 8954 §2.1: 1 to 32 octets).
pub const MAX_NONCE_OCTETS: usize = 32;

/// Why a request was not understood: the answer is `malformedRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed OCSP request: {0}")]
pub struct MalformedRequest(pub String);

fn malformed(what: impl Into<String>) -> MalformedRequest {
    MalformedRequest(what.into())
}

/// A parsed OCSP request: the certificates it asks about, exactly as it
/// named them (the answer repeats each CertID), and its nonce, if any.
#[derive(Debug, Clone)]
pub struct OcspQuery {
    cert_ids: Vec<CertId>,
    nonce: Option<Extension>,
}

impl OcspQuery {
    /// Parses a DER `OCSPRequest` strictly: trailing bytes, an empty or
    /// too long request list, a duplicated extension, an unknown critical
    /// extension or a nonce outside 1–32 octets are refused. A request
    /// signature is ignored (any client may ask; RFC 6960 §4.1.2).
    pub fn from_der(der: &[u8]) -> Result<OcspQuery, MalformedRequest> {
        let request = OcspRequest::from_der(der).map_err(|e| malformed(e.to_string()))?;
        let tbs = request.tbs_request;
        if tbs.request_list.is_empty() {
            return Err(malformed("the request names no certificate"));
        }
        if tbs.request_list.len() > MAX_CERTS_PER_REQUEST {
            return Err(malformed(format!(
                "the request names {} certificates; at most {MAX_CERTS_PER_REQUEST} are answered at once",
                tbs.request_list.len()
            )));
        }
        let mut nonce = None;
        for ext in tbs.request_extensions.iter().flatten() {
            if ext.extn_id == ID_PKIX_OCSP_NONCE {
                if nonce.is_some() {
                    return Err(malformed("the nonce extension appears twice"));
                }
                let value = OctetString::from_der(ext.extn_value.as_bytes())
                    .map_err(|e| malformed(format!("nonce: {e}")))?;
                let len = value.as_bytes().len();
                if !(1..=MAX_NONCE_OCTETS).contains(&len) {
                    return Err(malformed(format!(
                        "the nonce has {len} octets; RFC 8954 allows 1 to {MAX_NONCE_OCTETS}"
                    )));
                }
                nonce = Some(ext.clone());
            } else if ext.critical {
                return Err(malformed(format!(
                    "unsupported critical extension {}",
                    ext.extn_id
                )));
            }
        }
        for single in &tbs.request_list {
            if let Some(ext) = single
                .single_request_extensions
                .iter()
                .flatten()
                .find(|e| e.critical)
            {
                return Err(malformed(format!(
                    "unsupported critical extension {} of a certificate",
                    ext.extn_id
                )));
            }
        }
        Ok(OcspQuery {
            cert_ids: tbs.request_list.into_iter().map(|r| r.req_cert).collect(),
            nonce,
        })
    }

    /// How many certificates it asks about.
    pub fn len(&self) -> usize {
        self.cert_ids.len()
    }

    /// Never true: a parsed request names at least one certificate.
    pub fn is_empty(&self) -> bool {
        self.cert_ids.is_empty()
    }

    /// Whether it carries a nonce (its answer is then its own: never
    /// reused for another request).
    pub fn has_nonce(&self) -> bool {
        self.nonce.is_some()
    }

    /// For a request about one certificate without a nonce (RFC 5019's
    /// profile): its CertID, DER — an identical request gets an identical
    /// answer, so a cache can keep answers under it.
    pub fn cache_key(&self) -> Option<Vec<u8>> {
        match (self.cert_ids.as_slice(), &self.nonce) {
            ([one], None) => one.to_der().ok(),
            _ => None,
        }
    }
}

/// What the registry says about one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertState {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked at this time, for this RFC 5280 reason code.
    Revoked {
        /// When.
        at: UnixTime,
        /// The reason code (0 = unspecified, then left out of the answer).
        reason: i64,
    },
    /// This CA never issued a certificate with this serial.
    Unknown,
}

impl CertState {
    /// A label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CertState::Good => "good",
            CertState::Revoked { .. } => "revoked",
            CertState::Unknown => "unknown",
        }
    }
}

/// The issuing CA as a CertID names it, under each hash algorithm a client
/// may use: SHA-1 (what OpenSSL, nginx and most clients send), SHA-256,
/// SHA-384, SHA-512.
#[derive(Debug, Clone)]
struct IssuerHashes(Vec<(ObjectIdentifier, Vec<u8>, Vec<u8>)>);

impl IssuerHashes {
    fn of(ca_der: &[u8]) -> Result<IssuerHashes, CaError> {
        use aws_lc_rs::digest;
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, cert) = X509Certificate::from_der(ca_der)
            .map_err(|e| CaError::BadCertificate(e.to_string()))?;
        // The name as the CA certificate encodes it, and the key's bits
        // without the BIT STRING's unused-bits octet (RFC 6960 §4.1.1).
        let name = cert.subject().as_raw();
        let key = &cert.public_key().subject_public_key.data;
        let algorithms: [(ObjectIdentifier, &'static digest::Algorithm); 4] = [
            (ID_SHA_1, &digest::SHA1_FOR_LEGACY_USE_ONLY),
            (ID_SHA_256, &digest::SHA256),
            (ID_SHA_384, &digest::SHA384),
            (ID_SHA_512, &digest::SHA512),
        ];
        Ok(IssuerHashes(
            algorithms
                .into_iter()
                .map(|(oid, alg)| {
                    (
                        oid,
                        digest::digest(alg, name).as_ref().to_vec(),
                        digest::digest(alg, key).as_ref().to_vec(),
                    )
                })
                .collect(),
        ))
    }

    /// Whether `id` names this CA.
    fn names(&self, id: &CertId) -> bool {
        self.0.iter().any(|(oid, name, key)| {
            *oid == id.hash_algorithm.oid
                && name.as_slice() == id.issuer_name_hash.as_bytes()
                && key.as_slice() == id.issuer_key_hash.as_bytes()
        })
    }
}

/// The validity of an answer: `thisUpdate` (and `producedAt`) and
/// `nextUpdate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerTimes {
    /// When the status was read from the registry.
    pub this_update: UnixTime,
    /// Until when a relying party may use the answer.
    pub next_update: UnixTime,
}

/// The delegated OCSP responder: a certificate the CA issued with EKU
/// OCSPSigning, its key, and the CA it answers for.
pub struct Responder {
    key: KeyPair,
    cert: Certificate,
    cert_der: CertificateDer<'static>,
    responder_id: ResponderId,
    signature_algorithm: AlgorithmIdentifierOwned,
    issuer: IssuerHashes,
    not_after: UnixTime,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn der_error(what: &str) -> impl Fn(der_ocsp::Error) -> CaError + '_ {
    move |e| CaError::BadCertificate(format!("{what}: {e}"))
}

/// The signature algorithm of the responder's key, as an answer names it.
fn signature_algorithm(key: &KeyPair) -> Result<AlgorithmIdentifierOwned, CaError> {
    let alg = key.algorithm();
    let (oid, null_parameters) = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        (ECDSA_WITH_SHA_256, false)
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        (ECDSA_WITH_SHA_384, false)
    } else if alg == &rcgen::PKCS_ED25519 {
        (ID_ED_25519, false)
    } else if alg == &rcgen::PKCS_RSA_SHA256 {
        (SHA_256_WITH_RSA_ENCRYPTION, true)
    } else {
        return Err(CaError::BadKey(
            "the OCSP responder key must be ECDSA P-256/P-384, Ed25519 or RSA".into(),
        ));
    };
    Ok(AlgorithmIdentifierOwned {
        oid,
        parameters: null_parameters.then(|| Null.into()),
    })
}

fn generalized(t: UnixTime) -> Result<OcspGeneralizedTime, CaError> {
    let secs = u64::try_from(t.secs()).unwrap_or(0);
    GeneralizedTime::from_unix_duration(Duration::from_secs(secs))
        .map(OcspGeneralizedTime)
        .map_err(der_error("a time"))
}

fn reason(code: i64) -> Option<CrlReason> {
    Some(match code {
        1 => CrlReason::KeyCompromise,
        2 => CrlReason::CaCompromise,
        3 => CrlReason::AffiliationChanged,
        4 => CrlReason::Superseded,
        5 => CrlReason::CessationOfOperation,
        6 => CrlReason::CertificateHold,
        9 => CrlReason::PrivilegeWithdrawn,
        10 => CrlReason::AaCompromise,
        // Unspecified (0) is left out, as RFC 5280 §5.3.1 asks of CRLs.
        _ => return None,
    })
}

impl Responder {
    /// The responder of `ca` with this certificate and key: refused unless
    /// the certificate is the CA's, valid at `now`, for OCSP signing, and
    /// the key is its own.
    pub fn new(
        ca: &Ca,
        cert_der: CertificateDer<'static>,
        key_pem: &str,
        now: SystemTime,
    ) -> Result<Responder, CaError> {
        if !ca.verifies(&cert_der, &[], now, Purpose::OcspSigning) {
            return Err(CaError::UnusableCa(
                "the OCSP responder certificate is not the CA's, not valid now, or not for OCSP signing"
                    .into(),
            ));
        }
        let key = KeyPair::from_pem(key_pem).map_err(|e| CaError::BadKey(e.to_string()))?;
        let cert =
            Certificate::from_der(&cert_der).map_err(der_error("the responder certificate"))?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(der_error("the responder key"))?;
        if rcgen::PublicKeyData::subject_public_key_info(&key) != spki {
            return Err(CaError::BadKey(
                "the OCSP responder key does not belong to its certificate".into(),
            ));
        }
        // ResponderID byKey: SHA-1 of the key's bits (RFC 6960 §4.2.1).
        let key_hash = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            cert.tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes(),
        );
        let responder_id = ResponderId::ByKey(
            OctetString::new(key_hash.as_ref()).map_err(der_error("the responder ID"))?,
        );
        let not_after = UnixTime::from(cert.tbs_certificate.validity.not_after.to_system_time());
        Ok(Responder {
            signature_algorithm: signature_algorithm(&key)?,
            key,
            cert,
            cert_der,
            responder_id,
            issuer: IssuerHashes::of(ca.cert_der())?,
            not_after,
        })
    }

    /// The responder certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// When the responder certificate expires.
    pub fn not_after(&self) -> UnixTime {
        self.not_after
    }

    /// The serials a request asks about, in its order, when every CertID
    /// names this CA; `None` when one names another issuer (or a hash
    /// algorithm not answered here): the answer is then `unauthorized`
    /// (RFC 5019 §2.2.3). A serial that cannot be one of ours (empty, too
    /// long) is `None` inside: its answer is `unknown`.
    pub fn serials(&self, query: &OcspQuery) -> Option<Vec<Option<SerialNumber>>> {
        query
            .cert_ids
            .iter()
            .map(|id| {
                self.issuer
                    .names(id)
                    .then(|| SerialNumber::from_octets(id.serial_number.as_bytes()).ok())
            })
            .collect()
    }

    /// The signed answer (a successful `OCSPResponse`, DER) giving
    /// `states[i]` for the request's i-th certificate, with the request's
    /// nonce echoed.
    pub fn respond(
        &self,
        query: &OcspQuery,
        states: &[CertState],
        times: AnswerTimes,
    ) -> Result<Vec<u8>, CaError> {
        if states.len() != query.cert_ids.len() {
            return Err(CaError::BadCertificate(
                "one status per requested certificate is needed".into(),
            ));
        }
        let this_update = generalized(times.this_update)?;
        let next_update = generalized(times.next_update)?;
        let responses = query
            .cert_ids
            .iter()
            .zip(states)
            .map(|(id, state)| {
                let cert_status = match *state {
                    CertState::Good => CertStatus::good(),
                    CertState::Unknown => CertStatus::unknown(),
                    CertState::Revoked { at, reason: code } => CertStatus::revoked(RevokedInfo {
                        revocation_time: generalized(at)?,
                        revocation_reason: reason(code),
                    }),
                };
                Ok(SingleResponse {
                    cert_id: id.clone(),
                    cert_status,
                    this_update,
                    next_update: Some(next_update),
                    single_extensions: None,
                })
            })
            .collect::<Result<Vec<_>, CaError>>()?;
        let tbs_response_data = ResponseData {
            version: Version::V1,
            responder_id: self.responder_id.clone(),
            produced_at: this_update,
            responses,
            response_extensions: self.nonce_extensions(query),
        };
        let tbs = tbs_response_data
            .to_der()
            .map_err(der_error("the response data"))?;
        let signature = self.key.sign(&tbs)?;
        let basic = BasicOcspResponse {
            tbs_response_data,
            signature_algorithm: self.signature_algorithm.clone(),
            signature: BitString::from_bytes(&signature).map_err(der_error("the signature"))?,
            certs: Some(vec![self.cert.clone()]),
        };
        OcspResponse::successful(basic)
            .and_then(|r| r.to_der())
            .map_err(der_error("the response"))
    }

    fn nonce_extensions(&self, query: &OcspQuery) -> Option<Vec<Extension>> {
        query.nonce.clone().map(|n| vec![n])
    }
}

/// An answer that is not a status (RFC 6960 §4.2.1): unsigned, by design.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspFailure {
    /// The request could not be read.
    MalformedRequest,
    /// The responder failed.
    InternalError,
    /// The responder cannot answer now.
    TryLater,
    /// The responder does not answer for this issuer.
    Unauthorized,
}

impl OcspFailure {
    /// The unsigned `OCSPResponse`, DER.
    pub fn to_der(self) -> Vec<u8> {
        let response = match self {
            OcspFailure::MalformedRequest => OcspResponse::malformed_request(),
            OcspFailure::InternalError => OcspResponse::internal_error(),
            OcspFailure::TryLater => OcspResponse::try_later(),
            OcspFailure::Unauthorized => OcspResponse::unauthorized(),
        };
        // Two fixed bytes of structure: encoding cannot fail.
        response.to_der().unwrap_or_default()
    }

    /// A label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            OcspFailure::MalformedRequest => "malformed",
            OcspFailure::InternalError => "internal_error",
            OcspFailure::TryLater => "try_later",
            OcspFailure::Unauthorized => "unauthorized",
        }
    }
}

/// An OCSP request for `serial` of a certificate issued by `issuer_der`,
/// with SHA-1 CertIDs as OpenSSL and nginx send them, and a nonce if given:
/// what a relying party sends (for tests and tools).
pub fn request_der(
    issuer_der: &[u8],
    serials: &[SerialNumber],
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, CaError> {
    let hashes = IssuerHashes::of(issuer_der)?;
    let (oid, name, key) = hashes
        .0
        .first()
        .cloned()
        .ok_or_else(|| CaError::BadCertificate("no hash algorithm".into()))?;
    let request_list = serials
        .iter()
        .map(|serial| {
            Ok(x509_ocsp::Request {
                req_cert: CertId {
                    hash_algorithm: AlgorithmIdentifierOwned {
                        oid,
                        parameters: Some(Null.into()),
                    },
                    issuer_name_hash: OctetString::new(name.clone())
                        .map_err(der_error("the name hash"))?,
                    issuer_key_hash: OctetString::new(key.clone())
                        .map_err(der_error("the key hash"))?,
                    serial_number: x509_cert_ocsp::serial_number::SerialNumber::new(
                        &serial.octets(),
                    )
                    .map_err(der_error("the serial"))?,
                },
                single_request_extensions: None,
            })
        })
        .collect::<Result<Vec<_>, CaError>>()?;
    let request_extensions = nonce
        .map(|n| {
            Ok::<_, CaError>(vec![Extension {
                extn_id: ID_PKIX_OCSP_NONCE,
                critical: false,
                extn_value: OctetString::new(
                    OctetString::new(n)
                        .and_then(|v| v.to_der())
                        .map_err(der_error("the nonce"))?,
                )
                .map_err(der_error("the nonce"))?,
            }])
        })
        .transpose()?;
    OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list,
            request_extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .map_err(der_error("the request"))
}

/// Why [`verify_answer`] refused an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("OCSP answer refused: {0}")]
pub struct AnswerRefused(pub String);

/// One certificate's status in an answer that [`verify_answer`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnsweredCert {
    /// The serial asked about.
    pub serial: SerialNumber,
    /// Its status.
    pub state: CertState,
    /// The answer's validity.
    pub times: AnswerTimes,
}

/// A verified answer's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAnswer {
    /// Each certificate's status, in the answer's order.
    pub certs: Vec<AnsweredCert>,
    /// The nonce echoed, if any (its content octets).
    pub nonce: Option<Vec<u8>>,
    /// producedAt.
    pub produced_at: UnixTime,
}

/// Checks an answer as a relying party would: a successful basic response,
/// signed by the key of a certificate it carries, which `ca` issued for
/// OCSP signing and which is valid at `now`. An unsigned failure status is
/// refused too, named.
pub fn verify_answer(
    ca: &Ca,
    der: &[u8],
    now: SystemTime,
) -> Result<VerifiedAnswer, AnswerRefused> {
    verify(ca, der, now).map_err(AnswerRefused)
}

fn verify(ca: &Ca, der: &[u8], now: SystemTime) -> Result<VerifiedAnswer, String> {
    let response = OcspResponse::from_der(der).map_err(|e| format!("not an OCSP response: {e}"))?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(format!("status {:?}", response.response_status));
    }
    let bytes = response
        .response_bytes
        .ok_or("a successful response without a body")?;
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())
        .map_err(|e| format!("not a basic response: {e}"))?;
    let signer = basic
        .certs
        .as_ref()
        .and_then(|c| c.first())
        .ok_or("no responder certificate in the answer")?;
    let signer_der = signer.to_der().map_err(|e| e.to_string())?;
    if !ca.verifies(
        &CertificateDer::from(signer_der.clone()),
        &[],
        now,
        Purpose::OcspSigning,
    ) {
        return Err("the responder certificate is not the CA's OCSP signer".into());
    }
    let tbs = basic
        .tbs_response_data
        .to_der()
        .map_err(|e| e.to_string())?;
    let signature = basic
        .signature
        .as_bytes()
        .ok_or("the signature has unused bits")?;
    if !crate::crl::verify_signed_by(&signer_der, &tbs, signature) {
        return Err("the signature does not verify".into());
    }
    let time =
        |t: &OcspGeneralizedTime| UnixTime::from(SystemTime::UNIX_EPOCH + t.0.to_unix_duration());
    let certs = basic
        .tbs_response_data
        .responses
        .iter()
        .map(|r| {
            let state = match &r.cert_status {
                CertStatus::Good(_) => CertState::Good,
                CertStatus::Unknown(_) => CertState::Unknown,
                CertStatus::Revoked(info) => CertState::Revoked {
                    at: time(&info.revocation_time),
                    reason: info.revocation_reason.map_or(0, |r| r as i64),
                },
            };
            Ok(AnsweredCert {
                serial: SerialNumber::from_octets(r.cert_id.serial_number.as_bytes())
                    .map_err(|e| format!("serial: {e}"))?,
                state,
                times: AnswerTimes {
                    this_update: time(&r.this_update),
                    next_update: r.next_update.as_ref().map(time).ok_or("no nextUpdate")?,
                },
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let nonce = basic
        .tbs_response_data
        .nonce()
        .map(|n| n.0.as_bytes().to_vec());
    Ok(VerifiedAnswer {
        certs,
        nonce,
        produced_at: time(&basic.tbs_response_data.produced_at),
    })
}
