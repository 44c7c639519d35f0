//! The PostgreSQL schema and its versioned migrations.
//!
//! The tables mirror the SQLite schema (`sqlite/schema.rs`) migration for
//! migration, so a version number means the same tables on both backends.
//! The translation rules:
//!
//! * every text column is `COLLATE "C"`: comparisons and `ORDER BY` are byte
//!   order, as SQLite's default `BINARY` collation, whatever the database's
//!   default collation is — keyset paging would skip or repeat rows otherwise;
//! * SQLite `INTEGER` (Unix seconds, counters) is `BIGINT`, `BLOB` is `BYTEA`;
//! * the audit detail stays `TEXT`: its exact text is what the hash covers
//!   once parsed back, and `JSONB` would normalise it;
//! * `AUTOINCREMENT` ids are identity columns: never reused, like SQLite's.

use tokio_postgres::Client;

use super::{MIGRATION_LOCK, db_error};
use crate::error::{Result, StoreError};

/// Migrations in order; the schema version is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: the registry of the core server.
    r#"
    CREATE TABLE devices (
        device_id   TEXT COLLATE "C" PRIMARY KEY,
        created_at  BIGINT NOT NULL
    );

    CREATE TABLE oob_secrets (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        device_id   TEXT COLLATE "C" NOT NULL UNIQUE,
        sealed      BYTEA NOT NULL,
        key_id      TEXT COLLATE "C" NOT NULL,
        created_at  BIGINT NOT NULL,
        valid_until BIGINT NOT NULL,
        created_by  TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX oob_secrets_valid_until ON oob_secrets(valid_until);

    CREATE TABLE consumed_secrets (
        device_id       TEXT COLLATE "C" NOT NULL,
        key_fingerprint TEXT COLLATE "C" NOT NULL,
        sealed          BYTEA NOT NULL,
        key_id          TEXT COLLATE "C" NOT NULL,
        serial          TEXT COLLATE "C" NOT NULL,
        consumed_at     BIGINT NOT NULL,
        PRIMARY KEY (device_id, key_fingerprint)
    );

    CREATE TABLE certificates (
        id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        serial            TEXT COLLATE "C" NOT NULL UNIQUE,
        kind              TEXT COLLATE "C" NOT NULL,
        subject           TEXT COLLATE "C" NOT NULL,
        pem               TEXT COLLATE "C" NOT NULL,
        key_fingerprint   TEXT COLLATE "C" NOT NULL,
        key_type          TEXT COLLATE "C" NOT NULL,
        not_before        BIGINT NOT NULL,
        not_after         BIGINT NOT NULL,
        issued_at         BIGINT NOT NULL,
        issue_kind        TEXT COLLATE "C" NOT NULL,
        authorized_by     TEXT COLLATE "C" NOT NULL,
        revoked_at        BIGINT,
        revocation_reason BIGINT
    );
    CREATE INDEX certificates_subject ON certificates(kind, subject, id);

    CREATE TABLE waiting_requests (
        device_id       TEXT COLLATE "C" NOT NULL,
        key_fingerprint TEXT COLLATE "C" NOT NULL,
        key_type        TEXT COLLATE "C" NOT NULL,
        public_key_pem  TEXT COLLATE "C" NOT NULL,
        claimed_ip      TEXT COLLATE "C" NOT NULL,
        claimed_mac     TEXT COLLATE "C" NOT NULL,
        source          TEXT COLLATE "C" NOT NULL,
        first_seen      BIGINT NOT NULL,
        last_seen       BIGINT NOT NULL,
        attempts        BIGINT NOT NULL,
        PRIMARY KEY (device_id, key_fingerprint)
    );
    CREATE INDEX waiting_requests_source ON waiting_requests(source);

    CREATE TABLE lockouts (
        device_id    TEXT COLLATE "C" NOT NULL,
        source       TEXT COLLATE "C" NOT NULL,
        failures     BIGINT NOT NULL,
        last_failure BIGINT NOT NULL,
        locked_until BIGINT NOT NULL,
        PRIMARY KEY (device_id, source)
    );

    CREATE TABLE audit_log (
        seq       BIGINT PRIMARY KEY,
        at        BIGINT NOT NULL,
        actor     TEXT COLLATE "C" NOT NULL,
        event     TEXT COLLATE "C" NOT NULL,
        device_id TEXT COLLATE "C",
        detail    TEXT COLLATE "C" NOT NULL,
        prev_hash TEXT COLLATE "C" NOT NULL,
        hash      TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX audit_log_device ON audit_log(device_id, seq);

    -- Append-only tables: the database itself refuses changes. Statement
    -- triggers, so even an UPDATE or DELETE that matches nothing is refused,
    -- and TRUNCATE (which fires no row trigger) too.
    CREATE FUNCTION idprov_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '%', TG_ARGV[0];
    END
    $$;
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION idprov_refuse_change('the audit log is append-only');
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION idprov_refuse_change('the audit log is append-only');
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION idprov_refuse_change('the audit log is append-only');
    "#,
    // 2: administration — approvals and rejections of waiting requests, the
    // CRL's state, signed audit checkpoints.
    r#"
    CREATE TABLE approvals (
        device_id       TEXT COLLATE "C" NOT NULL,
        key_fingerprint TEXT COLLATE "C" NOT NULL,
        approved_by     TEXT COLLATE "C" NOT NULL,
        created_at      BIGINT NOT NULL,
        expires_at      BIGINT NOT NULL,
        PRIMARY KEY (device_id, key_fingerprint)
    );

    CREATE TABLE rejections (
        device_id       TEXT COLLATE "C" NOT NULL,
        key_fingerprint TEXT COLLATE "C" NOT NULL,
        rejected_by     TEXT COLLATE "C" NOT NULL,
        reason          TEXT COLLATE "C" NOT NULL,
        created_at      BIGINT NOT NULL,
        PRIMARY KEY (device_id, key_fingerprint)
    );

    CREATE INDEX certificates_revoked ON certificates(revoked_at) WHERE revoked_at IS NOT NULL;
    CREATE INDEX certificates_not_after ON certificates(kind, not_after);
    CREATE INDEX waiting_requests_last_seen ON waiting_requests(last_seen);

    CREATE TABLE crl_state (
        id          BIGINT PRIMARY KEY CHECK (id = 1),
        number      BIGINT NOT NULL,
        this_update BIGINT NOT NULL,
        next_update BIGINT NOT NULL,
        der         BYTEA NOT NULL
    );

    CREATE TABLE audit_checkpoints (
        seq       BIGINT PRIMARY KEY,
        head_hash TEXT COLLATE "C" NOT NULL,
        at        BIGINT NOT NULL,
        signer    TEXT COLLATE "C" NOT NULL,
        signature BYTEA NOT NULL
    );
    CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
        FOR EACH STATEMENT EXECUTE FUNCTION idprov_refuse_change('audit checkpoints are append-only');
    CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
        FOR EACH STATEMENT EXECUTE FUNCTION idprov_refuse_change('audit checkpoints are append-only');
    CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
        FOR EACH STATEMENT EXECUTE FUNCTION idprov_refuse_change('audit checkpoints are append-only');
    "#,
    // 3: the admin web page — administrators' passwords (argon2id).
    r#"
    CREATE TABLE web_passwords (
        name        TEXT COLLATE "C" PRIMARY KEY,
        hash        TEXT COLLATE "C" NOT NULL,
        updated_at  BIGINT NOT NULL
    );
    "#,
    // 4: wrong secrets per device ID across every source (the guess budget).
    r#"
    CREATE TABLE guess_budgets (
        device_id    TEXT COLLATE "C" PRIMARY KEY,
        secret_id    BIGINT NOT NULL,
        window_start BIGINT NOT NULL,
        failures     BIGINT NOT NULL
    );
    "#,
    // 5: the waiting queue's size per source and in total (source ''),
    // kept by triggers (per statement, from the transition tables, so a
    // sweep deleting thousands of rows updates each count once).
    r#"
    CREATE TABLE waiting_counts (
        source TEXT COLLATE "C" PRIMARY KEY,
        n      BIGINT NOT NULL
    );
    INSERT INTO waiting_counts (source, n)
        SELECT source, COUNT(*) FROM waiting_requests GROUP BY source;
    INSERT INTO waiting_counts (source, n) SELECT '', COUNT(*) FROM waiting_requests;

    CREATE FUNCTION idprov_waiting_counts_add() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO waiting_counts (source, n)
            SELECT source, COUNT(*) FROM added GROUP BY source
            ON CONFLICT (source) DO UPDATE SET n = waiting_counts.n + excluded.n;
        UPDATE waiting_counts SET n = n + (SELECT COUNT(*) FROM added) WHERE source = '';
        RETURN NULL;
    END $$;
    CREATE FUNCTION idprov_waiting_counts_remove() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE waiting_counts w SET n = w.n - g.k
            FROM (SELECT source, COUNT(*) AS k FROM removed GROUP BY source) g
            WHERE w.source = g.source;
        DELETE FROM waiting_counts WHERE n <= 0 AND source <> '';
        UPDATE waiting_counts SET n = n - (SELECT COUNT(*) FROM removed) WHERE source = '';
        RETURN NULL;
    END $$;
    CREATE FUNCTION idprov_waiting_counts_move() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE waiting_counts w SET n = w.n - g.k
            FROM (SELECT o.source, COUNT(*) AS k FROM removed o
                  JOIN added a ON a.device_id = o.device_id AND a.key_fingerprint = o.key_fingerprint
                  WHERE a.source <> o.source GROUP BY o.source) g
            WHERE w.source = g.source;
        DELETE FROM waiting_counts WHERE n <= 0 AND source <> '';
        INSERT INTO waiting_counts (source, n)
            SELECT a.source, COUNT(*) FROM added a
              JOIN removed o ON a.device_id = o.device_id AND a.key_fingerprint = o.key_fingerprint
              WHERE a.source <> o.source GROUP BY a.source
            ON CONFLICT (source) DO UPDATE SET n = waiting_counts.n + excluded.n;
        RETURN NULL;
    END $$;
    CREATE TRIGGER waiting_counts_insert AFTER INSERT ON waiting_requests
        REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION idprov_waiting_counts_add();
    CREATE TRIGGER waiting_counts_delete AFTER DELETE ON waiting_requests
        REFERENCING OLD TABLE AS removed
        FOR EACH STATEMENT EXECUTE FUNCTION idprov_waiting_counts_remove();
    CREATE TRIGGER waiting_counts_move AFTER UPDATE ON waiting_requests
        REFERENCING OLD TABLE AS removed NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION idprov_waiting_counts_move();
    "#,
    // 6: the protocol a device asked by (idprov v1 or EST), recorded with
    // each device certificate and waiting request; everything before came
    // by v1, the only protocol then.
    r#"
    ALTER TABLE certificates ADD COLUMN protocol TEXT COLLATE "C";
    UPDATE certificates SET protocol = 'v1' WHERE kind = 'device';
    ALTER TABLE waiting_requests ADD COLUMN protocol TEXT COLLATE "C" NOT NULL DEFAULT 'v1';
    "#,
    // 7: certificates a newer one of their device supersedes, revoked
    // (reason superseded) by the housekeeping sweep once due.
    r#"
    CREATE TABLE supersessions (
        cert_id    BIGINT PRIMARY KEY,
        device_id  TEXT COLLATE "C" NOT NULL,
        by_serial  TEXT COLLATE "C" NOT NULL,
        due_at     BIGINT NOT NULL
    );
    CREATE INDEX supersessions_due ON supersessions(due_at);
    CREATE INDEX supersessions_device ON supersessions(device_id);
    "#,
    // 8: idprov v2 — the verifier of a registration for v2 only (its
    // `sealed` is then empty: no form of the secret is kept), carried into
    // consumed_secrets with the registration's id (its guess budget), so a
    // device whose v2 answer was lost can run v2 against it again and be
    // re-delivered its certificate (PROTOCOL.md §11.5).
    r#"
    ALTER TABLE oob_secrets ADD COLUMN pake_salt BYTEA;
    ALTER TABLE oob_secrets ADD COLUMN pake_iterations BIGINT;
    ALTER TABLE oob_secrets ADD COLUMN pake_verifier BYTEA;
    ALTER TABLE consumed_secrets ADD COLUMN secret_id BIGINT;
    ALTER TABLE consumed_secrets ADD COLUMN pake_salt BYTEA;
    ALTER TABLE consumed_secrets ADD COLUMN pake_iterations BIGINT;
    ALTER TABLE consumed_secrets ADD COLUMN pake_verifier BYTEA;
    "#,
];

/// The newest schema version this binary knows. Equal to the SQLite
/// backend's [`crate::SCHEMA_VERSION`]: the two are migrated in step.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`SCHEMA_VERSION`], refusing a newer one.
///
/// `client` must be a connection of its own, dropped by the caller
/// afterwards: the migration lock is a session lock, and closing the session
/// releases it even when this fails half-way.
pub(super) async fn migrate(client: &mut Client) -> Result<()> {
    // Two replicas starting together must not both create the tables: the
    // first to take the lock migrates, the second then finds it done.
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_error)?;
    let result = migrate_locked(client).await;
    // Released explicitly on success; on failure the caller drops the
    // session, which releases it too.
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_error)?;
    result
}

async fn migrate_locked(client: &mut Client) -> Result<()> {
    client
        .batch_execute(
            r#"CREATE TABLE IF NOT EXISTS schema_meta (
                key   TEXT COLLATE "C" PRIMARY KEY,
                value BIGINT NOT NULL
            )"#,
        )
        .await
        .map_err(db_error)?;
    let found: i64 = match client
        .query_opt("SELECT value FROM schema_meta WHERE key = 'version'", &[])
        .await
        .map_err(db_error)?
    {
        Some(row) => row
            .try_get(0)
            .map_err(|e| StoreError::Corrupt(format!("schema version: {e}")))?,
        None => 0,
    };
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        let version = i64::try_from(i + 1).unwrap_or(i64::MAX);
        // Each migration and its version bump commit together or not at all
        // (PostgreSQL's DDL is transactional).
        let tx = client.transaction().await.map_err(db_error)?;
        tx.batch_execute(sql).await.map_err(db_error)?;
        tx.execute(
            "INSERT INTO schema_meta (key, value) VALUES ('version', $1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&version],
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        tracing::info!(version, "registry schema migrated (PostgreSQL)");
    }
    Ok(())
}
