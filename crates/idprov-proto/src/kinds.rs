//! The registry's vocabulary, shared by the store, the server and the admin
//! API's documents: what a certificate was issued to and how, where a
//! waiting request stands, which protocol a device spoke. Each serializes
//! as its stable lower-case name.

use serde::{Deserialize, Serialize};

/// What a certificate was issued to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CertKind {
    /// A device (OU iotdevice).
    Device,
    /// An administrator (OU admin).
    Admin,
    /// A plugin (OU plugin).
    Plugin,
    /// A hub service (OU service).
    Service,
    /// The idprov server's own TLS certificate.
    Server,
    /// The server's delegated OCSP responder (EKU OCSPSigning).
    Ocsp,
}

impl CertKind {
    /// Stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            CertKind::Device => "device",
            CertKind::Admin => "admin",
            CertKind::Plugin => "plugin",
            CertKind::Service => "service",
            CertKind::Server => "server",
            CertKind::Ocsp => "ocsp",
        }
    }

    /// Parses the text form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "device" => CertKind::Device,
            "admin" => CertKind::Admin,
            "plugin" => CertKind::Plugin,
            "service" => CertKind::Service,
            "server" => CertKind::Server,
            "ocsp" => CertKind::Ocsp,
            _ => return None,
        })
    }
}

/// How a certificate came to be issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum IssueKind {
    /// A device proved knowledge of its OOB secret.
    Oob,
    /// A device renewed with its own valid certificate, same key.
    Renewal,
    /// A device renewed with its own valid certificate and a new key.
    Rekey,
    /// An administrator or plugin requested it over mutual TLS.
    Admin,
    /// An administrator approved a waiting request.
    Approval,
    /// Issued by the server for itself or an operator (credentials).
    Local,
}

impl IssueKind {
    /// Stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueKind::Oob => "oob",
            IssueKind::Renewal => "renewal",
            IssueKind::Rekey => "rekey",
            IssueKind::Admin => "admin",
            IssueKind::Approval => "approval",
            IssueKind::Local => "local",
        }
    }

    /// Parses the text form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "oob" => IssueKind::Oob,
            "renewal" => IssueKind::Renewal,
            "rekey" => IssueKind::Rekey,
            "admin" => IssueKind::Admin,
            "approval" => IssueKind::Approval,
            "local" => IssueKind::Local,
            _ => return None,
        })
    }
}

/// The protocol a device spoke: which front door a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// idprov v1 (`POST /idprov/provreq`, PROTOCOL.md).
    V1,
    /// EST, RFC 7030 (`/.well-known/est/`, docs/EST.md).
    Est,
    /// idprov v2, SPAKE2+ first contact (`/idprov/v2/`, PROTOCOL.md §11).
    V2,
}

impl Protocol {
    /// Stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::V1 => "v1",
            Protocol::Est => "est",
            Protocol::V2 => "v2",
        }
    }

    /// Parses the text form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "v1" => Protocol::V1,
            "est" => Protocol::Est,
            "v2" => Protocol::V2,
            _ => return None,
        })
    }
}

/// Where a waiting request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum QueueState {
    /// Nobody decided yet.
    #[default]
    Waiting,
    /// Approved: the device's next request with this key is Approved.
    Approved,
    /// Rejected until an administrator clears it.
    Rejected,
}

impl QueueState {
    /// Stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueState::Waiting => "waiting",
            QueueState::Approved => "approved",
            QueueState::Rejected => "rejected",
        }
    }
}

/// What an administrator's decision on a waiting request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DecisionKind {
    /// Approved.
    Approved,
    /// Rejected.
    Rejected,
    /// Cleared: requests, approvals and rejections removed.
    Cleared,
}

impl DecisionKind {
    /// Stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Approved => "approved",
            DecisionKind::Rejected => "rejected",
            DecisionKind::Cleared => "cleared",
        }
    }
}

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl core::fmt::Display for $t {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

display_as_str!(CertKind, IssueKind, Protocol, QueueState, DecisionKind);
