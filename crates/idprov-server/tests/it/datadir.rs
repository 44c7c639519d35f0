//! The data directory on first start and later starts (issue point 1).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use idprov_ca::{CertInfo, KeyAlgorithm};
use idprov_server::config::CaSource;
use idprov_testkit::{Setup, TestDevice, TestServer};

use crate::common::{add_secret, leaf_of, provision_ok};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn cert_file(server: &TestServer, name: &str) -> CertInfo {
    leaf_of(&std::fs::read_to_string(server.data_dir().join(name)).expect("read"))
}

#[tokio::test]
async fn first_start_creates_a_private_directory_with_every_credential() {
    let server = TestServer::start().await;
    let dir = server.data_dir();
    assert_eq!(mode(&dir), 0o700);
    for key in ["ca.key", "server.key", "admin.key", "idprov.lock"] {
        assert_eq!(mode(&dir.join(key)), 0o600, "{key}");
    }
    for public in ["ca.pem", "server.pem", "admin.pem", "ca-chain.pem"] {
        assert!(dir.join(public).exists(), "{public}");
    }
    if idprov_testkit::postgres_backend() {
        // Secrets are persistent in PostgreSQL mode: their key is here.
        assert_eq!(mode(&dir.join("secrets.key")), 0o600);
        assert!(!dir.join("idprov.db").exists());
    } else {
        // The database and SQLite's companions, 0600 from their creation.
        for f in ["idprov.db", "idprov.db-wal", "idprov.db-shm"] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
    }
    for key in ["ca.key", "server.key", "admin.key"] {
        let text = std::fs::read_to_string(dir.join(key)).expect("read");
        assert!(
            text.starts_with("-----BEGIN PRIVATE KEY-----"),
            "{key} is PKCS#8 PEM"
        );
    }
    let ca = cert_file(&server, "ca.pem");
    assert!(ca.is_ca && !ca.has_eku);
    assert_eq!((ca.not_after - ca.not_before) / 86_400, 3650);

    let admin = cert_file(&server, "admin.pem");
    assert_eq!(admin.organizational_units, vec!["admin"]);
    assert!(admin.eku_client_auth);

    let tls = cert_file(&server, "server.pem");
    assert!(tls.eku_server_auth);
    assert!(tls.dns_names.contains(&"localhost".to_owned()));
    let host = idprov_server::config::host_name();
    if host != "localhost" {
        assert!(tls.dns_names.contains(&host), "{:?}", tls.dns_names);
        assert!(tls.dns_names.contains(&format!("{host}.local")));
    }
    assert!(tls.ip_addresses.contains(&"127.0.0.1".parse().expect("ip")));
    assert!(tls.ip_addresses.contains(&"::1".parse().expect("ip")));
    // Every address of the machine's interfaces.
    for iface in if_addrs::get_if_addrs().expect("interfaces") {
        assert!(tls.ip_addresses.contains(&iface.ip()), "{}", iface.ip());
    }
}

#[tokio::test]
async fn later_starts_reuse_the_ca_and_credentials() {
    let mut server = TestServer::start().await;
    let ca = server.ca().fingerprint();
    let tls = cert_file(&server, "server.pem").serial;
    let admin = cert_file(&server, "admin.pem").serial;
    server.restart().await;
    assert_eq!(server.ca().fingerprint(), ca);
    assert_eq!(cert_file(&server, "server.pem").serial, tls);
    assert_eq!(cert_file(&server, "admin.pem").serial, admin);
}

