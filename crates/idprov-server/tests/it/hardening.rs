//! Abuse limits before the TLS handshake, rate limits, timeouts, and the
//! observability endpoints.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use idprov_proto::ProvisionStatus;
use idprov_testkit::{Setup, TestDevice, TestServer, provision};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::add_secret;

fn admin_client(server: &TestServer) -> reqwest::Client {
    let cert = std::fs::read_to_string(server.data_dir().join("admin.pem")).expect("cert");
    let key = std::fs::read_to_string(server.data_dir().join("admin.key")).expect("key");
    server.http_with(&cert, &key)
}

/// Opens a TCP connection from `local` and tries a TLS handshake.
async fn handshake(
    server: &TestServer,
    local: IpAddr,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket.bind((local, 0).into()).map_err(|e| e.to_string())?;
    let tcp = socket
        .connect(server.addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut config = server.tls_config(None);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    tokio::time::timeout(
        Duration::from_secs(10),
        connector.connect(
            rustls_pki_types::ServerName::IpAddress(server.addr.ip().into()),
            tcp,
        ),
    )
    .await
    .map_err(|_| "timeout".to_owned())?
    .map_err(|e| e.to_string())
}

#[tokio::test]
async fn connections_beyond_the_per_source_limit_are_refused_before_tls() {
    let server = TestServer::start_with(Setup {
        configure: Box::new(|c| {
            c.source_connections = 2;
        }),
        ..Default::default()
    })
    .await;
    let local: IpAddr = "127.0.0.1".parse().expect("ip");
    let a = handshake(&server, local).await.expect("first");
    let b = handshake(&server, local).await.expect("second");
    assert!(
        handshake(&server, local).await.is_err(),
        "a third open connection is refused"
    );
    // Another source is not affected.
    let other = handshake(&server, "127.0.0.2".parse().expect("ip")).await;
    assert!(other.is_ok());
    drop((a, b));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        handshake(&server, local).await.is_ok(),
        "closing frees the places"
    );
}

#[tokio::test]
async fn new_connections_beyond_the_handshake_rate_are_refused() {
    let server = TestServer::start_with(Setup {
        configure: Box::new(|c| {
            c.handshake_rate = 0.01;
            c.handshake_burst = 3.0;
        }),
        ..Default::default()
    })
    .await;
    let local: IpAddr = "127.0.0.3".parse().expect("ip");
    let mut ok = 0;
    for _ in 0..6 {
        if handshake(&server, local).await.is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 3, "the burst, then refusals");
    // The audit entry is written off the accept loop: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let audited = loop {
        let n = server
            .registry()
            .audit_entries(0, 1000)
            .await
            .expect("audit")
            .into_iter()
            .filter(|e| e.event == "rate_limited")
            .count();
        if n > 0 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        audited, 1,
        "audited once per source and minute, not per refusal"
    );
}

#[tokio::test]
async fn provisioning_requests_are_rate_limited_per_source_but_not_for_admins() {
    let server = TestServer::start_with(Setup {
        configure: Box::new(|c| {
            c.provisioning_rate = 0.01;
            c.provisioning_burst = 2.0;
        }),
        ..Default::default()
    })
    .await;
    let device = TestDevice::new("limited");
    let client = server.http();
    for _ in 0..2 {
        let (status, _, _) = provision(&client, &server, &device.request(None)).await;
        assert_eq!(status, 200);
    }
    let r = client
        .post(server.url("/idprov/provreq"))
        .body(device.request(None).to_json())
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let admin = admin_client(&server);
    for _ in 0..3 {
        let (status, resp, _) = provision(&admin, &server, &device.request(None)).await;
        assert_eq!(status, 200, "administrators are exempt");
        assert_eq!(resp.expect("response").status, ProvisionStatus::Approved);
    }
}

