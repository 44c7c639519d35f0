//! A throw-away PostgreSQL cluster for this test binary, and a fresh
//! database per test.
//!
//! Started once, on first use, from the binaries under
//! `/usr/lib/postgresql/*/bin` (Debian's layout). Without them the
//! PostgreSQL tests are skipped, except under `CI=true`, where they fail: a
//! CI run must not pass by testing nothing.
//!
//! The cluster lives in a temporary directory owned by `postgres` (`initdb`
//! refuses to run as root, so as root every cluster command runs through
//! `runuser -u postgres`), listens on a free port of 127.0.0.1 only and on a
//! socket inside that directory, trusts loopback connections, and keeps
//! `fsync` on: the registry promises durable commits, so it is tested against
//! a server that makes them.
//!
//! Stopping it: a test binary's statics are never dropped, so a supervisor
//! shell script (in its own process group, so a Ctrl-C aimed at `cargo test`
//! does not cut its cleanup short) creates and starts the cluster, reports
//! "ready", then blocks reading its stdin — a pipe whose only writer is this
//! process. When this process exits, however it exits, the kernel closes the
//! pipe, the read returns, and the script runs `pg_ctl stop -m fast` and
//! removes the directory.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    port: u16,
    next_database: AtomicU64,
    /// Held open for the life of the process: its closing is the signal to
    /// stop. Never written to.
    _lifeline: ChildStdin,
    _supervisor: Child,
}

impl Cluster {
    /// The URL of a database of this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();

/// The cluster, started on first call; `None` when PostgreSQL is not
/// installed (and this is not CI).
pub fn cluster() -> Option<&'static Cluster> {
    CLUSTER.get_or_init(start).as_ref()
}

/// A new, empty database and its URL; `None` when the tests are skipped.
///
/// The database's default collation is ICU `en-US`, which orders `"_x"`
/// before `"a"` before `"B"`: the registry's byte order must then come from
/// its own `COLLATE "C"` columns, as it must on any production database.
pub async fn fresh_database(hint: &str) -> Option<String> {
    let cluster = tokio::task::spawn_blocking(cluster)
        .await
        .expect("starting the cluster")?;
    let n = cluster.next_database.fetch_add(1, Ordering::Relaxed);
    let hint: String = hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let name = format!("t{n}_{hint}");
    admin(cluster, "postgres")
        .await
        .batch_execute(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' \
             LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
        ))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e:?}"));
    Some(cluster.url(&name))
}

/// A plain superuser connection to a database of the cluster, for tests
/// that look behind the registry's back.
pub async fn admin(cluster: &Cluster, database: &str) -> tokio_postgres::Client {
    admin_url(&cluster.url(database)).await
}

/// A plain superuser connection to the database at `url`.
pub async fn admin_url(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e:?}"));
    tokio::spawn(connection);
    client
}

fn start() -> Option<Cluster> {
    let Some(bin) = binaries() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb) and CI=true: \
                 the PostgreSQL backend must be tested in CI; install the postgresql package"
            );
        }
        eprintln!("skipping: PostgreSQL not installed");
        return None;
    };
    // A port found free may be taken before the server binds it: try again
    // on another.
    let mut last = String::new();
    for _ in 0..3 {
        match try_start(&bin) {
            Ok(cluster) => return Some(cluster),
            Err(e) => last = e,
        }
    }
    panic!("could not start a PostgreSQL test cluster from {bin:?}:\n{last}");
}

/// The newest installed server's `bin` directory.
fn binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Runs as the supervisor: `$1` bin dir, `$2` cluster dir, `$3` port, then
/// the command prefix that runs a program as the cluster's owner.
const SUPERVISOR: &str = r#"
set -u
# Outlive a Ctrl-C or a closed terminal long enough to clean up; and if the
# test process died before reading "ready", carry on to the cleanup instead
# of dying of SIGPIPE with the cluster running.
trap '' INT HUP TERM PIPE
bin=$1; dir=$2; port=$3; shift 3
# Called as `stop "$@"`: in a function "$@" is the function's arguments.
stop() {
    pidfile="$dir/data/postmaster.pid"
    if [ -f "$pidfile" ]; then
        # fsync stayed on for the tests; the shutdown checkpoint of a cluster
        # about to be deleted need not flush it to disk (seconds, otherwise).
        "$@" "$bin/psql" -h "$dir/socket" -p "$port" -U postgres -d postgres -Xq \
            -c "ALTER SYSTEM SET fsync = off" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
        "$@" "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 \
            || "$@" "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 60 stop >/dev/null 2>&1 \
            || kill -QUIT "$(head -n 1 "$pidfile")" 2>/dev/null
    fi
    rm -rf "$dir"
}
if ! "$@" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C \
        >"$dir/initdb.log" 2>&1; then
    echo "failed: initdb"; cat "$dir/initdb.log"; stop "$@"; exit 1
