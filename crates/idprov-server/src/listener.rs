//! The accept loop: TCP accept, TLS handshake with a timeout, the verified
//! leaf parsed once per connection, then HTTP/1.1 or HTTP/2 served by hyper
//! with the router (or, on the revocation listener, plain HTTP without the
//! handshake). Owning the loop (rather than a ready-made server) is
//! what lets per-source limits act before the handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use idprov_ca::CertInfo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::ConnInfo;
use crate::limits::{ConnectionLimits, Slot};

/// A response body that marks its request finished when it is done (or
/// dropped), so a connection streaming an answer is never taken for idle.
struct Tracked {
    body: axum::body::Body,
    _guard: crate::limits::RequestGuard,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Timeouts of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TLS handshake.
    pub handshake: Duration,
    /// Request headers; also how long a new connection may wait before its
    /// first request.
    pub header: Duration,
    /// How long a connection may sit with no request in flight after one
    /// (HTTP/2 has no header timeout between requests).
    pub idle: Duration,
    /// Graceful shutdown.
    pub shutdown_grace: Duration,
}

/// What one connection may buffer of an unfinished request head (HTTP/1.1)
/// or header list (HTTP/2): far more than any idprov client sends, and what
/// bounds the memory of many connections sending unfinished headers
/// (hyper's default lets each buffer about 400 KiB).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// An IPv4 peer on a dual-stack socket appears as `::ffff:a.b.c.d`; use the
/// IPv4 form so lockouts and logs name one address one way.
fn canonical(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(peer.ip().to_canonical(), peer.port())
}

/// A label for a failed handshake, for metrics: from the typed
/// `rustls::Error` tokio-rustls hands back inside the `io::Error`.
fn handshake_failure(e: &std::io::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) else {
        // Not TLS: the peer went away, or the socket failed.
        return "io";
    };
    match tls {
        Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        ) => "certificate_validity",
        Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => "unknown_ca",
        Error::InvalidCertificate(_) | Error::NoCertificatesPresented => "bad_certificate",
        Error::PeerIncompatible(_) => "incompatible",
        Error::AlertReceived(_) => "alert_received",
        _ => "other",
    }
}

/// The connection's exporter value that idprov v2 binds its runs to
/// (PROTOCOL.md §11.3), taken while the TLS state is ours, into a fixed
/// array: TLS 1.3 only.
fn exporter(session: &rustls::ServerConnection) -> Option<[u8; idprov_proto::v2::EXPORTER_LEN]> {
    if session.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
        return None;
    }
    session
        .export_keying_material(
            [0u8; idprov_proto::v2::EXPORTER_LEN],
            idprov_proto::v2::EXPORTER_LABEL,
            None,
        )
        .ok()
}

/// How a listener's connections are carried.
#[derive(Clone)]
pub enum Transport {
    /// TLS, client certificates verified when presented: the protocol,
    /// the admin API and the page.
    Tls(TlsAcceptor),
    /// Plain HTTP: the revocation listener, which serves signed objects
    /// only (a relying party cannot check revocation over a TLS connection
    /// that itself needs the check).
    Plain,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Tls(_) => "Tls",
            Transport::Plain => "Plain",
        })
    }
}

