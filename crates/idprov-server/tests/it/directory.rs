//! `GET /idprov/directory` (PROTOCOL.md §4).

use base64::Engine as _;
use idprov_testkit::TestServer;

#[tokio::test]
async fn directory_has_the_exact_keys_relative_paths_and_base64_ca() {
    let server = TestServer::start().await;
    let resp = server
        .http()
        .get(server.url("/idprov/directory"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/json",
        "JSON content type"
    );
    let body = resp.text().await.expect("body");
    // v1's keys in v1's order, then idprov v2's (ext) fields (PROTOCOL.md
    // §11.2), which older clients ignore.
    let prefix = r#"{"endpoints":{"directory":"/idprov/directory","status":"/idprov/status/{deviceID}","postOobSecret":"/idprov/oobsecret","postProvisionRequest":"/idprov/provreq","pakeParams":"/idprov/v2/params","pakeStart":"/idprov/v2/start","pakeFinish":"/idprov/v2/finish"},"caCert":""#;
    let suffix = r#"","version":"1","services":{},"pake":"P256-SHA256-HKDF-SHA256-HMAC-SHA256"}"#;
    assert!(body.starts_with(prefix), "{body}");
    assert!(body.ends_with(suffix), "{body}");
    let ca_b64 = &body[prefix.len()..body.len() - suffix.len()];
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(ca_b64)
        .expect("standard padded base64");
    assert_eq!(
        String::from_utf8(ca_pem).expect("PEM text"),
        server.ca_pem()
    );
}

#[tokio::test]
async fn configured_services_are_listed() {
    let server = TestServer::start_with(idprov_testkit::Setup {
        configure: Box::new(|c| {
            c.services
                .insert("mqtts".into(), "mqtts://hub.local:8883".into());
        }),
        ..Default::default()
    })
    .await;
    let body = server
        .http()
        .get(server.url("/idprov/directory"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(
        body.contains(r#""services":{"mqtts":"mqtts://hub.local:8883"}"#),
        "{body}"
    );
}

#[tokio::test]
async fn both_http_versions_are_served() {
    let server = TestServer::start().await;
    for http1 in [true, false] {
        let mut tls = server.tls_config(None);
        let mut builder = reqwest::Client::builder();
        if http1 {
            tls.alpn_protocols = vec![b"http/1.1".to_vec()];
            builder = builder.http1_only();
        }
        let builder = builder.use_preconfigured_tls(tls);
        let resp = builder
            .build()
            .expect("client")
            .get(server.url("/idprov/directory"))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        let want = if http1 {
            reqwest::Version::HTTP_11
        } else {
            reqwest::Version::HTTP_2
        };
        assert_eq!(resp.version(), want);
    }
}
