//! The OpenAPI document (`docs/openapi.json`), generated from the types.
//!
//! The admin API's documents and the v1 messages carry their schemas
//! (idprov-proto's `openapi` feature; serde's renames are read from the
//! types), each handler has a `#[utoipa::path]` with its method, path,
//! parameters, body, answers and security, and [`ApiDoc`] lists them all.
//! `cargo run -p idprov-server --example openapi > docs/openapi.json`
//! writes the file; a test checks that the committed file is exactly what
//! [`document`] generates and that it describes exactly [`super::ROUTES`].
//!
//! The few answers a handler builds with `json!` (and the request bodies
//! that are several shapes in one) have a schema-only type here; the same
//! test checks their keys against what the server sends.

use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

use idprov_proto::admin::{AuditView, BulkResult, QueueStatus, SecretAdded};
use idprov_proto::{DeviceId, OobSecretMessage};

use crate::error::ErrorDocument;

/// The document, as `docs/openapi.json` holds it: pretty-printed, with a
/// final newline.
pub fn document() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document encodes as JSON");
    text.push('\n');
    text
}

/// Every route of [`super::ROUTES`], with the schemas, reusable answers
/// and security schemes they use.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "idprov",
        version = "1",
        description = "The idprov v1 protocol endpoints and the administration API. Everything is served over TLS on one port (the CRL and OCSP also over plain HTTP when the revocation listener is configured); administrative calls need a verified client certificate with OU admin or plugin (or an administrator's web session).",
        license(name = "MIT OR Apache-2.0"),
    ),
    servers((url = "https://{host}:43776", variables(("host" = (default = "localhost"))))),
    paths(
        super::directory::get,
        super::oobsecret::post,
        super::provreq::post,
        super::status::get,
        super::v2::params,
        super::v2::start,
        super::v2::finish,
        super::crl::get,
        super::crl::get_of,
        super::ocsp::post,
        super::ocsp::get,
        super::openapi,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        super::est::cacerts::get,
        super::est::csrattrs::get,
        super::est::simpleenroll::post,
        super::est::simplereenroll::post,
        super::admin::devices::list,
        super::admin::devices::show,
        super::admin::devices::remove,
        super::admin::devices::revoke,
        super::admin::devices::unlock,
        super::admin::secrets::list,
        super::admin::secrets::export,
        super::admin::import::ndjson,
        super::admin::secrets::remove,
        super::admin::queue::list,
        super::admin::queue::status,
        super::admin::queue::approve,
        super::admin::queue::reject,
        super::admin::queue::clear,
        super::admin::audit::list,
        super::admin::audit::checkpoints,
        super::admin::audit::checkpoint_now,
        super::admin::credentials::list,
        super::admin::credentials::issue,
        super::admin::credentials::revoke,
        super::admin::web::summary,
        super::admin::web::audit_status,
        super::admin::web::labels,
        super::admin::check::check,
        super::admin::check::generate,
        super::admin::web::set_password,
        super::admin::web::remove_password,
        crate::web::session,
        crate::web::signin,
        crate::web::signout,
        crate::web::own_password,
    ),
    components(
        schemas(DeviceId, ErrorDocument),
        responses(
            BadRequest,
            Unauthenticated,
            Forbidden,
            NotFound,
            PayloadTooLarge,
            TooManyRequests,
            BasicChallenge,
            UnsupportedMediaType,
            EstIssued
        )
    ),
    modifiers(&SecuritySchemes, &AdminRoutes, &OptionalBodies),
    tags(
        (name = "protocol", description = "idprov v1 and v2 (PROTOCOL.md): what devices and their provisioning plugins call"),
        (name = "est", description = "EST, RFC 7030 (docs/EST.md): enrollment for devices that do not speak idprov, on the same registry"),
        (name = "devices", description = "Devices and their certificates"),
        (name = "secrets", description = "Out-of-band secrets: registration, bulk import and export, label sheets"),
        (name = "requests", description = "The waiting queue of requests without a secret, and administrators' decisions"),
        (name = "audit", description = "The hash-chained audit log and its signed checkpoints"),
        (name = "credentials", description = "Certificates and web passwords of administrators, plugins and services"),
        (name = "web", description = "The web page's session API"),
        (name = "revocation", description = "The CRL and the OCSP responder: signed objects, also served over plain HTTP by the optional revocation listener (revocation.http_listen), which serves nothing else"),
        (name = "meta", description = "This document, health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

/// The two ways to authenticate: `clientCertificate`, `adminSession`.
#[derive(Debug)]
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "clientCertificate",
            SecurityScheme::MutualTls {
                description: Some("A client certificate issued by this server's CA".into()),
                deprecated: None,
                extensions: None,
            },
        );
        components.add_security_scheme(
            "httpBasic",
            SecurityScheme::Http({
                let mut basic = utoipa::openapi::security::Http::new(
                    utoipa::openapi::security::HttpAuthScheme::Basic,
                );
                basic.description = Some(
                    "EST (RFC 7030 §3.2.3): the device ID as user name, its out-of-band secret as password"
                        .into(),
                );
                basic
            }),
        );
        components.add_security_scheme(
            "adminSession",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::web::COOKIE,
                "An administrator's web session (with the web page)",
            ))),
        );
    }
}

