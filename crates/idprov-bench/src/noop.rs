//! The do-nothing server: the same rustls settings and certificate as the
//! idprov server (resumption off, optionally verifying client certificates),
//! answering every request with a small 200 after reading its body. Its rate
//! under the same generator is the ceiling the real server is compared to.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;

/// Serves until killed; prints `listening ADDR` on standard output once bound.
pub async fn serve(
    listen: SocketAddr,
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> anyhow::Result<()> {
    let chain = idprov_ca::pem::parse_certificates(&std::fs::read_to_string(cert)?)?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("server key {}: {e}", key.display()))?;
    // The idprov server's own provider and suite preference.
    let provider = Arc::new(idprov_server::crypto_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in idprov_ca::pem::parse_certificates(&std::fs::read_to_string(ca)?)? {
                roots.add(c)?;
            }
            builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .allow_unauthenticated()
                .build()?,
            )
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    // The idprov server's listen backlog (1024). `TcpListener::bind` would
    // use 128: at 500 concurrent connections SYNs are then dropped and
    // retried a second later, and the ceiling would be lower than it is.
    let socket = if listen.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    let listener = socket.listen(1024)?;
    println!("listening {}", listener.local_addr()?);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                let _ = req.into_body().collect().await;
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                    Bytes::from_static(b"{}"),
                )))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}
