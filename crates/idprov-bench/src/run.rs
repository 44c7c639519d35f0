//! `idprov-bench run`: ceilings, then the idprov server under OOB
//! provisioning, a renewal storm and waiting polls, each beside the
//! do-nothing server and cfssl with the same connection pattern.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use idprov_proto::{ProvisionResponse, ProvisionStatus};
use rustls_pki_types::CertificateDer;

use crate::fleet::{self, Device};
use crate::load::{self, ErrorKind, Target};
use crate::phase::{self, PhaseReport, Work};
use crate::servers;

/// What to run.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Devices provisioned over the OOB path, then renewed in the storm.
    #[arg(long, default_value_t = 10_000)]
    pub devices: usize,
    /// Concurrent connections of the OOB phases.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Concurrent connections of the renewal storm.
    #[arg(long, default_value_t = 500)]
    pub renew_concurrency: usize,
    /// First contacts: devices never seen before, each asking once and
    /// recorded in the waiting queue.
    #[arg(long, default_value_t = 10_000)]
    pub first_contact: usize,
    /// Waiting polls (unregistered devices asking again).
    #[arg(long, default_value_t = 5_000)]
    pub waiting: usize,
    /// The server's configuration (limits raised for one source address).
    #[arg(long, default_value = "bench/bench.toml")]
    pub config: PathBuf,
    /// The `idprov` binary. Default: next to this one.
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Skip the cfssl reference.
    #[arg(long)]
    pub no_cfssl: bool,
    /// Skip the two-replica PostgreSQL run.
    #[arg(long)]
    pub no_postgres: bool,
    /// Seconds for each in-process ceiling (signatures, commits).
    #[arg(long, default_value_t = 3)]
    pub ceiling_seconds: u64,
    /// Also write the report here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The whole run's report.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// When and where.
    pub machine: Machine,
    /// The server limits it ran under.
    pub limits: serde_json::Value,
    /// ECDSA P-256 signatures per second: one thread, all cores.
    pub signatures_per_second: (f64, f64),
    /// Durable one-row SQLite commits per second (WAL, synchronous=FULL).
    pub durable_commits_per_second: f64,
    /// Each phase.
    pub phases: Vec<PhaseReport>,
}

/// The machine a run was on.
#[derive(Debug, serde::Serialize)]
pub struct Machine {
    /// RFC 3339.
    pub date: String,
    /// Cores available.
    pub cores: usize,
    /// The idprov version.
    pub version: String,
}

/// The certificate chain each device received in the OOB phase.
type Chains = Arc<Vec<Mutex<Option<Vec<CertificateDer<'static>>>>>>;

/// The answer, when it parses and has the wanted status.
pub(crate) fn expect_status(
    body: &[u8],
    want: ProvisionStatus,
) -> Result<ProvisionResponse, ErrorKind> {
    match ProvisionResponse::from_json(body) {
        Ok(r) if r.status == want => Ok(r),
        _ => Err(ErrorKind::Answer),
    }
}

/// Request `i` is device `i` (modulo the fleet) asking without a secret,
/// answered "waiting": a first contact while `i` is below the fleet's size,
/// a poll after.
fn unregistered_asks(
    addr: std::net::SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    devices: &Arc<Vec<Device>>,
) -> Work {
    let (target, tls, devices) = (servers::target(addr), tls.clone(), devices.clone());
    Arc::new(move |i| {
        let (target, tls, devices) = (target.clone(), tls.clone(), devices.clone());
        Box::pin(async move {
            let n = devices.len();
            let body = load::request(
                &target,
                &tls,
                "POST",
                "/idprov/provreq",
                devices[i % n].plain_body.clone(),
            )
            .await?;
            expect_status(&body, ProvisionStatus::Waiting).map(|_| ())
        })
    })
}

/// Prints a phase's line, and where the server's CPU went.
fn print_phase(report: &PhaseReport) {
    println!("{}", report.line());
    let profile = report.profile_line();
    if !profile.is_empty() {
        println!("    server CPU by thread: {profile}");
    }
}

