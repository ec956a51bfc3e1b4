//! DLP policies: what an organisation decides to do when outgoing mail carries what it must not.
//! A policy names the directions and senders it covers, the conditions that fire it (a detector
//! reaching a count, dictionary words, patterns, file types, an archive that cannot be opened)
//! and one action. The strongest action among the policies that fire wins, so adding a logging
//! policy can never weaken a blocking one.

use std::collections::BTreeMap;

use aho_corasick::AhoCorasick;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::identifiers::{Detector, Findings};
use crate::Direction;
use crate::reputation::AddressList;

/// Longest dictionary or pattern list one policy may have.
const MAX_TERMS: usize = 1000;
/// Largest compiled pattern (bytes of the regex automaton), so a pattern cannot exhaust memory.
const MAX_PATTERN_SIZE: usize = 1 << 20;
/// Most policies, and most patterns in all of them, the console may set: each message is
/// matched against every one (the file, root's, is not held to them).
pub const MAX_POLICIES: usize = 100;
/// See [`MAX_POLICIES`].
pub const MAX_ALL_PATTERNS: usize = 200;

/// What a policy does with a message it fires on, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DlpAction {
    /// Deliver, and record the incident.
    Log,
    /// Hold until a reviewer approves (delivered) or rejects (the sender gets a bounce).
    Hold,
    /// Refuse in the SMTP session, naming the policy; the organisation's server bounces it.
    Block,
}

impl DlpAction {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DlpAction::Log => "log",
            DlpAction::Hold => "hold",
            DlpAction::Block => "block",
        }
    }
}

/// The `[dlp]` section of the gateway's file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DlpConfig {
    /// The policies, in the order the console lists them.
    pub policy: Vec<PolicyConfig>,
}

fn outbound_only() -> Vec<Direction> {
    vec![Direction::Outbound]
}

fn one() -> usize {
    1
}

fn three_days() -> u32 {
    72
}

/// One `[[dlp.policy]]`: it fires when any of its conditions holds, for mail in its scope.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Name shown to reviewers and named in the bounce (never the data).
    pub name: String,
    /// Directions it covers (`outbound`, `internal`); outbound by default. (Inbound mail is
    /// judged for threats by `[scan]`.)
    #[serde(default = "outbound_only")]
    pub directions: Vec<Direction>,
    /// Envelope senders it covers (addresses, `@domain`); empty covers everyone.
    #[serde(default)]
    pub senders: Vec<String>,
    /// It covers mail with a recipient in one of these domains (and their subdomains); empty
    /// covers every recipient.
    #[serde(default)]
    pub recipient_domains: Vec<String>,
    /// Detector name → distinct identifiers at which the policy fires, e.g.
    /// `{ resident_id = 5, bank_card = 5 }`.
    #[serde(default)]
    pub detect: BTreeMap<String, usize>,
    /// Dictionary words (case-insensitive); fires at `min_keywords` occurrences in all.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Occurrences of dictionary words that fire the policy.
    #[serde(default = "one")]
    pub min_keywords: usize,
    /// Regular expressions (linear-time syntax, no look-around); fire at `min_patterns` matches.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Matches of the patterns that fire the policy.
    #[serde(default = "one")]
    pub min_patterns: usize,
    /// File extensions (without the dot, any case) that fire the policy, also inside archives.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// An attachment (or archive member) this large in MiB fires the policy.
    #[serde(default)]
    pub max_attachment_mib: Option<u64>,
    /// An archive or document that cannot be opened (encrypted) fires the policy: what it
    /// holds cannot be inspected.
    #[serde(default)]
    pub encrypted: bool,
    /// An attachment that could not be read (a malformed archive, a format not extracted such
    /// as RAR or legacy .doc/.xls) or text cut short by a size or time bound fires the policy:
    /// what was not read may be what leaks.
    #[serde(default)]
    pub uninspectable: bool,
    /// What happens.
    pub action: DlpAction,
    /// How long a held message waits for a reviewer before it is rejected, in hours.
    #[serde(default = "three_days")]
    pub approval_hours: u32,
}

