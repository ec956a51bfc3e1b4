//! The one DNS resolver every part shares (MX lookups for delivery; SPF, DKIM, DMARC and block
//! lists for scanning), so that answers are cached once and timeouts are the same everywhere.

use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use crate::config::DnsConfig;

/// Builds the shared resolver: `config.resolver` when set, else the system configuration.
pub fn resolver(config: &DnsConfig) -> std::io::Result<TokioResolver> {
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_millis(config.timeout_ms);
    opts.attempts = 2;
    opts.cache_size = 8192;
    let builder = match config.resolver {
        Some(addr) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], vec![server]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio().map_err(std::io::Error::other)?,
    };
    builder
        .with_options(opts)
        .build()
        .map_err(std::io::Error::other)
}
