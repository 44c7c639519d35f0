//! `idprov discover` and `idprov device …`: the device side from the shell.

use std::path::Path;

use idprov_client::device::{
    AgentOptions, Device, DeviceError, DeviceOptions, KeyAlgorithm, Outcome, ServerTarget,
};
use idprov_client::discovery::discover;
use idprov_proto::{DeviceId, Fingerprint, Label, OobSecret};
use tokio::sync::watch;

use crate::Failure;
use crate::cli::{DeviceArgs, DeviceCommand};
use crate::output;

impl From<DeviceError> for Failure {
    fn from(e: DeviceError) -> Self {
        let code = match &e {
            DeviceError::NoServerFound
            | DeviceError::Discovery(_)
            | DeviceError::Unreachable { .. } => 3,
            DeviceError::CertificateRefused(_)
            | DeviceError::ServerUntrusted { .. }
            | DeviceError::CaReplaced { .. }
            | DeviceError::FingerprintMismatch { .. }
            | DeviceError::NoCa
            | DeviceError::BadSignature
            | DeviceError::EmptyKeyUntrusted
            | DeviceError::BadCertificate(_) => 4,
            DeviceError::Refused { .. }
            | DeviceError::Protocol(_)
            | DeviceError::NoV2(_)
            | DeviceError::PakeFailed => 1,
            DeviceError::Storage(_) | DeviceError::Key(_) => 2,
        };
        let message = match e {
            // The library's words name no flags; here they can.
            DeviceError::EmptyKeyUntrusted => EMPTY_KEY_UNTRUSTED.to_owned(),
            e => e.to_string(),
        };
        Failure { code, message }
    }
}

/// What `idprov device` says when an administrator's approval arrives at a
/// device that may not accept the empty key.
const EMPTY_KEY_UNTRUSTED: &str = "the Approved answer is signed with the empty key \
(an administrator approved this device), and this device does not know the server's CA from \
outside the network, so it discarded the certificate. Run the same command again with one of:
  --ca-fingerprint FP   the CA fingerprint (on the device's label, or `idprov ca-fingerprint` on the server)
  --ca FILE             the server's CA certificate (its ca-chain.pem)
  --danger-accept-empty-key   trust the CA this first contact offered: anyone who answered as the \
server on this network could then hand the device a certificate of their own CA
The server gives the same certificate again within its re-delivery window (10 minutes by \
default); after that, approve the request again (idprov requests approve ID).";

pub async fn discover_command(timeout: std::time::Duration, json: bool) -> Result<(), Failure> {
    let found = discover(timeout, false).await.map_err(|e| Failure {
        code: 3,
        message: e.to_string(),
    })?;
    if json {
        output::json(
            &found
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "instance": d.instance,
                        "host": d.host,
                        "port": d.port,
                        "addresses": d.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                        "path": d.path,
                        "version": d.version,
                        "directory": d.directory_url(),
                    })
                })
                .collect::<Vec<_>>(),
        );
    } else if found.is_empty() {
        eprintln!(
            "no idprov server answered within {}",
            humantime::format_duration(timeout)
        );
    } else {
        output::table(
            ["INSTANCE", "HOST", "PORT", "ADDRESSES", "PATH", "DIRECTORY"],
            found
                .iter()
                .map(|d| {
                    [
                        d.instance.clone(),
                        d.host.clone(),
                        d.port.to_string(),
                        d.addresses
                            .iter()
                            .map(|a| a.to_string())
                            .collect::<Vec<_>>()
                            .join(" "),
                        d.path.clone(),
                        d.directory_url(),
                    ]
                })
                .collect::<Vec<_>>(),
        );
    }
    if found.is_empty() {
        return Err(Failure {
            code: 3,
            message: "no idprov server found".into(),
        });
    }
    Ok(())
}

fn read_first_line(path: &Path) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

