//! Password hashing (argon2id) for the web page's sign-in, bounded.
//!
//! An argon2id computation needs about 19 MiB of working memory. Computed
//! on demand for every sign-in attempt, concurrent attempts — which anyone
//! who reaches the page can make, with any name — each allocate their own,
//! and the allocator keeps what they free: a flood of wrong passwords took
//! a server to gigabytes. So here:
//!
//! * at most [`Hasher::running`] computations run at once (about one per
//!   core), at most as many again wait; beyond that a caller hears
//!   [`Busy`] at once (503 with `Retry-After`);
//! * each running computation uses a working memory from a small pool,
//!   reused from one attempt to the next, and the pool is emptied when
//!   sign-ins stop, so the memory goes back to the system;
//! * unknown names and accounts without a password are verified against a
//!   dummy hash with the same parameters: the same time, the same memory.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{Output, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use zeroize::Zeroizing;

/// A hash no password matches, verified against when a name is unknown so
/// that a wrong name costs what a wrong password costs.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2bJyuGk8J4/2Gu8mWUSf1D8J3nDSaFBrW3QtPB0zCmY";

/// Working memory per computation, in 1 KiB blocks: argon2's default
/// (OWASP's minimum for argon2id, m = 19 MiB, t = 2, p = 1), which every
/// stored hash uses.
const BLOCKS: usize = Params::DEFAULT_M_COST as usize;

/// What a buffer reserves, in blocks: more than glibc's largest dynamic
/// mmap threshold (32 MiB on 64-bit systems), so that under the system
/// allocator too (the `idprov` binary uses jemalloc, which purges freed
/// pages by itself) the allocation is its own mapping and freeing it
/// returns the memory. (Freed 19 MiB buffers otherwise raise glibc's
/// threshold and stay in its heap.) Only the first [`BLOCKS`] are ever
/// touched, so only those are resident.
const RESERVED_BLOCKS: usize = 33 * 1024;

/// How long the pool keeps an unused buffer.
const IDLE: Duration = Duration::from_secs(3);

/// Too many sign-ins are being checked right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// One computation's working memory.
struct Memory(Vec<Block>);

impl Memory {
    fn new() -> Memory {
        let mut blocks = Vec::with_capacity(RESERVED_BLOCKS);
        blocks.resize(BLOCKS, Block::default());
        Memory(blocks)
    }
}

/// The bounded argon2id service.
pub struct Hasher {
    running: usize,
    permits: Arc<tokio::sync::Semaphore>,
    /// Computations running or waiting.
    admitted: AtomicUsize,
    pool: Arc<Mutex<Vec<(Memory, Instant)>>>,
    sweeping: Arc<AtomicBool>,
    idle: Duration,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("running", &self.running)
            .field("admitted", &self.admitted.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for Hasher {
    fn default() -> Self {
        // About one per core: more would only queue inside the CPU.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Hasher::new(cores.clamp(1, 8))
    }
}

impl Hasher {
    /// At most `running` computations at once, and as many waiting.
    pub fn new(running: usize) -> Hasher {
        Hasher {
            running,
            permits: Arc::new(tokio::sync::Semaphore::new(running)),
            admitted: AtomicUsize::new(0),
            pool: Arc::new(Mutex::new(Vec::new())),
            sweeping: Arc::new(AtomicBool::new(false)),
            idle: IDLE,
        }
    }

    /// Whether `password` matches the PHC string `stored`; `None` (no such
    /// account, or no password) costs the same and never matches.
    pub async fn verify(
        &self,
        password: Zeroizing<String>,
        stored: Option<String>,
    ) -> Result<bool, Busy> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let matched = self
            .with_memory(move |memory| verify_with(&password, &hash, memory))
            .await?;
        Ok(matched && known)
    }

    /// A new argon2id hash (PHC string) of `password` with a random salt.
    pub async fn hash(&self, password: Zeroizing<String>) -> Result<Result<String, String>, Busy> {
        let mut salt = [0u8; 16];
        if aws_lc_rs::rand::fill(&mut salt).is_err() {
            return Ok(Err("random generator".into()));
        }
        self.with_memory(move |memory| hash_with(&password, &salt, memory))
            .await
    }

    /// Runs `f` on a blocking thread with a pooled working memory, within
    /// the bounds.
    async fn with_memory<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut [Block]) -> R + Send + 'static,
    ) -> Result<R, Busy> {
        if self.admitted.fetch_add(1, Ordering::SeqCst) >= 2 * self.running {
            self.admitted.fetch_sub(1, Ordering::SeqCst);
            return Err(Busy);
        }
        let result = self.run(f).await;
        self.admitted.fetch_sub(1, Ordering::SeqCst);
        result
    }

    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut [Block]) -> R + Send + 'static,
    ) -> Result<R, Busy> {
        let _permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Busy)?;
        let reused = self
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .map(|(m, _)| m);
        let (result, memory) = tokio::task::spawn_blocking(move || {
            let mut memory = reused.unwrap_or_else(Memory::new);
            let result = f(&mut memory.0);
            (result, memory)
        })
        .await
        .map_err(|_| Busy)?;
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((memory, Instant::now()));
        self.sweep_later();
        Ok(result)
    }

    /// Empties the pool once sign-ins stop.
    fn sweep_later(&self) {
        if self.sweeping.swap(true, Ordering::SeqCst) {
            return;
        }
        let (pool, sweeping, idle) = (self.pool.clone(), self.sweeping.clone(), self.idle);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(idle).await;
                let mut pool = pool.lock().unwrap_or_else(|e| e.into_inner());
                pool.retain(|(_, used)| used.elapsed() < idle);
                if pool.is_empty() {
                    sweeping.store(false, Ordering::SeqCst);
                    return;
                }
            }
        });
    }

    /// Buffers held now (for tests).
    pub fn pooled(&self) -> usize {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

fn argon2_of(hash: &PasswordHash<'_>) -> Option<Argon2<'static>> {
    let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
    let version = hash
        .version
        .map(Version::try_from)
        .transpose()
        .ok()?
        .unwrap_or_default();
    let params = Params::try_from(hash).ok()?;
    Some(Argon2::new(algorithm, version, params))
}

/// Verifies against a PHC string in the given memory. A hash whose
/// parameters need more memory than the pool's never matches (every hash
/// this server writes uses the pool's).
fn verify_with(password: &str, stored: &str, memory: &mut [Block]) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        tracing::warn!("a stored web password hash does not parse");
        return false;
    };
    let (Some(salt), Some(expected), Some(argon2)) = (parsed.salt, parsed.hash, argon2_of(&parsed))
    else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    if argon2
        .hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, memory)
        .is_err()
    {
        tracing::warn!("a stored web password hash has parameters this server does not use");
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|computed| computed == expected)
}

