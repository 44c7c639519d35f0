//! The admin web page: its embedded assets, sign-in (the first-start
//! one-time token, passwords, or an administrator certificate presented by
//! the browser), sessions, and the guard every request passes: no
//! cross-site requests, a CSRF token on every cookie-authenticated change,
//! and the page's security headers.
//!
//! Sessions live in memory (a restart signs everyone out). The cookie holds
//! 32 random bytes; the server keeps only their SHA-256, so a memory dump
//! does not hand out live sessions.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idprov_proto::UnixTime;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::auth::{Caller, ConnInfo, Role, SessionIdentity};
use crate::defaults as d;
use crate::error::ApiError;
use crate::routes::{json, read_body};
use crate::state::AppState;

/// The session cookie.
pub const COOKIE: &str = "idprov_session";
/// The header carrying the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The page's Content-Security-Policy: nothing inline, nothing foreign.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; media-src 'self' blob:; object-src 'none'; base-uri 'none'; \
    frame-ancestors 'none'; form-action 'self'; connect-src 'self'";
/// The first-start sign-in token's file in the data directory.
pub const TOKEN_FILE: &str = "signin-token";

/// A JavaScript module (or script) of the page, by its path under `web/`.
/// Module scripts must be served as JavaScript, or the browser refuses them.
macro_rules! script {
    ($path:literal) => {
        (
            $path,
            "text/javascript; charset=utf-8",
            include_bytes!(concat!("../web/", $path)),
        )
    };
}

/// The page's files, embedded: the server needs nothing at run time. The
/// page is ES modules (`app.js` imports `lib/` and `screens/`); every file
/// under `web/` is listed here (a unit test checks, and that every
/// module's imports are listed too).
const ASSETS: &[(&str, &str, &[u8])] = &[
    script!("app.js"),
    script!("lib/api.js"),
    script!("lib/camera.js"),
    script!("lib/constants.js"),
    script!("lib/dom.js"),
    script!("lib/download.js"),
    script!("lib/modal.js"),
    script!("lib/page.js"),
    script!("lib/session.js"),
    script!("lib/state.js"),
    script!("lib/time.js"),
    script!("screens/audit.js"),
    script!("screens/dashboard.js"),
    script!("screens/devices.js"),
    script!("screens/import.js"),
    script!("screens/labels.js"),
    script!("screens/password.js"),
    script!("screens/queue.js"),
    script!("screens/secrets.js"),
    script!("screens/signin.js"),
    script!("jsqr.js"),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/app.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("../web/icon.svg"),
    ),
];
const INDEX: &[u8] = include_bytes!("../web/index.html");

#[derive(Debug)]
struct Session {
    name: String,
    csrf: String,
    created: UnixTime,
    last_seen: UnixTime,
    /// SHA-256 of the account's stored password hash when the session
    /// began (or when this session set it): a session lasts only while the
    /// account keeps that password, so a revoked administrator (whose
    /// password is removed) or a changed password ends it on every replica
    /// sharing the registry.
    password: Option<[u8; 32]>,
}

/// What a session is bound to: the stored hash (a PHC string with its own
/// random salt, so every change is a new value).
fn password_stamp(p: Option<&idprov_store::WebPassword>) -> Option<[u8; 32]> {
    p.map(|p| Sha256::digest(p.hash.as_bytes()).into())
}

/// Ends every session of `name` on this replica except `keep` (the session
/// that made the change); returns how many ended.
pub fn end_sessions(app: &AppState, name: &str, keep: Option<&[u8; 32]>) -> usize {
    let mut sessions = app.web.sessions.lock().unwrap_or_else(|e| e.into_inner());
    let before = sessions.len();
    sessions.retain(|key, s| s.name != name || Some(key) == keep);
    before - sessions.len()
}

/// The one-time token, as its argon2id hash.
#[derive(Debug)]
struct Token {
    hash: String,
    expires: UnixTime,
    path: PathBuf,
}

