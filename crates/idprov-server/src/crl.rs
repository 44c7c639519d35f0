//! The CRL: signed by the CA, its number kept in the registry so it only
//! grows, served at `/idprov/crl` and written atomically to `crl.pem` in the
//! data directory for services that read a file (mosquitto's `crlfile`),
//! after which the `crl.on_publish` command runs (to reload such a service).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use idprov_ca::CrlEntry;
use idprov_proto::UnixTime;
use idprov_store::CrlRecord;

use crate::datadir::write_public_file;
use crate::error::ApiError;
use crate::state::AppState;

/// How long a CRL is valid (its nextUpdate).
pub const CRL_VALIDITY: Duration = Duration::from_secs(7 * 86_400);
/// A CRL older than this is re-issued (daily, well before nextUpdate).
pub const CRL_REFRESH: Duration = Duration::from_secs(86_400);
/// The CRL file in the data directory.
pub const CRL_FILE: &str = "crl.pem";

/// Signs a new CRL with the current revocations, stores it and writes the
/// file. Serialized, so numbers and files always move forward together.
pub async fn regenerate(app: &AppState) -> Result<CrlRecord, ApiError> {
    let _guard = app.crl_lock.lock().await;
    let now = app.clock.now();
    let now_unix = UnixTime::from(now);
    let entries: Vec<CrlEntry> = app
        .registry
        .revoked_certificates(now_unix)
        .await?
        .into_iter()
        .map(|r| CrlEntry {
            serial: r.serial,
            revoked_at: r.revoked_at.into(),
            reason: r.reason,
        })
        .collect();
    let number = app.registry.next_crl_number().await?;
    let der = app
        .ca
        .sign_crl(&entries, number, now, now + CRL_VALIDITY)
        .map_err(|e| ApiError::Internal(format!("signing the CRL: {e}")))?;
    let record = CrlRecord {
        number,
        this_update: now_unix,
        next_update: now_unix.plus(CRL_VALIDITY),
        der,
    };
    app.registry.store_crl(record.clone()).await?;
    let path = app.config.data_dir.join(CRL_FILE);
    write_public_file(
        &path,
        idprov_ca::pem::encode("X509 CRL", &record.der).as_bytes(),
    )
    .map_err(|e| ApiError::Internal(format!("writing {}: {e}", path.display())))?;
    tracing::info!(number, revoked = entries.len(), "CRL issued");
    app.crl_hook.published(path, number);
    Ok(record)
}

/// The current CRL, re-issued when missing or older than a day.
pub async fn current(app: &AppState) -> Result<CrlRecord, ApiError> {
    if let Some(crl) = app.registry.crl().await?
        && app.now_unix() < crl.this_update.plus(CRL_REFRESH)
    {
        return Ok(crl);
    }
    regenerate(app).await
}

/// The `crl.on_publish` command: run with `sh -c` after every CRL
/// publication, with `IDPROV_CRL_FILE` and `IDPROV_CRL_NUMBER` in its
/// environment, one run at a time (publications during a run make one more
/// run after it), stopped with the processes it started after
/// [`crate::defaults::CRL_HOOK_TIMEOUT`]. Its failure is logged and
/// counted; it never fails the revocation that published the CRL.
#[derive(Debug, Clone)]
pub struct PublishHook(Arc<Hook>);

#[derive(Debug)]
struct Hook {
    command: Option<String>,
    running: AtomicBool,
    pending: AtomicBool,
    number: AtomicI64,
    file: std::sync::Mutex<PathBuf>,
}

impl PublishHook {
    /// The hook of `command` (none: publications run nothing).
    pub fn new(command: Option<String>) -> PublishHook {
        PublishHook(Arc::new(Hook {
            command,
            running: AtomicBool::new(false),
            pending: AtomicBool::new(false),
            number: AtomicI64::new(0),
            file: std::sync::Mutex::new(PathBuf::new()),
        }))
    }

    /// A CRL numbered `number` was written to `file`: runs the command
    /// (in the background).
    pub fn published(&self, file: PathBuf, number: i64) {
        let Some(command) = self.0.command.clone() else {
            return;
        };
        *self.0.file.lock().unwrap_or_else(|e| e.into_inner()) = file;
        self.0.number.store(number, Ordering::SeqCst);
        self.0.pending.store(true, Ordering::SeqCst);
        if self.0.running.swap(true, Ordering::SeqCst) {
            // The run in progress runs again when it ends.
            return;
        }
        let hook = self.0.clone();
        tokio::spawn(async move {
            loop {
                while hook.pending.swap(false, Ordering::SeqCst) {
                    hook.run(&command).await;
                }
                hook.running.store(false, Ordering::SeqCst);
                // A publication between the last check and now found the
                // hook running: take it up unless another task did.
                if !hook.pending.load(Ordering::SeqCst) || hook.running.swap(true, Ordering::SeqCst)
                {
                    break;
                }
            }
        });
    }
}

