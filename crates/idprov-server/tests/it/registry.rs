//! What survives a restart, and what is never at rest or in logs.

use base64::Engine as _;
use idprov_proto::ProvisionStatus;
use idprov_testkit::{Setup, TestDevice, TestServer, capture_logs, captured_logs, provision};

use crate::common::{add_secret, audit_events, provision_ok};

#[tokio::test]
async fn status_survives_a_restart_and_secrets_do_not_by_default() {
    let mut server = TestServer::start().await;
    add_secret(&server, "keeps", "restart-secret-one").await;
    let device = TestDevice::new("keeps");
    provision_ok(&server, &device, "restart-secret-one").await;
    add_secret(&server, "loses", "restart-secret-two").await;
    server.restart().await;

    let status = server.admin().status("keeps").await.expect("status");
    assert_eq!(status.status, ProvisionStatus::Approved);
    if idprov_testkit::postgres_backend() {
        // PostgreSQL mode keeps secrets (the data directory's key).
        provision_ok(&server, &TestDevice::new("loses"), "restart-secret-two").await;
        return;
    }
    // The standard's behaviour: a restart invalidates secrets.
    assert!(
        server
            .admin()
            .list_secrets(None)
            .await
            .expect("list")
            .is_empty()
    );
    let other = TestDevice::new("loses");
    let (_, resp, _) = provision(
        &server.http(),
        &server,
        &other.request(Some("restart-secret-two")),
    )
    .await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Waiting);
    let purged = server
        .registry()
        .audit_entries(0, 1000)
        .await
        .expect("audit")
        .into_iter()
        .find(|e| e.event == "secrets_purged")
        .expect("one audit entry with the count");
    assert_eq!(purged.detail["count"], 1);
    let entries = server
        .registry()
        .audit_entries(0, 1000)
        .await
        .expect("audit");
    idprov_store::verify_chain(None, &entries).expect("the audit chain is intact");
}

#[tokio::test]
async fn with_a_configured_key_secrets_survive_a_restart() {
    let key_file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        key_file.path(),
        base64::engine::general_purpose::STANDARD.encode([42u8; 32]),
    )
    .expect("write");
    let path = key_file.path().to_owned();
    let mut server = TestServer::start_with(Setup {
        configure: Box::new(move |c| {
            c.secret_key = idprov_server::config::SecretKeySource::File(path);
        }),
        ..Default::default()
    })
    .await;
    add_secret(&server, "durable", "persistent-secret").await;
    server.restart().await;
    provision_ok(&server, &TestDevice::new("durable"), "persistent-secret").await;
    assert!(
        !audit_events(&server)
            .await
            .iter()
            .any(|e| e == "secrets_purged")
    );
}

#[tokio::test]
async fn secrets_are_never_at_rest_in_clear_nor_in_logs() {
    capture_logs();
    let secret = "Zq9-distinctive-secret-7731";
    let server = TestServer::start().await;
    add_secret(&server, "hidden", secret).await;
    let device = TestDevice::new("hidden");
    // A wrong attempt, a correct one, and a re-delivery all pass through the logs.
    provision(
        &server.http(),
        &server,
        &device.request(Some("not-the-secret")),
    )
    .await;
    provision_ok(&server, &device, secret).await;
    provision_ok(&server, &device, secret).await;
    add_secret(&server, "hidden-2", secret).await;

    let forms = [
        secret.to_owned(),
        secret
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        secret
            .bytes()
            .map(|b| format!("{b:02X}"))
            .collect::<String>(),
        base64::engine::general_purpose::STANDARD.encode(secret),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(secret),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    ];
    let mut files = 0;
    for entry in std::fs::read_dir(server.data_dir()).expect("data dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        files += 1;
        for form in &forms {
            assert!(
                !bytes.windows(form.len()).any(|w| w == form.as_bytes()),
                "{} holds the secret as {form}",
                path.display()
            );
        }
    }
    if idprov_testkit::postgres_backend() {
        // Every row of every table, as PostgreSQL prints it (bytea as hex).
        let idprov_server::config::Database::Postgres(url) = &server.config.database else {
            unreachable!("the PostgreSQL backend");
        };
        let rows = idprov_testkit::postgres::all_rows_as_text(url).await;
        assert!(rows.len() > 1000, "the tables were read");
        for form in &forms {
            assert!(
                !rows.contains(form.as_str()),
                "the database holds the secret as {form}"
            );
        }
    } else {
        assert!(
            files >= 8,
            "the database, its WAL and the key files were checked"
        );
        assert!(
            server.data_dir().join("idprov.db-wal").exists(),
            "the WAL was checked too"
        );
    }
    let logs = captured_logs();
    assert!(logs.contains("OOB secret registered"), "logs were captured");
    for form in &forms {
        assert!(
            !logs.contains(form.as_str()),
            "the log holds the secret as {form}"
        );
    }
}