/// The web page's state.
#[derive(Debug)]
pub struct WebState {
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    token: Mutex<Option<Token>>,
    signin_limiter: crate::limits::RateLimiter,
    /// Every source's sign-ins together: many addresses do not multiply
    /// the guesses.
    signin_global: crate::limits::RateLimiter,
    hasher: crate::password::Hasher,
}

impl Default for WebState {
    fn default() -> Self {
        WebState {
            sessions: Mutex::new(HashMap::new()),
            token: Mutex::new(None),
            signin_limiter: crate::limits::RateLimiter::new(d::SIGNIN_RATE, d::SIGNIN_BURST),
            signin_global: crate::limits::RateLimiter::new(
                d::SIGNIN_GLOBAL_RATE,
                d::SIGNIN_GLOBAL_BURST,
            ),
            hasher: crate::password::Hasher::default(),
        }
    }
}

/// The one key the global sign-in bucket is kept under.
const EVERYONE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// The answer when every hashing slot is taken.
const BUSY: ApiError = ApiError::Busy {
    retry_after: 2,
    reason: "too many sign-ins are being checked right now",
};

fn random_token() -> Result<String, ApiError> {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| ApiError::Internal("random generator".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

fn session_key(cookie_value: &str) -> [u8; 32] {
    Sha256::digest(cookie_value.as_bytes()).into()
}

/// An argon2id hash (PHC string) of `secret`, through the bounded hasher.
pub async fn hash_secret(app: &AppState, secret: Zeroizing<String>) -> Result<String, ApiError> {
    app.web
        .hasher
        .hash(secret)
        .await
        .map_err(|_| BUSY)?
        .map_err(|e| ApiError::Internal(format!("hashing: {e}")))
}

/// Whether `secret` matches the argon2id `hash` (`None`: no account; the
/// same work, never a match), through the bounded hasher.
async fn verify_secret(
    app: &AppState,
    secret: Zeroizing<String>,
    hash: Option<String>,
) -> Result<bool, ApiError> {
    app.web.hasher.verify(secret, hash).await.map_err(|_| BUSY)
}

/// At start: the one-time sign-in token. Created (0600) on a first start,
/// when no administrator has a web password yet; reloaded on a restart
/// within its lifetime; removed once expired. Returns a new token's value
/// so `idprov serve` can show it on a terminal — never through the logs.
pub async fn bootstrap_token(
    app: &AppState,
    dir: &Path,
) -> Result<Option<Zeroizing<String>>, crate::error::StartError> {
    let path = dir.join(TOKEN_FILE);
    let now = app.now_unix();
    let internal = |e: ApiError| crate::error::StartError::SigninToken(format!("{e:?}"));
    if path.exists() {
        let created = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .map(UnixTime::from)
            .unwrap_or(UnixTime::EPOCH);
        if created.plus(d::SIGNIN_TOKEN_LIFETIME) <= now {
            let _ = std::fs::remove_file(&path);
            tracing::info!(file = %path.display(), "the web sign-in token expired and was removed");
            return Ok(None);
        }
        let value = Zeroizing::new(
            std::fs::read_to_string(&path)
                .map_err(|e| {
                    crate::error::StartError::SigninToken(format!("{}: {e}", path.display()))
                })?
                .trim()
                .to_owned(),
        );
        let hash = hash_secret(app, value).await.map_err(internal)?;
        *app.web.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(Token {
            hash,
            expires: created.plus(d::SIGNIN_TOKEN_LIFETIME),
            path: path.clone(),
        });
        tracing::info!(file = %path.display(), "a one-time sign-in token for the web page is waiting in this file");
        return Ok(None);
    }
    if app.registry.web_password_count().await? > 0 {
        return Ok(None);
    }
    let value = Zeroizing::new(random_token().map_err(internal)?);
    crate::datadir::write_private_file(&path, format!("{}\n", value.as_str()).as_bytes())
        .map_err(|e| crate::error::StartError::SigninToken(format!("{}: {e}", path.display())))?;
    let hash = hash_secret(app, value.clone()).await.map_err(internal)?;
    *app.web.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(Token {
        hash,
        expires: now.plus(d::SIGNIN_TOKEN_LIFETIME),
        path: path.clone(),
    });
    tracing::info!(
        file = %path.display(),
        "a one-time sign-in token for the web page (/admin/) is in this file: valid 24 hours, for one sign-in"
    );
    Ok(Some(value))
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned())
}

/// The session cookie's `Set-Cookie` value: `HttpOnly` (no script reads
/// it), `Secure`, `SameSite=Strict`, for the whole site; `max_age` 0 ends it.
fn session_cookie(value: &str, max_age: std::time::Duration) -> Result<HeaderValue, ApiError> {
    let cookie = cookie::Cookie::build((COOKIE, value))
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(cookie::SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(idprov_proto::clock::secs(
            max_age,
        )))
        .build();
    HeaderValue::from_str(&cookie.to_string()).map_err(|e| ApiError::Internal(e.to_string()))
}

/// A method that changes state.
fn unsafe_method(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Why a request is refused as cross-site, if it is: a browser says where a
/// request comes from in `Sec-Fetch-Site` and `Origin`; devices and the CLI
/// send neither.
fn cross_site(req: &Request) -> Option<&'static str> {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Some("cross-site request refused (Sec-Fetch-Site)");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri().authority().map(|a| a.to_string()));
        let same = match (origin.to_str().ok(), host) {
            (Some(o), Some(h)) => o.eq_ignore_ascii_case(&format!("https://{h}")),
            _ => false,
        };
        if !same {
            return Some("cross-origin request refused (Origin)");
        }
    }
    None
}

