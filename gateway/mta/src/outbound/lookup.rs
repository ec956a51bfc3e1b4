//! Where mail for a domain goes: a configured route, else the domain's MX records (RFC 5321
//! §5.1), else its address records; null MX (RFC 7505) means the domain takes no mail. Each
//! server comes with what it must prove: the route's policy, or for MX hosts DANE's TLSA
//! records, the domain's MTA-STS policy or `delivery.mx_tls`.

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustls::ClientConfig;

use super::dane::{Dane, HostTlsa};
use super::mta_sts::{Mode, MtaSts, Policy};
use crate::config::{Config, RouteConfig, ServerTrust, TlsPolicy};

/// Most MX hosts tried for one domain.
const MAX_MX: usize = 10;

/// A resolved next hop.
#[derive(Debug, Clone)]
pub struct Destination {
    /// Identifies the destination for connection reuse and concurrency limits.
    pub key: String,
    /// Candidate servers in order of preference.
    pub hosts: Vec<NextHop>,
    /// For `tlcp`: the public keys the server's signing certificate may carry (any when empty).
    pub pins: Vec<[u8; 32]>,
}

impl Destination {
    /// Whether a configured route (not MX) chose these servers.
    pub fn is_route(&self) -> bool {
        self.hosts.iter().any(|h| h.policy == HopPolicy::Route)
    }
}

/// One server to try, with what it must prove.
#[derive(Debug, Clone)]
pub struct NextHop {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its name, which its certificate must carry where certificates are checked.
    pub name: String,
    /// STARTTLS policy.
    pub tls: TlsPolicy,
    /// The client configuration that checks the server's proof (None: the unchecking one).
    pub verifier: Option<Arc<ClientConfig>>,
    /// Which policy decided `tls` and `verifier`, for the administrator reading a deferral.
    pub policy: HopPolicy,
}

/// Where a next hop's TLS requirements come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopPolicy {
    /// A configured route.
    Route,
    /// A delivery channel's smart host.
    SmartHost,
    /// `delivery.mx_tls`.
    Mx,
    /// The host's DNSSEC-validated TLSA records.
    Dane,
    /// The domain's MTA-STS policy in `enforce` mode.
    MtaSts,
}

