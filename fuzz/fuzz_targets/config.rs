//! Server configuration: TOML text through figment into `RawConfig`, then
//! `validate()`.
//!
//! Checks: no panic in figment/TOML extraction or in `validate()`; what
//! validates obeys the documented limits.
//!
//! `validate()` resolves `listen` entries with `ToSocketAddrs`, which does a
//! DNS lookup for `HOST:PORT` with a host name. A fuzzer must not send DNS
//! queries, so such entries are replaced by `127.0.0.1:PORT` before
//! validation; literal addresses and entries that cannot reach the resolver
//! (no port, bad port) are passed through unchanged. `data_dir` is fixed so
//! the default-path probe does not run on every input.
#![no_main]

use std::net::SocketAddr;

use figment::Figment;
use figment::providers::{Format, Toml};
use idprov_server::config::{OneOrMany, RawConfig};
use libfuzzer_sys::fuzz_target;

/// Returns the item unchanged unless `to_socket_addrs` would hand it to the
/// system resolver.
fn no_dns(item: &str) -> String {
    if item.parse::<SocketAddr>().is_ok() {
        return item.to_owned();
    }
    match item.rsplit_once(':') {
        Some((_, port)) => match port.parse::<u16>() {
            Ok(port) => format!("127.0.0.1:{port}"),
            Err(_) => item.to_owned(),
        },
        None => item.to_owned(),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(mut raw) = Figment::new()
        .merge(Toml::string(&text))
        .extract::<RawConfig>()
    else {
        return;
    };
    raw.listen = match raw.listen.take() {
        None => None,
        Some(OneOrMany::One(s)) => Some(OneOrMany::One(no_dns(&s))),
        Some(OneOrMany::Many(v)) => Some(OneOrMany::Many(v.iter().map(|s| no_dns(s)).collect())),
    };
    if raw.data_dir.is_none() {
        raw.data_dir = Some("/nonexistent/idprov-fuzz".into());
    }
    let _ = format!("{raw:?}");
    if let Ok(cfg) = raw.validate() {
        assert!(!cfg.listen.is_empty());
        assert!((1024..=16 * 1024 * 1024).contains(&cfg.body_limit));
        assert!(cfg.lockout.threshold >= 1);
        assert!(cfg.lockout.max_secs >= cfg.lockout.base_secs);
        assert!(cfg.handshake_rate.is_finite() && cfg.handshake_rate > 0.0);
        assert!(cfg.bulk_rows >= 1 && cfg.bulk_bytes >= 1024);
        assert!(!cfg.device_validity.is_zero() && !cfg.secret_lifetime.is_zero());
        let _ = format!("{cfg:?}");
        let _ = cfg.port();
    }
});
