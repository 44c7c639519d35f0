//! Running one phase of load and reporting it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::load::{ErrorKind, Outcomes};
use crate::procstat;

/// One request of a phase: its index in the phase's work list.
pub type Work =
    Arc<dyn Fn(usize) -> Pin<Box<dyn Future<Output = Result<(), ErrorKind>> + Send>> + Send + Sync>;

/// How a phase ran.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhaseReport {
    /// Its name.
    pub name: String,
    /// Requests sent.
    pub requests: u64,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests by kind.
    pub errors: std::collections::BTreeMap<String, u64>,
    /// Concurrent connections.
    pub concurrency: usize,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Successful requests per second.
    pub throughput: f64,
    /// Latency percentiles of successful requests, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// CPU seconds the server process used during the phase.
    pub server_cpu_seconds: Option<f64>,
    /// Successful requests per CPU-second of the measured processes.
    pub requests_per_cpu_second: Option<f64>,
    /// The server process's peak resident memory during the phase, MiB.
    pub server_peak_rss_mib: Option<f64>,
    /// The ceiling this phase is compared with, and the percentage reached.
    pub ceiling: Option<String>,
    /// `throughput` as a percentage of the ceiling's.
    pub percent_of_ceiling: Option<f64>,
    /// `requests_per_cpu_second` as a percentage of the ceiling's.
    pub cpu_percent_of_ceiling: Option<f64>,
    /// Where the server's CPU went, by thread name (one server process
    /// only), largest first; threads that ended during the phase are
    /// counted as `(ended threads)`.
    pub threads: Vec<ThreadCpu>,
}

/// The CPU one kind of server thread used during a phase.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ThreadCpu {
    /// The thread name (`comm`, at most 15 characters).
    pub name: String,
    /// CPU seconds.
    pub seconds: f64,
    /// Share of the server's CPU during the phase, percent.
    pub percent: f64,
}

/// The `p`th percentile of sorted microsecond samples, in milliseconds.
pub(crate) fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64)).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

/// The processes whose CPU and memory a phase measures.
#[derive(Debug, Clone)]
pub enum Measured {
    /// One server process.
    One(u32),
    /// Several (replicas) plus processes found at the end (PostgreSQL's
    /// backends, which come and go): CPU is summed over all; memory is the
    /// peak of the fixed ones' sum.
    Group {
        /// The replicas.
        fixed: Vec<u32>,
        /// More processes, looked up at the start and the end.
        extra: fn() -> Vec<u32>,
    },
}

impl Measured {
    fn all(&self) -> Vec<u32> {
        match self {
            Measured::One(p) => vec![*p],
            Measured::Group { fixed, extra } => fixed.iter().copied().chain(extra()).collect(),
        }
    }

    fn fixed(&self) -> Vec<u32> {
        match self {
            Measured::One(p) => vec![*p],
            Measured::Group { fixed, .. } => fixed.clone(),
        }
    }
}

/// Runs `work(0..count)` on `concurrency` tasks, measuring `measured`.
pub async fn run(
    name: &str,
    count: usize,
    concurrency: usize,
    measured: Measured,
    work: Work,
) -> PhaseReport {
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before: std::collections::HashMap<u32, f64> = measured
        .all()
        .into_iter()
        .filter_map(|p| procstat::cpu_seconds(p).map(|c| (p, c)))
        .collect();
    let threads_before = match &measured {
        Measured::One(pid) => Some(procstat::thread_cpu_seconds(*pid)),
        Measured::Group { .. } => None,
    };
    let fixed = measured.fixed();
    let rss = (!fixed.is_empty()).then(|| procstat::PeakRss::start(fixed));
    phase_hook("start", name, &measured);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (next, work) = (next.clone(), work.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Outcomes::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return out;
                }
                let t = Instant::now();
                let result = work(i).await;
                out.record(t, result);
            }
        }));
    }
    let mut all = Outcomes::default();
    for t in tasks {
        if let Ok(o) = t.await {
            all.merge(o);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    phase_hook("end", name, &measured);
    // Processes that appeared during the phase started from zero.
    let cpu_used = Some(
        measured
            .all()
            .into_iter()
            .filter_map(|p| {
                procstat::cpu_seconds(p).map(|c| c - cpu_before.get(&p).copied().unwrap_or(0.0))
            })
            .sum::<f64>(),
    );
    let threads = match (&measured, threads_before, cpu_used) {
        (Measured::One(pid), Some(before), Some(total)) if total > 0.0 => {
            thread_shares(&before, &procstat::thread_cpu_seconds(*pid), total)
        }
        _ => Vec::new(),
    };
    let peak = match rss {
        Some(r) => Some(r.finish().await),
        None => None,
    };
    all.latencies_us.sort_unstable();
    let ok = all.latencies_us.len() as u64;
    PhaseReport {
        name: name.to_owned(),
        requests: count as u64,
        ok,
        errors: all
            .errors
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), *v))
            .collect(),
        concurrency,
        seconds,
        throughput: ok as f64 / seconds.max(1e-9),
        p50_ms: percentile(&all.latencies_us, 50.0),
        p90_ms: percentile(&all.latencies_us, 90.0),
        p99_ms: percentile(&all.latencies_us, 99.0),
        max_ms: all
            .latencies_us
            .last()
            .map_or(0.0, |m| f64::from(*m) / 1000.0),
        server_cpu_seconds: cpu_used,
        requests_per_cpu_second: cpu_used.filter(|c| *c > 0.0).map(|c| ok as f64 / c),
        server_peak_rss_mib: peak.map(|b| b as f64 / (1024.0 * 1024.0)),
        ceiling: None,
        percent_of_ceiling: None,
        cpu_percent_of_ceiling: None,
        threads,
    }
}