fn hash_with(password: &str, salt: &[u8; 16], memory: &mut [Block]) -> Result<String, String> {
    let argon2 = Argon2::default();
    let salt = SaltString::encode_b64(salt).map_err(|e| e.to_string())?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let mut raw = [0u8; 64];
    let raw = Salt::from(&salt)
        .decode_b64(&mut raw)
        .map_err(|e| e.to_string())?;
    argon2
        .hash_password_into_with_memory(password.as_bytes(), raw, &mut out, memory)
        .map_err(|e| e.to_string())?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: argon2
            .params()
            .try_into()
            .map_err(|e: argon2::password_hash::Error| e.to_string())?,
        salt: Some(Salt::from(&salt)),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_match_the_argon2_crate() {
        let h = Hasher::new(1);
        let hash = h
            .hash(Zeroizing::new("correct horse".into()))
            .await
            .expect("not busy")
            .expect("hashed");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        // The crate's own verifier agrees with ours.
        use argon2::password_hash::PasswordVerifier;
        let parsed = PasswordHash::new(&hash).expect("parse");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            h.verify(Zeroizing::new("correct horse".into()), Some(hash.clone()))
                .await
                .expect("not busy")
        );
        assert!(
            !h.verify(Zeroizing::new("wrong horse".into()), Some(hash))
                .await
                .expect("not busy")
        );
        // No account: never a match, not even for the dummy's password.
        assert!(
            !h.verify(Zeroizing::new(String::new()), None)
                .await
                .expect("not busy")
        );
        assert!(
            !h.verify(Zeroizing::new("x".into()), Some("not a hash".into()))
                .await
                .expect("not busy")
        );
        assert_eq!(h.pooled(), 1, "one buffer, reused");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_running_and_waiting_callers_hear_busy() {
        let h = Arc::new(Hasher::new(1));
        let mut tasks = Vec::new();
        for i in 0..8 {
            let h = h.clone();
            tasks.push(tokio::spawn(async move {
                h.verify(Zeroizing::new(format!("guess-{i}")), None).await
            }));
        }
        let mut busy = 0;
        for t in tasks {
            if t.await.expect("task") == Err(Busy) {
                busy += 1;
            }
        }
        assert!(
            busy >= 6,
            "one running and one waiting at most: {busy} busy"
        );
        assert!(h.pooled() <= 1);
    }

    #[tokio::test]
    async fn the_pool_empties_when_sign_ins_stop() {
        let mut h = Hasher::new(1);
        h.idle = Duration::from_millis(50);
        h.verify(Zeroizing::new("x".into()), None)
            .await
            .expect("not busy");
        assert_eq!(h.pooled(), 1);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(h.pooled(), 0, "the working memory went back");
    }
}
