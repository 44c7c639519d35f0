//! Finding idprov servers on the local network over DNS-SD (PROTOCOL.md §8).
//!
//! A discovered address is untrusted until TLS verifies it: discovery only
//! says where to knock. Multicast DNS is mdns-sd's; browsing sends queries on
//! every interface, so tests run it inside network namespaces.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use mdns_sd::{ScopedIp, ServiceDaemon, ServiceEvent};

use crate::error::ClientError;

/// The DNS-SD service type idprov servers advertise.
pub const SERVICE_TYPE: &str = "_idprov._tcp.local.";

/// One advertised server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The instance name (e.g. `idprov`).
    pub instance: String,
    /// The advertised host name, without the final dot (e.g. `hub.local`).
    pub host: String,
    /// The advertised port.
    pub port: u16,
    /// Addresses: IPv4 first, then IPv6 (link-local ones with their scope).
    pub addresses: Vec<SocketAddr>,
    /// The directory path: TXT `path`, else `directory`, else the standard's.
    pub path: String,
    /// TXT `version`, if any.
    pub version: Option<String>,
}

impl Discovered {
    /// `https://host:port` — the host name, which the server's certificate
    /// covers; connect to [`Discovered::addresses`] for it.
    pub fn base_url(&self) -> String {
        format!("https://{}:{}", self.host, self.port)
    }

    /// The directory URL built from the TXT path.
    pub fn directory_url(&self) -> String {
        format!("{}{}", self.base_url(), self.path)
    }
}

fn socket_addr(ip: &ScopedIp, port: u16) -> SocketAddr {
    match ip {
        ScopedIp::V6(v6) => {
            SocketAddr::V6(SocketAddrV6::new(*v6.addr(), port, 0, v6.scope_id().index))
        }
        other => SocketAddr::new(other.to_ip_addr(), port),
    }
}

fn instance_of(fullname: &str) -> String {
    fullname
        .strip_suffix(SERVICE_TYPE)
        .map(|s| s.trim_end_matches('.'))
        .unwrap_or(fullname)
        .to_owned()
}

/// How long `first_only` keeps listening after the first server resolved
/// without an IPv4 address: its A record often arrives in a later answer,
/// and an IPv4 address works across routers where a link-local one does not.
const SETTLE_FOR_IPV4: Duration = Duration::from_secs(1);

/// IPv4 first: it needs no scope; then global IPv6, then link-local.
fn address_rank(a: &SocketAddr) -> u8 {
    match a.ip() {
        IpAddr::V4(_) => 0,
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) != 0xfe80 => 1,
        IpAddr::V6(_) => 2,
    }
}

/// Browses for idprov servers for up to `timeout`. With `first_only`, it
/// returns once one server is resolved with an IPv4 address, or
/// [`SETTLE_FOR_IPV4`] after it resolved with IPv6 addresses only.
pub async fn discover(timeout: Duration, first_only: bool) -> Result<Vec<Discovered>, ClientError> {
    let daemon = ServiceDaemon::new().map_err(|e| ClientError::Discovery(e.to_string()))?;
    let receiver = daemon
        .browse(SERVICE_TYPE)
        .map_err(|e| ClientError::Discovery(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    let mut found: BTreeMap<String, Discovered> = BTreeMap::new();
    let mut settle: Option<Instant> = None;
    // With `first_only`: the instance that answered first, whatever else
    // answers while it settles.
    let mut first: Option<String> = None;
    loop {
        let until = settle.map_or(deadline, |s| s.min(deadline));
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let event = match tokio::time::timeout(left, receiver.recv_async()).await {
            Ok(Ok(e)) => e,
            Ok(Err(_)) | Err(_) => break,
        };
        match event {
            ServiceEvent::ServiceResolved(info) => {
                let mut addresses: Vec<SocketAddr> = info
                    .addresses
                    .iter()
                    .map(|a| socket_addr(a, info.port))
                    .collect();
                // A later answer for the same instance adds to what an
                // earlier one gave (same port: the instance did not move).
                if let Some(earlier) = found.get(&info.fullname)
                    && earlier.port == info.port
                {
                    for a in &earlier.addresses {
                        if !addresses.contains(a) {
                            addresses.push(*a);
                        }
                    }
                }
                addresses.sort_by_key(address_rank);
                let txt = &info.txt_properties;
                let path = txt
                    .get_property_val_str("path")
                    .or_else(|| txt.get_property_val_str("directory"))
                    .filter(|p| p.starts_with('/'))
                    .unwrap_or(idprov_proto::messages::DIRECTORY_PATH)
                    .to_owned();
                let d = Discovered {
                    instance: instance_of(&info.fullname),
                    host: info.host.trim_end_matches('.').to_owned(),
                    port: info.port,
                    addresses,
                    path,
                    version: txt.get_property_val_str("version").map(str::to_owned),
                };
                let has_ipv4 = d.addresses.iter().any(|a| a.is_ipv4());
                let usable = !d.addresses.is_empty();
                found.insert(info.fullname.clone(), d);
                if first_only && usable {
                    let first = first.get_or_insert_with(|| info.fullname.clone());
                    if *first == info.fullname {
                        if has_ipv4 {
                            break;
                        }
                        settle.get_or_insert_with(|| Instant::now() + SETTLE_FOR_IPV4);
                    }
                }
            }
            ServiceEvent::ServiceRemoved(_, fullname) => {
                found.remove(&fullname);
            }
            _ => {}
        }
    }
    let _ = daemon.stop_browse(SERVICE_TYPE);
    if let Ok(rx) = daemon.shutdown() {
        let _ = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(1))).await;
    }
    if let Some(first) = first {
        found.retain(|name, _| *name == first);
    }
    Ok(found
        .into_values()
        .filter(|d| !d.addresses.is_empty())
        .collect())
}
