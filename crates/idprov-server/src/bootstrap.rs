//! Start-up: the CA, the server's TLS certificate and the administrator
//! credential, created on first start and reused (or re-issued when stale)
//! afterwards.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::SystemTime;

use idprov_ca::ocsp::Responder;
use idprov_ca::{Ca, CertInfo, IssueParams, IssuedCert, KeyAlgorithm, Purpose, Usage, pem};
use idprov_proto::UnixTime;
use idprov_store::{
    Actor, AuditEvent, AuditRecord, CertKind, IssueKind, IssueRecord, NewCertificate, Registry,
};
use rustls_pki_types::CertificateDer;

use crate::config::{CaSource, ServerConfig, host_name};
use crate::datadir::{
    DataDir, check_private_permissions, files, write_private_file, write_public_file,
};
use crate::defaults;
use crate::error::StartError;

/// The CN of the administrator credential created for the local CLI.
pub const LOCAL_ADMIN_NAME: &str = "admin";

/// The names and addresses the server certificate must cover: localhost,
/// the host name and `<hostname>.local`, the public name, configured extra
/// names, and every address of the machine's interfaces.
pub fn server_identities(config: &ServerConfig) -> (Vec<String>, Vec<IpAddr>) {
    let host = host_name();
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut ips: BTreeSet<IpAddr> = BTreeSet::new();
    names.insert("localhost".into());
    if host != "localhost" {
        names.insert(host.clone());
        names.insert(format!("{host}.local"));
    }
    for n in std::iter::once(&config.public_name).chain(&config.server_names) {
        let bare = n.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => {
                ips.insert(ip);
            }
            Err(_) => {
                names.insert(n.to_ascii_lowercase());
            }
        }
    }
    ips.insert(IpAddr::from([127, 0, 0, 1]));
    ips.insert(IpAddr::from(std::net::Ipv6Addr::LOCALHOST));
    if let Ok(ifaces) = if_addrs::get_if_addrs() {
        for iface in ifaces {
            ips.insert(iface.ip());
        }
    }
    for addr in &config.listen {
        if !addr.ip().is_unspecified() {
            ips.insert(addr.ip());
        }
    }
    (names.into_iter().collect(), ips.into_iter().collect())
}

/// Loads the configured CA, or the generated one, generating it on first start.
pub fn load_or_generate_ca(
    config: &ServerConfig,
    dir: &DataDir,
    now: SystemTime,
) -> Result<Ca, StartError> {
    match &config.ca {
        CaSource::Files { cert, key, chain } => {
            check_private_permissions(key).map_err(|e| StartError::file(key, e))?;
            let cert_pem = read(cert)?;
            let key_pem = zeroize::Zeroizing::new(read(key)?);
            let chain_pem = chain.as_deref().map(read).transpose()?;
            Ca::load(&cert_pem, &key_pem, chain_pem.as_deref(), now)
                .map_err(|e| StartError::Ca(format!("{}: {e}", cert.display())))
        }
        CaSource::Generated { validity, key_type } => {
            let cert_path = dir.path(files::CA_CERT);
            let key_path = dir.path(files::CA_KEY);
            if cert_path.exists() || key_path.exists() {
                check_private_permissions(&key_path).map_err(|e| StartError::file(&key_path, e))?;
                let cert_pem = read(&cert_path)?;
                let key_pem = zeroize::Zeroizing::new(read(&key_path)?);
                return Ca::load(&cert_pem, &key_pem, None, now)
                    .map_err(|e| StartError::Ca(format!("{}: {e}", cert_path.display())));
            }
            let generated = Ca::generate(&config.organization, *key_type, now, *validity)
                .map_err(|e| StartError::Ca(e.to_string()))?;
            // The key first: a CA certificate without its key would be unusable.
            write_private_file(&key_path, generated.key_pem.as_bytes())
                .map_err(|e| StartError::file(&key_path, e))?;
            write_public_file(&cert_path, generated.cert_pem.as_bytes())
                .map_err(|e| StartError::file(&cert_path, e))?;
            tracing::info!(
                fingerprint = %generated.ca.fingerprint(),
                "generated a new CA"
            );
            Ok(generated.ca)
        }
    }
}

fn read(path: &Path) -> Result<String, StartError> {
    std::fs::read_to_string(path).map_err(|e| StartError::file(path, e))
}

