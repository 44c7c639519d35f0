//! `idprov serve`.

use idprov_server::config::{LogFormat, OneOrMany};
use idprov_server::{ServerOptions, start};
use tracing_subscriber::EnvFilter;

use crate::Failure;
use crate::cli::ServeArgs;

/// Log lines a request may queue ahead of the log thread before it waits
/// for room (it never drops one: a certificate issued or a lockout is a
/// security event).
const LOG_QUEUE_LINES: usize = 65_536;

/// Logs go to standard error through a thread of their own, so a request
/// never waits for a write to the terminal, pipe or journal (one `write`
/// per line on the runtime's threads showed in the profile). The returned
/// guard flushes what is queued when dropped.
fn init_logging(
    level: &str,
    format: LogFormat,
) -> Result<tracing_appender::non_blocking::WorkerGuard, Failure> {
    // RUST_LOG, when set, overrides the configured level.
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v),
        _ => EnvFilter::try_new(level),
    }
    .map_err(|e| Failure::usage(format!("configuration key `log.level`: {e}")))?;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("idprov-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour only for a person at a terminal, not in files or journals.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        // Span fields (the request ID) go on every line of a request.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    result.map_err(|e| Failure::usage(format!("logging: {e}")))?;
    Ok(guard)
}

pub async fn run(args: ServeArgs) -> Result<(), Failure> {
    let mut raw = idprov_server::config::read(args.config.as_deref()).map_err(Failure::usage)?;
    if let Some(dir) = args.data_dir {
        raw.data_dir = Some(dir);
    }
    if !args.listen.is_empty() {
        raw.listen = Some(OneOrMany::Many(args.listen));
    }
    if args.no_dns_sd {
        raw.dns_sd.enabled = Some(false);
    }
    if let Some(f) = args.log_format {
        raw.log.format = Some(f);
    }
    let config = raw.validate().map_err(Failure::usage)?;
    let _log_guard = init_logging(&config.log_level, config.log_format)?;
    // Every connection is a file: take the hard limit (the usual soft one,
    // 1024, is below the default connection total).
    let wanted = u64::from(config.total_connections) + 256;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(n) if n < wanted => tracing::warn!(
            open_files = n,
            total_connections = config.total_connections,
            "the open-files limit is below limits.total_connections: connections beyond it fail at accept"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not raise the open-files limit"),
    }
    let data_dir = config.data_dir.clone();
    let server = start(config, ServerOptions::default())
        .await
        .map_err(|e| Failure {
            code: 1,
            message: e.to_string(),
        })?;
    // The token goes to a person at a terminal only: never into the logs,
    // whose line says where the file is.
    if let Some(token) = server.signin_token()
        && std::io::IsTerminal::is_terminal(&std::io::stdout())
    {
        println!(
            "\nWeb page: https://{}/admin/ — one-time sign-in token (valid 24 h):\n\n    {token}\n",
            server.local_addrs().first().map_or_else(
                || "localhost:43776".to_owned(),
                |a| format!("localhost:{}", a.port())
            )
        );
    }
    tracing::info!(
        admin_certificate = %data_dir.join(idprov_server::datadir::files::ADMIN_CERT).display(),
        "admin commands on this machine use this credential (idprov oob add DEVICE_ID …)"
    );
    wait_for_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM.
pub(crate) async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