/// Serves connections until `shutdown` turns true, then lets requests in
/// flight finish (up to the grace period). `limits` admits each connection
/// before anything is read from it.
pub async fn serve(
    listener: TcpListener,
    transport: Transport,
    router: Router,
    state: crate::state::AppState,
    limits: Arc<ConnectionLimits>,
    timeouts: Timeouts,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    // One HTTP configuration for every connection (HTTP/1.1 or h2).
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .max_buf_size(MAX_HEADER_BYTES);
    http.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and similar: back off briefly.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let peer = canonical(peer);
        // Limits act here, before any TLS work: a refused connection costs
        // an accept and a close.
        let permit = match limits.admit(peer.ip(), std::time::Instant::now()) {
            Ok(p) => p,
            Err(refusal) => {
                state.note_limited(peer.ip(), refusal.as_str());
                drop(tcp);
                continue;
            }
        };
        if let Transport::Tls(_) = transport {
            metrics::gauge!(crate::observe::CONNECTIONS).set(f64::from(limits.open()));
        }
        let _ = tcp.set_nodelay(true);
        let transport = transport.clone();
        let v2 = state.config.v2;
        let connection = Connection {
            router: router.clone(),
            watcher: graceful.watcher(),
            http: http.clone(),
            timeouts,
            peer,
        };
        tokio::spawn(async move {
            let slot = permit.slot.clone();
            let _permit = permit;
            let acceptor = match transport {
                Transport::Plain => {
                    slot.handshake_done();
                    connection.serve(TokioIo::new(tcp), None, None, slot).await;
                    return;
                }
                Transport::Tls(acceptor) => acceptor,
            };
            let handshake = tokio::select! {
                r = tokio::time::timeout(timeouts.handshake, acceptor.accept(tcp)) => r,
                () = slot.close_requested() => {
                    tracing::debug!(%peer, "closed in its TLS handshake to make room");
                    return;
                }
            };
            let tls = match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    metrics::counter!(crate::observe::HANDSHAKE_FAILURES, "reason" => handshake_failure(&e)).increment(1);
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    metrics::counter!(crate::observe::HANDSHAKE_FAILURES, "reason" => "timeout")
                        .increment(1);
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            slot.handshake_done();
            // Only the first certificate is the verified leaf; anything the
            // peer appended after it is never looked at.
            let leaf = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|der| match CertInfo::from_der(der) {
                    Ok(info) => Some(Arc::new(info)),
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "verified client certificate does not parse");
                        None
                    }
                });
            let exporter = v2.then(|| exporter(tls.get_ref().1)).flatten();
            connection
                .serve(TokioIo::new(tls), leaf, exporter, slot)
                .await;
        });
    }
    drop(listener);
    if tokio::time::timeout(timeouts.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the shutdown grace period");
    }
}

/// What serving one admitted connection needs.
struct Connection {
    router: Router,
    watcher: hyper_util::server::graceful::Watcher,
    http: auto::Builder<TokioExecutor>,
    timeouts: Timeouts,
    peer: SocketAddr,
}

impl Connection {
    /// Serves HTTP on `io` until the peer is done, the connection sits
    /// idle too long, or the limits ask for its slot.
    async fn serve<I>(
        self,
        io: I,
        leaf: Option<Arc<CertInfo>>,
        exporter: Option<[u8; idprov_proto::v2::EXPORTER_LEN]>,
        slot: Arc<Slot>,
    ) where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let Connection {
            router,
            watcher,
            http,
            timeouts,
            peer,
        } = self;
        let info = ConnInfo {
            peer,
            leaf,
            exporter,
        };
        let tracker = slot.clone();
        let service = tower::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(info.clone());
            // In flight from its head to the end of its answer's body.
            let guard = tracker.request_started();
            let router = router.clone();
            async move {
                let response = router.oneshot(req).await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    axum::body::Body::new(Tracked {
                        body,
                        _guard: guard,
                    })
                }))
            }
        });
        let conn = http
            .serve_connection(io, TowerToHyperService::new(service))
            .into_owned();
        let conn = watcher.watch(conn);
        tokio::pin!(conn);
        loop {
            // A connection that sends no request in time, or sits idle
            // too long, or is asked to make room, is closed.
            let limit = if slot.requests() == 0 {
                timeouts.header
            } else {
                timeouts.idle
            };
            let check = limit
                .saturating_sub(slot.idle_for())
                .max(Duration::from_millis(50));
            tokio::select! {
                r = &mut conn => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = tokio::time::sleep(check) => {
                    if slot.idle_for() >= limit {
                        tracing::debug!(%peer, "idle connection closed");
                        return;
                    }
                }
                () = slot.close_requested() => {
                    tracing::debug!(%peer, "idle connection closed to make room");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(e: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn handshake_failures_are_classified_from_the_typed_error() {
        use rustls::{AlertDescription, CertificateError, Error, PeerIncompatible};
        for (e, label) in [
            (
                Error::InvalidCertificate(CertificateError::Expired),
                "certificate_validity",
            ),
            (
                Error::InvalidCertificate(CertificateError::NotValidYet),
                "certificate_validity",
            ),
            (
                Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "unknown_ca",
            ),
            (
                Error::InvalidCertificate(CertificateError::BadEncoding),
                "bad_certificate",
            ),
            (Error::NoCertificatesPresented, "bad_certificate"),
            (
                Error::PeerIncompatible(PeerIncompatible::Tls12NotOffered),
                "incompatible",
            ),
            (
                Error::AlertReceived(AlertDescription::BadCertificate),
                "alert_received",
            ),
            (Error::DecryptError, "other"),
        ] {
            assert_eq!(handshake_failure(&io(e.clone())), label, "{e:?}");
        }
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(handshake_failure(&reset), "io");
    }
}
