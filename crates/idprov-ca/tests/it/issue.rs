//! Certificates as PROTOCOL.md §7 describes them, checked field by field with
//! an independent parser (x509-parser) and, where installed, `openssl verify`.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use idprov_ca::{Ca, CaError, IssueParams, KeyAlgorithm, PublicKey, Usage};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

const DAY: Duration = Duration::from_secs(86_400);

fn new_ca() -> idprov_ca::GeneratedCa {
    Ca::generate(
        "Test Org",
        KeyAlgorithm::EcdsaP256,
        SystemTime::now(),
        3650 * DAY,
    )
    .expect("generate CA")
}

fn device_params(now: SystemTime) -> IssueParams<'static> {
    IssueParams {
        common_name: "device-1",
        organizational_unit: "iotdevice",
        organization: "Test Org",
        usage: Usage::Client,
        now,
        validity: 30 * DAY,
        crl_url: Some("https://hub.local:43776/idprov/crl"),
        ocsp_url: None,
    }
}

#[test]
fn generated_ca_has_the_documented_profile() {
    let g = new_ca();
    let der = g.ca.cert_der().to_vec();
    let (_, cert) = X509Certificate::from_der(&der).expect("parse");
    assert!(cert.is_ca());
    let bc = cert
        .basic_constraints()
        .expect("bc")
        .expect("present")
        .value;
    assert_eq!(bc.path_len_constraint, Some(0));
    let ku = cert.key_usage().expect("ku").expect("present").value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    assert!(!ku.digital_signature());
    assert!(
        cert.extended_key_usage().expect("eku").is_none(),
        "a CA has no EKU"
    );
    let years = (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp())
        / 86_400
        / 365;
    assert_eq!(years, 10);
    assert!(
        g.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
        "PKCS#8"
    );
    // Loading the files back gives the same CA.
    let again = Ca::load(&g.cert_pem, &g.key_pem, None, SystemTime::now()).expect("load");
    assert_eq!(again.fingerprint(), g.ca.fingerprint());
}

#[test]
fn device_certificate_profile() {
    let g = new_ca();
    let now = SystemTime::now();
    let device_key = KeyAlgorithm::EcdsaP256.generate().expect("key");
    let public = PublicKey::from_pem(&device_key.public_key_pem()).expect("public");
    let issued = g.ca.issue(&public, &device_params(now)).expect("issue");
    let (_, cert) = X509Certificate::from_der(&issued.der).expect("parse");

    let subject = cert.subject();
    let cn: Vec<_> = subject
        .iter_common_name()
        .map(|a| a.as_str().expect("cn"))
        .collect();
    let ou: Vec<_> = subject
        .iter_organizational_unit()
        .map(|a| a.as_str().expect("ou"))
        .collect();
    let o: Vec<_> = subject
        .iter_organization()
        .map(|a| a.as_str().expect("o"))
        .collect();
    assert_eq!(
        (cn, ou, o),
        (vec!["device-1"], vec!["iotdevice"], vec!["Test Org"])
    );

    let eku = cert
        .extended_key_usage()
        .expect("eku")
        .expect("present")
        .value;
    assert!(eku.client_auth && !eku.server_auth);
    let ku = cert.key_usage().expect("ku").expect("present").value;
    assert!(ku.digital_signature() && !ku.key_encipherment() && !ku.key_cert_sign());
    let bc = cert
        .basic_constraints()
        .expect("bc")
        .expect("present")
        .value;
    assert!(!bc.ca);
    let mut has_ski = false;
    let mut has_aki = false;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(_) => has_ski = true,
            ParsedExtension::AuthorityKeyIdentifier(_) => has_aki = true,
            _ => {}
        }
    }
    assert!(has_ski && has_aki, "SKI and AKI present");
    assert_eq!(
        crl_uris(&cert),
        vec!["https://hub.local:43776/idprov/crl".to_string()]
    );

    // Backdated by one minute, valid for 30 days from now.
    let now_unix = idprov_proto::UnixTime::from(now);
    assert_eq!(issued.not_before, now_unix.plus_secs(-60));
    assert_eq!(issued.not_after, now_unix.plus_secs(30 * 86_400));
    assert_eq!(
        cert.validity().not_before.timestamp(),
        issued.not_before.secs()
    );
    assert_eq!(
        idprov_proto::SerialNumber::from_octets(cert.raw_serial()).expect("serial"),
        issued.serial
    );
    // The serial is at least 64 bits and positive.
    assert!(cert.raw_serial().len() >= 8);
    assert!(cert.raw_serial()[0] & 0x80 == 0);
    assert_eq!(cert.public_key().raw, public.spki_der());
}

