//! `idprov ca encrypt-key | rollover | finish-rollover | init --intermediate
//! | import`: the data directory's CA, changed while the server is stopped
//! (they take the data directory's lock), each change audited in the
//! registry.

use std::time::SystemTime;

use idprov_proto::UnixTime;
use idprov_server::ServerConfig;
use idprov_server::cakeys::{self, CaKeyError};
use idprov_server::config::Database;
use idprov_server::datadir::{DataDir, DataDirError, files};
use idprov_store::{Actor, AuditEvent, AuditLog, AuditRecord, PostgresRegistry, SqliteRegistry};

use crate::backup::config_for;
use crate::cli::{CaCommand, CaTarget};
use crate::{Failure, output};

fn failure(e: CaKeyError) -> Failure {
    match e {
        CaKeyError::State(_) | CaKeyError::Secret(_) => Failure::usage(e),
        CaKeyError::File { .. } | CaKeyError::Ca(_) => Failure {
            code: 1,
            message: e.to_string(),
        },
    }
}

/// The configuration and its data directory, locked: a running server
/// holds the lock, and these commands change what it loaded at start.
fn open(target: &CaTarget) -> Result<(ServerConfig, DataDir), Failure> {
    let config = config_for(target.data_dir.clone(), target.config.clone())?;
    let dir = DataDir::open(&config.data_dir, true).map_err(|e| match e {
        DataDirError::Locked(p) => Failure::usage(format!(
            "{} is in use by a running idprov server: stop it first (these commands change the CA it loaded)",
            p.display()
        )),
        other => Failure::usage(other),
    })?;
    Ok((config, dir))
}

/// Appends `event` to the registry's audit log.
async fn audit(config: &ServerConfig, dir: &DataDir, event: AuditEvent) -> Result<(), Failure> {
    let fail = |e: idprov_store::StoreError| Failure {
        code: 1,
        message: format!("the change is made, but its audit entry failed: {e}"),
    };
    let record = AuditRecord::new(
        UnixTime::from(SystemTime::now()),
        Actor::named("admin", "idprov-ca"),
        event,
        None,
    );
    match &config.database {
        Database::Sqlite => {
            let path = dir.path(files::DATABASE);
            let registry =
                tokio::task::block_in_place(|| SqliteRegistry::open(&path)).map_err(fail)?;
            registry.append_audit(record).await.map_err(fail)?;
            tokio::task::block_in_place(|| registry.close());
        }
        Database::Postgres(url) => {
            let registry = PostgresRegistry::connect(url).await.map_err(fail)?;
            registry.append_audit(record).await.map_err(fail)?;
            registry.close();
        }
    }
    Ok(())
}

pub async fn ca(cmd: CaCommand) -> Result<(), Failure> {
    let now = SystemTime::now();
    match cmd {
        CaCommand::EncryptKey { target } => {
            let (config, dir) = open(&target)?;
            let fingerprint = cakeys::encrypt_key(&config, &dir).map_err(failure)?;
            audit(
                &config,
                &dir,
                AuditEvent::CaKeyEncrypted {
                    fingerprint: fingerprint.clone(),
                },
            )
            .await?;
            if target.json {
                output::json(&serde_json::json!({"encrypted": true, "fingerprint": fingerprint}));
            } else {
                println!(
                    "encrypted the CA key (CA {fingerprint}); the server needs the passphrase at every start"
                );
            }
        }
        CaCommand::Rollover { target } => {
            let (config, dir) = open(&target)?;
            let r = cakeys::rollover(&config, &dir, now).map_err(failure)?;
            audit(
                &config,
                &dir,
                AuditEvent::CaRolloverStarted {
                    previous: r.previous.clone(),
                    new: r.new.clone(),
                    storage: r.storage.to_string(),
                },
            )
            .await?;
            if target.json {
                output::json(&serde_json::json!({
                    "previous": r.previous, "new": r.new, "key": r.storage.to_string(),
                }));
            } else {
                println!("new CA {} (key: {})", r.new, r.storage);
                println!(
                    "previous CA {} stays trusted until idprov ca finish-rollover",
                    r.previous
                );
                println!(
                    "start the server: it issues with the new CA; give services the transition bundle {} (both CAs)",
                    dir.path(files::CA_CHAIN).display()
                );
            }
        }
        CaCommand::FinishRollover { target } => {
            let (config, dir) = open(&target)?;
            let (retired, current) =
                cakeys::finish_rollover(&config, &dir, now).map_err(failure)?;
            audit(
                &config,
                &dir,
                AuditEvent::CaRolloverFinished {
                    retired: retired.clone(),
                    current: current.clone(),
                },
            )
            .await?;
            if target.json {
                output::json(&serde_json::json!({"retired": retired, "current": current}));
            } else {
                println!("retired CA {retired}: its key is destroyed, it is trusted no more");
                println!(
                    "CA {current} alone from the next start; devices that did not renew meanwhile go back to the OOB path"
                );
            }
        }
        CaCommand::Init {
            intermediate: _,
            target,
        } => {
            let (config, dir) = open(&target)?;
            let csr = cakeys::init_intermediate(&config, &dir).map_err(failure)?;
            if target.json {
                output::json(&serde_json::json!({
                    "csr": csr, "file": dir.path(files::CA_CSR),
                }));
            } else {
                print!("{csr}");
                eprintln!(
                    "have the offline root sign this request (also in {}) as a CA with pathlen 0, then: idprov ca import SIGNED.pem --chain ROOT.pem",
                    dir.path(files::CA_CSR).display()
                );
            }
        }
        CaCommand::Import {
            cert,
            chain,
            target,
        } => {
            let (config, dir) = open(&target)?;
            let read = |p: &std::path::Path| {
                std::fs::read_to_string(p)
                    .map_err(|e| Failure::usage(format!("{}: {e}", p.display())))
            };
            let (cert_pem, chain_pem) = (read(&cert)?, read(&chain)?);
            let (fingerprint, root) =
                cakeys::import_intermediate(&config, &dir, &cert_pem, &chain_pem, now)
                    .map_err(failure)?;
            audit(
                &config,
                &dir,
                AuditEvent::CaIntermediateImported {
                    fingerprint: fingerprint.clone(),
                    root: root.clone(),
                },
            )
            .await?;
            if target.json {
                output::json(&serde_json::json!({"fingerprint": fingerprint, "root": root}));
            } else {
                println!("imported intermediate CA {fingerprint} (root {root})");
                println!("devices receive the chain; they may pin the root's fingerprint");
            }
        }
    }
    Ok(())
}
