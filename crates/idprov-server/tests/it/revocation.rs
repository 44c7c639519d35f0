//! Revocation that relying parties check: the OCSP responder (good,
//! revoked, unknown; nonce; the cache and HTTP caching headers), the
//! plain-HTTP revocation listener that serves only the CRL and OCSP with
//! its own per-source limits, the delegated responder's renewal, renewal
//! superseding older certificates, and the hook run after each CRL.

use std::time::{Duration, SystemTime};

use idprov_ca::ocsp::{CertState, request_der, verify_answer};
use idprov_proto::admin::RevokeRequest;
use idprov_proto::clock::Clock;
use idprov_proto::{SerialNumber, UnixTime};
use idprov_server::routes::ROUTES;
use idprov_store::CertKind;
use idprov_testkit::{Setup, TestDevice, TestServer, provision};

use crate::common::{add_secret, audit_entries, last_audit, leaf_of, provision_ok};

const OCSP_REQUEST: &str = "application/ocsp-request";

/// A server with the revocation listener, and `configure` applied.
async fn server_with(
    configure: impl FnOnce(&mut idprov_server::ServerConfig) + Send + 'static,
) -> TestServer {
    TestServer::start_with(Setup::with_revocation_listener(configure)).await
}

/// A device provisioned with a secret: its certificate PEM chain.
async fn provisioned(server: &TestServer, id: &str) -> (TestDevice, String) {
    add_secret(server, id, "revocation-secret-1").await;
    let device = TestDevice::new(id);
    let resp = provision_ok(server, &device, "revocation-secret-1").await;
    (device, resp.client_cert)
}

fn request_for(server: &TestServer, serial: &SerialNumber, nonce: Option<&[u8]>) -> Vec<u8> {
    request_der(server.ca().cert_der(), std::slice::from_ref(serial), nonce).expect("request")
}

