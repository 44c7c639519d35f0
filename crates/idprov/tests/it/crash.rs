//! Crash safety: the real server process is killed with SIGKILL at random
//! moments while devices provision and an administrator imports secrets, in
//! persistent-secret mode, and restarted. After every kill the database must
//! show: every certificate a client received has its row and its audit
//! entry; no secret was consumed without a certificate row; no certificate
//! row lacks its audit entry; each bulk import is all or nothing (and all
//! when it was acknowledged); the audit chain verifies.
//!
//! The moments come from a seed printed at the start; `IDPROV_CRASH_SEED`
//! replays a run, `IDPROV_CRASH_ROUNDS` changes the number of kills.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use idprov_client::{AdminClient, Credentials};
use idprov_proto::ProvisionStatus;
use idprov_testkit::{TestDevice, http_client, provision_at};
use rusqlite::params;

use crate::free_port;

/// Devices whose secrets are registered before the kills start.
const DEVICES: usize = 2_000;
/// Rows of each bulk import that runs during a round (not [`DEVICES`], so
/// audit entries tell the two kinds of import apart).
const BULK_ROWS: usize = 1_500;
const SECRET: &str = "crash-test-secret-0123456789";

/// xorshift64*: enough randomness for kill moments, reproducible from a seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

struct Server {
    child: Child,
    addr: String,
}

fn spawn(bin: &Path, data: &Path, config: &Path, port: u16) -> Server {
    let child = Command::new(bin)
        .args([
            "serve",
            "--no-dns-sd",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data)
        .arg("--config")
        .arg(config)
        .env("HOME", std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("server starts");
    Server {
        child,
        addr: format!("127.0.0.1:{port}"),
    }
}

/// Waits until the server answers `/readyz` over TLS.
async fn ready(server: &mut Server, data: &Path) -> reqwest::Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            server.child.try_wait().expect("wait").is_none(),
            "the server exited on restart"
        );
        if let Ok(ca) = std::fs::read_to_string(data.join("ca-chain.pem")) {
            let client = http_client(
                Credentials {
                    ca_pem: ca,
                    cert_pem: None,
                    key_pem: None,
                }
                .client_config()
                .expect("TLS config"),
            );
            if client
                .get(format!("https://{}/readyz", server.addr))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return client;
            }
        }
        assert!(Instant::now() < deadline, "the server did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn admin(server: &Server, data: &Path) -> AdminClient {
    let creds = Credentials::from_files(
        &data.join("admin.pem"),
        &data.join("admin.key"),
        &data.join("ca-chain.pem"),
    )
    .expect("admin credentials");
    AdminClient::new(&server.addr, &creds).expect("admin client")
}

/// Streams `rows` secrets named `prefix-N` as one NDJSON import.
async fn import(admin: &AdminClient, prefix: &str, rows: usize) -> Result<u64, String> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let prefix = prefix.to_owned();
    let feeder = tokio::spawn(async move {
        for chunk in (0..rows).collect::<Vec<_>>().chunks(125) {
            let mut buf = String::new();
            for i in chunk {
                buf.push_str(&format!(
                    "{{\"deviceID\":\"{prefix}-{i}\",\"oobSecret\":\"{SECRET}\"}}\n"
                ));
            }
            if tx.send(bytes::Bytes::from(buf)).await.is_err() {
                return;
            }
            // Spread the upload over the window the kills fall in.
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    });
    let result = admin.import(rx, false, true).await;
    feeder.abort();
    result.map(|r| r.accepted).map_err(|e| e.to_string())
}

/// What clients were told, across all rounds.
#[derive(Default)]
struct Received {
    /// (device ID, serial) of every certificate a device received.
    certificates: Vec<(String, String)>,
    /// Bulk imports the server acknowledged, by prefix.
    imports: Vec<String>,
    /// HTTP statuses of the provisioning answers.
    statuses: std::collections::BTreeMap<u16, u32>,
}

