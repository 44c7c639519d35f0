//! The CRL: signed by the CA, its number kept in the registry so it only
//! grows, served at `/idprov/crl` and written atomically to `crl.pem` in the
//! data directory for services that read a file (mosquitto's `crlfile`).

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
    // During a rollover's transition the previous CA signs a CRL of its
    // own (a CRL speaks for its issuer's certificates): the file and the
    // PEM answer carry both, so services check certificates of either.
    let previous = match app.ca.previous() {
        Some(previous) => Some(
            previous
                .sign_crl(&entries, number, now, now + CRL_VALIDITY)
                .map_err(|e| ApiError::Internal(format!("signing the previous CA's CRL: {e}")))?,
        ),
        None => None,
    };
    app.registry.store_crl(record.clone()).await?;
    let mut text = idprov_ca::pem::encode("X509 CRL", &record.der);
    if let Some(der) = &previous {
        text.push_str(&idprov_ca::pem::encode("X509 CRL", der));
    }
    if let Ok(mut slot) = app.previous_crl.lock() {
        *slot = previous;
    }
    let path = app.config.data_dir.join(CRL_FILE);
    write_public_file(&path, text.as_bytes())
        .map_err(|e| ApiError::Internal(format!("writing {}: {e}", path.display())))?;
    tracing::info!(number, revoked = entries.len(), "CRL issued");
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