/// Runs everything and prints the report.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let server_bin = crate::servers::server_bin(args.server_bin.as_deref())?;
    let limits = limits_of(&args.config)?;
    println!("server limits (from {}):", args.config.display());
    println!("{}", serde_json::to_string_pretty(&limits)?);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tmp = tempfile::tempdir()?;

    println!("\nceilings ({} s each) ...", args.ceiling_seconds);
    let run_for = Duration::from_secs(args.ceiling_seconds);
    let signatures =
        tokio::task::spawn_blocking(move || crate::ceilings::signatures_per_second(run_for, cores))
            .await??;
    let commits = {
        let dir = tmp.path().to_owned();
        tokio::task::spawn_blocking(move || {
            crate::ceilings::durable_commits_per_second(&dir, run_for)
        })
        .await??
    };
    println!(
        "ECDSA P-256 signatures/s: {:.0} on one thread, {:.0} on {cores}",
        signatures.0, signatures.1
    );
    println!("durable SQLite commits/s (WAL, synchronous=FULL, one row): {commits:.0}");

    println!(
        "\npreparing {} devices (+{} waiting) ...",
        args.devices,
        args.waiting.min(1000) + args.first_contact
    );
    let devices = Arc::new(fleet::generate("bench", args.devices).await?);
    let waiting_devices = Arc::new(fleet::generate("poll", args.waiting.clamp(1, 1000)).await?);
    let first_devices = Arc::new(fleet::generate("first", args.first_contact.max(1)).await?);

    let data = tmp.path().join("server");
    let server = servers::idprov(
        &server_bin,
        &args.config,
        &data,
        &tmp.path().join("server.log"),
    )
    .await?;
    let pid = phase::Measured::One(server.pid());
    let roots = servers::roots_of(&data.join("ca-chain.pem"))?;
    register_secrets(&server, &data, &devices).await?;

    let anon = load::client_config(&roots, None)?;
    let mut phases = Vec::new();
    println!("\n{}", PhaseReport::header());

    // The ceiling for the OOB path: the same generator, connection pattern
    // and certificate against a server that does nothing.
    let noop = servers::noop(&data.join("server.pem"), &data.join("server.key"), None)?;
    let noop_oob = phase::run(
        "noop (no client cert)",
        args.devices,
        args.concurrency,
        phase::Measured::One(noop.pid()),
        post_work(
            servers::target(noop.addr),
            anon.clone(),
            devices.clone(),
            |d| d.oob_body.clone(),
        ),
    )
    .await;
    println!("{}", noop_oob.line());
    drop(noop);
    phase::settle().await;

    // OOB provisioning: a new connection per device, every certificate recorded.
    let chains: Chains = Arc::new((0..args.devices).map(|_| Mutex::new(None)).collect());
    let oob = {
        let (target, tls, devices, chains) = (
            servers::target(server.addr),
            anon.clone(),
            devices.clone(),
            chains.clone(),
        );
        let work: Work = Arc::new(move |i| {
            let (target, tls, devices, chains) =
                (target.clone(), tls.clone(), devices.clone(), chains.clone());
            Box::pin(async move {
                let body = load::request(
                    &target,
                    &tls,
                    "POST",
                    "/idprov/provreq",
                    devices[i].oob_body.clone(),
                )
                .await?;
                let resp = expect_status(&body, ProvisionStatus::Approved)?;
                let chain = idprov_ca::pem::parse_certificates(&resp.client_cert)
                    .map_err(|_| ErrorKind::Answer)?;
                if let Ok(mut slot) = chains[i].lock() {
                    *slot = Some(chain);
                }
                Ok(())
            })
        });
        phase::run(
            "idprov oob provision",
            args.devices,
            args.concurrency,
            pid.clone(),
            work,
        )
        .await
        .against(&noop_oob)
    };
    print_phase(&oob);
    phase::settle().await;

    // First contact: every request is a device never seen, so every one is
    // recorded in the waiting queue before its answer.
    let first = phase::run(
        "idprov first contact (waiting)",
        first_devices.len(),
        args.concurrency,
        pid.clone(),
        unregistered_asks(server.addr, &anon, &first_devices),
    )
    .await
    .against(&noop_oob);
    print_phase(&first);
    phase::settle().await;

    // Client configurations for the renewal storm, built before it starts.
    let mtls: Arc<Vec<Option<Arc<rustls::ClientConfig>>>> = Arc::new(
        devices
            .iter()
            .zip(chains.iter())
            .map(|(d, c)| {
                let chain = c.lock().ok()?.clone()?;
                d.mtls_config(&roots, chain).ok()
            })
            .collect(),
    );
    let with_certs = mtls.iter().filter(|c| c.is_some()).count();
    let noop_mtls_proc = servers::noop(
        &data.join("server.pem"),
        &data.join("server.key"),
        Some(&data.join("ca-chain.pem")),
    )?;
    let noop_mtls = phase::run(
        "noop (mutual TLS)",
        args.devices,
        args.renew_concurrency,
        phase::Measured::One(noop_mtls_proc.pid()),
        mtls_work(
            servers::target(noop_mtls_proc.addr),
            mtls.clone(),
            devices.clone(),
            None,
        ),
    )
    .await;
    println!("{}", noop_mtls.line());
    drop(noop_mtls_proc);
    phase::settle().await;

    let renew = phase::run(
        "idprov renewal storm",
        args.devices,
        args.renew_concurrency,
        pid.clone(),
        mtls_work(
            servers::target(server.addr),
            mtls.clone(),
            devices.clone(),
            Some(ProvisionStatus::Approved),
        ),
    )
    .await
    .against(&noop_mtls);
    print_phase(&renew);
    phase::settle().await;

    let waiting = phase::run(
        "idprov waiting polls",
        args.waiting,
        args.concurrency,
        pid,
        unregistered_asks(server.addr, &anon, &waiting_devices),
    )
    .await
    .against(&noop_oob);
    print_phase(&waiting);
    phases.extend([
        noop_oob.clone(),
        oob,
        first,
        noop_mtls.clone(),
        renew,
        waiting,
    ]);

    if args.no_postgres {
        println!("(PostgreSQL replicas skipped)");
    } else {
        match replicas_phase(&server_bin, &args, tmp.path(), &devices, &noop_oob).await? {
            Some(p) => phases.push(p),
            None => println!("(PostgreSQL not installed: apt-get install postgresql)"),
        }
    }
    if args.no_cfssl {
        println!("(cfssl skipped)");
    } else {
        match cfssl_phases(
            &tmp.path().join("cfssl"),
            &data,
            &devices,
            &chains,
            &args,
            &noop_oob,
            &noop_mtls,
        )
        .await?
        {
            Some(p) => phases.extend(p),
            None => println!("(cfssl not installed: apt-get install golang-cfssl)"),
        }
    }
    if with_certs < args.devices {
        println!(
            "note: {} devices had no certificate for the renewal phases",
            args.devices - with_certs
        );
    }
    server.terminate();

    let report = Report {
        machine: Machine {
            date: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            cores,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        limits,
        signatures_per_second: signatures,
        durable_commits_per_second: commits,
        phases,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
        println!("\nreport written to {}", path.display());
    }
    Ok(())
}