/// What the admin layer (`auth::require_admin`) gives every administrative
/// route of [`super::ROUTES`], written once here rather than on each
/// handler: the security requirement (an administrator certificate or web
/// session) and its 401 and 403 answers. A handler's own answer for either
/// status is kept.
#[derive(Debug)]
struct AdminRoutes;

impl Modify for AdminRoutes {
    fn modify(&self, doc: &mut Document) {
        use utoipa::openapi::security::SecurityRequirement;
        use utoipa::openapi::{Ref, RefOr};
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, op) in [
                ("get", &mut item.get),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
            ] {
                let Some(op) = op.as_mut() else { continue };
                if !super::is_admin_route(method, path) {
                    continue;
                }
                op.security = Some(vec![
                    SecurityRequirement::new("clientCertificate", Vec::<String>::new()),
                    SecurityRequirement::new("adminSession", Vec::<String>::new()),
                ]);
                for (status, answer) in [("401", "Unauthenticated"), ("403", "Forbidden")] {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(answer)));
                }
            }
        }
    }
}

/// utoipa writes an optional request body (`request_body = Option<T>`) as
/// "`T` or `null`", not required; these routes read an empty body as `{}`
/// and refuse `null`, so the body becomes plainly `T`, not required.
#[derive(Debug)]
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, doc: &mut Document) {
        use utoipa::openapi::schema::{Schema, Type};
        use utoipa::openapi::{RefOr, Required};
        let is_null = |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == Type::Null.into());
        for item in doc.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post, &mut item.delete]
                .into_iter()
                .flatten()
            {
                let Some(RefOr::T(body)) = op.request_body.as_mut() else {
                    continue;
                };
                if body.required == Some(Required::True) {
                    continue;
                }
                for content in body.content.values_mut() {
                    let RefOr::T(content) = content else {
                        continue;
                    };
                    if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema
                        && one_of.items.len() == 2
                        && one_of.items.iter().any(is_null)
                    {
                        content.schema = one_of.items.iter().find(|s| !is_null(s)).cloned();
                    }
                }
            }
        }
    }
}

// The error answers many routes share, each the error document of
// `error.rs` (components/responses).

/// Malformed or invalid input (the message names the field)
#[derive(Debug, ToResponse)]
pub struct BadRequest(pub ErrorDocument);

/// No client certificate (or web session) where one is needed
#[derive(Debug, ToResponse)]
pub struct Unauthenticated(pub ErrorDocument);

/// The verified caller may not do this
#[derive(Debug, ToResponse)]
pub struct Forbidden(pub ErrorDocument);

/// Unknown path or object
#[derive(Debug, ToResponse)]
pub struct NotFound(pub ErrorDocument);

/// Body too large
#[derive(Debug, ToResponse)]
pub struct PayloadTooLarge(pub ErrorDocument);

/// A wrong secret, or none where one is registered: authenticate with HTTP
/// Basic (the device ID and its out-of-band secret)
#[derive(Debug, ToResponse)]
#[response(headers(("WWW-Authenticate" = String, description = "Basic realm=\"idprov EST\", charset=\"UTF-8\"")))]
pub struct BasicChallenge(pub ErrorDocument);

/// Issued: the certificate, a base64 certs-only PKCS#7 (EST, RFC 7030 §4.2.3)
#[derive(Debug, ToResponse)]
#[response(
    content_type = "application/pkcs7-mime",
    headers(("Content-Transfer-Encoding" = String, description = "base64"))
)]
pub struct EstIssued(pub String);

/// The body is not of the type the route takes
#[derive(Debug, ToResponse)]
pub struct UnsupportedMediaType(pub ErrorDocument);

/// Locked out or rate limited: retry after the seconds of Retry-After
#[derive(Debug, ToResponse)]
#[response(headers(("Retry-After" = u64, description = "Seconds until a retry can succeed")))]
pub struct TooManyRequests(pub ErrorDocument);