fn plain() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// POSTs an OCSP request; the status, headers and body.
async fn post(
    client: &reqwest::Client,
    url: &str,
    der: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let resp = client
        .post(url)
        .header("content-type", OCSP_REQUEST)
        .body(der)
        .send()
        .await
        .expect("sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.expect("body").to_vec())
}

/// A GET of `url` on the plain listener, conditional on `etag` if given:
/// the status, headers and body.
async fn get(url: &str, etag: Option<&str>) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = plain().get(url);
    if let Some(tag) = etag {
        req = req.header("if-none-match", tag);
    }
    let resp = req.send().await.expect("sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.expect("body").to_vec())
}

/// The GET form: base64 of the request, URL-encoded, after the path.
fn get_url(base: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let encoded: String = b64
        .chars()
        .map(|c| match c {
            '+' => "%2B".to_owned(),
            '/' => "%2F".to_owned(),
            '=' => "%3D".to_owned(),
            c => c.to_string(),
        })
        .collect();
    format!("{base}/{encoded}")
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .unwrap_or_else(|| panic!("header {name}"))
        .to_str()
        .expect("text")
}

fn http_time(t: UnixTime) -> String {
    httpdate::fmt_http_date(SystemTime::from(t))
}

/// What the responder says of `serial` now.
async fn ocsp_state(server: &TestServer, serial: &SerialNumber) -> CertState {
    let (_, _, body) = post(
        &plain(),
        &server.revocation_url("/idprov/ocsp"),
        request_for(server, serial, None),
    )
    .await;
    state_of(server, &body).0
}

/// The responder certificates recorded so far, newest first.
async fn responders(server: &TestServer) -> Vec<idprov_store::CertRecord> {
    server
        .registry()
        .certificates_by_kind(CertKind::Ocsp)
        .await
        .expect("responders")
}

/// The one certificate's state in a verified answer.
fn state_of(server: &TestServer, der: &[u8]) -> (CertState, idprov_ca::ocsp::VerifiedAnswer) {
    let answer = verify_answer(&server.ca(), der, server.clock.now()).expect("a verified answer");
    assert_eq!(answer.certs.len(), 1);
    (answer.certs[0].state, answer)
}

#[tokio::test]
async fn ocsp_says_good_then_revoked_from_a_cache_that_a_revocation_invalidates() {
    let server = server_with(|_| {}).await;
    let (_, cert) = provisioned(&server, "ocsp-dev-1").await;
    let leaf = leaf_of(&cert);
    let ocsp = server.revocation_url("/idprov/ocsp");

    // The certificate names the revocation listener for both.
    let der = idprov_ca::pem::parse_certificates(&cert).expect("PEM")[0].clone();
    let text = String::from_utf8_lossy(&der).into_owned();
    assert!(text.contains(&ocsp), "AIA OCSP URL {ocsp}");
    assert!(
        text.contains(&server.revocation_url("/idprov/crl")),
        "CRL distribution point on the plain listener"
    );

    let request = request_for(&server, &leaf.serial, None);
    let (status, h, body) = post(&plain(), &ocsp, request.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), "application/ocsp-response");
    let (state, first) = state_of(&server, &body);
    assert_eq!(state, CertState::Good);
    let times = first.certs[0].times;
    assert_eq!(times.next_update.secs_since(times.this_update), 3600);
    // HTTP caching headers agree with the answer's own times (RFC 5019 §6).
    assert_eq!(header(&h, "last-modified"), http_time(times.this_update));
    assert_eq!(header(&h, "expires"), http_time(times.next_update));
    assert!(
        header(&h, "cache-control").starts_with("max-age=3600, public"),
        "{}",
        header(&h, "cache-control")
    );
    let etag = header(&h, "etag").to_owned();
    assert!(h.get("set-cookie").is_none());

    // A minute later the GET form gets the very same signed bytes (the
    // cache), with a max-age that counts down to the same nextUpdate.
    server.clock.advance(Duration::from_secs(60));
    let url = get_url(&ocsp, &request);
    let (status, h, cached) = get(&url, None).await;
    assert_eq!(status, 200);
    assert_eq!(cached, body, "served from the cache");
    assert!(header(&h, "cache-control").starts_with("max-age=3540,"));
    assert_eq!(header(&h, "etag"), etag);
    // A client holding that answer is told it is current.
    let (status, _, empty) = get(&url, Some(&etag)).await;
    assert_eq!(status, 304);
    assert!(empty.is_empty());
    // The TLS listener answers the same.
    let (status, _, tls_body) =
        post(&server.http(), &server.url("/idprov/ocsp"), request.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(tls_body, body);

    // Revoked: the very next query says so, with the time and the reason.
    server
        .admin()
        .revoke_device(
            "ocsp-dev-1",
            &RevokeRequest {
                reason: Some("keyCompromise".into()),
                ..RevokeRequest::default()
            },
        )
        .await
        .expect("revoked");
    let revoked_at = server.server().state().now_unix();
    let (status, h, body) = post(&plain(), &ocsp, request.clone()).await;
    assert_eq!(status, 200);
    let (state, _) = state_of(&server, &body);
    assert_eq!(
        state,
        CertState::Revoked {
            at: revoked_at,
            reason: 1
        }
    );
    assert_ne!(header(&h, "etag"), etag);
    let (status, _, _) = get(&url, Some(&etag)).await;
    assert_eq!(status, 200, "the old answer is not current any more");

    // Metrics count answers by kind, and answers from the cache.
    let metrics = server.metrics().await;
    for line in [
        "idprov_ocsp_answers_total{answer=\"good\"}",
        "idprov_ocsp_answers_total{answer=\"revoked\"}",
        "idprov_ocsp_cache_hits_total",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }

    // A quarter of an hour on, the answer is signed again.
    server.clock.advance(Duration::from_secs(15 * 60));
    let (_, _, again) = post(&plain(), &ocsp, request).await;
    let (state, answer) = state_of(&server, &again);
    assert!(matches!(state, CertState::Revoked { reason: 1, .. }));
    assert_eq!(answer.produced_at, server.server().state().now_unix());
}

#[tokio::test]
async fn without_the_listener_certificates_name_the_https_crl_and_no_responder() {
    let server = TestServer::start().await;
    assert_eq!(server.revocation_addr(), None, "off by default");
    let (_, cert) = provisioned(&server, "ocsp-dev-0").await;
    let der = idprov_ca::pem::parse_certificates(&cert).expect("PEM")[0].clone();
    let text = String::from_utf8_lossy(&der).into_owned();
    // (The TLS listener's URL, from the configured port.)
    let crl = &server.server().state().crl_url;
    assert!(
        crl.starts_with("https://localhost:") && crl.ends_with("/idprov/crl"),
        "{crl}"
    );
    assert!(text.contains(crl.as_str()), "CRL distribution point {crl}");
    assert!(!text.contains("/idprov/ocsp"), "no OCSP responder named");
    assert!(!text.contains("http://"), "no plain-HTTP URL");
    // The TLS listener still answers OCSP for clients pointed at it.
    let leaf = leaf_of(&cert);
    let (status, _, body) = post(
        &server.http(),
        &server.url("/idprov/ocsp"),
        request_for(&server, &leaf.serial, None),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(state_of(&server, &body).0, CertState::Good);
}

#[tokio::test]
async fn unknown_serials_nonces_and_other_issuers() {
    let server = server_with(|_| {}).await;
    let (_, cert) = provisioned(&server, "ocsp-dev-2").await;
    let leaf = leaf_of(&cert);
    let ocsp = server.revocation_url("/idprov/ocsp");

    // A serial this CA never issued.
    let never = SerialNumber::parse("7e57000000000000000000000000000001").expect("serial");
    let (status, _, body) = post(&plain(), &ocsp, request_for(&server, &never, None)).await;
    assert_eq!(status, 200);
    assert_eq!(state_of(&server, &body).0, CertState::Unknown);

    // A nonce is echoed, and the answer is this request's alone.
    let nonce = b"a nonce of 23 octets..";
    let (status, h, body) = post(
        &plain(),
        &ocsp,
        request_for(&server, &leaf.serial, Some(nonce)),
    )
    .await;
    assert_eq!(status, 200);
    let (state, answer) = state_of(&server, &body);
    assert_eq!(state, CertState::Good);
    assert_eq!(answer.nonce.as_deref(), Some(&nonce[..]));
    assert_eq!(header(&h, "cache-control"), "no-store");
    assert!(h.get("etag").is_none());

    // Another CA's certificate: `unauthorized`, unsigned.
    let other = idprov_ca::Ca::generate(
        "other",
        idprov_ca::KeyAlgorithm::EcdsaP256,
        SystemTime::now(),
        Duration::from_secs(86_400),
    )
    .expect("CA")
    .ca;
    let foreign =
        request_der(other.cert_der(), std::slice::from_ref(&leaf.serial), None).expect("request");
    let (status, h, body) = post(&plain(), &ocsp, foreign).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), "application/ocsp-response");
    assert_eq!(body, idprov_ca::ocsp::OcspFailure::Unauthorized.to_der());
    assert_eq!(header(&h, "cache-control"), "no-store");
}

