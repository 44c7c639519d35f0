//! The OpenAPI document: generated from the types, committed as
//! `docs/openapi.json`, served as committed, and describing exactly the
//! routes the server has.

use std::collections::BTreeSet;

use idprov_server::routes::api_doc;
use idprov_server::routes::{OPENAPI, ROUTES};
use idprov_testkit::TestServer;
use serde_json::Value;

const REGENERATE: &str = "cargo run -p idprov-server --example openapi > docs/openapi.json";

fn committed() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi.json"
    ))
    .expect("docs/openapi.json")
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let generated = api_doc::document();
    let committed = committed();
    if generated != committed {
        let first = generated
            .lines()
            .zip(committed.lines())
            .position(|(g, c)| g != c)
            .unwrap_or_else(|| generated.lines().count().min(committed.lines().count()));
        panic!(
            "docs/openapi.json is not what the types generate (first difference at line {}: \
             generated {:?}, committed {:?}); regenerate it with `{REGENERATE}`",
            first + 1,
            generated.lines().nth(first).unwrap_or("<end>"),
            committed.lines().nth(first).unwrap_or("<end>"),
        );
    }
    // The embedded copy the server serves is the same file.
    assert_eq!(
        OPENAPI, committed,
        "rebuild: OPENAPI embeds docs/openapi.json"
    );
}

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
    assert_eq!(served, committed());
    assert_eq!(served, OPENAPI);
}

/// The document's (method, path) pairs.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("operations").keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    documented
}

#[tokio::test]
async fn the_document_describes_exactly_the_routes_and_each_is_routed() {
    let doc: Value = serde_json::from_str(&api_doc::document()).expect("valid JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        operations(&doc),
        routed,
        "the #[utoipa::path] attributes listed in routes::api_doc::ApiDoc and routes::ROUTES differ \
         (method, path); after fixing, regenerate with `{REGENERATE}`"
    );
    // Every operation is told apart, and says who may call it.
    let mut ids = BTreeSet::new();
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let id = op["operationId"].as_str().expect("operationId");
        assert!(ids.insert(id.to_owned()), "operationId {id} twice");
        assert!(op["security"].is_array(), "{method} {path}: no security");
        assert!(op["tags"].is_array(), "{method} {path}: no tag");
    }

    // Every listed route reaches a handler: never "unknown path", never 405.
    let server = TestServer::start().await;
    let cert = std::fs::read_to_string(server.data_dir().join("admin.pem")).expect("cert");
    let key = std::fs::read_to_string(server.data_dir().join("admin.key")).expect("key");
    let admin = server.http_with(&cert, &key);
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{deviceID}", "some-device")
            .replace("{ou}", "admin")
            .replace("{cn}", "nobody")
            .replace("{name}", "nobody");
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

/// The keys of a schema of `components/schemas`: (all, required).
fn keys_of(doc: &Value, schema: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let s = &doc["components"]["schemas"][schema];
    let all = s["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("schema {schema}"))
        .keys()
        .cloned()
        .collect();
    let required = s["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|k| k.as_str().expect("name").to_owned())
                .collect()
        })
        .unwrap_or_default();
    (all, required)
}

/// The answers built with `json!` in their handlers have schema-only types
/// (`routes::api_doc`): the keys a live answer has are the documented ones.
#[tokio::test]
async fn answers_built_in_handlers_have_the_documented_keys() {
    let doc: Value = serde_json::from_str(&api_doc::document()).expect("valid JSON");
    let server = TestServer::start().await;
    let cert = std::fs::read_to_string(server.data_dir().join("admin.pem")).expect("cert");
    let key = std::fs::read_to_string(server.data_dir().join("admin.key")).expect("key");
    let admin = server.http_with(&cert, &key);
    let cases = [
        ("get", "/idprov/admin/summary", "Summary"),
        ("get", "/idprov/admin/audit/status", "AuditStatus"),
        (
            "post",
            "/idprov/admin/devices/some-device/unlock",
            "Unlocked",
        ),
        ("get", "/admin/api/session", "SessionDocument"),
    ];
    for (method, path, schema) in cases {
        let url = server.url(path);
        let req = match method {
            "get" => admin.get(&url),
            _ => admin.post(&url),
        };
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), 200, "{method} {path}");
        let answer: Value = resp.json().await.expect("JSON");
        let sent: BTreeSet<String> = answer
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect();
        let (documented, required) = keys_of(&doc, schema);
        assert!(
            sent.is_subset(&documented) && required.is_subset(&sent),
            "{method} {path}: sends {sent:?}, {schema} documents {documented:?} (required {required:?})"
        );
    }
    // Nested: the dashboard's device counts.
    let summary: Value = admin
        .get(server.url("/idprov/admin/summary"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    let sent: BTreeSet<String> = summary["devices"]
        .as_object()
        .expect("devices")
        .keys()
        .cloned()
        .collect();
    assert_eq!(sent, keys_of(&doc, "DeviceCounts").0);
}
