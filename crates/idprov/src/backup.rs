//! `idprov backup` and `idprov restore`.

use std::path::{Path, PathBuf};

use idprov_server::ServerConfig;
use idprov_server::backup::{self, BackupError, Manifest};

use crate::{Failure, output};

/// The configuration whose data directory is meant: `--data-dir` wins over
/// the file's (or the default) `data_dir`.
pub(crate) fn config_for(
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
) -> Result<ServerConfig, Failure> {
    let raw = idprov_server::config::read(config.as_deref()).map_err(Failure::usage)?;
    let mut config = raw.validate().map_err(Failure::usage)?;
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    Ok(config)
}

fn failure(e: BackupError) -> Failure {
    match e {
        BackupError::Target(_) | BackupError::Invalid(_) => Failure::usage(e),
        BackupError::Io { .. } | BackupError::Database(_) => Failure {
            code: 1,
            message: e.to_string(),
        },
    }
}

fn summary(m: &Manifest) -> String {
    format!(
        "{} files; {} devices, {} certificates, {} audit entries (chain verified); schema {}",
        m.files.len(),
        m.database.devices,
        m.database.certificates,
        m.database.audit_entries,
        m.database.schema_version
    )
}

fn warn_external(m: &Manifest) {
    for p in &m.not_included {
        eprintln!(
            "note: {} is outside the data directory and not in the backup; keep a copy of it too",
            p.display()
        );
    }
    for k in &m.keys_not_copied {
        eprintln!("not copied: {k}");
    }
}

pub fn backup(
    dest: &Path,
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
    json: bool,
) -> Result<(), Failure> {
    let config = config_for(data_dir, config)?;
    let manifest =
        backup::backup(&config, dest, time::OffsetDateTime::now_utc()).map_err(failure)?;
    warn_external(&manifest);
    if json {
        output::json(&manifest);
    } else {
        println!(
            "backed up {} to {}: {}",
            config.data_dir.display(),
            dest.display(),
            summary(&manifest)
        );
        let key = match config.ca {
            idprov_server::config::CaSource::Generated {
                key: idprov_server::config::CaKeyStore::Token(_),
                ..
            } => {
                "it holds no CA private key (the token keeps it): it restores only beside that token"
            }
            _ if manifest
                .keys_not_copied
                .iter()
                .any(|k| k.contains("passphrase")) =>
            {
                "it holds the CA's private key, encrypted: it restores only with the passphrase"
            }
            _ => "it holds the CA's private key: store it as safely as the server itself",
        };
        println!("{key}");
    }
    Ok(())
}

pub fn restore(
    from: &Path,
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
    check: bool,
    json: bool,
) -> Result<(), Failure> {
    let manifest = if check {
        backup::verify(from).map_err(failure)?
    } else {
        let config = config_for(data_dir, config)?;
        let manifest = backup::restore(from, &config.data_dir).map_err(failure)?;
        if !json {
            println!(
                "restored {} (taken {} from {}) into {}",
                from.display(),
                manifest.created,
                manifest.source.display(),
                config.data_dir.display()
            );
        }
        manifest
    };
    warn_external(&manifest);
    if json {
        output::json(&manifest);
    } else {
        if check {
            println!(
                "{} is a complete backup, taken {}",
                from.display(),
                manifest.created
            );
        }
        println!("{}", summary(&manifest));
    }
    Ok(())
}
