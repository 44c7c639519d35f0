//! What the machine can do at most, measured in the same run as the load:
//! ECDSA P-256 signatures per second and durable SQLite commits per second
//! with the registry's settings (WAL, `synchronous=FULL`, one row each).

use std::path::Path;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};

/// ECDSA P-256 signatures per second on one thread, and on `threads` at once.
pub fn signatures_per_second(run: Duration, threads: usize) -> anyhow::Result<(f64, f64)> {
    let one = sign_loop(run)?;
    let handles: Vec<_> = (0..threads)
        .map(|_| std::thread::spawn(move || sign_loop(run)))
        .collect();
    let mut all = 0.0;
    for h in handles {
        all += h
            .join()
            .map_err(|_| anyhow::anyhow!("signing thread panicked"))??;
    }
    Ok((one, all))
}

fn sign_loop(run: Duration) -> anyhow::Result<f64> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| anyhow::anyhow!("key generation failed"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .map_err(|_| anyhow::anyhow!("key parsing failed"))?;
    // About the size of a to-be-signed certificate.
    let message = [0x5au8; 512];
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < run {
        for _ in 0..64 {
            key.sign(&rng, &message)
                .map_err(|_| anyhow::anyhow!("signing failed"))?;
        }
        n += 64;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Commits per second of one-row transactions in a fresh database in `dir`,
/// with the registry's durability settings.
pub fn durable_commits_per_second(dir: &Path, run: Duration) -> anyhow::Result<f64> {
    let path = dir.join("ceiling.db");
    let conn = rusqlite::Connection::open(&path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, serial TEXT NOT NULL, pem TEXT NOT NULL)",
    )?;
    let pem = "x".repeat(700);
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < run {
        conn.execute(
            "INSERT INTO t (serial, pem) VALUES (?1, ?2)",
            rusqlite::params![format!("{n:032x}"), pem],
        )?;
        n += 1;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    drop(conn);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(dir.join("ceiling.db-wal"));
    let _ = std::fs::remove_file(dir.join("ceiling.db-shm"));
    Ok(rate)
}
