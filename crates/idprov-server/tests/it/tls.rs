//! TLS behaviour: certificates the handshake refuses, and leaves re-checked
//! after the handshake on resumed sessions (PROTOCOL.md §2).

use std::time::Duration;

use idprov_ca::{Ca, IssueParams, KeyAlgorithm, Usage};
use idprov_testkit::{TestServer, http_client};

async fn directory_ok(server: &TestServer) {
    let r = server
        .http()
        .get(server.url("/idprov/directory"))
        .send()
        .await
        .expect("the server is still up");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_certificate_from_another_ca_fails_the_handshake_and_the_server_stays_up() {
    let server = TestServer::start().await;
    let rogue = Ca::generate(
        "rogue",
        KeyAlgorithm::EcdsaP256,
        std::time::SystemTime::now(),
        Duration::from_secs(86_400),
    )
    .expect("rogue CA");
    let (cert, key) = rogue
        .ca
        .issue_with_new_key(
            KeyAlgorithm::EcdsaP256,
            IssueParams {
                common_name: "admin",
                organizational_unit: "admin",
                organization: "rogue",
                usage: Usage::Client,
                now: std::time::SystemTime::now(),
                validity: Duration::from_secs(3600),
                crl_url: None,
                ocsp_url: None,
            },
        )
        .expect("issue");
    let client = server.http_with(&cert.pem, &key);
    let err = client
        .get(server.url("/idprov/admin/devices"))
        .send()
        .await
        .expect_err("the handshake is refused");
    let client_err = idprov_client::AdminClient::new(
        &server.server_arg(),
        &idprov_client::Credentials {
            ca_pem: server.ca_pem(),
            cert_pem: Some(cert.pem.clone()),
            key_pem: Some(key.clone().into()),
        },
    )
    .expect("client")
    .list_devices(None)
    .await
    .expect_err("refused");
    assert!(
        matches!(
            client_err,
            idprov_client::ClientError::CredentialsRefused(_)
        ),
        "{client_err} / {err}"
    );
    directory_ok(&server).await;
}

#[tokio::test]
async fn an_expired_certificate_fails_a_full_handshake() {
    let server = TestServer::start().await;
    let (cert, key) = server.issue_client_cert("admin", "short-lived", Duration::from_secs(600));
    server.clock.advance(Duration::from_secs(1200));
    let r = server
        .http_with(&cert, &key)
        .get(server.url("/idprov/admin/devices"))
        .send()
        .await;
    assert!(
        r.is_err(),
        "full handshake with an expired certificate is refused"
    );
    directory_ok(&server).await;
}

#[tokio::test]
async fn a_certificate_that_expired_during_a_session_authorizes_nothing_when_resumed() {
    let server = TestServer::start().await;
    let (cert, key) = server.issue_client_cert("iotdevice", "resumer", Duration::from_secs(600));
    // One rustls configuration, so both clients share its session cache.
    let config = server.tls_config(Some((&cert, &key)));
    let url = server.url("/idprov/status/resumer");
    let first = http_client(config.clone())
        .get(&url)
        .send()
        .await
        .expect("request");
    assert_eq!(
        first.status(),
        404,
        "authorized as the device itself; the device is unknown"
    );
    server.clock.advance(Duration::from_secs(1200));
    // A new client makes a new connection, which resumes the TLS session:
    // rustls does not verify the certificate again, the server does.
    let resumed = http_client(config)
        .get(&url)
        .send()
        .await
        .expect("the resumed handshake succeeds");
    assert_eq!(resumed.status(), 403, "the expired leaf authorizes nothing");
    assert!(resumed.text().await.expect("body").contains("validity"));
    // Without a session to resume, the handshake itself is refused.
    let fresh = server.http_with(&cert, &key).get(&url).send().await;
    assert!(fresh.is_err());
}

#[tokio::test]
async fn a_certificate_revoked_during_a_session_authorizes_nothing_when_resumed() {
    let server = TestServer::start().await;
    crate::common::add_secret(&server, "resumer-2", "resumed-session-secret").await;
    let device = idprov_testkit::TestDevice::new("resumer-2");
    let cert = crate::common::provision_ok(&server, &device, "resumed-session-secret")
        .await
        .client_cert;
    let config = server.tls_config(Some((&cert, &device.key_pem())));
    let url = server.url("/idprov/status/resumer-2");
    let first = http_client(config.clone())
        .get(&url)
        .send()
        .await
        .expect("request");
    assert_eq!(first.status(), 200, "the device reads its own status");
    server
        .admin()
        .revoke_device(
            "resumer-2",
            &idprov_proto::admin::RevokeRequest {
                reason: Some("keyCompromise".into()),
                note: None,
                serial: None,
            },
        )
        .await
        .expect("revoked");
    // The resumed session carries the leaf verified before the revocation.
    let resumed = http_client(config)
        .get(&url)
        .send()
        .await
        .expect("the resumed handshake succeeds");
    assert_eq!(resumed.status(), 403, "the revoked leaf authorizes nothing");
    assert!(resumed.text().await.expect("body").contains("revoked"));
}

#[tokio::test]
async fn without_resumption_every_handshake_is_full() {
    let server = TestServer::start_with(idprov_testkit::Setup {
        resumption: false,
        ..Default::default()
    })
    .await;
    let (cert, key) = server.issue_client_cert("iotdevice", "full", Duration::from_secs(600));
    let config = server.tls_config(Some((&cert, &key)));
    let url = server.url("/idprov/status/full");
    assert_eq!(
        http_client(config.clone())
            .get(&url)
            .send()
            .await
            .expect("request")
            .status(),
        404
    );
    server.clock.advance(Duration::from_secs(1200));
    assert!(http_client(config).get(&url).send().await.is_err());
}

#[tokio::test]
async fn the_server_prefers_sha256_suites_whatever_the_client_prefers() {
    let server = TestServer::start().await;
    let mut roots = rustls::RootCertStore::empty();
    for der in idprov_ca::pem::parse_certificates(&server.ca_pem()).expect("CA") {
        roots.add(der).expect("root");
    }
    // rustls's own default order puts AES-256-GCM-SHA384 first.
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    assert_eq!(
        config.crypto_provider().cipher_suites[0].suite(),
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
    );
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect("localhost".try_into().expect("name"), tcp)
        .await
        .expect("handshake");
    assert_eq!(
        tls.get_ref()
            .1
            .negotiated_cipher_suite()
            .expect("negotiated")
            .suite(),
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
    );
}
