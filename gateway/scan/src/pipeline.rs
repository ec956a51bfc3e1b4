//! The detection pipeline: parse once, ask the network (authentication, block lists, clamd)
//! concurrently, run the local checks and the rule set, then decide per recipient domain.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::auth::{Authenticator, Peer};
use super::bec::{BecSettings, ContactHistory};
use super::clamav::{Clamd, OnError, Outcome};
use super::dlp::{DlpAction, DlpConfig, DlpDecision, Inspection, Policies, PolicyError};
use super::hunt::Facts;
use super::intel::Watchlist;
use super::message::{Message, domain_of};
use super::model::{self, Classifier, Unavailable};
use super::ngram::{self, SiteModel};
use super::phish::Targets;
use super::pool::{CpuPool, Deadline, OverBudget};
use super::reputation::{AddressList, BadEntry, BlockLists};
use super::rules::{RuleError, RuleSet};
use super::verdict::{Class, Report, ScoredHit, decide};
use super::{
    Direction, Disposition, Envelope, Scanner, SkippedChecks, Symbols, Verdict, attach, bec, dlp,
    dns, phish,
};
use crate::config::{Action, Actions, AttachmentPolicy, ScanConfig, ScanPolicy, Thresholds};

/// What is known about a message besides its bytes; all optional for offline scans.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Client address.
    pub client_ip: Option<IpAddr>,
    /// HELO name.
    pub helo: String,
    /// Envelope sender.
    pub mail_from: String,
    /// Envelope recipients.
    pub rcpts: Vec<String>,
    /// Which way the message travels: the attachment policy's refused types are for inbound
    /// mail only.
    pub direction: Direction,
}

/// Evidence gathered for one message before per-domain decisions.
pub struct Analysis {
    /// Every symbol found.
    pub symbols: Symbols,
    /// `Authentication-Results` value, when authentication ran.
    pub auth_results: Option<String>,
    /// clamd could not answer and the policy is to fail closed.
    pub antivirus_failed: bool,
    /// Header `From` address (lower case).
    pub from_addr: String,
    /// Microseconds spent.
    pub micros: u64,
}

/// What the pipeline needs to know of the gateway it runs in, besides its own `[scan]` section:
/// passed in by the gateway, never looked up, so the scanner stays testable alone.
#[derive(Clone, Default)]
pub struct Environment {
    /// This gateway's host name (the `Authentication-Results` authserv-id).
    pub hostname: String,
    /// The gateway's data directory: contact history, the model `jianmen retrain` activated.
    /// None for offline scans, which keep nothing.
    pub data_dir: Option<PathBuf>,
    /// The domains this gateway protects (brand and BEC checks).
    pub protected_domains: Vec<String>,
    /// Time allowed for one DNS query.
    pub dns_timeout: Duration,
    /// Files the running upgrade release ships in place of the built-in ones.
    pub shipped: Shipped,
    /// Where checks left out are counted.
    pub skipped: Option<Arc<dyn SkippedChecks>>,
    /// The data-leak prevention policies (`[dlp]`) outbound and internal mail is judged by.
    pub dlp: DlpConfig,
}

/// The rule file and content model an applied upgrade release ships; each, when present,
/// replaces the one built into the binary.
#[derive(Debug, Clone, Default)]
pub struct Shipped {
    /// The release's default rule file.
    pub rules: Option<PathBuf>,
    /// The release's content model (ONNX).
    pub model: Option<PathBuf>,
}

struct Policy {
    thresholds: Thresholds,
    actions: Actions,
    allow: AddressList,
    block: AddressList,
}

impl Policy {
    fn new(
        thresholds: &Thresholds,
        actions: &Actions,
        allow: &[String],
        block: &[String],
    ) -> Result<Self, super::reputation::BadEntry> {
        Ok(Self {
            thresholds: thresholds.clone(),
            actions: actions.clone(),
            allow: AddressList::parse(allow)?,
            block: AddressList::parse(block)?,
        })
    }
}

/// The policies in force: the default and each protected domain's own, the points the
/// policy gives symbols in place of the rule files', the refused file types and the DLP
/// policies.
struct InForce {
    default: Policy,
    domains: BTreeMap<String, Policy>,
    scores: BTreeMap<String, f64>,
    attachments: AttachmentPolicy,
    dlp: Policies,
}

impl InForce {
    /// Every symbol `p` gives points to must be one `rules` knows: a misspelt name would
    /// otherwise change nothing, silently.
    fn new(p: &ScanPolicy, rules: &RuleSet) -> Result<Self, PipelineError> {
        if let Some(name) = p.scores.keys().find(|n| rules.info(n).is_none()) {
            return Err(PipelineError::UnknownSymbol(name.clone()));
        }
        let mut domains = BTreeMap::new();
        for d in &p.domains {
            domains.insert(
                d.domain.clone(),
                Policy::new(
                    d.thresholds.as_ref().unwrap_or(&p.thresholds),
                    d.actions.as_ref().unwrap_or(&p.actions),
                    &d.allow,
                    &d.block,
                )?,
            );
        }
        Ok(Self {
            default: Policy::new(&p.thresholds, &p.actions, &p.allow, &p.block)?,
            domains,
            scores: p.scores.clone(),
            attachments: p.attachments.clone(),
            dlp: Policies::new(&DlpConfig {
                policy: p.dlp.clone(),
            })?,
        })
    }
}

/// One symbol as the rule files score it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SymbolRow {
    /// Its name.
    pub name: String,
    /// Points from the rule files.
    pub score: f64,
    /// What it is evidence of.
    pub category: super::rules::Category,
    /// What it means.
    pub description: String,
    /// What it means, in Chinese (empty: none given).
    pub description_zh: String,
}

/// The symbol of a message matching a threat-intelligence indicator; its detail is the
/// indicator's id, the kind of what matched and its value.
pub const INTEL_MATCH: &str = "THREAT_INTEL";

/// Link symbols that make a clicked link dangerous on their own.
const DANGEROUS_LINK: &[&str] = &[
    "URL_LOOKALIKE",
    "URL_USERINFO",
    "URL_IP_LITERAL",
    "URL_PUNYCODE",
];

/// What a link is judged when it is clicked.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LinkJudgement {
    /// The user is warned (or stopped) instead of sent on.
    pub dangerous: bool,
    /// Why: each finding as `SYMBOL: detail`.
    pub reasons: Vec<String>,
}

/// One recipient's own allow and block lists (kept by the gateway's store, edited by the
/// recipient from a digest's link or by an administrator). They judge only that recipient's
/// copy, and their points are bounded: a recipient's allow list cannot let a virus, or
/// phishing with strong evidence, through, and does not count for mail that fails sender
/// authentication (SPF fail or softfail, DMARC fail: anyone can write a trusted sender's
/// address); their block list outweighs the organisation's allow list.
#[derive(Debug, Default, Clone)]
pub struct OwnLists {
    allow: AddressList,
    block: AddressList,
}

/// What a recipient's block list adds (it wins over their allow list).
pub const OWN_BLOCK: &str = "USER_BLOCKLISTED";
/// What a recipient's allow list adds.
pub const OWN_ALLOW: &str = "USER_ALLOWLISTED";

impl OwnLists {
    /// Parses entries as the policy's lists are parsed ([`AddressList::parse`]).
    pub fn parse(allow: &[String], block: &[String]) -> Result<Self, BadEntry> {
        Ok(Self {
            allow: AddressList::parse(allow)?,
            block: AddressList::parse(block)?,
        })
    }

    fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.block.is_empty()
    }

    /// The symbol and the entry that matched, if one did; the allow list only for mail whose
    /// sender is not `spoofed`.
    fn judge(
        &self,
        client: Option<IpAddr>,
        senders: &[&str],
        spoofed: bool,
    ) -> Option<(&'static str, String)> {
        if let Some(entry) = self.block.matches(client, senders) {
            return Some((OWN_BLOCK, entry));
        }
        if spoofed {
            return None;
        }
        self.allow
            .matches(client, senders)
            .map(|entry| (OWN_ALLOW, entry))
    }
}

