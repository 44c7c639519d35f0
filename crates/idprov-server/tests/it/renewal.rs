//! Certificate-authenticated requests: renewal, re-key, administrators and
//! plugins, and the rule that only the verified leaf authorizes (§2, §6).

use std::collections::HashSet;
use std::time::Duration;

use idprov_proto::ProvisionStatus;
use idprov_proto::sign::KeyVariant;
use idprov_store::{CertKind, IssueKind};
use idprov_testkit::{TestDevice, TestServer, provision};

use crate::common::{add_secret, leaf_of, provision_ok};

#[tokio::test]
async fn renewal_with_the_same_key_gets_new_random_serials() {
    let server = TestServer::start().await;
    add_secret(&server, "renew-1", "renewal-secret").await;
    let device = TestDevice::new("renew-1");
    let first = provision_ok(&server, &device, "renewal-secret").await;
    let mut cert = first.client_cert.clone();
    let mut serials = HashSet::from([leaf_of(&cert).serial]);
    for _ in 0..2 {
        // A new client per renewal: a new TLS connection with the device's certificate.
        let client = server.http_with(&cert, &device.key_pem());
        let (status, resp, body) = provision(&client, &server, &device.request(None)).await;
        assert_eq!(status, 200, "{body}");
        let resp = resp.expect("response");
        assert_eq!(resp.status, ProvisionStatus::Approved);
        // A verified client certificate means the empty key (§5 rule 1).
        assert_eq!(
            resp.verify(b"").map(|v| v.variant),
            Some(KeyVariant::RawSecret)
        );
        cert = resp.client_cert.clone();
        serials.insert(leaf_of(&cert).serial);
    }
    assert_eq!(serials.len(), 3, "three issuances, three different serials");
    let history = server
        .registry()
        .certificates_of(CertKind::Device, "renew-1")
        .await
        .expect("history");
    let kinds: Vec<_> = history.iter().map(|c| c.issue_kind).collect();
    assert_eq!(
        kinds,
        vec![IssueKind::Renewal, IssueKind::Renewal, IssueKind::Oob]
    );
}

#[tokio::test]
async fn renewal_with_a_new_key_is_recorded_as_a_rekey() {
    let server = TestServer::start().await;
    add_secret(&server, "rekey-1", "rekey-secret").await;
    let device = TestDevice::new("rekey-1");
    let first = provision_ok(&server, &device, "rekey-secret").await;
    let new_key = TestDevice::new("rekey-1");
    let client = server.http_with(&first.client_cert, &device.key_pem());
    let (_, resp, body) = provision(&client, &server, &new_key.request(None)).await;
    let resp = resp.expect("response");
    assert_eq!(resp.status, ProvisionStatus::Approved, "{body}");
    assert_eq!(
        leaf_of(&resp.client_cert).spki_der,
        idprov_ca::PublicKey::from_pem(&new_key.key.public_key_pem())
            .expect("key")
            .spki_der()
    );
    let history = server
        .registry()
        .certificates_of(CertKind::Device, "rekey-1")
        .await
        .expect("history");
    assert_eq!(history[0].issue_kind, IssueKind::Rekey);
}

#[tokio::test]
async fn a_device_certificate_renews_only_its_own_id() {
    let server = TestServer::start().await;
    add_secret(&server, "own-1", "own-secret").await;
    let device = TestDevice::new("own-1");
    let cert = provision_ok(&server, &device, "own-secret")
        .await
        .client_cert;
    let other = TestDevice::new("someone-else");
    let client = server.http_with(&cert, &device.key_pem());
    let (_, resp, _) = provision(&client, &server, &other.request(None)).await;
    assert_eq!(
        resp.expect("response").status,
        ProvisionStatus::Waiting,
        "another device ID falls to the OOB path"
    );
}