#[test]
fn serials_are_random_even_for_the_same_key() {
    let g = new_ca();
    let key = KeyAlgorithm::EcdsaP256.generate().expect("key");
    let public = PublicKey::from_pem(&key.public_key_pem()).expect("public");
    let serials: HashSet<idprov_proto::SerialNumber> = (0..20)
        .map(|_| {
            g.ca.issue(&public, &device_params(SystemTime::now()))
                .expect("issue")
                .serial
        })
        .collect();
    assert_eq!(serials.len(), 20);
}

#[test]
fn rsa_device_keys_get_key_encipherment() {
    let g = new_ca();
    let key = KeyAlgorithm::Rsa2048.generate().expect("rsa");
    let public = PublicKey::from_pem(&key.public_key_pem()).expect("public");
    let issued =
        g.ca.issue(&public, &device_params(SystemTime::now()))
            .expect("issue");
    let (_, cert) = X509Certificate::from_der(&issued.der).expect("parse");
    let ku = cert.key_usage().expect("ku").expect("present").value;
    assert!(ku.digital_signature() && ku.key_encipherment());
}

#[test]
fn validity_never_outlives_the_ca() {
    let now = SystemTime::now();
    let g = Ca::generate("O", KeyAlgorithm::EcdsaP256, now, 10 * DAY).expect("ca");
    let key = KeyAlgorithm::Ed25519.generate().expect("key");
    let public = PublicKey::from_pem(&key.public_key_pem()).expect("public");
    let issued = g.ca.issue(&public, &device_params(now)).expect("issue");
    assert_eq!(issued.not_after, g.ca.info().not_after);
}

#[test]
fn an_intermediate_with_its_chain_issues_and_reports_its_chain() {
    let now = SystemTime::now();
    // An operator's own PKI: a root without a path-length limit and an
    // intermediate below it, both made with rcgen directly.
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyUsagePurpose};
    let ca_params = |cn: &str, constraint| {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(constraint);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        p.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(365);
        p
    };
    let root_key = KeyAlgorithm::EcdsaP256.generate().expect("key");
    let root_params = ca_params("Root", BasicConstraints::Unconstrained);
    let root_pem = root_params.self_signed(&root_key).expect("root").pem();
    let root_issuer = Issuer::new(root_params, root_key);
    let inter_key = KeyAlgorithm::EcdsaP256.generate().expect("key");
    let mut inter_params = ca_params("Intermediate", BasicConstraints::Constrained(0));
    inter_params.use_authority_key_identifier_extension = true;
    let inter_cert = inter_params
        .signed_by(&inter_key, &root_issuer)
        .expect("sign")
        .pem();
    let inter_key = inter_key.serialize_pem();
    let root = new_ca();
    let ca = Ca::load(&inter_cert, &inter_key, Some(&root_pem), now).expect("load");
    assert_eq!(ca.chain_der().len(), 2);
    assert!(ca.chain_pem().ends_with(&root_pem));
    assert_eq!(
        ca.intermediates_pem(),
        idprov_ca::pem::certificate_pem(ca.cert_der())
    );
    assert_eq!(
        root.ca.intermediates_pem(),
        "",
        "a root has no intermediates"
    );
    let key = KeyAlgorithm::EcdsaP256.generate().expect("key");
    let public = PublicKey::from_pem(&key.public_key_pem()).expect("public");
    let issued = ca.issue(&public, &device_params(now)).expect("issue");
    openssl_verify(&root_pem, Some(&inter_cert), &issued.pem);
}

