//! The processes a run measures: the idprov server, the do-nothing servers
//! and cfssl, each started on a free loopback port and killed on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls_pki_types::{CertificateDer, ServerName};

use crate::load::{self, Target};

/// A child process, killed when dropped.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Proc {
    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it with SIGTERM and waits (the idprov server finishes cleanly).
    pub fn terminate(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A target on loopback for certificates naming `localhost`/127.0.0.1.
pub fn target(addr: SocketAddr) -> Target {
    Target {
        addr,
        server_name: ServerName::IpAddress(addr.ip().into()),
        bind: None,
        timeout: Duration::from_secs(30),
    }
}

/// Starts `idprov serve` on a fresh data directory with `config`.
pub async fn idprov(bin: &Path, config: &Path, data: &Path, log: &Path) -> anyhow::Result<Proc> {
    idprov_with(bin, config, data, log, &[]).await
}

/// [`idprov`] with extra environment (e.g. `IDPROV_DATABASE_URL`).
pub async fn idprov_with(
    bin: &Path,
    config: &Path,
    data: &Path,
    log: &Path,
    env: &[(&str, &str)],
) -> anyhow::Result<Proc> {
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let child = Command::new(bin)
        .args(["serve", "--no-dns-sd", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", &addr.to_string()])
        .env_remove("IDPROV_CONFIG")
        .envs(env.iter().copied())
        // The server's own default log level (info), as in production:
        // its security events (a certificate issued, a request queued)
        // are part of what a request costs.
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .map_err(|e| anyhow::anyhow!("starting {}: {e}", bin.display()))?;
    let mut proc = Proc { child, addr };
    // Ready when /readyz answers over TLS with the CA it created.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = proc.child.try_wait() {
            anyhow::bail!(
                "the idprov server exited ({status}); its log: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if let Ok(roots) = roots_of(&data.join("ca-chain.pem")) {
            let tls = load::client_config(&roots, None)?;
            if load::request(&target(addr), &tls, "GET", "/readyz", Bytes::new())
                .await
                .is_ok()
            {
                return Ok(proc);
            }
        }
        if Instant::now() > deadline {
            proc.child.kill().ok();
            anyhow::bail!("the idprov server did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Certificates of a PEM file.
pub fn roots_of(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    Ok(idprov_ca::pem::parse_certificates(
        &std::fs::read_to_string(path)?,
    )?)
}

/// Starts this binary's do-nothing server with the idprov server's
/// certificate (and, with `client_ca`, client-certificate verification).
pub fn noop(cert: &Path, key: &Path, client_ca: Option<&Path>) -> anyhow::Result<Proc> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["noop-server", "--listen", "127.0.0.1:0", "--cert"])
        .arg(cert)
        .arg("--key")
        .arg(key);
    if let Some(ca) = client_ca {
        cmd.arg("--client-ca").arg(ca);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .ok_or_else(|| anyhow::anyhow!("noop server said {line:?}"))?
        .parse()?;
    Ok(Proc { child, addr })
}

/// The cfssl reference: a CA of its own, a TLS certificate for 127.0.0.1,
/// and, with `mutual_ca`, client certificates required from that CA.
pub async fn cfssl(dir: &Path, mutual_ca: Option<&Path>) -> anyhow::Result<Option<Proc>> {
    let Some(bin) = which("cfssl") else {
        return Ok(None);
    };
    std::fs::create_dir_all(dir)?;
    let now = std::time::SystemTime::now();
    let generated = idprov_ca::Ca::generate(
        "cfssl bench CA",
        idprov_ca::KeyAlgorithm::EcdsaP256,
        now,
        Duration::from_secs(86_400 * 30),
    )?;
    let (server, server_key) = generated.ca.issue_with_new_key(
        idprov_ca::KeyAlgorithm::EcdsaP256,
        idprov_ca::IssueParams {
            common_name: "127.0.0.1",
            organizational_unit: "server",
            organization: "bench",
            usage: idprov_ca::Usage::Server {
                dns_names: vec!["localhost".into()],
                ip_addresses: vec!["127.0.0.1".parse()?],
            },
            now,
            validity: Duration::from_secs(86_400),
            crl_url: None,
            ocsp_url: None,
        },
    )?;
    let path = |n: &str| -> PathBuf { dir.join(n) };
    std::fs::write(path("ca.pem"), &generated.cert_pem)?;
    std::fs::write(path("ca-key.pem"), &generated.key_pem)?;
    std::fs::write(path("server.pem"), &server.pem)?;
    std::fs::write(path("server-key.pem"), &server_key)?;
    let port = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "-address", "127.0.0.1", "-port", &port.to_string()])
        .arg("-ca")
        .arg(path("ca.pem"))
        .arg("-ca-key")
        .arg(path("ca-key.pem"))
        .arg("-tls-cert")
        .arg(path("server.pem"))
        .arg("-tls-key")
        .arg(path("server-key.pem"))
        .args(["-loglevel", "5"]);
    if let Some(ca) = mutual_ca {
        cmd.arg("-mutual-tls-ca").arg(ca);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(path("cfssl.log"))?)
        .spawn()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let proc = Proc { child, addr };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            anyhow::bail!(
                "cfssl did not start: {}",
                std::fs::read_to_string(path("cfssl.log")).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Some(proc))
}

/// The cfssl server's CA certificates (to trust its TLS certificate).
pub fn cfssl_roots(dir: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    roots_of(&dir.join("ca.pem"))
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.is_file())
}

/// The `idprov` binary: the one given, else the one next to this program.
pub fn server_bin(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    match given {
        Some(b) => Ok(b.to_path_buf()),
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("idprov"))
            .ok_or_else(|| anyhow::anyhow!("cannot locate the idprov binary; pass --server-bin")),
    }
}
