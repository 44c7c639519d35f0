//! OCSP: the certificate extensions relying parties follow (authority
//! information access, the responder's ocsp-nocheck), and the responder's
//! reading of requests and signing of answers, checked with an independent
//! parser (x509-parser) and the answer verified as a relying party would.

use std::time::{Duration, SystemTime};

use der_ocsp::Encode;
use idprov_ca::ocsp::{
    AnswerTimes, CertState, MAX_CERTS_PER_REQUEST, OcspFailure, OcspQuery, Responder, request_der,
    verify_answer,
};
use idprov_ca::{Ca, IssueParams, IssuedCert, KeyAlgorithm, Usage};
use idprov_proto::{SerialNumber, UnixTime};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

const DAY: Duration = Duration::from_secs(86_400);

fn params(usage: Usage, ocsp_url: Option<&str>) -> IssueParams<'_> {
    IssueParams {
        common_name: "device-1",
        organizational_unit: "iotdevice",
        organization: "Test Org",
        usage,
        now: SystemTime::now(),
        validity: 30 * DAY,
        crl_url: Some("http://hub.local:8080/idprov/crl"),
        ocsp_url,
    }
}

fn ca() -> Ca {
    Ca::generate(
        "Test Org",
        KeyAlgorithm::EcdsaP256,
        SystemTime::now(),
        3650 * DAY,
    )
    .expect("CA")
    .ca
}

/// A responder of `ca`: its certificate and key.
fn responder(ca: &Ca) -> (Responder, IssuedCert) {
    let (issued, key) = ca
        .issue_with_new_key(
            KeyAlgorithm::EcdsaP256,
            IssueParams {
                common_name: "OCSP responder",
                organizational_unit: "service",
                ..params(Usage::OcspSigning, None)
            },
        )
        .expect("responder certificate");
    let r = Responder::new(ca, issued.der.clone(), &key, SystemTime::now()).expect("responder");
    (r, issued)
}

fn device(ca: &Ca) -> IssuedCert {
    ca.issue_with_new_key(
        KeyAlgorithm::EcdsaP256,
        params(Usage::Client, Some("http://hub.local:8080/idprov/ocsp")),
    )
    .expect("device")
    .0
}

fn times() -> AnswerTimes {
    let now = UnixTime::from(SystemTime::now());
    AnswerTimes {
        this_update: now,
        next_update: now.plus_secs(3600),
    }
}

#[test]
fn device_certificates_name_the_ocsp_responder_and_the_crl() {
    let ca = ca();
    let cert = device(&ca);
    let (_, x) = X509Certificate::from_der(&cert.der).expect("parse");
    let mut ocsp = Vec::new();
    for ext in x.extensions() {
        if let ParsedExtension::AuthorityInfoAccess(aia) = ext.parsed_extension() {
            assert!(!ext.critical);
            for d in &aia.accessdescs {
                assert_eq!(d.access_method.to_id_string(), "1.3.6.1.5.5.7.48.1");
                if let GeneralName::URI(u) = d.access_location {
                    ocsp.push(u.to_owned());
                }
            }
        }
    }
    let crl = crate::issue::crl_uris(&x);
    assert_eq!(ocsp, ["http://hub.local:8080/idprov/ocsp"]);
    assert_eq!(crl, ["http://hub.local:8080/idprov/crl"]);
    // Without a responder URL, no authority information access at all.
    let (plain, _) = ca
        .issue_with_new_key(KeyAlgorithm::EcdsaP256, params(Usage::Client, None))
        .expect("issue");
    let (_, x) = X509Certificate::from_der(&plain.der).expect("parse");
    assert!(!x.extensions().iter().any(|e| matches!(
        e.parsed_extension(),
        ParsedExtension::AuthorityInfoAccess(_)
    )));
}

#[test]
fn the_responder_certificate_is_for_ocsp_signing_only_and_not_checked() {
    let ca = ca();
    let (_, issued) = responder(&ca);
    let (_, x) = X509Certificate::from_der(&issued.der).expect("parse");
    let eku = x.extended_key_usage().expect("eku").expect("present").value;
    assert!(eku.ocsp_signing);
    assert!(!eku.client_auth && !eku.server_auth && !eku.any);
    let ku = x.key_usage().expect("ku").expect("present").value;
    assert!(ku.digital_signature());
    assert!(!x.is_ca());
    let nocheck = x
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.48.1.5")
        .expect("id-pkix-ocsp-nocheck");
    assert_eq!(nocheck.value, [0x05, 0x00], "its value is NULL");
    assert!(!nocheck.critical);
}