/// Why an existing credential file is not reused.
fn stale_reason(
    ca: &Ca,
    cert_path: &Path,
    key_path: &Path,
    now: SystemTime,
    purpose: Purpose,
    wanted: Option<(&[String], &[IpAddr])>,
) -> Option<&'static str> {
    if !cert_path.exists() || !key_path.exists() {
        return Some("missing");
    }
    if check_private_permissions(key_path).is_err() {
        return Some("its key file had loose permissions");
    }
    let Ok(text) = std::fs::read_to_string(cert_path) else {
        return Some("unreadable");
    };
    let Ok(certs) = pem::parse_certificates(&text) else {
        return Some("unreadable");
    };
    let Ok(info) = CertInfo::from_der(&certs[0]) else {
        return Some("unreadable");
    };
    // The key must belong to the certificate (a half-written pair is re-made).
    let key_ok = std::fs::read_to_string(key_path)
        .ok()
        .and_then(|k| idprov_ca::KeyPair::from_pem(&k).ok())
        .is_some_and(|k| rcgen_spki(&k) == info.spki_der);
    if !key_ok {
        return Some("its key does not match");
    }
    if !ca.verifies(&certs[0], &certs[1..], now, purpose) {
        return Some("not issued by the current CA, or expired");
    }
    let lifetime = info.not_after.secs_since(info.not_before).max(1) as f64;
    let left = info.not_after.secs_since(UnixTime::from(now)) as f64;
    if left / lifetime < defaults::REISSUE_REMAINING_FRACTION {
        return Some("close to expiry");
    }
    if let Some((names, ips)) = wanted {
        let have_names: BTreeSet<&str> = info.dns_names.iter().map(String::as_str).collect();
        let want_names: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        let have_ips: BTreeSet<&IpAddr> = info.ip_addresses.iter().collect();
        let want_ips: BTreeSet<&IpAddr> = ips.iter().collect();
        if have_names != want_names || have_ips != want_ips {
            return Some("the host names or addresses changed");
        }
    }
    None
}

fn rcgen_spki(k: &idprov_ca::KeyPair) -> Vec<u8> {
    // `KeyPair` exposes its SPKI through rcgen's `PublicKeyData`.
    idprov_ca::PublicKey::from_pem(&k.public_key_pem())
        .map(|p| p.spki_der().to_vec())
        .unwrap_or_default()
}

/// Records a locally issued credential in the registry (so it can be
/// listed and revoked) with its audit entry.
/// Issues one of the server's own credentials with a new P-256 key: writes
/// the key (0600) and the certificate with the CA's intermediates, and
/// records it in the registry.
async fn issue_local(
    ca: &Ca,
    registry: &dyn Registry,
    kind: CertKind,
    params: IssueParams<'_>,
    (key_path, cert_path): (&Path, &Path),
    reason: &str,
) -> Result<(), StartError> {
    let (subject, now) = (params.common_name.to_owned(), params.now);
    let (issued, key_pem) = ca
        .issue_with_new_key(KeyAlgorithm::EcdsaP256, params)
        .map_err(|e| StartError::Ca(e.to_string()))?;
    write_private_file(key_path, key_pem.as_bytes()).map_err(|e| StartError::file(key_path, e))?;
    let chain_pem = format!("{}{}", issued.pem, ca.intermediates_pem());
    write_public_file(cert_path, chain_pem.as_bytes())
        .map_err(|e| StartError::file(cert_path, e))?;
    record_local(registry, kind, &subject, &issued, now, reason).await
}

/// Issues one of the server's own credentials again (see [`issue_local`])
/// when [`stale_reason`] finds the files at `paths` stale for `purpose`
/// (and, for the server certificate, its `wanted` names); says why it did.
async fn reissue_if_stale(
    ca: &Ca,
    registry: &dyn Registry,
    (kind, purpose): (CertKind, Purpose),
    params: IssueParams<'_>,
    (key_path, cert_path): (&Path, &Path),
    wanted: Option<(&[String], &[IpAddr])>,
) -> Result<Option<&'static str>, StartError> {
    let Some(reason) = stale_reason(ca, cert_path, key_path, params.now, purpose, wanted) else {
        return Ok(None);
    };
    issue_local(ca, registry, kind, params, (key_path, cert_path), reason).await?;
    Ok(Some(reason))
}

/// What the CA is asked for one of the server's own credentials: no
/// revocation URLs (the server's own certificates are not checked by
/// relying parties through them).
fn local_params<'a>(
    config: &'a ServerConfig,
    common_name: &'a str,
    organizational_unit: &'a str,
    usage: Usage,
    now: SystemTime,
    validity: std::time::Duration,
) -> IssueParams<'a> {
    IssueParams {
        common_name,
        organizational_unit,
        organization: &config.organization,
        usage,
        now,
        validity,
        crl_url: None,
        ocsp_url: None,
    }
}

/// The certificates of a PEM file.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, StartError> {
    pem::parse_certificates(&read(path)?)
        .map_err(|e| StartError::Ca(format!("{}: {e}", path.display())))
}

