//! Label URIs and the value types they carry, on arbitrary text.
//!
//! Checks: no panic in `Label::parse`, `Fingerprint::parse`,
//! `DeviceId::parse`, `OobSecret::parse`; a parsed label's `to_uri()` parses
//! back to an equal label; a fingerprint re-parses from both its canonical
//! form and its hex form; a parsed device ID or secret is the input,
//! unchanged; and a label built from any valid ID and secret round-trips
//! through `to_uri()`.
#![no_main]

use idprov_proto::{DeviceId, Fingerprint, Label, OobSecret};
use libfuzzer_sys::fuzz_target;

fn check_label(label: &Label) {
    let uri = label.to_uri();
    let back = Label::parse(&uri)
        .unwrap_or_else(|e| panic!("to_uri output {uri:?} does not parse: {e}"));
    assert!(back == *label, "label round trip via {uri:?}");
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(label) = Label::parse(&text) {
        check_label(&label);
    }

    if let Ok(fp) = Fingerprint::parse(&text) {
        assert_eq!(Fingerprint::parse(&fp.to_string()), Ok(fp));
        assert_eq!(Fingerprint::parse(&fp.to_hex()), Ok(fp));
    }

    if let Ok(id) = DeviceId::parse(&text) {
        assert_eq!(id.as_str(), &*text);
        assert!(!id.as_str().is_empty() && id.as_str().len() <= 128);
    }

    if let Ok(secret) = OobSecret::parse(&text) {
        assert_eq!(secret.expose(), &*text);
        let _ = secret.is_short();
    }

    // Build a label from the input: ID before the first NUL (or newline),
    // secret after it. Exercises `to_uri` on every secret the parser accepts.
    let (id_text, secret_text) = match text.split_once(['\0', '\n']) {
        Some((a, b)) => (a, b),
        None => (&*text, "secret"),
    };
    if let (Ok(device_id), Ok(secret)) = (DeviceId::parse(id_text), OobSecret::parse(secret_text)) {
        let with_ca = Label {
            device_id: device_id.clone(),
            secret: secret.clone(),
            ca: Some(Fingerprint::of_der(data)),
        };
        check_label(&with_ca);
        let without_ca = Label {
            device_id,
            secret,
            ca: None,
        };
        check_label(&without_ca);
    }
});
