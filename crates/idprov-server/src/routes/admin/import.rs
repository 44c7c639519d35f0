//! Bulk registration: NDJSON or CSV streamed to `/idprov/admin/oob/import`,
//! or a JSON array posted to `/idprov/oobsecret` (PROTOCOL.md §3 ext). Rows
//! are validated and sealed as they arrive and streamed into one
//! transaction. CSV is read by the command-line tool's own reader
//! (`idprov-import`), so the web page's upload and `idprov oob import`
//! read a file the same way.

use std::collections::HashSet;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use http_body_util::BodyExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use idprov_proto::OobSecretMessage;
use idprov_proto::admin::{BulkResult, ImportRow, RejectedRow};
use idprov_store::{AuditEvent, AuditOf, BulkOutcome};
use idprov_store::{BulkMessage, BulkSecret, NewSecret};

use crate::auth::{Admin, AdminCaller};
use crate::error::ApiError;
use crate::routes::json;
use crate::routes::oobsecret::validate;
use crate::state::AppState;

/// Longest NDJSON line.
const MAX_LINE: usize = 64 * 1024;
/// A client that sends nothing for this long has abandoned the import.
const IDLE: Duration = Duration::from_secs(30);
/// Rows buffered between the network and the store's transaction.
const CHANNEL: usize = 4096;
/// At most this many refused rows are itemized.
const MAX_REPORTED: usize = 100_000;

/// `?dryRun=true&replace=false`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct ImportQuery {
    /// Validate every row and report, changing nothing.
    dry_run: Option<bool>,
    /// Replace the secrets of devices that have one (else such rows are
    /// refused).
    #[param(default = true)]
    replace: Option<bool>,
}

/// One input row, before validation.
pub(crate) struct InputRow {
    pub index: u64,
    pub line: Option<u64>,
    pub message: OobSecretMessage,
}

/// Validates, seals and streams rows into the store; collects per-row
/// results. `rows` yields `Err` for a row that could not even be read.
pub(crate) struct Importer {
    app: AppState,
    admin: AdminCaller,
    now: idprov_proto::UnixTime,
    seen: HashSet<[u8; 16]>,
    rejected: Vec<RejectedRow>,
    rejected_total: u64,
    digest: Sha256,
    rows: u64,
    tx: mpsc::Sender<BulkMessage>,
    store: tokio::task::JoinHandle<idprov_store::Result<idprov_store::BulkOutcome>>,
    dry_run: bool,
}

impl Importer {
    pub(crate) fn start(
        app: &AppState,
        admin: &AdminCaller,
        replace: bool,
        dry_run: bool,
    ) -> Importer {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let now = app.now_unix();
        let registry = app.registry.clone();
        let caller = admin.clone();
        let audit = AuditOf::one(move |outcome: &BulkOutcome| {
            caller.audit(
                now,
                AuditEvent::SecretsImported {
                    accepted: outcome.accepted,
                    replaced: outcome.replaced,
                    rejected: outcome.rejected.len() as u64,
                    rows_sha256: outcome.rows_sha256.clone(),
                },
                None,
            )
        });
        let store =
            tokio::spawn(
                async move { registry.put_secrets_bulk(rx, replace, dry_run, audit).await },
            );
        Importer {
            app: app.clone(),
            admin: admin.clone(),
            now,
            seen: HashSet::new(),
            rejected: Vec::new(),
            rejected_total: 0,
            digest: Sha256::new(),
            rows: 0,
            tx,
            store,
            dry_run,
        }
    }

    fn refuse(&mut self, index: u64, line: Option<u64>, device_id: &str, error: String) {
        self.rejected_total += 1;
        if self.rejected.len() < MAX_REPORTED {
            self.rejected.push(RejectedRow {
                index,
                line,
                device_id: device_id.chars().take(200).collect(),
                error,
            });
        }
    }

    /// Counts a row against the limit.
    pub(crate) fn count(&mut self) -> Result<(), ApiError> {
        self.rows += 1;
        if self.rows > self.app.config.bulk_rows {
            return Err(ApiError::PayloadTooLarge(
                usize::try_from(self.app.config.bulk_rows).unwrap_or(usize::MAX),
            ));
        }
        Ok(())
    }

