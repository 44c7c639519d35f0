//! `idprov`: the server and its command-line tool. Thin: parse, validate,
//! call the libraries, print, and exit with a code scripts can rely on:
//! 0 success, 1 refused by the server, 2 usage, 3 unreachable,
//! 4 credentials missing or refused.

mod admin;
mod audit;
mod backup;
mod bulk;
mod ca;
mod cli;
mod credentials;
mod db;
mod device;
mod files;
mod output;
mod serve;

use std::process::ExitCode;

/// jemalloc, not the system's malloc: a server that held thousands of
/// connections (or sign-ins) gives the memory back once they are gone —
/// its background thread purges freed pages — where glibc's arenas keep it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::Parser;

use crate::cli::{Cli, Command};

/// A command failed; the message is printed, the code returned.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: u8,
    /// What to print.
    pub message: String,
}

impl Failure {
    /// A usage or local-input problem (exit 2).
    pub fn usage(e: impl std::fmt::Display) -> Failure {
        Failure {
            code: 2,
            message: e.to_string(),
        }
    }

    /// Missing or unreadable credentials (exit 4).
    pub fn credentials(e: impl std::fmt::Display) -> Failure {
        Failure {
            code: 4,
            message: e.to_string(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Oob(cmd) => admin::oob(cmd).await,
            Command::Devices(cmd) => admin::devices(cmd).await,
            Command::Requests(cmd) => admin::requests(cmd).await,
            Command::Status { device_id, conn } => admin::status(device_id, conn).await,
            Command::CaFingerprint {
                data_dir,
                config,
                json,
            } => admin::ca_fingerprint(data_dir, config, json),
            Command::Admin(cmd) => credentials::admin(cmd).await,
            Command::Certs(cmd) => credentials::certs(cmd).await,
            Command::Audit(cmd) => audit::audit(cmd).await,
            Command::Crl { out, pem, conn } => audit::crl(out, pem, conn).await,
            Command::Db(cmd) => db::db(cmd).await,
            Command::Ca(cmd) => ca::ca(cmd).await,
            Command::Backup {
                dest,
                data_dir,
                config,
                json,
            } => backup::backup(&dest, data_dir, config, json),
            Command::Restore {
                backup,
                data_dir,
                config,
                check,
                json,
            } => backup::restore(&backup, data_dir, config, check, json),
            Command::Discover { timeout, json } => device::discover_command(timeout, json).await,
            Command::Device(cmd) => device::device(cmd).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
