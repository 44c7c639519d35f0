//! The OCSP responder: a request's certificates looked up in the registry
//! on every query, the answer signed by the delegated responder
//! (`idprov_ca::ocsp`), and signed answers kept for reuse.
//!
//! The registry is read on every query — one lookup by serial — so a
//! revocation, made by this server or by a replica sharing the database, is
//! what the very next query answers. What the cache saves is the signing:
//! an answer about one certificate without a nonce (RFC 5019's profile, what
//! nginx and most relying parties send) is reused while the certificate's
//! status is the one it states and it is younger than
//! [`defaults::OCSP_REFRESH`]. Answers to requests with a nonce are each
//! their own, signed fresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use bytes::Bytes;
use idprov_ca::ocsp::{AnswerTimes, CertState, OcspFailure, OcspQuery, Responder};
use idprov_proto::UnixTime;
use idprov_store::StoreError;

use crate::defaults;
use crate::error::ApiError;
use crate::state::AppState;

/// An answer ready to send.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The `OCSPResponse`, DER.
    pub der: Bytes,
    /// Its thisUpdate and nextUpdate.
    pub times: AnswerTimes,
    /// Whether it is the answer to any identical request (no nonce): HTTP
    /// caches may keep it until nextUpdate.
    pub shared: bool,
    /// Its HTTP entity tag: a digest of the DER, quoted.
    pub etag: String,
}

#[derive(Debug)]
struct Cached {
    state: CertState,
    answer: Answer,
}

/// The responder and its cache of signed answers.
#[derive(Debug)]
pub struct OcspService {
    responder: ArcSwap<Responder>,
    cache: Mutex<HashMap<Vec<u8>, Cached>>,
}

/// An OCSP failure answer, counted, its detail logged.
pub(crate) fn failure(failure: OcspFailure, detail: impl Into<String>) -> ApiError {
    metrics::counter!(crate::observe::OCSP_ANSWERS, "answer" => failure.as_str()).increment(1);
    ApiError::Ocsp {
        failure,
        detail: detail.into(),
    }
}

/// A registry that cannot answer: try later when it is closing or
/// unreachable, an internal error otherwise.
fn registry_failure(e: StoreError) -> ApiError {
    match e {
        StoreError::Closed => failure(OcspFailure::TryLater, "the registry is closed"),
        other => failure(OcspFailure::InternalError, format!("registry: {other}")),
    }
}

impl OcspService {
    /// The service with its first responder.
    pub fn new(responder: Responder) -> OcspService {
        OcspService {
            responder: ArcSwap::from_pointee(responder),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Puts a renewed responder in place; answers the old one signed are
    /// not reused.
    pub fn replace(&self, responder: Responder) {
        self.responder.store(Arc::new(responder));
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The responder in use.
    pub fn responder(&self) -> Arc<Responder> {
        self.responder.load_full()
    }

    /// Answers a DER `OCSPRequest`: a signed status per certificate, or an
    /// unsigned failure (malformed, unauthorized, try later, internal error)
    /// as an [`ApiError::Ocsp`].
    pub async fn answer(&self, app: &AppState, request: &[u8]) -> Result<Answer, ApiError> {
        let query = OcspQuery::from_der(request)
            .map_err(|e| failure(OcspFailure::MalformedRequest, e.to_string()))?;
        let responder = self.responder();
        let serials = responder.serials(&query).ok_or_else(|| {
            failure(
                OcspFailure::Unauthorized,
                "a certificate of another issuer (or a hash algorithm not answered here)",
            )
        })?;
        let now = app.now_unix();
        let mut states = Vec::with_capacity(serials.len());
        for serial in &serials {
            let state = match serial {
                None => CertState::Unknown,
                Some(serial) => match app
                    .registry
                    .certificate(serial)
                    .await
                    .map_err(registry_failure)?
                {
                    None => CertState::Unknown,
                    Some(c) => match c.revoked_at {
                        Some(at) => CertState::Revoked {
                            at,
                            reason: c.revocation_reason.unwrap_or(0),
                        },
                        None => CertState::Good,
                    },
                },
            };
            metrics::counter!(crate::observe::OCSP_ANSWERS, "answer" => state.as_str())
                .increment(1);
            states.push(state);
        }
        let key = query.cache_key();
        if let (Some(key), [state]) = (&key, states.as_slice())
            && let Some(answer) = self.cached(key, *state, now)
        {
            metrics::counter!(crate::observe::OCSP_CACHE_HITS).increment(1);
            return Ok(answer);
        }
        let times = AnswerTimes {
            this_update: now,
            next_update: now.plus(defaults::OCSP_VALIDITY),
        };
        let der = responder
            .respond(&query, &states, times)
            .map_err(|e| failure(OcspFailure::InternalError, format!("signing: {e}")))?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
        let answer = Answer {
            etag: format!("\"{}\"", hex::encode(&digest.as_ref()[..16])),
            der: Bytes::from(der),
            times,
            shared: !query.has_nonce(),
        };
        if let (Some(key), [state]) = (key, states.as_slice())
            && *state != CertState::Unknown
        {
            // Unknown serials are not kept: anyone can ask about any number.
            self.keep(key, *state, answer.clone());
        }
        Ok(answer)
    }

    /// A kept answer stating `state`, still fresh at `now`.
    fn cached(&self, key: &[u8], state: CertState, now: UnixTime) -> Option<Answer> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let c = cache.get(key)?;
        let fresh = c.answer.times.this_update <= now
            && now < c.answer.times.this_update.plus(defaults::OCSP_REFRESH);
        (c.state == state && fresh).then(|| c.answer.clone())
    }

    fn keep(&self, key: Vec<u8>, state: CertState, answer: Answer) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= defaults::OCSP_CACHE_ENTRIES && !cache.contains_key(&key) {
            cache.clear();
        }
        cache.insert(key, Cached { state, answer });
    }
}
