//! The OpenAPI document: served as committed, and describing exactly the
//! routes the server has.

use std::collections::BTreeSet;

use idprov_server::routes::{OPENAPI, ROUTES};
use idprov_testkit::TestServer;

#[tokio::test]
async fn the_served_document_is_the_committed_file() {
    let server = TestServer::start().await;
    let served = server
        .http()
        .get(server.url("/idprov/openapi.json"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi.json"
    ))
    .expect("docs/openapi.json");
    assert_eq!(served, committed);
    assert_eq!(served, OPENAPI);
}

#[tokio::test]
async fn the_document_describes_exactly_the_routes_and_each_is_routed() {
    let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("operations").keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        documented, routed,
        "docs/openapi.json and routes::ROUTES differ"
    );

    // Every listed route reaches a handler: never "unknown path", never 405.
    let server = TestServer::start().await;
    let cert = std::fs::read_to_string(server.data_dir().join("admin.pem")).expect("cert");
    let key = std::fs::read_to_string(server.data_dir().join("admin.key")).expect("key");
    let admin = server.http_with(&cert, &key);
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{deviceID}", "some-device")
            .replace("{ou}", "admin")
            .replace("{cn}", "nobody");
        let url = server.url(&concrete);
        let req = match *method {
            "get" => admin.get(&url),
            "post" => admin.post(&url).body("{}"),
            "delete" => admin.delete(&url),
            other => panic!("method {other}"),
        };
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let body = resp.text().await.expect("body");
        assert_ne!(status, 405, "{method} {path}");
        assert!(!body.contains("unknown path"), "{method} {path}: {body}");
    }
}
