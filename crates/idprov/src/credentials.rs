//! `idprov admin …` and `idprov certs …`: certificates for people and
//! services. Keys are generated here and never leave this machine; the
//! server signs the public key.

use std::path::Path;
use std::time::Duration;

use idprov_ca::KeyAlgorithm;
use idprov_proto::admin::{CredentialIssued, CredentialRequest, RevokeRequest};
use zeroize::Zeroizing;

use crate::Failure;
use crate::admin::connect;
use crate::cli::{AdminCommand, CertsCommand, Connection};
use crate::files::write_new_private;
use crate::output;

fn days(d: Duration) -> Result<u32, Failure> {
    u32::try_from(d.as_secs().div_ceil(86_400))
        .ok()
        .filter(|d| *d > 0)
        .ok_or_else(|| Failure::usage("--validity must be at least a day"))
}

/// Generates a key, has the server certify it, writes `NAME.pem` and `NAME.key`.
async fn issue(
    conn: &Connection,
    ou: &str,
    cn: &str,
    sans: Vec<String>,
    validity: Duration,
    out: &Path,
) -> Result<(CredentialIssued, Zeroizing<String>), Failure> {
    idprov_proto::DeviceId::parse(cn).map_err(|e| Failure::usage(format!("name: {e}")))?;
    let client = connect(conn)?;
    let key = KeyAlgorithm::EcdsaP256
        .generate()
        .map_err(|e| Failure::usage(format!("generating a key: {e}")))?;
    let issued = client
        .issue_credential(&CredentialRequest {
            ou: ou.to_owned(),
            cn: cn.to_owned(),
            public_key_pem: key.public_key_pem(),
            sans,
            validity_days: Some(days(validity)?),
        })
        .await?;
    let key_pem = Zeroizing::new(key.serialize_pem());
    std::fs::create_dir_all(out).map_err(|e| Failure::usage(format!("{}: {e}", out.display())))?;
    write_new_private(&out.join(format!("{cn}.key")), key_pem.as_bytes())?;
    std::fs::write(out.join(format!("{cn}.pem")), &issued.cert_pem)
        .map_err(|e| Failure::usage(format!("{}: {e}", out.display())))?;
    Ok((issued, key_pem))
}

fn p12_password() -> Result<Zeroizing<String>, Failure> {
    if let Ok(p) = std::env::var("IDPROV_P12_PASSWORD") {
        return Ok(Zeroizing::new(p));
    }
    new_password("Password for the PKCS#12 file: ")
}

/// A new password: typed twice on a terminal, else the first line of
/// standard input (for scripts). Never empty.
fn new_password(prompt: &str) -> Result<Zeroizing<String>, Failure> {
    let password = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        prompt_twice(prompt)?
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Failure::usage(format!("reading the password: {e}")))?;
        Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    if password.is_empty() {
        return Err(Failure::usage(
            "an empty password (give it on the terminal, or as the first line of standard input)",
        ));
    }
    Ok(password)
}

/// A new password typed twice on the terminal (not echoed).
fn prompt_twice(prompt: &str) -> Result<Zeroizing<String>, Failure> {
    let read = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| Failure::usage(format!("reading the password: {e}")))
    };
    let first = read(prompt)?;
    if *first != *read("Again: ")? {
        return Err(Failure::usage("the passwords differ"));
    }
    Ok(first)
}

/// A PKCS#12 bundle of the key and the certificate chain, for a browser.
fn write_p12(
    path: &Path,
    name: &str,
    key_pem: &str,
    issued: &CredentialIssued,
    password: &str,
) -> Result<(), Failure> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    let key_der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| Failure::usage(format!("the new key: {e:?}")))?;
    let key = PrivateKey::from_der(key_der.secret_der())
        .map_err(|e| Failure::usage(format!("PKCS#12 key: {e}")))?;
    let mut chain = Vec::new();
    let leaf_chain = idprov_ca::pem::parse_certificates(&issued.cert_pem)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let ca_chain = idprov_ca::pem::parse_certificates(&issued.ca_pem)
        .map_err(|e| Failure::usage(e.to_string()))?;
    for der in leaf_chain.iter().chain(ca_chain.iter()) {
        chain.push(
            Certificate::from_der(der)
                .map_err(|e| Failure::usage(format!("PKCS#12 certificate: {e}")))?,
        );
    }
    let local_key_id = issued.serial.as_str().as_bytes().to_vec();
    let mut store = KeyStore::new();
    store.add_entry(
        name,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, key, chain)),
    );
    let bytes = store
        .writer(password)
        .write()
        .map_err(|e| Failure::usage(format!("writing PKCS#12: {e}")))?;
    write_new_private(path, &bytes)
}

