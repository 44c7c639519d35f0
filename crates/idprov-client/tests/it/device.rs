//! One-shot provisioning: every branch of the device library against the
//! real server.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use idprov_client::device::{Device, DeviceError, Outcome};
use idprov_proto::clock::ManualClock;
use idprov_proto::{DeviceId, Fingerprint, Label, OobSecret};
use idprov_testkit::TestServer;

use crate::options;

fn ca_fingerprint(server: &TestServer) -> Fingerprint {
    server.ca().fingerprint()
}

#[tokio::test]
async fn waiting_then_approved_once_the_secret_is_registered() {
    let server = TestServer::start().await;
    let mut device =
        Device::open(options(&server, "d-wait", Some("registered-later"))).expect("open");
    assert_eq!(
        device.provision(false).await.expect("attempt"),
        Outcome::Waiting(Duration::from_secs(60))
    );
    server.add_secret("d-wait", "registered-later").await;
    let Outcome::Approved(installed) = device.provision(false).await.expect("attempt") else {
        panic!("expected Approved");
    };
    assert_eq!(installed.verified_with, "secret");
    let (set, leaf) = device.current().expect("read").expect("installed");
    assert_eq!(leaf.serial, installed.serial);
    assert_eq!(leaf.common_names, vec!["d-wait"]);
    assert!(
        set.path
            .starts_with(server.temp_dir().join("device-d-wait/sets"))
    );
    // The key kept from the first run is the certificate's key.
    assert!(set.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
}

#[tokio::test]
async fn a_wrong_secret_is_rejected() {
    let server = TestServer::start().await;
    server.add_secret("d-wrong", "the-right-secret").await;
    let mut device =
        Device::open(options(&server, "d-wrong", Some("a-wrong-secret"))).expect("open");
    assert_eq!(
        device.provision(false).await.expect("attempt"),
        Outcome::Rejected(Duration::ZERO)
    );
    assert!(device.current().expect("read").is_none());
}

#[tokio::test]
async fn renewal_over_mutual_tls_keeps_the_key_and_verifies_the_empty_key() {
    let server = TestServer::start().await;
    server.add_secret("d-renew", "renew-me-secret").await;
    let mut device =
        Device::open(options(&server, "d-renew", Some("renew-me-secret"))).expect("open");
    let Outcome::Approved(first) = device.provision(false).await.expect("attempt") else {
        panic!("expected Approved");
    };
    let Outcome::Approved(second) = device.provision(true).await.expect("renewal") else {
        panic!("expected Approved");
    };
    assert_ne!(first.serial, second.serial);
    assert_eq!(second.verified_with, "empty key");
    let history = server
        .registry()
        .certificates_of(idprov_store::CertKind::Device, "d-renew")
        .await
        .expect("history");
    assert_eq!(
        history[0].issue_kind,
        idprov_store::IssueKind::Renewal,
        "same key: a renewal, not a re-key"
    );
}

#[tokio::test]
async fn a_fingerprint_mismatch_is_refused_before_anything_signed_is_sent() {
    let server = TestServer::start().await;
    server.add_secret("d-fp", "fingerprint-secret").await;
    let mut opts = options(&server, "d-fp", Some("fingerprint-secret"));
    opts.ca_fingerprint = Some(Fingerprint::of_der(b"some other CA"));
    let before = server
        .registry()
        .audit_entries(0, 1000)
        .await
        .expect("audit")
        .len();
    let mut device = Device::open(opts).expect("open");
    let err = device.provision(false).await.unwrap_err();
    assert!(
        matches!(err, DeviceError::FingerprintMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was sent"));
    // The server saw no request: no waiting entry, no audit entry, the secret intact.
    assert_eq!(
        server
            .registry()
            .audit_entries(0, 1000)
            .await
            .expect("audit")
            .len(),
        before
    );
    assert!(
        server
            .admin()
            .list_requests(None)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        server.admin().list_secrets(None).await.expect("list").len(),
        1
    );
}

#[tokio::test]
async fn a_label_with_the_ca_fingerprint_provisions_without_trust_on_first_use() {
    let server = TestServer::start().await;
    server.add_secret("d-label", "label-secret-value").await;
    let label = Label {
        version: 1,
        device_id: DeviceId::parse("d-label").expect("id"),
        secret: OobSecret::parse("label-secret-value").expect("secret"),
        ca: Some(ca_fingerprint(&server)),
    };
    let parsed = Label::parse(&label.to_uri()).expect("label");
    let mut opts = options(&server, "d-label", None);
    opts.secret = Some(parsed.secret);
    opts.ca_fingerprint = parsed.ca;
    let mut device = Device::open(opts).expect("open");
    assert!(matches!(
        device.provision(false).await.expect("attempt"),
        Outcome::Approved(_)
    ));
    assert!(
        !server
            .temp_dir()
            .join("device-d-label/pending/ca.pem")
            .exists(),
        "no CA was trusted on first use"
    );
}

#[tokio::test]
async fn an_untrusted_server_certificate_is_refused() {
    let server = TestServer::start().await;
    let other = TestServer::start().await;
    let mut opts = options(&server, "d-untrusted", Some("irrelevant-secret"));
    // A CA pinned out of band that is not the server's.
    opts.ca_pem = Some(other.ca_pem());
    let mut device = Device::open(opts).expect("open");
    let err = device.provision(false).await.unwrap_err();
    assert!(matches!(err, DeviceError::ServerUntrusted { .. }), "{err}");
}

#[tokio::test]
async fn a_device_without_a_real_time_clock_uses_the_servers_time() {
    let server = TestServer::start().await;
    server.add_secret("d-1970", "no-rtc-secret").await;
    let mut opts = options(&server, "d-1970", Some("no-rtc-secret"));
    // The device's clock reads 1970; the software was built an hour ago.
    opts.clock = Arc::new(ManualClock::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(3600),
    ));
    opts.build_time = SystemTime::now() - Duration::from_secs(3600);
    opts.ca_fingerprint = Some(ca_fingerprint(&server));
    let mut device = Device::open(opts).expect("open");
    assert!(device.time().clock_is_wrong());
    let Outcome::Approved(installed) = device.provision(false).await.expect("attempt") else {
        panic!("expected Approved");
    };
    // Its notion of now came from the server's Date, not 1970.
    let now = device.time().now();
    assert!(
        now > SystemTime::now() - Duration::from_secs(120),
        "{now:?}"
    );
    assert!(installed.not_after > idprov_proto::UnixTime::from(SystemTime::now()));
}

#[tokio::test]
async fn the_installed_set_is_key_cert_and_ca_in_one_directory() {
    let server = TestServer::start().await;
    server.add_secret("d-files", "files-secret-value").await;
    let mut device =
        Device::open(options(&server, "d-files", Some("files-secret-value"))).expect("open");
    device.provision(false).await.expect("attempt");
    let current = server.temp_dir().join("device-d-files/current");
    let meta = std::fs::symlink_metadata(&current).expect("current");
    assert!(meta.file_type().is_symlink());
    use std::os::unix::fs::PermissionsExt;
    let key_mode = std::fs::metadata(current.join("key.pem"))
        .expect("key")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600);
    let leaf = idprov_client::device::leaf_of_pem(
        &std::fs::read_to_string(current.join("cert.pem")).expect("cert"),
    )
    .expect("leaf");
    assert_eq!(leaf.common_names, vec!["d-files"]);
    assert_eq!(
        std::fs::read_to_string(current.join("ca.pem")).expect("ca"),
        server.ca_pem()
    );
}

#[tokio::test]
async fn other_key_types_are_provisioned() {
    let server = TestServer::start().await;
    for (id, kt) in [
        ("d-p384", "p384"),
        ("d-ed", "ed25519"),
        ("d-rsa", "rsa2048"),
    ] {
        server.add_secret(id, "key-type-secret").await;
        let mut opts = options(&server, id, Some("key-type-secret"));
        opts.key_type = idprov_client::device::KeyAlgorithm::parse(kt).expect("key type");
        let mut device = Device::open(opts).expect("open");
        assert!(
            matches!(
                device.provision(false).await.expect("attempt"),
                Outcome::Approved(_)
            ),
            "{id}"
        );
    }
}

async fn approve(server: &TestServer, id: &str) {
    server
        .admin()
        .decide(id, "approve", &idprov_proto::admin::Decision::default())
        .await
        .expect("approved");
}

#[tokio::test]
async fn an_approval_signed_with_the_empty_key_is_accepted_with_a_pinned_ca() {
    let server = TestServer::start().await;
    let mut opts = options(&server, "d-approved", None);
    opts.ca_fingerprint = Some(ca_fingerprint(&server));
    let mut device = Device::open(opts).expect("open");
    assert!(matches!(
        device.provision(false).await.expect("attempt"),
        Outcome::Waiting(_)
    ));
    approve(&server, "d-approved").await;
    let Outcome::Approved(installed) = device.provision(false).await.expect("attempt") else {
        panic!("expected Approved");
    };
    assert_eq!(installed.verified_with, "empty key");
}

#[tokio::test]
async fn after_trust_on_first_use_the_empty_key_needs_the_danger_option() {
    let server = TestServer::start().await;
    // Trusting the CA on first use, the device cannot tell the server's
    // empty-key signature from a rogue server's: it discards the answer.
    let mut device = Device::open(options(&server, "d-tofu", None)).expect("open");
    assert!(matches!(
        device.provision(false).await.expect("attempt"),
        Outcome::Waiting(_)
    ));
    approve(&server, "d-tofu").await;
    let err = device.provision(false).await.unwrap_err();
    assert!(matches!(err, DeviceError::EmptyKeyUntrusted), "{err}");
    assert!(
        err.to_string().contains("fingerprint") && err.to_string().contains("empty key"),
        "the error names the way out: {err}"
    );
    assert!(
        device.current().expect("read").is_none(),
        "nothing was installed"
    );
    // The approval is used up, but the server re-delivers the certificate
    // it issued: the same device with its CA pinned now accepts it.
    let mut opts = options(&server, "d-tofu", None);
    opts.ca_fingerprint = Some(ca_fingerprint(&server));
    let mut pinned = Device::open(opts).expect("open");
    let Outcome::Approved(installed) = pinned.provision(false).await.expect("attempt") else {
        panic!("expected the re-delivered certificate");
    };
    let issued = server
        .registry()
        .certificates_of(idprov_store::CertKind::Device, "d-tofu")
        .await
        .expect("certificates");
    assert_eq!(issued.len(), 1, "re-delivered, not issued again");
    assert_eq!(installed.serial, issued[0].serial);

    let mut opts = options(&server, "d-danger", None);
    opts.danger_accept_empty_key_after_first_contact = true;
    let mut risky = Device::open(opts).expect("open");
    assert!(matches!(
        risky.provision(false).await.expect("attempt"),
        Outcome::Waiting(_)
    ));
    approve(&server, "d-danger").await;
    assert!(matches!(
        risky.provision(false).await.expect("attempt"),
        Outcome::Approved(_)
    ));
}