#[tokio::test]
async fn the_server_certificate_is_reissued_when_its_names_change() {
    let mut server = TestServer::start().await;
    let before = cert_file(&server, "server.pem").serial;
    server.config.server_names = vec!["hub.example.net".into(), "10.99.0.1".into()];
    server.restart().await;
    let after = cert_file(&server, "server.pem");
    assert_ne!(after.serial, before);
    assert!(after.dns_names.contains(&"hub.example.net".to_owned()));
    assert!(
        after
            .ip_addresses
            .contains(&"10.99.0.1".parse().expect("ip"))
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_directory_is_refused() {
    if idprov_testkit::skip_unless_sqlite("the data directory lock") {
        return;
    }
    let server = TestServer::start().await;
    let mut config = server.config.clone();
    config.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    let err = idprov_server::start(config, Default::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("in use by another idprov server"),
        "{err}"
    );
}

#[tokio::test]
async fn a_key_file_with_loose_permissions_is_refused() {
    let mut server = TestServer::start().await;
    server.stop().await;
    let key = server.data_dir().join("ca.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = idprov_server::start(server.config.clone(), Default::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("0600"), "{err}");
}

#[tokio::test]
async fn a_configured_intermediate_issues_with_its_chain() {
    // An operator's root and an intermediate below it, made by rcgen as an
    // outside PKI would be.
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyUsagePurpose};
    let pki = tempfile::tempdir().expect("tempdir");
    let params = |cn: &str, bc| {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(bc);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        p.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(365);
        p
    };
    let root_key = KeyAlgorithm::EcdsaP256.generate().expect("key");
    let root_params = params("Operator Root", BasicConstraints::Unconstrained);
    let root_pem = root_params.self_signed(&root_key).expect("root").pem();
    let root = Issuer::new(root_params, root_key);
    let inter_key = KeyAlgorithm::EcdsaP256.generate().expect("key");
    let mut inter_params = params("Operator Intermediate", BasicConstraints::Constrained(0));
    inter_params.use_authority_key_identifier_extension = true;
    let inter_pem = inter_params
        .signed_by(&inter_key, &root)
        .expect("sign")
        .pem();
    let files = pki.path().to_owned();
    std::fs::write(files.join("inter.pem"), &inter_pem).expect("write");
    std::fs::write(files.join("root.pem"), &root_pem).expect("write");
    std::fs::write(files.join("inter.key"), inter_key.serialize_pem()).expect("write");
    std::fs::set_permissions(
        files.join("inter.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");

    let cfg_files = files.clone();
    let server = TestServer::start_with(Setup {
        configure: Box::new(move |c| {
            c.ca = CaSource::Files {
                cert: cfg_files.join("inter.pem"),
                key: cfg_files.join("inter.key"),
                chain: Some(cfg_files.join("root.pem")),
                passphrase: None,
            };
        }),
        ..Default::default()
    })
    .await;
    assert_eq!(server.ca_pem(), format!("{inter_pem}{root_pem}"));
    add_secret(&server, "via-inter", "intermediate-secret").await;
    let resp = provision_ok(
        &server,
        &TestDevice::new("via-inter"),
        "intermediate-secret",
    )
    .await;
    assert_eq!(resp.ca_cert, format!("{inter_pem}{root_pem}"));
    let chain = idprov_ca::pem::parse_certificates(&resp.client_cert).expect("chain");
    assert_eq!(chain.len(), 2, "leaf followed by the intermediate");
    assert_eq!(idprov_ca::pem::certificate_pem(&chain[1]), inter_pem);
    assert!(
        !server.data_dir().join("ca.key").exists(),
        "no CA was generated"
    );
    let _ = Duration::ZERO;
}

/// The leaf the server presents, verified against its CA at `clock`'s time
/// (a re-issued certificate starts in the clock's future).
async fn served_leaf(server: &TestServer) -> CertInfo {
    #[derive(Debug)]
    struct At(std::sync::Arc<idprov_proto::clock::ManualClock>);
    impl rustls::time_provider::TimeProvider for At {
        fn current_time(&self) -> Option<rustls_pki_types::UnixTime> {
            use idprov_proto::clock::Clock;
            Some(rustls_pki_types::UnixTime::since_unix_epoch(
                self.0
                    .now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("after 1970"),
            ))
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for der in idprov_ca::pem::parse_certificates(&server.ca_pem()).expect("CA") {
        roots.add(der).expect("root");
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("verifier");
    let config = rustls::ClientConfig::builder_with_details(
        provider,
        std::sync::Arc::new(At(server.clock.clone())),
    )
    .with_safe_default_protocol_versions()
    .expect("versions")
    .dangerous()
    .with_custom_certificate_verifier(verifier)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect("localhost".try_into().expect("name"), tcp)
        .await
        .expect("the served chain verifies at the server's time");
    let leaf = tls.get_ref().1.peer_certificates().expect("certificates")[0].clone();
    CertInfo::from_der(&leaf).expect("leaf")
}

#[tokio::test]
async fn a_running_server_swaps_in_a_reissued_certificate_without_a_restart() {
    let server = TestServer::start_with(Setup {
        sweep_interval: Duration::from_millis(100),
        ..Setup::default()
    })
    .await;
    let before = served_leaf(&server).await;
    assert_eq!(before.serial, cert_file(&server, "server.pem").serial);
    // 90 days of validity: re-issued once less than a third is left.
    server.clock.advance(Duration::from_secs(61 * 86_400));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let after = loop {
        let served = served_leaf(&server).await;
        if served.serial != before.serial {
            break served;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server still serves the old certificate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(after.serial, cert_file(&server, "server.pem").serial);
    assert!(after.not_after > before.not_after);
    assert!(after.dns_names.contains(&"localhost".to_owned()));
}
