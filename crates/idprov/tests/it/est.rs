//! EST (RFC 7030) driven the way its examples do: `openssl req` makes the
//! CSR, `curl` sends it (`--cacert`, and `--user` or a client certificate),
//! `openssl pkcs7 -print_certs` and `openssl verify` read the answer. The
//! server is the real one (the test kit); the registry, queue, lockout,
//! audit and CRL are the ones idprov v1 uses, and a device enrolled over
//! EST connects to mosquitto with its certificate.
//!
//! Needs openssl and curl (and mosquitto for the broker); skipped
//! otherwise, except under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use idprov_proto::admin::{Decision, RevokeRequest};
use idprov_proto::kinds::Protocol;
use idprov_proto::{ProvisionRequest, ProvisionStatus};
use idprov_store::IssueKind;
use idprov_testkit::TestServer;

use crate::mosquitto::{mosquitto_missing, publish, start_broker};

/// True, after saying so, when openssl or curl is missing (an error in CI).
fn tools_missing() -> bool {
    !crate::require(&["openssl", "curl"], "openssl and curl")
}

/// Runs a bash script (`set -euo pipefail`); panics, showing its errors,
/// unless it succeeds.
fn sh(script: &str) -> String {
    let out = sh_status(script);
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sh_status(script: &str) -> Output {
    Command::new("bash")
        .args(["-c", &format!("set -euo pipefail\n{script}")])
        .output()
        .expect("bash runs")
}

/// How a request authenticates.
enum Auth<'a> {
    None,
    Basic(&'a str, &'a str),
    Cert(&'a Path, &'a Path),
}

/// An EST answer as curl saw it.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The header lines, lower-cased.
    headers: String,
    /// The body file.
    body: PathBuf,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            l.strip_prefix(&format!("{name}:"))
                .map(|v| v.trim().to_owned())
        })
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.body).unwrap_or_default()
    }
}

/// A server and a scratch directory for keys, CSRs and answers.
struct Est {
    server: TestServer,
    dir: PathBuf,
    ca: PathBuf,
    n: std::cell::Cell<u32>,
}

