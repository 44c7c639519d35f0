//! 401 versus 403 (PROTOCOL.md §3): authorization is decided before any
//! lookup, from the verified leaf only.

use std::time::Duration;

use idprov_proto::OobSecretMessage;
use idprov_testkit::{TestDevice, TestServer};

use crate::common::{add_secret, provision_ok};

async fn status_code(client: &reqwest::Client, server: &TestServer, id: &str) -> u16 {
    client
        .get(server.url(&format!("/idprov/status/{id}")))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

#[tokio::test]
async fn status_needs_an_admin_a_plugin_or_the_device_itself() {
    let server = TestServer::start().await;
    add_secret(&server, "me", "status-secret").await;
    let device = TestDevice::new("me");
    let cert = provision_ok(&server, &device, "status-secret")
        .await
        .client_cert;
    let own = server.http_with(&cert, &device.key_pem());
    let (svc_cert, svc_key) = server.issue_client_cert("service", "svc", Duration::from_secs(600));
    let service = server.http_with(&svc_cert, &svc_key);
    let (plg_cert, plg_key) = server.issue_client_cert("plugin", "plg", Duration::from_secs(600));
    let plugin = server.http_with(&plg_cert, &plg_key);

    let cases: &[(&str, &reqwest::Client, &str, u16)] = &[
        ("anonymous/existing", &server.http(), "me", 401),
        ("anonymous/unknown", &server.http(), "nobody", 401),
        ("device/own", &own, "me", 200),
        ("device/other-existing", &own, "other", 403),
        ("device/other-unknown", &own, "nobody", 403),
        ("service/existing", &service, "me", 403),
        ("plugin/existing", &plugin, "me", 200),
        ("plugin/unknown", &plugin, "nobody", 404),
    ];
    add_secret(&server, "other", "another-secret").await;
    for (name, client, id, want) in cases {
        assert_eq!(status_code(client, &server, id).await, *want, "{name}");
    }
    // A malformed ID by an authorized caller is a 400.
    assert_eq!(status_code(&plugin, &server, "bad%20id").await, 400);
    // Unauthenticated callers learn nothing, even about syntax.
    assert_eq!(status_code(&server.http(), &server, "bad%20id").await, 401);
}

#[tokio::test]
async fn posting_secrets_needs_an_admin_or_plugin() {
    let server = TestServer::start().await;
    let msg = OobSecretMessage {
        device_id: "d".into(),
        oob_secret: "some-secret-value".into(),
        valid_until: String::new(),
        pake_only: false,
    };
    let post = |client: reqwest::Client| {
        let url = server.url("/idprov/oobsecret");
        let body = msg.to_json();
        async move {
            client
                .post(url)
                .body(body)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    };
    assert_eq!(post(server.http()).await, 401);
    let (cert, key) = server.issue_client_cert("iotdevice", "d", Duration::from_secs(600));
    assert_eq!(post(server.http_with(&cert, &key)).await, 403);
    let (cert, key) = server.issue_client_cert("plugin", "p", Duration::from_secs(600));
    assert_eq!(post(server.http_with(&cert, &key)).await, 200);
    assert!(server.admin().list_secrets(None).await.expect("list").len() == 1);
}

/// Driven by the route table: every administrative route and method
/// answers 401 without credentials and 403 to a device, a service and any
/// other client certificate — before any lookup, so the answer is
/// the same for objects that exist and objects that do not.
#[tokio::test]
async fn every_admin_route_refuses_everyone_but_an_administrator() {
    let server = TestServer::start().await;
    server.add_secret("sensor-1", "a-secret-that-exists").await;
    let device = server.issue_client_cert("iotdevice", "sensor-1", Duration::from_secs(600));
    let service = server.issue_client_cert("service", "broker", Duration::from_secs(600));
    let client = server.issue_client_cert("client", "someone", Duration::from_secs(600));
    let clients = [
        ("no credentials", server.http(), 401),
        ("a device", server.http_with(&device.0, &device.1), 403),
        ("a service", server.http_with(&service.0, &service.1), 403),
        ("a client", server.http_with(&client.0, &client.1), 403),
    ];
    let mut checked = 0;
    for (method, path) in idprov_server::routes::ROUTES {
        if !idprov_server::routes::is_admin_route(method, path) {
            continue;
        }
        for (id, who_exists) in [("sensor-1", true), ("nobody-here", false)] {
            let url = server.url(
                &path
                    .replace("{deviceID}", id)
                    .replace("{ou}", "admin")
                    .replace("{cn}", if who_exists { "admin" } else { "nobody" })
                    .replace("{name}", "admin"),
            );
            for (who, client, expected) in &clients {
                let req = match *method {
                    "get" => client.get(&url),
                    "post" => client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body("{}"),
                    "delete" => client.delete(&url),
                    other => panic!("method {other}"),
                };
                let status = req.send().await.expect("request").status().as_u16();
                assert_eq!(status, *expected, "{method} {path} ({id}) by {who}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} administrative routes");
    // Nothing changed: the secret is still there, nothing was revoked.
    assert!(
        server
            .registry()
            .live_secret("sensor-1", idprov_proto::clock::unix_now(&*server.clock))
            .await
            .expect("read")
            .is_some()
    );
}

#[tokio::test]
async fn admin_listings_need_an_admin() {
    let server = TestServer::start().await;
    for path in [
        "/idprov/admin/devices",
        "/idprov/admin/oob",
        "/idprov/admin/requests",
    ] {
        let r = server
            .http()
            .get(server.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 401, "{path}");
        let (cert, key) = server.issue_client_cert("service", "svc", Duration::from_secs(600));
        let r = server
            .http_with(&cert, &key)
            .get(server.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 403, "{path}");
    }
}