/// Why a `[dlp]` section is wrong.
#[derive(Debug, thiserror::Error)]
#[error("dlp policy {policy:?}: {reason}")]
pub struct PolicyError {
    /// The policy's name (or its position when unnamed).
    pub policy: String,
    /// What is wrong.
    pub reason: String,
}

/// What was found in one message, for the policies to judge.
#[derive(Debug, Clone, Default)]
pub struct Inspection {
    /// Validated identifiers per detector.
    pub findings: Findings,
    /// Files seen (attachments and archive members): name and size in bytes.
    pub files: Vec<(String, u64)>,
    /// Archives and documents that could not be opened (encrypted).
    pub encrypted: Vec<String>,
    /// Archives and documents that could not be read (malformed, or a format not extracted).
    pub unreadable: Vec<String>,
    /// A bound stopped the extraction: part of the message was not read.
    pub truncated: bool,
}

/// The policy that acts on a message, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DlpDecision {
    /// The policy's name.
    pub policy: String,
    /// Its action.
    pub action: DlpAction,
    /// The conditions that held, for people (`resident_id 5 ≥ 5`): counts, never data.
    pub reasons: Vec<String>,
    /// How long a held message waits, in hours.
    pub approval_hours: u32,
    /// Every policy that fired, strongest first (the first is this one).
    pub fired: Vec<String>,
}

struct Policy {
    config: PolicyConfig,
    detect: Vec<(Detector, usize)>,
    senders: AddressList,
    keywords: Option<AhoCorasick>,
    patterns: Vec<Regex>,
    extensions: Vec<String>,
}

/// The compiled policies.
#[derive(Default)]
pub struct Policies {
    policies: Vec<Policy>,
}

