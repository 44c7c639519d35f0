//! The rules the web page no longer keeps copies of: a CSV upload read by
//! the command-line tool's reader, labels and typed secrets checked by the
//! server, secrets from the server's generator, and label sheets whose new
//! secrets are stored all together or not at all.

use idprov_proto::ProvisionStatus;
use idprov_testkit::{TestDevice, TestServer, provision};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{add_secret, audit_events};

fn admin_http(server: &TestServer) -> reqwest::Client {
    server.http_with(
        &std::fs::read_to_string(server.data_dir().join("admin.pem")).expect("cert"),
        &std::fs::read_to_string(server.data_dir().join("admin.key")).expect("key"),
    )
}

async fn post(
    http: &reqwest::Client,
    server: &TestServer,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let r = http
        .post(server.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request");
    let status = r.status();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The status a device gets when it proves `secret`.
async fn status_with(server: &TestServer, device: &str, secret: &str) -> ProvisionStatus {
    let (_, resp, body) = provision(
        &server.http(),
        server,
        &TestDevice::new(device).request(Some(secret)),
    )
    .await;
    resp.unwrap_or_else(|| panic!("an answer: {body}")).status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_upload_is_read_as_the_cli_reads_it_with_errors_by_line() {
    let server = TestServer::start().await;
    let admin = admin_http(&server);
    // As a spreadsheet saves it: a byte-order mark, CRLF, quoting, a cell
    // marked as text, a row without a secret and one with a bad device ID.
    let csv = "\u{feff}deviceID,secret,validUntil\r\n\
               csv-1,S3CR3T-ONE-0123456789,\r\n\
               bad/id,S3CR3T-TWO-0123456789,\r\n\
               \"csv-2\",\"secret, with a comma\",\r\n\
               csv-3,,\r\n\
               csv-4,'=not-a-formula-0123,\r\n";
    let path = "/idprov/admin/oob/import?dryRun=true";
    let (status, dry) = post(&admin, &server, path, "text/csv", csv).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["accepted"], 3, "{dry}");
    assert_eq!(dry["dryRun"], true);
    let rejected = dry["rejected"].as_array().expect("rejected");
    assert_eq!(rejected.len(), 2, "{dry}");
    assert_eq!(
        (&rejected[0]["line"], &rejected[0]["deviceID"]),
        (&json!(3), &json!("bad/id"))
    );
    assert!(
        rejected[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("deviceID")),
        "{dry}"
    );
    assert_eq!(rejected[1]["line"], 5);
    assert!(
        rejected[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("secret")),
        "{dry}"
    );
    // The dry run stored nothing.
    assert!(
        !audit_events(&server)
            .await
            .contains(&"secrets_imported".to_owned())
    );
    let none = server
        .registry()
        .existing_secrets(
            vec!["csv-1".into(), "csv-2".into()],
            idprov_proto::UnixTime::EPOCH,
        )
        .await
        .expect("secrets");
    assert!(none.is_empty(), "{none:?}");

    let (status, done) = post(
        &admin,
        &server,
        "/idprov/admin/oob/import",
        "text/csv; charset=utf-8",
        csv,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["accepted"], 3, "{done}");
    assert_eq!(
        status_with(&server, "csv-2", "secret, with a comma").await,
        ProvisionStatus::Approved
    );
    // The spreadsheet's text mark is not part of the secret.
    assert_eq!(
        status_with(&server, "csv-4", "=not-a-formula-0123").await,
        ProvisionStatus::Approved
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_upload_with_a_wrong_header_or_an_unclosed_quote_stores_nothing() {
    let server = TestServer::start().await;
    let admin = admin_http(&server);
    let before = audit_events(&server).await.len();
    let (status, body) = post(
        &admin,
        &server,
        "/idprov/admin/oob/import",
        "text/csv",
        "id,password\nx,y\n",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("line 1") && e.contains("deviceID,secret")),
        "{body}"
    );
    // A quote left open swallows the rest of the file: that row is refused,
    // the rows before it are not.
    let (status, body) = post(
        &admin,
        &server,
        "/idprov/admin/oob/import?dryRun=true",
        "text/csv",
        "deviceID,secret\nok-1,secret-number-one\n\"open,secret\nok-2,x\n",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    assert_eq!(audit_events(&server).await.len(), before);
    // Not UTF-8: a row error, not a panic or a 500.
    let (status, body) = post(
        &admin,
        &server,
        "/idprov/admin/oob/import?dryRun=true",
        "text/csv",
        b"deviceID,secret\nd\xff,s\n".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rejected"][0]["line"], 2, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_and_typed_secrets_are_checked_by_the_server() {
    let server = TestServer::start().await;
    let admin = admin_http(&server);
    let ours = server.ca().fingerprint().to_string();
    let check = |body: Value| {
        let admin = admin.clone();
        let server = &server;
        async move {
            post(
                &admin,
                server,
                "/idprov/admin/labels/check",
                "application/json",
                body.to_string(),
            )
            .await
        }
    };

    // A label: percent-decoded ("+" stays "+"), its CA compared with ours.
    let (status, body) =
        check(json!({ "label": format!("idprov:1?id=lab%3A1&s=p%26ss+w%C3%BCrd-123&ca={ours}") }))
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["deviceID"], "lab:1");
    assert_eq!(body["oobSecret"], "p&ss+würd-123");
    assert_eq!(body["caMatches"], true);
    assert_eq!(body["caFingerprint"], ours.as_str());
    // The colon-separated hex form is the same fingerprint.
    let hex = server.ca().fingerprint().to_hex();
    let (_, body) =
        check(json!({ "label": format!("idprov:1?id=a&s=secret-12345&ca={hex}") })).await;
    assert_eq!(body["caMatches"], true, "{body}");
    assert_eq!(body["caFingerprint"], ours.as_str());
    // Another CA's label, and one that names none.
    let other = idprov_proto::Fingerprint::of_der(b"another CA");
    let (_, body) =
        check(json!({ "label": format!("idprov:1?id=a&s=secret-12345&ca={other}") })).await;
    assert_eq!(body["caMatches"], false, "{body}");
    let (_, body) = check(json!({ "label": "idprov:1?id=a&s=short" })).await;
    assert_eq!(body["caMatches"], Value::Null, "{body}");
    assert_eq!(body["warnings"].as_array().map(Vec::len), Some(1), "{body}");

    // Bad labels: a 400 naming the label, never repeating the secret.
    for label in [
        "https://example.com",
        "idprov:1?s=secret-only",
        "idprov:1?id=a&id=b&s=x",
        "idprov:1?id=-a&s=TOP-SECRET-VALUE",
        "idprov:1?id=a&s=%FF",
        "idprov:1?id=a&s=TOP-SECRET-VALUE&ca=nope",
    ] {
        let (status, body) = check(json!({ "label": label })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}: {body}");
        assert_eq!(body["field"], "label", "{label}: {body}");
        assert!(!body.to_string().contains("TOP-SECRET"), "{body}");
    }

    // Typed: the registration's own validation, field by field.
    let (status, body) =
        check(json!({ "deviceID": "sensor-1", "oobSecret": "typed-secret-1" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["label"]
            .as_str()
            .is_some_and(|l| l.starts_with("idprov:1?id=sensor-1&s=typed-secret-1&ca=")),
        "{body}"
    );
    for (input, field) in [
        (
            json!({ "deviceID": "bad id", "oobSecret": "x" }),
            "deviceID",
        ),
        (json!({ "deviceID": "ok", "oobSecret": "" }), "oobSecret"),
        (
            json!({ "deviceID": "ok", "oobSecret": "x", "validUntil": "tomorrow" }),
            "validUntil",
        ),
        (
            json!({ "deviceID": "ok", "oobSecret": "x", "validUntil": "2001-01-01T00:00:00Z" }),
            "validUntil",
        ),
    ] {
        let (status, body) = check(input.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{input}: {body}");
        assert_eq!(body["field"], field, "{input}: {body}");
    }
    for input in [
        json!({}),
        json!({ "label": "x", "deviceID": "y" }),
        json!({ "other": 1 }),
    ] {
        let (status, _) = check(input.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{input}");
    }
    // Checking stores nothing.
    assert!(
        !audit_events(&server)
            .await
            .iter()
            .any(|e| e.starts_with("secret")),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_secrets_come_from_the_server() {
    let server = TestServer::start().await;
    let admin = admin_http(&server);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..3 {
        let (status, body) = post(
            &admin,
            &server,
            "/idprov/admin/labels/secret",
            "application/json",
            "",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let secret = body["oobSecret"].as_str().expect("a secret").to_owned();
        assert_eq!(secret.len(), idprov_proto::secret::GENERATED_SECRET_CHARS);
        assert!(
            secret
                .chars()
                .all(|c| "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c)),
            "{secret}"
        );
        assert!(seen.insert(secret));
    }
    // Without credentials: refused before anything is made.
    let r = server
        .http()
        .post(server.url("/idprov/admin/labels/secret"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_sheet_replaces_all_its_secrets_in_one_transaction_or_none() {
    let server = TestServer::start().await;
    let admin = admin_http(&server);
    add_secret(&server, "sheet-1", "old-secret-of-sheet-1").await;
    add_secret(&server, "sheet-2", "old-secret-of-sheet-2").await;
    let events = audit_events(&server).await.len();

    // One bad entry anywhere refuses the whole sheet: no secret replaced,
    // no audit entry, and the old labels still work.
    for ids in [
        json!(["sheet-1", "sheet-2", "../etc"]),
        json!(["sheet-1", "sheet-2", "sheet-1"]),
        json!(["sheet-1", "sheet-2", ""]),
    ] {
        let (status, body) = post(
            &admin,
            &server,
            "/idprov/admin/labels",
            "application/json",
            json!({ "deviceIDs": ids }).to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{ids}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("deviceIDs\"[2]")),
            "{body}"
        );
    }
    assert_eq!(audit_events(&server).await.len(), events);
    let existing = server
        .registry()
        .existing_secrets(
            vec!["sheet-1".into(), "sheet-2".into(), "sheet-3".into()],
            idprov_proto::UnixTime::EPOCH,
        )
        .await
        .expect("secrets");
    assert_eq!(existing, ["sheet-1", "sheet-2"]);
    assert_eq!(
        status_with(&server, "sheet-1", "old-secret-of-sheet-1").await,
        ProvisionStatus::Approved
    );

    // A good sheet: every secret replaced (or added) together, under one
    // audit entry naming every device.
    let r = admin
        .post(server.url("/idprov/admin/labels"))
        .header("content-type", "application/json")
        .body(json!({ "deviceIDs": ["sheet-2", "sheet-3"], "format": "svg" }).to_string())
        .send()
        .await
        .expect("labels");
    assert_eq!(r.status(), StatusCode::OK);
    let svg = r.text().await.expect("svg");
    assert!(svg.contains("sheet-2") && svg.contains("sheet-3"));
    let entries = server
        .registry()
        .audit_entries(0, 10_000)
        .await
        .expect("audit");
    let sheets: Vec<_> = entries
        .iter()
        .filter(|e| e.event == "secrets_generated")
        .collect();
    assert_eq!(sheets.len(), 1, "one entry for the whole sheet");
    let detail = &sheets[0].detail;
    assert_eq!(detail["accepted"], 2, "{detail}");
    assert_eq!(detail["replaced"], 1, "{detail}");
    assert_eq!(
        detail["deviceIDs"],
        json!(["sheet-2", "sheet-3"]),
        "{detail}"
    );
    assert!(
        !entries
            .iter()
            .any(|e| e.event == "secret_added" && e.device_id.as_deref() == Some("sheet-3")),
        "no entry of its own per device: the sheet is one change"
    );
    assert_eq!(
        status_with(&server, "sheet-2", "old-secret-of-sheet-2").await,
        ProvisionStatus::Rejected
    );
    let existing = server
        .registry()
        .existing_secrets(
            vec!["sheet-2".into(), "sheet-3".into()],
            idprov_proto::UnixTime::EPOCH,
        )
        .await
        .expect("secrets");
    assert_eq!(existing, ["sheet-2", "sheet-3"]);
}
