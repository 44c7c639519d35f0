//! Signed audit checkpoints: the chain's head (sequence number and hash)
//! signed with the CA key, so a truncated log or a recomputed tail is
//! detected by `idprov audit verify`.

use idprov_store::Checkpoint;

use crate::error::ApiError;
use crate::state::AppState;

/// Signs the current head unless it is already covered; returns the newest
/// checkpoint.
pub async fn sign_head(app: &AppState) -> Result<Option<Checkpoint>, ApiError> {
    let Some((seq, head_hash)) = app.registry.audit_head().await? else {
        return Ok(None);
    };
    let existing = app.registry.checkpoints().await?;
    if let Some(last) = existing.last()
        && last.seq >= seq
    {
        return Ok(Some(last.clone()));
    }
    let at = app.now_unix();
    let signature = app
        .ca
        .sign(&Checkpoint::message(seq, &head_hash, at))
        .map_err(|e| ApiError::Internal(format!("signing an audit checkpoint: {e}")))?;
    let checkpoint = Checkpoint {
        seq,
        head_hash,
        at,
        signer: app.ca.fingerprint().to_string(),
        signature,
    };
    app.registry.add_checkpoint(checkpoint.clone()).await?;
    Ok(Some(checkpoint))
}
