//! The accept loop: TCP accept, TLS handshake with a timeout, the verified
//! leaf parsed once per connection, then HTTP/1.1 or HTTP/2 served by hyper
//! with the router. Owning the loop (rather than a ready-made server) is
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

/// Timeouts of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TLS handshake.
    pub handshake: Duration,
    /// Request headers.
    pub header: Duration,
    /// Graceful shutdown.
    pub shutdown_grace: Duration,
}

/// An IPv4 peer on a dual-stack socket appears as `::ffff:a.b.c.d`; use the
/// IPv4 form so lockouts and logs name one address one way.
fn canonical(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(peer.ip().to_canonical(), peer.port())
}

/// A label for a failed handshake, for metrics.
fn handshake_failure(e: &std::io::Error) -> &'static str {
    let text = e
        .get_ref()
        .map(|i| i.to_string())
        .unwrap_or_else(|| e.to_string());
    if text.contains("Expired") || text.contains("expired") || text.contains("NotValidYet") {
        "certificate_validity"
    } else if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        "unknown_ca"
    } else if text.contains("certificate") || text.contains("Certificate") {
        "bad_certificate"
    } else if text.contains("incompatible")
        || text.contains("NoCipherSuitesInCommon")
        || text.contains("protocol version")
    {
        "incompatible"
    } else {
        "other"
    }
}

/// Serves connections until `shutdown` turns true, then lets requests in
/// flight finish (up to the grace period).
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    state: crate::state::AppState,
    timeouts: Timeouts,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    // One HTTP configuration for every connection (HTTP/1.1 or h2).
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header);
    http.http2().timer(TokioTimer::new());
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
        let permit = match state
            .connection_limits
            .admit(peer.ip(), std::time::Instant::now())
        {
            Ok(p) => p,
            Err(refusal) => {
                state.note_limited(peer.ip(), refusal.as_str());
                drop(tcp);
                continue;
            }
        };
        metrics::gauge!(crate::observe::CONNECTIONS).set(f64::from(state.connection_limits.open()));
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        let http = http.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(timeouts.handshake, acceptor.accept(tcp)).await {
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
            let info = ConnInfo { peer, leaf };
            let service = router.map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(info.clone());
                req
            });
            let conn = http
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
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