#[tokio::test]
async fn bad_requests_change_nothing_and_say_what_was_wrong() {
    let server = server_with(|_| {}).await;
    let ocsp = server.revocation_url("/idprov/ocsp");
    let malformed = idprov_ca::ocsp::OcspFailure::MalformedRequest.to_der();
    let before = audit_entries(&server).await.len();

    let (status, h, body) = post(&plain(), &ocsp, b"not an OCSP request".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(header(&h, "content-type"), "application/ocsp-response");
    assert_eq!(body, malformed);
    let (status, _, body) = get(&format!("{ocsp}/not*base64"), None).await;
    assert_eq!(status, 400);
    assert_eq!(body, malformed);
    // The wrong media type is a readable error.
    let resp = plain()
        .post(&ocsp)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .expect("body")
            .contains("application/ocsp-request")
    );
    // An oversized body is refused before it is read.
    let (status, _, _) = post(&plain(), &ocsp, vec![0x30; 70 * 1024]).await;
    assert_eq!(status, 413);
    assert_eq!(
        audit_entries(&server).await.len(),
        before,
        "nothing recorded"
    );
    let metrics = server.metrics().await;
    let line = "idprov_ocsp_answers_total{answer=\"malformed\"}";
    assert!(metrics.contains(line), "{line} missing from\n{metrics}");
}

