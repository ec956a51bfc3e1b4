//! DANE for MX deliveries (RFC 7672): when a domain's MX records and an MX host's TLSA
//! records validate under DNSSEC, that host gets mail only over TLS with a certificate the
//! records name. Validation happens here, in the gateway (the resolver's AD bit is not
//! trusted); an answer that fails validation counts as unsigned for the MX records — resolvers
//! that strip signatures are common at air-gapped sites — but as a failure for the TLSA records
//! of a host whose MX records did validate, since only an attacker or a broken zone gets there.

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::rr::{RData, Record, RecordType};

use jianmen_gm::dane::Tlsa;

/// What a host's TLSA records say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostTlsa {
    /// No validated TLSA records: the host is not protected by DANE.
    Absent,
    /// Validated records: TLS is required, checked against them.
    Records(Vec<Tlsa>),
    /// The lookup failed or did not validate although the MX records did: the host must not
    /// be used until it can be checked.
    Failed(String),
}

/// Looks up and validates what DANE needs.
pub struct Dane {
    resolver: TokioResolver,
}

impl Dane {
    /// DANE on a resolver that validates (see `jianmen_scan::dns::validating_resolver`).
    pub fn new(resolver: TokioResolver) -> Self {
        Self { resolver }
    }

    /// Whether `domain`'s MX records validate under DNSSEC, i.e. the MX host names may be
    /// trusted as the names TLSA records are looked up under.
    pub async fn mx_validated(&self, domain: &str) -> bool {
        match self.lookup(format!("{domain}."), RecordType::MX).await {
            Ok(records) => {
                let mx: Vec<_> = records
                    .iter()
                    .filter(|r| matches!(r.data, RData::MX(_)))
                    .collect();
                !mx.is_empty() && mx.iter().all(|r| r.proof == Proof::Secure)
            }
            Err(_) => false,
        }
    }

    /// The TLSA records of `host`'s SMTP service on `port` (`_port._tcp.host`).
    pub async fn tlsa(&self, host: &str, port: u16) -> HostTlsa {
        let name = format!("_{port}._tcp.{host}.");
        match self.lookup(name.clone(), RecordType::TLSA).await {
            Ok(records) => {
                let tlsa: Vec<_> = records
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TLSA(t) => Some((r.proof, t)),
                        _ => None,
                    })
                    .collect();
                if tlsa.is_empty() {
                    return HostTlsa::Absent;
                }
                if tlsa.iter().any(|(proof, _)| *proof != Proof::Secure) {
                    // Records in an unsigned zone below a signed MX set: not DANE.
                    return if tlsa.iter().all(|(proof, _)| *proof == Proof::Insecure) {
                        HostTlsa::Absent
                    } else {
                        HostTlsa::Failed(format!("TLSA records at {name} do not validate"))
                    };
                }
                HostTlsa::Records(
                    tlsa.into_iter()
                        .map(|(_, t)| Tlsa {
                            usage: t.cert_usage.into(),
                            selector: t.selector.into(),
                            matching: t.matching.into(),
                            data: t.cert_data.clone(),
                        })
                        .collect(),
                )
            }
            Err(Failure::NoRecords) => HostTlsa::Absent,
            Err(Failure::Other(e)) => HostTlsa::Failed(format!("TLSA lookup at {name}: {e}")),
        }
    }

    /// One validated lookup, in a task of its own: a malformed answer that panics the
    /// validator fails this lookup, not the delivery.
    async fn lookup(&self, name: String, kind: RecordType) -> Result<Vec<Record>, Failure> {
        let resolver = self.resolver.clone();
        let task = tokio::spawn(async move { resolver.lookup(name, kind).await });
        match task.await {
            Ok(Ok(lookup)) => Ok(lookup.answers().to_vec()),
            Ok(Err(e)) if e.is_nx_domain() || e.is_no_records_found() => Err(Failure::NoRecords),
            Ok(Err(e)) => Err(Failure::Other(e.to_string())),
            Err(e) => Err(Failure::Other(format!("validation aborted: {e}"))),
        }
    }
}

enum Failure {
    /// The name or the type does not exist (proven or not: either way, no records to use).
    NoRecords,
    Other(String),
}