/// Middleware on every route, after the caller is known: refuses
/// cross-site requests, resolves the session cookie, requires the session's
/// CSRF token on changes made with it, and sets the security headers.
pub async fn guard(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let sensitive = unsafe_method(req.method())
        || path.starts_with("/idprov/admin/")
        || path.starts_with("/admin/api/");
    if sensitive && let Some(reason) = cross_site(&req) {
        return with_headers(ApiError::Forbidden(reason).into_response(), &path);
    }
    let certificate_admin = matches!(
        req.extensions().get::<Caller>(),
        Some(Caller::Verified(v)) if matches!(v.role, Role::Admin | Role::Plugin)
    );
    if let Some(value) = cookie_value(req.headers()) {
        let now = app.now_unix();
        let found = {
            let mut sessions = app.web.sessions.lock().unwrap_or_else(|e| e.into_inner());
            let key = session_key(&value);
            let idle = idprov_proto::clock::secs(d::SESSION_IDLE);
            let max = idprov_proto::clock::secs(d::SESSION_MAX);
            // Expired sessions go as they are met, and all at once now and then.
            if sessions.len() > 1000 {
                sessions.retain(|_, s| {
                    now.secs_since(s.last_seen) < idle && now.secs_since(s.created) < max
                });
            }
            // The page's automatic refreshes are not a person's activity:
            // they do not keep an unattended session alive.
            let background = req.headers().contains_key("x-background-refresh");
            match sessions.get_mut(&key) {
                Some(s)
                    if now.secs_since(s.last_seen) < idle && now.secs_since(s.created) < max =>
                {
                    if !background {
                        s.last_seen = now;
                    }
                    Some((s.name.clone(), s.csrf.clone(), s.password, key))
                }
                Some(_) => {
                    sessions.remove(&key);
                    None
                }
                None => None,
            }
        };
        // The account must still have the password the session began with.
        let found = match found {
            Some((name, csrf, stamp, key)) => match app.registry.web_password(&name).await {
                Ok(current) if password_stamp(current.as_ref()) == stamp => Some((name, csrf)),
                Ok(_) => {
                    tracing::info!(name = %name, "a web session ended: its password was changed or removed");
                    app.web
                        .sessions
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&key);
                    None
                }
                Err(e) => {
                    return with_headers(ApiError::from(e).into_response(), &path);
                }
            },
            None => None,
        };
        if let Some((name, csrf)) = found {
            if unsafe_method(req.method()) && !certificate_admin && path != "/admin/api/signin" {
                let sent = req
                    .headers()
                    .get(CSRF_HEADER)
                    .map(|v| v.as_bytes().to_vec())
                    .unwrap_or_default();
                if aws_lc_rs::constant_time::verify_slices_are_equal(&sent, csrf.as_bytes())
                    .is_err()
                {
                    return with_headers(
                        ApiError::Forbidden("missing or wrong CSRF token (X-CSRF-Token)")
                            .into_response(),
                        &path,
                    );
                }
            }
            req.extensions_mut().insert(SessionIdentity { name });
            req.extensions_mut().insert(SessionCsrf(csrf));
        }
    }
    with_headers(next.run(req).await, &path)
}

