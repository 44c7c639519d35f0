//! The request engine: one new TCP connection and one full TLS handshake per
//! request (no session resumption), one HTTP/1.1 request, `Connection:
//! close`. That is what a building of devices powering on looks like: every
//! device is a new client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::client::Resumption;
use rustls_pki_types::ServerName;

/// Why a request failed, counted by kind in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// TCP connect failed (refused, reset).
    Connect,
    /// The TLS handshake failed or was cut.
    Handshake,
    /// Sending the request or reading the answer failed.
    Http,
    /// No answer within the request timeout.
    Timeout,
    /// HTTP 429 (rate limited or locked out).
    TooManyRequests,
    /// Another non-200 status.
    Status,
    /// A 200 whose body is not the expected answer (wrong status, bad JSON).
    Answer,
}

impl ErrorKind {
    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Handshake => "handshake",
            ErrorKind::Http => "http",
            ErrorKind::Timeout => "timeout",
            ErrorKind::TooManyRequests => "429",
            ErrorKind::Status => "status",
            ErrorKind::Answer => "answer",
        }
    }
}

/// Where requests go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's address.
    pub addr: SocketAddr,
    /// The name its certificate is checked against.
    pub server_name: ServerName<'static>,
    /// Bind the client socket to this address first (a second source).
    pub bind: Option<std::net::IpAddr>,
    /// Give up on a request after this long.
    pub timeout: Duration,
}

/// A client TLS configuration that never resumes: every request pays a full
/// handshake, as the headline figures require.
pub fn client_config(
    roots: &[rustls_pki_types::CertificateDer<'static>],
    client_auth: Option<(
        Vec<rustls_pki_types::CertificateDer<'static>>,
        rustls_pki_types::PrivateKeyDer<'static>,
    )>,
) -> anyhow::Result<Arc<ClientConfig>> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone())?;
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(store);
    let mut config = match client_auth {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    config.resumption = Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Opens a TCP connection from `bind` (when set) to `addr`.
pub async fn connect(
    addr: SocketAddr,
    bind: Option<std::net::IpAddr>,
) -> std::io::Result<tokio::net::TcpStream> {
    match bind {
        None => tokio::net::TcpStream::connect(addr).await,
        Some(ip) => {
            let socket = if addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(addr).await
        }
    }
}

/// One request on a new connection; returns the status and body of a 200.
pub async fn request(
    target: &Target,
    tls: &Arc<ClientConfig>,
    method: &'static str,
    path: &str,
    body: Bytes,
) -> Result<Bytes, ErrorKind> {
    match tokio::time::timeout(
        target.timeout,
        request_inner(target, tls, method, path, body),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(ErrorKind::Timeout),
    }
}

async fn request_inner(
    target: &Target,
    tls: &Arc<ClientConfig>,
    method: &'static str,
    path: &str,
    body: Bytes,
) -> Result<Bytes, ErrorKind> {
    let tcp = connect(target.addr, target.bind)
        .await
        .map_err(|_| ErrorKind::Connect)?;
    let _ = tcp.set_nodelay(true);
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(target.server_name.clone(), tcp)
        .await
        .map_err(|_| ErrorKind::Handshake)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| ErrorKind::Http)?;
    let driver = tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "idprov")
        .header("connection", "close")
        .header("content-type", "application/json")
        .body(Full::new(body))
        .map_err(|_| ErrorKind::Http)?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|_| ErrorKind::Http)?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|_| ErrorKind::Http)?
        .to_bytes();
    driver.abort();
    match status {
        200 => Ok(bytes),
        429 => Err(ErrorKind::TooManyRequests),
        _ => Err(ErrorKind::Status),
    }
}

/// Latencies and errors of one phase.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Latency of each successful request, microseconds.
    pub latencies_us: Vec<u32>,
    /// Failed requests by kind.
    pub errors: std::collections::BTreeMap<ErrorKind, u64>,
}

impl Outcomes {
    /// Records one request's result.
    pub fn record(&mut self, started: Instant, result: Result<(), ErrorKind>) {
        match result {
            Ok(()) => self
                .latencies_us
                .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX)),
            Err(kind) => *self.errors.entry(kind).or_default() += 1,
        }
    }

    /// Adds another task's outcomes.
    pub fn merge(&mut self, other: Outcomes) {
        self.latencies_us.extend(other.latencies_us);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}
