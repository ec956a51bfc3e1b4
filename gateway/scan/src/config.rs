//! The scanner's configuration: the `[scan]` and `[dns]` sections of the gateway's file, which
//! the gateway composes and validates with the rest; the scanner reads only these.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// What happens to a message of a given class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Deliver unchanged (apart from the trace headers).
    Deliver,
    /// Deliver with a subject prefix and `X-Jianmen-*` headers.
    Tag,
    /// Hold in quarantine for an administrator or the recipient to release.
    Quarantine,
    /// Refuse at end of DATA (550 5.7.1 with a reference id).
    Reject,
    /// Accept and drop (logged).
    Discard,
}

/// Score thresholds per class (points from the rule set).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Total score at or above which a message is spam.
    pub spam: f64,
    /// Total score at or above which spam is "high" and takes `actions.spam_high`.
    pub spam_high: f64,
    /// Phishing evidence (net of ham evidence) at or above which a message is phishing.
    pub phish: f64,
    /// BEC evidence (net of ham evidence) at or above which a message is BEC.
    pub bec: f64,
    /// Malware evidence at or above which a message is a virus.
    pub virus: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            spam: 6.0,
            spam_high: 15.0,
            phish: 6.0,
            bec: 6.0,
            virus: 5.0,
        }
    }
}

/// Action per class.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Actions {
    /// Spam below `thresholds.spam_high`.
    pub spam: Action,
    /// Spam at or above `thresholds.spam_high`.
    pub spam_high: Action,
    /// Phishing.
    pub phish: Action,
    /// Business email compromise.
    pub bec: Action,
    /// Malware.
    pub virus: Action,
    /// Not fully inspected: archive or MIME limits, or the scan budget ran out.
    pub unscannable: Action,
}

impl Default for Actions {
    fn default() -> Self {
        Self {
            spam: Action::Tag,
            spam_high: Action::Reject,
            phish: Action::Quarantine,
            bec: Action::Quarantine,
            virus: Action::Reject,
            unscannable: Action::Quarantine,
        }
    }
}

/// Threat checks on mail from inside the organisation (outbound and internal). Its client is
/// the organisation's own server, so the checks of the sending host (SPF, DKIM, DMARC, block
/// lists) are skipped; content, links, attachments, the model and the rules run as for
/// inbound mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InsideConfig {
    /// Judge internal mail (between protected domains): phishing from a colleague's hijacked
    /// account is the dangerous case, trusted because it comes from inside.
    pub internal: bool,
    /// Judge outbound mail: what a hijacked account sends out puts the organisation's
    /// addresses on block lists. Its verdicts also count in the sender's behaviour score.
    pub outbound: bool,
    /// Actions per class for mail from inside (`deliver` adds no headers to it).
    pub actions: Actions,
}

impl Default for InsideConfig {
    fn default() -> Self {
        Self {
            internal: true,
            outbound: true,
            actions: Actions {
                spam: Action::Deliver,
                spam_high: Action::Quarantine,
                phish: Action::Quarantine,
                bec: Action::Deliver,
                virus: Action::Quarantine,
                unscannable: Action::Deliver,
            },
        }
    }
}

/// Overrides for the recipients of one protected domain.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DomainPolicy {
    /// Recipient domain (lower case).
    pub domain: String,
    /// Actions for this domain's recipients (all six, defaults where not given).
    pub actions: Option<Actions>,
    /// Thresholds for this domain's recipients.
    pub thresholds: Option<Thresholds>,
    /// Allow list entries that apply to this domain's recipients only.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Block list entries that apply to this domain's recipients only.
    #[serde(default)]
    pub block: Vec<String>,
}

impl DomainPolicy {
    /// A domain's policy that sets nothing of its own.
    pub fn inheriting(domain: &str) -> Self {
        Self {
            domain: domain.to_owned(),
            actions: None,
            thresholds: None,
            allow: Vec::new(),
            block: Vec::new(),
        }
    }
}