#[test]
fn unusable_cas_are_refused_with_a_reason() {
    let now = SystemTime::now();
    let a = new_ca();
    let b = new_ca();
    let err = Ca::load(&a.cert_pem, &b.key_pem, None, now).unwrap_err();
    assert!(
        matches!(err, CaError::UnusableCa(ref m) if m.contains("does not belong")),
        "{err}"
    );
    // A leaf is not a CA.
    let key = KeyAlgorithm::EcdsaP256.generate().expect("key");
    let public = PublicKey::from_pem(&key.public_key_pem()).expect("public");
    let leaf = a.ca.issue(&public, &device_params(now)).expect("issue");
    let err = Ca::load(&leaf.pem, &key.serialize_pem(), None, now).unwrap_err();
    assert!(
        matches!(err, CaError::UnusableCa(ref m) if m.contains("not a CA")),
        "{err}"
    );
    // Expired.
    let err = Ca::load(&a.cert_pem, &a.key_pem, None, now + 3651 * DAY).unwrap_err();
    assert!(
        matches!(err, CaError::UnusableCa(ref m) if m.contains("expired")),
        "{err}"
    );
    // Garbage.
    assert!(matches!(
        Ca::load("junk", &a.key_pem, None, now),
        Err(CaError::BadPem(_))
    ));
    assert!(matches!(
        Ca::load(&a.cert_pem, "junk", None, now),
        Err(CaError::BadKey(_))
    ));
}

#[test]
fn server_certificates_verify_with_openssl() {
    let g = new_ca();
    let (issued, _key) =
        g.ca.issue_with_new_key(
            KeyAlgorithm::EcdsaP256,
            IssueParams {
                common_name: "hub",
                organizational_unit: "service",
                organization: "Test Org",
                usage: Usage::Server {
                    dns_names: vec!["localhost".into(), "hub.local".into()],
                    ip_addresses: vec![
                        "127.0.0.1".parse().expect("ip"),
                        "::1".parse().expect("ip"),
                    ],
                },
                now: SystemTime::now(),
                validity: 90 * DAY,
                crl_url: None,
                ocsp_url: None,
            },
        )
        .expect("issue");
    let info = idprov_ca::CertInfo::from_der(&issued.der).expect("inspect");
    assert_eq!(info.dns_names, vec!["localhost", "hub.local"]);
    assert_eq!(info.ip_addresses.len(), 2);
    assert!(info.eku_server_auth && !info.eku_client_auth);
    openssl_verify(&g.cert_pem, None, &issued.pem);
}

/// Runs `openssl verify` when openssl is installed (it is on Debian); an
/// independent check that the chain is valid.
fn openssl_verify(root_pem: &str, intermediate_pem: Option<&str>, leaf_pem: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root.pem");
    let leaf = dir.path().join("leaf.pem");
    std::fs::write(&root, root_pem).expect("write");
    std::fs::write(&leaf, leaf_pem).expect("write");
    let mut cmd = std::process::Command::new("openssl");
    cmd.arg("verify").arg("-CAfile").arg(&root);
    if let Some(pem) = intermediate_pem {
        let inter = dir.path().join("inter.pem");
        std::fs::write(&inter, pem).expect("write");
        cmd.arg("-untrusted").arg(&inter);
    }
    cmd.arg(&leaf);
    match cmd.output() {
        Ok(out) => assert!(
            out.status.success(),
            "openssl verify failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("openssl not installed; skipping the openssl cross-check")
        }
        Err(e) => panic!("running openssl: {e}"),
    }
}

/// The URIs of a certificate's CRL distribution points.
pub(crate) fn crl_uris(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut crl = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
            for p in points.iter() {
                if let Some(x509_parser::extensions::DistributionPointName::FullName(names)) =
                    &p.distribution_point
                {
                    for n in names {
                        if let GeneralName::URI(u) = n {
                            crl.push((*u).to_owned());
                        }
                    }
                }
            }
        }
    }
    crl
}
