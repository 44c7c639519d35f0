//! Public-key and certificate parsing on arbitrary bytes.
//!
//! Checks: no panic in `PublicKey::from_pem`, `PublicKey::from_spki_der`,
//! `pem::parse_certificates` or `CertInfo::from_der`; an accepted key's
//! `to_pem()` parses back to an equal key with the same fingerprint; the
//! input wrapped as a PUBLIC KEY PEM block gives the same result as the DER
//! parser; the input wrapped as a CERTIFICATE block comes back unchanged.
#![no_main]

use idprov_ca::{CertInfo, PublicKey};
use libfuzzer_sys::fuzz_target;

fn round_trip(key: &PublicKey) {
    let pem = key.to_pem();
    let back = PublicKey::from_pem(&pem).expect("to_pem output must parse");
    assert_eq!(&back, key, "public key round trip");
    assert_eq!(back.fingerprint(), key.fingerprint());
    assert_eq!(back.key_type(), key.key_type());
    assert_eq!(PublicKey::from_spki_der(key.spki_der()).as_ref(), Ok(key));
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(key) = PublicKey::from_pem(&text) {
        round_trip(&key);
    }

    let der_result = PublicKey::from_spki_der(data);
    if let Ok(key) = &der_result {
        round_trip(key);
        assert_eq!(key.spki_der(), data);
    }
    // The same DER inside a PEM block must be judged the same way.
    let wrapped = idprov_ca::pem::encode("PUBLIC KEY", data);
    match (PublicKey::from_pem(&wrapped), &der_result) {
        (Ok(a), Ok(b)) => assert_eq!(&a, b),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("PEM and DER parsers disagree: {a:?} vs {b:?}"),
    }

    if let Ok(certs) = idprov_ca::pem::parse_certificates(&text) {
        assert!(!certs.is_empty());
        for cert in &certs {
            let _ = CertInfo::from_der(cert.as_ref());
        }
    }

    if let Ok(info) = CertInfo::from_der(data) {
        let _ = info.common_name();
        let _ = info.allows_client_auth();
        let _ = info.is_valid_at(0);
        assert_eq!(info.fingerprint, idprov_proto::Fingerprint::of_der(data));
        // The SPKI inside a parsed certificate goes through the key parser too.
        if let Ok(key) = PublicKey::from_spki_der(&info.spki_der) {
            round_trip(&key);
        }
    }

    let certs = idprov_ca::pem::parse_certificates(&idprov_ca::pem::certificate_pem(data))
        .expect("a CERTIFICATE block of any bytes must decode");
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].as_ref(), data);
});