/// OOB provisioning against two replicas sharing a throw-away PostgreSQL
/// database and one data directory, devices alternating between them. CPU
/// is that of both replicas and every PostgreSQL process.
async fn replicas_phase(
    server_bin: &Path,
    args: &RunArgs,
    tmp: &Path,
    devices: &Arc<Vec<Device>>,
    noop_oob: &PhaseReport,
) -> anyhow::Result<Option<PhaseReport>> {
    let Some(url) = idprov_testkit::postgres::fresh_database("bench").await else {
        return Ok(None);
    };
    let data = tmp.join("replicas");
    let env = [("IDPROV_DATABASE_URL", url.as_str())];
    let a = servers::idprov_with(
        server_bin,
        &args.config,
        &data,
        &tmp.join("replica-a.log"),
        &env,
    )
    .await?;
    let b = servers::idprov_with(
        server_bin,
        &args.config,
        &data,
        &tmp.join("replica-b.log"),
        &env,
    )
    .await?;
    register_secrets(&a, &data, devices).await?;
    let roots = servers::roots_of(&data.join("ca-chain.pem"))?;
    let anon = load::client_config(&roots, None)?;
    let targets = [servers::target(a.addr), servers::target(b.addr)];
    let work: Work = {
        let devices = devices.clone();
        Arc::new(move |i| {
            let (target, tls, devices) = (targets[i % 2].clone(), anon.clone(), devices.clone());
            Box::pin(async move {
                let body = load::request(
                    &target,
                    &tls,
                    "POST",
                    "/idprov/provreq",
                    devices[i].oob_body.clone(),
                )
                .await?;
                expect_status(&body, ProvisionStatus::Approved).map(|_| ())
            })
        })
    };
    let report = phase::run(
        "postgres x2 oob provision",
        args.devices,
        args.concurrency,
        phase::Measured::Group {
            fixed: vec![a.pid(), b.pid()],
            extra: || crate::procstat::pids_named("postgres"),
        },
        work,
    )
    .await
    .against(noop_oob);
    println!("{}", report.line());
    a.terminate();
    b.terminate();
    Ok(Some(report))
}

