//! The admin API client: the command-line tool's way to the server, over
//! mutual TLS with an administrator certificate.

use std::time::Duration;

use idprov_proto::admin::{
    AuditView, BulkResult, CertView, CheckpointView, CredentialIssued, CredentialRequest, Decided,
    Decision, DeviceDetail, DeviceView, ExportRow, Page, Removed, RevokeRequest, Revoked,
    SecretAdded, SecretView, WaitingView,
};
use idprov_proto::{OobSecretMessage, StatusMessage};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::de::DeserializeOwned;

use crate::error::ClientError;
use crate::tls::Credentials;

/// Characters escaped in path segments and query values.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'/')
    .add(b'?')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'=')
    .add(b'+');

/// The page size listings ask for.
const PAGE_SIZE: usize = 1000;

/// A client for `/idprov/…` administrative calls.
#[derive(Debug, Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    server: String,
}

impl AdminClient {
    /// A client for the server at `server` (`HOST:PORT`, or a full `https://` URL).
    pub fn new(server: &str, credentials: &Credentials) -> Result<AdminClient, ClientError> {
        let base = if server.starts_with("https://") {
            server.trim_end_matches('/').to_owned()
        } else {
            format!("https://{server}")
        };
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(credentials.client_config()?)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| ClientError::Credentials(format!("TLS client: {e}")))?;
        Ok(AdminClient {
            http,
            base,
            server: server.to_owned(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request; the body of a success, or the error it stands for.
    async fn send_raw(&self, req: reqwest::RequestBuilder) -> Result<bytes::Bytes, ClientError> {
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::from_transport(&self.server, &e))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ClientError::from_transport(&self.server, &e))?;
        if status.is_success() {
            return Ok(body);
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        Err(match status.as_u16() {
            401 | 403 => ClientError::CredentialsRefused(message),
            code => ClientError::Refused {
                status: code,
                message,
            },
        })
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let body = self.send_raw(req).await?;
        serde_json::from_slice(&body).map_err(|e| {
            ClientError::Protocol(format!("{e} in {}", String::from_utf8_lossy(&body)))
        })
    }

    /// A URL of `path` with `query` as its query string, every value
    /// percent-encoded: the one place a listing's filters become a URL.
    fn url_with(&self, path: &str, query: &[(&str, String)]) -> String {
        let pairs: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, SEGMENT)))
            .collect();
        if pairs.is_empty() {
            self.url(path)
        } else {
            format!("{}?{}", self.url(path), pairs.join("&"))
        }
    }

    /// Every entry of a paged listing matching `filter`, up to `limit`.
    async fn all<T: DeserializeOwned>(
        &self,
        path: &str,
        filter: &[(&str, String)],
        limit: Option<usize>,
    ) -> Result<Vec<T>, ClientError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let want = limit.map_or(PAGE_SIZE, |l| (l - out.len()).min(PAGE_SIZE));
            if want == 0 {
                break;
            }
            let mut query = filter.to_vec();
            query.push(("limit", want.to_string()));
            if let Some(a) = &after {
                query.push(("after", a.clone()));
            }
            let page: Page<T> = self
                .send(self.http.get(self.url_with(path, &query)))
                .await?;
            let got = page.items.len();
            out.extend(page.items);
            match page.next {
                Some(n) if got > 0 => after = Some(n),
                _ => break,
            }
        }
        Ok(out)
    }

    fn segment(id: &str) -> String {
        utf8_percent_encode(id, SEGMENT).to_string()
    }

    /// Registers (or replaces) a device's OOB secret.
    pub async fn add_secret(&self, msg: &OobSecretMessage) -> Result<SecretAdded, ClientError> {
        self.send(
            self.http
                .post(self.url(idprov_proto::messages::OOB_SECRET_PATH))
                .header("content-type", "application/json")
                .body(msg.to_json()),
        )
        .await
    }

    /// Registered secrets (never their values).
    pub async fn list_secrets(&self, limit: Option<usize>) -> Result<Vec<SecretView>, ClientError> {
        self.all("/idprov/admin/oob", &[], limit).await
    }

    /// Removes a device's secret.
    pub async fn remove_secret(&self, device_id: &str) -> Result<Removed, ClientError> {
        self.send(
            self.http
                .delete(self.url(&format!("/idprov/admin/oob/{}", Self::segment(device_id)))),
        )
        .await
    }

    /// Devices.
    pub async fn list_devices(&self, limit: Option<usize>) -> Result<Vec<DeviceView>, ClientError> {
        self.all("/idprov/admin/devices", &[], limit).await
    }

    /// Devices matching a filter (`status`, `expiringWithinDays`,
    /// `missedRenewal`, `prefix` query parameters).
    pub async fn list_devices_where(
        &self,
        filter: &[(&str, String)],
        limit: Option<usize>,
    ) -> Result<Vec<DeviceView>, ClientError> {
        self.all("/idprov/admin/devices", filter, limit).await
    }

    /// Revokes a device's certificates (all, or one serial).
    pub async fn revoke_device(
        &self,
        device_id: &str,
        req: &RevokeRequest,
    ) -> Result<Revoked, ClientError> {
        self.send(
            self.http
                .post(self.url(&format!(
                    "/idprov/admin/devices/{}/revoke",
                    Self::segment(device_id)
                )))
                .json(req),
        )
        .await
    }

    /// Clears a device's failed-secret counters and locks.
    pub async fn unlock_device(&self, device_id: &str) -> Result<serde_json::Value, ClientError> {
        self.send(self.http.post(self.url(&format!(
            "/idprov/admin/devices/{}/unlock",
            Self::segment(device_id)
        ))))
        .await
    }

    /// Revokes and forgets a device.
    pub async fn remove_device(&self, device_id: &str) -> Result<Revoked, ClientError> {
        self.send(self.http.delete(self.url(&format!(
            "/idprov/admin/devices/{}",
            Self::segment(device_id)
        ))))
        .await
    }

    /// Sets an administrator's web-page password.
    pub async fn set_web_password(&self, name: &str, password: &str) -> Result<(), ClientError> {
        let body = serde_json::json!({ "name": name, "password": password });
        self.send_raw(
            self.http
                .post(self.url("/idprov/admin/web/passwords"))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await?;
        Ok(())
    }

    /// Removes an administrator's web password; their sessions end.
    pub async fn remove_web_password(&self, name: &str) -> Result<(), ClientError> {
        self.send_raw(self.http.delete(self.url(&format!(
            "/idprov/admin/web/passwords/{}",
            Self::segment(name)
        ))))
        .await?;
        Ok(())
    }

    /// Approves, rejects or clears (`action`) a device's waiting request.
    pub async fn decide(
        &self,
        device_id: &str,
        action: &str,
        decision: &Decision,
    ) -> Result<Decided, ClientError> {
        self.send(
            self.http
                .post(self.url(&format!(
                    "/idprov/admin/requests/{}/{action}",
                    Self::segment(device_id)
                )))
                .json(decision),
        )
        .await
    }

    /// Streams NDJSON rows (already encoded, newline-terminated) to the bulk
    /// import; `rows` ends when the sender is dropped.
    pub async fn import(
        &self,
        rows: tokio::sync::mpsc::Receiver<bytes::Bytes>,
        dry_run: bool,
        replace: bool,
    ) -> Result<BulkResult, ClientError> {
        let url = format!(
            "{}?dryRun={dry_run}&replace={replace}",
            self.url("/idprov/admin/oob/import")
        );
        self.send(
            self.http
                .post(url)
                .header("content-type", "application/x-ndjson")
                .body(reqwest::Body::wrap(ChannelBody(rows))),
        )
        .await
    }

    /// Every live secret's device ID and expiry; with `with_secrets`, the
    /// secrets too (an administrator certificate over loopback, audited).
    pub async fn export(&self, with_secrets: bool) -> Result<Vec<ExportRow>, ClientError> {
        let url = self.url_with(
            "/idprov/admin/oob/export",
            &[("withSecrets", with_secrets.to_string())],
        );
        let body = self.send_raw(self.http.get(url)).await?;
        body.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).map_err(|e| ClientError::Protocol(e.to_string())))
            .collect()
    }

    /// Audit entries matching filter parameters, every page.
    pub async fn audit(
        &self,
        filter: &[(&str, String)],
        limit: Option<usize>,
    ) -> Result<Vec<AuditView>, ClientError> {
        let mut out: Vec<AuditView> = Vec::new();
        let mut after = 0i64;
        loop {
            let want = limit.map_or(5000, |l| (l - out.len()).min(5000));
            if want == 0 {
                break;
            }
            let mut query = filter.to_vec();
            query.push(("after", after.to_string()));
            query.push(("limit", want.to_string()));
            let url = self.url_with("/idprov/admin/audit", &query);
            let page: Page<AuditView> = self.send(self.http.get(url)).await?;
            let got = page.items.len();
            if let Some(last) = page.items.last() {
                after = last.seq;
            }
            out.extend(page.items);
            if page.next.is_none() || got == 0 {
                break;
            }
        }
        Ok(out)
    }

    /// The signed checkpoints of the audit chain.
    pub async fn checkpoints(&self) -> Result<Vec<CheckpointView>, ClientError> {
        self.send(self.http.get(self.url("/idprov/admin/audit/checkpoints")))
            .await
    }

    /// Signs the audit head now; returns the newest checkpoint.
    pub async fn checkpoint_now(&self) -> Result<Option<CheckpointView>, ClientError> {
        self.send(self.http.post(self.url("/idprov/admin/audit/checkpoints")))
            .await
    }

    /// Issues a credential for a public key.
    pub async fn issue_credential(
        &self,
        req: &CredentialRequest,
    ) -> Result<CredentialIssued, ClientError> {
        self.send(
            self.http
                .post(self.url("/idprov/admin/credentials"))
                .json(req),
        )
        .await
    }

    /// Credentials (certificates of admins, plugins, services).
    pub async fn credentials(&self, ou: Option<&str>) -> Result<Vec<CertView>, ClientError> {
        let query: Vec<(&str, String)> = ou.map(|ou| ("ou", ou.to_owned())).into_iter().collect();
        let url = self.url_with("/idprov/admin/credentials", &query);
        self.send(self.http.get(url)).await
    }

    /// Revokes a credential.
    pub async fn revoke_credential(
        &self,
        ou: &str,
        cn: &str,
        req: &RevokeRequest,
    ) -> Result<Revoked, ClientError> {
        self.send(
            self.http
                .post(self.url(&format!(
                    "/idprov/admin/credentials/{}/{}/revoke",
                    Self::segment(ou),
                    Self::segment(cn)
                )))
                .json(req),
        )
        .await
    }

    /// The CRL, DER or PEM.
    pub async fn crl(&self, pem: bool) -> Result<bytes::Bytes, ClientError> {
        let mut req = self.http.get(self.url("/idprov/crl"));
        if pem {
            req = req.header("accept", "application/x-pem-file");
        }
        self.send_raw(req).await
    }

    /// One device with its certificate history.
    pub async fn device(&self, device_id: &str) -> Result<DeviceDetail, ClientError> {
        self.send(self.http.get(self.url(&format!(
            "/idprov/admin/devices/{}",
            Self::segment(device_id)
        ))))
        .await
    }

    /// Waiting provisioning requests.
    pub async fn list_requests(
        &self,
        limit: Option<usize>,
    ) -> Result<Vec<WaitingView>, ClientError> {
        self.all("/idprov/admin/requests", &[], limit).await
    }

    /// Whether the waiting queue is full.
    pub async fn queue_status(&self) -> Result<idprov_proto::admin::QueueStatus, ClientError> {
        self.send(self.http.get(self.url("/idprov/admin/requests/status")))
            .await
    }

    /// A device's protocol status (`GET /idprov/status/{deviceID}`).
    pub async fn status(&self, device_id: &str) -> Result<StatusMessage, ClientError> {
        let path = format!(
            "{}{}",
            idprov_proto::messages::STATUS_PATH_PREFIX,
            Self::segment(device_id)
        );
        let body = self.send_raw(self.http.get(self.url(&path))).await?;
        StatusMessage::from_json(&body).map_err(|e| ClientError::Protocol(e.to_string()))
    }
}

/// A request body fed from a channel, so an import streams as it is read.
struct ChannelBody(tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl http_body::Body for ChannelBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(http_body::Frame::data(b))))
    }
}
