//! Who is calling: decided once per request from the connection's verified
//! client certificate leaf, and nothing else — never headers, addresses or
//! certificates the peer appended after its leaf (PROTOCOL.md §2).
//!
//! rustls has already checked the chain, validity and EKU during a full
//! handshake. A resumed TLS session carries the leaf verified back then
//! without checking it again, so the leaf is re-checked here on every
//! request: validity at the injected clock's time, presence of EKU
//! clientAuth (rustls lets a leaf without any EKU through), and revocation
//! in the registry.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use idprov_ca::CertInfo;
use idprov_proto::{DeviceId, UnixTime};
use idprov_store::{Actor, AuditEvent, AuditRecord};

use crate::error::ApiError;
use crate::state::AppState;

/// What the accept loop knows of a connection; attached to every request.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The peer's address (IPv4-mapped IPv6 addresses already mapped back).
    pub peer: SocketAddr,
    /// The leaf certificate rustls verified, parsed once per connection.
    pub leaf: Option<Arc<CertInfo>>,
    /// The connection's TLS exporter value for idprov v2 (RFC 8446 §7.5,
    /// label `EXPORTER-idprov-v2`): TLS 1.3 only, and only while v2 is on.
    pub exporter: Option<[u8; idprov_proto::v2::EXPORTER_LEN]>,
}

/// The role a verified certificate's subject OU grants (the core's).
pub use idprov_core::Role;

/// A caller whose leaf passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedCaller {
    /// What it may do.
    pub role: Role,
    /// Its CN (a device ID for devices).
    pub name: String,
    /// Its certificate.
    pub leaf: Arc<CertInfo>,
}

impl VerifiedCaller {
    /// The caller as the provisioning core knows it.
    pub fn identity(&self) -> idprov_core::Identity {
        idprov_core::Identity {
            role: self.role,
            name: self.name.clone(),
            spki_der: self.leaf.spki_der.clone(),
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No client certificate.
    Anonymous,
    /// A certificate that chains to the CA but fails a check made after the
    /// handshake; it authorizes nothing.
    Refused(&'static str),
    /// A certificate that passed every check.
    Verified(VerifiedCaller),
}

impl Caller {
    /// The audit actor: the verified identity, else the source address.
    pub fn actor(&self, source: std::net::IpAddr) -> Actor {
        match self {
            Caller::Verified(v) => Actor::named(v.role.as_str(), &v.name),
            _ => Actor::source(&source.to_string()),
        }
    }

    /// The verified caller, if any.
    pub fn verified(&self) -> Option<&VerifiedCaller> {
        match self {
            Caller::Verified(v) => Some(v),
            _ => None,
        }
    }
}

/// Checks a leaf after the handshake and derives the caller from it.
pub async fn resolve(app: &AppState, leaf: Option<&Arc<CertInfo>>) -> Result<Caller, ApiError> {
    let Some(leaf) = leaf else {
        return Ok(Caller::Anonymous);
    };
    let now = UnixTime::from(app.clock.now());
    if !leaf.is_valid_at(now) {
        return Ok(Caller::Refused(
            "the client certificate is outside its validity period",
        ));
    }
    if !leaf.allows_client_auth() {
        return Ok(Caller::Refused(
            "the client certificate does not allow client authentication (EKU clientAuth)",
        ));
    }
    let Some(name) = leaf.common_name() else {
        return Ok(Caller::Refused(
            "the client certificate must have exactly one CN",
        ));
    };
    let role = Role::of(&leaf.organizational_units);
    if role == Role::Device && DeviceId::parse(name).is_err() {
        return Ok(Caller::Refused(
            "the device certificate's CN is not a valid device ID",
        ));
    }
    if app.is_revoked(&leaf.serial).await? {
        return Ok(Caller::Refused("the client certificate has been revoked"));
    }
    Ok(Caller::Verified(VerifiedCaller {
        role,
        name: name.to_owned(),
        leaf: leaf.clone(),
    }))
}

/// Middleware: resolves the caller once and attaches it to the request.
pub async fn authenticate(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let leaf = req
        .extensions()
        .get::<ConnInfo>()
        .and_then(|c| c.leaf.clone());
    match resolve(&app, leaf.as_ref()).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller::Anonymous))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ConnInfo {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ConnInfo>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("request without connection information".into()))
    }
}

/// An administrator signed in to the web page: the session layer (with the
/// web page) attaches this to requests whose session cookie is valid.
#[derive(Debug, Clone)]
pub struct SessionIdentity {
    /// The administrator's name.
    pub name: String,
}

/// How an administrator was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminVia {
    /// A verified client certificate with OU admin or plugin.
    Certificate,
    /// An admin web session.
    Session,
}

/// An administrator or plugin, authenticated by a verified certificate or an
/// admin web session. Handlers reach administrative operations only through
/// this value.
#[derive(Debug, Clone)]
pub struct AdminCaller {
    /// The identity for audit entries.
    pub actor: Actor,
    /// Whether this is a plugin rather than a person.
    pub role: Role,
    /// How the caller was authenticated.
    pub via: AdminVia,
}

impl AdminCaller {
    /// An audit entry of an action this caller takes.
    pub fn audit(&self, at: UnixTime, event: AuditEvent, device_id: Option<&str>) -> AuditRecord {
        AuditRecord::new(at, self.actor.clone(), event, device_id)
    }
}

/// An administrator or plugin (an [`AdminCaller`]) with the server it may
/// administer. Only the admin layer ([`require_admin`]) makes one, after
/// the caller proved to be an administrator; the admin handlers take this
/// instead of the server's state, so an administrative operation is reached
/// only through a value got from a verified administrator.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Who it is.
    pub caller: AdminCaller,
    app: AppState,
}

impl std::ops::Deref for Admin {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.app
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Admin>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("an admin route outside the admin layer".into()))
    }
}

/// The layer over every administrative route: 401 without credentials, 403
/// for a verified certificate that is not an administrator's or plugin's,
/// before the handler (and any lookup) runs; else it hands the handler an
/// [`Admin`].
pub async fn require_admin(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    match AdminCaller::from_request_parts(&mut parts, &app).await {
        Ok(caller) => {
            parts.extensions.insert(Admin { caller, app });
            next.run(Request::from_parts(parts, body)).await
        }
        Err(e) => e.into_response(),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AdminCaller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if let Caller::Verified(v) = &caller
            && matches!(v.role, Role::Admin | Role::Plugin)
        {
            return Ok(AdminCaller {
                actor: Actor::named(v.role.as_str(), &v.name),
                role: v.role,
                via: AdminVia::Certificate,
            });
        }
        if let Some(session) = parts.extensions.get::<SessionIdentity>() {
            return Ok(AdminCaller {
                actor: Actor::named("admin", &session.name),
                role: Role::Admin,
                via: AdminVia::Session,
            });
        }
        match caller {
            Caller::Anonymous => Err(ApiError::Unauthenticated),
            Caller::Refused(why) => Err(ApiError::Forbidden(why)),
            Caller::Verified(_) => Err(ApiError::Forbidden(
                "this operation needs an administrator or plugin certificate",
            )),
        }
    }
}
