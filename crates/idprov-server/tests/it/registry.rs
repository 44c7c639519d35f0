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

/// The forms a secret could be written in: as it is, hex, base64.
fn forms_of(secret: &str) -> Vec<String> {
    vec![
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
    ]
}

/// No file of the data directory (the database, its WAL, the key files)
/// and, on PostgreSQL, no row of any table holds one of `forms`.
async fn assert_nowhere_at_rest(server: &TestServer, forms: &[String]) {
    let mut files = 0;
    for entry in std::fs::read_dir(server.data_dir()).expect("data dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        files += 1;
        for form in forms {
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
        for form in forms {
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
}

/// A v2-only registration (`--pake-only`, PROTOCOL.md §11.1) keeps neither
/// the secret nor a sealed form of it: its row's `sealed` is empty, what
/// it keeps (the sealed SPAKE2+ record) does not open as a secret, the
/// export with secrets leaves it out, and no form of the secret is
/// anywhere at rest.
#[tokio::test]
async fn a_v2_only_registration_keeps_no_form_of_the_secret() {
    let secret = "Kp4-v2-only-distinctive-5521";
    let server = TestServer::start().await;
    server
        .admin()
        .add_secret(&idprov_proto::OobSecretMessage {
            device_id: "v2-only".into(),
            oob_secret: secret.into(),
            valid_until: String::new(),
            pake_only: true,
        })
        .await
        .expect("registered");
    let now = idprov_proto::UnixTime::from(idprov_proto::clock::Clock::now(&*server.clock));
    let live = server
        .registry()
        .live_secret("v2-only", now)
        .await
        .expect("read")
        .expect("registered");
    assert!(live.sealed.is_empty(), "no sealed secret");
    let pake = live.pake.expect("the verifier");
    assert_eq!(pake.salt.len(), 16);
    let exported = server
        .registry()
        .sealed_secrets(&idprov_store::Page::default(), now)
        .await
        .expect("export");
    assert!(exported.iter().all(|s| s.device_id != "v2-only"));
    assert_nowhere_at_rest(&server, &forms_of(secret)).await;
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

    let forms = forms_of(secret);
    assert_nowhere_at_rest(&server, &forms).await;
    let logs = captured_logs();
    assert!(logs.contains("OOB secret registered"), "logs were captured");
    for form in &forms {
        assert!(
            !logs.contains(form.as_str()),
            "the log holds the secret as {form}"
        );
    }
}