/// The CSRF token of the request's session.
#[derive(Debug, Clone)]
struct SessionCsrf(String);

fn with_headers(mut r: Response, path: &str) -> Response {
    // (The headers every answer carries are the router's layers.)
    let h = r.headers_mut();
    if path.starts_with("/admin") {
        h.insert("content-security-policy", HeaderValue::from_static(CSP));
    }
    if path.starts_with("/admin/api/") || path.starts_with("/idprov/admin/") {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// `GET /admin` → `/admin/`.
pub async fn redirect() -> Redirect {
    Redirect::permanent("/admin/")
}

/// `GET /admin/`: the page.
pub async fn index() -> Response {
    asset_response("text/html; charset=utf-8", INDEX)
}

/// `GET /admin/assets/{file}`.
pub async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, mime, bytes)) => asset_response(mime, bytes),
        None => ApiError::NotFound("unknown asset").into_response(),
    }
}

fn asset_response(mime: &'static str, bytes: &'static [u8]) -> Response {
    let mut r = Body::from(bytes).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    // Embedded in the binary: a new binary is a new page. Revalidate.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// Who the page is signed in as.
fn session_document(
    app: &AppState,
    name: &str,
    via: &str,
    csrf: &str,
    expires: Option<UnixTime>,
) -> Result<Response, ApiError> {
    json(&json!({
        "name": name,
        "via": via,
        "csrf": csrf,
        "expiresAt": expires.map(crate::routes::rfc3339),
        "caFingerprint": app.ca.fingerprint().to_string(),
        "auditEvents": idprov_store::AuditEvent::names(),
    }))
}

/// `GET /admin/api/session`.
#[utoipa::path(
    get,
    path = "/admin/api/session",
    operation_id = "session",
    tag = "web",
    summary = "Who the web page is signed in as (a session cookie, or an administrator certificate)",
    security(("clientCertificate" = []), ("adminSession" = [])),
    responses(
        (status = 200, description = "Signed in", body = crate::routes::api_doc::SessionDocument),
        (status = 401, description = "Not signed in", body = crate::error::ErrorDocument),
    ),
)]
pub async fn session(
    State(app): State<AppState>,
    caller: Caller,
    req: Request,
) -> Result<Response, ApiError> {
    if let Caller::Verified(v) = &caller
        && matches!(v.role, Role::Admin | Role::Plugin)
    {
        return session_document(&app, &v.name, "certificate", "", None);
    }
    match (
        req.extensions().get::<SessionIdentity>(),
        req.extensions().get::<SessionCsrf>(),
    ) {
        (Some(s), Some(csrf)) => {
            let expires = cookie_value(req.headers()).and_then(|v| {
                let sessions = app.web.sessions.lock().unwrap_or_else(|e| e.into_inner());
                sessions.get(&session_key(&v)).map(|s| {
                    s.last_seen
                        .plus(d::SESSION_IDLE)
                        .min(s.created.plus(d::SESSION_MAX))
                })
            });
            session_document(&app, &s.name, "session", &csrf.0, expires)
        }
        _ => Err(ApiError::SignIn("not signed in")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    token: Option<String>,
    name: Option<String>,
    password: Option<String>,
}

fn json_content(headers: &HeaderMap) -> Result<(), ApiError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(
            "the body must be JSON (Content-Type: application/json)".into(),
        ))
    }
}