fn options(args: &DeviceArgs) -> Result<DeviceOptions, Failure> {
    let label = args
        .label
        .as_deref()
        .map(Label::parse)
        .transpose()
        .map_err(|e| Failure::usage(format!("--label: {e}")))?;
    let device_id = match (&args.device_id, &label) {
        (Some(id), Some(l)) if id != l.device_id.as_str() => {
            return Err(Failure::usage("--id differs from the label's device ID"));
        }
        (Some(id), _) => DeviceId::parse(id).map_err(|e| Failure::usage(format!("--id: {e}")))?,
        (None, Some(l)) => l.device_id.clone(),
        (None, None) => return Err(Failure::usage("give the device ID with --id or --label")),
    };
    let secret = if let Some(l) = &label {
        Some(l.secret.clone())
    } else if let Some(s) = &args.secret {
        eprintln!(
            "warning: a secret given on the command line is visible in the process list; prefer --secret-file or --label"
        );
        Some(OobSecret::parse(s).map_err(|e| Failure::usage(format!("--secret: {e}")))?)
    } else if let Some(f) = &args.secret_file {
        Some(
            OobSecret::parse(&read_first_line(f)?)
                .map_err(|e| Failure::usage(format!("--secret-file: {e}")))?,
        )
    } else {
        None
    };
    let ca_fingerprint = match (&args.ca_fingerprint, label.as_ref().and_then(|l| l.ca)) {
        (Some(fp), _) => Some(
            Fingerprint::parse(fp).map_err(|e| Failure::usage(format!("--ca-fingerprint: {e}")))?,
        ),
        (None, from_label) => from_label,
    };
    let ca_pem = args
        .ca
        .as_deref()
        .map(|p| {
            std::fs::read_to_string(p)
                .map_err(|e| Failure::usage(format!("--ca {}: {e}", p.display())))
        })
        .transpose()?;
    let key_type = KeyAlgorithm::parse(&args.key_type).ok_or_else(|| {
        Failure::usage(format!(
            "--key-type {:?}: use p256, p384, ed25519, rsa2048, rsa3072 or rsa4096",
            args.key_type
        ))
    })?;
    let mut opts = DeviceOptions::new(device_id, args.dir.clone());
    opts.secret = secret;
    opts.ca_fingerprint = ca_fingerprint;
    opts.ca_pem = ca_pem;
    opts.server = match &args.server {
        Some(s) => ServerTarget::Address(s.clone()),
        None => ServerTarget::Discover(args.discovery_timeout),
    };
    opts.key_type = key_type;
    opts.claimed_ip = args.claimed_ip.clone();
    opts.claimed_mac = args.claimed_mac.clone();
    opts.danger_accept_empty_key_after_first_contact = args.danger_accept_empty_key;
    opts.v2 = args.v2 || label.as_ref().is_some_and(|l| l.version == 2);
    if opts.v2 && opts.secret.is_none() {
        return Err(Failure::usage(
            "idprov v2 (--v2 or an idprov:2 label) needs the device's secret",
        ));
    }
    Ok(opts)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A device's log usually goes to a file or journald: colour codes
        // only on a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

pub async fn device(cmd: DeviceCommand) -> Result<(), Failure> {
    init_logging();
    match cmd {
        DeviceCommand::Provision {
            device,
            wait,
            timeout,
        } => {
            let opts = options(&device)?;
            let dir = opts.dir.clone();
            let mut dev = Device::open(opts)?;
            let deadline = timeout.map(|t| std::time::Instant::now() + t);
            loop {
                match dev.provision(false).await? {
                    Outcome::Approved(i) => {
                        if device.json {
                            output::json(&serde_json::json!({
                                "status": "Approved",
                                "serial": i.serial,
                                "notBefore": i.not_before,
                                "notAfter": i.not_after,
                                "verifiedWith": i.verified_with,
                                "current": dir.join("current").display().to_string(),
                            }));
                        } else {
                            println!(
                                "Approved: certificate {} installed in {}",
                                i.serial,
                                dir.join("current").display()
                            );
                        }
                        return Ok(());
                    }
                    Outcome::Waiting(retry)
                        if wait
                            && deadline.is_none_or(|d| std::time::Instant::now() + retry < d) =>
                    {
                        eprintln!(
                            "waiting for the server; asking again in {}s",
                            retry.as_secs()
                        );
                        tokio::time::sleep(retry).await;
                    }
                    Outcome::Waiting(retry) => {
                        return Err(Failure {
                            code: 1,
                            message: format!(
                                "waiting: the server has no secret or approval for this device yet (ask again after {}s); on the server, register its secret (idprov oob add {id}) or approve its request (idprov requests approve {id})",
                                retry.as_secs(),
                                id = dev.options().device_id
                            ),
                        });
                    }
                    Outcome::Rejected(_) => {
                        return Err(Failure {
                            code: 1,
                            message: "rejected: the secret is wrong, or an administrator rejected this device".into(),
                        });
                    }
                    Outcome::RateLimited(retry) => {
                        return Err(Failure {
                            code: 1,
                            message: format!(
                                "locked out or rate limited; retry after {}s",
                                retry.as_secs()
                            ),
                        });
                    }
                }
            }
        }
        DeviceCommand::Run { device, poll } => {
            let opts = options(&device)?;
            let (tx, rx) = watch::channel(false);
            tokio::spawn(async move {
                crate::serve::wait_for_signal().await;
                let _ = tx.send(true);
            });
            let pace = AgentOptions {
                poll,
                ..AgentOptions::default()
            };
            idprov_client::device::run(opts, pace, rx).await?;
            Ok(())
        }
    }
}