impl Policies {
    /// Compiles and checks the `[dlp]` section.
    pub fn new(config: &DlpConfig) -> Result<Self, PolicyError> {
        let mut policies = Vec::with_capacity(config.policy.len());
        for (i, p) in config.policy.iter().enumerate() {
            let fail = |reason: String| PolicyError {
                policy: if p.name.is_empty() {
                    format!("#{}", i + 1)
                } else {
                    p.name.clone()
                },
                reason,
            };
            if p.name.trim().is_empty() || p.name.chars().count() > 100 {
                return Err(fail("needs a name of 1 to 100 characters".into()));
            }
            if config.policy[..i].iter().any(|q| q.name == p.name) {
                return Err(fail("two policies have this name".into()));
            }
            if p.directions.is_empty() || p.directions.contains(&Direction::Inbound) {
                return Err(fail(
                    "directions must name outbound, internal or both (inbound mail is judged \
                     by [scan])"
                        .into(),
                ));
            }
            let mut detect = Vec::new();
            for (name, &count) in &p.detect {
                let detector = Detector::parse(name).ok_or_else(|| {
                    fail(format!(
                        "unknown detector {name:?} (one of {})",
                        Detector::ALL.map(Detector::name).join(", ")
                    ))
                })?;
                if count == 0 {
                    return Err(fail(format!("detect.{name} must be at least 1")));
                }
                detect.push((detector, count));
            }
            if p.keywords.len() > MAX_TERMS || p.patterns.len() > MAX_TERMS {
                return Err(fail(format!("at most {MAX_TERMS} keywords and patterns")));
            }
            if p.keywords.iter().any(|k| k.trim().is_empty()) {
                return Err(fail("a keyword is empty".into()));
            }
            if [&p.senders, &p.recipient_domains, &p.extensions]
                .iter()
                .any(|l| l.len() > MAX_TERMS)
            {
                return Err(fail(format!(
                    "at most {MAX_TERMS} senders, recipient domains and extensions"
                )));
            }
            // An empty extension would fire on every file without one.
            if p.extensions
                .iter()
                .any(|e| e.trim().trim_start_matches('.').is_empty())
            {
                return Err(fail("an extension is empty".into()));
            }
            let keywords = if p.keywords.is_empty() {
                None
            } else {
                Some(
                    AhoCorasick::builder()
                        .ascii_case_insensitive(true)
                        .build(&p.keywords)
                        .map_err(|e| fail(format!("keywords: {e}")))?,
                )
            };
            let patterns = p
                .patterns
                .iter()
                .map(|pattern| {
                    regex::RegexBuilder::new(pattern)
                        .size_limit(MAX_PATTERN_SIZE)
                        .build()
                        .map_err(|e| fail(format!("pattern {pattern:?}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let senders =
                AddressList::parse(&p.senders).map_err(|e| fail(format!("senders: {}", e.0)))?;
            if !(1..=24 * 90).contains(&p.approval_hours) {
                return Err(fail("approval_hours must be 1 to 2160".into()));
            }
            let fires_on_something = !detect.is_empty()
                || keywords.is_some()
                || !patterns.is_empty()
                || !p.extensions.is_empty()
                || p.max_attachment_mib.is_some()
                || p.encrypted
                || p.uninspectable;
            if !fires_on_something {
                return Err(fail(
                    "has no condition (detect, keywords, patterns, extensions, \
                     max_attachment_mib, encrypted or uninspectable)"
                        .into(),
                ));
            }
            let mut config = p.clone();
            for d in &mut config.recipient_domains {
                *d = d
                    .trim()
                    .trim_start_matches('@')
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
            }
            policies.push(Policy {
                extensions: p
                    .extensions
                    .iter()
                    .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
                    .collect(),
                config,
                detect,
                senders,
                keywords,
                patterns,
            });
        }
        Ok(Self { policies })
    }

    /// Whether any policy covers mail going `direction` from `mail_from` to `rcpts` (mail no
    /// policy covers need not be inspected).
    pub fn cover(&self, direction: Direction, mail_from: &str, rcpts: &[String]) -> bool {
        self.policies
            .iter()
            .any(|p| p.covers(direction, mail_from, rcpts))
    }

    /// The policies, as configured.
    pub fn configs(&self) -> impl Iterator<Item = &PolicyConfig> {
        self.policies.iter().map(|p| &p.config)
    }

    /// Judges one message: `text` is everything extracted from it (the dictionary and the
    /// patterns look at it), `inspection` what the detectors and the extraction found.
    pub fn judge(
        &self,
        direction: Direction,
        mail_from: &str,
        rcpts: &[String],
        text: &str,
        inspection: &Inspection,
    ) -> Option<DlpDecision> {
        let mut fired: Vec<(&Policy, Vec<String>)> = Vec::new();
        for p in &self.policies {
            if !p.covers(direction, mail_from, rcpts) {
                continue;
            }
            let reasons = p.conditions(text, inspection);
            if !reasons.is_empty() {
                fired.push((p, reasons));
            }
        }
        // Strongest action first; among equals, the first configured.
        fired.sort_by_key(|(p, _)| std::cmp::Reverse(p.config.action));
        let names = fired.iter().map(|(p, _)| p.config.name.clone()).collect();
        let (policy, reasons) = fired.into_iter().next()?;
        Some(DlpDecision {
            policy: policy.config.name.clone(),
            action: policy.config.action,
            reasons,
            approval_hours: policy.config.approval_hours,
            fired: names,
        })
    }
}

impl Policy {
    fn covers(&self, direction: Direction, mail_from: &str, rcpts: &[String]) -> bool {
        let c = &self.config;
        c.directions.contains(&direction)
            && (self.senders.is_empty() || self.senders.matches(None, &[mail_from]).is_some())
            && (c.recipient_domains.is_empty()
                || rcpts.iter().any(|r| {
                    let domain = r
                        .rsplit_once('@')
                        .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
                        .unwrap_or_default();
                    c.recipient_domains
                        .iter()
                        .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
                }))
    }

    /// The conditions that hold, each as a line without any of the data.
    fn conditions(&self, text: &str, inspection: &Inspection) -> Vec<String> {
        let c = &self.config;
        let mut reasons = Vec::new();
        for &(detector, threshold) in &self.detect {
            let count = inspection.findings.get(detector).map_or(0, |f| f.distinct);
            if count >= threshold {
                reasons.push(format!("{} {count} ≥ {threshold}", detector.name()));
            }
        }
        if let Some(keywords) = &self.keywords {
            let count = keywords.find_iter(text).take(c.min_keywords.max(1)).count();
            if count >= c.min_keywords.max(1) {
                reasons.push(format!("keywords {count} ≥ {}", c.min_keywords.max(1)));
            }
        }
        if !self.patterns.is_empty() {
            let wanted = c.min_patterns.max(1);
            let mut count = 0;
            for pattern in &self.patterns {
                count += pattern.find_iter(text).take(wanted - count).count();
                if count >= wanted {
                    break;
                }
            }
            if count >= wanted {
                reasons.push(format!("patterns {count} ≥ {wanted}"));
            }
        }
        let extension_of = |name: &str| {
            name.rsplit_once('.')
                .map(|(_, e)| e.to_ascii_lowercase())
                .unwrap_or_default()
        };
        if let Some((name, _)) = inspection
            .files
            .iter()
            .find(|(name, _)| self.extensions.contains(&extension_of(name)))
        {
            reasons.push(format!("file type .{}", extension_of(name)));
        }
        if let Some(mib) = c.max_attachment_mib
            && let Some((_, size)) = inspection
                .files
                .iter()
                .find(|(_, size)| *size >= mib.saturating_mul(1024 * 1024))
        {
            reasons.push(format!(
                "attachment of {} MiB ≥ {mib} MiB",
                size / (1024 * 1024)
            ));
        }
        if c.encrypted && !inspection.encrypted.is_empty() {
            reasons.push(format!(
                "{} encrypted archive(s) or document(s)",
                inspection.encrypted.len()
            ));
        }
        if c.uninspectable && !inspection.unreadable.is_empty() {
            reasons.push(format!(
                "{} unreadable attachment(s)",
                inspection.unreadable.len()
            ));
        }
        if c.uninspectable && inspection.truncated {
            reasons.push("text extraction stopped at a bound".to_owned());
        }
        reasons
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies(toml_text: &str) -> Policies {
        let config: DlpConfig = toml::from_str(toml_text).unwrap();
        Policies::new(&config).unwrap()
    }

    fn inspection(text: &str) -> Inspection {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        Inspection {
            findings: super::super::identifiers::find(text, today),
            ..Inspection::default()
        }
    }

    /// Five valid 身份证 numbers (GB 11643 check characters computed for the test).
    const FIVE_IDS: &str = "110105194912310118 110105194912310222 110105194912310337 \
                            110105194912310441 110105194912310556";

    #[test]
    fn the_strongest_policy_that_fires_acts_and_the_reason_holds_no_data() {
        let p = policies(
            r#"
            [[policy]]
            name = "log ids"
            detect = { resident_id = 1 }
            action = "log"
            [[policy]]
            name = "hold id lists"
            detect = { resident_id = 5 }
            action = "hold"
            approval_hours = 24
            "#,
        );
        let found = inspection(FIVE_IDS);
        assert_eq!(
            found.findings.get(Detector::ResidentId).map(|f| f.distinct),
            Some(5),
            "the test's numbers must be valid"
        );
        let d = p
            .judge(
                Direction::Outbound,
                "a@corp.test",
                &["b@x.test".into()],
                FIVE_IDS,
                &found,
            )
            .unwrap();
        assert_eq!(d.policy, "hold id lists");
        assert_eq!(d.action, DlpAction::Hold);
        assert_eq!(d.approval_hours, 24);
        assert_eq!(d.fired, ["hold id lists", "log ids"]);
        assert_eq!(d.reasons, ["resident_id 5 ≥ 5"]);
        let four = FIVE_IDS.rsplit_once(' ').unwrap().0;
        let d = p
            .judge(
                Direction::Outbound,
                "a@corp.test",
                &[],
                four,
                &inspection(four),
            )
            .unwrap();
        assert_eq!((d.policy.as_str(), d.action), ("log ids", DlpAction::Log));
        assert!(
            p.judge(Direction::Inbound, "a@corp.test", &[], FIVE_IDS, &found)
                .is_none(),
            "outbound only by default"
        );
    }

    #[test]
    fn scope_keywords_patterns_files_and_encryption() {
        let p = policies(
            r#"
            [[policy]]
            name = "finance to partners"
            senders = ["@finance.corp.test"]
            recipient_domains = ["partner.test"]
            keywords = ["客户名单", "Internal Only"]
            min_keywords = 2
            action = "block"
            [[policy]]
            name = "contracts"
            directions = ["outbound", "internal"]
            patterns = ['HT-\d{6}']
            extensions = ["SQL"]
            max_attachment_mib = 10
            encrypted = true
            uninspectable = true
            action = "hold"
            "#,
        );
        let none = Inspection::default();
        let text = "客户名单 attached, INTERNAL ONLY";
        let to_partner = ["x@sub.partner.test".to_owned()];
        let judge = |from: &str, rcpts: &[String], text: &str, i: &Inspection| {
            p.judge(Direction::Outbound, from, rcpts, text, i)
                .map(|d| d.policy)
        };
        assert_eq!(
            judge("li@finance.corp.test", &to_partner, text, &none).as_deref(),
            Some("finance to partners")
        );
        assert_eq!(judge("li@sales.corp.test", &to_partner, text, &none), None);
        assert_eq!(
            judge(
                "li@finance.corp.test",
                &["x@other.test".into()],
                text,
                &none
            ),
            None
        );
        assert_eq!(
            judge(
                "li@finance.corp.test",
                &["x@PARTNER.test.".into()],
                text,
                &none
            )
            .as_deref(),
            Some("finance to partners"),
            "a recipient domain is matched as the intake matches it"
        );
        assert!(p.cover(Direction::Outbound, "li@sales.corp.test", &to_partner));
        assert!(!p.cover(Direction::Inbound, "li@finance.corp.test", &to_partner));
        assert_eq!(
            judge("li@finance.corp.test", &to_partner, "客户名单", &none),
            None
        );
        assert_eq!(
            judge("a@corp.test", &[], "合同 HT-123456", &none).as_deref(),
            Some("contracts")
        );
        for i in [
            Inspection {
                files: vec![("dump.sql".into(), 10)],
                ..Inspection::default()
            },
            Inspection {
                files: vec![("big.bin".into(), 10 << 20)],
                ..Inspection::default()
            },
            Inspection {
                encrypted: vec!["secret.zip".into()],
                ..Inspection::default()
            },
            Inspection {
                unreadable: vec!["old.xls".into()],
                ..Inspection::default()
            },
            Inspection {
                truncated: true,
                ..Inspection::default()
            },
        ] {
            assert_eq!(
                judge("a@corp.test", &[], "", &i).as_deref(),
                Some("contracts")
            );
        }
        let small = Inspection {
            files: vec![("a.txt".into(), 10)],
            ..Inspection::default()
        };
        assert_eq!(judge("a@corp.test", &[], "HT-12345", &small), None);
    }

    #[test]
    fn bad_policies_are_refused_with_their_name() {
        for (toml_text, says) in [
            (
                r#"[[policy]]
                name = "a"
                action = "hold""#,
                "no condition",
            ),
            (
                r#"[[policy]]
                name = "a"
                detect = { shoe_size = 3 }
                action = "hold""#,
                "unknown detector",
            ),
            (
                r#"[[policy]]
                name = "a"
                detect = { resident_id = 0 }
                action = "hold""#,
                "at least 1",
            ),
            (
                r#"[[policy]]
                name = "a"
                patterns = ['(unclosed']
                action = "hold""#,
                "pattern",
            ),
            (
                r#"[[policy]]
                name = "a"
                encrypted = true
                directions = []
                action = "hold""#,
                "directions",
            ),
            (
                r#"[[policy]]
                name = "a"
                encrypted = true
                action = "hold"
                [[policy]]
                name = "a"
                encrypted = true
                action = "log""#,
                "two policies",
            ),
        ] {
            let config: DlpConfig = toml::from_str(toml_text).unwrap();
            let e = Policies::new(&config).err().expect(toml_text).to_string();
            assert!(e.contains(says) && e.contains("\"a\""), "{e}");
        }
    }
}