#[tokio::test]
async fn only_the_verified_leaf_authorizes_not_certificates_appended_after_it() {
    let server = TestServer::start().await;
    add_secret(&server, "leaf-1", "leaf-secret").await;
    let device = TestDevice::new("leaf-1");
    let cert = provision_ok(&server, &device, "leaf-secret")
        .await
        .client_cert;
    // A self-signed OU=plugin certificate appended to the device's chain.
    let plugin = {
        use rcgen_shim::self_signed_plugin;
        self_signed_plugin()
    };
    let chain = format!("{cert}{plugin}");
    let client = server.http_with(&chain, &device.key_pem());
    let victim = TestDevice::new("victim-device");
    let (status, resp, body) = provision(&client, &server, &victim.request(None)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        resp.expect("response").status,
        ProvisionStatus::Waiting,
        "never approved through the appended plugin certificate"
    );
    assert!(
        server
            .registry()
            .certificates_of(CertKind::Device, "victim-device")
            .await
            .expect("certs")
            .is_empty()
    );
}

/// A self-signed certificate made outside our CA.
mod rcgen_shim {
    pub fn self_signed_plugin() -> String {
        let key = idprov_ca::KeyAlgorithm::EcdsaP256.generate().expect("key");
        let ca = idprov_ca::Ca::generate(
            "attacker",
            idprov_ca::KeyAlgorithm::EcdsaP256,
            std::time::SystemTime::now(),
            std::time::Duration::from_secs(86_400),
        )
        .expect("rogue CA");
        let public = idprov_ca::PublicKey::from_pem(&key.public_key_pem()).expect("public");
        ca.ca
            .issue(
                &public,
                &idprov_ca::IssueParams {
                    common_name: "evil",
                    organizational_unit: "plugin",
                    organization: "attacker",
                    usage: idprov_ca::Usage::Client,
                    now: std::time::SystemTime::now(),
                    validity: std::time::Duration::from_secs(86_400),
                    crl_url: None,
                    ocsp_url: None,
                },
            )
            .expect("issue")
            .pem
    }
}

#[tokio::test]
async fn administrators_and_plugins_get_certificates_for_any_device() {
    let server = TestServer::start().await;
    let admin_cert = std::fs::read_to_string(server.data_dir().join("admin.pem")).expect("cert");
    let admin_key = std::fs::read_to_string(server.data_dir().join("admin.key")).expect("key");
    let (plugin_cert, plugin_key) =
        server.issue_client_cert("plugin", "hub-plugin", Duration::from_secs(3600));
    for (i, (cert, key)) in [
        (admin_cert, admin_key),
        (plugin_cert, plugin_key.to_string()),
    ]
    .iter()
    .enumerate()
    {
        let id = format!("by-admin-{i}");
        let device = TestDevice::new(&id);
        let client = server.http_with(cert, key);
        let (_, resp, body) = provision(&client, &server, &device.request(None)).await;
        let resp = resp.expect("response");
        assert_eq!(resp.status, ProvisionStatus::Approved, "{body}");
        assert!(resp.verify(b"").is_some(), "signed with the empty key");
        let history = server
            .registry()
            .certificates_of(CertKind::Device, &id)
            .await
            .expect("history");
        assert_eq!(history[0].issue_kind, IssueKind::Admin);
    }
}

#[tokio::test]
async fn a_service_certificate_is_not_privileged() {
    let server = TestServer::start().await;
    let (cert, key) = server.issue_client_cert("service", "mqtt", Duration::from_secs(3600));
    let device = TestDevice::new("svc-target");
    let (_, resp, _) = provision(
        &server.http_with(&cert, &key),
        &server,
        &device.request(None),
    )
    .await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Waiting);
}

#[tokio::test]
async fn a_revoked_device_certificate_falls_to_the_oob_path() {
    let server = TestServer::start().await;
    add_secret(&server, "rev-1", "revoke-secret").await;
    let device = TestDevice::new("rev-1");
    let cert = provision_ok(&server, &device, "revoke-secret")
        .await
        .client_cert;
    let serial = leaf_of(&cert).serial;
    server
        .admin()
        .revoke_device(
            "rev-1",
            &idprov_proto::admin::RevokeRequest {
                reason: Some("keyCompromise".into()),
                note: None,
                serial: Some(serial.to_string()),
            },
        )
        .await
        .expect("revoked");
    let (_, resp, _) = provision(
        &server.http_with(&cert, &device.key_pem()),
        &server,
        &device.request(None),
    )
    .await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Waiting);
    // And it can no longer read its own status.
    let r = server
        .http_with(&cert, &device.key_pem())
        .get(server.url("/idprov/status/rev-1"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 403);
}
