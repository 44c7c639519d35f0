//! Where the CA key is kept, with the real executable: a PKCS#11 token
//! (Debian's SoftHSM2, a token of the test's own), an encrypted key file
//! that OpenSSL reads, `idprov ca encrypt-key`, a backup restored with the
//! passphrase, and an intermediate signed by a root made with `openssl`.
//!
//! The servers run as processes: a PKCS#11 module reads its configuration
//! (`SOFTHSM2_CONF`) once per process, so each test's token needs a
//! process of its own.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::serve::{free_port, spawn_server_with, stop, wait_ready};
use crate::{idprov, idprov_env, stderr, stdout};

const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// True when `tool` runs; under CI a missing tool fails the test.
fn have(tool: &str, what: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is missing ({what}): ./test.sh installs it"
        );
        eprintln!("skipped: {tool} is not installed ({what})");
    }
    found
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn private_file(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// A SoftHSM2 of the test's own: its configuration and token directory in
/// `dir`, one token initialised with `label` and user PIN `pin`.
fn softhsm(dir: &Path, label: &str, pin: &str) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).expect("token dir");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .expect("conf");
    run(Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            "5678",
            "--pin",
            pin,
        ]));
    conf
}

struct Running {
    child: std::process::Child,
    port: u16,
    data: PathBuf,
    env: Vec<(String, String)>,
}

