//! A differential test against Go itself: a standard-library-only Go program
//! (`tests/go/canonical/main.go`, built with the system's `go`, Debian's
//! golang-go 1.19 in CI) marshals messages whose strings a property test
//! generates — control characters, `<>&`, U+2028/U+2029, invalid UTF-8,
//! astral characters — and signs them; the Rust encoder and signer must
//! produce identical bytes.
//!
//! Without `go` the test is skipped with a message, except under `CI=true`,
//! where it fails: CI installs golang-go.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use idprov_proto::canonical::EscapeStyle;
use idprov_proto::messages::{RequestFields, ResponseFields, encode_request, encode_response};
use idprov_proto::sign::{KeyVariant, sign_bytes};
use proptest::prelude::*;

struct GoPeer {
    _dir: tempfile::TempDir,
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex from Go"))
        .collect()
}

fn peer() -> Option<&'static Mutex<GoPeer>> {
    static PEER: OnceLock<Option<Mutex<GoPeer>>> = OnceLock::new();
    PEER.get_or_init(|| {
        let go_ok = Command::new("go")
            .arg("version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !go_ok {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "`go` is required for the differential test in CI (apt-get install golang-go)"
            );
            eprintln!("skipping the Go differential test: `go` is not installed");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let program = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/go/canonical/main.go"
        );
        let binary = dir.path().join("canonical");
        let built = Command::new("go")
            .arg("build")
            .arg("-o")
            .arg(&binary)
            .arg(program)
            .env("GOCACHE", dir.path().join("gocache"))
            .env("GOPATH", dir.path().join("gopath"))
            .env("GOFLAGS", "-mod=mod")
            .env("GO111MODULE", "auto")
            .env("GOTOOLCHAIN", "local")
            .output()
            .expect("go build runs");
        assert!(
            built.status.success(),
            "go build failed: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        let mut child = Command::new(&binary)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("Go peer starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Some(Mutex::new(GoPeer {
            _dir: dir,
            _child: child,
            stdin,
            stdout,
        }))
    })
    .as_ref()
}

/// Sends one line to Go; returns (marshalled bytes, base64 signature).
fn ask(line: &str) -> (Vec<u8>, String) {
    let peer = peer().expect("peer checked by the caller");
    let mut p = peer.lock().unwrap_or_else(|e| e.into_inner());
    writeln!(p.stdin, "{line}").expect("write to Go");
    p.stdin.flush().expect("flush");
    let mut answer = String::new();
    p.stdout.read_line(&mut answer).expect("read from Go");
    let (json, sig) = answer
        .trim_end()
        .split_once(' ')
        .expect("two fields from Go");
    (unhex(json), sig.to_owned())
}

/// One field on the line: "x" then hex, so an empty string is still a field.
fn field(bytes: &[u8]) -> String {
    format!("x{}", hex(bytes))
}

/// Byte strings rich in what a JSON encoder can get wrong.
fn tricky_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => any::<u8>().prop_map(|b| vec![b]),
        3 => (0u8..0x20).prop_map(|b| vec![b]),
        2 => prop::sample::select(vec![b'<', b'>', b'&', b'"', b'\\', b'/', 0x7f]).prop_map(|b| vec![b]),
        2 => prop::sample::select(vec!['\u{2028}', '\u{2029}', '\u{fffd}', 'é', '€', '😀', '\u{10ffff}'])
            .prop_map(|c| c.to_string().into_bytes()),
        2 => any::<char>().prop_map(|c| c.to_string().into_bytes()),
        2 => prop::sample::select(vec![
            vec![0xe2u8, 0x80],            // truncated 3-byte sequence
            vec![0xed, 0xa0, 0x80],        // a surrogate
            vec![0xc0, 0xaf],              // overlong
            vec![0xf4, 0x90, 0x80, 0x80],  // above U+10FFFF
            vec![0x80],                    // lone continuation byte
            vec![0xff, 0xfe],
        ]),
        1 => Just(b"-----BEGIN PUBLIC KEY-----\n".to_vec()),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn requests_encode_and_sign_exactly_as_go(
        device_id in tricky_bytes(), ip in tricky_bytes(), mac in tricky_bytes(),
        pem in tricky_bytes(), secret in tricky_bytes(),
    ) {
        if peer().is_none() {
            return Ok(());
        }
        let (go_json, go_sig) = ask(&format!(
            "req {} {} {} {} {}",
            field(&device_id), field(&ip), field(&mac), field(&pem), field(&secret)
        ));
        let ours = encode_request(
            RequestFields { device_id: &device_id, ip: &ip, mac: &mac, public_key_pem: &pem },
            b"",
            EscapeStyle::Go119,
        );
        prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&go_json));
        prop_assert_eq!(&ours, &go_json);
        prop_assert_eq!(sign_bytes(&secret, KeyVariant::RawSecret, &ours), go_sig);
    }

    #[test]
    fn responses_encode_and_sign_exactly_as_go(
        retry in prop_oneof![Just(0i64), Just(60), Just(1_296_000), any::<i32>().prop_map(i64::from)],
        status in prop::sample::select(vec!["Approved", "Waiting", "Rejected"]),
        ca in tricky_bytes(), client in tricky_bytes(), secret in tricky_bytes(),
    ) {
        if peer().is_none() {
            return Ok(());
        }
        let (go_json, go_sig) = ask(&format!(
            "resp {retry} {} {} {} {}",
            field(status.as_bytes()), field(&ca), field(&client), field(&secret)
        ));
        let ours = encode_response(
            ResponseFields { retry_sec: retry, status: status.as_bytes(), ca_cert: &ca, client_cert: &client },
            b"",
            EscapeStyle::Go119,
        );
        prop_assert_eq!(&ours, &go_json);
        prop_assert_eq!(sign_bytes(&secret, KeyVariant::RawSecret, &ours), go_sig);
    }
}
