//! Admin commands against a running server: output, `--json`, exit codes.

use idprov_testkit::{TestDevice, TestServer, provision};

use crate::{idprov, stderr, stdout};

fn conn(server: &TestServer) -> Vec<String> {
    vec![
        "--server".into(),
        server.server_arg(),
        "--data-dir".into(),
        server.data_dir().display().to_string(),
    ]
}

fn run(server: &TestServer, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(conn(server));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    idprov(&refs, stdin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oob_add_generates_a_strong_secret_that_provisions() {
    let server = TestServer::start().await;
    let out =
        tokio::task::block_in_place(|| run(&server, &["oob", "add", "gen-1", "--json"], None));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    let secret = v["oobSecret"]
        .as_str()
        .expect("the generated secret is printed");
    assert_eq!(secret.len(), 26);
    assert!(
        secret
            .chars()
            .all(|c| "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c))
    );
    assert_eq!(v["deviceID"], "gen-1");
    assert_eq!(v["replaced"], false);
    // The label URI a sheet's QR code would hold: ID, secret, CA fingerprint.
    let label = idprov_proto::Label::parse(v["label"].as_str().expect("label URI printed"))
        .expect("a valid label URI");
    assert_eq!(label.device_id.as_str(), "gen-1");
    assert_eq!(label.secret.expose(), secret);
    assert_eq!(label.ca, Some(server.ca().fingerprint()));
    let device = TestDevice::new("gen-1");
    let (_, resp, _) = provision(&server.http(), &server, &device.request(Some(secret))).await;
    assert_eq!(
        resp.expect("response").status,
        idprov_proto::ProvisionStatus::Approved
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_from_stdin_files_and_arguments() {
    let server = TestServer::start().await;
    let out = tokio::task::block_in_place(|| {
        run(
            &server,
            &["oob", "add", "in-1", "-"],
            Some("stdin-secret-value\n"),
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !stdout(&out).contains("stdin-secret-value"),
        "a given secret is not echoed"
    );
    let file = server.temp_dir().join("secret.txt");
    std::fs::write(&file, "file-secret-value\r\n").expect("write");
    let out = tokio::task::block_in_place(|| {
        run(
            &server,
            &[
                "oob",
                "add",
                "in-2",
                "--secret-file",
                file.to_str().expect("path"),
            ],
            None,
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out =
        tokio::task::block_in_place(|| run(&server, &["oob", "add", "in-3", "arg-sec"], None));
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("visible in the process list"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("shorter than 10"),
        "short secrets are warned about"
    );
    for (id, secret) in [
        ("in-1", "stdin-secret-value"),
        ("in-2", "file-secret-value"),
        ("in-3", "arg-sec"),
    ] {
        let (_, resp, _) = provision(
            &server.http(),
            &server,
            &TestDevice::new(id).request(Some(secret)),
        )
        .await;
        assert_eq!(
            resp.expect("response").status,
            idprov_proto::ProvisionStatus::Approved,
            "{id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_in_json_return_every_entry() {
    let server = TestServer::start().await;
    let admin = server.admin();
    for i in 0..1205 {
        admin
            .add_secret(&idprov_proto::OobSecretMessage {
                device_id: format!("bulk-{i:04}"),
                oob_secret: "listing-secret".into(),
                valid_until: String::new(),
                pake_only: false,
            })
            .await
            .expect("add");
    }
    let out = tokio::task::block_in_place(|| run(&server, &["oob", "list", "--json"], None));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).expect("one JSON array");
    assert_eq!(v.len(), 1205, "paged underneath, complete on top");
    assert!(
        v.iter().all(|s| s.get("oobSecret").is_none()),
        "never the values"
    );
    let out = tokio::task::block_in_place(|| {
        run(&server, &["oob", "list", "--json", "--limit", "7"], None)
    });
    let v: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).expect("array");
    assert_eq!(v.len(), 7);
    let out = tokio::task::block_in_place(|| run(&server, &["devices", "list", "--json"], None));
    let v: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).expect("array");
    assert_eq!(v.len(), 1205);
    assert_eq!(v[0]["status"], "Waiting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_show_requests_list_and_status() {
    let server = TestServer::start().await;
    let device = TestDevice::new("shown");
    let mut req = device.request(None);
    req.mac = "\u{1b}[31mred".into();
    provision(&server.http(), &server, &req).await;
    let out = tokio::task::block_in_place(|| run(&server, &["requests", "list"], None));
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.contains("shown") && text.contains("ECDSA-P256"),
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "device-supplied text cannot drive the terminal"
    );
    let out = tokio::task::block_in_place(|| run(&server, &["requests", "list", "--json"], None));
    let v: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).expect("array");
    assert_eq!(
        v[0]["claimedMAC"], "\u{1b}[31mred",
        "JSON keeps the exact text"
    );

    server
        .admin()
        .add_secret(&idprov_proto::OobSecretMessage {
            device_id: "shown".into(),
            oob_secret: "show-me-secret".into(),
            valid_until: String::new(),
            pake_only: false,
        })
        .await
        .expect("add");
    provision(
        &server.http(),
        &server,
        &device.request(Some("show-me-secret")),
    )
    .await;
    let out =
        tokio::task::block_in_place(|| run(&server, &["devices", "show", "shown", "--json"], None));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("object");
    assert_eq!(v["device"]["status"], "Approved");
    assert_eq!(v["certificates"].as_array().expect("history").len(), 1);
    let out = tokio::task::block_in_place(|| run(&server, &["status", "shown"], None));
    assert!(stdout(&out).contains("Approved") && stdout(&out).contains("BEGIN CERTIFICATE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_tell_scripts_what_happened() {
    let server = TestServer::start().await;
    // 0: success.
    let out = tokio::task::block_in_place(|| run(&server, &["oob", "list"], None));
    assert_eq!(out.status.code(), Some(0));
    // 1: refused by the server (unknown device, nothing to remove).
    let out = tokio::task::block_in_place(|| run(&server, &["status", "nobody"], None));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unknown device"), "{}", stderr(&out));
    let out = tokio::task::block_in_place(|| run(&server, &["oob", "remove", "nobody"], None));
    assert_eq!(out.status.code(), Some(1));
    // 2: usage.
    let out = idprov(&["oob", "frobnicate"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = tokio::task::block_in_place(|| {
        run(
            &server,
            &["oob", "add", "bad id", "some-secret-value"],
            None,
        )
    });
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("DEVICE_ID"), "{}", stderr(&out));
    let out = tokio::task::block_in_place(|| run(&server, &["oob", "add", "d", "-"], Some("\n")));
    assert_eq!(
        out.status.code(),
        Some(2),
        "an empty secret is refused locally"
    );
    // 3: unreachable.
    let out = idprov(
        &[
            "oob",
            "list",
            "--server",
            "127.0.0.1:1",
            "--data-dir",
            server.data_dir().to_str().expect("path"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // 4: credentials missing, or refused by the server.
    let out = idprov(
        &[
            "oob",
            "list",
            "--server",
            &server.server_arg(),
            "--data-dir",
            "/nonexistent",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let (cert, key) = server.issue_client_cert(
        "service",
        "not-an-admin",
        std::time::Duration::from_secs(600),
    );
    let dir = server.temp_dir();
    std::fs::write(dir.join("svc.pem"), &cert).expect("write");
    std::fs::write(dir.join("svc.key"), key.as_str()).expect("write");
    let ca = server.data_dir().join("ca-chain.pem");
    let out = idprov(
        &[
            "devices",
            "list",
            "--server",
            &server.server_arg(),
            "--cert",
            dir.join("svc.pem").to_str().expect("p"),
            "--key",
            dir.join("svc.key").to_str().expect("p"),
            "--ca",
            ca.to_str().expect("p"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("administrator or plugin"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprints_starting_with_a_hyphen_are_values_not_options() {
    // Base64url fingerprints may start with '-': the CLI must take them.
    let server = TestServer::start().await;
    let fp = "-J6cYb2uXoG3qk1lF8nTz0RrW9aPvE4sHdQmUxCyKiM";
    for verb in ["approve", "reject"] {
        let out = tokio::task::block_in_place(|| {
            run(&server, &["requests", verb, "dev-h", "--key", fp], None)
        });
        let err = stderr(&out);
        assert!(!err.contains("unexpected argument"), "{err}");
        assert_ne!(out.status.code(), Some(2), "{err}");
    }
    let dir = server.temp_dir().join("dev-h");
    let out = tokio::task::block_in_place(|| {
        idprov(
            &[
                "device",
                "provision",
                "--id",
                "dev-h",
                "--secret",
                "some-secret-value",
                "--ca-fingerprint",
                fp,
                "--server",
                &server.server_arg(),
                "--dir",
                dir.to_str().expect("path"),
            ],
            None,
        )
    });
    let err = stderr(&out);
    assert!(!err.contains("unexpected argument"), "{err}");
    assert!(
        err.contains("fingerprint"),
        "refused for the mismatch: {err}"
    );
}

/// A newcomer's sequence: a device without a CA fingerprint waits, is
/// approved, cannot accept the empty-key answer — and is not stranded: the
/// message names both ways out, and either gets the certificate the
/// approval issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_the_device_could_not_accept_is_redelivered() {
    let server = TestServer::start().await;
    let server_arg = server.server_arg();
    let data = server.data_dir().display().to_string();
    let fp = tokio::task::block_in_place(|| idprov(&["ca-fingerprint", "--data-dir", &data], None));
    let fp = stdout(&fp).trim().to_owned();
    for (id, way_out) in [
        ("sensor-7", vec!["--ca-fingerprint", fp.as_str()]),
        ("sensor-8", vec!["--danger-accept-empty-key"]),
    ] {
        let dir = server.temp_dir().join(id).display().to_string();
        let device = |extra: &[&str]| {
            let mut args = vec![
                "device",
                "provision",
                "--id",
                id,
                "--server",
                &server_arg,
                "--dir",
                &dir,
            ];
            args.extend_from_slice(extra);
            tokio::task::block_in_place(|| idprov(&args, None))
        };
        let out = device(&[]);
        assert_eq!(out.status.code(), Some(1), "Waiting: {}", stderr(&out));
        assert!(stderr(&out).contains("waiting"), "{}", stderr(&out));
        let out = tokio::task::block_in_place(|| run(&server, &["requests", "approve", id], None));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

        let out = device(&[]);
        assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
        let err = stderr(&out);
        for names in [
            "empty key",
            "--ca-fingerprint",
            "idprov ca-fingerprint",
            "--ca FILE",
            "--danger-accept-empty-key",
            "re-delivery window",
        ] {
            assert!(err.contains(names), "the message names {names:?}: {err}");
        }
        // The server issued the certificate and used the approval up…
        let out =
            tokio::task::block_in_place(|| run(&server, &["devices", "show", id, "--json"], None));
        let shown: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
        assert_eq!(shown["device"]["status"], "Approved");
        let serial = shown["certificates"][0]["serial"]
            .as_str()
            .expect("serial")
            .to_owned();
        // …and gives the same certificate to the same key again.
        let out = device(&way_out);
        assert_eq!(out.status.code(), Some(0), "{id}: {}", stderr(&out));
        assert!(
            stdout(&out).contains(&serial) || stderr(&out).contains(&serial),
            "{id}: the re-delivered certificate {serial}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let out =
            tokio::task::block_in_place(|| run(&server, &["devices", "show", id, "--json"], None));
        let shown: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
        assert_eq!(
            shown["certificates"].as_array().map(Vec::len),
            Some(1),
            "{id}: re-delivered, not issued again"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_waiting_queue_is_shown_and_makes_room_for_other_sources() {
    let server = TestServer::start_with(idprov_testkit::Setup {
        configure: Box::new(|c| {
            c.waiting_caps.total = 5;
            c.waiting_caps.per_source = 4;
        }),
        ..Default::default()
    })
    .await;
    let ask = |source: &'static str, id: String| {
        let client = server.http_from(source);
        let server = &server;
        async move {
            let (_, resp, _) =
                provision(&client, server, &TestDevice::new(&id).request(None)).await;
            assert_eq!(
                resp.expect("answer").status,
                idprov_proto::ProvisionStatus::Waiting
            );
        }
    };
    // A flooding source takes four places, a neighbour the fifth.
    for n in 0..4 {
        ask("127.0.8.1", format!("flood-{n}")).await;
    }
    ask("127.0.8.2", "neighbour-1".into()).await;
    let status = server.admin().queue_status().await.expect("status");
    assert!(!status.full);
    // The queue is full: a new source's request takes the flooder's
    // least recently seen place…
    ask("127.0.8.3", "newcomer-1".into()).await;
    ask("127.0.8.3", "newcomer-2".into()).await;
    // …until no source holds more than it: then it is not recorded.
    ask("127.0.8.3", "newcomer-3".into()).await;
    let status = server.admin().queue_status().await.expect("status");
    assert!(status.full, "{status:?}");
    assert_eq!((status.evicted, status.not_recorded), (2, 1));
    let queued: Vec<String> = server
        .admin()
        .list_requests(None)
        .await
        .expect("list")
        .into_iter()
        .map(|w| w.device_id)
        .collect();
    assert_eq!(
        queued,
        [
            "flood-2",
            "flood-3",
            "neighbour-1",
            "newcomer-1",
            "newcomer-2"
        ]
    );
    // The CLI says so, above the list (on standard error: scripts keep their JSON).
    let out = tokio::task::block_in_place(|| run(&server, &["requests", "list"], None));
    assert_eq!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains("waiting queue is full")
            && err.contains("1 requests not recorded")
            && err.contains("2 evicted"),
        "{err}"
    );
    let out = tokio::task::block_in_place(|| run(&server, &["requests", "list", "--json"], None));
    let list: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).expect("JSON array");
    assert_eq!(list.len(), 5);
    // The dashboard's summary carries it.
    let summary: serde_json::Value = server
        .http_with(
            &std::fs::read_to_string(server.data_dir().join("admin.pem")).expect("cert"),
            &std::fs::read_to_string(server.data_dir().join("admin.key")).expect("key"),
        )
        .get(server.url("/idprov/admin/summary"))
        .send()
        .await
        .expect("summary")
        .json()
        .await
        .expect("json");
    assert_eq!(summary["waitingQueue"]["full"], true);
    assert_eq!(summary["waitingQueue"]["notRecorded"], 1);
    // Room again: clearing a request lets the next one in.
    let out = tokio::task::block_in_place(|| run(&server, &["requests", "clear", "flood-2"], None));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    ask("127.0.8.4", "later-1".into()).await;
    assert!(!server.admin().queue_status().await.expect("status").full);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_open_safely_in_a_spreadsheet_and_import_back_unchanged() {
    let server = TestServer::start().await;
    let secrets = [
        ("xl-1", "=HYPERLINK(\"http://x\",\"y\")"),
        ("xl-2", "+1+1-and-more"),
        ("xl-3", "-2-minus-first"),
        ("xl-4", "@SUM(A1:A9)xyz"),
        ("xl-5", "'=already-marked"),
        ("xl-6", "'plain-apostrophe"),
        ("xl-7", "an,ordinary \"one\""),
    ];
    for (id, secret) in secrets {
        server.add_secret(id, secret).await;
    }
    let file = server.temp_dir().join("export.csv");
    let path = file.to_str().expect("path");
    let out = tokio::task::block_in_place(|| {
        run(
            &server,
            &["oob", "export", "--with-secrets", "--out", path],
            None,
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&file).expect("export");
    // No cell a spreadsheet would evaluate: read it as a spreadsheet does.
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    for record in reader.records() {
        let record = record.expect("a CSV row");
        for cell in record.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a formula cell: {cell:?}"
            );
        }
    }
    assert!(text.contains("'=HYPERLINK"), "{text}");
    // Forget every secret, import the export: each device proves its
    // original secret.
    for (id, _) in secrets {
        server.admin().remove_secret(id).await.expect("removed");
    }
    let out = tokio::task::block_in_place(|| run(&server, &["oob", "import", path], None));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for (id, secret) in secrets {
        let device = TestDevice::new(id);
        let (_, resp, body) =
            provision(&server.http(), &server, &device.request(Some(secret))).await;
        assert_eq!(
            resp.expect("answer").status,
            idprov_proto::ProvisionStatus::Approved,
            "{id} {secret:?}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_show_bidirectional_and_invisible_characters_escaped() {
    let server = TestServer::start().await;
    let device = TestDevice::new("shown-2");
    let mut req = device.request(None);
    req.mac = "ab\u{202E}cd\u{200B}ef\u{2066}".into();
    provision(&server.http(), &server, &req).await;
    let out = tokio::task::block_in_place(|| run(&server, &["requests", "list"], None));
    let text = stdout(&out);
    assert!(text.contains("ab\\u{202e}cd\\u{200b}ef\\u{2066}"), "{text}");
    for c in ['\u{202E}', '\u{200B}', '\u{2066}'] {
        assert!(!text.contains(c), "{c:?} reached the terminal");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_password_is_set_and_removed_from_the_cli() {
    let server = TestServer::start().await;
    let out = tokio::task::block_in_place(|| {
        run(
            &server,
            &["admin", "password", "carol"],
            Some("carol's long password\n"),
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        server
            .registry()
            .web_password("carol")
            .await
            .expect("read")
            .is_some()
    );
    let out = tokio::task::block_in_place(|| {
        run(&server, &["admin", "password", "carol", "--remove"], None)
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("removed"), "{}", stdout(&out));
    assert!(
        server
            .registry()
            .web_password("carol")
            .await
            .expect("read")
            .is_none()
    );
    // Removing what is not there is refused, and says so.
    let out = tokio::task::block_in_place(|| {
        run(&server, &["admin", "password", "carol", "--remove"], None)
    });
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no web password"), "{}", stderr(&out));
    // An empty password is a usage error, before anything is sent.
    let out =
        tokio::task::block_in_place(|| run(&server, &["admin", "password", "dave"], Some("\n")));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// `idprov oob add ID --pake-only` prints an idprov:2 label; `idprov device
/// provision --label` with it provisions over idprov v2; a v1 attempt with
/// the same secret is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pake_only_registration_and_its_v2_label_provision_from_the_command_line() {
    let server = TestServer::start().await;
    let out = tokio::task::block_in_place(|| {
        run(
            &server,
            &["oob", "add", "cli-v2", "-", "--pake-only", "--json"],
            Some("314159\n"),
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    let uri = v["label"].as_str().expect("the label is printed");
    assert!(uri.starts_with("idprov:2?id=cli-v2&s=314159&ca="), "{uri}");
    assert!(v.get("oobSecret").is_none(), "a given secret is not echoed");
    assert!(
        !stderr(&out).contains("shorter than"),
        "no offline-guessing warning for v2 only"
    );

    let v1 = TestDevice::new("cli-v2");
    let (_, resp, _) = provision(&server.http(), &server, &v1.request(Some("314159"))).await;
    assert_eq!(
        resp.expect("response").status,
        idprov_proto::ProvisionStatus::Rejected
    );

    let dir = server.temp_dir().join("cli-v2");
    let out = tokio::task::block_in_place(|| {
        idprov(
            &[
                "device",
                "provision",
                "--label",
                uri,
                "--server",
                &server.server_arg(),
                "--dir",
                dir.to_str().expect("path"),
            ],
            None,
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Approved: certificate"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("verified_with=\"v2 session key\""),
        "{}",
        stderr(&out)
    );
    assert!(dir.join("current/cert.pem").exists());
}

/// Decodes every QR code of a label sheet (PNG) with zbarimg, sorted; `None`
/// where zbarimg is not installed (and not required).
fn qr_codes(sheet: &std::path::Path) -> Option<Vec<String>> {
    if !crate::require(&["zbarimg"], "zbar-tools") {
        return None;
    }
    let out = std::process::Command::new("zbarimg")
        .args(["-q", "--raw", "--nodbus"])
        .arg(sheet)
        .output()
        .expect("zbarimg");
    let mut codes: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    codes.sort();
    Some(codes)
}

/// v2-only registrations in bulk (PROTOCOL.md §11.1): a file's `pakeOnly`
/// column, `idprov oob import --pake-only --generate --labels` (labels say
/// idprov:2, the secrets file keeps the mark) and the admin API's label
/// sheet with `pakeOnly`; each keeps a verifier and no form of the secret,
/// a label provisions over v2, and v1 is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_only_registrations_in_bulk_and_on_label_sheets() {
    let server = TestServer::start().await;
    let dir = server.temp_dir().join("bulk-v2");
    std::fs::create_dir_all(&dir).expect("dir");
    let registry = server.registry();
    let live = |device: &'static str| {
        let registry = registry.clone();
        async move {
            registry
                .live_secret(
                    device,
                    idprov_proto::UnixTime::from(std::time::SystemTime::now()),
                )
                .await
                .expect("read")
                .expect("registered")
        }
    };

    // A file marks some rows; a bad mark is refused by its line.
    let file = dir.join("devices.csv");
    std::fs::write(
        &file,
        "deviceID,secret,validUntil,pakeOnly\nimp-v2,271828,,true\nimp-v1,7K3MQ2Z8WX4VTN6R,,\nimp-bad,7K3MQ2Z8WX4VTN6R,,yes\n",
    )
    .expect("file");
    let out = tokio::task::block_in_place(|| {
        run(&server, &["oob", "import", file.to_str().expect("p")], None)
    });
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 rows accepted"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("line 4: field \"pakeOnly\": true, false or empty"),
        "{}",
        stderr(&out)
    );
    let v2 = live("imp-v2").await;
    assert!(v2.pake.is_some() && v2.sealed_secret().is_none());
    let v1 = live("imp-v1").await;
    assert!(v1.pake.is_none() && v1.sealed_secret().is_some());
    let refused = TestDevice::new("imp-v2");
    let (_, resp, _) = provision(&server.http(), &server, &refused.request(Some("271828"))).await;
    assert_eq!(
        resp.expect("response").status,
        idprov_proto::ProvisionStatus::Rejected,
        "v1 for a v2-only row"
    );

    // Generated, every row v2-only, with a label sheet.
    let ids = dir.join("ids.csv");
    std::fs::write(&ids, "deviceID\nlbl-v2\n").expect("file");
    let (secrets, sheet) = (dir.join("secrets.csv"), dir.join("labels.png"));
    let out = tokio::task::block_in_place(|| {
        run(
            &server,
            &[
                "oob",
                "import",
                ids.to_str().expect("p"),
                "--generate",
                "--pake-only",
                "--out",
                secrets.to_str().expect("p"),
                "--labels",
                sheet.to_str().expect("p"),
            ],
            None,
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let written = std::fs::read_to_string(&secrets).expect("secrets file");
    let mut lines = written.lines();
    assert_eq!(lines.next(), Some("deviceID,secret,validUntil,pakeOnly"));
    let row: Vec<&str> = lines.next().expect("row").split(',').collect();
    assert_eq!((row[0], row[3]), ("lbl-v2", "true"));
    let generated = live("lbl-v2").await;
    assert!(generated.pake.is_some() && generated.sealed_secret().is_none());
    if let Some(codes) = qr_codes(&sheet) {
        assert_eq!(codes.len(), 1, "{codes:?}");
        assert!(
            codes[0].starts_with(&format!("idprov:2?id=lbl-v2&s={}&ca=", row[1])),
            "{codes:?}"
        );
        // The label provisions over v2.
        let device_dir = dir.join("lbl-v2");
        let out = tokio::task::block_in_place(|| {
            idprov(
                &[
                    "device",
                    "provision",
                    "--label",
                    &codes[0],
                    "--server",
                    &server.server_arg(),
                    "--dir",
                    device_dir.to_str().expect("p"),
                ],
                None,
            )
        });
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(stdout(&out).contains("Approved: certificate"));
    }

    // The admin API's label sheet (the page's Labels screen).
    let admin = server.http_with(
        &std::fs::read_to_string(server.data_dir().join("admin.pem")).expect("cert"),
        &std::fs::read_to_string(server.data_dir().join("admin.key")).expect("key"),
    );
    let r = admin
        .post(server.url("/idprov/admin/labels"))
        .header("content-type", "application/json")
        .body(
            serde_json::json!({ "deviceIDs": ["web-v2"], "format": "png", "pakeOnly": true })
                .to_string(),
        )
        .send()
        .await
        .expect("labels");
    assert_eq!(r.status(), 200);
    let page_sheet = dir.join("page.png");
    std::fs::write(&page_sheet, r.bytes().await.expect("png")).expect("sheet");
    let web = live("web-v2").await;
    assert!(web.pake.is_some() && web.sealed_secret().is_none());
    if let Some(codes) = qr_codes(&page_sheet) {
        assert_eq!(codes.len(), 1, "{codes:?}");
        assert!(codes[0].starts_with("idprov:2?id=web-v2&s="), "{codes:?}");
    }
    let entries = registry.audit_entries(0, 10_000).await.expect("audit");
    let generated = entries
        .iter()
        .rev()
        .find(|e| e.event == "secrets_generated")
        .expect("audited");
    assert_eq!(generated.detail["v2Only"], true, "{}", generated.detail);
}

/// `idprov device provision --label idprov:2?…` against a server with v2
/// switched off: refused (exit 1, saying the server offers no v2), never
/// downgraded: the secret stays unused and nothing is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_label_against_a_server_without_v2_is_refused_not_downgraded() {
    let server = TestServer::start_with(idprov_testkit::Setup {
        configure: Box::new(|c| c.v2 = false),
        ..idprov_testkit::Setup::default()
    })
    .await;
    server.add_secret("old-server", "registered-for-v1").await;
    let uri = idprov_proto::Label {
        version: 2,
        device_id: idprov_proto::DeviceId::parse("old-server").expect("id"),
        secret: idprov_proto::OobSecret::parse("registered-for-v1").expect("secret"),
        ca: Some(server.ca().fingerprint()),
    }
    .to_uri();
    let dir = server.temp_dir().join("old-server");
    let out = tokio::task::block_in_place(|| {
        idprov(
            &[
                "device",
                "provision",
                "--label",
                &uri,
                "--server",
                &server.server_arg(),
                "--dir",
                dir.to_str().expect("path"),
            ],
            None,
        )
    });
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("idprov v2"), "{}", stderr(&out));
    assert!(!dir.join("current/cert.pem").exists());
    let registry = server.registry();
    let now = idprov_proto::UnixTime::from(idprov_proto::clock::Clock::now(&*server.clock));
    assert!(
        registry
            .live_secret("old-server", now)
            .await
            .expect("read")
            .is_some(),
        "the secret was not used by v1"
    );
    assert!(
        registry
            .waiting_for("old-server")
            .await
            .expect("read")
            .is_empty()
    );
}