    /// Handles one row.
    pub(crate) async fn row(&mut self, row: InputRow) -> Result<(), ApiError> {
        let reg = match validate(&row.message, &self.app.config, self.now) {
            Ok(r) => r,
            Err(e) => {
                self.refuse(row.index, row.line, &row.message.device_id, e.message);
                return Ok(());
            }
        };
        let pake_only = row.message.pake_only;
        if pake_only && !self.app.config.v2 {
            self.refuse(
                row.index,
                row.line,
                reg.device_id.as_str(),
                super::super::oobsecret::V2_OFF.into(),
            );
            return Ok(());
        }
        let key: [u8; 16] = Sha256::digest(reg.device_id.as_str().as_bytes())[..16]
            .try_into()
            .unwrap_or_default();
        if !self.seen.insert(key) {
            self.refuse(
                row.index,
                row.line,
                reg.device_id.as_str(),
                "field \"deviceID\": repeated; an earlier row of this import has the same device ID".into(),
            );
            return Ok(());
        }
        self.digest.update(reg.device_id.as_str().as_bytes());
        self.digest.update(b"\n");
        self.digest.update(reg.valid_until.to_string().as_bytes());
        self.digest.update(b"\n");
        if pake_only {
            self.digest.update(b"v2\n");
        }
        // A dry run stores nothing, so a v2-only row's verifier (a KDF,
        // milliseconds each) is not made for it.
        let (sealed, pake) = if pake_only && self.dry_run {
            (Vec::new(), None)
        } else {
            super::super::oobsecret::sealed_forms(&self.app, &reg.device_id, &reg.secret, pake_only)
                .await?
        };
        let message = BulkMessage::Row(BulkSecret {
            index: row.index,
            secret: NewSecret {
                device_id: reg.device_id.into_string(),
                sealed,
                key_id: self.app.secrets().key_id().to_owned(),
                created_at: self.now,
                valid_until: reg.valid_until,
                created_by: self.admin.actor.clone(),
                pake,
            },
        });
        if self.tx.send(message).await.is_err() {
            // The store ended early; its error is reported by `finish`.
            return Ok(());
        }
        Ok(())
    }

    /// Commits (or, for a dry run, only reports) and returns the result.
    pub(crate) async fn finish(mut self, lines: &LineMap) -> Result<BulkResult, ApiError> {
        let hash = hex::encode(std::mem::take(&mut self.digest).finalize());
        let _ = self
            .tx
            .send(BulkMessage::End {
                rows_sha256: hash.clone(),
            })
            .await;
        drop(self.tx);
        let outcome = self
            .store
            .await
            .map_err(|_| ApiError::Internal("the import task failed".into()))??;
        for (index, device_id, error) in outcome.rejected {
            self.rejected_total += 1;
            if self.rejected.len() < MAX_REPORTED {
                self.rejected.push(RejectedRow {
                    index,
                    line: lines.line_of(index),
                    device_id,
                    error,
                });
            }
        }
        self.rejected.sort_by_key(|r| r.index);
        if self.rejected_total as usize > self.rejected.len() {
            tracing::warn!(
                total = self.rejected_total,
                "more refused rows than itemized"
            );
        }
        // The digest the store wrote into the audit entry: the log names
        // the same rows.
        tracing::info!(
            actor = %self.admin.actor,
            accepted = outcome.accepted,
            replaced = outcome.replaced,
            rejected = self.rejected_total,
            dry_run = self.dry_run,
            rows_sha256 = %hash,
            "bulk registration"
        );
        Ok(BulkResult {
            accepted: outcome.accepted,
            replaced: outcome.replaced,
            rejected: self.rejected,
            dry_run: self.dry_run,
        })
    }
}

/// Remembers the file line of each row index (the store reports by index).
#[derive(Default)]
pub(crate) struct LineMap(Vec<(u64, u64)>);

impl LineMap {
    fn add(&mut self, index: u64, line: Option<u64>) {
        if let Some(l) = line {
            self.0.push((index, l));
        }
    }
    fn line_of(&self, index: u64) -> Option<u64> {
        self.0
            .binary_search_by_key(&index, |(i, _)| *i)
            .ok()
            .map(|p| self.0[p].1)
    }
}

fn check_length(headers: &HeaderMap, limit: u64) -> Result<(), ApiError> {
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit
    {
        return Err(ApiError::PayloadTooLarge(
            usize::try_from(limit).unwrap_or(usize::MAX),
        ));
    }
    Ok(())
}

/// The NDJSON reader's position in the body.
struct Cursor {
    importer: Importer,
    lines: LineMap,
    body_line: u64,
    index: u64,
}