#[test]
fn a_responder_is_only_made_of_the_cas_ocsp_certificate_and_its_own_key() {
    let ca = ca();
    let (_, issued) = responder(&ca);
    let other_key = KeyAlgorithm::EcdsaP256
        .generate()
        .expect("key")
        .serialize_pem();
    assert!(Responder::new(&ca, issued.der.clone(), &other_key, SystemTime::now()).is_err());
    // A client certificate is not a responder.
    let (client, key) = ca
        .issue_with_new_key(KeyAlgorithm::EcdsaP256, params(Usage::Client, None))
        .expect("issue");
    assert!(Responder::new(&ca, client.der, &key, SystemTime::now()).is_err());
    // Another CA's responder does not answer for this one.
    let other = self::ca();
    let (_, theirs) = responder(&other);
    assert!(Responder::new(&ca, theirs.der, &other_key, SystemTime::now()).is_err());
    // Nor one that expired.
    let (r, key) = ca
        .issue_with_new_key(
            KeyAlgorithm::EcdsaP256,
            IssueParams {
                now: SystemTime::now() - 10 * DAY,
                validity: DAY,
                ..params(Usage::OcspSigning, None)
            },
        )
        .expect("issue");
    assert!(Responder::new(&ca, r.der, &key, SystemTime::now()).is_err());
}

#[test]
fn answers_say_good_revoked_or_unknown_and_verify() {
    let ca = ca();
    let (r, responder_cert) = responder(&ca);
    let dev = device(&ca);
    let request =
        request_der(ca.cert_der(), std::slice::from_ref(&dev.serial), None).expect("request");
    let query = OcspQuery::from_der(&request).expect("parse");
    assert_eq!(query.len(), 1);
    assert!(!query.has_nonce());
    assert!(query.cache_key().is_some(), "one certificate, no nonce");
    assert_eq!(r.serials(&query), Some(vec![Some(dev.serial.clone())]));

    let t = times();
    let revoked_at = t.this_update.plus_secs(-30);
    for state in [
        CertState::Good,
        CertState::Revoked {
            at: revoked_at,
            reason: 1,
        },
        CertState::Revoked {
            at: revoked_at,
            reason: 0,
        },
        CertState::Unknown,
    ] {
        let der = r.respond(&query, &[state], t).expect("signed");
        let answer = verify_answer(&ca, &der, SystemTime::now()).expect("verifies");
        assert_eq!(answer.certs.len(), 1);
        assert_eq!(answer.certs[0].serial, dev.serial);
        assert_eq!(answer.certs[0].state, state);
        assert_eq!(answer.certs[0].times, t);
        assert_eq!(answer.produced_at, t.this_update);
        assert_eq!(answer.nonce, None);
    }
    // The answer carries the responder's certificate for relying parties.
    let der = r.respond(&query, &[CertState::Good], t).expect("signed");
    assert!(
        der.windows(responder_cert.der.len())
            .any(|w| w == responder_cert.der.as_ref())
    );
    // Another CA does not accept it.
    assert!(verify_answer(&self::ca(), &der, SystemTime::now()).is_err());
    // A flipped bit of the signed data does not verify.
    let mut tampered = der.clone();
    let at = tampered
        .windows(dev.serial.octets().len())
        .position(|w| w == dev.serial.octets().as_slice())
        .expect("serial inside");
    tampered[at] ^= 1;
    assert!(verify_answer(&ca, &tampered, SystemTime::now()).is_err());
}

#[test]
fn a_nonce_is_echoed_and_several_certificates_are_answered_in_order() {
    let ca = ca();
    let (r, _) = responder(&ca);
    let a = device(&ca);
    let b = device(&ca);
    let nonce = b"0123456789abcdef";
    let request = request_der(
        ca.cert_der(),
        &[a.serial.clone(), b.serial.clone()],
        Some(nonce),
    )
    .expect("request");
    let query = OcspQuery::from_der(&request).expect("parse");
    assert!(query.has_nonce());
    assert_eq!(query.cache_key(), None, "an answer with a nonce is its own");
    let states = [
        CertState::Good,
        CertState::Revoked {
            at: times().this_update,
            reason: 4,
        },
    ];
    let der = r.respond(&query, &states, times()).expect("signed");
    let answer = verify_answer(&ca, &der, SystemTime::now()).expect("verifies");
    assert_eq!(answer.nonce.as_deref(), Some(&nonce[..]));
    assert_eq!(
        answer
            .certs
            .iter()
            .map(|c| (c.serial.clone(), c.state))
            .collect::<Vec<_>>(),
        vec![(a.serial, states[0]), (b.serial, states[1])]
    );
    assert!(
        r.respond(&query, &states[..1], times()).is_err(),
        "one state per certificate"
    );
}

