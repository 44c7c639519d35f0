//! The admin commands: each resolves its connection, calls the server, prints.

use std::io::BufRead;
use std::path::Path;
use std::time::SystemTime;

use idprov_client::{AdminClient, ClientError, Credentials};
use idprov_proto::admin::SecretAdded;
use idprov_proto::{OobSecret, OobSecretMessage};
use idprov_server::datadir::files;
use zeroize::Zeroizing;

use crate::Failure;
use crate::cli::{Connection, DevicesCommand, OobCommand, RequestsCommand};
use crate::output::{self, fields, table};

/// Warn this long before the administrator certificate expires.
const ADMIN_EXPIRY_WARNING: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// Where the server is and which credentials to use.
pub(crate) fn connect(conn: &Connection) -> Result<AdminClient, Failure> {
    let raw = idprov_server::config::read(conn.config.as_deref()).map_err(Failure::usage)?;
    let config = raw.validate().map_err(Failure::usage)?;
    let data_dir = conn.data_dir.clone().unwrap_or(config.data_dir.clone());
    let server = match &conn.server {
        Some(s) => s.clone(),
        None => {
            let addr = config
                .listen
                .first()
                .copied()
                .ok_or_else(|| Failure::usage("no listen address configured"))?;
            let ip = if addr.ip().is_unspecified() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                addr.ip()
            };
            std::net::SocketAddr::new(ip, addr.port()).to_string()
        }
    };
    let (cert, key, ca) = match (&conn.cert, &conn.key, &conn.ca) {
        (Some(c), Some(k), Some(a)) => (c.clone(), k.clone(), a.clone()),
        _ => (
            data_dir.join(files::ADMIN_CERT),
            data_dir.join(files::ADMIN_KEY),
            conn.ca
                .clone()
                .unwrap_or_else(|| data_dir.join(files::CA_CHAIN)),
        ),
    };
    let credentials = Credentials::from_files(&cert, &key, &ca).map_err(|e| {
        Failure::credentials(format!(
            "{e}\n  (pass --data-dir DIR of the server, or --cert/--key/--ca)"
        ))
    })?;
    warn_if_expiring(&cert);
    AdminClient::new(&server, &credentials).map_err(Failure::from)
}

fn warn_if_expiring(cert: &Path) {
    let Ok(text) = std::fs::read_to_string(cert) else {
        return;
    };
    let Some(info) = idprov_ca::pem::parse_certificates(&text)
        .ok()
        .and_then(|c| idprov_ca::CertInfo::from_der(&c[0]).ok())
    else {
        return;
    };
    let left = info
        .not_after
        .secs_since(idprov_proto::UnixTime::from(SystemTime::now()));
    if left < idprov_proto::clock::secs(ADMIN_EXPIRY_WARNING) {
        eprintln!(
            "warning: the administrator certificate {} expires in {} days",
            cert.display(),
            left.max(0) / 86_400
        );
    }
}

/// Reads a secret from a file or standard input: the first line, without
/// its line ending (the secret itself is never trimmed).
fn read_secret(source: Option<&Path>) -> Result<Zeroizing<String>, Failure> {
    let mut line = Zeroizing::new(String::new());
    let read = match source {
        Some(path) => std::fs::File::open(path)
            .map(std::io::BufReader::new)
            .and_then(|mut r| r.read_line(&mut line)),
        None => std::io::stdin().lock().read_line(&mut line),
    };
    read.map_err(|e| {
        Failure::usage(format!(
            "reading the secret from {}: {e}",
            source.map_or("standard input".into(), |p| p.display().to_string())
        ))
    })?;
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    Ok(line)
}

/// A strong secret ([`idprov_core::secrets::generate`], the server's too).
pub(crate) fn generate_secret() -> Result<OobSecret, Failure> {
    idprov_core::secrets::generate()
        .ok_or_else(|| Failure::usage("the system random number generator failed"))
}

