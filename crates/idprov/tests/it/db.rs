//! `idprov db migrate`: a SQLite registry with history copied into
//! PostgreSQL, verified, and served from there.

use std::process::Output;

use idprov_proto::admin::RevokeRequest;
use idprov_proto::{OobSecretMessage, ProvisionStatus};
use idprov_server::config::{Database, SecretKeySource};
use idprov_testkit::{Setup, TestDevice, TestServer, provision};

use crate::{idprov, stderr, stdout};

fn run(args: &[&str]) -> Output {
    tokio::task::block_in_place(|| idprov(args, None))
}

async fn add(server: &TestServer, device: &str, secret: &str) {
    server
        .admin()
        .add_secret(&OobSecretMessage {
            device_id: device.into(),
            oob_secret: secret.into(),
            valid_until: String::new(),
            pake_only: false,
        })
        .await
        .expect("secret added");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_registry_moves_to_postgresql_with_its_history_and_secrets() {
    if idprov_testkit::skip_unless_sqlite("the SQLite source") {
        return;
    }
    let Some(url) = idprov_testkit::postgres::fresh_database("migrate").await else {
        crate::skip("PostgreSQL is not installed");
        return;
    };
    let outside = tempfile::tempdir().expect("tempdir");
    let key = outside.path().join("secrets.key");
    idprov_server::datadir::write_private_file(
        &key,
        b"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
    )
    .expect("key");
    let sqlite_key = key.clone();
    let mut old = TestServer::start_with(Setup {
        configure: Box::new(move |c| {
            c.secret_key = SecretKeySource::File(sqlite_key);
            c.supersede_after = Some(std::time::Duration::from_secs(3600));
        }),
        ..Setup::default()
    })
    .await;
    // History: a provisioned, renewed (its first certificate due to be
    // superseded) then revoked device, a live secret, a waiting request, a
    // signed checkpoint.
    add(&old, "mig-1", "secret-of-mig-1").await;
    add(&old, "mig-2", "secret-of-mig-2").await;
    let d1 = TestDevice::new("mig-1");
    let (_, resp, _) = provision(&old.http(), &old, &d1.request(Some("secret-of-mig-1"))).await;
    let resp = resp.expect("answer");
    assert_eq!(resp.status, ProvisionStatus::Approved);
    let renewing = old.http_with(&resp.client_cert, &d1.key_pem());
    let (_, renewed, body) = provision(&renewing, &old, &d1.request(None)).await;
    assert_eq!(
        renewed.expect("answer").status,
        ProvisionStatus::Approved,
        "{body}"
    );
    let revoked = old
        .admin()
        .revoke_device(
            "mig-1",
            &RevokeRequest {
                reason: Some("keyCompromise".into()),
                note: None,
                serial: None,
            },
        )
        .await
        .expect("revoked");
    provision(&old.http(), &old, &TestDevice::new("mig-3").request(None)).await;
    old.admin().checkpoint_now().await.expect("checkpoint");
    let data_dir = old.data_dir();
    old.stop().await;

    let from = format!("sqlite://{}", data_dir.join("idprov.db").display());
    let out = run(&[
        "db",
        "migrate",
        "--from",
        &from,
        "--to",
        &url,
        "--secrets-key-file",
        key.to_str().expect("path"),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(report["secrets_not_carried"], 0, "{report}");
    let rows = |table: &str| {
        report["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t[0] == table)
            .map(|t| t[1].as_u64().expect("count"))
            .expect("table")
    };
    assert_eq!(rows("oob_secrets"), 1);
    assert_eq!(rows("waiting_requests"), 1);
    assert!(
        rows("certificates") >= 4,
        "server, admin and the device's two"
    );
    assert_eq!(
        rows("supersessions"),
        1,
        "the renewal's pending supersession"
    );
    assert!(rows("audit_checkpoints") >= 1);

    // Into a database that holds a registry already: refused, nothing changed.
    let again = run(&["db", "migrate", "--from", &from, "--to", &url]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("migrate into an empty database"),
        "{}",
        stderr(&again)
    );

    // Without the key, the live secret cannot travel, and says so.
    let Some(other) = idprov_testkit::postgres::fresh_database("migrate_nokey").await else {
        return;
    };
    let out = run(&[
        "db",
        "migrate",
        "--from",
        data_dir.to_str().expect("path"),
        "--to",
        &other,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 OOB secrets were not carried"),
        "{}",
        stderr(&out)
    );

    // A server on PostgreSQL with the same data directory and key serves it all.
    let (pg_url, pg_key, pg_dir) = (url.clone(), key.clone(), data_dir.clone());
    let new = TestServer::start_with(Setup {
        configure: Box::new(move |c| {
            c.database = Database::Postgres(pg_url);
            c.secret_key = SecretKeySource::File(pg_key);
            c.data_dir = pg_dir;
        }),
        ..Setup::default()
    })
    .await;
    let d2 = TestDevice::new("mig-2");
    let (_, resp, body) = provision(&new.http(), &new, &d2.request(Some("secret-of-mig-2"))).await;
    assert_eq!(
        resp.expect("answer").status,
        ProvisionStatus::Approved,
        "{body}"
    );
    let history = new.admin().device("mig-1").await.expect("device");
    assert_eq!(history.certificates.len(), 2);
    assert!(history.certificates.iter().all(|c| c.revoked_at.is_some()));
    let queue = new.admin().list_requests(None).await.expect("queue");
    assert!(queue.iter().any(|w| w.device_id == "mig-3"));
    let verify = run(&[
        "audit",
        "verify",
        "--server",
        &new.server_arg(),
        "--data-dir",
        data_dir.to_str().expect("path"),
    ]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    let events: Vec<String> = new
        .registry()
        .audit_entries(0, 10_000)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(events.contains(&"registry_migrated".to_owned()));
    // The CRL number goes on from the source's.
    let again = new
        .admin()
        .revoke_device(
            "mig-2",
            &RevokeRequest {
                reason: None,
                note: None,
                serial: None,
            },
        )
        .await
        .expect("revoked");
    assert!(again.crl_number > revoked.crl_number);
}
