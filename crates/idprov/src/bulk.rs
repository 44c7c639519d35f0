//! `idprov oob import` and `idprov oob export`.

use std::io::IsTerminal;
use std::path::PathBuf;

use bytes::Bytes;
use idprov_client::import::{Format, RowContent, read_rows};
use idprov_proto::admin::{ImportRow, RejectedRow};
use idprov_proto::{DeviceId, Label, OobSecret};
use zeroize::Zeroizing;

use crate::Failure;
use crate::admin::{connect, generate_secret, local_ca_fingerprint};
use crate::cli::Connection;
use crate::files::{write_labels, write_new_private};
use crate::output;

/// A secrets CSV (`deviceID,secret,validUntil`, and `pakeOnly` when
/// `pake_column`), written by the `csv` crate (quoting where needed), every
/// cell safe to open in a spreadsheet: a cell that would start a formula is
/// marked as text (`idprov_proto::spreadsheet`), and `oob import` reads it
/// back unchanged. Held in a buffer that is wiped.
fn secrets_csv<'a>(
    rows: impl IntoIterator<Item = [&'a str; 4]>,
    pake_column: bool,
) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let mut w = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    let fail = |e: csv::Error| Failure::usage(format!("writing CSV: {e}"));
    let columns = if pake_column { 4 } else { 3 };
    w.write_record(&["deviceID", "secret", "validUntil", "pakeOnly"][..columns])
        .map_err(fail)?;
    for row in rows {
        w.write_record(
            row.map(idprov_proto::spreadsheet::escape)[..columns]
                .iter()
                .map(|c| c.as_ref()),
        )
        .map_err(fail)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Failure::usage(format!("writing CSV: {e}")))?;
    Ok(Zeroizing::new(bytes))
}