#[tokio::test]
async fn the_revocation_listener_serves_the_crl_and_ocsp_and_nothing_else() {
    let server = server_with(|_| {}).await;
    let client = plain();
    // Every route of the TLS listener but these two is unknown here.
    for (method, path) in ROUTES {
        if path.starts_with("/idprov/crl") || path.starts_with("/idprov/ocsp") {
            continue;
        }
        let url = server.revocation_url(&path.replace(['{', '}'], "x"));
        let req = match *method {
            "get" => client.get(&url),
            "post" => client.post(&url).body("{}"),
            "delete" => client.delete(&url),
            other => panic!("method {other}"),
        };
        let resp = req
            .header("cookie", "idprov_session=anything")
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), 404, "{method} {path}");
        assert!(
            resp.headers().get("set-cookie").is_none(),
            "{method} {path}"
        );
    }
    for path in [
        "/",
        "/admin/",
        "/admin/assets/app.js",
        "/idprov/crl/x",
        "/idprov/ocspx",
    ] {
        let resp = client
            .get(server.revocation_url(path))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), 404, "{path}");
    }
    // The CRL, as the TLS listener serves it, and nothing that would make
    // a browser stick to HTTPS or keep a session.
    let resp = client
        .get(server.revocation_url("/idprov/crl"))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pkix-crl");
    assert!(resp.headers().get("strict-transport-security").is_none());
    assert!(resp.headers().get("set-cookie").is_none());
    let crl = resp.bytes().await.expect("body");
    assert_eq!(
        crl.to_vec(),
        server
            .server()
            .state()
            .registry
            .crl()
            .await
            .expect("crl")
            .expect("stored")
            .der
    );
    let resp = client
        .post(server.revocation_url("/idprov/crl"))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 405);
    // The listener speaks no TLS: a TLS client gets nowhere.
    let tls = server.http();
    let addr = server.revocation_addr().expect("listener");
    assert!(
        tls.get(format!("https://{addr}/idprov/crl"))
            .send()
            .await
            .is_err(),
        "no TLS on the revocation listener"
    );
}

#[tokio::test]
async fn the_revocation_listener_limits_each_source() {
    let server = server_with(|c| {
        c.revocation_rate = 1.0;
        c.revocation_burst = 5.0;
    })
    .await;
    let url = server.revocation_url("/idprov/crl");
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().expect("ip"))
            .build()
            .expect("client")
    };
    let a = from("127.0.0.1");
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let resp = a.get(&url).send().await.expect("sent");
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            assert!(resp.headers().get("retry-after").is_some());
        }
    }
    assert!(statuses.iter().take(3).all(|s| *s == 200), "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    // Another source has its own allowance.
    let b = from("127.0.0.2");
    assert_eq!(b.get(&url).send().await.expect("sent").status(), 200);
}

/// Waits (on the real clock, bounded) until `done` holds.
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_responder_certificate_is_renewed_before_it_expires_and_audited() {
    let mut setup = Setup::with_revocation_listener(|_| {});
    setup.sweep_interval = Duration::from_millis(50);
    let server = TestServer::start_with(setup).await;
    let key = server.data_dir().join("ocsp.key");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&key).expect("key").permissions()
        ) & 0o777,
        0o600
    );
    let s = &server;
    let first = responders(s).await;
    assert_eq!(first.len(), 1, "one responder certificate, recorded");
    let validity = first[0].not_after.secs_since(first[0].not_before);
    assert!(validity <= 7 * 86_400 + 60, "short-lived: {validity} s");

    // Five days on, less than a third is left: the sweep issues a new one.
    server.clock.advance(Duration::from_secs(5 * 86_400));
    eventually("a renewed responder", || async move {
        responders(s).await.len() == 2
    })
    .await;
    let renewal = last_audit(&server, "the renewal", |e| {
        e.event == "certificate_issued" && e.detail["kind"] == "ocsp"
    })
    .await;
    assert_eq!(renewal.detail["reason"], "close to expiry");
    assert_eq!(renewal.actor, "system");

    // Answers are now signed by the new responder, and verify.
    let (_, cert) = provisioned(&server, "ocsp-dev-3").await;
    let request = request_for(&server, &leaf_of(&cert).serial, None);
    let newest = responders(s).await[0].clone();
    assert_ne!(newest.serial, first[0].serial);
    let der = idprov_ca::pem::parse_certificates(&newest.pem).expect("PEM")[0].clone();
    let (request, der) = (&request, &der);
    eventually("answers signed by the new responder", || async move {
        let (_, _, body) = post(&plain(), &s.revocation_url("/idprov/ocsp"), request.clone()).await;
        verify_answer(&s.ca(), &body, s.clock.now()).is_ok()
            && body.windows(der.len()).any(|w| w == der.as_ref())
    })
    .await;
}

