//! Reputation: DNS block lists for the client address (DNSBL) and for link domains
//! (URIBL/SURBL), and the operator's own allow and block lists.

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use serde::Deserialize;

use super::Symbols;

/// Most link domains looked up per message.
const MAX_URI_LOOKUPS: usize = 20;

/// One DNS block list zone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Zone to query, e.g. `zen.spamhaus.org`.
    pub zone: String,
    /// Symbol added when listed.
    #[serde(default = "default_symbol")]
    pub symbol: String,
    /// Score of that symbol (when the rule set does not already define it).
    #[serde(default = "default_zone_score")]
    pub score: f64,
    /// Only these answers count (e.g. `["127.0.0.2", "127.0.0.4"]`); any 127.0.0.0/8 answer
    /// below 127.255.0.0 when empty.
    #[serde(default)]
    pub codes: Vec<std::net::Ipv4Addr>,
}

fn default_symbol() -> String {
    "DNSBL_LISTED".into()
}

fn default_zone_score() -> f64 {
    5.0
}

/// Queries block lists on the shared resolver.
pub struct BlockLists {
    resolver: TokioResolver,
    ip_zones: Vec<ZoneConfig>,
    uri_zones: Vec<ZoneConfig>,
    timeout: Duration,
}

impl BlockLists {
    /// Block lists for client IPs (`ip_zones`) and link domains (`uri_zones`).
    pub fn new(
        resolver: TokioResolver,
        ip_zones: Vec<ZoneConfig>,
        uri_zones: Vec<ZoneConfig>,
        timeout: Duration,
    ) -> Self {
        Self {
            resolver,
            ip_zones,
            uri_zones,
            timeout,
        }
    }

    /// Looks up the client and link domains in every zone, concurrently.
    pub async fn check(&self, client: IpAddr, domains: &[String], symbols: &mut Symbols) {
        self.look_up(Some(client), domains, symbols).await
    }

    /// Looks up link domains in the URI zones, concurrently.
    pub async fn check_links(&self, domains: &[String], symbols: &mut Symbols) {
        self.look_up(None, domains, symbols).await
    }

    async fn look_up(&self, client: Option<IpAddr>, domains: &[String], symbols: &mut Symbols) {
        let mut queries = Vec::new();
        if let Some(client) = client {
            let reversed = reverse_ip(client);
            for zone in &self.ip_zones {
                queries.push((
                    zone,
                    format!("{reversed}.{}.", zone.zone),
                    client.to_string(),
                ));
            }
        }
        for domain in domains.iter().take(MAX_URI_LOOKUPS) {
            if domain.parse::<IpAddr>().is_ok() || domain.is_empty() {
                continue;
            }
            for zone in &self.uri_zones {
                queries.push((zone, format!("{domain}.{}.", zone.zone), domain.clone()));
            }
        }
        let lookups = queries.iter().map(|(zone, name, subject)| async move {
            let listed = self.listed(zone, name).await.ok().flatten();
            listed.map(|code| {
                (
                    zone.symbol.clone(),
                    format!("{subject} in {} ({code})", zone.zone),
                )
            })
        });
        for (symbol, detail) in futures_util::future::join_all(lookups)
            .await
            .into_iter()
            .flatten()
        {
            symbols.add(&symbol, detail);
        }
    }

    /// The answer `zone` gives for `name` when it counts as a listing; an error when the zone
    /// did not answer (timeout, SERVFAIL), as opposed to not listing it.
    async fn listed(
        &self,
        zone: &ZoneConfig,
        name: &str,
    ) -> Result<Option<std::net::Ipv4Addr>, ()> {
        match tokio::time::timeout(self.timeout, self.resolver.ipv4_lookup(name)).await {
            Ok(Ok(lookup)) => Ok(lookup.answers().iter().find_map(|r| match &r.data {
                hickory_resolver::proto::rr::RData::A(a) if counts(zone, a.0) => Some(a.0),
                _ => None,
            })),
            Ok(Err(e)) if e.is_nx_domain() || e.is_no_records_found() => Ok(None),
            _ => Err(()),
        }
    }

    /// The address zones that list `ip`, each as `zone (answer)`; None when no zone answered.
    pub async fn listings(&self, ip: IpAddr) -> Option<Vec<String>> {
        let reversed = reverse_ip(ip);
        let lookups = self.ip_zones.iter().map(|zone| {
            let name = format!("{reversed}.{}.", zone.zone);
            async move { (zone, self.listed(zone, &name).await) }
        });
        let answers = futures_util::future::join_all(lookups).await;
        if !answers.is_empty() && answers.iter().all(|(_, a)| a.is_err()) {
            return None;
        }
        Some(
            answers
                .into_iter()
                .filter_map(|(zone, a)| Some(format!("{} ({})", zone.zone, a.ok()??)))
                .collect(),
        )
    }

