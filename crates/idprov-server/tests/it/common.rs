//! Helpers shared by the end-to-end tests.

use idprov_ca::CertInfo;
use idprov_proto::{ProvisionResponse, ProvisionStatus};
use idprov_testkit::{TestDevice, TestServer, provision};

/// Registers a secret through the admin API.
pub async fn add_secret(server: &TestServer, device: &str, secret: &str) {
    server.add_secret(device, secret).await;
}

/// Provisions a device anonymously with its secret; asserts Approved.
pub async fn provision_ok(
    server: &TestServer,
    device: &TestDevice,
    secret: &str,
) -> ProvisionResponse {
    let (status, resp, body) =
        provision(&server.http(), server, &device.request(Some(secret))).await;
    assert_eq!(status, 200, "{body}");
    let resp = resp.expect("response");
    assert_eq!(resp.status, ProvisionStatus::Approved, "{body}");
    resp
}

/// The facts of the first certificate of a PEM chain.
pub fn leaf_of(pem: &str) -> CertInfo {
    let certs = idprov_ca::pem::parse_certificates(pem).expect("certificate PEM");
    CertInfo::from_der(&certs[0]).expect("certificate")
}

/// The audit entries recorded so far, oldest first.
pub async fn audit_entries(server: &TestServer) -> Vec<idprov_store::AuditEntry> {
    server
        .registry()
        .audit_entries(0, 10_000)
        .await
        .expect("audit")
}

/// Audit events recorded so far, by name.
pub async fn audit_events(server: &TestServer) -> Vec<String> {
    audit_entries(server)
        .await
        .into_iter()
        .map(|e| e.event)
        .collect()
}

/// The newest audit entry that `matches`; fails when there is none.
pub async fn last_audit(
    server: &TestServer,
    what: &str,
    matches: impl Fn(&idprov_store::AuditEntry) -> bool,
) -> idprov_store::AuditEntry {
    audit_entries(server)
        .await
        .into_iter()
        .rev()
        .find(|e| matches(e))
        .unwrap_or_else(|| panic!("no audit entry: {what}"))
}
