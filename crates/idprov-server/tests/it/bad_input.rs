//! Bad input gets a clear error naming what was wrong, and changes nothing.

use idprov_testkit::{TestDevice, TestServer};

use crate::common::add_secret;

async fn post_raw(
    server: &TestServer,
    client: &reqwest::Client,
    path: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let r = client
        .post(server.url(path))
        .body(body)
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.text().await.expect("body"))
}

/// Registry contents that must not change: audit length, devices, waiting.
async fn snapshot(server: &TestServer) -> (usize, usize, usize) {
    let reg = server.registry();
    let page = idprov_store::Page {
        after: None,
        limit: 10_000,
    };
    (
        reg.audit_entries(0, 10_000).await.expect("audit").len(),
        reg.list_devices(&page, idprov_proto::UnixTime::EPOCH, &Default::default())
            .await
            .expect("devices")
            .len(),
        reg.list_waiting(&page).await.expect("waiting").len(),
    )
}

#[tokio::test]
async fn provisioning_requests_that_are_malformed_are_400_and_change_nothing() {
    let server = TestServer::start().await;
    add_secret(&server, "dev-ok", "secret-for-bad-input").await;
    let device = TestDevice::new("dev-ok");
    let good = device.request(Some("secret-for-bad-input"));
    let key = good.public_key_pem.clone();
    let with = |f: &dyn Fn(&mut idprov_proto::ProvisionRequest)| {
        let mut r = good.clone();
        f(&mut r);
        r.sign(b"secret-for-bad-input");
        r.to_json()
    };
    let p521 = idprov_ca::KeyPair::generate_for(&rcgen_alg::P521)
        .expect("key")
        .public_key_pem();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not JSON", b"{not json".to_vec(), "not a valid JSON object"),
        ("an array", b"[]".to_vec(), "not a valid JSON object"),
        (
            "wrong type",
            format!(r#"{{"deviceID":1,"ip":"","publicKeyPEM":{key:?}}}"#).into_bytes(),
            "\"deviceID\" must be a string",
        ),
        (
            "missing key",
            br#"{"deviceID":"dev-ok","ip":""}"#.to_vec(),
            "missing field \"publicKeyPEM\"",
        ),
        (
            "duplicated key",
            br#"{"deviceID":"a","deviceID":"b","ip":"","publicKeyPEM":""}"#.to_vec(),
            "duplicate key \"deviceID\"",
        ),
        (
            "path traversal",
            with(&|r| r.device_id = "../x".into()),
            "deviceID",
        ),
        (
            "empty ID",
            with(&|r| r.device_id = String::new()),
            "device ID is empty",
        ),
        (
            "129 characters",
            with(&|r| r.device_id = "a".repeat(129)),
            "longer than 128",
        ),
        (
            "NUL byte",
            with(&|r| r.device_id = "a\0b".into()),
            "deviceID",
        ),
        ("space", with(&|r| r.device_id = "a b".into()), "deviceID"),
        (
            "leading dash",
            with(&|r| r.device_id = "-a".into()),
            "must not start",
        ),
        (
            "long ip",
            with(&|r| r.ip = "1".repeat(256)),
            "\"ip\": longer than 255",
        ),
        (
            "long mac",
            with(&|r| r.mac = "1".repeat(256)),
            "\"mac\": longer than 255",
        ),
        (
            "NUL in mac",
            with(&|r| r.mac = "02:00\u{0}".into()),
            "\"mac\": contains a NUL",
        ),
        (
            "garbage PEM, correct signature",
            with(&|r| {
                r.public_key_pem =
                    "-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n".into()
            }),
            "publicKeyPEM",
        ),
        (
            "not PEM",
            with(&|r| r.public_key_pem = "hello".into()),
            "publicKeyPEM\": not PEM",
        ),
        (
            "P-521",
            with(&|r| r.public_key_pem = p521.clone()),
            "ECDSA-P521",
        ),
        (
            "a certificate, not a key",
            with(&|r| r.public_key_pem = server.ca_pem()),
            "CERTIFICATE",
        ),
    ];
    let before = snapshot(&server).await;
    let client = server.http();
    for (name, body, needle) in cases {
        let (status, text) = post_raw(&server, &client, "/idprov/provreq", body).await;
        assert_eq!(status, 400, "{name}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("a JSON error object");
        let message = v["error"].as_str().expect("an error message");
        assert!(
            message.contains(needle),
            "{name}: {message:?} should mention {needle:?}"
        );
    }
    assert_eq!(snapshot(&server).await, before, "nothing changed");
    // The secret is still there and works.
    crate::common::provision_ok(&server, &device, "secret-for-bad-input").await;
}

mod rcgen_alg {
    pub use rcgen::PKCS_ECDSA_P521_SHA512 as P521;
}

#[tokio::test]
async fn oversized_bodies_are_413_before_being_read() {
    let server = TestServer::start().await;
    let client = server.http();
    let big = vec![b' '; 64 * 1024 + 1];
    let (status, text) = post_raw(&server, &client, "/idprov/provreq", big.clone()).await;
    assert_eq!(status, 413, "{text}");
    // A declared length far over the limit is refused without sending the body.
    let mut stream = tokio_rustls_client(&server).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(
            b"POST /idprov/provreq HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n",
        )
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("answered without the body")
        .expect("read");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    // A chunked body is cut off at the limit.
    let r = client
        .post(server.url("/idprov/provreq"))
        .body(reqwest::Body::wrap(Chunks::new(big)))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 413);
}

/// A body sent in 8 KiB chunks without a Content-Length.
struct Chunks(Vec<bytes::Bytes>);

impl Chunks {
    fn new(data: Vec<u8>) -> Chunks {
        let mut v: Vec<bytes::Bytes> = data
            .chunks(8192)
            .map(bytes::Bytes::copy_from_slice)
            .collect();
        v.reverse();
        Chunks(v)
    }
}

impl hyper::body::Body for Chunks {
    type Data = bytes::Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>>> {
        std::task::Poll::Ready(self.0.pop().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

async fn tokio_rustls_client(
    server: &TestServer,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut config = server.tls_config(None);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    connector
        .connect(
            rustls_pki_types::ServerName::IpAddress(server.addr.ip().into()),
            tcp,
        )
        .await
        .expect("TLS")
}

#[tokio::test]
async fn wrong_methods_and_unknown_paths() {
    let server = TestServer::start().await;
    let client = server.http();
    let r = client
        .get(server.url("/idprov/provreq"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 405);
    assert!(r.text().await.expect("body").contains("method not allowed"));
    let r = client
        .delete(server.url("/idprov/directory"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 405);
    let r = client
        .get(server.url("/nope"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 404);
    assert!(r.text().await.expect("body").contains("unknown path"));
}

#[tokio::test]
async fn secret_registrations_that_are_invalid_are_400_and_change_nothing() {
    let server = TestServer::start().await;
    let admin_cert = std::fs::read_to_string(server.data_dir().join("admin.pem")).expect("cert");
    let admin_key = std::fs::read_to_string(server.data_dir().join("admin.key")).expect("key");
    let admin = server.http_with(&admin_cert, &admin_key);
    let cases: &[(&str, &str, &str)] = &[
        (
            "past",
            r#"{"deviceID":"d1","oobSecret":"abcdefghijk","validUntil":"2000-01-01T00:00:00Z"}"#,
            "in the past",
        ),
        (
            "unparsable",
            r#"{"deviceID":"d1","oobSecret":"abcdefghijk","validUntil":"tomorrow"}"#,
            "RFC 3339",
        ),
        (
            "empty secret",
            r#"{"deviceID":"d1","oobSecret":""}"#,
            "secret is empty",
        ),
        (
            "control character",
            r#"{"deviceID":"d1","oobSecret":"a\u0007b"}"#,
            "control character",
        ),
        (
            "bad ID",
            r#"{"deviceID":"../etc","oobSecret":"abcdefghijk"}"#,
            "deviceID",
        ),
        ("missing secret", r#"{"deviceID":"d1"}"#, "oobSecret"),
        (
            "wrong type",
            r#"{"deviceID":"d1","oobSecret":5}"#,
            "oobSecret",
        ),
        (
            "duplicate",
            r#"{"deviceID":"d1","deviceID":"d2","oobSecret":"abcdefghijk"}"#,
            "duplicate",
        ),
    ];
    let before = snapshot(&server).await;
    for (name, body, needle) in cases {
        let (status, text) = post_raw(
            &server,
            &admin,
            "/idprov/oobsecret",
            body.as_bytes().to_vec(),
        )
        .await;
        assert_eq!(status, 400, "{name}: {text}");
        assert!(text.contains(needle), "{name}: {text}");
        assert!(
            !text.contains("abcdefghijk"),
            "{name}: the secret is never echoed"
        );
    }
    assert_eq!(snapshot(&server).await, before);
    assert!(
        server
            .admin()
            .list_secrets(None)
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn bad_paging_parameters_are_400() {
    let server = TestServer::start().await;
    let cert = std::fs::read_to_string(server.data_dir().join("admin.pem")).expect("cert");
    let key = std::fs::read_to_string(server.data_dir().join("admin.key")).expect("key");
    let admin = server.http_with(&cert, &key);
    for q in ["limit=0", "limit=100000", "limit=abc", "bogus=1"] {
        let r = admin
            .get(server.url(&format!("/idprov/admin/devices?{q}")))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 400, "{q}");
    }
}

#[tokio::test]
async fn revocation_notes_and_rejection_reasons_are_one_line_of_text() {
    use idprov_proto::admin::{CredentialRequest, RevokeRequest};
    let server = TestServer::start().await;
    let admin = server.admin();
    let key = TestDevice::new("svc").request(None).public_key_pem;
    admin
        .issue_credential(&CredentialRequest {
            ou: "service".into(),
            cn: "svc".into(),
            public_key_pem: key,
            sans: vec![],
            validity_days: None,
        })
        .await
        .expect("issued");
    let bad = |note: &str| RevokeRequest {
        reason: None,
        note: Some(note.into()),
        serial: None,
    };
    // A serial that is not one is named, for a credential and a device alike.
    for serial in ["", "0xab", "abc", "zz", &"ab".repeat(22)] {
        let req = RevokeRequest {
            serial: Some(serial.to_owned()),
            ..bad("rotated")
        };
        let err = admin
            .revoke_credential("service", "svc", &req)
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("\"serial\""), "{serial:?}: {err}");
    }
    for note in ["a\u{7}b".to_owned(), "x".repeat(1025)] {
        let err = admin
            .revoke_credential("service", "svc", &bad(&note))
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("\"note\""), "{err}");
    }
    // Nothing was revoked by the refused requests.
    let revoked = admin
        .revoke_credential("service", "svc", &bad("rotated"))
        .await
        .expect("revoked");
    assert_eq!(revoked.serials.len(), 1);
    // The same rule for a device's revocation note.
    add_secret(&server, "noted", "noted-secret").await;
    crate::common::provision_ok(&server, &TestDevice::new("noted"), "noted-secret").await;
    let err = admin
        .revoke_device("noted", &bad("line\nbreak"))
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("\"note\""), "{err}");
    let err = admin
        .revoke_device(
            "noted",
            &RevokeRequest {
                serial: Some("not-a-serial".into()),
                ..bad("stolen")
            },
        )
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("\"serial\""), "{err}");
}

#[tokio::test]
async fn device_ids_that_name_a_role_or_this_server_are_refused() {
    let server = idprov_testkit::TestServer::start_with(idprov_testkit::Setup {
        configure: Box::new(|c| {
            c.reserved_device_ids = c
                .reserved_device_ids
                .iter()
                .filter(|n| *n != "service")
                .cloned()
                .collect();
        }),
        ..Default::default()
    })
    .await;
    let admin = server.admin();
    for id in ["admin", "Plugin", "localhost", "iotdevice"] {
        let device = idprov_testkit::TestDevice::new(id);
        let (status, _, body) = idprov_testkit::provision(
            &server.http(),
            &server,
            &device.request(Some("whatever-secret")),
        )
        .await;
        assert_eq!(status, 400, "{id}: {body}");
        assert!(
            body.contains("names a certificate role or this server"),
            "{body}"
        );
        let err = admin
            .add_secret(&idprov_proto::OobSecretMessage {
                device_id: id.into(),
                oob_secret: "a-good-long-secret".into(),
                valid_until: String::new(),
                pake_only: false,
            })
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("names a certificate role"),
            "{id}: {err}"
        );
    }
    // An ID allowed by configuration (here: "service") is an ID like any other.
    admin
        .add_secret(&idprov_proto::OobSecretMessage {
            device_id: "service".into(),
            oob_secret: "a-good-long-secret".into(),
            valid_until: String::new(),
            pake_only: false,
        })
        .await
        .expect("allowed");
    // Nothing was recorded for the refused ones.
    for id in ["admin", "localhost"] {
        assert!(
            server
                .registry()
                .device(id, idprov_proto::UnixTime::EPOCH)
                .await
                .expect("read")
                .is_none()
        );
    }
}

#[tokio::test]
async fn a_decision_on_a_malformed_key_fingerprint_is_a_400_naming_it_and_decides_nothing() {
    use idprov_proto::admin::Decision;
    let server = TestServer::start().await;
    let device = TestDevice::new("fp-check");
    let (_, resp, _) =
        idprov_testkit::provision(&server.http(), &server, &device.request(None)).await;
    assert_eq!(
        resp.expect("response").status,
        idprov_proto::ProvisionStatus::Waiting
    );
    let admin = server.admin();
    let real = idprov_ca::PublicKey::from_pem(&device.request(None).public_key_pem)
        .expect("key")
        .fingerprint();
    // Not base64url, the wrong length, padded, and the real one in hex.
    let padded = format!("{real}=");
    for bad in ["fp-1", "", "AAAA", padded.as_str(), "00:11:22"] {
        for action in ["approve", "reject", "clear"] {
            let err = admin
                .decide(
                    "fp-check",
                    action,
                    &Decision {
                        key_fingerprint: Some(bad.to_owned()),
                        reason: None,
                    },
                )
                .await
                .expect_err("refused");
            assert!(
                err.to_string().contains("\"keyFingerprint\""),
                "{action} {bad:?}: {err}"
            );
        }
    }
    // The request still waits, undecided.
    let queue = admin.list_requests(None).await.expect("queue");
    let entry = queue
        .iter()
        .find(|w| w.device_id == "fp-check")
        .expect("still queued");
    assert_eq!(entry.key_fingerprint, real);
    assert_eq!(entry.state, idprov_proto::kinds::QueueState::Waiting);
}
