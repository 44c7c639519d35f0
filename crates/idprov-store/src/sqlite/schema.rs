//! The SQLite schema and its versioned migrations.

use rusqlite::{Connection, OptionalExtension};

use crate::error::{Result, StoreError};

/// Migrations in order; the schema version is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: the registry of the core server.
    r#"
    CREATE TABLE devices (
        device_id   TEXT PRIMARY KEY,
        created_at  INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE oob_secrets (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        device_id   TEXT NOT NULL UNIQUE,
        sealed      BLOB NOT NULL,
        key_id      TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        valid_until INTEGER NOT NULL,
        created_by  TEXT NOT NULL
    );
    CREATE INDEX oob_secrets_valid_until ON oob_secrets(valid_until);

    CREATE TABLE consumed_secrets (
        device_id       TEXT NOT NULL,
        key_fingerprint TEXT NOT NULL,
        sealed          BLOB NOT NULL,
        key_id          TEXT NOT NULL,
        serial          TEXT NOT NULL,
        consumed_at     INTEGER NOT NULL,
        PRIMARY KEY (device_id, key_fingerprint)
    ) WITHOUT ROWID;

    CREATE TABLE certificates (
        id                INTEGER PRIMARY KEY,
        serial            TEXT NOT NULL UNIQUE,
        kind              TEXT NOT NULL,
        subject           TEXT NOT NULL,
        pem               TEXT NOT NULL,
        key_fingerprint   TEXT NOT NULL,
        key_type          TEXT NOT NULL,
        not_before        INTEGER NOT NULL,
        not_after         INTEGER NOT NULL,
        issued_at         INTEGER NOT NULL,
        issue_kind        TEXT NOT NULL,
        authorized_by     TEXT NOT NULL,
        revoked_at        INTEGER,
        revocation_reason INTEGER
    );
    CREATE INDEX certificates_subject ON certificates(kind, subject, id);

    CREATE TABLE waiting_requests (
        device_id       TEXT NOT NULL,
        key_fingerprint TEXT NOT NULL,
        key_type        TEXT NOT NULL,
        public_key_pem  TEXT NOT NULL,
        claimed_ip      TEXT NOT NULL,
        claimed_mac     TEXT NOT NULL,
        source          TEXT NOT NULL,
        first_seen      INTEGER NOT NULL,
        last_seen       INTEGER NOT NULL,
        attempts        INTEGER NOT NULL,
        PRIMARY KEY (device_id, key_fingerprint)
    ) WITHOUT ROWID;
    CREATE INDEX waiting_requests_source ON waiting_requests(source);

    CREATE TABLE lockouts (
        device_id    TEXT NOT NULL,
        source       TEXT NOT NULL,
        failures     INTEGER NOT NULL,
        last_failure INTEGER NOT NULL,
        locked_until INTEGER NOT NULL,
        PRIMARY KEY (device_id, source)
    ) WITHOUT ROWID;

    CREATE TABLE audit_log (
        seq       INTEGER PRIMARY KEY,
        at        INTEGER NOT NULL,
        actor     TEXT NOT NULL,
        event     TEXT NOT NULL,
        device_id TEXT,
        detail    TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash      TEXT NOT NULL
    );
    CREATE INDEX audit_log_device ON audit_log(device_id, seq);

    -- The audit log is append-only: the database itself refuses changes.
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    "#,
    // 2: administration — approvals and rejections of waiting requests, the
    // CRL's state, signed audit checkpoints, bulk-import bookkeeping.
    r#"
    CREATE TABLE approvals (
        device_id       TEXT NOT NULL,
        key_fingerprint TEXT NOT NULL,
        approved_by     TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        expires_at      INTEGER NOT NULL,
        PRIMARY KEY (device_id, key_fingerprint)
    ) WITHOUT ROWID;

    CREATE TABLE rejections (
        device_id       TEXT NOT NULL,
        key_fingerprint TEXT NOT NULL,
        rejected_by     TEXT NOT NULL,
        reason          TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        PRIMARY KEY (device_id, key_fingerprint)
    ) WITHOUT ROWID;

    CREATE INDEX certificates_revoked ON certificates(revoked_at) WHERE revoked_at IS NOT NULL;
    CREATE INDEX certificates_not_after ON certificates(kind, not_after);
    CREATE INDEX waiting_requests_last_seen ON waiting_requests(last_seen);

    CREATE TABLE crl_state (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        number      INTEGER NOT NULL,
        this_update INTEGER NOT NULL,
        next_update INTEGER NOT NULL,
        der         BLOB NOT NULL
    );

    CREATE TABLE audit_checkpoints (
        seq       INTEGER PRIMARY KEY,
        head_hash TEXT NOT NULL,
        at        INTEGER NOT NULL,
        signer    TEXT NOT NULL,
        signature BLOB NOT NULL
    );
    CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
    CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
    "#,
    // 3: the admin web page — administrators' passwords (argon2id).
    r#"
    CREATE TABLE web_passwords (
        name        TEXT PRIMARY KEY,
        hash        TEXT NOT NULL,
        updated_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 4: wrong secrets per device ID across every source (the guess budget).
    r#"
    CREATE TABLE guess_budgets (
        device_id    TEXT PRIMARY KEY,
        secret_id    INTEGER NOT NULL,
        window_start INTEGER NOT NULL,
        failures     INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 5: the waiting queue's size per source and in total (the row whose
    // source is '': a source is a socket address, never empty), kept by
    // triggers, so the caps are checked in constant time instead of by
    // counting the queue on every new request.
    r#"
    CREATE TABLE waiting_counts (
        source TEXT PRIMARY KEY,
        n      INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO waiting_counts (source, n)
        SELECT source, COUNT(*) FROM waiting_requests GROUP BY source;
    INSERT INTO waiting_counts (source, n) SELECT '', COUNT(*) FROM waiting_requests;

    CREATE TRIGGER waiting_counts_insert AFTER INSERT ON waiting_requests BEGIN
        INSERT INTO waiting_counts (source, n) VALUES (NEW.source, 1)
            ON CONFLICT (source) DO UPDATE SET n = n + 1;
        UPDATE waiting_counts SET n = n + 1 WHERE source = '';
    END;
    CREATE TRIGGER waiting_counts_delete AFTER DELETE ON waiting_requests BEGIN
        UPDATE waiting_counts SET n = n - 1 WHERE source = OLD.source;
        DELETE FROM waiting_counts WHERE source = OLD.source AND n <= 0;
        UPDATE waiting_counts SET n = n - 1 WHERE source = '';
    END;
    CREATE TRIGGER waiting_counts_move AFTER UPDATE OF source ON waiting_requests
    WHEN OLD.source <> NEW.source BEGIN
        UPDATE waiting_counts SET n = n - 1 WHERE source = OLD.source;
        DELETE FROM waiting_counts WHERE source = OLD.source AND n <= 0;
        INSERT INTO waiting_counts (source, n) VALUES (NEW.source, 1)
            ON CONFLICT (source) DO UPDATE SET n = n + 1;
    END;
    "#,
    // 6: the protocol a device asked by (idprov v1 or EST), recorded with
    // each device certificate and waiting request; everything before came
    // by v1, the only protocol then.
    r#"
    ALTER TABLE certificates ADD COLUMN protocol TEXT;
    UPDATE certificates SET protocol = 'v1' WHERE kind = 'device';
    ALTER TABLE waiting_requests ADD COLUMN protocol TEXT NOT NULL DEFAULT 'v1';
    "#,
    // 7: certificates a newer one of their device supersedes, revoked
    // (reason superseded) by the housekeeping sweep once due.
    r#"
    CREATE TABLE supersessions (
        cert_id    INTEGER PRIMARY KEY,
        device_id  TEXT NOT NULL,
        by_serial  TEXT NOT NULL,
        due_at     INTEGER NOT NULL
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
    ALTER TABLE oob_secrets ADD COLUMN pake_salt BLOB;
    ALTER TABLE oob_secrets ADD COLUMN pake_iterations INTEGER;
    ALTER TABLE oob_secrets ADD COLUMN pake_verifier BLOB;
    ALTER TABLE consumed_secrets ADD COLUMN secret_id INTEGER;
    ALTER TABLE consumed_secrets ADD COLUMN pake_salt BLOB;
    ALTER TABLE consumed_secrets ADD COLUMN pake_iterations INTEGER;
    ALTER TABLE consumed_secrets ADD COLUMN pake_verifier BLOB;
    "#,
];

/// The newest schema version this binary knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`SCHEMA_VERSION`], refusing a newer one.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    )?;
    let found: i64 = conn
        .query_row(
            "SELECT value FROM schema_meta WHERE key = 'version'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
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
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_meta (key, value) VALUES ('version', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [version],
        )?;
        tx.commit()?;
        tracing::info!(version, "registry schema migrated");
    }
    Ok(())
}
