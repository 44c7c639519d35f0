//! Administration end to end through the CLI: the waiting queue, revocation
//! and the CRL (checked with openssl), credentials, bulk import and export,
//! labels (decoded with an independent QR decoder), and the audit log.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::Duration;

use idprov_proto::ProvisionStatus;
use idprov_testkit::{TestDevice, TestServer, provision};

use crate::{idprov, require, stderr, stdout};

/// Runs the CLI against the test server as its local administrator.
fn cli(server: &TestServer, args: &[&str], stdin: Option<&str>) -> Output {
    let data = server.data_dir();
    let mut all: Vec<&str> = args.to_vec();
    let server_arg = server.server_arg();
    all.extend([
        "--server",
        &server_arg,
        "--data-dir",
        data.to_str().expect("path"),
    ]);
    tokio::task::block_in_place(|| idprov(&all, stdin))
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        stderr(out)
    );
    stdout(out)
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).expect("JSON output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_binds_to_the_key_reject_holds_until_cleared() {
    let server = TestServer::start().await;
    let device = TestDevice::new("queued-1");
    let client = server.http();
    let (_, resp, _) = provision(&client, &server, &device.request(None)).await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Waiting);

    let queue = json(&cli(&server, &["requests", "list", "--json"], None));
    let fp = queue[0]["keyFingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_owned();
    assert_eq!(queue[0]["state"], "waiting");
    let approved = json(&cli(
        &server,
        &["requests", "approve", "queued-1", "--json"],
        None,
    ));
    assert_eq!(approved["state"], "approved");
    assert_eq!(approved["keyFingerprints"][0], fp.as_str());

    // Another key of the same device stays Waiting; the approved key is Approved.
    let other = TestDevice::new("queued-1");
    let (_, resp, _) = provision(&client, &server, &other.request(None)).await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Waiting);
    // With two keys waiting, a decision must name its key.
    let out = cli(&server, &["requests", "reject", "queued-1"], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("2 waiting keys"), "{}", stderr(&out));
    let (_, resp, _) = provision(&client, &server, &device.request(None)).await;
    let resp = resp.expect("response");
    assert_eq!(resp.status, ProvisionStatus::Approved);
    assert!(
        resp.verify(b"").is_some(),
        "an approval is signed with the empty key"
    );
    // The approval was used up, by an issuance of its own kind.
    let history = server
        .registry()
        .certificates_of(idprov_store::CertKind::Device, "queued-1")
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].issue_kind, idprov_store::IssueKind::Approval);

    let queue = json(&cli(&server, &["requests", "list", "--json"], None));
    let other_fp = queue[0]["keyFingerprint"].as_str().expect("fp").to_owned();
    ok(&cli(
        &server,
        &[
            "requests", "reject", "queued-1", "--key", &other_fp, "--reason", "not ours",
        ],
        None,
    ));
    for _ in 0..6 {
        let (status, resp, _) = provision(&client, &server, &other.request(Some("guess"))).await;
        assert_eq!(status, 200, "a rejection is never a lockout");
        assert_eq!(resp.expect("response").status, ProvisionStatus::Rejected);
    }
    let queue = json(&cli(&server, &["requests", "list", "--json"], None));
    assert_eq!(queue[0]["state"], "rejected");
    assert_eq!(queue[0]["rejectionReason"], "not ours");
    ok(&cli(&server, &["requests", "clear", "queued-1"], None));
    let (_, resp, _) = provision(&client, &server, &other.request(None)).await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Waiting);

    // Approvals lapse after three days.
    let late = TestDevice::new("queued-2");
    provision(&client, &server, &late.request(None)).await;
    ok(&cli(&server, &["requests", "approve", "queued-2"], None));
    server.clock.advance(Duration::from_secs(3 * 86_400 + 60));
    let (_, resp, _) = provision(&client, &server, &late.request(None)).await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Waiting);

    let events: Vec<String> = server
        .registry()
        .audit_entries(0, 1000)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| format!("{} {}", e.event, e.actor))
        .collect();
    assert!(
        events.contains(&"request_approved admin:admin".to_owned()),
        "{events:?}"
    );
    assert!(events.contains(&"request_rejected admin:admin".to_owned()));
    assert!(events.contains(&"requests_cleared admin:admin".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_the_crl_and_openssl_refuses_the_certificate() {
    let server = TestServer::start().await;
    let dir = server.temp_dir().to_owned();
    server
        .admin()
        .add_secret(&idprov_proto::OobSecretMessage {
            device_id: "stolen".into(),
            oob_secret: "crl-test-secret".into(),
            valid_until: String::new(),
            pake_only: false,
        })
        .await
        .expect("secret");
    let device = TestDevice::new("stolen");
    let (_, resp, _) = provision(
        &server.http(),
        &server,
        &device.request(Some("crl-test-secret")),
    )
    .await;
    let cert = resp.expect("response").client_cert;
    std::fs::write(dir.join("stolen.pem"), &cert).expect("write");
    let ca = server.data_dir().join("ca-chain.pem");

    // An empty CRL exists from the first start, in the data directory too.
    let crl_file = server.data_dir().join("crl.pem");
    let first = std::fs::read_to_string(&crl_file).expect("crl.pem from the first start");
    assert!(first.starts_with("-----BEGIN X509 CRL-----"));

    let revoked = json(&cli(
        &server,
        &[
            "devices",
            "revoke",
            "stolen",
            "--reason",
            "keyCompromise",
            "--note",
            "left in a taxi",
            "--json",
        ],
        None,
    ));
    assert_eq!(revoked["serials"].as_array().map(Vec::len), Some(1));
    let number = revoked["crlNumber"].as_i64().expect("number");
    assert!(number >= 2, "the CRL number grew");

    // Served over HTTPS as DER and PEM.
    let der = server
        .http()
        .get(server.url("/idprov/crl"))
        .send()
        .await
        .expect("crl");
    assert_eq!(der.headers()["content-type"], "application/pkix-crl");
    let der = der.bytes().await.expect("body");
    let pem = server
        .http()
        .get(server.url("/idprov/crl"))
        .header("accept", "application/x-pem-file")
        .send()
        .await
        .expect("crl")
        .text()
        .await
        .expect("body");
    assert_eq!(
        pem,
        std::fs::read_to_string(&crl_file).expect("crl.pem"),
        "the file is the served CRL"
    );
    std::fs::write(dir.join("crl.der"), &der).expect("write");

    // The revocation note reaches the audit log only.
    let entry = server
        .registry()
        .audit_entries(0, 1000)
        .await
        .expect("audit")
        .into_iter()
        .find(|e| e.event == "certificate_revoked")
        .expect("audited");
    assert_eq!(entry.detail["note"], "left in a taxi");
    assert_eq!(entry.detail["reason"], 1);
    assert!(!pem.contains("taxi"));

    // Renewal with the revoked certificate falls to the OOB path.
    let key = device.key_pem();
    let (_, resp, _) = provision(
        &server.http_with(&cert, &key),
        &server,
        &device.request(None),
    )
    .await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Waiting);

    if !require(&["openssl"], "openssl") {
        return;
    }
    let out = Command::new("openssl")
        .args([
            "crl", "-inform", "DER", "-noout", "-text", "-verify", "-CAfile",
        ])
        .arg(&ca)
        .arg("-in")
        .arg(dir.join("crl.der"))
        .output()
        .expect("openssl crl");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("verify OK"), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(
        text.contains(&format!("X509v3 CRL Number: \n                {number}")),
        "{text}"
    );
    std::fs::write(
        dir.join("ca-and-crl.pem"),
        format!("{}{}", std::fs::read_to_string(&ca).expect("ca"), pem),
    )
    .expect("write");
    let out = Command::new("openssl")
        .args(["verify", "-crl_check", "-CAfile"])
        .arg(dir.join("ca-and-crl.pem"))
        .arg(dir.join("stolen.pem"))
        .output()
        .expect("openssl verify");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("revoked"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_and_service_credentials() {
    let server = TestServer::start().await;
    let dir = server.temp_dir().join("creds");
    let dir_s = dir.to_str().expect("path").to_owned();
    // SAFETY of the environment: the variable is read by the child process only.
    let out = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_idprov"))
            .args(["admin", "create", "alice", "--out", &dir_s, "--p12"])
            .arg(dir.join("alice.p12"))
            .args(["--server", &server.server_arg(), "--data-dir"])
            .arg(server.data_dir())
            .env("IDPROV_P12_PASSWORD", "p12-test-password")
            .output()
            .expect("runs")
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::metadata(dir.join("alice.key"))
            .expect("key")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // Alice's certificate is an administrator credential of its own.
    let ca = server.data_dir().join("ca-chain.pem");
    let as_alice = |args: &[&str]| {
        let mut all = args.to_vec();
        let server_arg = server.server_arg();
        let (c, k, a) = (
            dir.join("alice.pem").display().to_string(),
            dir.join("alice.key").display().to_string(),
            ca.display().to_string(),
        );
        all.extend([
            "--server",
            &server_arg,
            "--cert",
            &c,
            "--key",
            &k,
            "--ca",
            &a,
        ]);
        let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        tokio::task::block_in_place(|| {
            idprov(&all.iter().map(String::as_str).collect::<Vec<_>>(), None)
        })
    };
    ok(&as_alice(&[
        "oob",
        "add",
        "by-alice",
        "a-secret-from-alice",
    ]));
    let secrets = json(&cli(&server, &["oob", "list", "--json"], None));
    assert_eq!(
        secrets[0]["createdBy"], "admin:alice",
        "audit entries name the person"
    );
    let admins = json(&cli(&server, &["admin", "list", "--json"], None));
    assert!(
        admins
            .as_array()
            .expect("list")
            .iter()
            .any(|c| c["subject"] == "alice")
    );

    if require(&["openssl"], "openssl") {
        let out = Command::new("openssl")
            .args([
                "pkcs12",
                "-info",
                "-nokeys",
                "-passin",
                "pass:p12-test-password",
                "-in",
            ])
            .arg(dir.join("alice.p12"))
            .output()
            .expect("openssl pkcs12");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("CN = alice"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A service certificate for a broker, with names.
    let out = cli(
        &server,
        &[
            "certs",
            "issue",
            "--ou",
            "service",
            "--cn",
            "broker",
            "--san",
            "127.0.0.1",
            "--san",
            "mqtt.local",
            "--out",
            &dir_s,
        ],
        None,
    );
    ok(&out);
    let info = idprov_ca::CertInfo::from_der(
        &idprov_ca::pem::parse_certificates(
            &std::fs::read_to_string(dir.join("broker.pem")).expect("pem"),
        )
        .expect("cert")[0],
    )
    .expect("info");
    assert!(info.eku_server_auth && info.eku_client_auth);
    assert_eq!(info.dns_names, vec!["mqtt.local"]);
    assert!(dir.join("ca.pem").exists());

    // Revoking Alice locks her out.
    ok(&cli(&server, &["admin", "revoke", "alice"], None));
    let out = as_alice(&["oob", "list"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let plugins = cli(
        &server,
        &[
            "certs", "issue", "--ou", "admin", "--cn", "x", "--out", &dir_s,
        ],
        None,
    );
    assert_eq!(
        plugins.status.code(),
        Some(2),
        "administrators come from `admin create`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_import_reports_by_line_and_commits_valid_rows_at_once() {
    idprov_testkit::capture_logs();
    let server = TestServer::start().await;
    let dir = server.temp_dir().to_owned();
    server
        .admin()
        .add_secret(&idprov_proto::OobSecretMessage {
            device_id: "existing".into(),
            oob_secret: "an-older-secret".into(),
            valid_until: String::new(),
            pake_only: false,
        })
        .await
        .expect("secret");
    let csv = dir.join("devices.csv");
    std::fs::write(
        &csv,
        "deviceID,secret,validUntil\n\
         good-1,secret-number-1,\n\
         ../bad,secret-number-2,\n\
         good-2,secret-number-3,2099-01-01T00:00:00Z\n\
         good-1,secret-number-4,\n\
         existing,secret-number-5,\n\
         past,secret-number-6,2000-01-01T00:00:00Z\n",
    )
    .expect("write");
    let path = csv.to_str().expect("path");
    let audit_before = server
        .registry()
        .audit_entries(0, 1000)
        .await
        .expect("audit")
        .len();

    // A dry run validates like the real thing and changes nothing.
    let out = cli(
        &server,
        &["oob", "import", path, "--dry-run", "--json"],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "rows rejected: exit 1");
    let dry: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(dry["accepted"], 3);
    assert_eq!(dry["replaced"], 1);
    assert_eq!(dry["dryRun"], true);
    let lines: Vec<u64> = dry["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| r["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(
        lines,
        vec![3, 5, 7],
        "physical lines, the header being line 1"
    );
    let errors = dry["rejected"].to_string();
    assert!(
        errors.contains("repeated")
            && errors.contains("in the past")
            && errors.contains("deviceID")
    );
    assert_eq!(
        server.admin().list_secrets(None).await.expect("list").len(),
        1
    );
    assert_eq!(
        server
            .registry()
            .audit_entries(0, 1000)
            .await
            .expect("audit")
            .len(),
        audit_before
    );

    // --no-replace makes an existing device an error.
    let out = cli(
        &server,
        &["oob", "import", path, "--dry-run", "--no-replace", "--json"],
        None,
    );
    let strict: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(strict["accepted"], 2);
    assert!(
        strict["rejected"]
            .to_string()
            .contains("already registered")
    );

    // The real run commits the valid rows, in one audit entry.
    let out = cli(&server, &["oob", "import", path, "--json"], None);
    assert_eq!(out.status.code(), Some(1));
    let real: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(
        (real["accepted"].clone(), real["replaced"].clone()),
        (3.into(), 1.into())
    );
    assert_eq!(
        server.admin().list_secrets(None).await.expect("list").len(),
        3
    );
    let entries = server
        .registry()
        .audit_entries(0, 1000)
        .await
        .expect("audit");
    assert_eq!(
        entries.len(),
        audit_before + 1,
        "one entry for the whole import"
    );
    assert_eq!(entries.last().expect("entry").event, "secrets_imported");
    assert_eq!(entries.last().expect("entry").detail["accepted"], 3);
    assert_eq!(
        entries.last().expect("entry").detail["rowsSha256"]
            .as_str()
            .map(str::len),
        Some(64),
        "a hash of the rows, not one entry per row"
    );
    // The server's log names the same digest as the audit entry (it once
    // logged the digest of nothing).
    let digest = entries.last().expect("entry").detail["rowsSha256"]
        .as_str()
        .expect("digest")
        .to_owned();
    let logs = idprov_testkit::captured_logs();
    assert!(
        logs.contains(&format!("rows_sha256={digest}")),
        "the import's log line carries {digest}"
    );
    assert!(
        !logs.contains(
            "rows_sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        ),
        "never the digest of no rows"
    );

    // JSON arrays report the element index and the line it starts on.
    let json_file = dir.join("devices.json");
    std::fs::write(
        &json_file,
        "[\n  {\"deviceID\": \"j-1\", \"oobSecret\": \"json-secret-1\"},\n  {\"deviceID\": \"j 2\",\n   \"oobSecret\": \"json-secret-2\"},\n  {\"deviceID\": \"j-3\", \"oobSecret\": \"json-secret-3\"}\n]\n",
    )
    .expect("write");
    let out = cli(
        &server,
        &["oob", "import", json_file.to_str().expect("p"), "--json"],
        None,
    );
    let result: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(result["accepted"], 2);
    assert_eq!(result["rejected"][0]["index"], 1);
    assert_eq!(result["rejected"][0]["line"], 3);

    // NDJSON, all valid: exit 0.
    let nd = dir.join("devices.ndjson");
    std::fs::write(&nd, "{\"deviceID\":\"n-1\",\"oobSecret\":\"ndjson-secret-1\"}\n\n{\"deviceID\":\"n-2\",\"oobSecret\":\"ndjson-secret-2\"}\n")
        .expect("write");
    ok(&cli(
        &server,
        &["oob", "import", nd.to_str().expect("p")],
        None,
    ));
    assert_eq!(
        server.admin().list_secrets(None).await.expect("list").len(),
        7
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_secrets_labels_and_export() {
    let server = TestServer::start().await;
    let dir = server.temp_dir().to_owned();
    let input = dir.join("new.csv");
    std::fs::write(
        &input,
        "deviceID,secret\nlbl-1,\nlbl-2,\nlbl-3,given-secret-3\n",
    )
    .expect("write");
    let out_file = dir.join("generated.csv");
    let sheet = dir.join("labels.png");
    let out = cli(
        &server,
        &[
            "oob",
            "import",
            input.to_str().expect("p"),
            "--generate",
            "--out",
            out_file.to_str().expect("p"),
            "--labels",
            sheet.to_str().expect("p"),
        ],
        None,
    );
    ok(&out);
    assert_eq!(
        std::fs::metadata(&out_file)
            .expect("out")
            .permissions()
            .mode()
            & 0o777,
        0o600,
        "a file of secrets is 0600"
    );
    let generated = std::fs::read_to_string(&out_file).expect("read");
    let rows: Vec<Vec<&str>> = generated
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0][1].len(), 26, "a generated secret");
    assert_eq!(rows[2][1], "given-secret-3");
    // The input is never overwritten, nor an existing output.
    let again = cli(
        &server,
        &[
            "oob",
            "import",
            input.to_str().expect("p"),
            "--generate",
            "--out",
            out_file.to_str().expect("p"),
        ],
        None,
    );
    assert_eq!(again.status.code(), Some(2));

    // The sheet holds one QR code per device with the label URI and the CA fingerprint.
    if require(&["zbarimg"], "zbar-tools") {
        let decoded = Command::new("zbarimg")
            .args(["-q", "--raw"])
            .arg(&sheet)
            .output()
            .expect("zbarimg");
        let mut uris: Vec<String> = String::from_utf8_lossy(&decoded.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        uris.sort();
        assert_eq!(uris.len(), 3, "{uris:?}");
        let fp = server.ca().fingerprint();
        for (row, uri) in rows.iter().zip(&uris) {
            let label = idprov_proto::Label::parse(uri).expect("a label URI");
            assert_eq!(label.device_id.as_str(), row[0]);
            assert_eq!(label.secret.expose(), row[1]);
            assert_eq!(label.ca, Some(fp));
        }
    }
    // The same as SVG, rendered by an independent renderer.
    let with_svg =
        require(&["rsvg-convert"], "librsvg2-bin") && require(&["zbarimg"], "zbar-tools");
    if with_svg {
        let svg = dir.join("one.svg");
        ok(&cli(
            &server,
            &[
                "oob",
                "add",
                "svg-1",
                "--labels",
                svg.to_str().expect("p"),
                "--json",
            ],
            None,
        ));
        let png = dir.join("one.png");
        let status = Command::new("rsvg-convert")
            .args(["-d", "300", "-p", "300", "-o"])
            .arg(&png)
            .arg(&svg)
            .output()
            .expect("rsvg-convert");
        assert!(status.status.success());
        let decoded = Command::new("zbarimg")
            .args(["-q", "--raw"])
            .arg(&png)
            .output()
            .expect("zbarimg");
        let uri = String::from_utf8_lossy(&decoded.stdout).trim().to_owned();
        assert!(uri.starts_with("idprov:1?id=svg-1&s="), "{uri}");
    }

    // Export: the same header, without secrets unless asked; with secrets audited.
    let plain = ok(&cli(&server, &["oob", "export"], None));
    assert!(plain.starts_with("deviceID,secret,validUntil\n"));
    assert!(plain.contains("lbl-3,,"), "{plain}");
    let with = dir.join("export.csv");
    ok(&cli(
        &server,
        &[
            "oob",
            "export",
            "--with-secrets",
            "--out",
            with.to_str().expect("p"),
        ],
        None,
    ));
    let text = std::fs::read_to_string(&with).expect("read");
    assert!(text.contains("lbl-3,given-secret-3,"));
    assert_eq!(
        std::fs::metadata(&with).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    // The export re-imports.
    let reimport = cli(
        &server,
        &[
            "oob",
            "import",
            with.to_str().expect("p"),
            "--format",
            "csv",
            "--json",
        ],
        None,
    );
    let r: serde_json::Value = serde_json::from_str(&stdout(&reimport)).expect("json");
    // Every registered secret, the SVG label's device included when it ran.
    assert_eq!(r["replaced"], if with_svg { 4 } else { 3 });
    let audited = server
        .registry()
        .audit_entries(0, 1000)
        .await
        .expect("audit")
        .into_iter()
        .any(|e| e.event == "secrets_exported" && e.actor == "admin:admin");
    assert!(audited);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_with_secrets_need_loopback_and_an_administrator() {
    let server = TestServer::start().await;
    let (cert, key) = server.issue_client_cert("plugin", "exporter", Duration::from_secs(600));
    let plugin = server.http_with(&cert, &key);
    let r = plugin
        .get(server.url("/idprov/admin/oob/export?withSecrets=true"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 403, "a plugin may not export secrets");
    let admin_cert = std::fs::read_to_string(server.data_dir().join("admin.pem")).expect("cert");
    let admin_key = std::fs::read_to_string(server.data_dir().join("admin.key")).expect("key");
    let admin = server.http_with(&admin_cert, &admin_key);
    let r = admin
        .get(server.url("/idprov/admin/oob/export?withSecrets=true"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200, "over loopback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_export_verifies_and_names_tampering() {
    let server = TestServer::start().await;
    let dir = server.temp_dir().to_owned();
    for i in 0..5 {
        server
            .admin()
            .add_secret(&idprov_proto::OobSecretMessage {
                device_id: format!("audited-{i}"),
                oob_secret: "audited-secret".into(),
                valid_until: String::new(),
                pake_only: false,
            })
            .await
            .expect("secret");
    }
    let export = dir.join("audit.jsonl");
    ok(&cli(
        &server,
        &["audit", "export", "--out", export.to_str().expect("p")],
        None,
    ));
    let verified = ok(&cli(
        &server,
        &["audit", "verify", "--file", export.to_str().expect("p")],
        None,
    ));
    assert!(verified.contains("audit log verified"), "{verified}");
    ok(&cli(&server, &["audit", "verify"], None));

    // An edited row in an export is named.
    let text = std::fs::read_to_string(&export).expect("read");
    let edited = text.replacen("audited-2", "audited-X", 1);
    let tampered = dir.join("tampered.jsonl");
    std::fs::write(&tampered, edited).expect("write");
    let out = cli(
        &server,
        &["audit", "verify", "--file", tampered.to_str().expect("p")],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("was altered"), "{}", stderr(&out));

    // A truncated tail in the database is found against the signed checkpoint.
    // As an attacker with the database would: drop the guard, delete.
    if let idprov_server::config::Database::Postgres(url) = &server.config.database {
        let db = idprov_testkit::postgres::admin_url(url).await;
        db.batch_execute(
            "ALTER TABLE audit_log DISABLE TRIGGER USER;
             DELETE FROM audit_log WHERE seq > (SELECT MAX(seq) - 2 FROM audit_log);",
        )
        .await
        .expect("truncate");
    } else {
        let conn = rusqlite::Connection::open(server.data_dir().join("idprov.db")).expect("open");
        conn.execute_batch("DROP TRIGGER audit_log_no_delete")
            .expect("drop trigger");
        let last: i64 = conn
            .query_row("SELECT MAX(seq) FROM audit_log", [], |r| r.get(0))
            .expect("max");
        conn.execute("DELETE FROM audit_log WHERE seq > ?1", [last - 2])
            .expect("delete");
    }
    let out = cli(&server, &["audit", "verify"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_out_device_is_unlocked_from_the_cli() {
    let server = TestServer::start().await;
    ok(&cli(
        &server,
        &["oob", "add", "locked-1", "-"],
        Some("the-right-secret\n"),
    ));
    let device = TestDevice::new("locked-1");
    let client = server.http();
    // Five wrong secrets from this address: the fifth starts a lock.
    for _ in 0..5 {
        let (status, resp, _) = provision(&client, &server, &device.request(Some("wrong"))).await;
        assert_eq!(status, 200);
        assert_eq!(resp.expect("response").status, ProvisionStatus::Rejected);
    }
    let (status, _, body) =
        provision(&client, &server, &device.request(Some("the-right-secret"))).await;
    assert_eq!(status, 429, "locked out even with the right secret: {body}");

    let cleared = json(&cli(
        &server,
        &["devices", "unlock", "locked-1", "--json"],
        None,
    ));
    assert_eq!(cleared["deviceID"], "locked-1");
    assert_eq!(cleared["cleared"], 1);
    let (status, resp, _) =
        provision(&client, &server, &device.request(Some("the-right-secret"))).await;
    assert_eq!(status, 200);
    assert_eq!(resp.expect("response").status, ProvisionStatus::Approved);

    // An ID that is not valid syntax is refused without a request.
    let out = cli(&server, &["devices", "unlock", "../etc"], None);
    assert_ne!(out.status.code(), Some(0));
    let events: Vec<String> = server
        .registry()
        .audit_entries(0, 1000)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| format!("{} {}", e.event, e.actor))
        .collect();
    assert!(
        events.iter().any(|e| e.starts_with("lockout_started ")),
        "{events:?}"
    );
    assert!(
        events.contains(&"lockout_cleared admin:admin".to_owned()),
        "{events:?}"
    );
    let metrics = server.metrics().await;
    assert!(metrics.contains("idprov_lockouts_total"), "{metrics}");
}

/// An export written before the audit vocabulary became one enum (by the
/// previous release, whose store still added `replaced` and `serials` to
/// details itself; `tests/data/audit-before-event-enum*`) still verifies
/// against its CA's signed checkpoint, and an edit in it is still named.
#[test]
fn an_export_from_before_the_event_enum_verifies() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");
    let log = format!("{data}audit-before-event-enum.jsonl");
    let ca = format!("{data}audit-before-event-enum-ca.pem");
    let verify = |file: &str| {
        Command::new(env!("CARGO_BIN_EXE_idprov"))
            .args(["audit", "verify", "--file", file, "--ca", &ca])
            .output()
            .expect("run idprov")
    };
    let out = verify(&log);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("audit log verified"),
        "{}",
        stdout(&out)
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let edited = std::fs::read_to_string(&log).expect("read").replacen(
        "\"replaced\":true",
        "\"replaced\":false",
        1,
    );
    let tampered = dir.path().join("tampered.jsonl");
    std::fs::write(&tampered, edited).expect("write");
    let out = verify(tampered.to_str().expect("path"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("was altered"), "{}", stderr(&out));
}
