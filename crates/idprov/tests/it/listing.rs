//! Every flag of the listing commands (`devices list`, `requests list`,
//! `oob list`, `audit list`, `certs list`, `admin list`), as a person and a
//! script use them, against a registry with a device in every state.

use std::time::Duration;

use idprov_proto::ProvisionStatus;
use idprov_proto::admin::RevokeRequest;
use idprov_testkit::{TestDevice, TestServer, provision};

use crate::{idprov, stderr, stdout};

fn run(server: &TestServer, args: &[&str]) -> std::process::Output {
    let data = server.data_dir();
    let server_arg = server.server_arg();
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--server",
        &server_arg,
        "--data-dir",
        data.to_str().expect("path"),
    ]);
    tokio::task::block_in_place(|| idprov(&all, None))
}

fn ok(out: &std::process::Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// The `deviceID`s of a `--json` listing, in order.
fn ids(server: &TestServer, args: &[&str]) -> Vec<String> {
    let mut all = args.to_vec();
    all.push("--json");
    let v: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&run(server, &all))).expect("a JSON array");
    v.iter()
        .map(|d| d["deviceID"].as_str().expect("deviceID").to_owned())
        .collect()
}

/// A table's rows as (header → cell) maps, read by the columns' positions
/// in the header line, as a person's eye reads them.
fn table(text: &str) -> Vec<Vec<(String, String)>> {
    let mut lines = text.lines();
    let header = lines.next().expect("a header line");
    // Column names are separated by two or more spaces ("CLAIMED IP" is one).
    let mut starts: Vec<(usize, String)> = Vec::new();
    let mut i = 0;
    let bytes = header.as_bytes();
    while i < bytes.len() {
        if bytes[i] != b' ' && (i == 0 || header[..i].ends_with("  ")) {
            let end = header[i..].find("  ").map_or(header.len(), |e| i + e);
            starts.push((i, header[i..end].to_owned()));
            i = end;
        } else {
            i += 1;
        }
    }
    lines
        .filter(|l| !l.is_empty())
        .map(|line| {
            starts
                .iter()
                .enumerate()
                .map(|(n, (start, name))| {
                    let end = starts.get(n + 1).map_or(line.len(), |(s, _)| *s);
                    let cell = line.get(*start..end.min(line.len())).unwrap_or("");
                    (name.clone(), cell.trim().to_owned())
                })
                .collect()
        })
        .collect()
}

fn cell<'a>(row: &'a [(String, String)], name: &str) -> &'a str {
    row.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no column {name} in {row:?}"))
}

async fn provisioned(server: &TestServer, id: &str) -> TestDevice {
    let device = TestDevice::new(id);
    let secret = format!("{id}-long-secret");
    server.add_secret(id, &secret).await;
    let (_, resp, body) = provision(&server.http(), server, &device.request(Some(&secret))).await;
    assert_eq!(
        resp.expect("response").status,
        ProvisionStatus::Approved,
        "{body}"
    );
    device
}

