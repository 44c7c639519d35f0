//! The DNS-SD advert (PROTOCOL.md §8): `_idprov._tcp.local.` with the
//! instance name, this host's addresses and port, and TXT `path`,
//! `directory` and `version`. Multicast DNS itself is mdns-sd's.
//!
//! The advert goes out on every interface: run with it on only where that is
//! wanted (tests and benchmarks run it inside network namespaces).

use std::time::Duration;

use mdns_sd::{ServiceDaemon, ServiceInfo};

use crate::config::host_name;
use crate::error::StartError;

/// The DNS-SD service type of idprov.
pub const SERVICE_TYPE: &str = "_idprov._tcp.local.";

/// A published advert; withdrawn by [`Advert::withdraw`].
pub struct Advert {
    daemon: ServiceDaemon,
    fullname: String,
}

impl std::fmt::Debug for Advert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Advert")
            .field("fullname", &self.fullname)
            .finish()
    }
}

impl Advert {
    /// Publishes the advert for `port`.
    pub fn publish(instance: &str, port: u16) -> Result<Advert, StartError> {
        let err = |e: mdns_sd::Error| StartError::DnsSd(e.to_string());
        let daemon = ServiceDaemon::new().map_err(err)?;
        let path = idprov_proto::messages::DIRECTORY_PATH;
        let txt = [
            // The Go client reads `path`; the standard's text says `directory`.
            ("path", path),
            ("directory", path),
            ("version", idprov_proto::messages::PROTOCOL_VERSION),
        ];
        // Addresses are filled in (and kept current) by mdns-sd from the
        // machine's interfaces.
        let info = ServiceInfo::new(
            SERVICE_TYPE,
            instance,
            &format!("{}.local.", host_name()),
            (),
            port,
            &txt[..],
        )
        .map_err(err)?
        .enable_addr_auto();
        let fullname = info.get_fullname().to_owned();
        daemon.register(info).map_err(err)?;
        tracing::info!(
            instance,
            port,
            service = SERVICE_TYPE,
            "DNS-SD advert published"
        );
        Ok(Advert { daemon, fullname })
    }

    /// Withdraws the advert (goodbye packets) and stops the responder.
    pub async fn withdraw(self) {
        let Advert { daemon, fullname } = self;
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(rx) = daemon.unregister(&fullname) {
                let _ = rx.recv_timeout(Duration::from_secs(2));
            }
            if let Ok(rx) = daemon.shutdown() {
                let _ = rx.recv_timeout(Duration::from_secs(2));
            }
        })
        .await;
        tracing::info!("DNS-SD advert withdrawn");
    }
}
