//! Every vector of `idprov-vectors.json` (a copy of `../shared/idprov-vectors.json`)
//! must pass byte for byte: canonical bytes, both key variants, and the
//! Go ≥ 1.22 form where one is given.

use idprov_proto::canonical::EscapeStyle;
use idprov_proto::messages::{ProvisionRequest, ProvisionResponse, ProvisionStatus};
use idprov_proto::sign::{KeyVariant, sign_bytes, verify_bytes};
use serde_json::Value;

const VECTORS: &str = include_str!("../data/idprov-vectors.json");

fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("vector field {name} is a string"))
}

fn vectors() -> Vec<Value> {
    let doc: Value = serde_json::from_str(VECTORS).expect("vectors file is JSON");
    doc["vectors"].as_array().expect("vectors array").clone()
}

fn request_of(fields: &Value) -> ProvisionRequest {
    ProvisionRequest {
        device_id: field(fields, "deviceID").into(),
        ip: field(fields, "ip").into(),
        mac: field(fields, "mac").into(),
        public_key_pem: field(fields, "publicKeyPEM").into(),
        signature: field(fields, "signature").into(),
    }
}

fn response_of(fields: &Value) -> ProvisionResponse {
    ProvisionResponse {
        retry_sec: fields["retrySec"].as_i64().unwrap_or(0),
        status: ProvisionStatus::parse(field(fields, "status")).expect("status"),
        ca_cert: field(fields, "caCert").into(),
        client_cert: field(fields, "clientCert").into(),
        signature: field(fields, "signature").into(),
    }
}

#[test]
fn every_vector_passes_byte_for_byte() {
    let all = vectors();
    assert!(all.len() >= 11, "the vectors file lost entries");
    for v in all {
        let name = field(&v, "name");
        let secret = field(&v, "secret").as_bytes();
        let message = field(&v, "message");
        let signature = field(&v, "signature");
        match field(&v, "kind") {
            "raw" => {
                assert_eq!(
                    sign_bytes(secret, KeyVariant::RawSecret, message.as_bytes()),
                    signature,
                    "{name}"
                );
            }
            "request" => {
                let mut req = request_of(&v["fields"]);
                assert_eq!(
                    String::from_utf8(req.signing_bytes(EscapeStyle::Go119)).expect("utf8"),
                    message,
                    "{name}: canonical bytes"
                );
                check_variants(&v, secret, message);
                req.sign(secret);
                assert_eq!(req.signature, signature, "{name}: sign()");
                let verified = req.verify(secret).expect("verifies");
                assert_eq!(verified.variant, KeyVariant::RawSecret, "{name}");
                assert_eq!(verified.style, EscapeStyle::Go119, "{name}");
                // The request as a Go client sends it parses back to the same fields.
                let back = ProvisionRequest::from_json(&req.to_json()).expect("round trip");
                assert_eq!(back, req, "{name}: round trip");
                // The SHA-256 variant verifies too.
                req.signature = field(&v, "signature_if_key_were_sha256_of_secret").into();
                assert!(req.verify(secret).is_some(), "{name}: sha256 variant");
                req.signature = signature.into();
                assert!(req.verify(b"wrong").is_none(), "{name}: wrong secret");
                if let Some(go122) = v.get("message_go122") {
                    let go122 = go122.as_str().expect("message_go122");
                    assert_eq!(
                        String::from_utf8(req.signing_bytes(EscapeStyle::Go122)).expect("utf8"),
                        go122,
                        "{name}: Go 1.22 bytes"
                    );
                    let sig122 = field(&v, "signature_go122");
                    assert_eq!(
                        sign_bytes(secret, KeyVariant::RawSecret, go122.as_bytes()),
                        sig122
                    );
                    req.signature = sig122.into();
                    let verified = req.verify(secret).expect("Go 1.22 form verifies");
                    assert_eq!(verified.style, EscapeStyle::Go122, "{name}");
                }
            }
            "response" => {
                let mut resp = response_of(&v["fields"]);
                assert_eq!(
                    String::from_utf8(resp.signing_bytes(EscapeStyle::Go119)).expect("utf8"),
                    message,
                    "{name}: canonical bytes"
                );
                check_variants(&v, secret, message);
                resp.sign(secret, KeyVariant::RawSecret);
                assert_eq!(resp.signature, signature, "{name}: sign()");
                assert!(resp.verify(secret).is_some(), "{name}");
                resp.sign(secret, KeyVariant::Sha256OfSecret);
                assert_eq!(
                    resp.signature,
                    field(&v, "signature_if_key_were_sha256_of_secret"),
                    "{name}: sha256 sign()"
                );
                let back = ProvisionResponse::from_json(&resp.to_json()).expect("round trip");
                assert_eq!(back, resp, "{name}: round trip");
            }
            other => panic!("unknown vector kind {other}"),
        }
    }
}

fn check_variants(v: &Value, secret: &[u8], message: &str) {
    let name = field(v, "name");
    assert!(
        verify_bytes(
            secret,
            KeyVariant::RawSecret,
            message.as_bytes(),
            field(v, "signature")
        ),
        "{name}: raw"
    );
    assert_eq!(
        sign_bytes(secret, KeyVariant::Sha256OfSecret, message.as_bytes()),
        field(v, "signature_if_key_were_sha256_of_secret"),
        "{name}: sha256 variant"
    );
}