/// The inbound detection pipeline; implements [`Scanner`].
pub struct Pipeline {
    config: ScanConfig,
    rules: RwLock<Arc<RuleSet>>,
    auth: Option<Authenticator>,
    lists: Option<BlockLists>,
    clamd: Option<Clamd>,
    targets: Targets,
    bec: BecSettings,
    history: Option<ContactHistory>,
    policies: RwLock<Arc<InForce>>,
    /// Recipients' own lists, by lower-case address.
    own_lists: RwLock<Arc<BTreeMap<String, Arc<OwnLists>>>>,
    classifier: RwLock<Option<Arc<dyn Classifier>>>,
    /// The second content view, which learns from this site's corrections.
    ngram: Option<Arc<SiteModel>>,
    data_dir: Option<PathBuf>,
    shipped: Shipped,
    /// Time one message's DNS checks (authentication and block lists together) may take.
    dns_budget: Duration,
    dns_breaker: dns::Breaker,
    skipped: Option<Arc<dyn SkippedChecks>>,
    pool: CpuPool,
    /// Time one message's work on the scanning threads may take.
    budget: Duration,
    /// Threat-intelligence indicators every message is checked against.
    intel: Option<Arc<Watchlist>>,
}

/// What data-leak prevention made of one message.
#[derive(Debug, Clone, Default)]
pub struct DlpOutcome {
    /// What the detectors and the extraction found.
    pub inspection: Inspection,
    /// The policy that acts, if one fired.
    pub decision: Option<DlpDecision>,
    /// The inspection did not finish within the scan budget.
    pub over_budget: bool,
    /// Microseconds spent.
    pub micros: u64,
}

impl DlpOutcome {
    /// The evidence as a report: findings as zero-weight symbols (counts and masked samples),
    /// class `dlp` when a policy acted.
    pub fn report(&self) -> Report {
        let mut symbols: Vec<ScoredHit> = self
            .inspection
            .findings
            .iter()
            .map(|(detector, found)| ScoredHit {
                name: format!("DLP_{}", detector.name().to_ascii_uppercase()),
                score: 0.0,
                detail: format!("{} ({})", found.distinct, found.samples.join(", ")),
            })
            .collect();
        for (symbol, names) in [
            ("DLP_ENCRYPTED", &self.inspection.encrypted),
            ("DLP_UNREADABLE", &self.inspection.unreadable),
        ] {
            symbols.extend(names.iter().map(|name| ScoredHit {
                name: symbol.into(),
                score: 0.0,
                detail: name.clone(),
            }));
        }
        if self.inspection.truncated {
            symbols.push(ScoredHit {
                name: "DLP_TRUNCATED".into(),
                score: 0.0,
                detail: "a size or time bound stopped the text extraction".into(),
            });
        }
        let (class, explanation) = match (&self.decision, self.over_budget) {
            (Some(d), _) => (
                Class::Dlp,
                format!(
                    "DLP policy \"{}\" ({}): {}",
                    d.policy,
                    d.action.as_str(),
                    d.reasons.join("; ")
                ),
            ),
            (None, true) => (
                Class::Dlp,
                "DLP inspection did not finish within the scan budget".to_owned(),
            ),
            (None, false) => (Class::Clean, "no DLP policy fired".to_owned()),
        };
        Report {
            class,
            score: 0.0,
            symbols,
            explanation,
        }
    }

    /// What happens to the message: log-only policies deliver, holds wait for a reviewer
    /// (until the policy's deadline), blocks are refused naming the policy and never the data.
    /// An inspection that ran out of time is held: what was not read may be what leaks.
    pub fn verdict(&self) -> Verdict {
        let report = self.report();
        match &self.decision {
            None if self.over_budget => Verdict::Hold {
                reason: report.explanation,
                hours: None,
            },
            None => Verdict::Deliver,
            Some(d) => match d.action {
                DlpAction::Log => Verdict::Deliver,
                DlpAction::Hold => Verdict::Hold {
                    reason: report.explanation,
                    hours: Some(d.approval_hours),
                },
                DlpAction::Block => Verdict::Reject {
                    code: 550,
                    enhanced: "5.7.1".into(),
                    // Reply text must be ASCII: a policy named in Chinese is named by the
                    // console's incident record instead.
                    text: if d.policy.is_ascii() && !d.policy.contains(char::is_control) {
                        format!(
                            "Message refused by data-leak prevention policy \"{}\"",
                            d.policy
                        )
                    } else {
                        "Message refused by a data-leak prevention policy".to_owned()
                    },
                },
            },
        }
    }
}