/// `POST /admin/api/signin`: a token or a name and password; rate limited
/// per source; sets the session cookie.
#[utoipa::path(
    post,
    path = "/admin/api/signin",
    operation_id = "signIn",
    tag = "web",
    summary = "Sign in with the one-time token or a name and password; sets an HttpOnly, Secure, SameSite=Strict session cookie (30 minutes idle, 12 hours in all). Rate limited per source.",
    request_body = inline(crate::routes::api_doc::SignInBody),
    security(()),
    responses(
        (status = 200, description = "Signed in", body = crate::routes::api_doc::SessionDocument, headers(("Set-Cookie" = String, description = "The session cookie"))),
        (status = 400, description = "Malformed input", body = crate::error::ErrorDocument),
        (status = 401, description = "Wrong token, name or password", body = crate::error::ErrorDocument),
        (status = 429, description = "Too many attempts from this address", body = crate::error::ErrorDocument, headers(("Retry-After" = u64, description = "Seconds until a retry can succeed"))),
        (status = 503, description = "Too many sign-ins are being checked right now", body = crate::error::ErrorDocument, headers(("Retry-After" = u64, description = "Seconds until a retry can succeed"))),
    ),
)]
pub async fn signin(
    State(app): State<AppState>,
    conn: ConnInfo,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let source = conn.peer.ip();
    if let Err(wait) = app.web.signin_limiter.check(source, Instant::now()) {
        app.note_limited(source, "signin");
        return Err(ApiError::TooManyRequests {
            retry_after: wait.as_secs().max(1),
            reason: "too many sign-in attempts from this address",
        });
    }
    json_content(&headers)?;
    let bytes = read_body(&app, &headers, body, 4096).await?;
    let form: SignIn = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("sign-in: {e}")))?;
    if let Err(wait) = app.web.signin_global.check(EVERYONE, Instant::now()) {
        app.note_limited(source, "signin_global");
        return Err(ApiError::TooManyRequests {
            retry_after: wait.as_secs().max(1),
            reason: "too many sign-in attempts; try again shortly",
        });
    }
    let now = app.now_unix();
    let (name, via) = match form {
        SignIn {
            token: Some(token),
            name: None,
            password: None,
        } => {
            let token = Zeroizing::new(token);
            let current = {
                let t = app.web.token.lock().unwrap_or_else(|e| e.into_inner());
                t.as_ref()
                    .map(|t| (t.hash.clone(), t.expires, t.path.clone()))
            };
            let live = current.filter(|(_, expires, _)| *expires > now);
            // An expired or used token costs a verification too.
            let matched =
                verify_secret(&app, token, live.as_ref().map(|(h, _, _)| h.clone())).await?;
            match live {
                Some((hash, _, path)) if matched => {
                    // One use: forget it, remove its file.
                    let taken = {
                        let mut t = app.web.token.lock().unwrap_or_else(|e| e.into_inner());
                        if t.as_ref().is_some_and(|t| t.hash == hash) {
                            *t = None;
                            true
                        } else {
                            false
                        }
                    };
                    if !taken {
                        // Used by a concurrent sign-in in the meantime.
                        return failed(&app, source, "admin", "token").await;
                    }
                    let _ = std::fs::remove_file(&path);
                    ("admin".to_owned(), "token")
                }
                _ => return failed(&app, source, "admin", "token").await,
            }
        }
        SignIn {
            token: None,
            name: Some(name),
            password: Some(password),
        } => {
            let password = Zeroizing::new(password);
            let stored = if valid_name(&name) {
                app.registry.web_password(&name).await?
            } else {
                None
            };
            if !verify_secret(&app, password, stored.map(|p| p.hash)).await? {
                return failed(&app, source, &name, "password").await;
            }
            (name, "password")
        }
        _ => {
            return Err(ApiError::BadRequest(
                "sign in with {\"token\"} or {\"name\", \"password\"}".into(),
            ));
        }
    };
    let cookie = random_token()?;
    let csrf = random_token()?;
    let password = password_stamp(app.registry.web_password(&name).await?.as_ref());
    app.web
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            session_key(&cookie),
            Session {
                name: name.clone(),
                csrf: csrf.clone(),
                created: now,
                last_seen: now,
                password,
            },
        );
    app.registry
        .append_audit(idprov_store::AuditRecord::new(
            now,
            idprov_store::Actor::named("admin", &name),
            idprov_store::AuditEvent::WebSignin {
                via: via.to_owned(),
                source: source.to_string(),
            },
            None,
        ))
        .await?;
    tracing::info!(name = %name, via, source = %source, "signed in to the web page");
    let expires = now.plus(d::SESSION_IDLE);
    let mut r = session_document(&app, &name, "session", &csrf, Some(expires))?;
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&cookie, d::SESSION_MAX)?);
    Ok(r)
}