impl Cursor {
    /// Handles one body line (without its newline).
    async fn line(&mut self, line: &[u8]) -> Result<(), ApiError> {
        self.body_line += 1;
        if line.len() > MAX_LINE {
            return Err(ApiError::BadRequest(format!(
                "line {} of the import is longer than {MAX_LINE} bytes",
                self.body_line
            )));
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        self.importer.count()?;
        let index = self.index;
        self.index += 1;
        match serde_json::from_slice::<ImportRow>(line) {
            Err(e) => {
                self.lines.add(index, Some(self.body_line));
                self.importer.refuse(
                    index,
                    Some(self.body_line),
                    "",
                    format!("not a JSON row: {e}"),
                );
                Ok(())
            }
            Ok(row) => {
                let line_no = row.line.or(Some(self.body_line));
                // The client's own numbering, when it sent one, is what it reports.
                let index = row.index.unwrap_or(index);
                self.lines.add(index, line_no);
                self.importer
                    .row(InputRow {
                        index,
                        line: line_no,
                        message: OobSecretMessage {
                            device_id: row.device_id,
                            oob_secret: row.oob_secret,
                            valid_until: row.valid_until,
                            pake_only: row.pake_only,
                        },
                    })
                    .await
            }
        }
    }
}

/// Whether the body is CSV (`Content-Type: text/csv`); anything else is
/// read as NDJSON, as it always was.
fn is_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/csv"))
}

/// `POST /idprov/admin/oob/import`: NDJSON, one `ImportRow` per line, or
/// CSV (`Content-Type: text/csv`, see [`csv`]).
#[utoipa::path(
    post,
    path = "/idprov/admin/oob/import",
    operation_id = "importSecrets",
    tag = "secrets",
    summary = "Bulk registration, streamed: one row per line, committed in one transaction",
    params(ImportQuery),
    request_body(content(
        (ImportRow = "application/x-ndjson"),
        (String = "text/csv"),
    ), description = "NDJSON, one row per line; or CSV with the header deviceID,secret[,validUntil[,pakeOnly]]"),
    responses(
        (status = 200, description = "Per-row results", body = BulkResult),
        (status = 400, response = crate::routes::api_doc::BadRequest),
        (status = 413, response = crate::routes::api_doc::PayloadTooLarge),
    ),
)]
pub(crate) async fn ndjson(
    admin: Admin,
    q: Result<Query<ImportQuery>, QueryRejection>,
    headers: HeaderMap,
    mut body: Body,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let q = crate::routes::query(q)?;
    check_length(&headers, app.config.bulk_bytes)?;
    if is_csv(&headers) {
        return csv(&admin, &q, body).await;
    }
    let mut cursor = Cursor {
        importer: Importer::start(
            app,
            &admin.caller,
            q.replace.unwrap_or(true),
            q.dry_run.unwrap_or(false),
        ),
        lines: LineMap::default(),
        body_line: 0,
        index: 0,
    };
    let too_large =
        || ApiError::PayloadTooLarge(usize::try_from(app.config.bulk_bytes).unwrap_or(usize::MAX));
    let mut buf: Vec<u8> = Vec::new();
    let mut total: u64 = 0;
    loop {
        let chunk = match tokio::time::timeout(IDLE, body.frame()).await {
            Err(_) => {
                return Err(ApiError::BadRequest(
                    "the import stalled; nothing was stored".into(),
                ));
            }
            Ok(Some(Err(_))) => {
                return Err(ApiError::BadRequest(
                    "the import body could not be read".into(),
                ));
            }
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => Some(data),
                Err(_) => continue, // trailers
            },
            Ok(None) => None,
        };
        let Some(data) = chunk else {
            if !buf.is_empty() {
                let rest = std::mem::take(&mut buf);
                cursor.line(&rest).await?;
            }
            break;
        };
        total += data.len() as u64;
        if total > app.config.bulk_bytes {
            return Err(too_large());
        }
        buf.extend_from_slice(&data);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl;
            cursor.line(&buf[start..end]).await?;
            start = end + 1;
        }
        buf.drain(..start);
        if buf.len() > MAX_LINE {
            return Err(ApiError::BadRequest(format!(
                "line {} of the import is longer than {MAX_LINE} bytes",
                cursor.body_line + 1
            )));
        }
    }
    let Cursor {
        importer, lines, ..
    } = cursor;
    json(&importer.finish(&lines).await?)
}

/// A JSON array posted to `/idprov/oobsecret` by an administrator or plugin.
pub(crate) async fn array(
    app: &AppState,
    admin: &AdminCaller,
    bytes: bytes::Bytes,
) -> Result<Response, ApiError> {
    let items: Vec<serde_json::Value> = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("body is not a JSON array: {e}")))?;
    let mut importer = Importer::start(app, admin, true, false);
    for (i, item) in items.into_iter().enumerate() {
        importer.count()?;
        let index = i as u64;
        match OobSecretMessage::from_value(item) {
            Ok(message) => {
                importer
                    .row(InputRow {
                        index,
                        line: None,
                        message,
                    })
                    .await?
            }
            Err(e) => importer.refuse(index, None, "", e.to_string()),
        }
    }
    json(&importer.finish(&LineMap::default()).await?)
}