async fn record_local(
    registry: &dyn Registry,
    kind: CertKind,
    subject: &str,
    issued: &IssuedCert,
    now: SystemTime,
    reason: &str,
) -> Result<(), StartError> {
    let info = CertInfo::from_der(&issued.der).map_err(|e| StartError::Ca(e.to_string()))?;
    let key = idprov_ca::PublicKey::from_spki_der(&info.spki_der)
        .map_err(|e| StartError::Ca(e.to_string()))?;
    let at = UnixTime::from(now);
    registry
        .record_issue(IssueRecord {
            cert: NewCertificate {
                serial: issued.serial.clone(),
                kind,
                subject: subject.to_owned(),
                pem: issued.pem.clone(),
                key_fingerprint: key.fingerprint(),
                key_type: key.key_type().to_string(),
                not_before: issued.not_before,
                not_after: issued.not_after,
                issued_at: at,
                issue_kind: IssueKind::Local,
                authorized_by: Actor::system().to_string(),
                protocol: None,
            },
            consume_secret: None,
            consume_approval: None,
            reset_lockout_for: None,
            clear_waiting_key: None,
            supersede_older_at: None,
            audit: AuditRecord::new(
                at,
                Actor::system(),
                AuditEvent::ServerCertificateIssued {
                    serial: issued.serial.clone(),
                    kind: kind.as_str().to_owned(),
                    subject: subject.to_owned(),
                    not_after: issued.not_after,
                    reason: reason.to_owned(),
                },
                None,
            ),
        })
        .await
        .map_err(StartError::Store)?;
    Ok(())
}

/// The server's TLS credential, ready for rustls.
#[derive(Debug)]
pub struct ServerCredential {
    /// Leaf followed by intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// PKCS#8 PEM of the key.
    pub key_pem: zeroize::Zeroizing<String>,
}

/// Reuses or (re-)issues the server certificate for the current names.
pub async fn server_credential(
    config: &ServerConfig,
    ca: &Ca,
    registry: &dyn Registry,
    now: SystemTime,
) -> Result<ServerCredential, StartError> {
    let cert_path = config.data_dir.join(files::SERVER_CERT);
    let key_path = config.data_dir.join(files::SERVER_KEY);
    let (names, ips) = server_identities(config);
    let host = host_name();
    let usage = Usage::Server {
        dns_names: names.clone(),
        ip_addresses: ips.clone(),
    };
    let params = local_params(config, &host, "service", usage, now, config.server_validity);
    let paths = (key_path.as_path(), cert_path.as_path());
    let wanted = Some((&names[..], &ips[..]));
    let kind = (CertKind::Server, Purpose::ServerAuth);
    if let Some(reason) = reissue_if_stale(ca, registry, kind, params, paths, wanted).await? {
        tracing::info!(reason, names = ?names, addresses = ?ips, "issued the server TLS certificate");
    }
    Ok(ServerCredential {
        chain: read_chain(&cert_path)?,
        key_pem: zeroize::Zeroizing::new(read(&key_path)?),
    })
}

/// Reuses or (re-)issues the administrator credential of the local CLI, and
/// writes the CA chain file clients trust.
pub async fn local_admin_credential(
    config: &ServerConfig,
    dir: &DataDir,
    ca: &Ca,
    registry: &dyn Registry,
    now: SystemTime,
) -> Result<(), StartError> {
    let chain_path = dir.path(files::CA_CHAIN);
    write_public_file(&chain_path, ca.chain_pem().as_bytes())
        .map_err(|e| StartError::file(&chain_path, e))?;
    let cert_path = dir.path(files::ADMIN_CERT);
    let key_path = dir.path(files::ADMIN_KEY);
    let params = local_params(
        config,
        LOCAL_ADMIN_NAME,
        "admin",
        Usage::Client,
        now,
        config.admin_validity,
    );
    let paths = (key_path.as_path(), cert_path.as_path());
    let kind = (CertKind::Admin, Purpose::ClientAuth);
    if let Some(reason) = reissue_if_stale(ca, registry, kind, params, paths, None).await? {
        tracing::info!(reason, path = %cert_path.display(), "issued the local administrator credential");
    }
    Ok(())
}

/// The delegated OCSP responder: its certificate and key are reused from
/// the data directory, or (re-)issued — with a new key, recorded and
/// audited like the server's own certificate — when missing, not the
/// current CA's, or close to expiry. The housekeeping sweep calls this too,
/// so the responder is renewed while the server runs.
///
/// Why a delegated responder rather than the CA: answers are signed per
/// request, and the CA key signs only certificates and CRLs, so it stays
/// out of the per-request path (and may live somewhere slow to reach, a
/// token); a leaked responder key is worth at most its short validity.
pub async fn ocsp_responder(
    config: &ServerConfig,
    ca: &Ca,
    registry: &dyn Registry,
    now: SystemTime,
) -> Result<Responder, StartError> {
    let cert_path = config.data_dir.join(files::OCSP_CERT);
    let key_path = config.data_dir.join(files::OCSP_KEY);
    let common_name = format!("{} OCSP responder", config.organization);
    let params = local_params(
        config,
        &common_name,
        "service",
        Usage::OcspSigning,
        now,
        defaults::OCSP_RESPONDER_VALIDITY,
    );
    let paths = (key_path.as_path(), cert_path.as_path());
    let kind = (CertKind::Ocsp, Purpose::OcspSigning);
    if let Some(reason) = reissue_if_stale(ca, registry, kind, params, paths, None).await? {
        tracing::info!(reason, "issued the OCSP responder certificate");
    }
    let chain = read_chain(&cert_path)?;
    let key_pem = zeroize::Zeroizing::new(read(&key_path)?);
    Responder::new(ca, chain[0].clone(), &key_pem, now)
        .map_err(|e| StartError::Ca(format!("{}: {e}", cert_path.display())))
}
