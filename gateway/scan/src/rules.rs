//! The rule set: scores for the built-in checks' symbols, and content rules loaded from TOML
//! files. Every regex is compiled once — all subject and body patterns into one `RegexSet` each,
//! all keywords into one Aho-Corasick automaton — so a message is read a fixed number of times
//! however many rules there are.
//!
//! File format (see `gateway/rules/default.toml`):
//!
//! ```toml
//! [[symbol]]                   # score a built-in symbol
//! name = "SPF_FAIL"
//! score = 3.0
//! category = "spam"            # spam | phish | bec | virus | ham | unscannable
//! description = "SPF fail"
//! description_zh = "SPF 验证失败"  # shown in the console in Chinese (optional)
//!
//! [[rule]]                     # a content rule; every condition given must hold
//! name = "ZH_INVOICE"
//! score = 4.0
//! category = "spam"
//! description = "代开发票"
//! subject = '(?i)发票'          # regex on the decoded Subject
//! body = '代开.{0,6}发票'       # regex on the visible text
//! keywords = ["代开发票"]       # any of these (case-insensitive) in Subject or text …
//! min_keywords = 1             # … at least this many distinct ones
//! header = { name = "x-mailer", regex = "(?i)bulk" }
//! url = '(?i)\.(top|xyz)/'     # regex on any link target
//! attachment = '(?i)\.iso$'    # regex on any attachment name
//! all_symbols = ["A", "B"]     # meta: all present (symbols found so far)
//! any_symbols = ["C"]          # meta: at least one present
//! none_symbols = ["D"]         # meta: none present
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexSet, RegexSetBuilder};
use serde::Deserialize;

use super::Symbols;
use super::message::Message;

/// The built-in default rules, always available (also to `jianmen scan` without a config).
pub const DEFAULT_RULES: &str = include_str!("../../rules/default.toml");

/// Largest compiled size of one regex (bounds memory and compile time of hostile rule files).
const REGEX_SIZE_LIMIT: usize = 4 * 1024 * 1024;

/// What a symbol is evidence of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Unsolicited bulk mail.
    Spam,
    /// Credential theft or malicious links.
    Phish,
    /// Business email compromise (impersonation for payment fraud).
    Bec,
    /// Malware.
    Virus,
    /// Evidence of legitimate mail (negative scores).
    Ham,
    /// Parts of the message the scanner could not inspect (archive limits, the scan budget):
    /// what they might hide is unknown, so their presence alone decides the class.
    Unscannable,
}

