//! A Go idprov device (tests/go/client, Go's own TLS and JSON) against our
//! server: OOB provisioning, renewal over mutual TLS, and a status query
//! decoding the base64 `clientCert`.

use std::process::Command;

use idprov_testkit::{TestServer, build_go_program};

use crate::common::add_secret;

fn go(
    binary: &std::path::Path,
    server: &TestServer,
    dir: &std::path::Path,
    args: &[&str],
) -> String {
    let out = Command::new(binary)
        .arg("-server")
        .arg(server.server_arg())
        .arg("-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("the Go client runs");
    assert!(
        out.status.success(),
        "Go client {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_device_provisions_renews_and_reads_its_status() {
    let Some(binary) = build_go_program("client") else {
        return;
    };
    let server = TestServer::start().await;
    add_secret(&server, "go-device", "go-interop-secret").await;
    let dir = server.temp_dir().join("go-device");

    let first = tokio::task::block_in_place(|| {
        go(
            &binary,
            &server,
            &dir,
            &[
                "-id",
                "go-device",
                "-secret",
                "go-interop-secret",
                "provision",
            ],
        )
    });
    let fields: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(fields[0], "Approved", "{first}");
    assert_eq!(fields[2], "go-device");
    assert_eq!(fields[3], "1296000", "retrySec is half the validity");

    let renewed =
        tokio::task::block_in_place(|| go(&binary, &server, &dir, &["-id", "go-device", "renew"]));
    let renewed: Vec<&str> = renewed.split_whitespace().collect();
    assert_eq!(renewed[0], "Approved");
    assert_ne!(renewed[1], fields[1], "a renewal gets a new serial");

    let status =
        tokio::task::block_in_place(|| go(&binary, &server, &dir, &["-id", "go-device", "status"]));
    assert_eq!(
        status,
        format!("Approved {}", renewed[1]),
        "Go decoded the base64 clientCert"
    );

    let history = server
        .registry()
        .certificates_of(idprov_store::CertKind::Device, "go-device")
        .await
        .expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].issue_kind, idprov_store::IssueKind::Renewal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_device_with_a_wrong_secret_is_rejected() {
    let Some(binary) = build_go_program("client") else {
        return;
    };
    let server = TestServer::start().await;
    add_secret(&server, "go-wrong", "the-real-secret").await;
    let dir = server.temp_dir().join("go-wrong");
    let out = tokio::task::block_in_place(|| {
        go(
            &binary,
            &server,
            &dir,
            &["-id", "go-wrong", "-secret", "not-the-secret", "provision"],
        )
    });
    assert_eq!(out, "Rejected 0");
}
