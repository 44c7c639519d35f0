//! `idprov-bench`: the load generator and ceilings of idprov's performance
//! figures (README, "Performance").
//!
//! * `run` — ceilings (signatures/s, durable commits/s, a do-nothing rustls
//!   server), then the idprov server under OOB provisioning with a new TLS
//!   connection per device, a renewal storm over mutual TLS and waiting
//!   polls, with cfssl as the reference peer; resumption off throughout.
//! * `soak` — sustained provisioning and renewal from many loopback source
//!   addresses while 127.0.0.2 floods; throughput, errors, latency and
//!   server memory per minute.
//! * `ca-keys` — certificate issuance with the CA key in a file, an
//!   encrypted file and a PKCS#11 token, side by side.
//! * `noop-server` — the do-nothing server `run` starts as a child.

mod cakeys;
mod ceilings;
mod fleet;
mod load;
mod noop;
mod phase;
mod procstat;
mod run;
mod servers;
mod soak;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "idprov-bench",
    version,
    about = "idprov load generator and ceilings"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure ceilings, the idprov server and cfssl in one run.
    Run(run::RunArgs),
    /// Sustained provisioning and renewal for minutes while flooding from a
    /// second address; memory over time.
    Soak(soak::SoakArgs),
    /// Certificate issuance with the CA key in a file, an encrypted file and
    /// a PKCS#11 token, side by side (bench/cakeys.sh).
    CaKeys(cakeys::CaKeysArgs),
    /// Serve TLS and answer every request with 200 (started by `run`).
    NoopServer {
        /// Address to listen on.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Certificate chain (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Private key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// Verify client certificates against this CA (PEM).
        #[arg(long)]
        client_ca: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Soak(args) => soak::soak(args).await,
            Command::CaKeys(args) => cakeys::ca_keys(args),
            Command::NoopServer {
                listen,
                cert,
                key,
                client_ca,
            } => noop::serve(listen, &cert, &key, client_ca.as_deref()).await,
        }
    })
}