#[test]
fn certificates_of_another_issuer_are_not_answered() {
    let ca = ca();
    let (r, _) = responder(&ca);
    let other = self::ca();
    let theirs = device(&other);
    let request = request_der(other.cert_der(), &[theirs.serial], None).expect("request");
    assert_eq!(
        r.serials(&OcspQuery::from_der(&request).expect("parse")),
        None
    );
    // One foreign certificate among ours: the whole request is refused.
    let ours = device(&ca);
    let mixed_ours =
        request_der(ca.cert_der(), std::slice::from_ref(&ours.serial), None).expect("request");
    let mut query = x509_ocsp_request(&mixed_ours);
    let foreign = x509_ocsp_request(&request);
    query
        .tbs_request
        .request_list
        .push(foreign.tbs_request.request_list[0].clone());
    let mixed = query.to_der().expect("encode");
    assert_eq!(
        r.serials(&OcspQuery::from_der(&mixed).expect("parse")),
        None
    );
    // The unsigned failure answer says so.
    let der = OcspFailure::Unauthorized.to_der();
    let response = <x509_ocsp::OcspResponse as der_ocsp::Decode>::from_der(&der).expect("parse");
    assert_eq!(
        response.response_status,
        x509_ocsp::OcspResponseStatus::Unauthorized
    );
    assert!(response.response_bytes.is_none());
}

fn x509_ocsp_request(der: &[u8]) -> x509_ocsp::OcspRequest {
    <x509_ocsp::OcspRequest as der_ocsp::Decode>::from_der(der).expect("request")
}

#[test]
fn malformed_requests_are_refused_with_the_reason() {
    let ca = ca();
    let serial = SerialNumber::parse("0102").expect("serial");
    let good = request_der(ca.cert_der(), std::slice::from_ref(&serial), None).expect("request");
    let mut trailing = good.clone();
    trailing.push(0);
    let many = request_der(
        ca.cert_der(),
        &vec![serial.clone(); MAX_CERTS_PER_REQUEST + 1],
        None,
    )
    .expect("request");
    let long_nonce = request_der(
        ca.cert_der(),
        std::slice::from_ref(&serial),
        Some(&[7u8; 33]),
    )
    .expect("request");
    let mut empty = x509_ocsp_request(&good);
    empty.tbs_request.request_list.clear();
    let mut critical = x509_ocsp_request(&good);
    critical.tbs_request.request_extensions = Some(vec![x509_cert_ocsp::ext::Extension {
        extn_id: const_oid_ocsp::ObjectIdentifier::new_unwrap("1.2.3.4"),
        critical: true,
        extn_value: der_ocsp::asn1::OctetString::new(vec![5, 0]).expect("octets"),
    }]);
    for (name, der, says) in [
        ("garbage", b"not DER at all".to_vec(), ""),
        ("trailing bytes", trailing, ""),
        (
            "no certificate",
            empty.to_der().expect("encode"),
            "names no certificate",
        ),
        ("too many", many, "at most 16"),
        ("long nonce", long_nonce, "33 octets"),
        (
            "unknown critical extension",
            critical.to_der().expect("encode"),
            "critical extension 1.2.3.4",
        ),
    ] {
        let err = OcspQuery::from_der(&der).expect_err(name).to_string();
        assert!(err.starts_with("malformed OCSP request"), "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
    }
    assert!(OcspQuery::from_der(&good).is_ok());
    // A serial no certificate of ours can have is answered, as unknown.
    let (r, _) = responder(&ca);
    let zero = request_der(
        ca.cert_der(),
        &[SerialNumber::parse("00").expect("serial")],
        None,
    )
    .expect("request");
    assert_eq!(
        r.serials(&OcspQuery::from_der(&zero).expect("parse")),
        Some(vec![Some(SerialNumber::parse("00").expect("serial"))])
    );
    // The unsigned failure answers are well-formed OCSP responses.
    for f in [
        OcspFailure::MalformedRequest,
        OcspFailure::InternalError,
        OcspFailure::TryLater,
        OcspFailure::Unauthorized,
    ] {
        let der = f.to_der();
        assert!(
            <x509_ocsp::OcspResponse as der_ocsp::Decode>::from_der(&der).is_ok(),
            "{f:?}"
        );
        assert!(verify_answer(&ca, &der, SystemTime::now()).is_err());
    }
}
