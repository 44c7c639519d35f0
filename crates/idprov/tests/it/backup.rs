//! `idprov backup` while the server runs, and `idprov restore` into a new
//! directory that a server then provisions from (persistent-secret mode).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use idprov_proto::{OobSecretMessage, ProvisionStatus};
use idprov_server::config::SecretKeySource;
use idprov_testkit::{Setup, TestDevice, TestServer, provision};

use crate::{idprov, stderr, stdout};

fn run(args: &[&str]) -> Output {
    tokio::task::block_in_place(|| idprov(args, None))
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

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

async fn start(data_dir: Option<std::path::PathBuf>, key: &Path) -> TestServer {
    let key = key.to_owned();
    TestServer::start_with(Setup {
        configure: Box::new(move |c| {
            c.secret_key = SecretKeySource::File(key);
            if let Some(d) = data_dir {
                c.data_dir = d;
            }
        }),
        ..Setup::default()
    })
    .await
}

async fn add_secret(server: &TestServer, device: &str, secret: &str) {
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
async fn a_backup_taken_while_serving_restores_into_a_working_server() {
    if idprov_testkit::skip_unless_sqlite("the VACUUM INTO snapshot") {
        return;
    }
    let outside = tempfile::tempdir().expect("tempdir");
    let key = outside.path().join("secret.key");
    idprov_server::datadir::write_private_file(
        &key,
        b"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n", // 32 bytes, base64
    )
    .expect("key file");
    let mut server = start(None, &key).await;
    let client = server.http();
    add_secret(&server, "before-a", "secret-of-a").await;
    add_secret(&server, "before-b", "secret-of-b").await;
    let a = TestDevice::new("before-a");
    let (_, resp, _) = provision(&client, &server, &a.request(Some("secret-of-a"))).await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Approved);

    // Writers keep going while the backup runs: it must still be one
    // consistent snapshot with an unbroken audit chain.
    let admin = server.admin();
    let writer = tokio::spawn(async move {
        for i in 0..100 {
            admin
                .add_secret(&OobSecretMessage {
                    device_id: format!("during-{i}"),
                    oob_secret: "a-secret-added-during-the-backup".into(),
                    valid_until: String::new(),
                    pake_only: false,
                })
                .await
                .expect("secret added");
        }
    });
    // The operator's configuration names the secrets key, which lives
    // outside the data directory: the backup says it does not hold it.
    let config = outside.path().join("idprov.toml");
    std::fs::write(&config, format!("[secrets]\nkey_file = {:?}\n", s(&key))).expect("config");
    let dest = outside.path().join("backup");
    let manifest: serde_json::Value = serde_json::from_str(&ok(&run(&[
        "backup",
        s(&dest),
        "--config",
        s(&config),
        "--data-dir",
        s(&server.data_dir()),
        "--json",
    ])))
    .expect("manifest JSON");
    writer.await.expect("writer");
    assert_eq!(manifest["format"], "idprov-backup");
    // The server's, the local administrator's, the OCSP responder's and
    // the device's.
    assert_eq!(manifest["database"]["certificates"], 4);
    assert!(
        manifest["database"]["audit_entries"]
            .as_u64()
            .expect("count")
            >= 3
    );
    assert_eq!(manifest["not_included"][0], s(&key), "{manifest}");
    assert_eq!(mode(&dest), 0o700);
    for private in [
        "ca.key",
        "server.key",
        "admin.key",
        "ocsp.key",
        "idprov.db",
        "manifest.json",
    ] {
        assert_eq!(mode(&dest.join(private)), 0o600, "{private}");
    }
    assert!(!dest.join("idprov.lock").exists());
    let check = ok(&run(&["restore", "--check", s(&dest)]));
    assert!(check.contains("complete backup"), "{check}");
    // A backup is not written over another.
    let again = run(&["backup", s(&dest), "--data-dir", s(&server.data_dir())]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));

    // A damaged copy is refused and nothing is created.
    let damaged = outside.path().join("damaged");
    std::fs::create_dir(&damaged).expect("mkdir");
    for entry in std::fs::read_dir(&dest).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), damaged.join(entry.file_name())).expect("copy");
    }
    let mut pem = std::fs::read(damaged.join("ca.pem")).expect("read");
    pem[40] ^= 1;
    std::fs::write(damaged.join("ca.pem"), pem).expect("write");
    let nowhere = outside.path().join("nowhere");
    let out = run(&["restore", s(&damaged), "--data-dir", s(&nowhere)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("altered"), "{}", stderr(&out));
    assert!(!nowhere.exists());

    let ca_fingerprint = server.ca().fingerprint();
    server.stop().await;
    // Into a directory in use: refused.
    let out = run(&["restore", s(&dest), "--data-dir", s(&server.data_dir())]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));

    let restored = outside.path().join("restored");
    let out = ok(&run(&["restore", s(&dest), "--data-dir", s(&restored)]));
    assert!(out.contains("restored"), "{out}");
    assert_eq!(mode(&restored), 0o700);
    assert_eq!(mode(&restored.join("ca.key")), 0o600);

    let server = start(Some(restored.clone()), &key).await;
    assert_eq!(server.ca().fingerprint(), ca_fingerprint);
    let devices = server.admin().list_devices(None).await.expect("devices");
    assert!(devices.iter().any(|d| d.device_id == "before-a"));
    // A secret registered before the backup provisions through the restored server.
    let b = TestDevice::new("before-b");
    let (status, resp, body) =
        provision(&server.http(), &server, &b.request(Some("secret-of-b"))).await;
    assert_eq!(status, 200, "{body}");
    let resp = resp.expect("response");
    assert_eq!(resp.status, ProvisionStatus::Approved);
    assert!(resp.verify(b"secret-of-b").is_some());
    let verify = ok(&run(&[
        "audit",
        "verify",
        "--server",
        &server.server_arg(),
        "--data-dir",
        s(&restored),
    ]));
    assert!(
        verify.contains("verified") || verify.contains("ok"),
        "{verify}"
    );
}
