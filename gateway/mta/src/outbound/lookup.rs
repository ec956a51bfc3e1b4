//! Where mail for a domain goes: a configured route, else the domain's MX records (RFC 5321
//! §5.1), else its address records; null MX (RFC 7505) means the domain takes no mail.

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustls::ClientConfig;

use crate::config::{DeliveryConfig, RouteConfig, ServerTrust, TlsPolicy};

/// Most MX hosts tried for one domain.
const MAX_MX: usize = 10;

/// A resolved next hop.
#[derive(Debug, Clone)]
pub struct Destination {
    /// Identifies the destination for connection reuse and concurrency limits.
    pub key: String,
    /// Candidate servers in order of preference, each with the name used for TLS.
    pub hosts: Vec<(SocketAddr, String)>,
    /// STARTTLS policy.
    pub tls: TlsPolicy,
    /// For `verify`: the client configuration that checks the server's proof.
    pub verifier: Option<Arc<ClientConfig>>,
    /// For `tlcp`: the public keys the server's signing certificate may carry (any when empty).
    pub pins: Vec<[u8; 32]>,
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
    routes: Vec<Route>,
    resolver: TokioResolver,
    mx_port: u16,
    mx_tls: TlsPolicy,
    mx_verifier: Option<Arc<ClientConfig>>,
}

/// A configured route with what its server must prove, prepared once.
struct Route {
    config: RouteConfig,
    /// For `tls = "verify"`: the client configuration that checks the server.
    verifier: Option<Arc<ClientConfig>>,
    /// For `tls = "tlcp"`: the public keys its signing certificate may carry.
    pins: Vec<[u8; 32]>,
}

/// Why a route's server proof cannot be checked.
#[derive(Debug, thiserror::Error)]
#[error("route for {domain}: {reason}")]
pub struct TrustError {
    domain: String,
    reason: String,
}

/// The client configuration that checks what `trust` asks, if anything.
fn verifier(
    domain: &str,
    trust: Option<ServerTrust>,
) -> Result<Option<Arc<ClientConfig>>, TrustError> {
    trust
        .map(|t| jianmen_gm::tls::verifying_client_config(&t))
        .transpose()
        .map_err(|e| TrustError {
            domain: domain.to_owned(),
            reason: e.to_string(),
        })
}

impl Router {
    /// Builds the router on the shared resolver, with the client configurations that check
    /// each `verify` route's server.
    pub fn new(
        routes: Vec<RouteConfig>,
        config: &DeliveryConfig,
        resolver: TokioResolver,
    ) -> Result<Self, TrustError> {
        let routes = routes
            .into_iter()
            .map(|r| {
                let refused = |reason| TrustError {
                    domain: r.domain.clone(),
                    reason,
                };
                let trust = r.server_trust().map_err(refused)?;
                let pins = r.pins().map_err(refused)?;
                Ok(Route {
                    verifier: verifier(&r.domain, trust)?,
                    pins,
                    config: r,
                })
            })
            .collect::<Result<_, TrustError>>()?;
        let mx_trust =
            (config.mx_tls == TlsPolicy::Verify).then_some(ServerTrust::SystemAuthorities);
        Ok(Self {
            routes,
            resolver,
            mx_port: config.mx_port,
            mx_tls: config.mx_tls,
            mx_verifier: verifier("MX", mx_trust)?,
        })
    }

    /// Finds where mail for `domain` goes.
    pub async fn resolve(&self, domain: &str) -> Result<Destination, LookupError> {
        let route = self
            .routes
            .iter()
            .find(|r| r.config.domain == domain)
            .or_else(|| self.routes.iter().find(|r| r.config.domain == "*"));
        if let Some(Route {
            config: route,
            verifier,
            pins,
        }) = route
        {
            let addrs = self.addresses(&route.host).await?;
            return Ok(Destination {
                key: format!("route:{}:{}", route.host, route.port),
                hosts: addrs
                    .into_iter()
                    .map(|ip| (SocketAddr::new(ip, route.port), route.tls_name().to_owned()))
                    .collect(),
                tls: route.tls,
                verifier: verifier.clone(),
                pins: pins.clone(),
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
            verifier: self.mx_verifier.clone(),
            pins: Vec::new(),
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
