//! Where mail for a domain goes: a configured route, else the domain's MX records (RFC 5321
//! §5.1), else its address records; null MX (RFC 7505) means the domain takes no mail.

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;
use std::net::{IpAddr, SocketAddr};

use crate::config::{DeliveryConfig, RouteConfig, TlsPolicy};

/// Most MX hosts tried for one domain.
const MAX_MX: usize = 10;

/// A resolved next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Identifies the destination for connection reuse and concurrency limits.
    pub key: String,
    /// Candidate servers in order of preference, each with the name used for TLS.
    pub hosts: Vec<(SocketAddr, String)>,
    /// STARTTLS policy.
    pub tls: TlsPolicy,
}

/// Why no destination could be found.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupError {
    /// Try again later (DNS timeout, SERVFAIL).
    #[error("{0}")]
    Temporary(String),
    /// The domain does not exist or accepts no mail.
    #[error("{0}")]
    Permanent(String),
}

/// Resolves recipient domains to destinations.
pub struct Router {
    routes: Vec<RouteConfig>,
    resolver: TokioResolver,
    mx_port: u16,
    mx_tls: TlsPolicy,
}

impl Router {
    /// Builds the router on the shared resolver.
    pub fn new(routes: Vec<RouteConfig>, config: &DeliveryConfig, resolver: TokioResolver) -> Self {
        Self {
            routes,
            resolver,
            mx_port: config.mx_port,
            mx_tls: config.mx_tls,
        }
    }

    /// Finds where mail for `domain` goes.
    pub async fn resolve(&self, domain: &str) -> Result<Destination, LookupError> {
        let route = self
            .routes
            .iter()
            .find(|r| r.domain == domain)
            .or_else(|| self.routes.iter().find(|r| r.domain == "*"));
        if let Some(route) = route {
            let addrs = self.addresses(&route.host).await?;
            return Ok(Destination {
                key: format!("route:{}:{}", route.host, route.port),
                hosts: addrs
                    .into_iter()
                    .map(|ip| (SocketAddr::new(ip, route.port), route.host.clone()))
                    .collect(),
                tls: route.tls,
            });
        }
        let mut hosts = Vec::new();
        for exchange in self.mx(domain).await? {
            match self.addresses(&exchange).await {
                Ok(addrs) => hosts.extend(
                    addrs
                        .into_iter()
                        .map(|ip| (SocketAddr::new(ip, self.mx_port), exchange.clone())),
                ),
                Err(e) => tracing::debug!(domain, exchange, error = %e, "MX host has no address"),
            }
        }
        if hosts.is_empty() {
            return Err(LookupError::Temporary(format!(
                "no usable address for the mail servers of {domain}"
            )));
        }
        Ok(Destination {
            key: format!("mx:{domain}"),
            hosts,
            tls: self.mx_tls,
        })
    }

    /// MX exchanges by preference; the domain itself when it has no MX.
    async fn mx(&self, domain: &str) -> Result<Vec<String>, LookupError> {
        match self.resolver.mx_lookup(format!("{domain}.")).await {
            Ok(lookup) => {
                let mut records: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => {
                            let name = mx.exchange.to_ascii();
                            Some((mx.preference, name.trim_end_matches('.').to_owned()))
                        }
                        _ => None,
                    })
                    .collect();
                records.sort();
                if records.len() == 1 && records[0].1.is_empty() {
                    return Err(LookupError::Permanent(format!(
                        "{domain} does not accept mail (null MX)"
                    )));
                }
                Ok(records
                    .into_iter()
                    .filter(|(_, n)| !n.is_empty())
                    .map(|(_, n)| n)
                    .take(MAX_MX)
                    .collect())
            }
            Err(e) if e.is_nx_domain() => Err(LookupError::Permanent(format!(
                "domain {domain} does not exist"
            ))),
            Err(e) if e.is_no_records_found() => Ok(vec![domain.to_owned()]),
            Err(e) => Err(LookupError::Temporary(format!(
                "MX lookup for {domain} failed: {e}"
            ))),
        }
    }

    /// Addresses of a host name (or the literal address).
    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, LookupError> {
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(vec![ip]);
        }
        match self.resolver.lookup_ip(format!("{host}.")).await {
            Ok(lookup) => Ok(lookup.iter().collect()),
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Err(LookupError::Temporary(
                format!("host {host} has no address"),
            )),
            Err(e) => Err(LookupError::Temporary(format!(
                "address lookup for {host} failed: {e}"
            ))),
        }
    }
}
