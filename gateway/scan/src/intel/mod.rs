//! Threat intelligence at the door: indicators (file hashes, links, domains, senders,
//! Message-IDs, client addresses) read from STIX 2.1 ([`stix`]) and held in a [`Watchlist`]
//! that every incoming message is checked against before it is accepted. Where indicators come
//! from (TAXII feeds, imported files), how long they count and what is done with mail that
//! arrived before them is the gateway's business (`jianmen_mta::intel`).

pub mod stix;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use crate::hunt::Facts;
pub use stix::{Indicator, Observable};

/// Most domain labels walked up when matching a host.
const MAX_LABELS: usize = 32;

/// What matched: the indicator's id and the observable it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The indicator's STIX id.
    pub indicator: String,
    /// What in the message matched it.
    pub observable: Observable,
}

#[derive(Default)]
struct Sets {
    exact: HashMap<Observable, String>,
    /// Networks by prefix length, longest first: few distinct lengths, so a lookup is a
    /// handful of hash probes.
    networks: Vec<(u8, bool)>,
}

/// The indicators in force, replaced whole when they change; checked by every scan.
#[derive(Default)]
pub struct Watchlist {
    sets: RwLock<Arc<Sets>>,
}

impl Watchlist {
    /// An empty list.
    pub fn new() -> Arc<Watchlist> {
        Arc::new(Watchlist::default())
    }

    /// Puts `observables` (each with its indicator's id) in force instead of what was.
    pub fn replace<'a>(&self, observables: impl IntoIterator<Item = (&'a str, &'a Observable)>) {
        let mut sets = Sets::default();
        for (id, o) in observables {
            if let Observable::Ip(ip, prefix) = o {
                let entry = (*prefix, ip.is_ipv4());
                if !sets.networks.contains(&entry) {
                    sets.networks.push(entry);
                }
            }
            sets.exact.entry(o.clone()).or_insert_with(|| id.to_owned());
        }
        sets.networks.sort_by(|a, b| b.cmp(a));
        let sets = Arc::new(sets);
        match self.sets.write() {
            Ok(mut current) => *current = sets,
            Err(poisoned) => *poisoned.into_inner() = sets,
        }
    }

    fn current(&self) -> Arc<Sets> {
        match self.sets.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// How many observables are in force.
    pub fn len(&self) -> usize {
        self.current().exact.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first indicator a message matches: by its attachments, links and their domains
    /// (and every domain above), its sender (envelope or header, and their domains), its
    /// Message-ID, or the client address it came from.
    pub fn check(
        &self,
        facts: &Facts,
        mail_from: &str,
        client_ip: Option<IpAddr>,
    ) -> Option<Match> {
        let sets = self.current();
        if sets.exact.is_empty() {
            return None;
        }
        let hit = |o: Observable| {
            sets.exact.get(&o).map(|id| Match {
                indicator: id.clone(),
                observable: o,
            })
        };
        let senders = [mail_from.to_ascii_lowercase(), facts.from.clone()];
        let sender_domains = senders
            .iter()
            .filter_map(|s| s.rsplit_once('@').map(|(_, d)| d.to_owned()));
        facts
            .sha256
            .iter()
            .find_map(|h| hit(Observable::Sha256(h.clone())))
            .or_else(|| {
                facts
                    .urls
                    .iter()
                    .find_map(|u| hit(Observable::Url(u.clone())))
            })
            .or_else(|| {
                senders
                    .iter()
                    .filter(|s| !s.is_empty())
                    .find_map(|s| hit(Observable::Email(s.clone())))
            })
            .or_else(|| {
                (!facts.message_id.is_empty())
                    .then(|| hit(Observable::MessageId(facts.message_id.clone())))
                    .flatten()
            })
            .or_else(|| {
                facts
                    .domains
                    .iter()
                    .cloned()
                    .chain(sender_domains)
                    .find_map(|host| domain_hit(&host, &hit))
            })
            .or_else(|| {
                let ip = client_ip?;
                sets.networks
                    .iter()
                    .filter(|(_, v4)| *v4 == ip.is_ipv4())
                    .find_map(|(prefix, _)| {
                        hit(Observable::Ip(stix::network(ip, *prefix), *prefix))
                    })
            })
    }
}

/// `host` or a domain above it, as `hit` finds it.
fn domain_hit(host: &str, hit: &impl Fn(Observable) -> Option<Match>) -> Option<Match> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let mut name = host.as_str();
    for _ in 0..MAX_LABELS {
        if let Some(m) = hit(Observable::Domain(name.to_owned())) {
            return Some(m);
        }
        name = name.split_once('.')?.1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            message_id: "m1@mail.test".into(),
            from: "boss@corp.test".into(),
            subject: String::new(),
            urls: vec!["https://login.evil.test/x".into()],
            domains: vec!["login.evil.test".into()],
            sha256: vec!["ab".repeat(32)],
        }
    }

    fn list(observables: &[Observable]) -> Arc<Watchlist> {
        let w = Watchlist::new();
        w.replace(observables.iter().map(|o| ("indicator--x", o)));
        w
    }

    #[test]
    fn each_kind_of_indicator_finds_the_message() {
        let ip: IpAddr = "198.51.100.77".parse().unwrap();
        for o in [
            Observable::Sha256("ab".repeat(32)),
            Observable::Url("https://login.evil.test/x".into()),
            Observable::Domain("evil.test".into()),
            Observable::Domain("login.evil.test".into()),
            Observable::Email("boss@corp.test".into()),
            Observable::Email("bounce@sender.test".into()),
            Observable::Domain("sender.test".into()),
            Observable::MessageId("m1@mail.test".into()),
            Observable::Ip("198.51.100.0".parse().unwrap(), 24),
            Observable::Ip(ip, 32),
        ] {
            let got =
                list(std::slice::from_ref(&o)).check(&facts(), "Bounce@Sender.test", Some(ip));
            assert_eq!(got.map(|m| m.observable), Some(o));
        }
    }

    #[test]
    fn near_misses_do_not_match() {
        for o in [
            Observable::Sha256("cd".repeat(32)),
            Observable::Url("https://login.evil.test/y".into()),
            Observable::Domain("vil.test".into()),
            Observable::Domain("other.login.evil.test".into()),
            Observable::Email("boss@corp.tes".into()),
            Observable::Ip("198.51.101.0".parse().unwrap(), 24),
            Observable::Ip("2001:db8::".parse().unwrap(), 32),
        ] {
            let got = list(&[o]).check(&facts(), "", Some("198.51.100.77".parse().unwrap()));
            assert_eq!(got, None);
        }
        assert!(Watchlist::new().check(&facts(), "", None).is_none());
    }

    #[test]
    fn replacing_the_list_takes_old_indicators_out_of_force() {
        let w = list(&[Observable::Domain("evil.test".into())]);
        assert!(w.check(&facts(), "", None).is_some());
        w.replace([]);
        assert!(w.is_empty());
        assert!(w.check(&facts(), "", None).is_none());
    }
}