/// Registers every device's secret with one bulk import (not timed).
pub async fn register_secrets(
    server: &servers::Proc,
    data: &Path,
    devices: &Arc<Vec<Device>>,
) -> anyhow::Result<()> {
    let admin = idprov_client::AdminClient::new(
        &server.addr.to_string(),
        &idprov_client::Credentials::from_files(
            &data.join("admin.pem"),
            &data.join("admin.key"),
            &data.join("ca-chain.pem"),
        )?,
    )?;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let rows = devices.clone();
    let feeder = tokio::spawn(async move {
        for chunk in rows.chunks(1000) {
            let mut buf = Vec::new();
            for d in chunk {
                serde_json::to_writer(
                    &mut buf,
                    &serde_json::json!({"deviceID": d.id, "oobSecret": d.secret}),
                )?;
                buf.push(b'\n');
            }
            if tx.send(Bytes::from(buf)).await.is_err() {
                break;
            }
        }
        Ok::<_, serde_json::Error>(())
    });
    let result = admin.import(rx, false, true).await?;
    feeder.await??;
    anyhow::ensure!(
        result.accepted == devices.len() as u64,
        "registered {} of {} secrets",
        result.accepted,
        devices.len()
    );
    Ok(())
}

/// Posts each device's `body` on a new connection; any 200 counts.
fn post_work(
    target: Target,
    tls: Arc<rustls::ClientConfig>,
    devices: Arc<Vec<Device>>,
    body: fn(&Device) -> Bytes,
) -> Work {
    Arc::new(move |i| {
        let (target, tls, devices) = (target.clone(), tls.clone(), devices.clone());
        Box::pin(async move {
            load::request(&target, &tls, "POST", "/idprov/provreq", body(&devices[i]))
                .await
                .map(|_| ())
        })
    })
}

/// Each device, over mutual TLS with its own certificate, posts its plain
/// request; with `want`, the answer must have that status.
fn mtls_work(
    target: Target,
    configs: Arc<Vec<Option<Arc<rustls::ClientConfig>>>>,
    devices: Arc<Vec<Device>>,
    want: Option<ProvisionStatus>,
) -> Work {
    Arc::new(move |i| {
        let (target, configs, devices) = (target.clone(), configs.clone(), devices.clone());
        Box::pin(async move {
            let Some(tls) = configs[i].clone() else {
                return Err(ErrorKind::Handshake);
            };
            let body = load::request(
                &target,
                &tls,
                "POST",
                "/idprov/provreq",
                devices[i].plain_body.clone(),
            )
            .await?;
            match want {
                Some(status) => expect_status(&body, status).map(|_| ()),
                None => Ok(()),
            }
        })
    })
}