impl Running {
    fn start(data: &Path, config: &Path, env: &[(&str, &str)]) -> Running {
        let port = free_port();
        let child = spawn_server_with(data, port, Some(config), env);
        wait_ready(data, port);
        Running {
            child,
            port,
            data: data.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs an admin command against this server.
    fn admin(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        let server = self.server();
        all.extend(["--server", &server, "--data-dir", s(&self.data)]);
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        idprov_env(&all, None, &env)
    }

    /// Provisions `device` with `secret` into `dir`, pinned to `ca_fp`.
    fn provision(&self, device: &str, secret_file: &Path, dir: &Path, ca_fp: &str) {
        let out = self.admin(&["oob", "add", device, "--secret-file", s(secret_file)]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = idprov(
            &[
                "device",
                "provision",
                "--id",
                device,
                "--secret-file",
                s(secret_file),
                "--server",
                &self.server(),
                "--dir",
                s(dir),
                "--ca-fingerprint",
                ca_fp,
            ],
            None,
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }

    fn stop(self) -> String {
        stop(self.child)
    }
}

/// `idprov serve` that must refuse to start: its exit code and message.
fn refused_start(data: &Path, config: &Path, env: &[(&str, &str)]) -> String {
    let out = idprov_env(
        &[
            "serve",
            "--no-dns-sd",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            s(data),
            "--config",
            s(config),
        ],
        None,
        env,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    stderr(&out)
}

/// `idprov backup` of `data` (with `config` and `env`) into `backup`: it
/// succeeds, and says `not_copied` (stderr) and `holds` (stdout).
fn backup_saying(
    (data, config, env): (&Path, &Path, &[(&str, &str)]),
    backup: &Path,
    not_copied: &str,
    holds: &str,
) {
    let out = idprov_env(
        &[
            "backup",
            s(backup),
            "--data-dir",
            s(data),
            "--config",
            s(config),
        ],
        None,
        env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(not_copied), "{}", stderr(&out));
    assert!(stdout(&out).contains(holds), "{}", stdout(&out));
}

fn fingerprint(data: &Path) -> String {
    let out = idprov(&["ca-fingerprint", "--data-dir", s(data)], None);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_owned()
}

#[test]
fn a_ca_key_generated_in_a_softhsm_token_signs_everything_and_never_lands_on_disk() {
    if !have("softhsm2-util", "softhsm2") || !have("pkcs11-tool", "opensc") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = softhsm(tmp.path(), "idprov-test", "1234");
    let conf_env = [("SOFTHSM2_CONF", s(&conf))];
    let pin = tmp.path().join("pin");
    private_file(&pin, "1234\n");
    let config = tmp.path().join("idprov.toml");
    let write_config = |token: &str, module: &str| {
        std::fs::write(
            &config,
            format!(
                "[ca.pkcs11]\nmodule = \"{module}\"\ntoken_label = \"{token}\"\npin_file = \"{}\"\n",
                pin.display()
            ),
        )
        .expect("config")
    };
    write_config("idprov-test", SOFTHSM_MODULE);
    let data = tmp.path().join("data");
    let server = Running::start(&data, &config, &conf_env);
    assert!(!data.join("ca.key").exists(), "no CA key file");
    assert!(data.join("ca.pem").exists());
    // The token's private keys, as pkcs11-tool lists them.
    let private_keys = || {
        let out = run(Command::new("pkcs11-tool")
            .env("SOFTHSM2_CONF", &conf)
            .args([
                "--module",
                SOFTHSM_MODULE,
                "--token-label",
                "idprov-test",
                "--login",
                "--pin",
                "1234",
                "--list-objects",
                "--type",
                "privkey",
            ]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Generated inside the token: sensitive, never extractable.
    let objects = private_keys();
    assert!(objects.contains("label:      idprov-ca"), "{objects}");
    assert!(objects.contains("sensitive"), "{objects}");
    assert!(objects.contains("never extractable"), "{objects}");
    // A device certificate and the CRL, signed in the token, verify.
    let secret = tmp.path().join("secret");
    std::fs::write(&secret, "a-secret-for-the-token-test\n").expect("secret");
    let device = tmp.path().join("device");
    server.provision("hsm-dev-1", &secret, &device, &fingerprint(&data));
    let ca = data.join("ca.pem");
    run(Command::new("openssl").args([
        "verify",
        "-CAfile",
        s(&ca),
        s(&device.join("current/cert.pem")),
    ]));
    let crl = run(Command::new("openssl").args([
        "crl",
        "-in",
        s(&data.join("crl.pem")),
        "-CAfile",
        s(&ca),
        "-noout",
    ]));
    assert!(
        String::from_utf8_lossy(&crl.stderr).contains("verify OK"),
        "{crl:?}"
    );
    // The audit checkpoint of the shutdown is signed in the token too.
    let log = server.stop();
    assert!(log.contains("PKCS#11 token"), "{log}");
    let server = Running::start(&data, &config, &conf_env);
    let out = server.admin(&["audit", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("signed checkpoints"),
        "{}",
        stdout(&out)
    );
    backup_saying(
        (&data, &config, &conf_env),
        &tmp.path().join("backup"),
        "not copied: the CA key: it is in PKCS#11 token \"idprov-test\"",
        "holds no CA private key",
    );
    server.stop();

    // A rollover makes the new CA's key in the token too; the OCSP
    // responders' certificates are signed there, each by its own CA; the
    // finish destroys the old key in the token.
    let ca_command = |command: &str| {
        let out = idprov_env(
            &[
                "ca",
                command,
                "--data-dir",
                s(&data),
                "--config",
                s(&config),
            ],
            None,
            &conf_env,
        );
        assert!(out.status.success(), "{command}: {}", stderr(&out));
        stdout(&out)
    };
    let said = ca_command("rollover");
    assert!(said.contains("PKCS#11 token \"idprov-test\""), "{said}");
    assert_eq!(private_keys().matches("Private Key Object").count(), 2);
    for file in ["ca.key", "ca-previous.key"] {
        assert!(!data.join(file).exists(), "no {file}");
    }
    let server = Running::start(&data, &config, &conf_env);
    let device = tmp.path().join("device-2");
    server.provision("hsm-dev-2", &secret, &device, &fingerprint(&data));
    for (ca, cert) in [
        ("ca.pem", device.join("current/cert.pem")),
        ("ca.pem", data.join("ocsp.pem")),
        ("ca-previous.pem", data.join("ocsp-previous.pem")),
    ] {
        run(Command::new("openssl").args(["verify", "-CAfile", s(&data.join(ca)), s(&cert)]));
    }
    server.stop();
    ca_command("finish-rollover");
    assert_eq!(private_keys().matches("Private Key Object").count(), 1);

    // A wrong PIN, an absent token, a missing module: a clear error, no start.
    private_file(&pin, "9999\n");
    let err = refused_start(&data, &config, &conf_env);
    assert!(
        err.contains("the PIN for token \"idprov-test\" is wrong"),
        "{err}"
    );
    private_file(&pin, "1234\n");
    // A token locked for use: its security officer never set a user PIN.
    run(Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--module",
            SOFTHSM_MODULE,
            "--slot-index",
            "1",
            "--init-token",
        ])
        .args(["--label", "idprov-locked", "--so-pin", "5678"]));
    write_config("idprov-locked", SOFTHSM_MODULE);
    let err = refused_start(&data, &config, &conf_env);
    assert!(
        err.contains("token \"idprov-locked\" has no user PIN yet"),
        "{err}"
    );
    write_config("no-such-token", SOFTHSM_MODULE);
    let err = refused_start(&data, &config, &conf_env);
    assert!(err.contains("no token labelled \"no-such-token\""), "{err}");
    assert!(
        err.contains("idprov-test"),
        "names the tokens present: {err}"
    );
    write_config("idprov-test", "/nonexistent/libpkcs11.so");
    let err = refused_start(&data, &config, &conf_env);
    assert!(
        err.contains("/nonexistent/libpkcs11.so does not exist"),
        "{err}"
    );
}

fn pubkey_of_cert(cert: &Path) -> String {
    let out = run(Command::new("openssl").args(["x509", "-in", s(cert), "-pubkey", "-noout"]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `openssl pkcs8` decrypts the key with the passphrase file; returns the
/// public key of what it decrypted.
fn openssl_reads(key: &Path, pass: &Path) -> String {
    let clear = key.with_extension("clear");
    run(Command::new("openssl").args([
        "pkcs8",
        "-in",
        s(key),
        "-passin",
        &format!("file:{}", s(pass)),
        "-out",
        s(&clear),
    ]));
    let out = run(Command::new("openssl").args(["pkey", "-in", s(&clear), "-pubout"]));
    let _ = std::fs::remove_file(&clear);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_encrypted_ca_key_file_openssl_reads_encrypt_key_and_a_backup_restored_with_the_passphrase() {
    if !have("openssl", "openssl") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let pass = tmp.path().join("ca.pass");
    private_file(&pass, "a long passphrase for the CA key\n");
    let with_pass = tmp.path().join("with-pass.toml");
    std::fs::write(
        &with_pass,
        format!("[ca]\nkey_passphrase_file = \"{}\"\n", pass.display()),
    )
    .expect("config");
    let plain = tmp.path().join("plain.toml");
    std::fs::write(&plain, "").expect("config");

    // A first start with a passphrase makes an encrypted key.
    let data = tmp.path().join("data");
    let server = Running::start(&data, &with_pass, &[]);
    let key = data.join("ca.key");
    let text = std::fs::read_to_string(&key).expect("key");
    assert!(
        text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{text}"
    );
    assert_eq!(
        openssl_reads(&key, &pass),
        pubkey_of_cert(&data.join("ca.pem"))
    );
    // A backup says what it did not copy; it restores with the passphrase.
    let backup = tmp.path().join("backup");
    backup_saying(
        (&data, &with_pass, &[]),
        &backup,
        "not copied: the passphrase of the encrypted CA key (file ",
        "restores only with the passphrase",
    );
    server.stop();
    let restored = tmp.path().join("restored");
    let out = idprov(
        &[
            "restore",
            s(&backup),
            "--data-dir",
            s(&restored),
            "--config",
            s(&with_pass),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = refused_start(&restored, &plain, &[]);
    assert!(err.contains("the CA key file is encrypted"), "{err}");
    private_file(&pass, "not the passphrase\n");
    let err = refused_start(&restored, &with_pass, &[]);
    assert!(
        err.contains("the passphrase does not decrypt the CA key file"),
        "{err}"
    );
    private_file(&pass, "a long passphrase for the CA key\n");
    let server = Running::start(&restored, &with_pass, &[]);
    assert_eq!(fingerprint(&restored), fingerprint(&data));
    server.stop();

    // `idprov ca encrypt-key` converts a clear key in place, audited; it
    // refuses while a server runs.
    let data = tmp.path().join("clear");
    let server = Running::start(&data, &plain, &[]);
    let key = data.join("ca.key");
    assert!(
        std::fs::read_to_string(&key)
            .expect("key")
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let encrypt = || {
        idprov(
            &[
                "ca",
                "encrypt-key",
                "--data-dir",
                s(&data),
                "--config",
                s(&with_pass),
            ],
            None,
        )
    };
    let out = encrypt();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("stop it first"), "{}", stderr(&out));
    server.stop();
    let out = encrypt();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("encrypted the CA key"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::metadata(&key).expect("key").permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        openssl_reads(&key, &pass),
        pubkey_of_cert(&data.join("ca.pem"))
    );
    let out = encrypt();
    assert_eq!(out.status.code(), Some(2), "already encrypted");
    let server = Running::start(&data, &with_pass, &[]);
    let out = server.admin(&["audit", "list", "--event", "ca_key_encrypted"]);
    assert!(
        stdout(&out).contains("ca_key_encrypted"),
        "{}",
        stdout(&out)
    );
    server.stop();
}

#[test]
fn an_intermediate_signed_by_an_openssl_root_issues_chains_devices_verify_to_the_root() {
    if !have("openssl", "openssl") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = |name: &str| tmp.path().join(name);
    run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        s(&t("root.key")),
        "-out",
        s(&t("root.pem")),
        "-subj",
        "/O=Offline/CN=Offline root",
        "-days",
        "3650",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]));
    let config = t("idprov.toml");
    std::fs::write(&config, "").expect("config");
    let data = t("data");
    let init = idprov(
        &[
            "ca",
            "init",
            "--intermediate",
            "--data-dir",
            s(&data),
            "--config",
            s(&config),
        ],
        None,
    );
    assert!(init.status.success(), "{}", stderr(&init));
    assert!(stdout(&init).starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    std::fs::write(t("req.pem"), stdout(&init)).expect("csr");
    // The server does not start half made.
    let err = refused_start(&data, &config, &[]);
    assert!(err.contains("waits for its signed certificate"), "{err}");
    std::fs::write(
        t("ext.cnf"),
        "[v3]\nbasicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .expect("ext");
    run(Command::new("openssl").args([
        "x509",
        "-req",
        "-in",
        s(&t("req.pem")),
        "-CA",
        s(&t("root.pem")),
        "-CAkey",
        s(&t("root.key")),
        "-CAcreateserial",
        "-days",
        "365",
        "-extfile",
        s(&t("ext.cnf")),
        "-extensions",
        "v3",
        "-out",
        s(&t("inter.pem")),
    ]));
    let import = |cert: &str| {
        idprov(
            &[
                "ca",
                "import",
                s(&t(cert)),
                "--chain",
                s(&t("root.pem")),
                "--data-dir",
                s(&data),
                "--config",
                s(&config),
            ],
            None,
        )
    };
    // A certificate of another key is refused, changing nothing.
    let out = import("root.pem");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!data.join("ca.pem").exists());
    let out = import("inter.pem");
    assert!(out.status.success(), "{}", stderr(&out));
    let server = Running::start(&data, &config, &[]);
    let secret = t("secret");
    std::fs::write(&secret, "a-secret-for-the-intermediate\n").expect("secret");
    let root_der =
        run(Command::new("openssl").args(["x509", "-in", s(&t("root.pem")), "-outform", "DER"]));
    let root_fp = idprov_proto::Fingerprint::of_der(&root_der.stdout).to_string();
    let device = t("device");
    server.provision("inter-dev-1", &secret, &device, &root_fp);
    let cert = device.join("current/cert.pem");
    // The leaf comes with the intermediate; the root alone verifies it.
    run(Command::new("openssl").args([
        "verify",
        "-CAfile",
        s(&t("root.pem")),
        "-untrusted",
        s(&cert),
        s(&cert),
    ]));
    let chain = std::fs::read_to_string(data.join("ca-chain.pem")).expect("chain");
    assert_eq!(
        chain.matches("BEGIN CERTIFICATE").count(),
        2,
        "intermediate and root"
    );
    let out = server.admin(&["audit", "list", "--event", "ca_intermediate_imported"]);
    assert!(
        stdout(&out).contains("ca_intermediate_imported"),
        "{}",
        stdout(&out)
    );
    server.stop();
}
