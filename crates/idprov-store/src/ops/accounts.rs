//! [`Accounts`]: administrators' web passwords and the client
//! certificates of admins and services, on any backend.

use async_trait::async_trait;

use super::{
    FromRow, Store, all, append_audit, cert_columns, first, in_read, in_read_point, in_write,
};
use crate::audit::AuditRecord;
use crate::error::Result;
use crate::model::*;
use crate::registry::Accounts;
use crate::sql::{Backend, args};

#[async_trait]
impl<B: Backend> Accounts for Store<B> {
    async fn set_web_password(&self, password: WebPassword, audit: AuditRecord) -> Result<()> {
        in_write!(self, |db| {
            db.exec(
                "INSERT INTO web_passwords (name, hash, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at",
                args![&password.name, &password.hash, password.updated_at],
            )
            .await?;
            append_audit(db, &audit).await?;
            Ok(())
        })
        .await
    }

    async fn web_password(&self, name: &str) -> Result<Option<WebPassword>> {
        let name = name.to_owned();
        in_read_point!(self, |db| {
            first(
                db,
                "SELECT name, hash, updated_at FROM web_passwords WHERE name = $1",
                args![&name],
                WebPassword::decode,
            )
            .await
        })
        .await
    }

    async fn remove_web_password(&self, name: &str, audit: AuditRecord) -> Result<bool> {
        let name = name.to_owned();
        in_write!(self, |db| {
            let removed = db
                .exec("DELETE FROM web_passwords WHERE name = $1", args![&name])
                .await?
                > 0;
            if removed {
                append_audit(db, &audit).await?;
            }
            Ok(removed)
        })
        .await
    }

    async fn web_password_count(&self) -> Result<u64> {
        in_read!(self, |db| {
            db.one("SELECT COUNT(*) FROM web_passwords", args![])
                .await?
                .count(0)
        })
        .await
    }

    async fn certificates_by_kind(&self, kind: CertKind) -> Result<Vec<CertRecord>> {
        in_read!(self, |db| {
            all(
                db,
                concat!(
                    "SELECT ",
                    cert_columns!(),
                    " FROM certificates WHERE kind = $1 ORDER BY subject, id DESC"
                ),
                args![kind.as_str()],
                CertRecord::decode,
            )
            .await
        })
        .await
    }
}
