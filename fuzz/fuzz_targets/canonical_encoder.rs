//! The Go-compatible canonical JSON encoder on arbitrary byte strings.
//!
//! Input: up to four byte strings separated by 0xFF (missing ones are empty;
//! everything after the fourth separator stays in the fourth string, so 0xFF
//! bytes can still reach the encoder there).
//!
//! Checks, for both Go escape styles:
//! - the output of `encode_request` / `encode_response` is valid JSON (Go
//!   replaces each byte of invalid UTF-8 with `\ufffd`, so it always is);
//! - it is an object with exactly the expected keys, in Go's order;
//! - each string field decodes to the input with every invalid byte
//!   replaced by U+FFFD (Go's one-byte-at-a-time rule), which for valid
//!   UTF-8 means: equal to the input;
//! - no raw control character, `<`, `>`, `&`, U+2028 or U+2029 is left in
//!   the output (Go escapes all of them);
//! - when all strings are valid UTF-8, `ProvisionRequest` agrees with
//!   `encode_request` and its strict parser reads the bytes back.
#![no_main]

use idprov_proto::EscapeStyle;
use idprov_proto::ProvisionRequest;
use idprov_proto::messages::{RequestFields, ResponseFields, encode_request, encode_response};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// What Go's encoder makes of `bytes`: valid UTF-8 kept, each byte of an
/// invalid sequence replaced by U+FFFD.
fn go_lossy(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for _ in chunk.invalid() {
            out.push('\u{fffd}');
        }
    }
    out
}

fn check_escaping(json: &[u8]) {
    let text = std::str::from_utf8(json).expect("encoder output must be UTF-8");
    for c in text.chars() {
        assert!(
            !(c < ' ' || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}')),
            "unescaped {c:?} in encoder output"
        );
    }
}

fn check_object(json: &[u8], want: &[(&str, &[u8])]) {
    check_escaping(json);
    let value: Value = serde_json::from_slice(json).unwrap_or_else(|e| {
        panic!(
            "encoder output is not valid JSON ({e}): {:?}",
            String::from_utf8_lossy(json)
        )
    });
    let Value::Object(map) = value else {
        panic!("encoder output is not a JSON object");
    };
    assert_eq!(map.len(), want.len(), "unexpected key count");
    for (key, raw) in want {
        let got = map
            .get(*key)
            .unwrap_or_else(|| panic!("key {key} missing"));
        let Value::String(got) = got else {
            panic!("key {key} is not a string");
        };
        assert_eq!(*got, go_lossy(raw), "key {key}");
        if let Ok(s) = std::str::from_utf8(raw) {
            assert_eq!(got, s, "valid UTF-8 must survive unchanged (key {key})");
        }
    }
    // Key order: the keys must appear in the order given.
    let mut pos = 0;
    for (key, _) in want {
        let needle = format!("\"{key}\":");
        let at = text_find(&json[pos..], needle.as_bytes())
            .unwrap_or_else(|| panic!("key {key} out of order"));
        pos += at + needle.len();
    }
}

fn text_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |&b| b == 0xff);
    let a = parts.next().unwrap_or_default();
    let b = parts.next().unwrap_or_default();
    let c = parts.next().unwrap_or_default();
    let d = parts.next().unwrap_or_default();

    // retrySec from the first bytes of the last string: covers 0 (omitted),
    // negatives and the extremes.
    let mut n = [0u8; 8];
    for (dst, src) in n.iter_mut().zip(d.iter()) {
        *dst = *src;
    }
    let retry_sec = i64::from_le_bytes(n);

    for style in [EscapeStyle::Go119, EscapeStyle::Go122] {
        let req = encode_request(
            RequestFields {
                device_id: a,
                ip: b,
                mac: c,
                public_key_pem: d,
            },
            b"",
            style,
        );
        check_object(
            &req,
            &[
                ("deviceID", a),
                ("ip", b),
                ("mac", c),
                ("publicKeyPEM", d),
                ("signature", b""),
            ],
        );

        let resp = encode_response(
            ResponseFields {
                retry_sec,
                status: a,
                ca_cert: b,
                client_cert: c,
            },
            d,
            style,
        );
        let mut want: Vec<(&str, &[u8])> = vec![
            ("status", a),
            ("caCert", b),
            ("clientCert", c),
            ("signature", d),
        ];
        check_object_with_retry(&resp, &mut want, retry_sec);

        if let (Ok(a), Ok(b), Ok(c), Ok(d)) = (
            std::str::from_utf8(a),
            std::str::from_utf8(b),
            std::str::from_utf8(c),
            std::str::from_utf8(d),
        ) {
            let r = ProvisionRequest {
                device_id: a.to_owned(),
                ip: b.to_owned(),
                mac: c.to_owned(),
                public_key_pem: d.to_owned(),
                signature: String::new(),
            };
            assert_eq!(r.signing_bytes(style), req, "ProvisionRequest disagrees");
            let back = ProvisionRequest::from_json(&req).expect("own output must parse");
            assert_eq!(back, r, "request round trip");
            if style == EscapeStyle::Go119 {
                assert_eq!(r.to_json(), req, "to_json with empty signature");
            }
        }
    }
});

fn check_object_with_retry(json: &[u8], want: &mut Vec<(&str, &[u8])>, retry_sec: i64) {
    // `retrySec` is a number, so check it apart and the strings as usual.
    let value: Value = serde_json::from_slice(json).unwrap_or_else(|e| {
        panic!(
            "encoder output is not valid JSON ({e}): {:?}",
            String::from_utf8_lossy(json)
        )
    });
    match value.get("retrySec") {
        None => assert_eq!(retry_sec, 0, "retrySec omitted although non-zero"),
        Some(v) => {
            assert_ne!(retry_sec, 0, "retrySec written although zero");
            assert_eq!(v.as_i64(), Some(retry_sec), "retrySec value");
            assert!(json.starts_with(b"{\"retrySec\":"), "retrySec must come first");
        }
    }
    if retry_sec != 0 {
        // Strip `"retrySec":N,` so the string check sees only string keys.
        let comma = json.iter().position(|&b| b == b',').expect("comma");
        let mut rest = vec![b'{'];
        rest.extend_from_slice(&json[comma + 1..]);
        check_object(&rest, want);
    } else {
        check_object(json, want);
    }
    want.clear();
}