fn check_database(db: &Path, received: &Received, prefixes: &[String]) {
    // A read-write connection recovers the WAL the killed server left.
    let conn = rusqlite::Connection::open(db).expect("open the registry");
    let issued_audit = |serial: &str| -> i64 {
        conn.query_row(
            "SELECT count(*) FROM audit_log WHERE event IN ('certificate_issued', 'credential_issued')
             AND json_extract(detail, '$.serial') = ?1",
            params![serial],
            |r| r.get(0),
        )
        .expect("query")
    };
    for (device, serial) in &received.certificates {
        let row: i64 = conn
            .query_row(
                "SELECT count(*) FROM certificates WHERE serial = ?1 AND kind = 'device' AND subject = ?2",
                params![serial, device],
                |r| r.get(0),
            )
            .expect("query");
        assert_eq!(
            row, 1,
            "certificate {serial} of {device} was received but has no row"
        );
        assert!(
            issued_audit(serial) >= 1,
            "certificate {serial} has no audit entry"
        );
    }
    let orphans: i64 = conn
        .query_row(
            "SELECT count(*) FROM consumed_secrets s
             WHERE NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = s.serial)",
            [],
            |r| r.get(0),
        )
        .expect("query");
    assert_eq!(
        orphans, 0,
        "a secret was consumed without a certificate row"
    );
    let mut st = conn
        .prepare("SELECT serial FROM certificates WHERE kind = 'device'")
        .expect("prepare");
    let serials: Vec<String> = st
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    for serial in &serials {
        assert!(
            issued_audit(serial) >= 1,
            "certificate row {serial} has no audit entry"
        );
    }
    let mut complete = 0;
    for prefix in prefixes {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM oob_secrets WHERE device_id LIKE ?1 || '-%'",
                params![prefix],
                |r| r.get(0),
            )
            .expect("query");
        assert!(
            n == 0 || n == BULK_ROWS as i64,
            "import {prefix} is partly stored: {n} of {BULK_ROWS} rows"
        );
        if received.imports.contains(prefix) {
            assert_eq!(n, BULK_ROWS as i64, "acknowledged import {prefix} was lost");
        }
        if n > 0 {
            complete += 1;
        }
    }
    // One audit entry per stored import, none for an import that left nothing.
    let audited: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit_log WHERE event = 'secrets_imported'
             AND json_extract(detail, '$.accepted') = ?1",
            params![BULK_ROWS as i64],
            |r| r.get(0),
        )
        .expect("query");
    assert_eq!(audited, complete, "imports stored vs. audited");
    let mut st = conn
        .prepare("SELECT seq, at, actor, event, device_id, detail, prev_hash, hash FROM audit_log ORDER BY seq")
        .expect("prepare");
    let entries: Vec<idprov_store::AuditEntry> = st
        .query_map([], |r| {
            Ok(idprov_store::AuditEntry {
                seq: r.get(0)?,
                at: idprov_proto::UnixTime::from_secs(r.get(1)?),
                actor: r.get(2)?,
                event: r.get(3)?,
                device_id: r.get(4)?,
                detail: serde_json::from_str(&r.get::<_, String>(5)?)
                    .unwrap_or(serde_json::Value::Null),
                prev_hash: r.get(6)?,
                hash: r.get(7)?,
            })
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    idprov_store::verify_chain(None, &entries).expect("the audit chain verifies after the kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let seed = std::env::var("IDPROV_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    let rounds: usize = std::env::var("IDPROV_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    eprintln!("crash test: seed {seed} (IDPROV_CRASH_SEED), {rounds} kills");
    let mut rng = Rng(seed);

    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let key = tmp.path().join("secret.key");
    idprov_server::datadir::write_private_file(
        &key,
        b"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
    )
    .expect("key file");
    let config = tmp.path().join("idprov.toml");
    // The per-source provisioning limit is raised: every request here comes
    // from 127.0.0.1, and this test is about durability, not throttling.
    std::fs::write(
        &config,
        format!(
            "[secrets]\nkey_file = {:?}\n[limits]\nprovisioning_rate = 10000.0\nprovisioning_burst = 10000.0\n",
            key.display().to_string()
        ),
    )
    .expect("config");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_idprov"));
    let port = free_port();

    // Secrets for the devices, registered before any kill (persistent mode:
    // they must survive every restart).
    let mut server = spawn(&bin, &data, &config, port);
    let anon = ready(&mut server, &data).await;
    drop(anon);
    assert_eq!(
        import(&admin(&server, &data), "dev", DEVICES).await,
        Ok(DEVICES as u64)
    );

    let next_device = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(Mutex::new(Received::default()));
    let mut prefixes = Vec::new();
    let mut killed_during_import = 0;
    for round in 0..rounds {
        if round > 0 {
            server = spawn(&bin, &data, &config, port);
        }
        let anon = ready(&mut server, &data).await;
        let admin = admin(&server, &data);
        // Devices provisioning, three at a time.
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let (anon, next, received, addr) = (
                anon.clone(),
                next_device.clone(),
                received.clone(),
                server.addr.clone(),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    // The last device is kept for the check after the kills.
                    if i >= DEVICES - 1 {
                        return;
                    }
                    let device = TestDevice::new(&format!("dev-{i}"));
                    let Ok((status, resp)) =
                        provision_at(&anon, &addr, &device.request(Some(SECRET))).await
                    else {
                        return; // the server is gone
                    };
                    *received
                        .lock()
                        .expect("lock")
                        .statuses
                        .entry(status)
                        .or_default() += 1;
                    if let (200, Some(resp)) = (status, resp) {
                        assert_eq!(resp.status, ProvisionStatus::Approved, "dev-{i}");
                        let chain = idprov_ca::pem::parse_certificates(&resp.client_cert)
                            .expect("certificate PEM");
                        let info = idprov_ca::CertInfo::from_der(&chain[0]).expect("certificate");
                        received
                            .lock()
                            .expect("lock")
                            .certificates
                            .push((device.id.clone(), info.serial.to_string()));
                    }
                }
            }));
        }
        // And an administrator's bulk import.
        let prefix = format!("bulk{round}");
        prefixes.push(prefix.clone());
        let import_task = {
            let (received, prefix) = (received.clone(), prefix.clone());
            tokio::spawn(async move {
                if import(&admin, &prefix, BULK_ROWS).await == Ok(BULK_ROWS as u64) {
                    received.lock().expect("lock").imports.push(prefix);
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(rng.between(20, 700))).await;
        if !import_task.is_finished() {
            killed_during_import += 1;
        }
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
        for t in tasks {
            t.await.expect("device task");
        }
        import_task.await.expect("import task");
        check_database(
            &data.join("idprov.db"),
            &received.lock().expect("lock"),
            &prefixes,
        );
    }

    // After every kill, a secret registered before the first one still works.
    let mut server = spawn(&bin, &data, &config, port);
    let anon = ready(&mut server, &data).await;
    let i = DEVICES - 1;
    let device = TestDevice::new(&format!("dev-{i}"));
    let (status, resp) = provision_at(&anon, &server.addr, &device.request(Some(SECRET)))
        .await
        .expect("request");
    assert_eq!(status, 200);
    assert_eq!(resp.expect("response").status, ProvisionStatus::Approved);
    server.child.kill().expect("kill");
    server.child.wait().expect("reaped");
    let received = received.lock().expect("lock");
    eprintln!(
        "crash test: {} certificates received (statuses {:?}), {} of {rounds} imports acknowledged, {killed_during_import} kills during an import",
        received.certificates.len(),
        received.statuses,
        received.imports.len()
    );
    assert!(
        !received.certificates.is_empty(),
        "the kills left no time to provision"
    );
    let distinct: BTreeSet<_> = received.certificates.iter().map(|(_, s)| s).collect();
    assert_eq!(
        distinct.len(),
        received.certificates.len(),
        "serials are unique"
    );
}
