//! The device library against the real server, branch by branch.

mod agent;
mod device;
mod rollover;
mod v2;

use idprov_client::device::{DeviceOptions, ServerTarget};
use idprov_proto::{DeviceId, OobSecret};
use idprov_testkit::TestServer;

/// A device `id` of `server` (its address and clock), with `secret` if
/// given, keeping its files in the server's temporary directory.
pub(crate) fn options(server: &TestServer, id: &str, secret: Option<&str>) -> DeviceOptions {
    let mut o = DeviceOptions::new(
        DeviceId::parse(id).expect("id"),
        server.temp_dir().join(format!("device-{id}")),
    );
    o.secret = secret.map(|s| OobSecret::parse(s).expect("secret"));
    o.server = ServerTarget::Address(server.server_arg());
    o.clock = server.clock.clone();
    o
}
