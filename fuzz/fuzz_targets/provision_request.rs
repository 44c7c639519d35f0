//! The strict message parsers on arbitrary bytes.
//!
//! Checks: no parser panics; what parses re-encodes (Go form) to bytes that
//! parse back to an equal message (request, response, OOB secret, directory,
//! status); `Directory::ca_pem` never panics and, when it returns PEM, that
//! PEM starts with a BEGIN line.
#![no_main]

use idprov_proto::{
    Directory, OobSecretMessage, ProvisionRequest, ProvisionResponse, StatusMessage,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = ProvisionRequest::from_json(data) {
        let json = req.to_json();
        let back = ProvisionRequest::from_json(&json).expect("to_json output must parse");
        assert_eq!(back, req, "request round trip");
        // The signed form differs only in the signature.
        let signing = ProvisionRequest::from_json(&req.signing_bytes(idprov_proto::EscapeStyle::Go119))
            .expect("signing bytes must parse");
        assert_eq!(signing.signature, "");
        assert_eq!(signing.device_id, req.device_id);
    }

    if let Ok(resp) = ProvisionResponse::from_json(data) {
        let back = ProvisionResponse::from_json(&resp.to_json()).expect("response must parse");
        assert_eq!(back, resp, "response round trip");
    }

    if let Ok(status) = StatusMessage::from_json(data) {
        let back = StatusMessage::from_json(&status.to_json()).expect("status must parse");
        // Known, documented asymmetry (see REPORT.md, note N1): a clientCert
        // that base64-decodes to "" (e.g. " ") parses as Some(""), which
        // to_json writes as "" and which then reads back as None.
        let mut want = status.clone();
        if want.client_cert.as_deref() == Some("") {
            want.client_cert = None;
        }
        assert_eq!(back, want, "status round trip");
    }

    if let Ok(dir) = Directory::from_json(data) {
        if let Ok(Some(pem)) = dir.ca_pem() {
            assert!(pem.trim_start().starts_with("-----BEGIN"), "ca_pem returned non-PEM");
        }
        let back = Directory::from_json(&dir.to_json()).expect("directory must parse");
        assert_eq!(back, dir, "directory round trip");
        assert_eq!(back.ca_pem(), dir.ca_pem());
    }

    if let Ok(oob) = OobSecretMessage::from_json(data) {
        let back = OobSecretMessage::from_json(&oob.to_json()).expect("oob must parse");
        assert_eq!(back, oob, "oob secret round trip");
    }

    // Array elements go through `from_value` (the bulk JSON path).
    if let Ok(serde_json::Value::Array(items)) = serde_json::from_slice::<serde_json::Value>(data)
    {
        for item in items {
            let _ = OobSecretMessage::from_value(item);
        }
    }
});