async fn failed(
    app: &AppState,
    source: IpAddr,
    name: &str,
    via: &str,
) -> Result<Response, ApiError> {
    app.audit_unauthenticated(
        &crate::limits::source_key(source).to_string(),
        idprov_store::AuditRecord::new(
            app.now_unix(),
            idprov_store::Actor::source(&source.to_string()),
            idprov_store::AuditEvent::WebSigninFailed {
                name: name.to_owned(),
                via: via.to_owned(),
            },
            None,
        ),
    )
    .await;
    tracing::info!(source = %source, via, "a web sign-in failed");
    Err(ApiError::SignIn("wrong sign-in token, name or password"))
}

/// `POST /admin/api/signout`.
#[utoipa::path(
    post,
    path = "/admin/api/signout",
    operation_id = "signOut",
    tag = "web",
    summary = "End the session",
    security(()),
    responses(
        (status = 204, description = "Signed out; the cookie is cleared"),
    ),
)]
pub async fn signout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(value) = cookie_value(&headers) {
        app.web
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&session_key(&value));
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(expired) = session_cookie("", std::time::Duration::ZERO) {
        r.headers_mut().insert(header::SET_COOKIE, expired);
    }
    r
}

/// Administrator names for web passwords: what a person types.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Checks, hashes and stores a password for `name`, and ends the
/// account's sessions on this replica but `keep` (the others, on every
/// replica, end at their next request: their password is gone).
pub async fn set_password(
    app: &AppState,
    actor: idprov_store::Actor,
    name: &str,
    password: Zeroizing<String>,
    keep: Option<&[u8; 32]>,
) -> Result<(), ApiError> {
    if !valid_name(name) {
        return Err(ApiError::BadRequest(
            "field \"name\": 1-64 characters of letters, digits, . _ - @".into(),
        ));
    }
    let chars = password.chars().count();
    if chars < d::MIN_PASSWORD_CHARS || password.len() > 1024 {
        return Err(ApiError::BadRequest(format!(
            "field \"password\": at least {} characters (and at most 1024 bytes)",
            d::MIN_PASSWORD_CHARS
        )));
    }
    let hash = hash_secret(app, password).await?;
    let now = app.now_unix();
    let stored = idprov_store::WebPassword {
        name: name.to_owned(),
        hash,
        updated_at: now,
    };
    let stamp = password_stamp(Some(&stored));
    app.registry
        .set_web_password(
            stored,
            idprov_store::AuditRecord::new(
                now,
                actor,
                idprov_store::AuditEvent::WebPasswordSet {
                    name: name.to_owned(),
                },
                None,
            ),
        )
        .await?;
    if let Some(key) = keep {
        let mut sessions = app.web.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = sessions.get_mut(key) {
            s.password = stamp;
        }
    }
    let ended = end_sessions(app, name, keep);
    if ended > 0 {
        tracing::info!(
            name,
            ended,
            "the web password changed: the account's other sessions ended"
        );
    }
    Ok(())
}