/// How long a hook's stderr is waited for once it ended.
const STDERR_GRACE: Duration = Duration::from_secs(1);

impl Hook {
    async fn run(&self, command: &str) {
        let number = self.number.load(Ordering::SeqCst);
        let file = self.file.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let command = command.to_owned();
        let result = tokio::task::spawn_blocking(move || {
            run_hook(&command, &file, number, crate::defaults::CRL_HOOK_TIMEOUT)
        })
        .await
        .unwrap_or("failed");
        metrics::counter!(crate::observe::CRL_HOOK_RUNS, "result" => result).increment(1);
    }
}

/// Runs the hook command to its end, or stops it after `timeout`; logs what
/// happened and returns the metric's label.
///
/// The command runs in a process group of its own, and a command that
/// overstays is stopped with every process it started (`sh -c` forks the
/// commands it runs: killing the shell alone would leave them running).
/// What it wrote to stderr is waited for at most [`STDERR_GRACE`] once it
/// ended: a process it left in the background may hold the pipe open.
fn run_hook(command: &str, file: &std::path::Path, number: i64, timeout: Duration) -> &'static str {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env("IDPROV_CRL_FILE", file)
        .env("IDPROV_CRL_NUMBER", number.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "crl.on_publish could not be started");
            return "failed";
        }
    };
    // Read what it says on stderr meanwhile, so a chatty command never
    // blocks on a full pipe; the last 512 characters are kept.
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(mut pipe) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            let text = String::from_utf8_lossy(&text).into_owned();
            let skip = text.chars().count().saturating_sub(512);
            let _ = tx.send(text.chars().skip(skip).collect::<String>());
        });
    }
    let deadline = std::time::Instant::now() + timeout;
    // Some(status) when it ended, None when stopped.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(Some(status)),
            Ok(None) if std::time::Instant::now() >= deadline => {
                let group = rustix::process::Pid::from_child(&child);
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                let _ = child.kill();
                let _ = child.wait();
                break Ok(None);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                let _ = child.kill();
                break Err(e);
            }
        }
    };
    let stderr = rx.recv_timeout(STDERR_GRACE).unwrap_or_default();
    match status {
        Err(e) => {
            tracing::warn!(error = %e, "crl.on_publish could not be awaited");
            "failed"
        }
        Ok(None) => {
            tracing::warn!(
                timeout_s = timeout.as_secs(),
                "crl.on_publish did not finish in time and was stopped"
            );
            "timeout"
        }
        Ok(Some(s)) if s.success() => {
            tracing::info!(crl_number = number, "crl.on_publish ran");
            "ok"
        }
        Ok(Some(s)) => {
            tracing::warn!(crl_number = number, status = %s, stderr = %stderr.trim(), "crl.on_publish failed");
            "failed"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_that_overstays_is_stopped_with_what_it_started() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The shell forks `sleep` (it is not the last command), which holds
        // the stderr pipe: stopping the shell alone would wait on it, and
        // leave it running. (A duration no other process here sleeps.)
        let command = "sleep 31.4159; true";
        let started = std::time::Instant::now();
        let result = run_hook(command, dir.path(), 1, Duration::from_millis(300));
        assert_eq!(result, "timeout");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "stopped at once: {:?}",
            started.elapsed()
        );
        let left: Vec<_> = std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .filter(|c| c.windows(7).any(|w| w == b"31.4159"))
            .collect();
        assert!(left.is_empty(), "the forked sleep was stopped too");
    }

    #[test]
    fn a_hook_reports_success_and_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let command = format!(
            "echo \"$IDPROV_CRL_NUMBER $IDPROV_CRL_FILE\" > {}",
            out.display()
        );
        let file = dir.path().join("crl.pem");
        assert_eq!(run_hook(&command, &file, 7, Duration::from_secs(10)), "ok");
        assert_eq!(
            std::fs::read_to_string(&out).expect("written"),
            format!("7 {}\n", file.display())
        );
        // A background process still holding stderr does not hold the hook.
        let started = std::time::Instant::now();
        assert_eq!(
            run_hook("sleep 5 & exit 3", &file, 7, Duration::from_secs(10)),
            "failed"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
