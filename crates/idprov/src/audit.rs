//! `idprov audit list|export|verify` and `idprov crl`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use idprov_proto::admin::{AuditView, CheckpointView};
use idprov_store::{AuditEntry, Checkpoint, verify_log};
use serde::{Deserialize, Serialize};

use crate::Failure;
use crate::admin::connect;
use crate::cli::{AuditCommand, Connection};
use crate::files::write_new_private;
use crate::output;

/// One line of an export: an entry or a checkpoint.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum ExportLine {
    Entry(AuditView),
    Checkpoint(CheckpointView),
}

fn to_entry(v: &AuditView) -> AuditEntry {
    AuditEntry {
        seq: v.seq,
        at: v.at,
        actor: v.actor.clone(),
        event: v.event.clone(),
        device_id: v.device_id.clone(),
        detail: v.detail.clone(),
        prev_hash: v.prev_hash.clone(),
        hash: v.hash.clone(),
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Checks the chain and every checkpoint; the error names the first bad entry.
pub fn verify(
    entries: &[AuditView],
    checkpoints: &[CheckpointView],
    signers: &[Vec<u8>],
) -> Result<String, String> {
    let chain: Vec<AuditEntry> = entries.iter().map(to_entry).collect();
    let checkpoints = checkpoints
        .iter()
        .map(|cp| {
            Ok(Checkpoint {
                seq: cp.seq,
                head_hash: cp.head_hash.clone(),
                at: cp.at,
                signer: cp.signer.clone(),
                signature: unhex(&cp.signature).ok_or_else(|| {
                    format!("checkpoint at entry {} has a malformed signature", cp.seq)
                })?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    verify_log(&chain, &checkpoints, |message, signature| {
        signers
            .iter()
            .any(|ca| idprov_ca::verify_signed_by(ca, message, signature))
    })
}

fn read_export(path: &Path) -> Result<(Vec<AuditView>, Vec<CheckpointView>), Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    let (mut entries, mut checkpoints) = (Vec::new(), Vec::new());
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<ExportLine>(line) {
            Ok(ExportLine::Entry(e)) => entries.push(e),
            Ok(ExportLine::Checkpoint(c)) => checkpoints.push(c),
            Err(e) => {
                return Err(Failure::usage(format!(
                    "{}: line {}: {e}",
                    path.display(),
                    n + 1
                )));
            }
        }
    }
    Ok((entries, checkpoints))
}

pub async fn audit(cmd: AuditCommand) -> Result<(), Failure> {
    match cmd {
        AuditCommand::List {
            device_id,
            event,
            actor,
            since,
            until,
            limit,
            conn,
        } => {
            let mut filter: Vec<(&str, String)> = Vec::new();
            for (k, v) in [
                ("deviceID", device_id),
                ("event", event),
                ("actor", actor),
                ("since", since),
                ("until", until),
            ] {
                if let Some(v) = v {
                    filter.push((k, v));
                }
            }
            let entries = connect(&conn)?.audit(&filter, limit).await?;
            if conn.json {
                output::json(&entries);
            } else {
                output::table(
                    ["SEQ", "TIME", "ACTOR", "EVENT", "DEVICE", "DETAIL"],
                    entries
                        .iter()
                        .map(|e| {
                            [
                                e.seq.to_string(),
                                e.time.clone(),
                                e.actor.clone(),
                                e.event.clone(),
                                e.device_id.clone().unwrap_or_default(),
                                e.detail.to_string(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
            Ok(())
        }
        AuditCommand::Export { out, conn } => {
            let client = connect(&conn)?;
            // Sign the head first, so the export ends at a checkpoint.
            client.checkpoint_now().await?;
            let entries = client.audit(&[], None).await?;
            let checkpoints = client.checkpoints().await?;
            let mut text = String::new();
            for e in entries {
                text.push_str(
                    &serde_json::to_string(&ExportLine::Entry(e))
                        .map_err(|e| Failure::usage(e.to_string()))?,
                );
                text.push('\n');
            }
            for c in checkpoints {
                text.push_str(
                    &serde_json::to_string(&ExportLine::Checkpoint(c))
                        .map_err(|e| Failure::usage(e.to_string()))?,
                );
                text.push('\n');
            }
            match out {
                Some(p) => write_new_private(&p, text.as_bytes())?,
                None => print!("{text}"),
            }
            Ok(())
        }
        AuditCommand::Verify { file, conn } => {
            let ca = crate::admin::local_signer_certs(&conn)?;
            let (entries, checkpoints) = match &file {
                Some(path) => read_export(path)?,
                None => {
                    let client = connect(&conn)?;
                    (client.audit(&[], None).await?, client.checkpoints().await?)
                }
            };
            match verify(&entries, &checkpoints, &ca) {
                Ok(summary) => {
                    println!("{summary}");
                    Ok(())
                }
                Err(problem) => Err(Failure {
                    code: 1,
                    message: problem,
                }),
            }
        }
    }
}

pub async fn crl(out: Option<PathBuf>, pem: bool, conn: Connection) -> Result<(), Failure> {
    let bytes = connect(&conn)?.crl(pem).await?;
    match out {
        Some(p) => std::fs::write(&p, &bytes)
            .map_err(|e| Failure::usage(format!("{}: {e}", p.display())))?,
        None if !pem && std::io::stdout().is_terminal() => {
            return Err(Failure::usage(
                "the DER CRL is binary: use --pem or --out FILE",
            ));
        }
        None => {
            use std::io::Write;
            let _ = std::io::stdout().write_all(&bytes);
        }
    }
    Ok(())
}
