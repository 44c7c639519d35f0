//! The idprov client library: the device side of the protocol (discover,
//! provision, verify, renew, store credentials atomically) and the admin API
//! client the command-line tool uses.
//!
//! Features: `device` (provisioning and renewal over HTTPS) and `discovery`
//! (DNS-SD) by default; `admin` (the admin API client) and `import` (bulk
//! registration files) for the command-line tool. It depends on the
//! protocol and CA crates only among idprov's — never on server code — so
//! firmware or a tool can use it alone.

#[cfg(feature = "admin")]
pub mod admin;
#[cfg(feature = "device")]
pub mod device;
#[cfg(feature = "discovery")]
pub mod discovery;
mod error;
/// Reading bulk-registration files: the readers live in `idprov-import`,
/// which the server shares to read the CSV the web page uploads.
#[cfg(feature = "import")]
pub use idprov_import as import;
#[cfg(feature = "admin")]
mod tls;

#[cfg(feature = "admin")]
pub use admin::AdminClient;
pub use error::ClientError;
#[cfg(feature = "admin")]
pub use tls::Credentials;
