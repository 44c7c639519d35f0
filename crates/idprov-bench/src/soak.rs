//! `idprov-bench soak`: sustained provisioning and renewal at a fixed rate
//! for a bounded time, from many loopback source addresses (127.0.1.1 to
//! 127.0.1.254, each within the default per-source limits), while 127.0.0.2
//! floods the server with new connections as fast as it can. Every minute it
//! prints throughput, errors by kind, latency percentiles and the server's
//! memory; at the end, whether resident memory at the last minute is within
//! 10% of minute 2.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use idprov_proto::ProvisionStatus;

use crate::fleet::{self, Device};
use crate::load::{self, ErrorKind, Target};
use crate::{procstat, servers};

/// What to run.
#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// How long.
    #[arg(long, default_value_t = 10)]
    pub minutes: u64,
    /// New devices provisioned per second (OOB, a new connection each).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Renewals per second over mutual TLS (devices provisioned earlier).
    #[arg(long, default_value_t = 100.0)]
    pub renew_rate: f64,
    /// Concurrent flooding connections from 127.0.0.2 (0: no flood).
    #[arg(long, default_value_t = 64)]
    pub flood: usize,
    /// Most requests in flight before the generator counts itself overloaded.
    #[arg(long, default_value_t = 2000)]
    pub max_in_flight: usize,
    /// Server configuration. Default: none, i.e. the default limits.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The `idprov` binary. Default: next to this one.
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Also write the report here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Devices holding a certificate: their index and mutual-TLS configuration.
type Provisioned = Arc<Mutex<Vec<(usize, Arc<rustls::ClientConfig>)>>>;

#[derive(Debug, Default)]
struct Window {
    provision_us: Vec<u32>,
    renew_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
    flood: BTreeMap<String, u64>,
}

/// One minute of the soak.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Minute {
    /// 1-based.
    pub minute: u64,
    /// Devices provisioned per second.
    pub provisioned_per_second: f64,
    /// Renewals per second.
    pub renewed_per_second: f64,
    /// Provisioning latency p50 / p99, ms.
    pub provision_p50_ms: f64,
    /// p99.
    pub provision_p99_ms: f64,
    /// Renewal latency p50 / p99, ms.
    pub renew_p50_ms: f64,
    /// p99.
    pub renew_p99_ms: f64,
    /// Failed legitimate requests by kind.
    pub errors: BTreeMap<String, u64>,
    /// Flood attempts by outcome.
    pub flood: BTreeMap<String, u64>,
    /// Server resident memory at the end of the minute, MiB.
    pub server_rss_mib: f64,
    /// Server CPU use during the minute, percent of one core.
    pub server_cpu_percent: f64,
}

fn pct(v: &mut [u32], p: f64) -> f64 {
    v.sort_unstable();
    crate::phase::percentile(v, p)
}

fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 1, (i % 254 + 1) as u8))
}

