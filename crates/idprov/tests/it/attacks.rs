//! Attacks on a real `idprov serve` process from many loopback addresses,
//! judged by what they cost the server: resident memory (VmRSS, read from
//! /proc; memory is not timing) and whether other sources are still served.
//! Each test prints its figures (`--nocapture` shows them).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::{idprov, stderr};

/// A server process on a free loopback port, killed when dropped.
struct Server {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Server {
    /// Starts `idprov serve` with `config` (TOML) in a new data directory.
    fn start(config: &str) -> Server {
        raise_fd_limit();
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let data = dir.path().join("data");
        let config_file = dir.path().join("idprov.toml");
        std::fs::write(
            &config_file,
            format!(
                "data_dir = {data:?}\nlisten = [\"127.0.0.1:{port}\"]\n[dns_sd]\nenabled = false\n{config}"
            ),
        )
        .expect("config");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_idprov"))
            .args(["serve", "--config"])
            .arg(&config_file)
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", "/nonexistent-config-home")
            .env_remove("IDPROV_CONFIG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("server starts");
        let server = Server { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !server.data().join("admin.pem").exists()
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        {
            assert!(
                Instant::now() < deadline,
                "server not ready: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Let start-up allocations settle before the baseline is read.
        std::thread::sleep(Duration::from_millis(500));
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Resident memory, MiB.
    fn rss_mib(&self) -> f64 {
        rss_mib(self.child.id())
    }

    /// Runs an admin command against this server.
    fn cli(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let server = format!("127.0.0.1:{}", self.port);
        let data = self.data().display().to_string();
        let mut all = args.to_vec();
        all.extend(["--server", &server, "--data-dir", &data]);
        idprov(&all, stdin)
    }

    fn tls(&self) -> Arc<rustls::ClientConfig> {
        let pem = std::fs::read(self.data().join("ca-chain.pem")).expect("ca");
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&pem) {
            roots.add(c.expect("cert")).expect("root");
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Holding thousands of connections needs more than the usual 1024 files.
fn raise_fd_limit() {
    let _ = rlimit::increase_nofile_limit(65_536);
}

/// 127.0.0.N: a loopback address of its own per attacking source.
fn source(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 0)) + n))
}

async fn tcp_from(src: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(src, 0))?;
    socket.connect(to).await
}

async fn tls_from(
    src: IpAddr,
    to: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = tcp_from(src, to).await?;
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
}

/// One HTTP/1.1 request on a new connection from `src`; the status, or why
/// there was none.
async fn request_from(
    src: IpAddr,
    to: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    head: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let mut tls = tls_from(src, to, config)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let req = format!(
        "{head}\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no answer: {text:?}"))?;
    Ok((status, text))
}

/// Samples a process's RSS until stopped; the peak, MiB.
struct Sampler {
    peak_kib: Arc<AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (peak, stop) = (peak_kib.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    let kib = (rss_mib(pid) * 1024.0) as u64;
                    peak.fetch_max(kib, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Sampler {
            peak_kib,
            stop,
            thread: Some(thread),
        }
    }

    fn peak_mib(mut self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak_kib.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

fn wait_until_below(server: &Server, mib: f64, within: Duration) -> f64 {
    let deadline = Instant::now() + within;
    loop {
        let now = server.rss_mib();
        if now < mib || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn signin_body(password: &str) -> String {
    format!("{{\"name\":\"admin\",\"password\":\"{password}\"}}")
}

const SIGNIN: &str = "POST /admin/api/signin HTTP/1.1\r\nContent-Type: application/json";

/// PROTOCOL-independent: argon2id's working memory must not pile up under
/// concurrent wrong sign-ins (it took a server from 37 MB to gigabytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_wrong_signins_leaves_memory_bounded() {
    let server = Server::start("");
    let out = tokio::task::block_in_place(|| {
        server.cli(
            &["admin", "password", "admin"],
            Some("the-right-password-123\n"),
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));
    let baseline = server.rss_mib();
    let sampler = Sampler::start(server.child.id());
    let tls = server.tls();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..1000u32 {
        let (tls, to) = (tls.clone(), server.addr());
        tasks.push(tokio::spawn(async move {
            request_from(
                source(10 + i % 200),
                to,
                &tls,
                SIGNIN,
                &signin_body(&format!("wrong-password-{i}")),
            )
            .await
        }));
    }
    let mut by_status = std::collections::BTreeMap::<String, u32>::new();
    for t in tasks {
        let key = match t.await.expect("task") {
            Ok((status, _)) => status.to_string(),
            Err(e) => e.split(':').next().unwrap_or("error").to_owned(),
        };
        *by_status.entry(key).or_default() += 1;
    }
    let flood = started.elapsed();
    let peak = sampler.peak_mib();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = server.rss_mib();
    println!(
        "sign-in flood: 1000 wrong sign-ins from 200 sources in {:.1}s, answers {by_status:?}; \
         server RSS {baseline:.1} MiB before, {peak:.1} MiB peak, {after:.1} MiB 10 s after",
        flood.as_secs_f64()
    );
    // The right password still signs in (from a source of its own, once
    // the global limit lets it).
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let (status, text) = request_from(
            source(250),
            server.addr(),
            &tls,
            SIGNIN,
            &signin_body("the-right-password-123"),
        )
        .await
        .expect("an answer");
        if status != 429 && status != 503 || Instant::now() > deadline {
            break (status, text);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(status.0, 200, "the right password: {}", status.1);
    assert!(peak < 150.0, "peak RSS {peak:.1} MiB during the flood");
    assert!(after < 60.0, "RSS {after:.1} MiB ten seconds after");
}

/// Thousands of connections each sending an unfinished header of `pad`
/// bytes and holding it; the server's peak and settled RSS, MiB, and how
/// many wrote their head.
async fn unfinished_headers(server: &Server, pad: usize) -> (f64, f64, f64, u64) {
    let baseline = server.rss_mib();
    let sampler = Sampler::start(server.child.id());
    let tls = server.tls();
    let pad = "a".repeat(pad);
    let held = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..4096u32 {
        let (tls, to, pad, held) = (tls.clone(), server.addr(), pad.clone(), held.clone());
        tasks.push(tokio::spawn(async move {
            // 128 sources of 32 connections each.
            let Ok(mut conn) = tls_from(source(10 + i / 32), to, &tls).await else {
                return;
            };
            let head = format!("GET /idprov/directory HTTP/1.1\r\nHost: localhost\r\nX-Pad: {pad}");
            if conn.write_all(head.as_bytes()).await.is_ok() {
                held.fetch_add(1, Ordering::Relaxed);
            }
            // Hold it open, never finishing the header.
            let mut sink = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut sink)).await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let peak = sampler.peak_mib();
    let after = wait_until_below(server, baseline + 30.0, Duration::from_secs(20));
    (baseline, peak, after, held.load(Ordering::Relaxed))
}

/// Thousands of connections each sending an unfinished, oversized header
/// (390 KiB) — and, the harder case, one just under the header limit that
/// the server must hold: what one connection may buffer is bounded, and the
/// memory comes back once they close.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unfinished_headers_cannot_pile_up_memory() {
    let server = Server::start("");
    for (what, pad) in [("390 KiB", 390 * 1024), ("15 KiB", 15 * 1024)] {
        let (baseline, peak, after, held) = unfinished_headers(&server, pad).await;
        println!(
            "unfinished {what} headers: 4096 connections from 128 sources, {held} wrote their head; \
             server RSS {baseline:.1} MiB before, {peak:.1} MiB peak (+{:.1}), {after:.1} MiB after they closed",
            peak - baseline
        );
        assert!(
            peak - baseline <= 100.0,
            "{what}: RSS rose by {:.1} MiB",
            peak - baseline
        );
        assert!(
            after <= baseline + 30.0,
            "{what}: RSS {after:.1} MiB after the connections closed (baseline {baseline:.1})"
        );
    }
    // Still serving.
    let (status, _) = request_from(
        source(250),
        server.addr(),
        &server.tls(),
        "GET /idprov/directory HTTP/1.1",
        "",
    )
    .await
    .expect("answer");
    assert_eq!(status, 200);
}
