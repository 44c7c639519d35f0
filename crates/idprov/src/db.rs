//! `idprov db migrate`: a SQLite registry into PostgreSQL.

use std::path::PathBuf;

use idprov_server::datadir::files;
use idprov_store::{Actor, AuditEvent, AuditOf, AuditRecord, MigrationReport, PostgresRegistry};

use crate::cli::DbCommand;
use crate::{Failure, output};

pub async fn db(cmd: DbCommand) -> Result<(), Failure> {
    match cmd {
        DbCommand::Migrate {
            from,
            to,
            secrets_key_file,
            json,
        } => {
            let source = match from.strip_prefix("sqlite://") {
                Some(path) => PathBuf::from(path),
                None => {
                    let dir = PathBuf::from(&from);
                    if dir.is_dir() {
                        dir.join(files::DATABASE)
                    } else {
                        dir
                    }
                }
            };
            if !source.is_file() {
                return Err(Failure::usage(format!(
                    "{}: no SQLite registry there (give sqlite://PATH/idprov.db or the data directory)",
                    source.display()
                )));
            }
            if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
                return Err(Failure::usage(
                    "--to must be a postgres:// or postgresql:// URL",
                ));
            }
            let key_id = match &secrets_key_file {
                Some(path) => Some(
                    idprov_server::secrets::from_file(path, false)
                        .map_err(Failure::usage)?
                        .key_id()
                        .to_owned(),
                ),
                None => None,
            };
            let fail = |e: idprov_store::StoreError| Failure {
                code: 1,
                message: e.to_string(),
            };
            let registry = PostgresRegistry::connect(&to).await.map_err(fail)?;
            let now = idprov_proto::UnixTime::from(std::time::SystemTime::now());
            let from = source.display().to_string();
            let audit = AuditOf::one(move |report: &MigrationReport| {
                AuditRecord::new(
                    now,
                    Actor::named("admin", "idprov-db-migrate"),
                    AuditEvent::RegistryMigrated {
                        from,
                        tables: report.tables.clone(),
                        secrets_not_carried: report.secrets_not_carried,
                    },
                    None,
                )
            });
            let report = registry
                .import_sqlite(&source, key_id.as_deref(), audit)
                .await
                .map_err(fail)?;
            registry.close();
            if json {
                output::json(&report);
            } else {
                println!(
                    "copied {} into PostgreSQL and verified it:",
                    source.display()
                );
                for (table, n) in &report.tables {
                    println!("  {table:<18} {n}");
                }
                println!(
                    "audit chain: {} entries, verified, head {}",
                    report.audit_entries,
                    report.audit_head.as_deref().unwrap_or("(empty)")
                );
            }
            if report.secrets_not_carried > 0 {
                eprintln!(
                    "note: {} OOB secrets were not carried: {}",
                    report.secrets_not_carried,
                    if secrets_key_file.is_some() {
                        "they were sealed with another key (an earlier start without a persistent key)"
                    } else {
                        "without --secrets-key-file none can be (register them again, or re-run with the source's persistent key)"
                    }
                );
            }
            Ok(())
        }
    }
}