#[allow(clippy::too_many_arguments)]
async fn cfssl_phases(
    dir: &Path,
    data: &Path,
    devices: &Arc<Vec<Device>>,
    chains: &Chains,
    args: &RunArgs,
    noop_oob: &PhaseReport,
    noop_mtls: &PhaseReport,
) -> anyhow::Result<Option<Vec<PhaseReport>>> {
    let plain_dir = dir.join("plain");
    let Some(plain) = servers::cfssl(&plain_dir, None).await? else {
        return Ok(None);
    };
    let csrs: Arc<Vec<Bytes>> = Arc::new(
        devices
            .iter()
            .map(|d| d.csr_body())
            .collect::<anyhow::Result<_>>()?,
    );
    let cfssl_roots = servers::cfssl_roots(&plain_dir)?;
    let tls = load::client_config(&cfssl_roots, None)?;
    let sign = |target: Target, configs: Arc<Vec<Arc<rustls::ClientConfig>>>| -> Work {
        let csrs = csrs.clone();
        Arc::new(move |i| {
            let (target, tls, csrs) = (
                target.clone(),
                configs[i % configs.len()].clone(),
                csrs.clone(),
            );
            Box::pin(async move {
                let body =
                    load::request(&target, &tls, "POST", "/api/v1/cfssl/sign", csrs[i].clone())
                        .await?;
                let v: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|_| ErrorKind::Answer)?;
                if v["success"] == true && v["result"]["certificate"].is_string() {
                    Ok(())
                } else {
                    Err(ErrorKind::Answer)
                }
            })
        })
    };
    let plain_report = phase::run(
        "cfssl sign (no client cert)",
        args.devices,
        args.concurrency,
        phase::Measured::One(plain.pid()),
        sign(servers::target(plain.addr), Arc::new(vec![tls])),
    )
    .await
    .against(noop_oob);
    println!("{}", plain_report.line());
    drop(plain);
    phase::settle().await;

    // With mutual TLS: the devices present their idprov certificates, which
    // cfssl checks against the idprov CA.
    let mutual_dir = dir.join("mutual");
    let Some(mutual) = servers::cfssl(&mutual_dir, Some(&data.join("ca-chain.pem"))).await? else {
        return Ok(Some(vec![plain_report]));
    };
    let mutual_roots = servers::cfssl_roots(&mutual_dir)?;
    // The same device certificates; only the trusted roots are cfssl's.
    let configs: Vec<Arc<rustls::ClientConfig>> = devices
        .iter()
        .zip(chains.iter())
        .filter_map(|(d, c)| {
            let chain = c.lock().ok()?.clone()?;
            d.mtls_config(&mutual_roots, chain).ok()
        })
        .collect();
    anyhow::ensure!(
        !configs.is_empty(),
        "no device certificates for the cfssl mutual-TLS phase"
    );
    let mutual_report = phase::run(
        "cfssl sign (mutual TLS)",
        args.devices,
        args.renew_concurrency,
        phase::Measured::One(mutual.pid()),
        sign(servers::target(mutual.addr), Arc::new(configs)),
    )
    .await
    .against(noop_mtls);
    println!("{}", mutual_report.line());
    Ok(Some(vec![plain_report, mutual_report]))
}

/// The limits the server runs under, as its own configuration code reads them.
pub fn limits_of(config: &Path) -> anyhow::Result<serde_json::Value> {
    let c = idprov_server::config::read(Some(config))?.validate()?;
    Ok(serde_json::json!({
        "connections_per_source": c.source_connections,
        "connections_total": c.total_connections,
        "handshakes_per_second_per_source": c.handshake_rate,
        "handshake_burst": c.handshake_burst,
        "provisioning_per_second_per_source": c.provisioning_rate,
        "provisioning_burst": c.provisioning_burst,
        "waiting_per_source": c.waiting_caps.per_source,
        "waiting_total": c.waiting_caps.total,
        "tls_session_resumption": c.tls_session_resumption,
        "device_validity_seconds": c.device_validity.as_secs(),
    }))
}