fi
"$@" mkdir "$dir/socket"
cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/socket'
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = 200
EOF
if ! "$@" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null 2>&1; then
    echo "failed: pg_ctl start"; cat "$dir/server.log"; stop "$@"; exit 1
fi
echo ready
exec >/dev/null 2>&1
# Blocks until the test process is gone: it holds the only writer.
while read -r _; do :; done
stop "$@"
"#;

fn try_start(bin: &Path) -> Result<Cluster, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("finding a free port: {e}"))?
        .port();
    let dir = tempfile::Builder::new()
        .prefix("idprov-pg-")
        .tempdir()
        .map_err(|e| format!("temporary directory: {e}"))?
        // From here on the supervisor removes it.
        .keep();
    let as_owner = owner_prefix(&dir)?;
    let mut supervisor = Command::new("sh")
        .arg("-c")
        .arg(SUPERVISOR)
        .arg("idprov-pg-supervisor")
        .arg(bin)
        .arg(&dir)
        .arg(port.to_string())
        .args(&as_owner)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting the supervisor: {e}"))?;
    let lifeline = supervisor.stdin.take().ok_or("no supervisor stdin")?;
    let stdout = supervisor.stdout.take().ok_or("no supervisor stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    match lines.next() {
        Some(Ok(line)) if line == "ready" => Ok(Cluster {
            port,
            next_database: AtomicU64::new(0),
            _lifeline: lifeline,
            _supervisor: supervisor,
        }),
        first => {
            let rest: Vec<String> = lines.map_while(|l| l.ok()).collect();
            drop(lifeline);
            let _ = supervisor.wait();
            Err(format!(
                "{}\n{}",
                first.and_then(|l| l.ok()).unwrap_or_default(),
                rest.join("\n")
            ))
        }
    }
}

/// What to put before a cluster command: as root, run it as `postgres` (and
/// give that user the directory); otherwise run it as ourselves.
fn owner_prefix(dir: &Path) -> Result<Vec<String>, String> {
    use std::os::unix::fs::MetadataExt as _;
    let euid = std::fs::metadata("/proc/self")
        .map_err(|e| format!("reading /proc/self: {e}"))?
        .uid();
    if euid != 0 {
        return Ok(Vec::new());
    }
    let status = Command::new("chown")
        .arg("postgres:")
        .arg(dir)
        .status()
        .map_err(|e| format!("chown: {e}"))?;
    if !status.success() {
        return Err(format!("chown postgres: {} failed", dir.display()));
    }
    for runuser in ["/usr/sbin/runuser", "/sbin/runuser"] {
        if Path::new(runuser).is_file() {
            return Ok(vec![
                runuser.into(),
                "-u".into(),
                "postgres".into(),
                "--".into(),
            ]);
        }
    }
    Ok(vec![
        "setpriv".into(),
        "--reuid=postgres".into(),
        "--regid=postgres".into(),
        "--init-groups".into(),
    ])
}

/// Every row of every table of the registry's database as text (what a thief
/// of the database would read): for tests that look for secrets in clear.
#[allow(dead_code)] // the registry's own tests include this file but not this
pub async fn all_rows_as_text(url: &str) -> String {
    let client = admin_url(url).await;
    let tables = client
        .query(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
            &[],
        )
        .await
        .expect("tables");
    let mut out = String::new();
    for t in tables {
        let name: String = t.get(0);
        for row in client
            .query(&format!("SELECT t::text FROM \"{name}\" t"), &[])
            .await
            .expect("rows")
        {
            out.push_str(row.get::<_, &str>(0));
            out.push('\n');
        }
    }
    out
}