pub async fn admin(cmd: AdminCommand) -> Result<(), Failure> {
    match cmd {
        AdminCommand::Create {
            name,
            out,
            p12,
            validity,
            conn,
        } => {
            // The bundle's password first: a failed prompt issues nothing.
            let p12_password = p12.as_ref().map(|_| p12_password()).transpose()?;
            if let Some(path) = &p12
                && path.exists()
            {
                return Err(Failure::usage(format!(
                    "{} exists: choose another --p12 file",
                    path.display()
                )));
            }
            let (issued, key_pem) =
                issue(&conn, "admin", &name, Vec::new(), validity, &out).await?;
            if let (Some(path), Some(password)) = (&p12, &p12_password) {
                write_p12(path, &name, &key_pem, &issued, password)?;
            }
            if conn.json {
                output::json(&issued);
            } else {
                println!(
                    "Administrator {name}: {} and {} (serial {}, until {}){}",
                    out.join(format!("{name}.pem")).display(),
                    out.join(format!("{name}.key")).display(),
                    issued.serial,
                    issued.not_after,
                    p12.map(|p| format!("; PKCS#12 in {}", p.display()))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        AdminCommand::List { conn } => list(&conn, Some("admin")).await,
        AdminCommand::Revoke { name, reason, conn } => revoke(&conn, "admin", &name, reason).await,
        AdminCommand::Password {
            name,
            remove: true,
            conn,
        } => {
            crate::admin::connect(&conn)?
                .remove_web_password(&name)
                .await?;
            if conn.json {
                output::json(&serde_json::json!({ "name": name, "removed": true }));
            } else {
                println!(
                    "Web password of {} removed; its web sessions ended.",
                    output::safe(&name)
                );
            }
            Ok(())
        }
        AdminCommand::Password {
            name,
            remove: false,
            conn,
        } => {
            let password = new_password(&format!("Web password for {name}: "))?;
            crate::admin::connect(&conn)?
                .set_web_password(&name, &password)
                .await?;
            if conn.json {
                output::json(&serde_json::json!({ "name": name, "set": true }));
            } else {
                println!(
                    "Web password set for {}: sign in at /admin/.",
                    output::safe(&name)
                );
            }
            Ok(())
        }
    }
}

pub async fn certs(cmd: CertsCommand) -> Result<(), Failure> {
    match cmd {
        CertsCommand::Issue {
            ou,
            cn,
            sans,
            out,
            validity,
            conn,
        } => {
            if !matches!(ou.as_str(), "plugin" | "service") {
                return Err(Failure::usage(
                    "--ou must be plugin or service (administrators: idprov admin create)",
                ));
            }
            let (issued, _) = issue(&conn, &ou, &cn, sans, validity, &out).await?;
            std::fs::write(out.join("ca.pem"), &issued.ca_pem)
                .map_err(|e| Failure::usage(format!("{}: {e}", out.display())))?;
            if conn.json {
                output::json(&issued);
            } else {
                println!(
                    "{ou} {cn}: {} and {} with ca.pem (serial {}, until {})",
                    out.join(format!("{cn}.pem")).display(),
                    out.join(format!("{cn}.key")).display(),
                    issued.serial,
                    issued.not_after
                );
            }
            Ok(())
        }
        CertsCommand::List { ou, conn } => list(&conn, ou.as_deref()).await,
        CertsCommand::Revoke {
            ou,
            cn,
            reason,
            conn,
        } => revoke(&conn, &ou, &cn, reason).await,
    }
}

async fn list(conn: &Connection, ou: Option<&str>) -> Result<(), Failure> {
    let mut certs = connect(conn)?.credentials(ou).await?;
    if ou.is_none() {
        // `certs list` is about plugins and services; `admin list` shows
        // administrators.
        certs.retain(|c| c.kind != idprov_proto::kinds::CertKind::Admin);
    }
    if conn.json {
        output::json(&certs);
    } else {
        output::table(
            ["KIND", "NAME", "SERIAL", "NOT AFTER", "REVOKED", "BY"],
            certs
                .iter()
                .map(|c| {
                    [
                        c.kind.to_string(),
                        c.subject.clone(),
                        c.serial.to_string(),
                        c.not_after.clone(),
                        c.revoked_at.clone().unwrap_or_else(|| "-".into()),
                        c.authorized_by.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        );
    }
    Ok(())
}

async fn revoke(
    conn: &Connection,
    ou: &str,
    cn: &str,
    reason: Option<String>,
) -> Result<(), Failure> {
    let revoked = connect(conn)?
        .revoke_credential(
            ou,
            cn,
            &RevokeRequest {
                reason,
                note: None,
                serial: None,
            },
        )
        .await?;
    if conn.json {
        output::json(&revoked);
    } else {
        println!(
            "Revoked {} certificate(s) of {ou} {cn}; CRL number {}.",
            revoked.serials.len(),
            revoked.crl_number
        );
    }
    Ok(())
}