impl HopPolicy {
    /// What an administrator can do when the server failed the check, if anything.
    pub fn hint(self) -> &'static str {
        match self {
            Self::Route => {
                "the route's server must prove who it is: give its CA (tls_ca), pin its key \
                 (tls_pins; `jianmen tls-probe` prints it) or set tls = \"opportunistic\""
            }
            Self::SmartHost => {
                "the channel's smart host must prove who it is: give its CA (tls_ca), pin its \
                 key (tls_pins) or set its tls = \"required\""
            }
            Self::Mx => "delivery.mx_tls = \"verify\" checks MX hosts against public authorities",
            Self::Dane => "the domain's DNSSEC-signed TLSA records name another certificate",
            Self::MtaSts => {
                "the domain's MTA-STS policy requires a certificate valid for the MX host"
            }
        }
    }
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
    /// The smart hosts of delivery channels, by channel name.
    smarthosts: Vec<(String, Route)>,
    resolver: TokioResolver,
    mx_port: u16,
    mx_tls: TlsPolicy,
    /// Checks MX hosts and MTA-STS policy servers against the public (or the site's) authorities.
    public_verifier: Arc<ClientConfig>,
    dane: Option<Dane>,
    mta_sts: Option<MtaSts>,
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
    /// each `verify` route's server, and DANE and MTA-STS as `config.delivery` asks.
    pub fn new(config: &Config, resolver: TokioResolver) -> Result<Self, TrustError> {
        let prepare = |r: &RouteConfig, what: &str| {
            let refused = |reason| TrustError {
                domain: what.to_owned(),
                reason,
            };
            let trust = r.server_trust().map_err(refused)?;
            let pins = r.pins().map_err(refused)?;
            Ok(Route {
                verifier: verifier(what, trust)?,
                pins,
                config: r.clone(),
            })
        };
        let routes = config
            .routes
            .iter()
            .map(|r| prepare(r, &r.domain))
            .collect::<Result<_, TrustError>>()?;
        let smarthosts = config
            .relay
            .channels
            .iter()
            .filter_map(|c| Some((c, c.smarthost.as_ref()?)))
            .map(|(c, s)| {
                let what = format!("channel {}", c.name);
                Ok((c.name.clone(), prepare(&s.as_route(), &what)?))
            })
            .collect::<Result<_, TrustError>>()?;
        let delivery = &config.delivery;
        let refused = |reason| TrustError {
            domain: "MX".into(),
            reason,
        };
        let public_trust = delivery.public_trust().map_err(refused)?;
        let public_verifier =
            verifier("MX", Some(public_trust))?.ok_or_else(|| refused("no authorities".into()))?;
        let uses_tls = delivery.mx_tls != TlsPolicy::None;
        let dane = (delivery.dane && uses_tls)
            .then(|| jianmen_scan::dns::validating_resolver(&config.dns))
            .transpose()
            .map_err(|e| refused(format!("DNSSEC resolver: {e}")))?
            .map(Dane::new);
        let mta_sts = (delivery.mta_sts && uses_tls).then(|| {
            MtaSts::new(
                resolver.clone(),
                public_verifier.clone(),
                delivery.mta_sts_port,
            )
        });
        Ok(Self {
            routes,
            smarthosts,
            resolver,
            mx_port: delivery.mx_port,
            mx_tls: delivery.mx_tls,
            public_verifier,
            dane,
            mta_sts,
        })
    }

    /// Finds where mail for `domain` goes.
    pub async fn resolve(&self, domain: &str) -> Result<Destination, LookupError> {
        let route = self
            .routes
            .iter()
            .find(|r| r.config.domain == domain)
            .or_else(|| self.routes.iter().find(|r| r.config.domain == "*"));
        if let Some(route) = route {
            return self.by_route(route, HopPolicy::Route).await;
        }
        let exchanges = self.mx(domain).await?;
        let policy = match &self.mta_sts {
            Some(sts) => sts.policy(domain).await,
            None => None,
        };
        let dane = match &self.dane {
            Some(dane) if dane.mx_validated(domain).await => Some(dane),
            _ => None,
        };
        let mut hosts = Vec::new();
        let mut unusable = Vec::new();
        for exchange in exchanges {
            let (tls, verifier, policy) = match self
                .requirements(domain, &exchange, dane, policy.as_deref())
                .await
            {
                Ok(requirements) => requirements,
                Err(why) => {
                    unusable.push(why);
                    continue;
                }
            };
            match self.addresses(&exchange).await {
                Ok(addrs) => hosts.extend(addrs.into_iter().map(|ip| NextHop {
                    addr: SocketAddr::new(ip, self.mx_port),
                    name: exchange.clone(),
                    tls,
                    verifier: verifier.clone(),
                    policy,
                })),
                Err(e) => tracing::debug!(domain, exchange, error = %e, "MX host has no address"),
            }
        }
        if hosts.is_empty() {
            let mut why = format!("no usable address for the mail servers of {domain}");
            for reason in unusable {
                why.push_str("; ");
                why.push_str(&reason);
            }
            return Err(LookupError::Temporary(why));
        }
        Ok(Destination {
            key: format!("mx:{domain}"),
            hosts,
            pins: Vec::new(),
        })
    }

    /// The smart host of delivery channel `channel`, if it has one.
    pub async fn smarthost(&self, channel: &str) -> Option<Result<Destination, LookupError>> {
        let (_, route) = self.smarthosts.iter().find(|(name, _)| name == channel)?;
        Some(self.by_route(route, HopPolicy::SmartHost).await)
    }

    /// The servers of a configured route or smart host.
    async fn by_route(&self, route: &Route, policy: HopPolicy) -> Result<Destination, LookupError> {
        let Route {
            config: route,
            verifier,
            pins,
        } = route;
        let addrs = self.addresses(&route.host).await?;
        Ok(Destination {
            key: format!("route:{}:{}", route.host, route.port),
            hosts: addrs
                .into_iter()
                .map(|ip| NextHop {
                    addr: SocketAddr::new(ip, route.port),
                    name: route.tls_name().to_owned(),
                    tls: route.tls,
                    verifier: verifier.clone(),
                    policy,
                })
                .collect(),
            pins: pins.clone(),
        })
    }

    /// What MX host `exchange` must prove: its TLSA records if it has validated ones (DANE
    /// comes before MTA-STS, RFC 8461 §2), else the domain's enforced MTA-STS policy, else
    /// `delivery.mx_tls`. An error says why the host must not be used.
    async fn requirements(
        &self,
        domain: &str,
        exchange: &str,
        dane: Option<&Dane>,
        sts: Option<&Policy>,
    ) -> Result<(TlsPolicy, Option<Arc<ClientConfig>>, HopPolicy), String> {
        if let Some(dane) = dane {
            match dane.tlsa(exchange, self.mx_port).await {
                HostTlsa::Absent => {}
                HostTlsa::Failed(e) => return Err(e),
                HostTlsa::Records(records) if !records.iter().any(|r| r.is_usable()) => {
                    // TLS is still owed, but nothing can authenticate it (RFC 7672 §2.2).
                    return Ok((TlsPolicy::Required, None, HopPolicy::Dane));
                }
                HostTlsa::Records(records) => {
                    let config =
                        jianmen_gm::tls::verifying_client_config(&ServerTrust::Dane(records))
                            .map_err(|e| format!("{exchange}: {e}"))?;
                    return Ok((TlsPolicy::Verify, Some(config), HopPolicy::Dane));
                }
            }
        }
        if let Some(policy) = sts {
            let listed = policy.permits(exchange);
            match policy.mode {
                Mode::Enforce if !listed => {
                    return Err(format!(
                        "{exchange} is not a mail server of {domain}'s MTA-STS policy"
                    ));
                }
                Mode::Enforce => {
                    let verifier = Some(self.public_verifier.clone());
                    return Ok((TlsPolicy::Verify, verifier, HopPolicy::MtaSts));
                }
                Mode::Testing if !listed => {
                    tracing::warn!(
                        domain,
                        exchange,
                        "MX host not in the MTA-STS policy (testing)"
                    );
                }
                Mode::Testing | Mode::None => {}
            }
        }
        let verifier = self.mx_tls.verifies().then(|| self.public_verifier.clone());
        Ok((self.mx_tls, verifier, HopPolicy::Mx))
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