#[allow(clippy::too_many_arguments)]
pub async fn import(
    file: PathBuf,
    format: Option<String>,
    dry_run: bool,
    no_replace: bool,
    generate: bool,
    pake_only: bool,
    out: Option<PathBuf>,
    labels: Option<PathBuf>,
    conn: Connection,
) -> Result<(), Failure> {
    let format = match format.as_deref() {
        Some(f) => Format::parse(f)
            .ok_or_else(|| Failure::usage(format!("--format {f:?}: use csv, json or ndjson")))?,
        None => Format::of_path(&file).ok_or_else(|| {
            Failure::usage(format!(
                "{}: name the format with --format csv|json|ndjson",
                file.display()
            ))
        })?,
    };
    if let Some(o) = &out
        && (o == &file || o.exists())
    {
        return Err(Failure::usage(format!(
            "{} exists; --out must name a new file (the input is never overwritten)",
            o.display()
        )));
    }
    let reader = std::fs::File::open(&file)
        .map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
    let rows = read_rows(reader, format)
        .map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
    let client = connect(&conn)?;
    let fingerprint = if labels.is_some() {
        local_ca_fingerprint(&conn).ok()
    } else {
        None
    };

    // Rows stream to the server as they are read; what --generate creates
    // and what the sheet needs is kept aside.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let upload = tokio::spawn({
        let client = client.clone();
        async move { client.import(rx, dry_run, !no_replace).await }
    });
    let mut local: Vec<RejectedRow> = Vec::new();
    let mut generated: Vec<(String, Zeroizing<String>, String, bool)> = Vec::new();
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos} rows sent ({per_sec}) {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar
    });
    let mut chunk = Vec::with_capacity(64 * 1024);
    let mut sent: u64 = 0;
    for row in rows {
        let content = match row.content {
            Ok(c) => c,
            Err(error) => {
                local.push(RejectedRow {
                    index: row.index,
                    line: Some(row.line),
                    device_id: String::new(),
                    error,
                });
                continue;
            }
        };
        let RowContent {
            device_id,
            secret,
            valid_until,
            pake_only: row_pake_only,
        } = content;
        // --pake-only makes every row v2-only; a file may mark some.
        let pake_only = pake_only || row_pake_only;
        let secret = match secret {
            Some(s) => Zeroizing::new(s),
            None if generate => Zeroizing::new(generate_secret()?.expose().to_owned()),
            None => {
                local.push(RejectedRow {
                    index: row.index,
                    line: Some(row.line),
                    device_id,
                    error: "no secret (use --generate --out FILE to create one)".into(),
                });
                continue;
            }
        };
        if generate {
            generated.push((
                device_id.clone(),
                secret.clone(),
                valid_until.clone(),
                pake_only,
            ));
        }
        let line = ImportRow {
            device_id,
            oob_secret: secret.to_string(),
            valid_until,
            pake_only,
            line: Some(row.line),
            index: Some(row.index),
        };
        serde_json::to_writer(&mut chunk, &line).map_err(|e| Failure::usage(e.to_string()))?;
        chunk.push(b'\n');
        sent += 1;
        if chunk.len() >= 60 * 1024 {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(64 * 1024));
            if tx.send(Bytes::from(full)).await.is_err() {
                break;
            }
            if let Some(bar) = &progress {
                bar.set_position(sent);
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(Bytes::from(chunk)).await;
    }
    drop(tx);
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    let mut result = upload
        .await
        .map_err(|_| Failure::usage("the upload task failed"))??;

    // The server counts only the rows it received: map its indices back to
    // the file's rows and merge the rows refused locally.
    result.rejected.extend(local);
    result.rejected.sort_by_key(|r| (r.line, r.index));
    if !dry_run && generate {
        if let Some(out) = &out {
            // A v2-only row keeps its mark, so the file imports back as it was.
            let csv = secrets_csv(
                generated.iter().map(|(id, secret, valid, v2)| {
                    [
                        id.as_str(),
                        secret.as_str(),
                        valid.as_str(),
                        if *v2 { "true" } else { "" },
                    ]
                }),
                generated.iter().any(|(.., v2)| *v2),
            )?;
            write_new_private(out, &csv)?;
        }
        if let Some(sheet) = &labels {
            let items = generated
                .iter()
                .filter_map(|(id, secret, _, v2)| {
                    // A v2-only device's label says so (idprov:2): a device
                    // given it never falls back to v1.
                    let label = Label {
                        version: if *v2 { 2 } else { 1 },
                        device_id: DeviceId::parse(id).ok()?,
                        secret: OobSecret::parse(secret).ok()?,
                        ca: fingerprint,
                    };
                    Some(idprov_labels::Label {
                        device_id: id.clone(),
                        uri: label.to_uri(),
                    })
                })
                .collect();
            write_labels(sheet, items)?;
        }
    }
    if conn.json {
        output::json(&result);
    } else {
        let verb = if dry_run {
            "would be accepted"
        } else {
            "accepted"
        };
        println!(
            "{} rows {verb}, {} replacing an existing secret, {} rejected{}",
            result.accepted,
            result.replaced,
            result.rejected.len(),
            if dry_run {
                " (dry run: nothing changed)"
            } else {
                ""
            }
        );
        for r in &result.rejected {
            let line = r
                .line
                .map_or_else(|| format!("row {}", r.index), |l| format!("line {l}"));
            let id = if r.device_id.is_empty() {
                String::new()
            } else {
                format!(" ({})", output::safe(&r.device_id))
            };
            eprintln!("{}: {line}{id}: {}", file.display(), output::safe(&r.error));
        }
    }
    if result.rejected.is_empty() {
        Ok(())
    } else {
        Err(Failure {
            code: 1,
            message: match result.rejected.len() {
                1 => "1 row was rejected".to_owned(),
                n => format!("{n} rows were rejected"),
            },
        })
    }
}

pub async fn export(
    out: Option<PathBuf>,
    with_secrets: bool,
    conn: Connection,
) -> Result<(), Failure> {
    let rows = connect(&conn)?.export(with_secrets).await?;
    let csv = secrets_csv(
        rows.iter().map(|r| {
            [
                r.device_id.as_str(),
                r.oob_secret.as_deref().unwrap_or(""),
                r.valid_until.as_str(),
                "",
            ]
        }),
        false,
    )?;
    match out {
        Some(path) => write_new_private(&path, &csv)?,
        None if with_secrets && std::io::stdout().is_terminal() => {
            return Err(Failure::usage(
                "refusing to print secrets to a terminal; use --out FILE",
            ));
        }
        None => {
            use std::io::Write as _;
            let _ = std::io::stdout().lock().write_all(&csv);
        }
    }
    eprintln!(
        "{} secrets exported{}",
        rows.len(),
        if with_secrets {
            " with their values"
        } else {
            ""
        }
    );
    Ok(())
}