/// File types the organisation refuses in inbound mail whatever else a message scores (the
/// `ATTACH_BLOCKED_TYPE` symbol, malware evidence: a message carrying one takes the virus
/// action).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttachmentPolicy {
    /// Extensions without the dot (`exe`, `iso`, `7z`). A file is refused by its name — also
    /// inside archives, and inside encrypted ones whose names can be read — and by what it
    /// really is: `exe` refuses a Windows program whatever it is called.
    pub blocked: Vec<String>,
}

/// Extensions one attachment policy may refuse.
pub const MAX_BLOCKED_TYPES: usize = 200;

impl AttachmentPolicy {
    /// Whether a file named `extension` (lower case, no dot), or really of the type that
    /// extension names, is refused.
    pub fn blocks(&self, extension: &str) -> bool {
        !extension.is_empty() && self.blocked.iter().any(|b| b == extension)
    }
}

/// A brand whose name a sender may claim, and the domains that really send for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrandConfig {
    /// Name as it appears in display names (matched case-insensitively).
    pub name: String,
    /// Domains that legitimately send as this brand.
    pub domains: Vec<String>,
}

/// Detection settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    /// Judge inbound mail for threats at all; when false it is delivered unscanned (outbound
    /// and internal mail is still judged by the `[dlp]` policies).
    pub enabled: bool,
    /// Load the built-in rule set before `rules`.
    pub builtin_rules: bool,
    /// Extra rule files or directories of `*.toml` (reloaded on SIGHUP).
    pub rules: Vec<PathBuf>,
    /// Check SPF, DKIM, ARC and DMARC.
    pub auth: bool,
    /// DNS block lists for the client address.
    pub dnsbl: Vec<crate::reputation::ZoneConfig>,
    /// URI block lists for link domains.
    pub uribl: Vec<crate::reputation::ZoneConfig>,
    /// Senders never treated as spam: IPs, CIDR ranges, addresses, `@domain`s.
    pub allow: Vec<String>,
    /// Senders always treated as spam.
    pub block: Vec<String>,
    /// Names of executives whose names outsiders must not use.
    pub vips: Vec<String>,
    /// Domains of partners (lookalikes of these are BEC evidence).
    pub partner_domains: Vec<String>,
    /// Brands besides the built-in ones.
    pub brands: Vec<BrandConfig>,
    /// Remember sender→recipient pairs and mark first contacts.
    pub first_contact: bool,
    /// Subject prefix for tagged messages.
    pub subject_prefix: String,
    /// Score thresholds.
    pub thresholds: Thresholds,
    /// Actions per class.
    pub actions: Actions,
    /// Per-recipient-domain overrides.
    pub policy: Vec<DomainPolicy>,
    /// Points per symbol in place of the rule files' (`SYMBOL = points`; 0 turns it off).
    pub scores: BTreeMap<String, f64>,
    /// Threat checks on outbound and internal mail.
    pub inside: InsideConfig,
    /// File types refused in inbound mail.
    pub attachments: AttachmentPolicy,
    /// ClamAV; absent means no antivirus beyond Jianmen's own attachment checks.
    pub clamav: Option<crate::clamav::ClamavConfig>,
    /// Messages accepted per minute from one client address (0: no limit).
    pub rate_limit_per_minute: u32,
    /// Content model: `auto` (the model `jianmen retrain` activated in `data_dir/model/`, else
    /// the one an applied upgrade shipped, else the built-in one), `builtin`, `none`, or the
    /// path of an ONNX file.
    pub model: String,
    /// The 4-gram model, the second content view: `auto` (the built-in model, then what this
    /// site's corrections taught it, learned within seconds and kept in `data_dir/model/`),
    /// `builtin` (the built-in model, learning nothing) or `none`.
    pub ngram: String,
    /// Greylisting (off by default).
    pub greylist: GreylistConfig,
    /// Time one message's parsing and checks may take on the scanning threads, in
    /// milliseconds (DNS and clamd waits not counted); a message that runs out of it is
    /// judged `unscannable` (`actions.unscannable`).
    pub budget_ms: u64,
}