/// Why a rule file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The file could not be read. The cause is part of the message, not a `source`: chained
    /// error reports would print it twice.
    #[error("cannot read rule file {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// The file is not valid rule TOML.
    #[error("rule file {origin}: {message}")]
    Parse {
        /// The file (or `<built-in>`).
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A rule is wrong.
    #[error("rule file {origin}: rule {rule}: {message}")]
    Rule {
        /// The file (or `<built-in>`).
        origin: String,
        /// The rule's name.
        rule: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    symbol: Vec<SymbolSpec>,
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SymbolSpec {
    name: String,
    score: f64,
    category: Category,
    #[serde(default)]
    description: String,
    #[serde(default)]
    description_zh: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderSpec {
    name: String,
    regex: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    score: f64,
    category: Category,
    #[serde(default)]
    description: String,
    #[serde(default)]
    description_zh: String,
    subject: Option<String>,
    body: Option<String>,
    #[serde(default)]
    keywords: Vec<String>,
    min_keywords: Option<usize>,
    header: Option<HeaderSpec>,
    url: Option<String>,
    attachment: Option<String>,
    #[serde(default)]
    all_symbols: Vec<String>,
    #[serde(default)]
    any_symbols: Vec<String>,
    #[serde(default)]
    none_symbols: Vec<String>,
}

/// Score and meaning of one symbol.
#[derive(Debug, Clone)]
pub struct SymbolInfo {
    /// Points added to the message's score (negative for evidence of ham).
    pub score: f64,
    /// What the symbol is evidence of.
    pub category: Category,
    /// Human-readable meaning.
    pub description: String,
    /// The meaning in Chinese, for the console (empty: none given).
    pub description_zh: String,
}

struct Rule {
    name: String,
    subject: Option<usize>,
    body: Option<usize>,
    keywords: Option<(Vec<usize>, usize)>,
    header: Option<(String, Regex)>,
    url: Option<Regex>,
    attachment: Option<Regex>,
    all_symbols: Vec<String>,
    any_symbols: Vec<String>,
    none_symbols: Vec<String>,
}

impl Rule {
    fn is_meta(&self) -> bool {
        !self.all_symbols.is_empty()
            || !self.any_symbols.is_empty()
            || !self.none_symbols.is_empty()
    }
}

/// A compiled rule set.
pub struct RuleSet {
    info: HashMap<String, SymbolInfo>,
    rules: Vec<Rule>,
    subjects: RegexSet,
    bodies: RegexSet,
    keywords: AhoCorasick,
    /// Keyword pattern index → (rule index, keyword number within the rule).
    keyword_owner: Vec<(usize, usize)>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("symbols", &self.info.len())
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl RuleSet {
    /// The built-in rules (the `shipped` file of an upgrade release in their place when there
    /// is one) plus every `*.toml` file in `paths` (files or directories), in order; a later
    /// definition of a name replaces an earlier one.
    pub fn load(
        builtin: bool,
        shipped: Option<&Path>,
        paths: &[PathBuf],
    ) -> Result<Self, RuleError> {
        let mut sources = Vec::new();
        match (builtin, shipped) {
            (false, _) => {}
            (true, Some(file)) => {
                let text = std::fs::read_to_string(file).map_err(|cause| RuleError::Read {
                    path: file.to_path_buf(),
                    cause,
                })?;
                sources.push((file.display().to_string(), text));
            }
            (true, None) => sources.push(("<built-in>".to_owned(), DEFAULT_RULES.to_owned())),
        }
        for path in paths {
            for file in rule_files(path)? {
                let text = std::fs::read_to_string(&file).map_err(|cause| RuleError::Read {
                    path: file.clone(),
                    cause,
                })?;
                sources.push((file.display().to_string(), text));
            }
        }
        Self::from_sources(&sources)
    }

    /// Compiles rule texts given as (origin, TOML).
    pub fn from_sources(sources: &[(String, String)]) -> Result<Self, RuleError> {
        let mut symbols: Vec<SymbolSpec> = Vec::new();
        let mut specs: Vec<(String, RuleSpec)> = Vec::new();
        for (origin, text) in sources {
            let file: RuleFile = toml::from_str(text).map_err(|e| RuleError::Parse {
                origin: origin.clone(),
                message: e.to_string(),
            })?;
            for s in file.symbol {
                symbols.retain(|x| x.name != s.name);
                symbols.push(s);
            }
            for r in file.rule {
                specs.retain(|(_, x)| x.name != r.name);
                specs.push((origin.clone(), r));
            }
        }
        let mut info: HashMap<String, SymbolInfo> = symbols
            .into_iter()
            .map(|s| {
                (
                    s.name,
                    SymbolInfo {
                        score: s.score,
                        category: s.category,
                        description: s.description,
                        description_zh: s.description_zh,
                    },
                )
            })
            .collect();
        let mut rules = Vec::new();
        let mut subject_patterns = Vec::new();
        let mut body_patterns = Vec::new();
        let mut keyword_patterns = Vec::new();
        let mut keyword_owner = Vec::new();
        for (origin, spec) in specs {
            let fail = |message: String| RuleError::Rule {
                origin: origin.clone(),
                rule: spec.name.clone(),
                message,
            };
            let compile = |p: &str| {
                regex::RegexBuilder::new(&ascii_word_boundaries(p))
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| fail(e.to_string()))
            };
            if spec.name.is_empty()
                || !spec
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(fail("name must be ASCII letters, digits and _".into()));
            }
            if let Some(p) = &spec.subject {
                compile(p)?;
            }
            if let Some(p) = &spec.body {
                compile(p)?;
            }
            let index = rules.len();
            let keywords = if spec.keywords.is_empty() {
                None
            } else {
                let mut ids = Vec::new();
                for (k, word) in spec.keywords.iter().enumerate() {
                    if word.trim().is_empty() {
                        return Err(fail("empty keyword".into()));
                    }
                    ids.push(keyword_patterns.len());
                    keyword_patterns.push(word.to_lowercase());
                    keyword_owner.push((index, k));
                }
                let need = spec.min_keywords.unwrap_or(1).clamp(1, ids.len());
                Some((ids, need))
            };
            let rule = Rule {
                name: spec.name.clone(),
                subject: spec.subject.as_ref().map(|p| {
                    subject_patterns.push(p.clone());
                    subject_patterns.len() - 1
                }),
                body: spec.body.as_ref().map(|p| {
                    body_patterns.push(p.clone());
                    body_patterns.len() - 1
                }),
                keywords,
                header: match &spec.header {
                    Some(h) => Some((h.name.to_ascii_lowercase(), compile(&h.regex)?)),
                    None => None,
                },
                url: spec.url.as_deref().map(compile).transpose()?,
                attachment: spec.attachment.as_deref().map(compile).transpose()?,
                all_symbols: spec.all_symbols.clone(),
                any_symbols: spec.any_symbols.clone(),
                none_symbols: spec.none_symbols.clone(),
            };
            let has_condition = rule.subject.is_some()
                || rule.body.is_some()
                || rule.keywords.is_some()
                || rule.header.is_some()
                || rule.url.is_some()
                || rule.attachment.is_some()
                || rule.is_meta();
            if !has_condition {
                return Err(fail("has no condition".into()));
            }
            info.insert(
                spec.name.clone(),
                SymbolInfo {
                    score: spec.score,
                    category: spec.category,
                    description: spec.description.clone(),
                    description_zh: spec.description_zh.clone(),
                },
            );
            rules.push(rule);
        }
        let set = |patterns: &[String]| {
            RegexSetBuilder::new(patterns.iter().map(|p| ascii_word_boundaries(p)))
                .size_limit(REGEX_SIZE_LIMIT * 4)
                .build()
                .map_err(|e| RuleError::Parse {
                    origin: "<rule set>".into(),
                    message: e.to_string(),
                })
        };
        let keywords = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .build(&keyword_patterns)
            .map_err(|e| RuleError::Parse {
                origin: "<rule set>".into(),
                message: e.to_string(),
            })?;
        Ok(Self {
            info,
            rules,
            subjects: set(&subject_patterns)?,
            bodies: set(&body_patterns)?,
            keywords,
            keyword_owner,
        })
    }

    /// Every symbol with its score and meaning, in no order.
    pub fn symbols(&self) -> impl Iterator<Item = (&str, &SymbolInfo)> {
        self.info.iter().map(|(name, info)| (name.as_str(), info))
    }

    /// Score and meaning of `symbol`; unknown symbols score 0.
    pub fn info(&self, symbol: &str) -> Option<&SymbolInfo> {
        self.info.get(symbol)
    }

    /// Gives `symbol` a score unless a rule file already did (symbols named in configuration,
    /// such as block list zones).
    pub fn define_if_missing(&mut self, symbol: &str, score: f64, uri: bool) {
        self.info
            .entry(symbol.to_owned())
            .or_insert_with(|| SymbolInfo {
                score,
                category: if uri { Category::Phish } else { Category::Spam },
                description: if uri {
                    "link domain on a URI block list".into()
                } else {
                    "client address on a DNS block list".into()
                },
                description_zh: if uri {
                    "链接域名在 URI 黑名单中".into()
                } else {
                    "发件 IP 在 DNS 黑名单中".into()
                },
            });
    }

    /// Number of content rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no content rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Evaluates content rules against `message`; meta rules last, in file order, so they see
    /// every symbol found before them.
    pub fn evaluate(&self, message: &Message, symbols: &mut Symbols) {
        let subject_hits = self.subjects.matches(&message.subject);
        let body_hits = self.bodies.matches(&message.text);
        let mut keyword_found: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut first_keyword: HashMap<usize, String> = HashMap::new();
        if !self.keyword_owner.is_empty() {
            for hay in [message.subject.to_lowercase(), message.text.to_lowercase()] {
                for m in self.keywords.find_overlapping_iter(&hay) {
                    let (rule, k) = self.keyword_owner[m.pattern().as_usize()];
                    let found = keyword_found.entry(rule).or_default();
                    if !found.contains(&k) {
                        found.push(k);
                    }
                    first_keyword
                        .entry(rule)
                        .or_insert_with(|| hay[m.start()..m.end()].to_owned());
                }
            }
        }
        let content = self.rules.iter().enumerate().filter(|(_, r)| !r.is_meta());
        let meta = self.rules.iter().enumerate().filter(|(_, r)| r.is_meta());
        for (index, rule) in content.chain(meta) {
            let mut detail = String::new();
            if let Some(i) = rule.subject {
                if !subject_hits.matched(i) {
                    continue;
                }
                detail = truncate(&message.subject, 60);
            }
            if let Some(i) = rule.body
                && !body_hits.matched(i)
            {
                continue;
            }
            if let Some((_, need)) = &rule.keywords {
                let have = keyword_found.get(&index).map_or(0, Vec::len);
                if have < *need {
                    continue;
                }
                if let Some(k) = first_keyword.get(&index) {
                    detail = k.clone();
                }
            }
            if let Some((name, re)) = &rule.header {
                match message.header_all(name).find(|v| re.is_match(v)) {
                    Some(v) => detail = format!("{name}: {}", truncate(v, 60)),
                    None => continue,
                }
            }
            if let Some(re) = &rule.url {
                match message.links.iter().find(|l| re.is_match(&l.href)) {
                    Some(l) => detail = truncate(&l.href, 80),
                    None => continue,
                }
            }
            if let Some(re) = &rule.attachment {
                match message.attachments.iter().find(|a| re.is_match(&a.name)) {
                    Some(a) => detail = a.name.clone(),
                    None => continue,
                }
            }
            if !rule.all_symbols.iter().all(|s| symbols.has(s))
                || (!rule.any_symbols.is_empty()
                    && !rule.any_symbols.iter().any(|s| symbols.has(s)))
                || rule.none_symbols.iter().any(|s| symbols.has(s))
            {
                continue;
            }
            symbols.add(&rule.name, detail);
        }
    }
}

/// Rewrites `\b` and `\B` as ASCII word boundaries. Unicode word boundaries force the slow
/// NFA on any non-ASCII text (every Chinese message); Chinese has no word boundaries anyway,
/// and an ASCII boundary still separates `viagra` from the Chinese text around it.
fn ascii_word_boundaries(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(b @ ('b' | 'B')) => {
                    out.push_str("(?-u:\\");
                    out.push(b);
                    out.push(')');
                }
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        s.chars().take(max).collect::<String>() + "…"
    }
}

fn rule_files(path: &Path) -> Result<Vec<PathBuf>, RuleError> {
    let read_err = |cause| RuleError::Read {
        path: path.to_owned(),
        cause,
    };
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        Ok(files)
    } else {
        Ok(vec![path.to_owned()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 10 of the hardening review: a missing rule file printed the OS error twice
    /// (once in the message, once as its source in a chained report).
    #[test]
    fn a_missing_rule_file_says_why_once() {
        let missing = PathBuf::from("/nonexistent/jianmen-rules.toml");
        let e = RuleSet::load(false, None, &[missing]).unwrap_err();
        let mut report = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            report.push_str(&format!(": {c}"));
            cause = c.source();
        }
        assert!(
            report.contains("/nonexistent/jianmen-rules.toml"),
            "{report}"
        );
        assert_eq!(report.matches("No such file").count(), 1, "{report}");
    }

    /// The console lists every symbol with its meaning; in zh-CN, each built-in one has its
    /// own Chinese words rather than the English.
    #[test]
    fn every_builtin_symbol_has_a_chinese_meaning() {
        let set = RuleSet::load(true, None, &[]).unwrap();
        let untold: Vec<&str> = set
            .symbols()
            .filter(|(_, i)| {
                i.description.is_empty()
                    || !i
                        .description_zh
                        .chars()
                        .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
            })
            .map(|(name, _)| name)
            .collect();
        assert!(untold.is_empty(), "no Chinese meaning: {untold:?}");
    }

    #[test]
    fn builtin_rules_compile() {
        let set = RuleSet::load(true, None, &[]).unwrap();
        assert!(set.len() >= 30, "only {} rules", set.len());
        assert!(set.info("ATTACH_EXECUTABLE").is_some());
    }

    #[test]
    fn conditions_combine_and_meta_rules_see_earlier_symbols() {
        let text = r#"
[[rule]]
name = "KW"
score = 2.0
category = "spam"
keywords = ["发票", "代开", "invoice"]
min_keywords = 2

[[rule]]
name = "SUBJ"
score = 1.0
category = "spam"
subject = "(?i)^re:"
body = "wire"

[[rule]]
name = "META"
score = 3.0
category = "bec"
all_symbols = ["KW"]
none_symbols = ["SUBJ"]
"#;
        let set = RuleSet::from_sources(&[("t".into(), text.into())]).unwrap();
        let mut m = Message::parse("Subject: hello\r\n\r\n本公司代开各类发票\r\n".as_bytes());
        let mut s = Symbols::default();
        set.evaluate(&m, &mut s);
        assert!(s.has("KW") && s.has("META") && !s.has("SUBJ"));
        m.subject = "RE: payment".into();
        m.text = "please wire funds".into();
        let mut s = Symbols::default();
        set.evaluate(&m, &mut s);
        assert!(s.has("SUBJ") && !s.has("KW") && !s.has("META"));
    }

    #[test]
    fn word_boundaries_become_ascii() {
        assert_eq!(
            ascii_word_boundaries(r"\bviagra\b"),
            r"(?-u:\b)viagra(?-u:\b)"
        );
        assert_eq!(ascii_word_boundaries(r"a\\b\d"), r"a\\b\d");
        let set = RuleSet::from_sources(&[(
            "t".into(),
            "[[rule]]\nname = \"V\"\nscore = 1.0\ncategory = \"spam\"\nbody = '\\bviagra\\b'\n"
                .into(),
        )])
        .unwrap();
        let m = Message::parse("Subject: x\r\n\r\n便宜viagra出售\r\n".as_bytes());
        let mut s = Symbols::default();
        set.evaluate(&m, &mut s);
        assert!(s.has("V"));
    }

    #[test]
    fn qq_contact_needs_a_qq_number_not_any_qq_in_a_token() {
        let set = RuleSet::load(true, None, &[]).unwrap();
        let fires = |body: &str| {
            let m = Message::parse(format!("Subject: x\r\n\r\n{body}\r\n").as_bytes());
            let mut s = Symbols::default();
            set.evaluate(&m, &mut s);
            s.has("ZH_QQ_CONTACT")
        };
        assert!(fires("详情请加QQ：123456789咨询"));
        assert!(fires("contact qq 88776655 now"));
        assert!(fires("加微信号: abc_12345"));
        assert!(!fires(
            "iQEVAwUBPW5AmaHbXyzZsAb3AQH+qQgA1vnUjJUwGDa1yCRQd3vZAnhkCF0KDBBA"
        ));
        assert!(!fires(
            "<20020206162848.QQN1068.fep02-app> and qq47xuMxSTIrC"
        ));
        assert!(!fires("QQ 0123 is not a number"));
    }

    #[test]
    fn bad_rules_are_refused_with_their_name() {
        let bad = "[[rule]]\nname = \"X\"\nscore = 1.0\ncategory = \"spam\"\nbody = \"(\"\n";
        let e = RuleSet::from_sources(&[("f.toml".into(), bad.into())]).unwrap_err();
        assert!(e.to_string().contains("rule X"), "{e}");
        let none = "[[rule]]\nname = \"Y\"\nscore = 1.0\ncategory = \"spam\"\n";
        assert!(RuleSet::from_sources(&[("f".into(), none.into())]).is_err());
        let typo = "[[rule]]\nname = \"Z\"\nscore = 1.0\ncategory = \"spam\"\nbdy = \"x\"\n";
        assert!(RuleSet::from_sources(&[("f".into(), typo.into())]).is_err());
    }
}
