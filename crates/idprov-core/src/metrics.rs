//! The names of the metrics the core counts (the server renders them at
//! `/metrics` beside its own).

/// Certificates issued, by how (oob, renewal, rekey, admin, approval).
pub const CERTIFICATES_ISSUED: &str = "idprov_certificates_issued_total";
/// Lockouts started.
pub const LOCKOUTS: &str = "idprov_lockouts_total";
/// Guesses refused unevaluated: the device's budget of wrong secrets was spent.
pub const GUESS_BUDGET_REFUSALS: &str = "idprov_guess_budget_refusals_total";
/// Waiting requests not recorded because the queue is full.
pub const QUEUE_FULL: &str = "idprov_waiting_queue_full_total";
/// 1 while the waiting queue is full, else 0.
pub const QUEUE_IS_FULL: &str = "idprov_waiting_queue_full";
/// Waiting requests evicted (from the source holding the most) to record
/// another source's while the queue is full.
pub const QUEUE_EVICTED: &str = "idprov_waiting_queue_evicted_total";