impl Est {
    async fn start() -> Est {
        let server = TestServer::start().await;
        let dir = server.temp_dir().join("est");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let ca = server.data_dir().join("ca-chain.pem");
        Est {
            server,
            dir,
            ca,
            n: std::cell::Cell::new(0),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `openssl req`: a key (`name.key`, made with `newkey`, e.g. `ec
    /// -pkeyopt ec_paramgen_curve:P-256`) and its CSR for `subject`, base64
    /// of the DER (`name.csr`), with `extra` options.
    fn csr(&self, name: &str, subject: &str, newkey: &str, extra: &str) -> PathBuf {
        let (key, csr) = (
            self.path(&format!("{name}.key")),
            self.path(&format!("{name}.csr")),
        );
        sh(&format!(
            "openssl req -new -newkey {newkey} -nodes -keyout {key} -subj '{subject}' {extra} \
             -outform DER 2>/dev/null | openssl base64 > {csr}",
            key = key.display(),
            csr = csr.display()
        ));
        csr
    }

    /// A CSR for an existing key (`name.key`).
    fn csr_for_key(&self, name: &str, subject: &str) -> PathBuf {
        let (key, csr) = (
            self.path(&format!("{name}.key")),
            self.path(&format!("{name}-again.csr")),
        );
        sh(&format!(
            "openssl req -new -key {key} -subj '{subject}' -outform DER | openssl base64 > {csr}",
            key = key.display(),
            csr = csr.display()
        ));
        csr
    }

    fn curl(&self, path: &str, args: &str) -> Answer {
        self.n.set(self.n.get() + 1);
        let (headers, body) = (
            self.path(&format!("answer-{}.headers", self.n.get())),
            self.path(&format!("answer-{}.body", self.n.get())),
        );
        let status = sh(&format!(
            "curl -sS --cacert {ca} -D {headers} -o {body} -w '%{{http_code}}' {args} {url}",
            ca = self.ca.display(),
            headers = headers.display(),
            body = body.display(),
            url = self.server.url(path),
        ));
        Answer {
            status: status.trim().parse().expect("an HTTP status"),
            headers: std::fs::read_to_string(&headers)
                .expect("headers")
                .to_lowercase(),
            body,
        }
    }

    fn get(&self, operation: &str) -> Answer {
        self.curl(&format!("/.well-known/est/{operation}"), "")
    }

    /// POSTs a CSR file to an enrollment operation.
    fn post(&self, operation: &str, csr: &Path, auth: Auth<'_>) -> Answer {
        let auth = match auth {
            Auth::None => String::new(),
            Auth::Basic(user, password) => format!("--user '{user}:{password}'"),
            Auth::Cert(cert, key) => format!("--cert {} --key {}", cert.display(), key.display()),
        };
        self.curl(
            &format!("/.well-known/est/{operation}"),
            &format!(
                "{auth} -H 'Content-Type: application/pkcs10' --data-binary @{}",
                csr.display()
            ),
        )
    }

    /// The certificates of a certs-only PKCS#7 answer, as PEM in `name`.
    fn certificates(&self, answer: &Answer, name: &str) -> PathBuf {
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(
            answer.header("content-type").as_deref(),
            Some("application/pkcs7-mime; smime-type=certs-only")
        );
        assert_eq!(
            answer.header("content-transfer-encoding").as_deref(),
            Some("base64")
        );
        let out = self.path(name);
        sh(&format!(
            "openssl base64 -d -in {} | openssl pkcs7 -inform DER -print_certs -out {}",
            answer.body.display(),
            out.display()
        ));
        out
    }

    /// `openssl verify` against the CA chain (and a CRL, if given).
    fn verify(&self, cert: &Path, crl: Option<&Path>) -> Output {
        let crl = crl.map_or(String::new(), |c| {
            format!("-crl_check -CRLfile {}", c.display())
        });
        sh_status(&format!(
            "openssl verify -CAfile {} {crl} {}",
            self.ca.display(),
            cert.display()
        ))
    }
}

fn assert_refused(answer: &Answer, status: u16, says: &str) {
    assert_eq!(answer.status, status, "{}", answer.text());
    assert!(
        answer.text().contains(says),
        "expected {says:?} in {:?}",
        answer.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_enrollment_then_mosquitto_renewal_over_both_protocols_and_revocation() {
    if tools_missing() {
        return;
    }
    let est = Est::start().await;
    let server = &est.server;

    // cacerts: the CA chain, as a certs-only PKCS#7 openssl reads.
    let chain = est.certificates(&est.get("cacerts"), "cacerts.pem");
    let fingerprint = |pem: &Path| {
        sh(&format!(
            "openssl x509 -in {} -noout -fingerprint -sha256",
            pem.display()
        ))
    };
    assert_eq!(fingerprint(&chain), fingerprint(&est.ca));

    // csrattrs: what a request must carry, as DER openssl parses.
    let attrs = est.get("csrattrs");
    assert_eq!(attrs.status, 200);
    assert_eq!(
        attrs.header("content-type").as_deref(),
        Some("application/csrattrs")
    );
    let parsed = sh(&format!(
        "openssl base64 -d -in {} | openssl asn1parse -inform DER",
        attrs.body.display()
    ));
    for name in [
        "commonName",
        "id-ecPublicKey",
        "prime256v1",
        "secp384r1",
        "ED25519",
        "rsaEncryption",
        "ecdsa-with-SHA256",
    ] {
        assert!(parsed.contains(name), "{name} in {parsed}");
    }

    // Basic enrollment with the device's OOB secret. The CSR asks for a
    // SAN and CA:TRUE: both ignored, the profile is PROTOCOL.md §7's.
    server.add_secret("router-1", "router one secret").await;
    let csr = est.csr(
        "router-1",
        "/CN=router-1/O=Someone Else",
        "ec -pkeyopt ec_paramgen_curve:P-256",
        "-addext subjectAltName=DNS:evil.example -addext basicConstraints=critical,CA:TRUE",
    );
    let answer = est.post(
        "simpleenroll",
        &csr,
        Auth::Basic("router-1", "router one secret"),
    );
    let cert = est.certificates(&answer, "router-1.pem");
    let verified = est.verify(&cert, None);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    let text = sh(&format!("openssl x509 -in {} -noout -text", cert.display()));
    assert!(
        text.contains("Subject: O = idprov, OU = iotdevice, CN = router-1"),
        "{text}"
    );
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(!text.contains("evil.example"), "{text}");
    assert!(!text.contains("Someone Else"), "{text}");
    // The secret is consumed: a second key gets nothing for it.
    let other = est.csr(
        "router-1b",
        "/CN=router-1",
        "ec -pkeyopt ec_paramgen_curve:P-256",
        "",
    );
    let again = est.post(
        "simpleenroll",
        &other,
        Auth::Basic("router-1", "router one secret"),
    );
    assert_eq!(again.status, 202, "{}", again.text());

    // One registry: the listing, the history and the audit log say EST.
    let admin = server.admin();
    let listed = admin.list_devices(None).await.expect("devices");
    let row = listed
        .iter()
        .find(|d| d.device_id == "router-1")
        .expect("listed");
    assert_eq!(row.status, ProvisionStatus::Approved);
    assert_eq!(row.protocol, Some(Protocol::Est));
    let history = admin.device("router-1").await.expect("device").certificates;
    assert_eq!(history[0].issue_kind, IssueKind::Oob);
    assert_eq!(history[0].protocol, Some(Protocol::Est));
    let audit = server
        .registry()
        .audit_entries(0, 1000)
        .await
        .expect("audit");
    let issued = audit
        .iter()
        .find(|e| e.event == "certificate_issued" && e.device_id.as_deref() == Some("router-1"))
        .expect("audited");
    assert_eq!(issued.detail["protocol"], "est");
    assert_eq!(issued.detail["secretUsed"], true);

    // The device connects to a real broker with its certificate.
    let key = est.path("router-1.key");
    let broker = if mosquitto_missing() {
        None
    } else {
        let out = sh(&format!(
            "cd {dir} && {idprov} certs issue --ou service --cn broker --san 127.0.0.1 --out . \
             --server {addr} --data-dir {data} >/dev/null && echo ok",
            dir = est.dir.display(),
            idprov = env!("CARGO_BIN_EXE_idprov"),
            addr = server.server_arg(),
            data = server.data_dir().display(),
        ));
        assert_eq!(out.trim(), "ok");
        let (broker, port) = start_broker(
            &est.dir,
            &est.ca,
            &est.path("broker.pem"),
            &est.path("broker.key"),
            Some(&server.data_dir().join("crl.pem")),
        );
        let out = publish(
            port,
            est.ca.to_str().expect("p"),
            cert.to_str().expect("p"),
            key.to_str().expect("p"),
            "hello over EST",
        );
        assert!(
            out.status.success(),
            "the broker refused the EST certificate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some((broker, port))
    };

    // simplereenroll with its own certificate: the same key renews…
    let same_key = est.csr_for_key("router-1", "/CN=router-1");
    let renewed = est.certificates(
        &est.post("simplereenroll", &same_key, Auth::Cert(&cert, &key)),
        "router-1-renewed.pem",
    );
    assert!(est.verify(&renewed, None).status.success());
    // …and a new key is a re-key.
    let new_key = est.csr("router-1-new", "/CN=router-1", "ed25519", "");
    let rekeyed = est.certificates(
        &est.post("simplereenroll", &new_key, Auth::Cert(&renewed, &key)),
        "router-1-rekeyed.pem",
    );
    let history = admin.device("router-1").await.expect("device").certificates;
    let kinds: Vec<_> = history.iter().map(|c| (c.issue_kind, c.protocol)).collect();
    assert_eq!(
        kinds,
        [
            (IssueKind::Rekey, Some(Protocol::Est)),
            (IssueKind::Renewal, Some(Protocol::Est)),
            (IssueKind::Oob, Some(Protocol::Est)),
        ]
    );
    // It renews over idprov v1 too, with the certificate EST gave it.
    let new_key_path = est.path("router-1-new.key");
    let (rekeyed_pem, new_key_pem) = (
        std::fs::read_to_string(&rekeyed).expect("cert"),
        std::fs::read_to_string(&new_key_path).expect("key"),
    );
    let public = sh(&format!(
        "openssl pkey -in {} -pubout",
        new_key_path.display()
    ));
    let (status, response, body) = idprov_testkit::provision(
        &server.http_with(&rekeyed_pem, &new_key_pem),
        server,
        &ProvisionRequest {
            device_id: "router-1".into(),
            ip: "192.0.2.1".into(),
            mac: String::new(),
            public_key_pem: public,
            signature: String::new(),
        },
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(response.expect("answer").status, ProvisionStatus::Approved);
    let history = admin.device("router-1").await.expect("device").certificates;
    assert_eq!(
        (history[0].issue_kind, history[0].protocol),
        (IssueKind::Renewal, Some(Protocol::V1))
    );

    // Revoked: re-enrollment is refused, and the revocation reaches the
    // CRL that openssl and the broker read.
    admin
        .revoke_device(
            "router-1",
            &RevokeRequest {
                reason: Some("keyCompromise".into()),
                note: None,
                serial: None,
            },
        )
        .await
        .expect("revoked");
    let refused = est.post("simplereenroll", &same_key, Auth::Cert(&cert, &key));
    assert_refused(&refused, 403, "revoked");
    let crl = est.path("crl.der");
    sh(&format!(
        "curl -sS --cacert {} -o {} {}",
        est.ca.display(),
        crl.display(),
        server.url("/idprov/crl")
    ));
    let crl_pem = est.path("crl.pem");
    sh(&format!(
        "openssl crl -inform DER -in {} -out {}",
        crl.display(),
        crl_pem.display()
    ));
    let checked = est.verify(&cert, Some(&crl_pem));
    assert!(!checked.status.success());
    assert!(
        String::from_utf8_lossy(&checked.stdout).contains("certificate revoked")
            || String::from_utf8_lossy(&checked.stderr).contains("certificate revoked"),
        "{checked:?}"
    );
    if let Some((broker, port)) = broker {
        broker.reload();
        // The broker rereads its CRL on SIGHUP, in its own time: ask until
        // it refuses (or give up).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while publish(
            port,
            est.ca.to_str().expect("p"),
            cert.to_str().expect("p"),
            key.to_str().expect("p"),
            "after revocation",
        )
        .status
        .success()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the broker must refuse the revoked certificate"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    // Metrics count EST requests by operation and outcome.
    let metrics = server.metrics().await;
    for (operation, outcome) in [
        ("cacerts", "served"),
        ("csrattrs", "served"),
        ("simpleenroll", "issued"),
        ("simpleenroll", "waiting"),
        ("simplereenroll", "issued"),
        ("simplereenroll", "forbidden"),
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("idprov_est_requests_total{")
                    && l.contains(&format!("operation=\"{operation}\""))
                    && l.contains(&format!("outcome=\"{outcome}\""))),
            "{operation}/{outcome} in\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_a_request_waits_until_an_administrator_approves_its_key() {
    if tools_missing() {
        return;
    }
    let est = Est::start().await;
    let admin = est.server.admin();
    let csr = est.csr("plc-7", "/CN=plc-7", "rsa:2048", "");
    for attempt in 1..=2 {
        let waiting = est.post("simpleenroll", &csr, Auth::None);
        assert_eq!(waiting.status, 202, "attempt {attempt}: {}", waiting.text());
        assert_eq!(waiting.header("retry-after").as_deref(), Some("60"));
        assert!(waiting.text().contains("retry after 60 seconds"));
    }
    let queue = admin.list_requests(None).await.expect("queue");
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].device_id, "plc-7");
    assert_eq!(queue[0].attempts, 2);
    assert_eq!(queue[0].key_type, "RSA-2048");
    assert_eq!(queue[0].protocol, Some(Protocol::Est));

    admin
        .decide("plc-7", "approve", &Decision::default())
        .await
        .expect("approved");
    // Another key of the same device is not what was approved.
    let other = est.csr("plc-7-other", "/CN=plc-7", "rsa:2048", "");
    assert_eq!(est.post("simpleenroll", &other, Auth::None).status, 202);
    // The approved key is issued.
    let cert = est.certificates(&est.post("simpleenroll", &csr, Auth::None), "plc-7.pem");
    assert!(est.verify(&cert, None).status.success());
    let history = admin.device("plc-7").await.expect("device").certificates;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].issue_kind, IssueKind::Approval);
    assert_eq!(history[0].key_type, "RSA-2048");

    // A key an administrator rejected is 403 until cleared.
    let rejected = est.csr(
        "plc-8",
        "/CN=plc-8",
        "ec -pkeyopt ec_paramgen_curve:P-384",
        "",
    );
    assert_eq!(est.post("simpleenroll", &rejected, Auth::None).status, 202);
    admin
        .decide(
            "plc-8",
            "reject",
            &Decision {
                key_fingerprint: None,
                reason: Some("not ours".into()),
            },
        )
        .await
        .expect("rejected");
    assert_refused(
        &est.post("simpleenroll", &rejected, Auth::None),
        403,
        "an administrator rejected",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ra_enrolls_a_device_with_its_administrator_or_plugin_certificate() {
    if tools_missing() {
        return;
    }
    let est = Est::start().await;
    let data = est.server.data_dir();
    let (admin_cert, admin_key) = (data.join("admin.pem"), data.join("admin.key"));
    let csr = est.csr(
        "meter-3",
        "/CN=meter-3",
        "ec -pkeyopt ec_paramgen_curve:P-256",
        "",
    );
    let cert = est.certificates(
        &est.post("simpleenroll", &csr, Auth::Cert(&admin_cert, &admin_key)),
        "meter-3.pem",
    );
    assert!(est.verify(&cert, None).status.success());
    let subject = sh(&format!(
        "openssl x509 -in {} -noout -subject",
        cert.display()
    ));
    assert_eq!(
        subject.trim(),
        "subject=O = idprov, OU = iotdevice, CN = meter-3"
    );
    let history = est
        .server
        .admin()
        .device("meter-3")
        .await
        .expect("device")
        .certificates;
    assert_eq!(history[0].issue_kind, IssueKind::Admin);
    assert_eq!(history[0].authorized_by, "admin:admin");
    assert_eq!(history[0].protocol, Some(Protocol::Est));
    // An administrator certificate does not re-enroll: that is the device's.
    assert_refused(
        &est.post("simplereenroll", &csr, Auth::Cert(&admin_cert, &admin_key)),
        403,
        "an RA enrolls devices with simpleenroll",
    );

    // A plugin is an RA too; a service certificate is not: its request
    // waits like any other without a secret.
    let client_cert = |ou: &str, cn: &str| {
        let (cert, key) =
            est.server
                .issue_client_cert(ou, cn, std::time::Duration::from_secs(3600));
        let (c, k) = (
            est.path(&format!("{cn}.pem")),
            est.path(&format!("{cn}.key")),
        );
        std::fs::write(&c, cert).expect("write");
        std::fs::write(&k, key.as_str()).expect("write");
        (c, k)
    };
    let (plugin_cert, plugin_key) = client_cert("plugin", "commissioning-tool");
    let csr = est.csr("meter-4", "/CN=meter-4", "ed25519", "");
    let cert = est.certificates(
        &est.post("simpleenroll", &csr, Auth::Cert(&plugin_cert, &plugin_key)),
        "meter-4.pem",
    );
    assert!(est.verify(&cert, None).status.success());
    let history = est
        .server
        .admin()
        .device("meter-4")
        .await
        .expect("device")
        .certificates;
    assert_eq!(history[0].issue_kind, IssueKind::Admin);
    assert_eq!(history[0].authorized_by, "plugin:commissioning-tool");
    let (service_cert, service_key) = client_cert("service", "web-api");
    let csr = est.csr("meter-5", "/CN=meter-5", "ed25519", "");
    let waiting = est.post(
        "simpleenroll",
        &csr,
        Auth::Cert(&service_cert, &service_key),
    );
    assert_eq!(waiting.status, 202, "{}", waiting.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_names_its_problem_and_changes_nothing() {
    if tools_missing() {
        return;
    }
    let est = Est::start().await;
    let server = &est.server;
    let p256 = "ec -pkeyopt ec_paramgen_curve:P-256";

    // A wrong secret, and none where one is registered: 401 with a Basic
    // challenge; the secret stays.
    server.add_secret("gate-1", "the gate secret").await;
    let csr = est.csr("gate-1", "/CN=gate-1", p256, "");
    for (auth, says) in [
        (Auth::Basic("gate-1", "a wrong guess"), "wrong secret"),
        (Auth::None, "authenticate with HTTP Basic"),
        (Auth::Basic("gate-1", ""), "authenticate with HTTP Basic"),
    ] {
        let answer = est.post("simpleenroll", &csr, auth);
        assert_refused(&answer, 401, says);
        assert_eq!(
            answer.header("www-authenticate").as_deref(),
            Some(r#"basic realm="idprov est", charset="utf-8""#)
        );
    }
    // Four more wrong secrets (five in all) lock this address out: even
    // the right secret is then 429 with Retry-After.
    for n in 0..4 {
        let answer = est.post(
            "simpleenroll",
            &csr,
            Auth::Basic("gate-1", &format!("guess {n}")),
        );
        assert_eq!(answer.status, 401);
    }
    let locked = est.post(
        "simpleenroll",
        &csr,
        Auth::Basic("gate-1", "the gate secret"),
    );
    assert_refused(&locked, 429, "too many wrong secrets");
    assert_eq!(locked.header("retry-after").as_deref(), Some("60"));
    assert!(
        server
            .registry()
            .live_secret(
                "gate-1",
                idprov_proto::UnixTime::from(idprov_proto::clock::Clock::now(&*server.clock))
            )
            .await
            .expect("read")
            .is_some(),
        "the secret is still there"
    );

    // Bad CSRs: 400 naming the problem.
    let mismatch = est.post(
        "simpleenroll",
        &csr,
        Auth::Basic("gate-2", "the gate secret"),
    );
    assert_refused(&mismatch, 400, "the Basic user name must be the device ID");
    // The same CSR with one bit of its signature flipped.
    let (der, tampered) = (est.path("tampered.der"), est.path("tampered.csr"));
    sh(&format!(
        "openssl base64 -d -in {} -out {}",
        csr.display(),
        der.display()
    ));
    let mut bytes = std::fs::read(&der).expect("read");
    *bytes.last_mut().expect("a signature") ^= 1;
    std::fs::write(&der, bytes).expect("write");
    sh(&format!(
        "openssl base64 -in {} -out {}",
        der.display(),
        tampered.display()
    ));
    assert_refused(
        &est.post("simpleenroll", &tampered, Auth::None),
        400,
        "does not verify with its public key",
    );
    for (name, subject, newkey, says) in [
        (
            "p521",
            "/CN=gate-3",
            "ec -pkeyopt ec_paramgen_curve:P-521",
            "unsupported key type ECDSA-P521",
        ),
        ("rsa1024", "/CN=gate-3", "rsa:1024", "RSA-1024"),
        ("nocn", "/O=Nobody", p256, "the subject has no CN"),
        (
            "badid",
            "/CN=gate 3",
            p256,
            "the CSR's CN is not a device ID",
        ),
        (
            "reserved",
            "/CN=admin",
            p256,
            "names a certificate role or this server",
        ),
    ] {
        let bad = est.csr(name, subject, newkey, "");
        assert_refused(&est.post("simpleenroll", &bad, Auth::None), 400, says);
    }
    let garbage = est.path("garbage.csr");
    std::fs::write(&garbage, "this is not base64!").expect("write");
    assert_refused(
        &est.post("simpleenroll", &garbage, Auth::None),
        400,
        "not base64",
    );
    let wrong_type = est.curl(
        "/.well-known/est/simpleenroll",
        &format!(
            "-H 'Content-Type: text/plain' --data-binary @{}",
            csr.display()
        ),
    );
    assert_refused(&wrong_type, 415, "application/pkcs10");

    // Re-enrollment: a client certificate is required, and only the
    // device's own.
    assert_refused(
        &est.post("simplereenroll", &csr, Auth::None),
        401,
        "client certificate",
    );
    let (other_cert, other_key) =
        server.issue_client_cert("iotdevice", "gate-9", std::time::Duration::from_secs(3600));
    let (c, k) = (est.path("gate-9.pem"), est.path("gate-9.key"));
    std::fs::write(&c, other_cert).expect("write");
    std::fs::write(&k, other_key.as_str()).expect("write");
    assert_refused(
        &est.post("simplereenroll", &csr, Auth::Cert(&c, &k)),
        403,
        "the CSR's CN must be the device ID of the certificate presented",
    );
    // Unsupported operations are unknown paths.
    assert_eq!(est.get("serverkeygen").status, 404);

    // Nothing of it was recorded: no certificate, no waiting request.
    let admin = server.admin();
    assert!(admin.list_requests(None).await.expect("queue").is_empty());
    for device in admin.list_devices(None).await.expect("devices") {
        assert_eq!(device.certificates, 0, "{}", device.device_id);
    }
}