// Schema-only types: bodies of several shapes, and answers built with
// `json!` (their keys are checked against live answers by a test).

/// One secret, or a JSON array of them (a bulk post with the bulk limits).
#[derive(Debug, ToSchema)]
#[serde(untagged)]
pub enum OobSecretBody {
    /// One secret.
    One(OobSecretMessage),
    /// A bulk post.
    Many(Vec<OobSecretMessage>),
}

/// The answer to one secret, or to a JSON array of them.
#[derive(Debug, ToSchema)]
#[serde(untagged)]
pub enum Registered {
    /// One secret.
    One(SecretAdded),
    /// A bulk post.
    Many(BulkResult),
}

/// `POST /idprov/admin/devices/{deviceID}/unlock`.
#[derive(Debug, ToSchema)]
pub struct Unlocked {
    /// The device.
    #[schema(rename = "deviceID")]
    pub device_id: String,
    /// Counters and locks removed.
    pub cleared: u64,
}

/// Devices by status.
#[derive(Debug, ToSchema)]
pub struct DeviceCounts {
    /// Devices known.
    pub total: u64,
    /// With a valid, unrevoked certificate.
    pub approved: u64,
    /// Waiting (a secret, a request or an approval, no certificate yet).
    pub waiting: u64,
    /// Rejected (by an administrator, or every certificate revoked).
    pub rejected: u64,
    /// Of which every certificate is revoked.
    pub revoked: u64,
}

/// `GET /idprov/admin/summary`: what the dashboard shows.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Summary {
    /// Devices by status.
    pub devices: DeviceCounts,
    /// Waiting requests recorded.
    pub waiting_requests: u64,
    /// Whether the waiting queue is full.
    pub waiting_queue: QueueStatus,
    /// Valid certificates expiring within 7 days.
    #[schema(rename = "expiringWithin7Days")]
    pub expiring_within_7_days: u64,
    /// Devices that missed their renewal (no certificate after 55% of the
    /// latest one's validity plus a day).
    pub missed_renewal: u64,
    /// The newest audit entries, newest first (at most 10).
    pub recent_audit: Vec<AuditView>,
}

/// `GET /idprov/admin/audit/status`: whether the log verifies, and the
/// first problem if not.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct AuditStatus {
    /// Entries in the chain.
    pub entries: u64,
    /// Whether the chain and every checkpoint verify.
    pub verified: bool,
    /// What was verified, when it was.
    #[schema(required = false)]
    pub message: Option<String>,
    /// The first problem, when there is one.
    #[schema(required = false)]
    pub error: Option<String>,
    /// Signed checkpoints.
    pub checkpoints: u64,
    /// The entry the newest checkpoint covers.
    #[schema(required = false)]
    pub last_checkpoint_seq: Option<i64>,
}

/// Who the web page is signed in as.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct SessionDocument {
    /// The administrator (the certificate's CN, or the password's name).
    pub name: String,
    /// How: a session cookie or an administrator certificate.
    pub via: SessionVia,
    /// Send as X-CSRF-Token on every change made with the session cookie
    /// (empty with a certificate).
    pub csrf: String,
    /// When the session ends unless used (30 minutes idle, 12 hours in
    /// all); `null` with a certificate.
    #[schema(required = false, format = DateTime)]
    pub expires_at: Option<String>,
    /// The CA's fingerprint, as labels carry it.
    pub ca_fingerprint: String,
    /// Every audit event name the server writes (the filter's suggestions).
    pub audit_events: Vec<String>,
}

/// How the web page is signed in.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum SessionVia {
    /// A session cookie.
    Session,
    /// An administrator certificate presented by the browser.
    Certificate,
}

/// `POST /admin/api/signin`: the one-time token, or a name and password.
#[derive(Debug, ToSchema)]
#[serde(untagged)]
pub enum SignInBody {
    /// The first start's one-time token.
    Token {
        /// The token.
        token: String,
    },
    /// An administrator's web password.
    Password {
        /// The administrator.
        name: String,
        /// The password.
        password: String,
    },
}

/// The format of a label sheet.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum LabelFormat {
    /// SVG (the default).
    Svg,
    /// PNG.
    Png,
}

/// An OpenAPI 3.1 document.
#[derive(Debug, ToSchema)]
#[schema(value_type = Object)]
pub struct OpenApiDocument(pub serde_json::Value);

/// Bytes (a DER CRL or OCSP message, a PNG).
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(pub Vec<u8>);