    /// Symbols defined by the zone configuration, with their scores.
    pub fn symbols(&self) -> impl Iterator<Item = (&str, f64, bool)> {
        self.ip_zones
            .iter()
            .map(|z| (z.symbol.as_str(), z.score, false))
            .chain(
                self.uri_zones
                    .iter()
                    .map(|z| (z.symbol.as_str(), z.score, true)),
            )
    }
}

fn counts(zone: &ZoneConfig, answer: std::net::Ipv4Addr) -> bool {
    let o = answer.octets();
    if o[0] != 127 || o[1] == 255 {
        // Outside 127/8 is not a list answer; 127.255.255.x are the lists' own error codes.
        return false;
    }
    zone.codes.is_empty() || zone.codes.contains(&answer)
}

/// `1.2.3.4` → `4.3.2.1`; IPv6 as reversed nibbles.
pub fn reverse_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => v6
            .octets()
            .iter()
            .rev()
            .flat_map(|b| [b & 0x0f, b >> 4])
            .map(|n| format!("{n:x}"))
            .collect::<Vec<_>>()
            .join("."),
    }
}

/// An allow or block list: IP addresses, CIDR ranges, addresses and domains.
#[derive(Debug, Default, Clone)]
pub struct AddressList {
    nets: Vec<(IpAddr, u8)>,
    addresses: Vec<String>,
    domains: Vec<String>,
}

/// A list entry that is neither an IP, a CIDR range, an address nor a domain.
#[derive(Debug, thiserror::Error)]
#[error("not an IP, CIDR range, address or domain: {0}")]
pub struct BadEntry(pub String);

impl AddressList {
    /// Parses entries: `192.0.2.1`, `10.0.0.0/8`, `user@example.com`, `@example.com` or
    /// `example.com` (the domain and its subdomains).
    pub fn parse(entries: &[String]) -> Result<Self, BadEntry> {
        let mut list = AddressList::default();
        for raw in entries {
            let e = raw.trim().to_lowercase();
            if let Some((net, len)) = e.split_once('/') {
                let ip: IpAddr = net.parse().map_err(|_| BadEntry(raw.clone()))?;
                let len: u8 = len.parse().map_err(|_| BadEntry(raw.clone()))?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                if len > max {
                    return Err(BadEntry(raw.clone()));
                }
                list.nets.push((ip, len));
            } else if let Ok(ip) = e.parse::<IpAddr>() {
                list.nets.push((ip, if ip.is_ipv4() { 32 } else { 128 }));
            } else if let Some(d) = e.strip_prefix('@') {
                list.domains.push(d.to_owned());
            } else if e.contains('@') {
                list.addresses.push(e);
            } else if e.contains('.') && !e.contains(char::is_whitespace) {
                list.domains.push(e);
            } else {
                return Err(BadEntry(raw.clone()));
            }
        }
        Ok(list)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty() && self.addresses.is_empty() && self.domains.is_empty()
    }

    /// The entry that matches the client or any of the sender addresses, if any.
    pub fn matches(&self, client: Option<IpAddr>, senders: &[&str]) -> Option<String> {
        if let Some(ip) = client
            && let Some((net, len)) = self.nets.iter().find(|(n, l)| in_net(ip, *n, *l))
        {
            return Some(format!("{net}/{len}"));
        }
        for s in senders.iter().filter(|s| !s.is_empty()) {
            let s = s.to_lowercase();
            if self.addresses.contains(&s) {
                return Some(s);
            }
            let domain = s.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
            if let Some(d) = self
                .domains
                .iter()
                .find(|d| domain == d.as_str() || domain.ends_with(&format!(".{d}")))
            {
                return Some(format!("@{d}"));
            }
        }
        None
    }
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The network an address counts in: its IPv4 /24 or IPv6 /64 (an IPv4-mapped address as its
/// IPv4 network) — the unit of session limits and of "a new network" in sending behaviour.
pub fn network_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_names() {
        assert_eq!(reverse_ip("192.0.2.1".parse().unwrap()), "1.2.0.192");
        assert!(reverse_ip("2001:db8::1".parse().unwrap()).starts_with("1.0.0.0."));
    }

    #[test]
    fn lists_match_ips_ranges_addresses_and_domains() {
        let l = AddressList::parse(&[
            "10.0.0.0/8".into(),
            "192.0.2.7".into(),
            "Boss@Partner.cn".into(),
            "@vendor.test".into(),
            "trusted.org".into(),
        ])
        .unwrap();
        assert!(l.matches(Some("10.9.8.7".parse().unwrap()), &[]).is_some());
        assert!(l.matches(Some("11.0.0.1".parse().unwrap()), &[]).is_none());
        assert!(l.matches(None, &["boss@partner.cn"]).is_some());
        assert!(l.matches(None, &["other@partner.cn"]).is_none());
        assert!(l.matches(None, &["a@mail.vendor.test"]).is_some());
        assert!(l.matches(None, &["a@trusted.org"]).is_some());
        assert!(l.matches(None, &["a@nottrusted.org"]).is_none());
        assert!(AddressList::parse(&["10.0.0.0/40".into()]).is_err());
        assert!(AddressList::parse(&["nonsense".into()]).is_err());
    }
}