/// Why the pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The rule set did not load.
    #[error(transparent)]
    Rules(#[from] RuleError),
    /// An allow or block list entry is wrong.
    #[error(transparent)]
    List(#[from] super::reputation::BadEntry),
    /// A data-leak prevention policy is wrong.
    #[error(transparent)]
    Dlp(#[from] PolicyError),
    /// The policy gives points to a symbol no rule or check emits.
    #[error("scan.scores.{0}: no such symbol")]
    UnknownSymbol(String),
    /// The 4-gram model setting is wrong or its file unreadable.
    #[error("{0}")]
    Ngram(String),
}

impl Pipeline {
    /// Builds the pipeline from the `[scan]` section. Network checks use `resolver`; without
    /// one (offline `jianmen scan`), only local checks and clamd run.
    pub fn new(
        scan: &ScanConfig,
        env: &Environment,
        resolver: Option<hickory_resolver::TokioResolver>,
    ) -> Result<Self, PipelineError> {
        let scan = scan.clone();
        let mut rules = RuleSet::load(
            scan.builtin_rules,
            env.shipped.rules.as_deref(),
            &scan.rules,
        )?;
        let auth = match (&resolver, scan.auth) {
            (Some(r), true) => Some(Authenticator::new(r.clone(), &env.hostname)),
            _ => None,
        };
        let lists =
            match resolver {
                Some(r) if !scan.dnsbl.is_empty() || !scan.uribl.is_empty() => Some(
                    BlockLists::new(r, scan.dnsbl.clone(), scan.uribl.clone(), env.dns_timeout),
                ),
                _ => None,
            };
        if let Some(l) = &lists {
            for (symbol, score, uri) in l.symbols() {
                rules.define_if_missing(symbol, score, uri);
            }
        }
        let brands: Vec<(String, Vec<String>)> = scan
            .brands
            .iter()
            .map(|b| (b.name.to_lowercase(), b.domains.clone()))
            .collect();
        let history = scan
            .first_contact
            .then(|| ContactHistory::open(env.data_dir.as_ref().map(|d| d.join("contacts.bin"))));
        let policies = InForce::new(&scan.scan_policy(&env.dlp), &rules)?;
        Ok(Self {
            targets: Targets::new(&brands, &env.protected_domains),
            bec: BecSettings::new(&scan.vips, &env.protected_domains, &scan.partner_domains),
            clamd: scan.clamav.as_ref().map(Clamd::new),
            rules: RwLock::new(Arc::new(rules)),
            auth,
            lists,
            history,
            policies: RwLock::new(Arc::new(policies)),
            own_lists: RwLock::default(),
            budget: Duration::from_millis(scan.budget_ms),
            classifier: RwLock::new(load_classifier(
                &scan.model,
                env.data_dir.as_deref(),
                env.shipped.model.as_deref(),
            )),
            ngram: SiteModel::load(&scan.ngram, env.data_dir.as_deref())
                .map_err(PipelineError::Ngram)?
                .map(Arc::new),
            config: scan,
            data_dir: env.data_dir.clone(),
            shipped: env.shipped.clone(),
            // One query may be tried twice (see `dns::resolver`); a message gets that much.
            dns_budget: env.dns_timeout * 2,
            dns_breaker: dns::Breaker::default(),
            skipped: env.skipped.clone(),
            pool: CpuPool::per_core(),
            intel: None,
        })
    }

    /// The pipeline `jianmen scan`, `jianmen features` and `jianmen eval` use without a
    /// configuration: local checks and the built-in rules and model only, nothing kept.
    pub fn offline() -> Result<Self, PipelineError> {
        let scan = ScanConfig {
            auth: false,
            first_contact: false,
            ..ScanConfig::default()
        };
        let env = Environment {
            hostname: "jianmen.localhost".into(),
            protected_domains: vec!["localhost.localdomain".into()],
            ..Environment::default()
        };
        Self::new(&scan, &env, None)
    }

    /// Judges `url` as it stands now, for a click on it: threat-intelligence indicators, the
    /// structure and look-alike checks links get in mail, and the URI block lists (within the
    /// DNS budget; a list that does not answer in time does not count).
    pub async fn judge_link(&self, url: &str) -> LinkJudgement {
        let mut judgement = LinkJudgement::default();
        let Some((normal, host)) = crate::hunt::web_url(url) else {
            judgement.dangerous = true;
            judgement.reasons.push("not a web link".into());
            return judgement;
        };
        let mut symbols = Symbols::default();
        if let Some(intel) = &self.intel {
            let facts = Facts {
                urls: vec![normal],
                domains: vec![host],
                ..Facts::default()
            };
            if let Some(m) = intel.check(&facts, "", None) {
                let o = &m.observable;
                symbols.add(
                    INTEL_MATCH,
                    format!("{} {} {}", m.indicator, o.kind(), o.value()),
                );
            }
        }
        let message = Message {
            links: vec![super::html::Link {
                href: url.to_owned(),
                text: String::new(),
            }],
            ..Message::default()
        };
        let domains = phish::check_links(&message, &self.targets, &mut symbols);
        let mut listed = Symbols::default();
        if let Some(lists) = &self.lists
            && self.dns_breaker.allows(Instant::now())
        {
            let _ = tokio::time::timeout(self.dns_budget, lists.check_links(&domains, &mut listed))
                .await;
        }
        for h in symbols.hits().iter().chain(listed.hits()) {
            judgement.reasons.push(format!("{}: {}", h.name, h.detail));
        }
        judgement.dangerous = !listed.hits().is_empty()
            || symbols
                .hits()
                .iter()
                .any(|h| h.name == INTEL_MATCH || DANGEROUS_LINK.contains(&h.name.as_str()));
        judgement
    }

    /// Refuses mail that matches an indicator in `intel` (its contents change as feeds do).
    pub fn with_intel(mut self, intel: Arc<Watchlist>) -> Self {
        self.intel = Some(intel);
        self
    }

    /// Puts `classifier` (or, with `None`, no model) in place of the configured content model.
    pub fn with_classifier(self, classifier: Option<Arc<dyn Classifier>>) -> Self {
        if let Ok(mut current) = self.classifier.write() {
            *current = classifier;
        }
        self
    }

    /// Puts `model` (or, with `None`, no model) in place of the configured 4-gram model.
    pub fn with_ngram(mut self, model: Option<Arc<SiteModel>>) -> Self {
        self.ngram = model;
        self
    }

    /// The 4-gram model in use, which learns from the feedback store (the daemon calls its
    /// [`SiteModel::learn_feedback`] every few seconds).
    pub fn ngram(&self) -> Option<Arc<SiteModel>> {
        self.ngram.clone()
    }

    /// Reloads the configured content model (SIGHUP, after `jianmen retrain` activated one);
    /// on error the model in use stays. Returns what is now loaded.
    pub fn reload_model(&self) -> Result<&'static str, String> {
        let model = load_model(
            &self.config.model,
            self.data_dir.as_deref(),
            self.shipped.model.as_deref(),
        )?;
        let what = if model.is_some() {
            "content model"
        } else {
            "no model"
        };
        if let Ok(mut current) = self.classifier.write() {
            *current = model;
        }
        Ok(what)
    }

    fn classifier(&self) -> Option<Arc<dyn Classifier>> {
        match self.classifier.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reloads the rule files (SIGHUP); on error the old rules stay in force.
    pub fn reload_rules(&self) -> Result<usize, RuleError> {
        let mut rules = RuleSet::load(
            self.config.builtin_rules,
            self.shipped.rules.as_deref(),
            &self.config.rules,
        )?;
        if let Some(l) = &self.lists {
            for (symbol, score, uri) in l.symbols() {
                rules.define_if_missing(symbol, score, uri);
            }
        }
        let n = rules.len();
        if let Ok(mut current) = self.rules.write() {
            *current = Arc::new(rules);
        }
        Ok(n)
    }

    fn rules(&self) -> Arc<RuleSet> {
        match self.rules.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Runs data-leak prevention on `raw` as mail going `direction` from `mail_from` to `rcpts`:
    /// parsing, text extraction and the detectors on the scanning threads within the budget.
    pub async fn dlp_inspect(
        self: &Arc<Self>,
        raw: &[u8],
        direction: Direction,
        mail_from: &str,
        rcpts: &[String],
    ) -> DlpOutcome {
        let started = Instant::now();
        let raw: Arc<[u8]> = Arc::from(raw);
        let (policies, from, to) = (self.policies(), mail_from.to_owned(), rcpts.to_vec());
        let today = chrono::Local::now().date_naive();
        let ran = self
            .pool
            .run_within(self.budget, move |deadline| {
                let message = Message::parse(&raw);
                let (text, inspection) = dlp::inspect(&message, deadline, today);
                let decision = policies
                    .dlp
                    .judge(direction, &from, &to, &text, &inspection);
                (inspection, decision)
            })
            .await;
        let micros = started.elapsed().as_micros() as u64;
        match ran {
            Ok(((inspection, decision), _)) => DlpOutcome {
                inspection,
                decision,
                over_budget: false,
                micros,
            },
            Err(OverBudget) => DlpOutcome {
                over_budget: true,
                micros,
                ..DlpOutcome::default()
            },
        }
    }

    /// Gathers all evidence about `raw`: parsing and the local checks run on the scanning
    /// threads, the network checks (DNS, clamd) concurrently on the caller's runtime.
    pub async fn analyse(self: &Arc<Self>, raw: &[u8], ctx: &Context) -> Analysis {
        let started = Instant::now();
        let shared_raw: Arc<[u8]> = Arc::from(raw);
        let parsed = {
            let (me, raw) = (Arc::clone(self), Arc::clone(&shared_raw));
            self.pool
                .run_within(self.budget, move |deadline| {
                    let message = Message::parse(&raw);
                    let mut symbols = Symbols::default();
                    let links = if deadline.passed() {
                        symbols.add("SCAN_BUDGET_EXCEEDED", "parsing");
                        Vec::new()
                    } else {
                        phish::check_links(&message, &me.targets, &mut symbols)
                    };
                    (message, symbols, links)
                })
                .await
        };
        let ((message, mut symbols, link_domains), took) = match parsed {
            Ok(parsed) => parsed,
            Err(OverBudget) => {
                let mut symbols = Symbols::default();
                symbols.add("SCAN_BUDGET_EXCEEDED", "parsing");
                self.count_if_over_budget(&symbols);
                return Analysis {
                    symbols,
                    auth_results: None,
                    antivirus_failed: false,
                    from_addr: String::new(),
                    micros: started.elapsed().as_micros() as u64,
                };
            }
        };
        let budget_left = self.budget.saturating_sub(took);
        let mut auth_symbols = Symbols::default();
        let mut list_symbols = Symbols::default();
        let dns_wanted = ctx.client_ip.is_some() && (self.auth.is_some() || self.lists.is_some());
        let dns_allowed = self.dns_breaker.allows(Instant::now());
        let dns_fut = async {
            let Some(ip) = ctx.client_ip.filter(|_| dns_wanted && dns_allowed) else {
                return (None, true);
            };
            let auth = async {
                match &self.auth {
                    Some(a) => {
                        let peer = Peer {
                            ip,
                            helo: &ctx.helo,
                            mail_from: &ctx.mail_from,
                        };
                        Some(a.check(raw, &peer, &mut auth_symbols).await)
                    }
                    None => None,
                }
            };
            let lists = async {
                if let Some(l) = &self.lists {
                    l.check(ip, &link_domains, &mut list_symbols).await;
                }
            };
            match tokio::time::timeout(self.dns_budget, async { tokio::join!(auth, lists) }).await {
                Ok((auth_results, ())) => (auth_results, true),
                Err(_) => (None, false),
            }
        };
        let av_fut = async {
            match &self.clamd {
                Some(c) => Some((c.scan(raw).await, c.on_error)),
                None => None,
            }
        };
        let ((auth_results, dns_finished), av) = tokio::join!(dns_fut, av_fut);
        for h in auth_symbols.hits().iter().chain(list_symbols.hits()) {
            symbols.add(&h.name, h.detail.clone());
        }
        if dns_wanted {
            self.account_dns(dns_allowed, dns_finished, &mut symbols);
        }
        let mut antivirus_failed = false;
        match av {
            Some((Ok(Outcome::Infected(name)), _)) => symbols.add("CLAMAV_VIRUS", name),
            Some((Ok(Outcome::Clean), _)) | None => {}
            Some((Err(e), policy)) => {
                tracing::warn!(error = %e, "antivirus scan failed");
                symbols.add("CLAMAV_UNAVAILABLE", e.to_string());
                antivirus_failed = policy == OnError::Tempfail;
            }
        }
        let from_addr = message.from_addr.clone();
        let so_far = symbols.clone();
        let checked = {
            let (me, ctx) = (Arc::clone(self), ctx.clone());
            self.pool
                .run_within(budget_left, move |deadline| {
                    let rules = me.rules();
                    me.local_checks(&message, &ctx, &rules, deadline, &mut symbols);
                    symbols
                })
                .await
        };
        let symbols = match checked {
            Ok((symbols, _)) => symbols,
            // What the network checks found (a virus clamd named, a failed scan's tempfail)
            // still counts; the rest is missing.
            Err(OverBudget) => {
                let mut symbols = so_far;
                symbols.add("SCAN_BUDGET_EXCEEDED", "checks");
                symbols
            }
        };
        self.count_if_over_budget(&symbols);
        Analysis {
            symbols,
            auth_results,
            antivirus_failed,
            from_addr,
            micros: started.elapsed().as_micros() as u64,
        }
    }

    /// Logs and counts a message whose scan ran out of its budget.
    fn count_if_over_budget(&self, symbols: &Symbols) {
        if !symbols.has("SCAN_BUDGET_EXCEEDED") {
            return;
        }
        tracing::warn!(
            budget_ms = self.budget.as_millis() as u64,
            "message scan ran out of its budget: judged unscannable"
        );
        if let Some(s) = &self.skipped {
            s.skipped("budget");
        }
    }

    /// Feeds one message's DNS outcome to the breaker; says in the message's evidence, the
    /// log and the metrics when its DNS checks were skipped or cut short.
    fn account_dns(&self, allowed: bool, finished: bool, symbols: &mut Symbols) {
        if !allowed {
            symbols.add("DNS_UNAVAILABLE", "resolver down: DNS checks skipped");
        } else {
            if !finished {
                symbols.add("DNS_UNAVAILABLE", "DNS checks ran out of time");
            }
            match self.dns_breaker.record(finished, Instant::now()) {
                Some(dns::Transition::Opened) => tracing::warn!(
                    "DNS checks time out: skipping them (SPF, DKIM, DMARC, block lists) until the \
                     resolver answers again"
                ),
                Some(dns::Transition::Closed) => tracing::info!("DNS answers again: checks resume"),
                None => {}
            }
        }
        if (!allowed || !finished)
            && let Some(s) = &self.skipped
        {
            s.skipped("dns");
        }
    }

    /// The CPU-only checks: structure, HTML, attachments, sender, BEC, the content model and
    /// the rule set; each stage starts only while `deadline` has not passed.
    fn local_checks(
        &self,
        message: &Message,
        ctx: &Context,
        rules: &RuleSet,
        deadline: &Deadline,
        symbols: &mut Symbols,
    ) {
        if let Some(intel) = self.intel.as_ref().filter(|w| !w.is_empty())
            && let Some(m) = intel.check(&Facts::of(message), &ctx.mail_from, ctx.client_ip)
        {
            let o = &m.observable;
            symbols.add(
                INTEL_MATCH,
                format!("{} {} {}", m.indicator, o.kind(), o.value()),
            );
        }
        self.content_checks(message, ctx, deadline, symbols);
        if deadline.passed() {
            symbols.add("SCAN_BUDGET_EXCEEDED", "checks");
            return;
        }
        if let Some(classifier) = self.classifier() {
            match classifier.classify(message, symbols) {
                Ok(p) => model::add_symbols(p, symbols),
                Err(why) => symbols.add("NEURAL_UNAVAILABLE", why),
            }
        }
        if let Some(p) = self.ngram.as_ref().and_then(|n| n.probability(message)) {
            ngram::add_symbols(p, symbols);
        }
        if deadline.passed() {
            symbols.add("SCAN_BUDGET_EXCEEDED", "content model");
            return;
        }
        rules.evaluate(message, symbols);
    }

    /// The parsed message and the content checks' symbols, without network checks, model or
    /// rules: what the content model is trained on (`jianmen features`).
    pub fn local_view(&self, raw: &[u8], ctx: &Context) -> (Message, Symbols) {
        let message = Message::parse(raw);
        let mut symbols = Symbols::default();
        phish::check_links(&message, &self.targets, &mut symbols);
        self.content_checks(&message, ctx, &Deadline::unlimited(), &mut symbols);
        (message, symbols)
    }

    /// Structure, HTML, attachments, sender and BEC checks.
    fn content_checks(
        &self,
        message: &Message,
        ctx: &Context,
        deadline: &Deadline,
        symbols: &mut Symbols,
    ) {
        for a in &message.anomalies {
            symbols.add(a, "");
        }
        if message.header("from").is_none() {
            symbols.add("MISSING_FROM", "");
        }
        if message.header("date").is_none() {
            symbols.add("MISSING_DATE", "");
        }
        if message.header("message-id").is_none() {
            symbols.add("MISSING_MESSAGE_ID", "");
        }
        let h = &message.html;
        let flags = [
            (message.has_html && !message.has_plain, "HTML_ONLY"),
            (h.hidden_text, "HTML_HIDDEN_TEXT"),
            (h.script, "HTML_SCRIPT"),
            (h.password_input, "HTML_PASSWORD_FORM"),
            (h.meta_refresh, "HTML_META_REFRESH"),
            (h.embedded, "HTML_EMBEDDED"),
            (h.smuggling, "HTML_SMUGGLING"),
        ];
        for (_, name) in flags.iter().filter(|(set, _)| *set) {
            symbols.add(name, "");
        }
        if !h.password_input
            && let Some(action) = h.form_actions.first()
        {
            symbols.add("HTML_FORM", action.clone());
        }
        let zero_width = message
            .text
            .chars()
            .filter(|c| super::html::is_invisible_char(*c))
            .take(4)
            .count();
        if zero_width >= 3 {
            symbols.add("TEXT_INVISIBLE_CHARS", "");
        }
        let refused = match ctx.direction {
            Direction::Inbound => self.policies().attachments.clone(),
            Direction::Outbound | Direction::Internal => AttachmentPolicy::default(),
        };
        attach::check(&message.attachments, &refused, deadline, symbols);
        phish::check_sender(message, &self.targets, symbols);
        let mail_from = (!ctx.mail_from.is_empty()).then_some(ctx.mail_from.as_str());
        bec::check(message, mail_from, &self.bec, symbols);
        if let Some(history) = &self.history
            && !ctx.rcpts.is_empty()
            && !self
                .bec
                .own
                .contains(&super::domain::registrable(message.from_domain()))
        {
            history.observe(&message.from_addr, &ctx.rcpts, symbols);
        }
    }

    /// Puts an edited policy in force for the next message (messages being judged keep the
    /// one they started with). The caller has checked it ([`ScanPolicy::check`]).
    pub fn set_policy(&self, policy: &ScanPolicy) -> Result<(), PipelineError> {
        let policies = Arc::new(InForce::new(policy, &self.rules())?);
        *self.policies.write().unwrap_or_else(|e| e.into_inner()) = policies;
        Ok(())
    }

    /// Every symbol the rules and checks in force may emit, with its points from the rule
    /// files: what the console's rule switches and weights list.
    pub fn symbols(&self) -> Vec<SymbolRow> {
        let rules = self.rules();
        let mut rows: Vec<SymbolRow> = rules
            .symbols()
            .map(|(name, info)| SymbolRow {
                name: name.to_owned(),
                score: info.score,
                category: info.category,
                description: info.description.clone(),
                description_zh: info.description_zh.clone(),
            })
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }

    /// Puts `owner`'s own lists in force for the next message; empty lists remove them.
    pub fn set_own_lists(&self, owner: &str, lists: OwnLists) {
        let mut all = self.own_lists.write().unwrap_or_else(|e| e.into_inner());
        let all = Arc::make_mut(&mut all);
        let owner = owner.to_lowercase();
        if lists.is_empty() {
            all.remove(&owner);
        } else {
            all.insert(owner, Arc::new(lists));
        }
    }

    fn own_lists(&self) -> Arc<BTreeMap<String, Arc<OwnLists>>> {
        self.own_lists
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn policies(&self) -> Arc<InForce> {
        self.policies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Decides for one recipient domain (`None`: the default policy), with what the
    /// recipients' own lists matched (`own`: a symbol and the entry).
    pub fn report(
        &self,
        analysis: &Analysis,
        ctx: &Context,
        domain: Option<&str>,
        own: Option<(&'static str, String)>,
    ) -> (Report, Action) {
        let policies = self.policies();
        let policy = domain
            .and_then(|d| policies.domains.get(d))
            .unwrap_or(&policies.default);
        let mut symbols = analysis.symbols.clone();
        let senders = [ctx.mail_from.as_str(), analysis.from_addr.as_str()];
        // The domain's own lists first, then the global ones; block wins over allow.
        for p in [policy, &policies.default] {
            for (list, symbol) in [(&p.block, "BLOCKLISTED"), (&p.allow, "ALLOWLISTED")] {
                if let Some(entry) = list.matches(ctx.client_ip, &senders) {
                    symbols.add(symbol, entry);
                }
            }
        }
        if let Some((symbol, entry)) = own {
            symbols.add(symbol, entry);
        }
        let report = decide(
            &self.rules(),
            &policies.scores,
            &symbols,
            &policy.thresholds,
        );
        let action = action_for(&report, &policy.actions, &policy.thresholds);
        (report, action)
    }

    /// The DLP policies' judgement of mail going out or between colleagues, when a policy
    /// covers its direction, sender and recipients.
    async fn dlp_disposition(
        self: &Arc<Self>,
        envelope: &Envelope,
        message: &[u8],
    ) -> Option<Disposition> {
        if !self
            .policies()
            .dlp
            .cover(envelope.direction, &envelope.mail_from, &envelope.rcpts)
        {
            return None;
        }
        let outcome = self
            .dlp_inspect(
                message,
                envelope.direction,
                &envelope.mail_from,
                &envelope.rcpts,
            )
            .await;
        tracing::info!(
            queue_id = %envelope.queue_id, direction = envelope.direction.as_str(),
            policy = outcome.decision.as_ref().map_or("", |d| d.policy.as_str()),
            action = outcome.decision.as_ref().map_or("", |d| d.action.as_str()),
            over_budget = outcome.over_budget, micros = outcome.micros, "DLP inspected"
        );
        Some(Disposition {
            rcpts: envelope.rcpts.clone(),
            verdict: outcome.verdict(),
            report: Some(outcome.report()),
        })
    }

    /// Judges mail from inside the organisation (`scan.inside`) for threats; `None` when the
    /// section leaves this direction alone.
    async fn judge_inside(
        self: &Arc<Self>,
        envelope: &Envelope,
        message: &[u8],
    ) -> Option<Disposition> {
        let inside = &self.config.inside;
        let wanted = match envelope.direction {
            Direction::Internal => inside.internal,
            Direction::Outbound => inside.outbound,
            Direction::Inbound => false,
        };
        if !wanted || !self.config.enabled {
            return None;
        }
        // The client is the organisation's own server: its address tells nothing.
        let ctx = Context {
            client_ip: None,
            helo: envelope.helo.clone(),
            mail_from: envelope.mail_from.clone(),
            rcpts: envelope.rcpts.clone(),
            direction: envelope.direction,
        };
        let analysis = self.analyse(message, &ctx).await;
        let rcpts = envelope.rcpts.clone();
        if analysis.antivirus_failed {
            return Some(Disposition {
                rcpts,
                verdict: av_tempfail(),
                report: None,
            });
        }
        let (report, _) = self.report(&analysis, &ctx, None, None);
        let action = action_for(
            &report,
            &inside.actions,
            &self.policies().default.thresholds,
        );
        tracing::info!(
            queue_id = %envelope.queue_id, direction = envelope.direction.as_str(),
            class = report.class.as_str(), score = report.score, action = ?action,
            micros = analysis.micros, "message from inside scanned"
        );
        let verdict = match action {
            // Mail from inside leaves without our verdict headers.
            Action::Deliver => Verdict::Deliver,
            _ => self.verdict(&analysis, &report, action),
        };
        Some(Disposition {
            rcpts,
            verdict,
            report: Some(report),
        })
    }

    fn verdict(&self, analysis: &Analysis, report: &Report, action: Action) -> Verdict {
        let symbols = report
            .symbols
            .iter()
            .filter(|h| h.score != 0.0)
            .map(|h| format!("{}({:.1})", h.name, h.score))
            .collect::<Vec<_>>()
            .join(", ");
        let mut headers = Vec::new();
        if let Some(ar) = &analysis.auth_results {
            headers.push(("Authentication-Results".to_owned(), ar.clone()));
        }
        headers.push((
            "X-Jianmen-Verdict".to_owned(),
            format!("{}; score={:.1}", report.class.as_str(), report.score),
        ));
        if !symbols.is_empty() {
            headers.push(("X-Jianmen-Symbols".to_owned(), fold(&symbols)));
        }
        match action {
            Action::Deliver => Verdict::Tag {
                headers,
                subject_prefix: None,
            },
            Action::Tag => Verdict::Tag {
                headers,
                subject_prefix: Some(self.config.subject_prefix.clone()),
            },
            Action::Quarantine => Verdict::Hold {
                reason: report.explanation.clone(),
                hours: None,
            },
            Action::Reject => Verdict::Reject {
                code: 550,
                enhanced: "5.7.1".into(),
                text: format!("Message rejected as {}", report.class.as_str()),
            },
            Action::Discard => Verdict::Discard {
                reason: report.explanation.clone(),
            },
        }
    }
}

/// What `actions` say for a report's class (`thresholds` tell high spam).
fn action_for(report: &Report, actions: &Actions, thresholds: &Thresholds) -> Action {
    match report.class {
        Class::Clean => Action::Deliver,
        Class::Spam if report.score >= thresholds.spam_high => actions.spam_high,
        Class::Spam => actions.spam,
        Class::Phish => actions.phish,
        Class::Bec => actions.bec,
        Class::Virus => actions.virus,
        Class::Unscannable => actions.unscannable,
        // Threat analysis never decides this class.
        Class::Dlp => Action::Deliver,
    }
}

/// The refusal when clamd cannot scan and its policy says to try later.
fn av_tempfail() -> Verdict {
    Verdict::Reject {
        code: 451,
        enhanced: "4.7.1".into(),
        text: "Virus scan unavailable, try again later".into(),
    }
}

/// Where `jianmen retrain` puts a model that passed its gate, under the data directory; the
/// `auto` model setting prefers it to the built-in one.
pub fn activated_model_path(data_dir: &Path) -> PathBuf {
    data_dir.join("model").join("content.onnx")
}

/// The content model a `scan.model` setting names (`auto`, `builtin`, `none` or a file), or
/// why it cannot be loaded. `auto` prefers the model activated under `data_dir`, then the one
/// an upgrade `shipped`, then the built-in one.
pub fn load_model(
    setting: &str,
    data_dir: Option<&Path>,
    shipped: Option<&Path>,
) -> Result<Option<Arc<dyn Classifier>>, String> {
    if setting == "none" {
        return Ok(None);
    }
    #[cfg(feature = "neural")]
    {
        use super::neural::{ContentModel, ModelError};
        let activated = data_dir.map(activated_model_path);
        let read = |path: &Path| {
            std::fs::read(path)
                .map_err(|e| ModelError::from_io(&path.to_string_lossy(), &e))
                .and_then(|bytes| ContentModel::load(&bytes))
        };
        let loaded = match (setting, shipped) {
            ("auto", _) if let Some(activated) = activated.filter(|a| a.is_file()) => {
                read(&activated)
            }
            ("auto", Some(shipped)) => read(shipped),
            ("auto" | "builtin", _) => ContentModel::builtin(),
            (path, _) => read(Path::new(path)),
        };
        loaded
            .map(|m| Some(Arc::new(m) as Arc<dyn Classifier>))
            .map_err(|e| e.to_string())
    }
    #[cfg(not(feature = "neural"))]
    {
        let _ = (data_dir, shipped);
        Err(format!(
            "model {setting:?}: built without the `neural` feature"
        ))
    }
}

/// The configured content model; one that fails to load is logged and every verdict says it
/// was reached without it.
fn load_classifier(
    setting: &str,
    data_dir: Option<&Path>,
    shipped: Option<&Path>,
) -> Option<Arc<dyn Classifier>> {
    match load_model(setting, data_dir, shipped) {
        Ok(model) => model,
        Err(e) => {
            tracing::error!(error = %e, "content model not loaded; scanning with rules only");
            Some(Arc::new(Unavailable(e)))
        }
    }
}

/// Folds a long header value at commas so no line exceeds ~78 characters.
fn fold(value: &str) -> String {
    let mut out = String::new();
    let mut line = 0;
    for (i, part) in value.split(", ").enumerate() {
        if i > 0 {
            if line + part.len() > 70 {
                out.push_str(",\r\n\t");
                line = 8;
            } else {
                out.push_str(", ");
                line += 2;
            }
        }
        out.push_str(part);
        line += part.len();
    }
    out
}

#[async_trait]
impl Scanner for Arc<Pipeline> {
    /// The global allow list of the policy in force: an entry added in the console spares its
    /// sender greylisting and rate limits from the next connection.
    fn allowed(&self, client: IpAddr, sender: &str) -> Option<bool> {
        Some(
            self.policies()
                .default
                .allow
                .matches(Some(client), &[sender])
                .is_some(),
        )
    }

    async fn scan(&self, envelope: &Envelope, message: &[u8]) -> Vec<Disposition> {
        // Mail the organisation sends is judged for what it carries, then — by `scan.inside` —
        // for threats: a DLP hold or refusal decides, else a threat found does.
        if envelope.direction != Direction::Inbound {
            let dlp = self.dlp_disposition(envelope, message).await;
            if let Some(d) = &dlp
                && !matches!(d.verdict, Verdict::Deliver)
            {
                return dlp.into_iter().collect();
            }
            if let Some(threat) = self.judge_inside(envelope, message).await
                && (dlp.is_none()
                    || threat
                        .report
                        .as_ref()
                        .is_none_or(|r| r.class != Class::Clean))
            {
                return vec![threat];
            }
            return match dlp {
                Some(d) => vec![d],
                None => Disposition::all(envelope, Verdict::Deliver),
            };
        }
        if !self.config.enabled {
            return Disposition::all(envelope, Verdict::Deliver);
        }
        let ctx = Context {
            client_ip: Some(envelope.client_ip),
            helo: envelope.helo.clone(),
            mail_from: envelope.mail_from.clone(),
            rcpts: envelope.rcpts.clone(),
            direction: envelope.direction,
        };
        let analysis = self.analyse(message, &ctx).await;
        if let Some(hit) = analysis
            .symbols
            .hits()
            .iter()
            .find(|h| h.name == INTEL_MATCH)
        {
            tracing::info!(queue_id = %envelope.queue_id, indicator = %hit.detail, "message matches threat intelligence");
            let kind = hit.detail.split(' ').nth(1).unwrap_or_default();
            return Disposition::all(
                envelope,
                Verdict::Reject {
                    code: 550,
                    enhanced: "5.7.1".into(),
                    text: format!("Message matches a known threat ({kind})"),
                },
            );
        }
        if analysis.antivirus_failed {
            return vec![Disposition {
                rcpts: envelope.rcpts.clone(),
                verdict: av_tempfail(),
                report: None,
            }];
        }
        // One decision per recipient domain that has its own policy and per entry of a
        // recipient's own lists that matched; the rest share one.
        let mut groups: BTreeMap<_, Vec<String>> = BTreeMap::new();
        let policies = self.policies();
        let own_lists = self.own_lists();
        let senders = [ctx.mail_from.as_str(), analysis.from_addr.as_str()];
        let spoofed = analysis.symbols.hits().iter().any(|h| {
            h.name.starts_with("DMARC_FAIL") || h.name == "SPF_FAIL" || h.name == "SPF_SOFTFAIL"
        });
        for rcpt in &envelope.rcpts {
            let domain = domain_of(rcpt).to_ascii_lowercase();
            let key = policies.domains.contains_key(&domain).then_some(domain);
            let own = own_lists
                .get(&rcpt.to_lowercase())
                .and_then(|l| l.judge(ctx.client_ip, &senders, spoofed));
            groups.entry((key, own)).or_default().push(rcpt.clone());
        }
        let mut out = Vec::new();
        for ((domain, own), rcpts) in groups {
            let (report, action) = self.report(&analysis, &ctx, domain.as_deref(), own);
            tracing::info!(
                queue_id = %envelope.queue_id, class = report.class.as_str(), score = report.score,
                action = ?action, micros = analysis.micros, explanation = %report.explanation,
                "message scanned"
            );
            out.push(Disposition {
                rcpts,
                verdict: self.verdict(&analysis, &report, action),
                report: Some(report),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Probabilities;

    /// Counts what the pipeline skipped, by check.
    #[derive(Default)]
    struct Skipped(std::sync::Mutex<BTreeMap<&'static str, usize>>);

    impl SkippedChecks for Skipped {
        fn skipped(&self, check: &'static str) {
            *self.0.lock().unwrap().entry(check).or_default() += 1;
        }
    }

    impl Skipped {
        fn count(&self, check: &str) -> usize {
            self.0.lock().unwrap().get(check).copied().unwrap_or(0)
        }
    }

    /// An inbound message's envelope from 192.0.2.1.
    fn inbound() -> Envelope {
        Envelope {
            queue_id: "q1".into(),
            client_ip: "192.0.2.1".parse().unwrap(),
            helo: "mail.b.test".into(),
            mail_from: "a@b.test".into(),
            rcpts: vec!["u@example.com".into()],
            tls: false,
            smtputf8: false,
            direction: Direction::Inbound,
            login: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_matching_an_indicator_is_refused_and_others_are_not() {
        let envelope = inbound();
        let scan = ScanConfig {
            auth: false,
            first_contact: false,
            model: "none".into(),
            ..ScanConfig::default()
        };
        let env = Environment {
            hostname: "gw.test".into(),
            protected_domains: vec!["example.com".into()],
            ..Environment::default()
        };
        let intel = crate::intel::Watchlist::new();
        let p = Arc::new(
            Pipeline::new(&scan, &env, None)
                .unwrap()
                .with_intel(intel.clone()),
        );
        let refused =
            |out: &[Disposition]| matches!(out[0].verdict, Verdict::Reject { code: 550, .. });
        assert!(!refused(&p.scan(&envelope, MESSAGE).await));
        let listed = crate::intel::Observable::Ip("192.0.2.0".parse().unwrap(), 24);
        intel.replace([("indicator--1", &listed)]);
        let out = p.scan(&envelope, MESSAGE).await;
        assert!(refused(&out), "{:?}", out[0].verdict);
        intel.replace([]);
        assert!(!refused(&p.scan(&envelope, MESSAGE).await));
    }

    /// Finding 1 of the hardening review: a message could hold a scanning thread for as long
    /// as its content made the checks run. Each message now has a budget; one that spends it
    /// is judged unscannable (quarantined by default) and counted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_that_spends_its_budget_is_held_as_unscannable() {
        let skipped = Arc::new(Skipped::default());
        let env = Environment {
            hostname: "gw.test".into(),
            protected_domains: vec!["example.com".into()],
            skipped: Some(skipped.clone()),
            ..Environment::default()
        };
        let envelope = inbound();
        for (budget_ms, held) in [(0, true), (60_000, false)] {
            let scan = ScanConfig {
                first_contact: false,
                model: "none".into(),
                budget_ms,
                ..ScanConfig::default()
            };
            let p = Arc::new(Pipeline::new(&scan, &env, None).unwrap());
            let out = p.scan(&envelope, MESSAGE).await;
            let report = out[0].report.as_ref().unwrap();
            assert_eq!(
                matches!(out[0].verdict, Verdict::Hold { .. }),
                held,
                "{budget_ms} ms: {}",
                report.explanation
            );
            assert_eq!(report.class == Class::Unscannable, held);
        }
        assert_eq!(skipped.count("budget"), 1);
    }

    /// Finding 11 of the hardening review: with an unreachable resolver every message waited
    /// for DNS. Each message gets one DNS budget, and after three in a row ran out of it the
    /// checks are skipped (and said so) until the resolver answers again.
    #[tokio::test]
    async fn a_silent_resolver_costs_three_messages_their_budget_then_is_skipped() {
        // A resolver that never answers, over UDP or TCP: bound sockets nobody reads.
        let (udp, _tcp) = (0..20)
            .find_map(|_| {
                let udp = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
                let tcp = std::net::TcpListener::bind(udp.local_addr().ok()?).ok()?;
                Some((udp, tcp))
            })
            .expect("a UDP and TCP port pair");
        let config = crate::config::DnsConfig {
            resolver: Some(udp.local_addr().unwrap()),
            timeout_ms: 50,
            trust_anchor: None,
        };
        let resolver = crate::dns::resolver(&config).unwrap();
        let skipped = Arc::new(Skipped::default());
        let env = Environment {
            hostname: "gw.test".into(),
            protected_domains: vec!["example.com".into()],
            dns_timeout: Duration::from_millis(config.timeout_ms),
            skipped: Some(skipped.clone()),
            ..Environment::default()
        };
        let scan = ScanConfig {
            first_contact: false,
            model: "none".into(),
            ..ScanConfig::default()
        };
        let p = Arc::new(Pipeline::new(&scan, &env, Some(resolver)).unwrap());
        let ctx = Context {
            client_ip: Some("192.0.2.1".parse().unwrap()),
            helo: "mail.sender.test".into(),
            mail_from: "a@sender.test".into(),
            rcpts: vec!["u@example.com".into()],
            direction: Direction::Inbound,
        };
        let detail = |a: &Analysis| {
            a.symbols
                .hits()
                .iter()
                .find(|h| h.name == "DNS_UNAVAILABLE")
                .map(|h| h.detail.clone())
        };
        for _ in 0..3 {
            let a = p.analyse(MESSAGE, &ctx).await;
            assert_eq!(detail(&a).as_deref(), Some("DNS checks ran out of time"));
            assert!(a.auth_results.is_none());
        }
        let a = p.analyse(MESSAGE, &ctx).await;
        assert_eq!(
            detail(&a).as_deref(),
            Some("resolver down: DNS checks skipped")
        );
        assert_eq!(skipped.count("dns"), 4);
    }

    struct Fixed(Result<Probabilities, String>);

    impl Classifier for Fixed {
        fn classify(&self, _: &Message, _: &Symbols) -> Result<Probabilities, String> {
            self.0.clone()
        }
    }

    fn pipeline(classifier: Fixed) -> Arc<Pipeline> {
        let scan = ScanConfig {
            first_contact: false,
            ..ScanConfig::default()
        };
        let env = Environment {
            hostname: "gw.test".into(),
            protected_domains: vec!["example.com".into()],
            ..Environment::default()
        };
        Arc::new(
            Pipeline::new(&scan, &env, None)
                .unwrap()
                .with_classifier(Some(Arc::new(classifier))),
        )
    }

    #[test]
    fn the_allow_list_in_force_is_the_edited_one() {
        let p = pipeline(Fixed(Err("none".into())));
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(p.allowed(client, "friend@partner.test"), Some(false));
        let policy = ScanPolicy {
            allow: vec!["@partner.test".into()],
            ..ScanPolicy::default()
        };
        p.set_policy(&policy).unwrap();
        assert_eq!(p.allowed(client, "friend@partner.test"), Some(true));
        assert_eq!(p.allowed(client, "someone@else.test"), Some(false));
    }

    /// Rule switches and weights edited in the console: the next verdict uses them, and a
    /// symbol no rule knows is refused rather than silently ignored.
    #[tokio::test]
    async fn points_in_force_are_the_edited_ones() {
        let p = pipeline(Fixed(Ok(Probabilities {
            spam: 0.0,
            phish: 0.999,
        })));
        let ctx = Context::default();
        let a = p.analyse(MESSAGE, &ctx).await;
        assert_eq!(p.report(&a, &ctx, None, None).0.class, Class::Phish);
        let off = ScanPolicy {
            scores: BTreeMap::from([("NEURAL_PHISH".to_owned(), 0.0)]),
            ..ScanPolicy::default()
        };
        p.set_policy(&off).unwrap();
        let report = p.report(&a, &ctx, None, None).0;
        assert_eq!(report.class, Class::Clean, "{}", report.explanation);
        assert!(
            p.symbols()
                .iter()
                .any(|s| s.name == "NEURAL_PHISH" && s.score > 0.0)
        );
        let typo = ScanPolicy {
            scores: BTreeMap::from([("NEURAL_PHIHS".to_owned(), 1.0)]),
            ..ScanPolicy::default()
        };
        assert!(matches!(
            p.set_policy(&typo),
            Err(PipelineError::UnknownSymbol(n)) if n == "NEURAL_PHIHS"
        ));
        assert_eq!(
            p.report(&a, &ctx, None, None).0.class,
            Class::Clean,
            "the last good policy stays"
        );
    }

    /// DLP policies and refused file types edited in the console judge the next message, with
    /// no restart: an outgoing message the file's policies let go is held once a policy is
    /// added, and an inbound attachment of a type newly refused takes the virus action.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dlp_policies_and_refused_types_in_force_are_the_edited_ones() {
        let p = pipeline(Fixed(Err("none".into())));
        let outgoing = Envelope {
            direction: Direction::Outbound,
            mail_from: "staff@example.com".into(),
            rcpts: vec!["someone@partner.test".into()],
            ..inbound()
        };
        let secret = b"From: staff@example.com\r\nTo: someone@partner.test\r\n\
            Subject: plans\r\n\r\nThe merger code word is BLUEHERON.\r\n";
        let verdict = |out: Vec<Disposition>| out.into_iter().next().unwrap().verdict;
        assert!(matches!(
            verdict(p.scan(&outgoing, secret).await),
            Verdict::Deliver
        ));
        let mut policy = ScanPolicy {
            dlp: vec![crate::dlp::policy::PolicyConfig {
                name: "项目代号".into(),
                directions: vec![Direction::Outbound],
                senders: vec![],
                recipient_domains: vec![],
                detect: BTreeMap::new(),
                keywords: vec!["blueheron".into()],
                min_keywords: 1,
                patterns: vec![],
                min_patterns: 1,
                extensions: vec![],
                max_attachment_mib: None,
                encrypted: false,
                uninspectable: false,
                action: DlpAction::Hold,
                approval_hours: 24,
            }],
            ..ScanPolicy::default()
        };
        p.set_policy(&policy).unwrap();
        assert!(matches!(
            verdict(p.scan(&outgoing, secret).await),
            Verdict::Hold {
                hours: Some(24),
                ..
            }
        ));

        let program = b"From: a@b.test\r\nTo: u@example.com\r\nSubject: tool\r\n\
            MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
            --b\r\nContent-Type: text/plain\r\n\r\nhere\r\n\
            --b\r\nContent-Type: application/octet-stream\r\n\
            Content-Disposition: attachment; filename=\"disk.iso\"\r\n\r\nimage\r\n--b--\r\n";
        let ctx = Context::default();
        let before = p
            .report(&p.analyse(program, &ctx).await, &ctx, None, None)
            .0;
        assert!(
            !before
                .symbols
                .iter()
                .any(|h| h.name == attach::BLOCKED_TYPE)
        );
        policy.attachments.blocked = vec!["iso".into()];
        p.set_policy(&policy).unwrap();
        let after = p
            .report(&p.analyse(program, &ctx).await, &ctx, None, None)
            .0;
        assert!(after.symbols.iter().any(|h| h.name == attach::BLOCKED_TYPE));
        assert_eq!(after.class, Class::Virus, "{}", after.explanation);
        // Refused types are for inbound mail: the organisation's own outgoing mail is not.
        let out = Context {
            direction: Direction::Outbound,
            ..Context::default()
        };
        let sent = p
            .report(&p.analyse(program, &out).await, &out, None, None)
            .0;
        assert!(!sent.symbols.iter().any(|h| h.name == attach::BLOCKED_TYPE));
    }

    /// A recipient's own lists split their copy off and judge it alone; the other recipients'
    /// verdict does not move, and removing the lists puts the recipient back with the rest.
    #[tokio::test]
    async fn own_lists_judge_only_their_owners_copy() {
        let p = pipeline(Fixed(Ok(Probabilities {
            spam: 0.999,
            phish: 0.0,
        })));
        let mut envelope = inbound();
        envelope.rcpts = vec![
            "u@example.com".into(),
            "v@example.com".into(),
            "w@example.com".into(),
        ];
        let class_of = |out: &[Disposition], rcpt: &str| {
            let d = out
                .iter()
                .find(|d| d.rcpts.iter().any(|r| r == rcpt))
                .unwrap();
            let r = d.report.as_ref().unwrap();
            (
                r.class,
                r.symbols.iter().map(|h| h.name.clone()).collect::<Vec<_>>(),
            )
        };
        let out = p.scan(&envelope, MESSAGE).await;
        assert_eq!(out.len(), 1);
        assert_eq!(class_of(&out, "u@example.com").0, Class::Spam);

        p.set_own_lists(
            "U@Example.com",
            OwnLists::parse(&["a@b.test".into()], &[]).unwrap(),
        );
        p.set_own_lists(
            "v@example.com",
            OwnLists::parse(&[], &["@b.test".into()]).unwrap(),
        );
        let out = p.scan(&envelope, MESSAGE).await;
        assert_eq!(out.len(), 3, "{out:?}");
        let (u, u_hits) = class_of(&out, "u@example.com");
        assert_eq!(u, Class::Clean, "{u_hits:?}");
        assert!(u_hits.iter().any(|h| h == OWN_ALLOW));
        let (v, v_hits) = class_of(&out, "v@example.com");
        assert_eq!(v, Class::Spam);
        assert!(v_hits.iter().any(|h| h == OWN_BLOCK));
        let (w, w_hits) = class_of(&out, "w@example.com");
        assert_eq!(w, Class::Spam);
        assert!(!w_hits.iter().any(|h| h.starts_with("USER_")));

        // A block wins over the organisation's allow list.
        let policy = ScanPolicy {
            allow: vec!["@b.test".into()],
            ..ScanPolicy::default()
        };
        p.set_policy(&policy).unwrap();
        let out = p.scan(&envelope, MESSAGE).await;
        assert_eq!(class_of(&out, "v@example.com").0, Class::Spam);
        assert_eq!(class_of(&out, "w@example.com").0, Class::Clean);

        p.set_own_lists("u@example.com", OwnLists::default());
        p.set_own_lists("v@example.com", OwnLists::default());
        assert_eq!(p.scan(&envelope, MESSAGE).await.len(), 1);
    }

    /// Anyone can write a trusted sender's address: the allow list does not count for mail
    /// that fails sender authentication; the block list does.
    #[test]
    fn an_own_allow_list_does_not_count_for_spoofed_mail() {
        let lists = OwnLists::parse(&["boss@partner.test".into()], &["@spam.test".into()]).unwrap();
        let senders = ["boss@partner.test", "boss@partner.test"];
        assert_eq!(
            lists.judge(None, &senders, false).map(|j| j.0),
            Some(OWN_ALLOW)
        );
        assert_eq!(lists.judge(None, &senders, true), None);
        let spam = ["x@spam.test", ""];
        assert_eq!(lists.judge(None, &spam, true).map(|j| j.0), Some(OWN_BLOCK));
    }

    const MESSAGE: &[u8] =
        b"From: a@b.test\r\nSubject: hello\r\nDate: Mon, 2 Jun 2025 10:00:00 +0800\r\n\
        Message-ID: <x@b.test>\r\n\r\nplain words\r\n";

    async fn judged(spam: f32, phish: f32) -> Report {
        let p = pipeline(Fixed(Ok(Probabilities { spam, phish })));
        let ctx = Context::default();
        let a = p.analyse(MESSAGE, &ctx).await;
        p.report(&a, &ctx, None, None).0
    }

    #[tokio::test]
    async fn model_confidence_weighs_in_the_verdict() {
        let unsure = judged(0.95, 0.0).await;
        assert_eq!(unsure.class, Class::Clean, "{}", unsure.explanation);
        assert!(
            unsure.explanation.contains("NEURAL_SPAM"),
            "{}",
            unsure.explanation
        );
        let sure = judged(0.9995, 0.0).await;
        assert_eq!(sure.class, Class::Spam, "{}", sure.explanation);
        assert!(sure.score > unsure.score);
        let phish = judged(0.0005, 0.9994).await;
        assert_eq!(phish.class, Class::Phish, "{}", phish.explanation);
        let ham = judged(0.0001, 0.0).await;
        assert!(ham.score < 0.0, "{}", ham.explanation);
    }

    #[tokio::test]
    async fn a_failing_model_leaves_rules_only_and_says_so() {
        let p = pipeline(Fixed(Err("model file unreadable".into())));
        let a = p.analyse(MESSAGE, &Context::default()).await;
        let hit = a
            .symbols
            .hits()
            .iter()
            .find(|h| h.name == "NEURAL_UNAVAILABLE");
        assert_eq!(
            hit.map(|h| h.detail.as_str()),
            Some("model file unreadable")
        );
    }
}