pub async fn oob(cmd: OobCommand) -> Result<(), Failure> {
    match cmd {
        OobCommand::Add {
            device_id,
            secret,
            secret_file,
            valid_until,
            labels,
            pake_only,
            conn,
        } => {
            if labels.is_some() && (secret.is_some() || secret_file.is_some()) {
                return Err(Failure::usage(
                    "--labels is for generated secrets (leave SECRET out)",
                ));
            }
            let (secret, generated) = match (secret.as_deref(), secret_file) {
                (Some("-"), None) => (read_secret(None)?, false),
                (Some(s), None) => {
                    eprintln!(
                        "warning: a secret given on the command line is visible in the process list and shell history; prefer --secret-file FILE or -"
                    );
                    (Zeroizing::new(s.to_owned()), false)
                }
                (None, Some(path)) => (read_secret(Some(&path))?, false),
                (None, None) => (Zeroizing::new(generate_secret()?.expose().to_owned()), true),
                (Some(_), Some(_)) => unreachable!("clap refuses SECRET with --secret-file"),
            };
            // Refuse locally what the server would refuse, without sending it.
            OobSecret::parse(&secret).map_err(|e| Failure::usage(format!("secret: {e}")))?;
            idprov_proto::DeviceId::parse(&device_id)
                .map_err(|e| Failure::usage(format!("DEVICE_ID: {e}")))?;
            let client = connect(&conn)?;
            let added: SecretAdded = client
                .add_secret(&OobSecretMessage {
                    device_id,
                    oob_secret: secret.to_string(),
                    valid_until: valid_until.unwrap_or_default(),
                    pake_only,
                })
                .await?;
            for w in &added.warnings {
                eprintln!("warning: {w}");
            }
            // A generated secret is shown once, with the label URI that
            // carries it (and the CA fingerprint, when the CA is known
            // here): what a label sheet's QR code holds, and what
            // `idprov device provision --label` takes. A v2-only
            // registration's label (idprov:2) is always shown: it is what
            // tells the device to speak v2 and never v1.
            let label_uri = if generated || pake_only {
                let label = idprov_proto::Label {
                    version: if pake_only { 2 } else { 1 },
                    device_id: idprov_proto::DeviceId::parse(&added.device_id)
                        .map_err(|e| Failure::usage(e.to_string()))?,
                    secret: OobSecret::parse(&secret).map_err(|e| Failure::usage(e.to_string()))?,
                    ca: local_ca_fingerprint(&conn).ok(),
                };
                Some(Zeroizing::new(label.to_uri()))
            } else {
                None
            };
            if let (Some(sheet), Some(uri)) = (&labels, &label_uri) {
                crate::files::write_labels(
                    sheet,
                    vec![idprov_labels::Label {
                        device_id: added.device_id.clone(),
                        uri: uri.to_string(),
                    }],
                )?;
            }
            if conn.json {
                let mut v = serde_json::to_value(&added).unwrap_or_default();
                if let (Some(o), Some(uri)) = (v.as_object_mut(), &label_uri) {
                    if generated {
                        o.insert("oobSecret".into(), secret.as_str().into());
                    }
                    o.insert("label".into(), uri.as_str().into());
                }
                output::json(&v);
            } else {
                let mut rows = vec![
                    ("device", added.device_id.clone()),
                    ("valid until", added.valid_until.clone()),
                    ("replaced", added.replaced.to_string()),
                ];
                if let Some(uri) = &label_uri {
                    rows.insert(1, ("label", uri.to_string()));
                    if generated {
                        rows.insert(
                            1,
                            (
                                "secret",
                                format!("{} (generated; shown only now)", secret.as_str()),
                            ),
                        );
                    }
                }
                if pake_only {
                    rows.insert(
                        1,
                        (
                            "protocol",
                            "idprov v2 only (no form of the secret is kept)".into(),
                        ),
                    );
                }
                fields(&rows);
            }
            Ok(())
        }
        OobCommand::Import {
            file,
            format,
            dry_run,
            no_replace,
            generate,
            pake_only,
            out,
            labels,
            conn,
        } => {
            crate::bulk::import(
                file, format, dry_run, no_replace, generate, pake_only, out, labels, conn,
            )
            .await
        }
        OobCommand::Export {
            out,
            with_secrets,
            conn,
        } => crate::bulk::export(out, with_secrets, conn).await,
        OobCommand::List { limit, conn } => {
            let rows = connect(&conn)?.list_secrets(limit).await?;
            if conn.json {
                output::json(&rows);
            } else {
                table(
                    ["DEVICE", "VALID UNTIL", "CREATED", "BY"],
                    rows.iter()
                        .map(|s| {
                            [
                                s.device_id.clone(),
                                s.valid_until.clone(),
                                s.created_at.clone(),
                                s.created_by.clone(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
            Ok(())
        }
        OobCommand::Remove { device_id, conn } => {
            let removed = connect(&conn)?.remove_secret(&device_id).await?;
            if conn.json {
                output::json(&removed);
            } else {
                println!("Removed the secret of {}.", output::safe(&device_id));
            }
            Ok(())
        }
    }
}

pub async fn devices(cmd: DevicesCommand) -> Result<(), Failure> {
    match cmd {
        DevicesCommand::List {
            limit,
            status,
            expiring_within,
            missed_renewal,
            prefix,
            conn,
        } => {
            let mut filter: Vec<(&str, String)> = Vec::new();
            if let Some(s) = status {
                filter.push(("status", s.as_str().to_owned()));
            }
            if let Some(d) = expiring_within {
                filter.push((
                    "expiringWithinDays",
                    d.as_secs().div_ceil(86_400).to_string(),
                ));
            }
            if missed_renewal {
                filter.push(("missedRenewal", "true".into()));
            }
            if let Some(p) = prefix {
                filter.push(("prefix", p));
            }
            let rows = connect(&conn)?.list_devices_where(&filter, limit).await?;
            if conn.json {
                output::json(&rows);
            } else {
                table(
                    [
                        "DEVICE",
                        "STATUS",
                        "VALID UNTIL",
                        "CERTS",
                        "REVOKED",
                        "SECRET",
                        "WAITING",
                        "VIA",
                    ],
                    rows.iter()
                        .map(|d| {
                            [
                                d.device_id.clone(),
                                d.status.to_string(),
                                d.valid_until.clone().unwrap_or_else(|| "-".into()),
                                d.certificates.to_string(),
                                d.revoked.to_string(),
                                if d.live_secret { "yes" } else { "no" }.into(),
                                d.waiting.to_string(),
                                via(d.protocol),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
            Ok(())
        }
        DevicesCommand::Revoke {
            device_id,
            reason,
            note,
            serial,
            conn,
        } => {
            let revoked = connect(&conn)?
                .revoke_device(
                    &device_id,
                    &idprov_proto::admin::RevokeRequest {
                        reason,
                        note,
                        serial,
                    },
                )
                .await?;
            if conn.json {
                output::json(&revoked);
            } else {
                println!(
                    "Revoked {} certificate(s) of {}; CRL number {}.",
                    revoked.serials.len(),
                    output::safe(&device_id),
                    revoked.crl_number
                );
            }
            Ok(())
        }
        DevicesCommand::Unlock { device_id, conn } => {
            let cleared = connect(&conn)?.unlock_device(&device_id).await?;
            if conn.json {
                output::json(&cleared);
            } else {
                println!("Cleared the lockouts of {}.", output::safe(&device_id));
            }
            Ok(())
        }
        DevicesCommand::Remove { device_id, conn } => {
            let revoked = connect(&conn)?.remove_device(&device_id).await?;
            if conn.json {
                output::json(&revoked);
            } else {
                println!(
                    "Removed {}; {} certificate(s) revoked; CRL number {}.",
                    output::safe(&device_id),
                    revoked.serials.len(),
                    revoked.crl_number
                );
            }
            Ok(())
        }
        DevicesCommand::Show { device_id, conn } => {
            let detail = connect(&conn)?.device(&device_id).await?;
            if conn.json {
                output::json(&detail);
            } else {
                let d = &detail.device;
                fields(&[
                    ("device", d.device_id.clone()),
                    ("status", d.status.to_string()),
                    ("first seen", d.created_at.clone()),
                    (
                        "valid until",
                        d.valid_until.clone().unwrap_or_else(|| "-".into()),
                    ),
                    ("secret registered", d.live_secret.to_string()),
                    ("waiting requests", d.waiting.to_string()),
                ]);
                if let Some(g) = &detail.guesses {
                    fields(&[(
                        "wrong secrets",
                        if g.spent {
                            format!(
                                "{} from all addresses: every guess is refused until {} \
                                 (approve its request, or register a new secret)",
                                g.failures, g.window_ends
                            )
                        } else {
                            format!(
                                "{} of {} allowed until {}",
                                g.failures, g.budget, g.window_ends
                            )
                        },
                    )]);
                }
                println!();
                table(
                    [
                        "SERIAL",
                        "ISSUED",
                        "NOT AFTER",
                        "HOW",
                        "BY",
                        "KEY",
                        "REVOKED",
                        "VIA",
                    ],
                    detail
                        .certificates
                        .iter()
                        .map(|c| {
                            [
                                c.serial.to_string(),
                                c.issued_at.clone(),
                                c.not_after.clone(),
                                c.issue_kind.to_string(),
                                c.authorized_by.clone(),
                                c.key_type.clone(),
                                c.revoked_at.clone().unwrap_or_else(|| "-".into()),
                                via(c.protocol),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
            Ok(())
        }
    }
}

pub async fn requests(cmd: RequestsCommand) -> Result<(), Failure> {
    match cmd {
        RequestsCommand::Approve {
            device_id,
            key,
            conn,
        } => decide("approve", device_id, key, None, conn.into()).await,
        RequestsCommand::Reject {
            device_id,
            key,
            reason,
            conn,
        } => decide("reject", device_id, key, reason, conn.into()).await,
        RequestsCommand::Clear {
            device_id,
            key,
            conn,
        } => decide("clear", device_id, key, None, conn.into()).await,
        RequestsCommand::List { limit, conn } => {
            let client = connect(&conn)?;
            let rows = client.list_requests(limit).await?;
            let queue = client.queue_status().await?;
            if queue.full {
                // Requests the server could not record are not in the list:
                // say so, on standard error so scripts still get the JSON.
                eprintln!(
                    "warning: the waiting queue is full (capacity {}) since {}: {} requests not recorded, {} evicted",
                    queue.capacity,
                    queue.full_since.as_deref().unwrap_or("?"),
                    queue.not_recorded,
                    queue.evicted
                );
            }
            if conn.json {
                output::json(&rows);
            } else {
                table(
                    [
                        "DEVICE",
                        "KEY",
                        "TYPE",
                        "STATE",
                        "CLAIMED IP",
                        "CLAIMED MAC",
                        "SOURCE",
                        "FIRST SEEN",
                        "LAST SEEN",
                        "ATTEMPTS",
                        "VIA",
                    ],
                    rows.iter()
                        .map(|w| {
                            [
                                w.device_id.clone(),
                                w.key_fingerprint.to_string(),
                                w.key_type.clone(),
                                w.state.to_string(),
                                w.claimed_ip.clone(),
                                w.claimed_mac.clone(),
                                w.source.clone(),
                                w.first_seen.clone(),
                                w.last_seen.clone(),
                                w.attempts.to_string(),
                                via(w.protocol),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
            Ok(())
        }
    }
}

/// The VIA column: the protocol a device asked by (`v1`, `est`), `-`
/// where none applies.
fn via(protocol: Option<idprov_proto::kinds::Protocol>) -> String {
    protocol.map_or_else(|| "-".into(), |p| p.to_string())
}

/// Approve, reject or clear.
pub async fn decide(
    action: &str,
    device_id: String,
    key: Option<String>,
    reason: Option<String>,
    conn: Connection,
) -> Result<(), Failure> {
    let decided = connect(&conn)?
        .decide(
            &device_id,
            action,
            &idprov_proto::admin::Decision {
                key_fingerprint: key,
                reason,
            },
        )
        .await?;
    if conn.json {
        output::json(&decided);
    } else {
        println!(
            "{} {}{}",
            output::safe(&decided.device_id),
            decided.state,
            decided
                .expires_at
                .as_deref()
                .map(|t| format!(" (until {t})"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// The data directory meant: `--data-dir`, else the configuration's.
pub(crate) fn data_dir_of(
    data_dir: Option<&Path>,
    config: Option<&Path>,
) -> Result<std::path::PathBuf, Failure> {
    match data_dir {
        Some(d) => Ok(d.to_path_buf()),
        None => {
            let raw = idprov_server::config::read(config).map_err(Failure::usage)?;
            Ok(raw.validate().map_err(Failure::usage)?.data_dir)
        }
    }
}

/// The issuing CA (the first certificate of `--ca`, else of the data
/// directory's CA chain), DER.
pub(crate) fn local_ca_der(conn: &Connection) -> Result<Vec<u8>, Failure> {
    let path = match &conn.ca {
        Some(p) => p.clone(),
        None => {
            data_dir_of(conn.data_dir.as_deref(), conn.config.as_deref())?.join(files::CA_CHAIN)
        }
    };
    first_certificate(&path)
}

/// Every CA certificate that may have signed this installation's audit
/// checkpoints: those of the trusted chain (during a rollover both CAs) and,
/// from the data directory, the CAs retired by earlier rollovers.
pub(crate) fn local_signer_certs(conn: &Connection) -> Result<Vec<Vec<u8>>, Failure> {
    let mut paths = Vec::new();
    match &conn.ca {
        Some(p) => paths.push(p.clone()),
        None => {
            let dir = data_dir_of(conn.data_dir.as_deref(), conn.config.as_deref())?;
            paths.push(dir.join(files::CA_CHAIN));
            let retired = dir.join(files::CA_RETIRED);
            if retired.exists() {
                paths.push(retired);
            }
        }
    }
    let mut out = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
        let certs = idprov_ca::pem::parse_certificates(&text)
            .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
        out.extend(certs.into_iter().map(|c| c.to_vec()));
    }
    Ok(out)
}

/// The first certificate of a PEM file, DER.
pub(crate) fn first_certificate(path: &Path) -> Result<Vec<u8>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    let certs = idprov_ca::pem::parse_certificates(&text)
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    Ok(certs[0].to_vec())
}

/// The fingerprint of the CA of the data directory this connection uses.
pub(crate) fn local_ca_fingerprint(
    conn: &Connection,
) -> Result<idprov_proto::Fingerprint, Failure> {
    local_ca_der(conn).map(|der| idprov_proto::Fingerprint::of_der(&der))
}

pub async fn status(device_id: String, conn: Connection) -> Result<(), Failure> {
    let status = connect(&conn)?.status(&device_id).await?;
    if conn.json {
        output::json(&serde_json::json!({
            "deviceID": status.device_id,
            "status": status.status.as_str(),
            "caCert": status.ca_cert,
            "clientCert": status.client_cert,
        }));
    } else {
        fields(&[
            ("device", status.device_id.clone()),
            ("status", status.status.as_str().to_owned()),
        ]);
        if let Some(cert) = &status.client_cert {
            print!("{cert}");
        }
    }
    Ok(())
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::Refused { .. } | ClientError::Protocol(_) => 1,
            ClientError::Unreachable { .. } | ClientError::Discovery(_) => 3,
            ClientError::Credentials(_) | ClientError::CredentialsRefused(_) => 4,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

/// `idprov ca-fingerprint`: the fingerprint of the issuing CA of a data
/// directory, in the canonical form and as colon hex.
pub fn ca_fingerprint(
    data_dir: Option<std::path::PathBuf>,
    config: Option<std::path::PathBuf>,
    json: bool,
) -> Result<(), Failure> {
    let dir = data_dir_of(data_dir.as_deref(), config.as_deref())?;
    let fp = idprov_proto::Fingerprint::of_der(&first_certificate(&dir.join(files::CA_CHAIN))?);
    if json {
        output::json(&serde_json::json!({ "fingerprint": fp.to_string(), "hex": fp.to_hex() }));
    } else {
        println!("{fp}");
    }
    Ok(())
}
