//! idprov v2 first contact (PROTOCOL.md §11): SPAKE2+ over one TLS 1.3
//! connection to the pinned CA. The device asks for its KDF parameters,
//! sends `shareP`, checks the server's `confirmV` — a server that does not
//! hold the device's verifier, or a run relayed over another TLS
//! connection, fails here and nothing more is sent — then sends `confirmP`
//! with its provisioning request signed with the run's `K_request`, and
//! accepts only an answer signed with `K_answer`.
//!
//! The three posts share one connection (the run is bound to its exporter
//! value), so this speaks HTTP/1.1 with hyper over tokio-rustls itself
//! rather than through a pooled client. There is no fallback to v1: a
//! server without v2 is an error.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use idprov_proto::v2::{
    self, Binding, FinishRequest, ParamsRequest, ParamsResponse, SeededRng, StartRequest,
    StartResponse,
};
use idprov_proto::{Fingerprint, ProvisionRequest, ProvisionResponse};
use rustls_pki_types::ServerName;
use zeroize::Zeroizing;

use super::{Device, DeviceError, Outcome, Target, pem_fingerprints, trust};

/// One HTTP/1.1 connection over TLS 1.3 with its exporter value.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    exporter: [u8; v2::EXPORTER_LEN],
    authority: String,
}

/// An answer: status, `Retry-After`, body.
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: Bytes,
}

fn host_port(base: &str) -> Result<(String, u16), DeviceError> {
    let rest = base.strip_prefix("https://").unwrap_or(base);
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| DeviceError::Protocol(format!("bad port in {base}")))?;
            (h, port)
        }
        _ => (authority, 443),
    };
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    ))
}

impl Device {
    async fn v2_connect(&self, target: &Target, ca_pem: &str) -> Result<Connection, DeviceError> {
        let (host, port) = host_port(&target.base)?;
        let unreachable = |detail: String| DeviceError::Unreachable {
            server: target.base.clone(),
            detail,
        };
        let tcp = match &target.host {
            Some((_, addrs)) if !addrs.is_empty() => {
                let mut last = None;
                let mut found = None;
                for addr in addrs {
                    match tokio::time::timeout(
                        Duration::from_secs(10),
                        tokio::net::TcpStream::connect(addr),
                    )
                    .await
                    {
                        Ok(Ok(s)) => {
                            found = Some(s);
                            break;
                        }
                        Ok(Err(e)) => last = Some(e.to_string()),
                        Err(_) => last = Some("connection timed out".into()),
                    }
                }
                found.ok_or_else(|| unreachable(last.unwrap_or_default()))?
            }
            _ => tokio::time::timeout(
                Duration::from_secs(10),
                tokio::net::TcpStream::connect((host.as_str(), port)),
            )
            .await
            .map_err(|_| unreachable("connection timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?,
        };
        let _ = tcp.set_nodelay(true);
        let mut config = trust::pinned_config(ca_pem, None, &self.time)
            .map_err(|e| DeviceError::Protocol(e.0))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(host.clone())
            .map_err(|e| DeviceError::Protocol(format!("server name {host:?}: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| {
                let text = e.to_string();
                if text.contains("invalid peer certificate") || text.contains("certificate") {
                    DeviceError::ServerUntrusted {
                        server: target.base.clone(),
                        detail: text,
                    }
                } else {
                    unreachable(text)
                }
            })?;
        let session = tls.get_ref().1;
        if session.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
            return Err(DeviceError::Protocol(
                "the server did not negotiate TLS 1.3, which idprov v2 needs".into(),
            ));
        }
        let exporter = session
            .export_keying_material([0u8; v2::EXPORTER_LEN], v2::EXPORTER_LABEL, None)
            .map_err(|e| DeviceError::Protocol(format!("TLS exporter: {e}")))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Connection {
            sender,
            exporter,
            authority: if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            },
        })
    }