/// Removes `name`'s web password and ends its sessions (revocation, or
/// `idprov admin password --remove`); false when it had none.
pub async fn remove_password(
    app: &AppState,
    actor: idprov_store::Actor,
    name: &str,
    why: &str,
) -> Result<bool, ApiError> {
    let now = app.now_unix();
    let removed = app
        .registry
        .remove_web_password(
            name,
            idprov_store::AuditRecord::new(
                now,
                actor,
                idprov_store::AuditEvent::WebPasswordRemoved {
                    name: name.to_owned(),
                    why: why.to_owned(),
                },
                None,
            ),
        )
        .await?;
    let ended = end_sessions(app, name, None);
    tracing::info!(
        name,
        removed,
        ended,
        why,
        "web access of an administrator ended"
    );
    Ok(removed)
}

/// `POST /admin/api/password`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct OwnPassword {
    /// The new password: 12 characters or more (at most 1024 bytes).
    #[schema(min_length = 12)]
    password: String,
}

/// `POST /admin/api/password`: the signed-in administrator sets their own.
#[utoipa::path(
    post,
    path = "/admin/api/password",
    operation_id = "setOwnPassword",
    tag = "web",
    summary = "The signed-in administrator sets their own web password",
    request_body = OwnPassword,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Too short or malformed", body = crate::error::ErrorDocument),
    ),
)]
pub async fn own_password(
    admin: crate::auth::Admin,
    caller: Caller,
    req: Request,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let name = match (&caller, req.extensions().get::<SessionIdentity>()) {
        (Caller::Verified(v), _) if matches!(v.role, Role::Admin) => v.name.clone(),
        (_, Some(s)) => s.name.clone(),
        _ => {
            return Err(ApiError::Forbidden(
                "only an administrator sets a web password",
            ));
        }
    };
    let (parts, body) = req.into_parts();
    json_content(&parts.headers)?;
    let bytes = read_body(app, &parts.headers, body, 4096).await?;
    let form: OwnPassword = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("password: {e}")))?;
    let keep = cookie_value(&parts.headers).map(|v| session_key(&v));
    set_password(
        app,
        admin.caller.actor.clone(),
        &name,
        Zeroizing::new(form.password),
        keep.as_ref(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    /// Every file under `web/` but the page itself, as `dir/name`.
    fn files(dir: &std::path::Path, prefix: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("web/") {
            let entry = entry.expect("entry");
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().expect("type").is_dir() {
                files(&entry.path(), &format!("{name}/"), out);
            } else if name != "index.html" {
                out.push(name);
            }
        }
    }

    #[test]
    fn every_file_of_the_page_is_embedded() {
        let mut on_disk = Vec::new();
        files(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web"),
            "",
            &mut on_disk,
        );
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|(n, _, _)| (*n).to_owned()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    /// `import … from './x.js'` of every module names an embedded module,
    /// served as JavaScript.
    #[test]
    fn every_module_import_is_an_embedded_script() {
        for (name, mime, bytes) in ASSETS.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            assert!(mime.starts_with("text/javascript"), "{name}");
            if *name == "jsqr.js" {
                continue; // a classic script, vendored
            }
            let text = std::str::from_utf8(bytes).expect("UTF-8");
            let dir: Vec<&str> = name.split('/').rev().skip(1).collect::<Vec<_>>();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let target = line
                    .split(" from '")
                    .nth(1)
                    .and_then(|t| t.strip_suffix("';"))
                    .unwrap_or_else(|| panic!("{name}: a static import: {line}"));
                let mut path: Vec<&str> = dir.iter().rev().copied().collect();
                for part in target.split('/') {
                    match part {
                        "." => {}
                        ".." => {
                            assert!(path.pop().is_some(), "{name}: {target} leaves web/");
                        }
                        p => path.push(p),
                    }
                }
                let resolved = path.join("/");
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == resolved),
                    "{name} imports {target} ({resolved}), which is not embedded"
                );
            }
        }
    }
}
