//! Client errors, sorted by what the caller can do about them.

/// Why a call to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Local credentials (certificate, key, CA) are missing or unreadable.
    #[error("credentials: {0}")]
    Credentials(String),
    /// The server could not be reached, or its certificate is not trusted.
    #[error("cannot reach the server at {server}: {detail}")]
    Unreachable {
        /// Where we tried.
        server: String,
        /// Why it failed.
        detail: String,
    },
    /// The server refused our client certificate (TLS alert, 401 or 403).
    #[error("the server refused our credentials: {0}")]
    CredentialsRefused(String),
    /// The server answered with an error status.
    #[error("the server refused the request ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// DNS-SD discovery failed.
    #[error("discovery failed: {0}")]
    Discovery(String),
    /// The server's answer did not make sense.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

#[cfg(feature = "admin")]
impl ClientError {
    /// Classifies a transport error: rustls alerts about our certificate are
    /// a refusal of credentials; anything else means the server is unreachable.
    pub(crate) fn from_transport(server: &str, e: &reqwest::Error) -> ClientError {
        // TLS failures reach us as an `io::Error` carrying rustls's message
        // (tokio-rustls keeps only the text), so the alert is read from it.
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            let text = match err.downcast_ref::<rustls::Error>() {
                Some(tls) => tls.to_string(),
                None => match err
                    .downcast_ref::<std::io::Error>()
                    .and_then(|io| io.get_ref())
                {
                    Some(inner) => inner.to_string(),
                    None => String::new(),
                },
            };
            if let Some(alert) = text.strip_prefix("received fatal alert: ") {
                const REFUSALS: &[&str] = &[
                    "BadCertificate",
                    "UnknownCA",
                    "CertificateExpired",
                    "CertificateRevoked",
                    "CertificateUnknown",
                    "AccessDenied",
                    "CertificateRequired",
                    "UnsupportedCertificate",
                ];
                if REFUSALS.contains(&alert) {
                    return ClientError::CredentialsRefused(format!(
                        "the TLS handshake was refused ({alert}); the client certificate may be expired, revoked or from another CA"
                    ));
                }
                return ClientError::Unreachable {
                    server: server.to_owned(),
                    detail: format!("TLS: {text}"),
                };
            }
            if text.starts_with("invalid peer certificate") {
                return ClientError::Unreachable {
                    server: server.to_owned(),
                    detail: format!("the server's certificate is not trusted: {text}"),
                };
            }
            source = err.source();
        }
        let detail = if e.is_timeout() {
            "timed out".to_owned()
        } else if e.is_connect() {
            format!("connection failed ({})", root_cause(e))
        } else {
            root_cause(e)
        };
        ClientError::Unreachable {
            server: server.to_owned(),
            detail,
        }
    }
}

#[cfg(feature = "admin")]
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}