/// Greylisting settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GreylistConfig {
    /// Defer first attempts of unknown triplets.
    pub enabled: bool,
    /// Seconds before a retry is accepted.
    pub delay_secs: u64,
    /// Hours after the delay during which a retry still counts.
    pub retry_window_hours: u64,
    /// Days a passed triplet stays known after its last message.
    pub pass_days: u64,
}

impl Default for GreylistConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            delay_secs: 300,
            retry_window_hours: 24,
            pass_days: 35,
        }
    }
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            builtin_rules: true,
            rules: Vec::new(),
            auth: true,
            dnsbl: Vec::new(),
            uribl: Vec::new(),
            allow: Vec::new(),
            block: Vec::new(),
            vips: Vec::new(),
            partner_domains: Vec::new(),
            brands: Vec::new(),
            first_contact: true,
            subject_prefix: "[SPAM]".into(),
            thresholds: Thresholds::default(),
            actions: Actions::default(),
            policy: Vec::new(),
            scores: BTreeMap::new(),
            inside: InsideConfig::default(),
            attachments: AttachmentPolicy::default(),
            clamav: None,
            rate_limit_per_minute: 0,
            model: "auto".into(),
            ngram: "auto".into(),
            greylist: GreylistConfig::default(),
            budget_ms: 5000,
        }
    }
}

/// The part of `[scan]` and `[dlp]` an administrator edits in the console: thresholds,
/// actions, allow and block lists, globally and per protected domain, rule points, refused file
/// types and the data-leak prevention policies. The configuration file gives the first
/// version; later versions are kept by the gateway and replace it in the running pipeline
/// without a restart.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanPolicy {
    /// Score thresholds.
    pub thresholds: Thresholds,
    /// Actions per class.
    pub actions: Actions,
    /// Senders never treated as spam.
    pub allow: Vec<String>,
    /// Senders always treated as spam.
    pub block: Vec<String>,
    /// Per-recipient-domain overrides.
    pub domains: Vec<DomainPolicy>,
    /// Points per symbol in place of the rule files' (0 turns a symbol off): the rule
    /// switches and weights.
    pub scores: BTreeMap<String, f64>,
    /// File types refused in inbound mail.
    pub attachments: AttachmentPolicy,
    /// Data-leak prevention policies for outbound and internal mail (`[[dlp.policy]]`).
    pub dlp: Vec<crate::dlp::policy::PolicyConfig>,
}

/// Symbols whose points one policy may set.
pub const MAX_SCORES: usize = 2_000;
/// Largest points a symbol may be given, either way.
pub const MAX_POINTS: f64 = 100.0;

/// Entries one allow or block list may hold: each message is matched against every entry.
pub const MAX_LIST_ENTRIES: usize = 10_000;

/// A policy that cannot be put in force, with the key at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {why}")]
pub struct PolicyError {
    /// Where, as in the configuration file (`scan.policy[0].allow`).
    pub key: String,
    /// What is wrong.
    pub why: String,
}