#[tokio::test]
async fn a_renewal_supersedes_the_previous_certificate_after_the_grace_period() {
    let mut setup = Setup::with_revocation_listener(|c| {
        c.supersede_after = Some(Duration::from_secs(3600));
    });
    setup.sweep_interval = Duration::from_millis(50);
    let server = TestServer::start_with(setup).await;
    let (device, old_cert) = provisioned(&server, "ocsp-dev-4").await;
    let old = leaf_of(&old_cert).serial;
    // The device renews over mutual TLS with its certificate.
    let client = server.http_with(&old_cert, &device.key_pem());
    let (status, resp, body) = provision(&client, &server, &device.request(None)).await;
    assert_eq!(status, 200, "{body}");
    let new = leaf_of(&resp.expect("answer").client_cert).serial;
    // Within the grace period both are good.
    server.clock.advance(Duration::from_secs(3000));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ocsp_state(&server, &old).await, CertState::Good);
    // After it, the old one is revoked as superseded, in OCSP and the CRL.
    server.clock.advance(Duration::from_secs(601));
    let (s, o) = (&server, &old);
    eventually("the old certificate revoked", || async move {
        matches!(ocsp_state(s, o).await, CertState::Revoked { reason: 4, .. })
    })
    .await;
    assert_eq!(ocsp_state(&server, &new).await, CertState::Good);
    // The sweep publishes the CRL right after the revocation.
    let octets = old.octets();
    let octets = &octets;
    eventually("the CRL lists it", || async move {
        let crl = s
            .server()
            .state()
            .registry
            .crl()
            .await
            .expect("crl")
            .expect("stored");
        crl.der
            .windows(octets.len())
            .any(|w| w == octets.as_slice())
    })
    .await;
    let e = last_audit(&server, "the revocation", |e| {
        e.event == "certificate_revoked"
    })
    .await;
    assert_eq!(e.actor, "system");
    assert_eq!(e.detail["reason"], 4);
    assert_eq!(e.detail["serials"][0], old.as_str());
}

#[tokio::test]
async fn the_publish_hook_runs_after_every_crl_with_its_file_and_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("hook.log");
    let command = format!(
        "echo \"$IDPROV_CRL_NUMBER $IDPROV_CRL_FILE\" >> {}",
        log.display()
    );
    let server = TestServer::start_with(Setup {
        configure: Box::new(move |c| c.crl_on_publish = Some(command)),
        ..Setup::default()
    })
    .await;
    let log = &log;
    let lines = move || std::fs::read_to_string(log).unwrap_or_default();
    // The first CRL, published at start.
    eventually("the hook after the first CRL", || async move {
        !lines().is_empty()
    })
    .await;
    let (_, _) = provisioned(&server, "hook-dev").await;
    let revoked = server
        .admin()
        .revoke_device("hook-dev", &RevokeRequest::default())
        .await
        .expect("revoked");
    let expected = format!(
        "{} {}",
        revoked.crl_number,
        server.data_dir().join("crl.pem").display()
    );
    let expected = &expected;
    eventually("the hook after the revocation", || async move {
        lines().lines().any(|l| l == expected)
    })
    .await;
}