/// Runs `IDPROV_BENCH_PHASE_HOOK`, when set, as `sh -c HOOK hook EVENT
/// PHASE PID…` at the start and end of each phase (`bench/profile.sh`
/// starts and stops `perf record` on the server this way).
fn phase_hook(event: &str, name: &str, measured: &Measured) {
    let Ok(hook) = std::env::var("IDPROV_BENCH_PHASE_HOOK") else {
        return;
    };
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&hook)
        .args(["hook", event, name])
        .args(measured.fixed().iter().map(u32::to_string))
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("warning: the phase hook failed at the {event} of {name:?}");
    }
}

/// The CPU each thread name used between two readings, as shares of
/// `total` (the process's, which also counts threads that have ended).
fn thread_shares(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
    total: f64,
) -> Vec<ThreadCpu> {
    let mut shares: Vec<ThreadCpu> = after
        .iter()
        .map(|(name, t)| (name, t - before.get(name).copied().unwrap_or(0.0)))
        .filter(|(_, s)| *s > 0.0)
        .map(|(name, seconds)| ThreadCpu {
            name: name.clone(),
            seconds,
            percent: 100.0 * seconds / total,
        })
        .collect();
    let ended = total - shares.iter().map(|t| t.seconds).sum::<f64>();
    if ended > 0.01 * total {
        shares.push(ThreadCpu {
            name: "(ended threads)".into(),
            seconds: ended,
            percent: 100.0 * ended / total,
        });
    }
    shares.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    shares
}

impl PhaseReport {
    /// Sets the ceiling this phase is read against.
    pub fn against(mut self, ceiling: &PhaseReport) -> PhaseReport {
        self.ceiling = Some(ceiling.name.clone());
        if ceiling.throughput > 0.0 {
            self.percent_of_ceiling = Some(100.0 * self.throughput / ceiling.throughput);
        }
        if let (Some(mine), Some(theirs)) = (
            self.requests_per_cpu_second,
            ceiling.requests_per_cpu_second,
        ) && theirs > 0.0
        {
            self.cpu_percent_of_ceiling = Some(100.0 * mine / theirs);
        }
        self
    }

    /// Where the server's CPU went, on one line (empty when unknown).
    pub fn profile_line(&self) -> String {
        self.threads
            .iter()
            .filter(|t| t.percent >= 0.5)
            .map(|t| format!("{} {:.0}%", t.name, t.percent))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One line of the printed table.
    pub fn line(&self) -> String {
        let errors = if self.errors.is_empty() {
            "0".to_owned()
        } else {
            self.errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "{:<30} {:>7} {:>6} {:>9.0} {:>6} {:>9} {:>6} {:>7.1} {:>7.1} {:>7.1} {:>8.1} {:>7} {:>7} {}",
            self.name,
            self.requests,
            self.concurrency,
            self.throughput,
            self.percent_of_ceiling
                .map_or("-".to_owned(), |p| format!("{p:.0}%")),
            self.requests_per_cpu_second
                .map_or("-".to_owned(), |r| format!("{r:.0}")),
            self.cpu_percent_of_ceiling
                .map_or("-".to_owned(), |p| format!("{p:.0}%")),
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms,
            self.server_cpu_seconds
                .map_or("-".to_owned(), |c| format!("{c:.1}")),
            self.server_peak_rss_mib
                .map_or("-".to_owned(), |m| format!("{m:.0}")),
            errors
        )
    }

    /// The table's header.
    pub fn header() -> String {
        format!(
            "{:<30} {:>7} {:>6} {:>9} {:>6} {:>9} {:>6} {:>7} {:>7} {:>7} {:>8} {:>7} {:>7} {}",
            "phase",
            "reqs",
            "conc",
            "req/s",
            "ceil",
            "req/cpu-s",
            "ceil",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "cpu s",
            "rss MiB",
            "errors"
        )
    }
}

/// A pause between phases so the previous one's connections close.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}