/// sensor-a1 Approved 20 days ago (expires within 11 days, missed its
/// renewal), sensor-a2 Approved now, sensor-w1 Waiting (a secret),
/// other-w2 Waiting (a queued request), sensor-r1 Rejected (revoked).
async fn fleet() -> TestServer {
    let server = TestServer::start().await;
    provisioned(&server, "sensor-a1").await;
    provisioned(&server, "sensor-r1").await;
    server
        .admin()
        .revoke_device(
            "sensor-r1",
            &RevokeRequest {
                reason: Some("keyCompromise".into()),
                note: None,
                serial: None,
            },
        )
        .await
        .expect("revoked");
    server.clock.advance(Duration::from_secs(20 * 86_400));
    provisioned(&server, "sensor-a2").await;
    server
        .add_secret("sensor-w1", "sensor-w1-long-secret")
        .await;
    let queued = TestDevice::new("other-w2");
    let (_, resp, _) = provision(&server.http(), &server, &queued.request(None)).await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Waiting);
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_list_filters_by_every_flag() {
    let server = fleet().await;
    let all = [
        "other-w2",
        "sensor-a1",
        "sensor-a2",
        "sensor-r1",
        "sensor-w1",
    ];
    assert_eq!(ids(&server, &["devices", "list"]), all);

    for (args, expected) in [
        (
            &["--status", "Approved"][..],
            &["sensor-a1", "sensor-a2"][..],
        ),
        (&["--status", "waiting"], &["other-w2", "sensor-w1"]),
        (&["--status", "REJECTED"], &["sensor-r1"]),
        (&["--expiring-within", "11d"], &["sensor-a1"]),
        (&["--expiring-within", "40d"], &["sensor-a1", "sensor-a2"]),
        (&["--expiring-within", "12h"], &[]),
        (&["--missed-renewal"], &["sensor-a1"]),
        (
            &["--prefix", "sensor"],
            &["sensor-a1", "sensor-a2", "sensor-r1", "sensor-w1"],
        ),
        (&["--prefix", "sensor-a"], &["sensor-a1", "sensor-a2"]),
        (&["--prefix", "nothing"], &[]),
        (&["--limit", "2"], &["other-w2", "sensor-a1"]),
        (
            &[
                "--status",
                "Approved",
                "--prefix",
                "sensor-a",
                "--missed-renewal",
            ],
            &["sensor-a1"],
        ),
        (
            &[
                "--status",
                "Approved",
                "--expiring-within",
                "40d",
                "--limit",
                "1",
            ],
            &["sensor-a1"],
        ),
        // The README's example: no waiting device has a certificate.
        (
            &[
                "--status",
                "Waiting",
                "--expiring-within",
                "7d",
                "--missed-renewal",
            ],
            &[],
        ),
    ] {
        let mut cmd = vec!["devices", "list"];
        cmd.extend_from_slice(args);
        assert_eq!(ids(&server, &cmd), expected, "{args:?}");
    }

    // The table for people: one row per device, cells under their headers.
    let rows = table(&ok(&run(
        &server,
        &[
            "devices",
            "list",
            "--status",
            "Approved",
            "--missed-renewal",
        ],
    )));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(cell(&rows[0], "DEVICE"), "sensor-a1");
    assert_eq!(cell(&rows[0], "STATUS"), "Approved");
    assert_eq!(cell(&rows[0], "CERTS"), "1");
    assert_eq!(cell(&rows[0], "SECRET"), "no");
    assert_eq!(cell(&rows[0], "VIA"), "v1");
    let rows = table(&ok(&run(
        &server,
        &["devices", "list", "--status", "Rejected"],
    )));
    assert_eq!(cell(&rows[0], "REVOKED"), "1");
    assert_eq!(cell(&rows[0], "VALID UNTIL"), "-");
    // A device that never had a certificate came by no protocol yet.
    let rows = table(&ok(&run(
        &server,
        &["devices", "list", "--prefix", "sensor-w"],
    )));
    assert_eq!(cell(&rows[0], "VIA"), "-");

    // Bad values are usage errors, named, before anything is sent.
    for (args, names) in [
        (&["--status", "Approvd"][..], "Approved"),
        (&["--expiring-within", "soon"], "expiring-within"),
        (&["--limit", "many"], "limit"),
    ] {
        let mut cmd = vec!["devices", "list"];
        cmd.extend_from_slice(args);
        let out = run(&server, &cmd);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(names), "{args:?}: {}", stderr(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_list_puts_every_value_under_its_header() {
    let server = fleet().await;
    let second = TestDevice::new("other-w3");
    let mut req = second.request(None);
    req.ip = "<nil>".into();
    req.mac = "aa:bb:cc:dd:ee:ff".into();
    for _ in 0..3 {
        provision(&server.http(), &server, &req).await;
    }

    let rows = table(&ok(&run(&server, &["requests", "list"])));
    assert_eq!(rows.len(), 2, "{rows:?}");
    let headers: Vec<&str> = rows[0].iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(
        headers,
        [
            "DEVICE",
            "KEY",
            "TYPE",
            "STATE",
            "CLAIMED IP",
            "CLAIMED MAC",
            "SOURCE",
            "FIRST SEEN",
            "LAST SEEN",
            "ATTEMPTS",
            "VIA"
        ]
    );
    let w2 = &rows[0];
    assert_eq!(cell(w2, "DEVICE"), "other-w2");
    assert_eq!(cell(w2, "TYPE"), "ECDSA-P256");
    assert_eq!(cell(w2, "STATE"), "waiting");
    assert_eq!(cell(w2, "CLAIMED IP"), "192.0.2.10");
    assert_eq!(cell(w2, "CLAIMED MAC"), "02:00:00:00:00:01");
    assert_eq!(cell(w2, "SOURCE"), "127.0.0.1");
    assert_eq!(cell(w2, "ATTEMPTS"), "1");
    assert_eq!(cell(w2, "VIA"), "v1");
    let w3 = &rows[1];
    assert_eq!(cell(w3, "CLAIMED IP"), "<nil>");
    assert_eq!(cell(w3, "CLAIMED MAC"), "aa:bb:cc:dd:ee:ff");
    assert_eq!(cell(w3, "ATTEMPTS"), "3");

    // An approval shows in STATE.
    ok(&run(&server, &["requests", "approve", "other-w3"]));
    let rows = table(&ok(&run(&server, &["requests", "list"])));
    assert_eq!(cell(&rows[1], "STATE"), "approved");

    // --limit and --json.
    assert_eq!(
        ids(&server, &["requests", "list", "--limit", "1"]),
        ["other-w2"]
    );
    assert_eq!(
        ids(&server, &["requests", "list"]),
        ["other-w2", "other-w3"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oob_list_shows_secrets_without_values() {
    let server = fleet().await;
    let rows = table(&ok(&run(&server, &["oob", "list"])));
    let devices: Vec<&str> = rows.iter().map(|r| cell(r, "DEVICE")).collect();
    assert_eq!(devices, ["sensor-w1"], "consumed secrets are gone");
    assert_eq!(cell(&rows[0], "BY"), "admin:admin");
    let text = ok(&run(&server, &["oob", "list", "--json"]));
    assert!(!text.contains("sensor-w1-long-secret"), "{text}");
    assert_eq!(
        ids(&server, &["oob", "list", "--limit", "0"]),
        [] as [&str; 0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_list_filters_by_every_flag() {
    let server = fleet().await;
    let entries = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut cmd = vec!["audit", "list", "--json"];
        cmd.extend_from_slice(args);
        serde_json::from_str(&ok(&run(&server, &cmd))).expect("a JSON array")
    };
    let all = entries(&[]);
    assert!(all.len() >= 8, "{all:?}");

    let by_device = entries(&["--device", "sensor-r1"]);
    assert!(!by_device.is_empty());
    assert!(by_device.iter().all(|e| e["deviceID"] == "sensor-r1"));
    assert!(
        by_device
            .iter()
            .any(|e| e["event"] == "certificate_revoked")
    );

    let issued = entries(&["--event", "certificate_issued"]);
    assert!(issued.iter().all(|e| e["event"] == "certificate_issued"));
    // (The server's own credentials are certificates without a device.)
    let issued_to: Vec<&str> = issued
        .iter()
        .filter_map(|e| e["deviceID"].as_str())
        .collect();
    assert_eq!(issued_to, ["sensor-a1", "sensor-r1", "sensor-a2"]);

    let by_admin = entries(&["--actor", "admin:admin"]);
    assert!(!by_admin.is_empty());
    assert!(by_admin.iter().all(|e| e["actor"] == "admin:admin"));

    // Times with an offset: the '+' must reach the server as a '+'.
    let t0 = idprov_proto::clock::Clock::now(&*server.clock);
    let t0 = time::OffsetDateTime::from(t0);
    let fmt = |t: time::OffsetDateTime| {
        t.to_offset(time::UtcOffset::from_hms(2, 0, 0).expect("offset"))
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format")
    };
    let recent = entries(&["--since", &fmt(t0 - time::Duration::hours(1))]);
    assert!(recent.iter().any(|e| e["deviceID"] == "sensor-a2"));
    assert!(!recent.iter().any(|e| e["deviceID"] == "sensor-a1"));
    let early = entries(&["--until", &fmt(t0 - time::Duration::days(10))]);
    assert!(early.iter().any(|e| e["deviceID"] == "sensor-a1"));
    assert!(!early.iter().any(|e| e["deviceID"] == "sensor-a2"));

    let limited = entries(&["--limit", "3"]);
    assert_eq!(limited.len(), 3);
    assert_eq!(limited[..], all[..3]);

    // The table.
    let rows = table(&ok(&run(
        &server,
        &["audit", "list", "--event", "certificate_revoked"],
    )));
    assert_eq!(rows.len(), 1);
    assert_eq!(cell(&rows[0], "DEVICE"), "sensor-r1");
    assert_eq!(cell(&rows[0], "ACTOR"), "admin:admin");

    let out = run(&server, &["audit", "list", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("RFC 3339"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certs_and_admin_lists() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    for (ou, cn) in [("service", "broker"), ("plugin", "bridge")] {
        let out_dir = dir.path().join(cn);
        ok(&run(
            &server,
            &[
                "certs",
                "issue",
                "--ou",
                ou,
                "--cn",
                cn,
                "--out",
                out_dir.to_str().expect("path"),
            ],
        ));
    }
    let names = |args: &[&str]| -> Vec<String> {
        table(&ok(&run(&server, args)))
            .iter()
            .map(|r| format!("{} {}", cell(r, "KIND"), cell(r, "NAME")))
            .collect()
    };
    assert_eq!(
        names(&["certs", "list", "--ou", "service"]),
        ["service broker"]
    );
    assert_eq!(
        names(&["certs", "list", "--ou", "plugin"]),
        ["plugin bridge"]
    );
    let mut both = names(&["certs", "list"]);
    both.sort();
    assert_eq!(both, ["plugin bridge", "service broker"]);
    let admins = names(&["admin", "list"]);
    assert_eq!(admins, ["admin admin"]);
    let v: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&run(&server, &["admin", "list", "--json"]))).expect("json");
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["subject"], "admin");
}