/// Chunks of the request body, read as a file by the CSV reader on its
/// blocking thread.
struct BodyReader {
    chunks: mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    current: bytes::Bytes,
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Why a CSV row carries no secret here: the server stores secrets it is
/// given; generated ones are made where they are printed or written down.
const NO_SECRET: &str = "field \"secret\": empty; secrets are generated by a label sheet \
    (Labels) or by idprov oob import --generate, not by an upload";

/// A CSV import (header `deviceID,secret[,validUntil[,pakeOnly]]`), streamed: the body
/// is fed to the command-line tool's reader on a blocking thread as it
/// arrives, and its rows come back to be validated, sealed and streamed
/// into the store like NDJSON rows — the file is never held in memory.
/// A header that is not a bulk-registration header refuses the whole
/// upload; a bad row is refused alone, by its line.
async fn csv(admin: &Admin, q: &ImportQuery, mut body: Body) -> Result<Response, ApiError> {
    let app: &AppState = admin;
    let limit = app.config.bulk_bytes;
    let too_large = || ApiError::PayloadTooLarge(usize::try_from(limit).unwrap_or(usize::MAX));
    let (chunk_tx, chunk_rx) = mpsc::channel(16);
    let (row_tx, mut row_rx) = mpsc::channel::<Result<idprov_import::FileRow, String>>(CHANNEL);
    let reader = BodyReader {
        chunks: chunk_rx,
        current: bytes::Bytes::new(),
    };
    // Ends when the body ends, or as soon as nobody takes its rows.
    tokio::task::spawn_blocking(move || {
        match idprov_import::read_rows(reader, idprov_import::Format::Csv) {
            Err(e) => {
                let _ = row_tx.blocking_send(Err(e.to_string()));
            }
            Ok(rows) => {
                for row in rows {
                    if row_tx.blocking_send(Ok(row)).is_err() {
                        break;
                    }
                }
            }
        }
    });
    // The body, chunk by chunk, into the reader; an error also reaches
    // the reader, so it stops.
    let pump = async move {
        let mut total: u64 = 0;
        let failed = loop {
            let data = match tokio::time::timeout(IDLE, body.frame()).await {
                Err(_) => {
                    break ApiError::BadRequest("the import stalled; nothing was stored".into());
                }
                Ok(Some(Err(_))) => {
                    break ApiError::BadRequest("the import body could not be read".into());
                }
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue, // trailers
                },
                Ok(None) => return Ok(()),
            };
            total += data.len() as u64;
            if total > limit {
                break too_large();
            }
            if chunk_tx.send(Ok(data)).await.is_err() {
                // The reader stopped (a bad header): the rows say why.
                return Ok(());
            }
        };
        let _ = chunk_tx
            .send(Err(std::io::Error::other("the upload failed")))
            .await;
        Err(failed)
    };
    let consume = async {
        let mut importer = Importer::start(
            app,
            &admin.caller,
            q.replace.unwrap_or(true),
            q.dry_run.unwrap_or(false),
        );
        let mut lines = LineMap::default();
        while let Some(row) = row_rx.recv().await {
            let row = row.map_err(ApiError::BadRequest)?;
            importer.count()?;
            // The reader's lines count from the header (line 1).
            let line = (row.line > 0).then_some(row.line);
            lines.add(row.index, line);
            match row.content {
                Err(e) => importer.refuse(row.index, line, "", e),
                Ok(content) => match content.secret {
                    None => importer.refuse(row.index, line, &content.device_id, NO_SECRET.into()),
                    Some(secret) => {
                        importer
                            .row(InputRow {
                                index: row.index,
                                line,
                                message: OobSecretMessage {
                                    device_id: content.device_id,
                                    oob_secret: secret,
                                    valid_until: content.valid_until,
                                    pake_only: content.pake_only,
                                },
                            })
                            .await?
                    }
                },
            }
        }
        Ok::<_, ApiError>((importer, lines))
    };
    let (pumped, consumed) = tokio::join!(pump, consume);
    // A body that failed part-way is not a shorter file: dropping the
    // importer unfinished stores nothing.
    pumped?;
    let (importer, lines) = consumed?;
    json(&importer.finish(&lines).await?)
}