impl ScanPolicy {
    /// Checks what `check-config` checks of these keys: positive thresholds with
    /// `spam_high ≥ spam`, list entries that parse, bounded lists, symbol points within
    /// ±[`MAX_POINTS`] (whether each symbol exists is the pipeline's to say), per-domain policies
    /// only for `protected` domains, each once, file types as bare extensions and DLP policies
    /// that compile. Domain names and extensions are put in lower case.
    pub fn check(&mut self, protected: &[String]) -> Result<(), PolicyError> {
        let fail = |key: String, why: String| Err(PolicyError { key, why });
        let lists = |key: &str, allow: &[String], block: &[String]| {
            for (name, list) in [("allow", allow), ("block", block)] {
                if list.len() > MAX_LIST_ENTRIES {
                    return fail(
                        format!("{key}.{name}"),
                        format!("more than {MAX_LIST_ENTRIES} entries"),
                    );
                }
                if let Err(e) = crate::reputation::AddressList::parse(list) {
                    return fail(format!("{key}.{name}"), e.to_string());
                }
            }
            Ok(())
        };
        check_thresholds("scan.thresholds", &self.thresholds)?;
        lists("scan", &self.allow, &self.block)?;
        if self.scores.len() > MAX_SCORES {
            return fail(
                "scan.scores".into(),
                format!("more than {MAX_SCORES} symbols"),
            );
        }
        for (name, points) in &self.scores {
            let key = format!("scan.scores.{name}");
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            {
                return fail(key, "a symbol name is A-Z, 0-9 and _".into());
            }
            if !points.is_finite() || points.abs() > MAX_POINTS {
                return fail(
                    key,
                    format!("points are between -{MAX_POINTS} and {MAX_POINTS}"),
                );
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, p) in self.domains.iter_mut().enumerate() {
            let key = format!("scan.policy[{i}]");
            p.domain = p.domain.trim().trim_end_matches('.').to_ascii_lowercase();
            if !protected.contains(&p.domain) {
                return fail(
                    format!("{key}.domain"),
                    format!("`{}` is not a protected domain", p.domain),
                );
            }
            if !seen.insert(p.domain.clone()) {
                return fail(
                    format!("{key}.domain"),
                    format!("`{}` has two policies", p.domain),
                );
            }
            if let Some(t) = &p.thresholds {
                check_thresholds(&format!("{key}.thresholds"), t)?;
            }
            lists(&key, &p.allow, &p.block)?;
        }
        let blocked = &mut self.attachments.blocked;
        if blocked.len() > MAX_BLOCKED_TYPES {
            return fail(
                "scan.attachments.blocked".into(),
                format!("more than {MAX_BLOCKED_TYPES} entries"),
            );
        }
        for b in blocked.iter_mut() {
            *b = b.trim().trim_start_matches('.').to_ascii_lowercase();
            if b.is_empty() || b.len() > 16 || !b.bytes().all(|c| c.is_ascii_alphanumeric()) {
                return fail(
                    "scan.attachments.blocked".into(),
                    format!("`{b}` is not a file extension (letters and digits, up to 16)"),
                );
            }
        }
        blocked.sort();
        blocked.dedup();
        crate::dlp::Policies::new(&crate::dlp::DlpConfig {
            policy: self.dlp.clone(),
        })
        .map_err(|e| PolicyError {
            key: format!("dlp.policy[{}]", e.policy),
            why: e.reason,
        })?;
        Ok(())
    }
}

fn check_thresholds(key: &str, t: &Thresholds) -> Result<(), PolicyError> {
    if [t.spam, t.spam_high, t.phish, t.bec, t.virus]
        .iter()
        .any(|v| !v.is_finite() || *v <= 0.0)
        || t.spam_high < t.spam
    {
        return Err(PolicyError {
            key: key.to_owned(),
            why: "thresholds must be positive and spam_high ≥ spam".into(),
        });
    }
    Ok(())
}

impl ScanConfig {
    /// The editable policy as the file gives it, with the file's `[dlp]` policies.
    pub fn scan_policy(&self, dlp: &crate::dlp::DlpConfig) -> ScanPolicy {
        ScanPolicy {
            thresholds: self.thresholds.clone(),
            actions: self.actions.clone(),
            allow: self.allow.clone(),
            block: self.block.clone(),
            domains: self.policy.clone(),
            scores: self.scores.clone(),
            attachments: self.attachments.clone(),
            dlp: dlp.policy.clone(),
        }
    }
}

/// The DNS resolver shared by delivery and scanning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// DNS server (`ip:port`); the system resolver when absent.
    pub resolver: Option<SocketAddr>,
    /// Time allowed for one query, in milliseconds.
    pub timeout_ms: u64,
    /// DNSKEY records (zone-file lines) trusted to start DNSSEC validation from, for DANE: the
    /// root's keys built into the resolver when absent. A site whose internal zones are signed
    /// under a root of its own gives that root's keys here.
    pub trust_anchor: Option<std::path::PathBuf>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            resolver: None,
            timeout_ms: 2000,
            trust_anchor: None,
        }
    }
}