/// Runs the soak and prints its report.
pub async fn soak(args: SoakArgs) -> anyhow::Result<()> {
    let server_bin = crate::servers::server_bin(args.server_bin.as_deref())?;
    let tmp = tempfile::tempdir()?;
    let config = match &args.config {
        Some(c) => c.clone(),
        None => {
            let c = tmp.path().join("defaults.toml");
            std::fs::write(&c, "# the defaults\n")?;
            c
        }
    };
    println!(
        "server limits ({}):",
        args.config
            .as_ref()
            .map_or("defaults".into(), |c| c.display().to_string())
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&crate::run::limits_of(&config)?)?
    );
    let total = (args.rate * 60.0 * args.minutes as f64).ceil() as usize + 1;
    println!("preparing {total} devices ...");
    let devices = Arc::new(fleet::generate("soak", total).await?);
    let data = tmp.path().join("server");
    let server =
        servers::idprov(&server_bin, &config, &data, &tmp.path().join("server.log")).await?;
    let pid = server.pid();
    crate::run::register_secrets(&server, &data, &devices).await?;
    let roots = servers::roots_of(&data.join("ca-chain.pem"))?;
    let anon = load::client_config(&roots, None)?;
    let base = servers::target(server.addr);

    let window = Arc::new(Mutex::new(Window::default()));
    // Devices that hold a certificate, for renewals: (index, client config).
    let provisioned: Provisioned = Arc::default();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(60 * args.minutes);

    // The flood: as many new connections from 127.0.0.2 as the server takes,
    // each sending a provisioning request it cannot win.
    let mut flooders = Vec::new();
    for _ in 0..args.flood {
        let (window, anon) = (window.clone(), anon.clone());
        let target = Target {
            bind: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))),
            timeout: Duration::from_secs(10),
            ..base.clone()
        };
        let body = devices[0].plain_body.clone();
        flooders.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let kind =
                    match load::request(&target, &anon, "POST", "/idprov/provreq", body.clone())
                        .await
                    {
                        Ok(_) => "answered",
                        Err(e) => e.as_str(),
                    };
                if let Ok(mut w) = window.lock() {
                    *w.flood.entry(kind.to_owned()).or_default() += 1;
                }
                if kind == "connect" {
                    // Refused before TLS: try again at once, as a flood does,
                    // but yield so the loop is not a pure spin.
                    tokio::task::yield_now().await;
                }
            }
        }));
    }

    // Provisioning, open loop at `rate`.
    let next_device = Arc::new(AtomicUsize::new(0));
    let provisioner = {
        let (window, provisioned, in_flight, devices, roots, anon, base, next) = (
            window.clone(),
            provisioned.clone(),
            in_flight.clone(),
            devices.clone(),
            roots.clone(),
            anon.clone(),
            base.clone(),
            next_device.clone(),
        );
        let (rate, cap) = (args.rate, args.max_in_flight);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            while Instant::now() < deadline {
                tick.tick().await;
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= devices.len() {
                    break;
                }
                if in_flight.load(Ordering::Relaxed) >= cap {
                    if let Ok(mut w) = window.lock() {
                        *w.errors.entry("generator_overloaded".into()).or_default() += 1;
                    }
                    continue;
                }
                in_flight.fetch_add(1, Ordering::Relaxed);
                let (window, provisioned, in_flight, devices, roots, anon) = (
                    window.clone(),
                    provisioned.clone(),
                    in_flight.clone(),
                    devices.clone(),
                    roots.clone(),
                    anon.clone(),
                );
                let target = Target {
                    bind: Some(source(i)),
                    ..base.clone()
                };
                tokio::spawn(async move {
                    let started = Instant::now();
                    let result = provision_one(&target, &anon, &devices[i], &roots).await;
                    let us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
                    match result {
                        Ok(config) => {
                            if let Ok(mut p) = provisioned.lock() {
                                p.push((i, config));
                            }
                            if let Ok(mut w) = window.lock() {
                                w.provision_us.push(us);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut w) = window.lock() {
                                *w.errors
                                    .entry(format!("provision_{}", e.as_str()))
                                    .or_default() += 1;
                            }
                        }
                    }
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                });
            }
        })
    };

    // Renewals, open loop at `renew_rate`, cycling through provisioned devices.
    let renewer = {
        let (window, provisioned, in_flight, devices, base) = (
            window.clone(),
            provisioned.clone(),
            in_flight.clone(),
            devices.clone(),
            base.clone(),
        );
        let (rate, cap) = (args.renew_rate, args.max_in_flight);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut k = 0usize;
            while Instant::now() < deadline {
                tick.tick().await;
                // A well-spread pick among the devices provisioned so far.
                // (`k % len` would not do: provisioning grows the list at
                // about the renewal rate, so `k % len` would stay on the
                // same few devices, hence the same source address, and
                // measure the per-source limiter instead of the server.)
                let spread = k.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize) >> 8;
                let pick = provisioned
                    .lock()
                    .ok()
                    .and_then(|p| (!p.is_empty()).then(|| p[spread % p.len()].clone()));
                k += 1;
                let Some((i, config)) = pick else { continue };
                if in_flight.load(Ordering::Relaxed) >= cap {
                    if let Ok(mut w) = window.lock() {
                        *w.errors.entry("generator_overloaded".into()).or_default() += 1;
                    }
                    continue;
                }
                in_flight.fetch_add(1, Ordering::Relaxed);
                let (window, in_flight, body) = (
                    window.clone(),
                    in_flight.clone(),
                    devices[i].plain_body.clone(),
                );
                let target = Target {
                    bind: Some(source(i)),
                    ..base.clone()
                };
                tokio::spawn(async move {
                    let started = Instant::now();
                    let result = renew_one(&target, &config, body).await;
                    let us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
                    if let Ok(mut w) = window.lock() {
                        match result {
                            Ok(()) => w.renew_us.push(us),
                            Err(e) => {
                                *w.errors.entry(format!("renew_{}", e.as_str())).or_default() += 1
                            }
                        }
                    }
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                });
            }
        })
    };

    // Once a minute: report and reset the window.
    println!(
        "\n{:>3} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6}  errors / flood",
        "min", "prov/s", "renew/s", "prov p50", "prov p99", "ren p50", "ren p99", "rss MiB", "cpu%"
    );
    let mut minutes = Vec::new();
    let mut cpu_before = procstat::cpu_seconds(pid).unwrap_or(0.0);
    for minute in 1..=args.minutes {
        let end = deadline - Duration::from_secs(60 * (args.minutes - minute));
        tokio::time::sleep_until(end.into()).await;
        let mut w = std::mem::take(&mut *window.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
        let cpu = procstat::cpu_seconds(pid).unwrap_or(cpu_before);
        let m = Minute {
            minute,
            provisioned_per_second: w.provision_us.len() as f64 / 60.0,
            renewed_per_second: w.renew_us.len() as f64 / 60.0,
            provision_p50_ms: pct(&mut w.provision_us, 50.0),
            provision_p99_ms: pct(&mut w.provision_us, 99.0),
            renew_p50_ms: pct(&mut w.renew_us, 50.0),
            renew_p99_ms: pct(&mut w.renew_us, 99.0),
            errors: w.errors,
            flood: w.flood,
            server_rss_mib: procstat::rss_bytes(pid).unwrap_or(0) as f64 / 1048576.0,
            server_cpu_percent: 100.0 * (cpu - cpu_before) / 60.0,
        };
        cpu_before = cpu;
        println!(
            "{:>3} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>8.1} {:>6.0}  {:?} / {:?}",
            m.minute,
            m.provisioned_per_second,
            m.renewed_per_second,
            m.provision_p50_ms,
            m.provision_p99_ms,
            m.renew_p50_ms,
            m.renew_p99_ms,
            m.server_rss_mib,
            m.server_cpu_percent,
            m.errors,
            m.flood
        );
        minutes.push(m);
    }
    let _ = provisioner.await;
    let _ = renewer.await;
    for f in flooders {
        let _ = f.await;
    }
    server.terminate();

    let memory = match (minutes.get(1), minutes.last()) {
        (Some(two), Some(last)) if minutes.len() >= 2 => {
            let change = 100.0 * (last.server_rss_mib - two.server_rss_mib) / two.server_rss_mib;
            println!(
                "\nresident memory: minute 2 {:.1} MiB, minute {} {:.1} MiB: {change:+.1}% ({})",
                two.server_rss_mib,
                last.minute,
                last.server_rss_mib,
                if change.abs() <= 10.0 {
                    "within 10%"
                } else {
                    "NOT within 10%"
                }
            );
            Some(change)
        }
        _ => None,
    };
    if let Some(path) = &args.json {
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&serde_json::json!({
                "rate": args.rate,
                "renew_rate": args.renew_rate,
                "flood_connections": args.flood,
                "limits": crate::run::limits_of(&config)?,
                "minutes": minutes,
                "rss_change_percent_last_vs_minute_2": memory,
            }))?,
        )?;
        println!("report written to {}", path.display());
    }
    Ok(())
}

async fn provision_one(
    target: &Target,
    anon: &Arc<rustls::ClientConfig>,
    device: &Device,
    roots: &[rustls_pki_types::CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, ErrorKind> {
    let body = load::request(
        target,
        anon,
        "POST",
        "/idprov/provreq",
        device.oob_body.clone(),
    )
    .await?;
    let resp = crate::run::expect_status(&body, ProvisionStatus::Approved)?;
    let chain =
        idprov_ca::pem::parse_certificates(&resp.client_cert).map_err(|_| ErrorKind::Answer)?;
    device
        .mtls_config(roots, chain)
        .map_err(|_| ErrorKind::Answer)
}

async fn renew_one(
    target: &Target,
    config: &Arc<rustls::ClientConfig>,
    body: Bytes,
) -> Result<(), ErrorKind> {
    let body = load::request(target, config, "POST", "/idprov/provreq", body).await?;
    crate::run::expect_status(&body, ProvisionStatus::Approved).map(|_| ())
}