    async fn v2_post(
        &self,
        conn: &mut Connection,
        target: &Target,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Answer, DeviceError> {
        let unreachable = |detail: String| DeviceError::Unreachable {
            server: target.base.clone(),
            detail,
        };
        conn.sender
            .ready()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let request = hyper::Request::post(path)
            .header("host", &conn.authority)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| DeviceError::Protocol(e.to_string()))?;
        let resp = tokio::time::timeout(Duration::from_secs(60), conn.sender.send_request(request))
            .await
            .map_err(|_| unreachable("no answer within 60 s".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        if let Some(d) = super::server_date(resp.headers()) {
            self.time.learn_server_date(d);
        }
        let status = resp.status().as_u16();
        let retry_after = super::retry_after(resp.headers());
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }

    /// The error an unsuccessful answer stands for (`None`: rate limited).
    fn v2_refusal(answer: &Answer, path: &str) -> Result<Option<Outcome>, DeviceError> {
        match answer.status {
            200 => Ok(None),
            429 => Ok(Some(Outcome::RateLimited(Duration::from_secs(
                answer.retry_after.unwrap_or(60),
            )))),
            404 | 405 => Err(DeviceError::NoV2(path.to_owned())),
            status => Err(DeviceError::Refused {
                status,
                message: serde_json::from_slice::<serde_json::Value>(&answer.body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|m| m.as_str()).map(str::to_owned))
                    .unwrap_or_else(|| String::from_utf8_lossy(&answer.body).into_owned()),
            }),
        }
    }

    /// One idprov v2 provisioning attempt (PROTOCOL.md §11).
    pub(super) async fn provision_v2(&mut self) -> Result<Outcome, DeviceError> {
        let secret = self.opts.secret.clone().ok_or_else(|| {
            DeviceError::Protocol("idprov v2 needs the device's secret (its label)".into())
        })?;
        let target = self.target().await?;
        let (ca_pem, pinned) = self.trust(&target).await?;
        // The issuing CA the run is bound to: the label's fingerprint, else
        // the first certificate of the CA now trusted.
        let ca: Fingerprint = match &self.opts.ca_fingerprint {
            Some(fp) => *fp,
            None => pem_fingerprints(&ca_pem).next().ok_or(DeviceError::NoCa)?,
        };
        let device_id = self.opts.device_id.to_string();
        let mut conn = self.v2_connect(&target, &ca_pem).await?;

        let answer = self
            .v2_post(
                &mut conn,
                &target,
                v2::PARAMS_PATH,
                ParamsRequest {
                    device_id: device_id.clone(),
                }
                .to_json(),
            )
            .await?;
        if let Some(o) = Self::v2_refusal(&answer, v2::PARAMS_PATH)? {
            return Ok(o);
        }
        let params = ParamsResponse::from_json(&answer.body)
            .map_err(|e| DeviceError::Protocol(format!("KDF parameters: {e}")))?;
        tracing::info!(
            iterations = params.iterations,
            "idprov v2: stretching the secret"
        );
        let (secret_id, params2) = (device_id.clone(), params.clone());
        let prover_secret = tokio::task::spawn_blocking(move || {
            v2::derive(secret.expose().as_bytes(), &secret_id, &params2)
        })
        .await
        .map_err(|e| DeviceError::Protocol(e.to_string()))?
        .map_err(|e| DeviceError::Protocol(e.to_string()))?;

        let binding = Binding::new(&device_id, &ca, &conn.exporter);
        let mut seed = Zeroizing::new([0u8; 64]);
        aws_lc_rs::rand::fill(&mut seed[..])
            .map_err(|_| DeviceError::Key("the system's random generator failed".into()))?;
        let (prover, share_p) =
            v2::prover_start(&prover_secret, &binding, &mut SeededRng::new(*seed));
        let answer = self
            .v2_post(
                &mut conn,
                &target,
                v2::START_PATH,
                StartRequest::new(&device_id, &share_p).to_json(),
            )
            .await?;
        if let Some(o) = Self::v2_refusal(&answer, v2::START_PATH)? {
            return Ok(o);
        }
        let (share_v, confirm_v) = StartResponse::from_json(&answer.body)
            .map_err(|e| DeviceError::Protocol(format!("shareV/confirmV: {e}")))?;
        let (confirm_p, keys) = match prover.finish(&share_v, &confirm_v) {
            Ok(done) => done,
            Err(v2::V2Error::ConfirmationFailed) => return Err(DeviceError::PakeFailed),
            Err(e) => return Err(DeviceError::Protocol(format!("idprov v2: {e}"))),
        };
        tracing::info!("idprov v2: the server proved it holds this device's verifier");

        let request = ProvisionRequest {
            device_id: device_id.clone(),
            ip: self.opts.claimed_ip.clone(),
            mac: self.opts.claimed_mac.clone(),
            public_key_pem: self.key.public_key_pem(),
            signature: String::new(),
        };
        let answer = self
            .v2_post(
                &mut conn,
                &target,
                v2::FINISH_PATH,
                FinishRequest::new(request, &confirm_p, &keys).to_json(),
            )
            .await?;
        if let Some(o) = Self::v2_refusal(&answer, v2::FINISH_PATH)? {
            return Ok(o);
        }
        let answer = ProvisionResponse::from_json(&answer.body)
            .map_err(|e| DeviceError::Protocol(e.to_string()))?;
        match super::not_approved(&answer) {
            Some(outcome) => Ok(outcome),
            None => {
                if !answer.verify_v2(&keys) {
                    return Err(DeviceError::BadSignature);
                }
                tracing::info!(
                    verified_with = "v2 session key",
                    "the Approved answer's signature verified"
                );
                let installed = self.install(&answer, &ca_pem, pinned, true, "v2 session key")?;
                Ok(Outcome::Approved(installed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_of_a_base() {
        assert_eq!(
            host_port("https://localhost:43776").expect("parse"),
            ("localhost".into(), 43776)
        );
        assert_eq!(
            host_port("https://[::1]:5").expect("parse"),
            ("::1".into(), 5)
        );
        assert_eq!(
            host_port("https://hub.local").expect("parse"),
            ("hub.local".into(), 443)
        );
    }
}
