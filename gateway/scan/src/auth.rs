//! Sender authentication with mail-auth: SPF (RFC 7208) for the envelope sender (or HELO for
//! bounces), DKIM (RFC 6376), ARC (RFC 8617) and DMARC (RFC 7489) with alignment and the
//! domain's policy. Results become symbols and an `Authentication-Results` field (RFC 8601).

use std::net::IpAddr;
use std::time::Duration;

use mail_auth::dmarc::Policy;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, MessageAuthenticator,
    SpfResult, dmarc::verify::DmarcParameters, spf::verify::SpfParameters,
};

use super::Symbols;

/// Longest time all authentication lookups of one message may take together.
const AUTH_BUDGET: Duration = Duration::from_secs(15);

/// What the session knows about the sender.
pub struct Peer<'a> {
    /// Client address.
    pub ip: IpAddr,
    /// HELO/EHLO name.
    pub helo: &'a str,
    /// Envelope sender (empty for bounces).
    pub mail_from: &'a str,
}

/// Checks SPF, DKIM, ARC and DMARC on the shared resolver.
pub struct Authenticator {
    inner: MessageAuthenticator,
    hostname: String,
}

impl Authenticator {
    /// Uses `resolver` for every lookup; `hostname` names us in `Authentication-Results`.
    pub fn new(resolver: hickory_resolver::TokioResolver, hostname: &str) -> Self {
        Self {
            inner: MessageAuthenticator(resolver),
            hostname: hostname.to_owned(),
        }
    }

    /// Authenticates `raw`, adding symbols; returns the `Authentication-Results` value.
    pub async fn check(&self, raw: &[u8], peer: &Peer<'_>, symbols: &mut Symbols) -> String {
        match tokio::time::timeout(AUTH_BUDGET, self.check_inner(raw, peer, symbols)).await {
            Ok(header) => header,
            Err(_) => {
                symbols.add("SPF_TEMPERROR", "authentication timed out");
                symbols.add("DKIM_TEMPERROR", "authentication timed out");
                format!("{}; none (timeout)", self.hostname)
            }
        }
    }

    async fn check_inner(&self, raw: &[u8], peer: &Peer<'_>, symbols: &mut Symbols) -> String {
        let mail_from_domain = peer
            .mail_from
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or(peer.helo);
        let spf = if peer.mail_from.is_empty() {
            self.inner
                .verify_spf(SpfParameters::verify_ehlo(
                    peer.ip,
                    peer.helo,
                    &self.hostname,
                ))
                .await
        } else {
            self.inner
                .verify_spf(SpfParameters::verify_mail_from(
                    peer.ip,
                    peer.helo,
                    &self.hostname,
                    peer.mail_from,
                ))
                .await
        };
        let spf_symbol = match spf.result() {
            SpfResult::Pass => "SPF_PASS",
            SpfResult::Fail => "SPF_FAIL",
            SpfResult::SoftFail => "SPF_SOFTFAIL",
            SpfResult::Neutral => "SPF_NEUTRAL",
            SpfResult::TempError => "SPF_TEMPERROR",
            SpfResult::PermError => "SPF_PERMERROR",
            SpfResult::None => "SPF_NONE",
        };
        symbols.add(spf_symbol, mail_from_domain);
        let Some(message) = AuthenticatedMessage::parse(raw) else {
            symbols.add("DKIM_NONE", "message not parseable for DKIM");
            return format!(
                "{}",
                AuthenticationResults::new(&self.hostname).with_spf_mailfrom_result(
                    &spf,
                    peer.ip,
                    peer.mail_from,
                    peer.helo
                )
            );
        };
        let dkim = self.inner.verify_dkim(&message).await;
        let dkim_symbol = if dkim.is_empty() {
            "DKIM_NONE"
        } else if dkim.iter().any(|d| d.result() == &DkimResult::Pass) {
            "DKIM_PASS"
        } else if dkim.iter().any(|d| is_dkim_failure(d.result())) {
            "DKIM_FAIL"
        } else if dkim
            .iter()
            .any(|d| matches!(d.result(), DkimResult::TempError(_)))
        {
            "DKIM_TEMPERROR"
        } else {
            "DKIM_PERMERROR"
        };
        let dkim_detail = dkim
            .iter()
            .filter_map(|d| d.signature().map(|s| s.d.clone()))
            .collect::<Vec<_>>()
            .join(",");
        symbols.add(dkim_symbol, dkim_detail);
        let arc = self.inner.verify_arc(&message).await;
        match arc.result() {
            DkimResult::Pass => symbols.add("ARC_PASS", ""),
            DkimResult::None => {}
            _ => symbols.add("ARC_FAIL", ""),
        }
        let dmarc = self
            .inner
            .verify_dmarc(DmarcParameters::new(
                &message,
                &dkim,
                mail_from_domain,
                &spf,
            ))
            .await;
        match dmarc.result() {
            DmarcResult::Pass => symbols.add("DMARC_PASS", dmarc.domain()),
            DmarcResult::Fail(_) => {
                let symbol = match dmarc.policy() {
                    Policy::Reject => "DMARC_FAIL_REJECT",
                    Policy::Quarantine => "DMARC_FAIL_QUARANTINE",
                    Policy::None | Policy::Unspecified => "DMARC_FAIL_NONE",
                };
                symbols.add(symbol, dmarc.domain());
            }
            DmarcResult::TempError(_) | DmarcResult::PermError(_) | DmarcResult::None => {}
        }
        let from = message.from();
        AuthenticationResults::new(&self.hostname)
            .with_dkim_results(&dkim, from)
            .with_spf_mailfrom_result(&spf, peer.ip, peer.mail_from, peer.helo)
            .with_arc_result(&arc, peer.ip)
            .with_dmarc_result(&dmarc)
            .to_string()
    }
}

/// A signature that was checked and is wrong (bad signature or body hash; RFC 6376 §6.1.3),
/// as opposed to one that could not be checked. mail-auth reports a body hash mismatch as
/// neutral; RFC 8601 reporting calls it `fail`.
fn is_dkim_failure(result: &DkimResult) -> bool {
    use mail_auth::common::crypto::CryptoError;
    use mail_auth::dkim::DkimError;
    match result {
        DkimResult::Fail(_) => true,
        DkimResult::Neutral(e) => matches!(
            e,
            mail_auth::Error::Dkim(DkimError::FailedBodyHashMatch)
                | mail_auth::Error::Crypto(CryptoError::FailedVerification)
        ),
        _ => false,
    }
}