#[tokio::test]
async fn slow_headers_and_slow_bodies_are_cut_off() {
    let server = TestServer::start_with(Setup {
        configure: Box::new(|c| {
            c.header_timeout = Duration::from_secs(1);
            c.body_timeout = Duration::from_secs(1);
        }),
        ..Default::default()
    })
    .await;
    let local: IpAddr = "127.0.0.1".parse().expect("ip");
    // Headers that never end.
    let mut slow = handshake(&server, local).await.expect("tls");
    slow.write_all(b"GET /idprov/directory HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(15), slow.read(&mut buf))
        .await
        .expect("the server closed the connection")
        .unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // A body that never comes is cut off at the configured timeout, on
    // provisioning and on every other route (here the web sign-in), not at
    // the 30 s default.
    for head in [
        "POST /idprov/provreq HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
        "POST /admin/api/signin HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    ] {
        let mut slow = handshake(&server, local).await.expect("tls");
        slow.write_all(head.as_bytes()).await.expect("write");
        let started = Instant::now();
        let n = tokio::time::timeout(Duration::from_secs(15), slow.read(&mut buf))
            .await
            .expect("answered")
            .unwrap_or(0);
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("not sent in time"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

#[tokio::test]
async fn a_flood_from_one_address_does_not_starve_another() {
    let server = Arc::new(TestServer::start().await);
    let flooder: IpAddr = "127.0.0.2".parse().expect("ip");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attempts = Arc::new(AtomicU64::new(0));
    // The flood: connections as fast as the loop can open them, bounded in
    // count and time, from 127.0.0.2.
    let mut flood = Vec::new();
    for _ in 0..4 {
        let (server, stop, attempts) = (server.clone(), stop.clone(), attempts.clone());
        flood.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::Relaxed)
                && Instant::now() < deadline
                && attempts.load(Ordering::Relaxed) < 20_000
            {
                attempts.fetch_add(1, Ordering::Relaxed);
                let _ = handshake(&server, flooder).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The legitimate source: new connections, real requests, a generous timeout.
    let mut ok = 0;
    let total = 40;
    for _ in 0..total {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(server.tls_config(None))
            .local_address("127.0.0.1".parse::<IpAddr>().expect("ip"))
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        if let Ok(r) = client.get(server.url("/idprov/directory")).send().await
            && r.status() == 200
        {
            ok += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        let _ = f.await;
    }
    let flooded = attempts.load(Ordering::Relaxed);
    eprintln!("flood: {flooded} connection attempts; legitimate: {ok}/{total} succeeded");
    assert!(flooded > 200, "the flood ran ({flooded} attempts)");
    assert!(
        ok * 100 >= total * 95,
        "{ok}/{total} legitimate requests succeeded during the flood"
    );
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = TestServer::start().await;
    add_secret(&server, "metered", "metered-secret").await;
    provision(
        &server.http(),
        &server,
        &TestDevice::new("metered").request(Some("metered-secret")),
    )
    .await;
    // Removing a device revokes its certificate: counted like a revocation.
    server
        .admin()
        .remove_device("metered")
        .await
        .expect("remove");
    for path in ["/healthz", "/readyz"] {
        let r = server
            .http()
            .get(server.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers().contains_key("x-request-id"));
    }
    // The request ID is always the server's own: a client's is replaced
    // (it never reaches the logs), and every answer carries the security
    // headers.
    let r = server
        .http()
        .get(server.url("/idprov/directory"))
        .header("x-request-id", "forged id=1 level=ERROR")
        .send()
        .await
        .expect("request");
    let id = r.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(id.len(), 16, "{id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    for (h, v) in [
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("strict-transport-security", "max-age=31536000"),
    ] {
        assert_eq!(r.headers()[h], v, "{h}");
    }
    let r = server
        .http()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    let (cert, key) = server.issue_client_cert("iotdevice", "d", Duration::from_secs(600));
    let r = server
        .http_with(&cert, &key)
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 403);
    let text = server.metrics().await;
    for name in [
        "idprov_requests_total",
        "idprov_provisioning_total",
        "idprov_certificates_issued_total",
        "idprov_certificates_revoked_total",
        "idprov_waiting_requests",
        "idprov_certificates_expiring_soon",
        "idprov_db_commit_seconds",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
}

#[tokio::test]
async fn metrics_can_be_public_by_configuration() {
    let server = TestServer::start_with(Setup {
        configure: Box::new(|c| c.metrics_public = true),
        ..Default::default()
    })
    .await;
    let r = server
        .http()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight() {
    let mut server = TestServer::start().await;
    let admin = server.admin();
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    let import = tokio::spawn(async move { admin.import(rx, false, true).await });
    tx.send(bytes::Bytes::from_static(
        b"{\"deviceID\":\"inflight-1\",\"oobSecret\":\"secret-number-one\"}\n",
    ))
    .await
    .expect("first row");
    // The request is in flight (its body half sent) when shutdown begins.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let feeder = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        tx.send(bytes::Bytes::from_static(
            b"{\"deviceID\":\"inflight-2\",\"oobSecret\":\"secret-number-two\"}\n",
        ))
        .await
        .expect("second row");
    });
    server.stop().await;
    feeder.await.expect("feeder");
    let result = import
        .await
        .expect("import task")
        .expect("the import was answered");
    assert_eq!(result.accepted, 2);
    // New connections are no longer accepted.
    assert!(
        tokio::net::TcpStream::connect(server.addr).await.is_err(),
        "the listener is closed"
    );
    server.restart().await;
    let imported: Vec<_> = server
        .registry()
        .audit_entries(0, 1000)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.event == "secrets_imported")
        .collect();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].detail["accepted"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_bulk_upload_does_not_stall_provisioning() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    let import = tokio::spawn(async move { admin.import(rx, false, true).await });
    tx.send(bytes::Bytes::from_static(
        b"{\"deviceID\":\"slow-1\",\"oobSecret\":\"slow-upload-secret-1\"}\n",
    ))
    .await
    .expect("first row");
    // The upload is open and idle; every other write goes on meanwhile.
    add_secret(&server, "fast-1", "provisioned-meanwhile").await;
    let device = TestDevice::new("fast-1");
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        provision(
            &server.http(),
            &server,
            &device.request(Some("provisioned-meanwhile")),
        ),
    )
    .await
    .expect("provisioning is not held up by the open import");
    assert_eq!(answer.1.expect("answer").status, ProvisionStatus::Approved);
    assert!(!import.is_finished(), "the import is still uploading");
    tx.send(bytes::Bytes::from_static(
        b"{\"deviceID\":\"slow-2\",\"oobSecret\":\"slow-upload-secret-2\"}\n",
    ))
    .await
    .expect("second row");
    drop(tx);
    let result = import.await.expect("import task").expect("imported");
    assert_eq!(result.accepted, 2);
    // No spool file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(server.data_dir())
        .expect("data dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".spool"))
        .collect();
    assert!(leftovers.is_empty());
}

/// Opens a TCP connection from `local` and keeps it, sending nothing.
async fn tcp_only(server: &TestServer, local: IpAddr) -> Option<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind((local, 0).into()).ok()?;
    socket.connect(server.addr).await.ok()
}

/// `sources` addresses each open `per_source` connections and sit on them
/// (half TCP only, half TLS without a request); then a new source makes 200
/// requests. Returns how many were answered.
async fn answered_while_held(server: &TestServer, sources: u32, per_source: u32) -> u32 {
    let _ = rlimit::increase_nofile_limit(65_536);
    let mut held_tcp = Vec::new();
    let mut held_tls = Vec::new();
    for s in 0..sources {
        let ip: IpAddr = format!("127.0.5.{}", s + 1).parse().expect("ip");
        for c in 0..per_source {
            if c % 2 == 0 {
                if let Some(t) = tcp_only(server, ip).await {
                    held_tcp.push(t);
                }
            } else if let Ok(t) = handshake(server, ip).await {
                held_tls.push(t);
            }
        }
    }
    eprintln!(
        "held: {} TCP-only and {} TLS connections from {sources} sources",
        held_tcp.len(),
        held_tls.len()
    );
    let newcomer: IpAddr = "127.0.6.1".parse().expect("ip");
    let mut ok = 0;
    for _ in 0..200 {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(server.tls_config(None))
            .local_address(newcomer)
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        if let Ok(r) = client.get(server.url("/idprov/directory")).send().await
            && r.status() == 200
        {
            ok += 1;
        }
    }
    drop((held_tcp, held_tls));
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_sources_at_their_cap_leave_a_new_source_served() {
    // The defaults: 32 sources at their maximum hold half the total.
    let server = TestServer::start().await;
    let cap = server.config.source_connections;
    let ok = answered_while_held(&server, 32, cap).await;
    eprintln!("defaults: a new source had {ok}/200 requests answered");
    assert!(ok >= 198, "{ok}/200 answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_the_total_idle_connections_make_room() {
    // A total the held connections fill: idle ones are closed for the
    // newcomer, the source holding the most first.
    let server = TestServer::start_with(Setup {
        configure: Box::new(|c| {
            c.total_connections = 512;
        }),
        ..Default::default()
    })
    .await;
    let ok = answered_while_held(&server, 32, 16).await;
    eprintln!("a full total: a new source had {ok}/200 requests answered");
    assert!(ok >= 198, "{ok}/200 answered");
    assert!(
        server.server().state().connection_limits.reclaimed() > 0,
        "idle connections were closed to make room"
    );
}

#[tokio::test]
async fn a_connection_without_a_request_is_closed_after_the_header_timeout() {
    let server = TestServer::start_with(Setup {
        configure: Box::new(|c| {
            c.header_timeout = Duration::from_secs(1);
            c.idle_timeout = Duration::from_secs(2);
        }),
        ..Default::default()
    })
    .await;
    let local: IpAddr = "127.0.7.1".parse().expect("ip");
    let mut tls = handshake(&server, local).await.expect("handshake");
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
        .await
        .expect("closed within the header timeout")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed, not answered");
    assert!(started.elapsed() < Duration::from_secs(5));
    // After a request, an idle connection lasts the idle timeout.
    let mut tls = handshake(&server, local).await.expect("handshake");
    tls.write_all(b"GET /idprov/directory HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut answer = vec![0u8; 65536];
    let n = tls.read(&mut answer).await.expect("answer");
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut answer))
        .await
        .expect("closed when idle")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() < Duration::from_secs(5));
}
