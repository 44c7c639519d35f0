//! Relying parties checking revocation with idprov's OCSP responder over
//! the plain-HTTP revocation listener: `openssl ocsp` (good, then revoked
//! after `idprov devices revoke`, the responder's signature verified), and
//! Debian's nginx terminating mutual TLS with `ssl_ocsp on` (a device's
//! request served, then refused after revocation without reloading nginx).
//!
//! Needs openssl, curl and nginx; skipped without them, except under
//! `CI=true`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use idprov_testkit::{Setup, TestDevice, TestServer, provision};

use crate::{free_port, idprov, require, stderr, wait_for_port};

/// A server with the revocation listener, and a device it provisioned:
/// the device's certificate and key written as `NAME.pem` / `NAME.key` in
/// the test's directory.
async fn server_and_device(name: &str) -> (TestServer, PathBuf, PathBuf) {
    let server = TestServer::start_with(Setup::with_revocation_listener(|_| {})).await;
    server.add_secret(name, "a-secret-for-ocsp").await;
    let device = TestDevice::new(name);
    let (status, resp, body) = provision(
        &server.http(),
        &server,
        &device.request(Some("a-secret-for-ocsp")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let dir = server.temp_dir().to_owned();
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert, resp.expect("answer").client_cert).expect("write");
    std::fs::write(&key, device.key_pem().as_bytes()).expect("write");
    (server, cert, key)
}

fn revoke(server: &TestServer, device: &str) {
    let data = server.data_dir();
    let out = tokio::task::block_in_place(|| {
        idprov(
            &[
                "devices",
                "revoke",
                device,
                "--reason",
                "keyCompromise",
                "--server",
                &server.server_arg(),
                "--data-dir",
                data.to_str().expect("path"),
            ],
            None,
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// `openssl ocsp` about `cert`, at the URL the certificate names.
fn openssl_ocsp(ca: &Path, cert: &Path, extra: &[&str]) -> String {
    let uri = Command::new("openssl")
        .args(["x509", "-noout", "-ocsp_uri", "-in"])
        .arg(cert)
        .output()
        .expect("openssl x509");
    let url = String::from_utf8_lossy(&uri.stdout).trim().to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "AIA OCSP URL: {url:?}"
    );
    let out = Command::new("openssl")
        .arg("ocsp")
        .arg("-issuer")
        .arg(ca)
        .arg("-CAfile")
        .arg(ca)
        // (A digest option must come before -cert.)
        .args(extra)
        .arg("-cert")
        .arg(cert)
        .args(["-url", &url])
        .output()
        .expect("openssl ocsp");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_ocsp_reports_good_then_revoked_and_verifies_the_responder() {
    if !require(&["openssl"], "openssl") {
        return;
    }
    let (server, cert, _) = server_and_device("ocsp-openssl").await;
    let ca = server.data_dir().join("ca-chain.pem");
    let c = cert.display().to_string();

    let good = tokio::task::block_in_place(|| openssl_ocsp(&ca, &cert, &[]));
    assert!(good.contains("Response verify OK"), "{good}");
    assert!(good.contains(&format!("{c}: good")), "{good}");
    assert!(
        good.contains("This Update:") && good.contains("Next Update:"),
        "{good}"
    );
    // SHA-256 CertIDs are answered too, and a request without a nonce.
    let sha256 =
        tokio::task::block_in_place(|| openssl_ocsp(&ca, &cert, &["-sha256", "-no_nonce"]));
    assert!(
        sha256.contains("Response verify OK") && sha256.contains(&format!("{c}: good")),
        "{sha256}"
    );

    revoke(&server, "ocsp-openssl");
    let revoked = tokio::task::block_in_place(|| openssl_ocsp(&ca, &cert, &[]));
    assert!(revoked.contains("Response verify OK"), "{revoked}");
    assert!(revoked.contains(&format!("{c}: revoked")), "{revoked}");
    assert!(revoked.contains("Reason: keyCompromise"), "{revoked}");
    assert!(revoked.contains("Revocation Time:"), "{revoked}");
    // For the record (the issue's closing note shows this output).
    eprintln!("--- openssl ocsp, good:\n{good}--- and revoked:\n{revoked}");
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The nginx configuration the README shows, on a loopback port: mutual TLS
/// with client certificates from idprov's CA, checked with OCSP at the
/// responder each certificate names.
fn nginx_conf(dir: &Path, port: u16, ca: &Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log info;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n\
           client_body_temp_path {d}/nginx-body; proxy_temp_path {d}/nginx-proxy;\n\
           fastcgi_temp_path {d}/nginx-fcgi; uwsgi_temp_path {d}/nginx-uwsgi; scgi_temp_path {d}/nginx-scgi;\n\
           server {{\n\
             listen 127.0.0.1:{port} ssl;\n\
             ssl_certificate {d}/nginx.pem;\n\
             ssl_certificate_key {d}/nginx.key;\n\
             ssl_client_certificate {ca};\n\
             ssl_verify_client on;\n\
             ssl_ocsp on;\n\
             location / {{ return 200 \"hello $ssl_client_s_dn\\n\"; }}\n\
           }}\n\
         }}\n",
        ca = ca.display(),
    )
}

/// curl with the device's certificate: the HTTP status and the body.
fn curl(port: u16, ca: &Path, cert: &Path, key: &Path) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--cacert"])
        .arg(ca)
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg(format!("https://127.0.0.1:{port}/"))
        .output()
        .expect("curl");
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = t.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_with_ssl_ocsp_serves_a_device_then_refuses_it_once_revoked_without_a_reload() {
    if !require(&["nginx", "curl"], "nginx and curl") {
        return;
    }
    let (server, cert, key) = server_and_device("ocsp-nginx").await;
    let dir = server.temp_dir().to_owned();
    let ca = server.data_dir().join("ca-chain.pem");
    let (nginx_cert, nginx_key) = server.issue_loopback_server_cert("nginx");
    std::fs::write(dir.join("nginx.pem"), &nginx_cert).expect("write");
    std::fs::write(dir.join("nginx.key"), nginx_key.as_bytes()).expect("write");
    let port = free_port();
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(&dir, port, &ca)).expect("write");
    let nginx = Nginx(
        Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("nginx-error.log"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx starts"),
    );
    let error_log = || std::fs::read_to_string(dir.join("nginx-error.log")).unwrap_or_default();
    wait_for_port(port, || format!("nginx did not start: {}", error_log()));

    let (status, body) = tokio::task::block_in_place(|| curl(port, &ca, &cert, &key));
    assert_eq!(status, 200, "{body}\n{}", error_log());
    assert!(body.contains("CN=ocsp-nginx"), "{body}");

    revoke(&server, "ocsp-nginx");
    // The same nginx process (no reload) now refuses the device.
    let (status, body) = tokio::task::block_in_place(|| curl(port, &ca, &cert, &key));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("SSL certificate error"), "{body}");
    assert!(error_log().contains("revoked"), "{}", error_log());
    // Another device's certificate, not revoked, is still served.
    server.add_secret("ocsp-nginx-2", "a-secret-for-ocsp").await;
    let other = TestDevice::new("ocsp-nginx-2");
    let (_, resp, _) = provision(
        &server.http(),
        &server,
        &other.request(Some("a-secret-for-ocsp")),
    )
    .await;
    let (cert2, key2) = (dir.join("other.pem"), dir.join("other.key"));
    std::fs::write(&cert2, resp.expect("answer").client_cert).expect("write");
    std::fs::write(&key2, other.key_pem().as_bytes()).expect("write");
    let (status, body) = tokio::task::block_in_place(|| curl(port, &ca, &cert2, &key2));
    assert_eq!(status, 200, "{body}\n{}", error_log());
    drop(nginx);
}
