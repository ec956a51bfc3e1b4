//! The second content view: online logistic regression over hashed byte 4-grams of what a
//! reader sees, plus the message's shape (which standard header fields it has and in what
//! order, its MIME type, charset, transfer encoding, mailer family, structural anomalies).
//!
//! It exists because it does not share the word model's blind spots: 4-grams see through
//! spacing, misspelling and mixed scripts that defeat a tokenizer, and they need no language
//! (TREC 2007's best filters used exactly this view). And it can learn one message at a time, so
//! a site's corrections change the next verdict within seconds instead of waiting for a retrain.
//!
//! Like the word model's features it reads nothing public corpora mark as artefacts: no e-mail
//! address (masked in the text), no recipient header, `Received`, `Message-ID`, date or sender
//! domain. Memory is fixed: `2^bits` weights, whatever it learns.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use super::Symbols;
use super::feedback::{FeedbackStore, Label, MAX_MESSAGE_BYTES};
use super::message::Message;
use super::model::strength_above;

mod reference;
use reference::Gate;
pub use reference::{BUILTIN_REFERENCE, Reference};

/// The model trained on the development split of the public corpora (`jianmen train-ngram`).
pub const BUILTIN_MODEL: &[u8] = include_bytes!("../../model/ngram.bin");
/// Feedback messages learned per call of [`SiteModel::learn_feedback`]: a large backlog is
/// worked off over several rounds instead of holding the model for minutes.
const FEEDBACK_PER_ROUND: usize = 200;

/// Bytes of subject, display name and visible text read for 4-grams: the start of a message
/// carries its character, and the work per message stays bounded.
const MAX_TEXT_BYTES: usize = 2000;
/// Of those, at most this many from the Subject.
const MAX_SUBJECT_BYTES: usize = 300;
/// And at most this many from the display name.
const MAX_NAME_BYTES: usize = 100;
/// Bits of the shipped model's hashed feature space.
pub const DEFAULT_BITS: u8 = 18;
/// Smallest and largest feature space a model file may declare (16 KiB to 32 MiB of weights).
pub const BITS_RANGE: std::ops::RangeInclusive<u8> = 12..=MAX_BITS;
const MAX_BITS: u8 = 23;
/// Bytes of the largest model, as written.
const MAX_MODEL_BYTES: u64 = (4 << MAX_BITS) + 64;
/// Log-odds beyond which a weight update stops: a message the model is already sure of and
/// right about teaches it nothing more (train on or near error), which keeps it from
/// over-fitting to the easy bulk.
const MARGIN: f32 = 6.0;
/// Learning rate: the step taken per feature for one message of a training corpus.
pub const DEFAULT_RATE: f32 = 0.005;
/// Learning rate for a site's corrections: four times the corpus's, as corrections are few and
/// each one deliberate; the margin still stops a message the model already gets right.
const FEEDBACK_RATE: f32 = 0.02;
/// Log-odds below which the model's opinion earns no points (probability 0.95): a 4-gram
/// model leaning one way on a short message is not evidence, and adding such leanings to the
/// word model's was what raised false positives on the validation fold.
const CONFIDENT_LOG_ODDS: f64 = 2.944_438_979_166_440_5; // ln(19)
/// Largest weight magnitude: one feature never decides a verdict alone, and a burst of wrong
/// feedback cannot drive a weight without bound.
const MAX_WEIGHT: f32 = 4.0;

/// Standard header fields whose presence and order describe how a message was written. Fields
/// that trace delivery or name people (Received, To, Message-ID, Date, …) are left out: public
/// corpora mark those.
const SHAPE_FIELDS: [&str; 22] = [
    "from",
    "subject",
    "reply-to",
    "sender",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "x-mailer",
    "user-agent",
    "x-priority",
    "x-msmail-priority",
    "importance",
    "list-unsubscribe",
    "list-id",
    "precedence",
    "organization",
    "in-reply-to",
    "references",
    "thread-index",
    "disposition-notification-to",
    "x-mimeole",
    "content-language",
];

/// Hashed features of one message: sorted, distinct indices in `0..2^bits`.
pub fn features(message: &Message, bits: u8) -> Vec<u32> {
    let mut out = Vec::with_capacity(MAX_TEXT_BYTES + 64);
    let text = visible_start(message);
    let bytes = text.as_bytes();
    for window in bytes.windows(4) {
        let gram = u32::from_le_bytes([window[0], window[1], window[2], window[3]]);
        out.push(index(u64::from(gram), bits));
    }
    let mut shape = |kind: &str, value: &str| out.push(index(string_hash(kind, value), bits));
    let mut previous = "^";
    for (name, _) in &message.headers {
        if let Some(field) = SHAPE_FIELDS.iter().find(|f| **f == name) {
            shape("h", field);
            shape("hh", &format!("{previous}>{field}"));
            previous = field;
        }
    }
    let ct = message
        .header("content-type")
        .unwrap_or("-")
        .to_ascii_lowercase();
    let mut params = ct.split(';');
    shape("ct", params.next().unwrap_or_default().trim());
    for param in params {
        if let Some(charset) = param.trim().strip_prefix("charset=") {
            shape("cs", charset.trim_matches(['"', '\'', ' ']));
        }
    }
    let cte = message
        .header("content-transfer-encoding")
        .unwrap_or("-")
        .trim()
        .to_ascii_lowercase();
    shape("cte", &cte);
    let mailer = message
        .header("x-mailer")
        .or_else(|| message.header("user-agent"))
        .unwrap_or("-");
    let family: String = mailer
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .take(20)
        .collect::<String>()
        .to_ascii_lowercase();
    shape("mailer", &family);
    // HEADER_8BIT and HEADERS_TOO_MANY look at every header field, Received and To included,
    // which public corpora mark.
    for anomaly in message
        .anomalies
        .iter()
        .filter(|a| !matches!(**a, "HEADER_8BIT" | "HEADERS_TOO_MANY"))
    {
        shape("anomaly", anomaly);
    }
    shape("html", if message.has_html { "y" } else { "n" });
    shape("plain", if message.has_plain { "y" } else { "n" });
    for link in message.links.iter().take(50) {
        if let Some((host, _)) = super::phish::host_of(&link.href) {
            if host.parse::<std::net::IpAddr>().is_ok() {
                shape("link", "<ip>");
            } else {
                shape("link", &super::domain::registrable(&host));
            }
        }
    }
    for a in message.attachments.iter().take(20) {
        shape(
            "attach",
            &format!("{:?}", super::attach::FileType::detect(&a.data)),
        );
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Subject, display name and visible text as one string of at most [`MAX_TEXT_BYTES`], with
/// e-mail addresses and URLs masked (public corpora rewrote addresses; links are judged by host
/// above) and runs of white space made one space. Subject and display name have budgets of
/// their own, so a long one cannot hide the text; a word longer than what is left is cut at a
/// character boundary (Chinese runs without spaces are one "word").
fn visible_start(message: &Message) -> String {
    let mut out = String::with_capacity(MAX_TEXT_BYTES + 8);
    for (part, budget) in [
        (message.subject.as_str(), MAX_SUBJECT_BYTES),
        (message.from_name.as_str(), MAX_NAME_BYTES),
        (message.text.as_str(), MAX_TEXT_BYTES),
    ] {
        let end = (out.len() + budget).min(MAX_TEXT_BYTES);
        for word in part.split_whitespace() {
            let word = if word.contains('@') {
                "<@>"
            } else if word.contains("://") || word.starts_with("www.") {
                "<url>"
            } else {
                word
            };
            let room = end.saturating_sub(out.len() + 1);
            let mut cut = word.len().min(room);
            while !word.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut == 0 {
                break;
            }
            out.push(' ');
            out.push_str(&word[..cut]);
        }
        out.push('\n');
    }
    out
}

fn string_hash(kind: &str, value: &str) -> u64 {
    // Then the same mixing as the 4-grams.
    super::fnv::fnv1a(kind.bytes().chain([0]).chain(value.bytes())) | (1 << 40)
}

fn index(key: u64, bits: u8) -> u32 {
    (key.wrapping_add(0x9e37_79b9)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        >> (64 - u32::from(bits))) as u32
}

/// Why a model file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// Not a file this module wrote, or one from a newer release.
    #[error("not a Jianmen 4-gram model (version 1)")]
    Format,
    /// The file declares a feature space outside the bounds.
    #[error("feature space of 2^{0} out of bounds")]
    Size(u8),
    /// The file ends early or cannot be read.
    #[error("4-gram model: {0}")]
    Io(#[from] std::io::Error),
}

const MAGIC: &[u8; 8] = b"JMNGRAM1";

/// The model: one weight per hashed feature and a bias.
#[derive(Clone, PartialEq)]
pub struct Model {
    bits: u8,
    bias: f32,
    weights: Vec<f32>,
    learned: u64,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ngram::Model(2^{} weights, {} messages learned)",
            self.bits, self.learned
        )
    }
}

impl Model {
    /// A model that knows nothing (every message scores 0.5), over `2^bits` weights.
    pub fn empty(bits: u8) -> Model {
        let bits = bits.clamp(*BITS_RANGE.start(), *BITS_RANGE.end());
        Model {
            bits,
            bias: 0.0,
            weights: vec![0.0; 1 << bits],
            learned: 0,
        }
    }

    /// Bits of its feature space, for [`features`].
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// How many messages it has learned from.
    pub fn learned(&self) -> u64 {
        self.learned
    }

    /// Log-odds that the message with `features` is spam or phishing.
    pub fn log_odds(&self, features: &[u32]) -> f32 {
        let sum: f32 = features
            .iter()
            .filter_map(|i| self.weights.get(*i as usize))
            .sum();
        self.bias + sum
    }

    /// Probability that the message with `features` is spam or phishing.
    pub fn probability(&self, features: &[u32]) -> f32 {
        1.0 / (1.0 + (-self.log_odds(features)).exp())
    }

    /// Learns that the message with `features` is spam or phishing (`bad`) or legitimate, unless
    /// it already scores beyond the margin on the right side. Returns whether it changed.
    pub fn learn(&mut self, features: &[u32], bad: bool, rate: f32) -> bool {
        let z = self.log_odds(features);
        let target = if bad { 1.0 } else { 0.0 };
        if (bad && z > MARGIN) || (!bad && z < -MARGIN) {
            return false;
        }
        let step = rate * (target - 1.0 / (1.0 + (-z).exp()));
        for i in features {
            if let Some(w) = self.weights.get_mut(*i as usize) {
                *w = (*w + step).clamp(-MAX_WEIGHT, MAX_WEIGHT);
            }
        }
        self.bias = (self.bias + step * 0.1).clamp(-MAX_WEIGHT, MAX_WEIGHT);
        self.learned += 1;
        true
    }

    /// The model as bytes: the weights as they are (a site's small steps must survive a
    /// restart), deflated.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelFileError> {
        let mut plain = Vec::with_capacity(4 * self.weights.len() + 32);
        self.encode(&mut plain);
        Ok(deflate(&plain)?)
    }

    /// Reads what [`Model::to_bytes`] wrote; anything else is refused, and no more than the
    /// largest feature space is ever inflated.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, ModelFileError> {
        let plain = inflate(bytes, MAX_MODEL_BYTES)?;
        match Model::decode(&plain)? {
            (model, []) => Ok(model),
            _ => Err(ModelFileError::Format),
        }
    }

    fn encode(&self, plain: &mut Vec<u8>) {
        plain.extend_from_slice(MAGIC);
        plain.push(self.bits);
        plain.extend_from_slice(&self.bias.to_le_bytes());
        plain.extend_from_slice(&self.learned.to_le_bytes());
        for w in &self.weights {
            plain.extend_from_slice(&w.to_le_bytes());
        }
    }

    /// The model at the start of `plain`, and what follows it.
    fn decode(plain: &[u8]) -> Result<(Model, &[u8]), ModelFileError> {
        let (head, rest) = take(plain, MAGIC.len() + 1 + 4 + 8)?;
        if &head[..MAGIC.len()] != MAGIC {
            return Err(ModelFileError::Format);
        }
        let bits = head[MAGIC.len()];
        if !BITS_RANGE.contains(&bits) {
            return Err(ModelFileError::Size(bits));
        }
        let at = MAGIC.len() + 1;
        let bias = f32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        let mut learned = [0; 8];
        learned.copy_from_slice(&head[at + 4..at + 12]);
        let (weights, rest) = take(rest, 4 << bits)?;
        if !bias.is_finite() {
            return Err(ModelFileError::Format);
        }
        let model = Model {
            bits,
            bias: bias.clamp(-MAX_WEIGHT, MAX_WEIGHT),
            weights: weights
                .chunks_exact(4)
                .map(|w| {
                    let w = f32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                    if w.is_finite() {
                        w.clamp(-MAX_WEIGHT, MAX_WEIGHT)
                    } else {
                        0.0
                    }
                })
                .collect(),
            learned: u64::from_le_bytes(learned),
        };
        Ok((model, rest))
    }
}

/// The first `n` bytes of `bytes` and the rest, or a format error when there are fewer.
fn take(bytes: &[u8], n: usize) -> Result<(&[u8], &[u8]), ModelFileError> {
    if bytes.len() < n {
        return Err(ModelFileError::Format);
    }
    Ok(bytes.split_at(n))
}

fn deflate(plain: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    let mut out = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    out.write_all(plain)?;
    out.finish()
}

/// Inflates `bytes`, refusing more than `limit` bytes of output (a small file must not become
/// gigabytes in memory).
fn inflate(bytes: &[u8], limit: u64) -> Result<Vec<u8>, ModelFileError> {
    let mut plain = Vec::new();
    flate2::read::ZlibDecoder::new(bytes)
        .take(limit + 1)
        .read_to_end(&mut plain)?;
    if plain.len() as u64 > limit {
        return Err(ModelFileError::Format);
    }
    Ok(plain)
}

/// Adds the model's symbols for probability `p`: `NGRAM_SPAM` (spam or phishing) or `NGRAM_HAM`,
/// weighted by [`strength_above`] its confidence floor.
pub fn add_symbols(p: f32, symbols: &mut Symbols) {
    let detail = format!("{p:.4}");
    for (name, weight) in [
        ("NGRAM_SPAM", strength_above(p, CONFIDENT_LOG_ODDS)),
        ("NGRAM_HAM", strength_above(1.0 - p, CONFIDENT_LOG_ODDS)),
    ] {
        if weight >= 0.01 {
            symbols.add_weighted(name, weight, detail.clone());
        }
    }
}

/// The gateway's 4-gram model: the built-in one, then what this site taught it. It learns each
/// correction the feedback store receives (console releases as "not spam", `jianmen feedback`,
/// users' reports) within seconds, and keeps the weights with a ledger of what it learned in one
/// file, `data_dir/model/ngram.bin`, replaced whole: a crash or a full disk leaves the previous
/// pair, never a model without its ledger. The file names the built-in model it grew from; when
/// an upgrade ships another, the site starts again from the new one and learns its whole
/// feedback store again (the store, not the file, is what the site said).
pub struct SiteModel {
    bits: u8,
    model: RwLock<Model>,
    /// Where the site file is kept; `None`: it learns nothing.
    home: Option<PathBuf>,
    /// What a correction must pass to be learned; `None`: every one is.
    gate: Option<Gate>,
    learning: Mutex<Learning>,
}

/// What one round of [`SiteModel::learn_feedback`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Round {
    /// Corrections learned this round.
    pub learned: usize,
    /// Corrections the gate refused this round (see [`Reference`]).
    pub refused: usize,
    /// Corrections the ledger holds now, learned or refused.
    pub known: usize,
}

/// What became of one feedback message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lesson {
    /// Taught as spam or phishing.
    bad: bool,
    /// The gate refused it: not learned, and not tried again unless it is relabelled.
    refused: bool,
}

/// What the learner knows of the feedback store.
#[derive(Default)]
struct Learning {
    /// Feedback taught: file name → what became of it.
    ledger: BTreeMap<String, Lesson>,
    /// Files that could not be read, with the label they had; tried again when it changes.
    failed: BTreeMap<String, bool>,
    /// The store's directories' times when everything in it was last learned.
    seen: Option<Vec<Option<SystemTime>>>,
    /// When the store was last listed whatever its times said (coarse clocks miss changes).
    listed: Option<Instant>,
    /// Learned or pruned since the file was last written.
    dirty: bool,
    /// The ledger was found full (said once in the log).
    full: bool,
}

const SITE_MAGIC: &[u8; 8] = b"JMNGSITE";
/// Most feedback messages one site file remembers; beyond it, new corrections are not learned
/// (and the log says so) rather than the file growing without bound.
const MAX_LEDGER: usize = 200_000;
/// Bytes of feedback read per round, with [`FEEDBACK_PER_ROUND`] messages.
const MAX_BYTES_PER_ROUND: usize = 64 * 1024 * 1024;
/// Largest site file read: the largest model and a full ledger.
const MAX_SITE_FILE: u64 = MAX_MODEL_BYTES + 300 * MAX_LEDGER as u64;
/// The features' layout: a model trained on another cannot be read as this one.
const FEATURE_VERSION: u8 = 1;

impl std::fmt::Debug for SiteModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SiteModel")
    }
}

impl SiteModel {
    /// The model a `scan.ngram` setting names: `auto` (the built-in model and what this site
    /// taught it, kept under `data_dir/model/`), `builtin` (the built-in model, learning
    /// nothing) or `none`.
    pub fn load(setting: &str, data_dir: Option<&Path>) -> Result<Option<SiteModel>, String> {
        let builtin = || Model::from_bytes(BUILTIN_MODEL).map_err(|e| format!("built-in {e}"));
        let reference = || {
            Reference::from_bytes(BUILTIN_REFERENCE).map_err(|e| format!("built-in reference: {e}"))
        };
        match setting {
            "none" => Ok(None),
            "builtin" => Ok(Some(SiteModel::new(builtin()?, None))),
            "auto" => {
                let Some(home) = data_dir.map(|d| d.join("model")) else {
                    return Ok(Some(SiteModel::new(builtin()?, None)));
                };
                let file = home.join("ngram.bin");
                // A learned file that cannot be used never stops the gateway: it starts again
                // from the built-in model, and the store is learned again.
                let kept = match read_regular(&file, MAX_SITE_FILE)
                    .map_err(ModelFileError::from)
                    .and_then(|bytes| bytes.map(|b| decode_site(&b)).transpose())
                {
                    Ok(kept) => kept.flatten(),
                    Err(e) => {
                        tracing::error!(file = %file.display(), error = %e,
                            "learned 4-gram model unreadable; learning the feedback again from the built-in model");
                        None
                    }
                };
                // The gate holds the site to the built-in model's errors, whatever it learned.
                let base = builtin()?;
                let (model, ledger) = match kept {
                    Some(kept) => kept,
                    None => (base.clone(), BTreeMap::new()),
                };
                let site = SiteModel::new(model, Some(home)).with_gate(reference()?, &base)?;
                if let Ok(mut l) = site.learning.lock() {
                    l.ledger = ledger;
                }
                Ok(Some(site))
            }
            other => Err(format!(
                "scan.ngram = {other:?}: expected \"auto\", \"builtin\" or \"none\""
            )),
        }
    }

    /// A site model over `model`, keeping what it learns under `home`.
    pub fn new(model: Model, home: Option<PathBuf>) -> SiteModel {
        SiteModel {
            bits: model.bits(),
            model: RwLock::new(model),
            home,
            gate: None,
            learning: Mutex::default(),
        }
    }

    /// Holds what this model learns from feedback to `base`'s confident errors on `reference`
    /// (see [`Reference`]); a reference made for another feature space is refused.
    pub fn with_gate(mut self, reference: Reference, base: &Model) -> Result<SiteModel, String> {
        let gate = Gate::new(reference, base)
            .ok_or("the 4-gram reference was made for another feature space")?;
        self.gate = Some(gate);
        Ok(self)
    }

    /// Probability that `message` is spam or phishing.
    pub fn probability(&self, message: &Message) -> Option<f32> {
        let features = features(message, self.bits);
        Some(self.model.read().ok()?.probability(&features))
    }

    /// Learns `message` as bad (spam or phishing) or legitimate; returns whether it changed.
    pub fn learn(&self, message: &Message, bad: bool) -> bool {
        let features = features(message, self.bits);
        match self.model.write() {
            Ok(mut model) => model.learn(&features, bad, FEEDBACK_RATE),
            Err(_) => false,
        }
    }

    /// Learns what `store` holds and was not taught under its present label (at most a
    /// round's worth), each correction through the gate, forgets what left the store, and keeps
    /// the model with its ledger. Cheap when nothing changed: the store is listed only when its
    /// directories' times moved (or once a minute). A model without a home learns nothing.
    /// Scanning reads the model as it was until the round ends.
    pub fn learn_feedback(&self, store: &FeedbackStore) -> Result<Round, std::io::Error> {
        let Some(home) = &self.home else {
            return Ok(Round::default());
        };
        let mut state = self.learning.lock().map_err(|_| poisoned())?;
        let stamps = store.stamps();
        let stale = state
            .listed
            .is_none_or(|t| t.elapsed() > Duration::from_secs(60));
        if !state.dirty && !stale && state.seen.as_ref() == Some(&stamps) {
            return Ok(Round {
                known: state.ledger.len(),
                ..Round::default()
            });
        }
        state.listed = Some(Instant::now());
        let entries = store.entries().map_err(std::io::Error::other)?;
        let (mut round, mut bytes, mut complete) = (Round::default(), 0, true);
        let mut candidate: Option<Model> = None;
        let mut present = BTreeSet::new();
        for (label, path) in entries {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let bad = label != Label::Ham;
            present.insert(name.clone());
            if state.ledger.get(&name).is_some_and(|l| l.bad == bad)
                || state.failed.get(&name) == Some(&bad)
            {
                continue;
            }
            if round.learned + round.refused == FEEDBACK_PER_ROUND || bytes >= MAX_BYTES_PER_ROUND {
                complete = false;
                continue;
            }
            // Full: what is not remembered is not learned, and the store still counts as
            // learned, so it is not listed again every round for nothing.
            if state.ledger.len() >= MAX_LEDGER && !state.ledger.contains_key(&name) {
                if !state.full {
                    tracing::warn!(
                        limit = MAX_LEDGER,
                        "4-gram model remembers no more feedback; new corrections are not learned"
                    );
                    state.full = true;
                }
                continue;
            }
            match read_regular(&path, MAX_MESSAGE_BYTES as u64) {
                Ok(Some(raw)) => {
                    bytes += raw.len();
                    let model = match &mut candidate {
                        Some(model) => model,
                        None => {
                            candidate.insert(self.model.read().map_err(|_| poisoned())?.clone())
                        }
                    };
                    let lesson = features(&Message::parse(&raw), self.bits);
                    let admitted = match &self.gate {
                        Some(gate) => gate.teach(model, &lesson, bad, FEEDBACK_RATE),
                        None => {
                            model.learn(&lesson, bad, FEEDBACK_RATE);
                            true
                        }
                    };
                    if admitted {
                        round.learned += 1;
                    } else {
                        round.refused += 1;
                        tracing::warn!(file = %path.display(), label = label.as_str(),
                            "4-gram model refused a correction: it would be confidently wrong on more of its reference messages");
                    }
                    state.failed.remove(&name);
                    state.ledger.insert(
                        name,
                        Lesson {
                            bad,
                            refused: !admitted,
                        },
                    );
                    state.dirty = true;
                }
                // Gone since listed (relabelled): its new place is seen next round.
                Ok(None) => complete = false,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "feedback not learned");
                    state.failed.insert(name, bad);
                }
            }
        }
        let before = state.ledger.len();
        state.ledger.retain(|name, _| present.contains(name));
        state.failed.retain(|name, _| present.contains(name));
        if state.ledger.len() != before {
            state.dirty = true;
        }
        if let Some(model) = candidate {
            *self.model.write().map_err(|_| poisoned())? = model;
        }
        if state.dirty {
            let model = self.model.read().map_err(|_| poisoned())?.clone();
            let bytes = encode_site(&model, &state.ledger)?;
            fs::create_dir_all(home)?;
            replace(&home.join("ngram.bin"), &bytes)?;
            state.dirty = false;
        }
        state.seen = complete.then_some(stamps);
        round.known = state.ledger.len();
        Ok(round)
    }
}

/// What names the built-in model a site file grew from, and the feature layout.
fn builtin_fingerprint() -> [u8; 8] {
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update([FEATURE_VERSION])
        .chain_update(BUILTIN_MODEL)
        .finalize();
    let mut out = [0; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

fn encode_site(
    model: &Model,
    ledger: &BTreeMap<String, Lesson>,
) -> Result<Vec<u8>, std::io::Error> {
    let mut plain = Vec::with_capacity(4 * model.weights.len() + 70 * ledger.len() + 64);
    plain.extend_from_slice(SITE_MAGIC);
    plain.extend_from_slice(&builtin_fingerprint());
    model.encode(&mut plain);
    plain.extend_from_slice(&(ledger.len() as u32).to_le_bytes());
    for (name, lesson) in ledger {
        let name = &name.as_bytes()[..name.len().min(255)];
        plain.push(name.len() as u8);
        plain.extend_from_slice(name);
        plain.push(u8::from(lesson.bad) | u8::from(lesson.refused) << 1);
    }
    deflate(&plain)
}

/// The model and ledger of a site file; `None` when it grew from another built-in model.
type Kept = Option<(Model, BTreeMap<String, Lesson>)>;

fn decode_site(bytes: &[u8]) -> Result<Kept, ModelFileError> {
    let plain = inflate(bytes, MAX_SITE_FILE)?;
    let (head, rest) = take(&plain, SITE_MAGIC.len() + 8)?;
    if &head[..SITE_MAGIC.len()] != SITE_MAGIC {
        return Err(ModelFileError::Format);
    }
    if head[SITE_MAGIC.len()..] != builtin_fingerprint() {
        tracing::info!("the built-in 4-gram model changed; learning this site's feedback again");
        return Ok(None);
    }
    let (model, rest) = Model::decode(rest)?;
    let (count, mut rest) = take(rest, 4)?;
    let count = u32::from_le_bytes([count[0], count[1], count[2], count[3]]) as usize;
    if count > MAX_LEDGER {
        return Err(ModelFileError::Format);
    }
    let mut ledger = BTreeMap::new();
    for _ in 0..count {
        let (len, tail) = take(rest, 1)?;
        let (name, tail) = take(tail, usize::from(len[0]))?;
        let (lesson, tail) = take(tail, 1)?;
        let name = std::str::from_utf8(name).map_err(|_| ModelFileError::Format)?;
        if lesson[0] > 3 {
            return Err(ModelFileError::Format);
        }
        let lesson = Lesson {
            bad: lesson[0] & 1 != 0,
            refused: lesson[0] & 2 != 0,
        };
        ledger.insert(name.to_owned(), lesson);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(ModelFileError::Format);
    }
    Ok(Some((model, ledger)))
}

fn poisoned() -> std::io::Error {
    std::io::Error::other("4-gram model lock poisoned")
}

/// Reads `path` if it is a regular file (not a link, FIFO or device: the service account
/// controls the directory), at most `limit` bytes; `None` when it does not exist.
fn read_regular(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, std::io::Error> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
        Ok(meta) if !meta.file_type().is_file() => {
            return Err(std::io::Error::other("not a regular file"));
        }
        Ok(meta) if meta.len() > limit => return Err(std::io::Error::other("too large")),
        Ok(_) => {}
    }
    let mut raw = Vec::new();
    match File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
        Ok(f) => f.take(limit).read_to_end(&mut raw)?,
    };
    Ok(Some(raw))
}

/// Writes `path` whole: a temporary file, fsync'd, renamed over it, the directory fsync'd.
fn replace(path: &Path, bytes: &[u8]) -> Result<(), std::io::Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(
        ".{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let written = (|| {
        let mut f = File::create(&temp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&temp, path)?;
        File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_confident_model_earns_points() {
        let weight = |p: f32, name: &str| {
            let mut s = Symbols::default();
            add_symbols(p, &mut s);
            s.hits()
                .iter()
                .find(|h| h.name == name)
                .map_or(0.0, |h| h.weight)
        };
        assert_eq!(weight(0.94, "NGRAM_SPAM"), 0.0);
        assert_eq!(weight(0.06, "NGRAM_HAM"), 0.0);
        assert!(weight(0.99, "NGRAM_SPAM") > 0.3 && weight(0.99, "NGRAM_SPAM") < 1.0);
        assert_eq!(weight(0.9995, "NGRAM_SPAM"), 1.0);
        assert!(weight(0.001, "NGRAM_HAM") > 0.99);
    }

    fn message(raw: &str) -> Message {
        Message::parse(raw.as_bytes())
    }

    const SPAM: &str = "From: \"Deals\" <deals@cheap.example>\r\nTo: a@b.example\r\nSubject: Cheap pills, best price!!!\r\nContent-Type: text/plain\r\n\r\nBuy cheap pills now, best price guaranteed, visit http://pills.example/buy\r\n";
    const HAM: &str = "From: \"Li Wei\" <li@corp.example>\r\nTo: a@b.example\r\nSubject: Minutes of Tuesday's meeting\r\nContent-Type: text/plain\r\n\r\nAttached are the minutes; please send corrections by Friday.\r\n";

    #[test]
    fn artefacts_of_public_corpora_change_no_feature() {
        let base = features(&message(SPAM), DEFAULT_BITS);
        let changed = SPAM
            .replace("a@b.example", "phishing@pot")
            .replace("deals@cheap.example", "deals@spamassassin.taint.org")
            .replace(
                "To: ",
                "Received: from mail.ccert.edu.cn by mx\r\nMessage-ID: <1@x>\r\nDate: Tue, 1 May 2007 10:00:00 +0000\r\nTo: ",
            );
        assert_eq!(features(&message(&changed), DEFAULT_BITS), base);
        let in_text = SPAM.replace("Buy cheap", "Dear phishing@pot, buy cheap");
        let other = SPAM.replace("Buy cheap", "Dear user@example.com, buy cheap");
        assert_eq!(
            features(&message(&in_text), DEFAULT_BITS),
            features(&message(&other), DEFAULT_BITS)
        );
        assert_ne!(features(&message(HAM), DEFAULT_BITS), base);
    }

    #[test]
    fn it_learns_one_message_at_a_time_and_stops_at_the_margin() {
        let spam = features(&message(SPAM), 16);
        let ham = features(&message(HAM), 16);
        let mut model = Model::empty(16);
        assert_eq!(model.probability(&spam), 0.5);
        assert!(model.learn(&spam, true, DEFAULT_RATE));
        assert!(model.learn(&ham, false, DEFAULT_RATE));
        assert!(model.probability(&spam) > 0.5);
        assert!(model.probability(&ham) < 0.5);
        let mut rounds = 0;
        while model.learn(&spam, true, 0.5) {
            rounds += 1;
            assert!(rounds < 1000, "never reached the margin");
        }
        assert!(model.log_odds(&spam) > MARGIN);
        assert_eq!(model.learned(), 2 + rounds);
    }

    #[test]
    fn weights_stay_bounded_whatever_it_is_taught() {
        let spam = features(&message(SPAM), 14);
        let mut model = Model::empty(14);
        for i in 0..10_000 {
            model.learn(&spam, i % 2 == 0, 10.0);
        }
        assert!(model.weights.iter().all(|w| w.abs() <= MAX_WEIGHT));
    }

    #[test]
    fn a_model_file_round_trips_and_bad_files_are_refused() {
        let mut model = Model::empty(14);
        model.learn(&features(&message(SPAM), 14), true, 1.0);
        let bytes = model.to_bytes().unwrap();
        let back = Model::from_bytes(&bytes).unwrap();
        assert_eq!(back.bits, 14);
        assert_eq!(back.learned, 1);
        assert_eq!(back, model);
        assert!(matches!(
            Model::from_bytes(b"not deflate"),
            Err(ModelFileError::Io(_))
        ));
        let wrong = deflate(b"JMNGRAM1\x1f\0\0\0\0\0\0\0\0\0\0\0\0").unwrap();
        assert!(matches!(
            Model::from_bytes(&wrong),
            Err(ModelFileError::Size(31))
        ));
        let short = deflate(b"JMNGRAM1\x0e\0\0\0\0\0\0\0\0\0\0\0\0\0").unwrap();
        assert!(matches!(
            Model::from_bytes(&short),
            Err(ModelFileError::Format)
        ));
    }

    /// Learned this round and known, of a round of `site` over `store` that refused nothing.
    fn round_of(site: &SiteModel, store: &FeedbackStore) -> (usize, usize) {
        let round = site.learn_feedback(store).unwrap();
        assert_eq!(round.refused, 0, "{round:?}");
        (round.learned, round.known)
    }

    #[test]
    fn a_site_model_learns_each_correction_once_keeps_it_and_follows_relabels() {
        let data = tempfile::tempdir().unwrap();
        let store = FeedbackStore::open(data.path());
        let load = || SiteModel::load("auto", Some(data.path())).unwrap().unwrap();
        let site = load();
        let builtin = Model::from_bytes(BUILTIN_MODEL).unwrap();
        let ham = message(HAM);
        let before = site.probability(&ham).unwrap();
        assert_eq!(before, builtin.probability(&features(&ham, builtin.bits())));
        assert_eq!(round_of(&site, &store), (0, 0));
        store.record(HAM.as_bytes(), Label::Spam).unwrap();
        assert_eq!(round_of(&site, &store), (1, 1));
        let taught = site.probability(&ham).unwrap();
        assert!(taught > before, "{before} -> {taught}");
        assert_eq!(round_of(&site, &store), (0, 1), "learned twice");
        // Kept over a restart, and not learned again.
        let again = load();
        assert_eq!(again.probability(&ham).unwrap(), taught);
        assert_eq!(round_of(&again, &store), (0, 1));
        // Spam, then "not spam", then spam again: each change is learned; spam → phish is not
        // a change.
        store.record(HAM.as_bytes(), Label::Ham).unwrap();
        assert_eq!(round_of(&again, &store), (1, 1));
        let released = again.probability(&ham).unwrap();
        assert!(released < taught);
        store.record(HAM.as_bytes(), Label::Spam).unwrap();
        assert_eq!(round_of(&again, &store), (1, 1));
        assert!(again.probability(&ham).unwrap() > released);
        store.record(HAM.as_bytes(), Label::Phish).unwrap();
        assert_eq!(round_of(&again, &store), (0, 1));
        // Something unreadable in the store is skipped once, not retried every round.
        std::fs::create_dir_all(data.path().join("feedback/spam/odd.eml")).unwrap();
        assert_eq!(round_of(&again, &store), (0, 1));
        assert_eq!(round_of(&again, &store), (0, 1));
        // What leaves the store leaves the ledger.
        std::fs::remove_dir_all(data.path().join("feedback")).unwrap();
        assert_eq!(round_of(&again, &store), (0, 0));
        // `builtin` learns nothing; an unreadable file starts again from the built-in model
        // and learns the whole store again.
        store.record(SPAM.as_bytes(), Label::Spam).unwrap();
        let fixed = SiteModel::load("builtin", Some(data.path()))
            .unwrap()
            .unwrap();
        assert_eq!(round_of(&fixed, &store), (0, 0));
        let file = data.path().join("model/ngram.bin");
        std::fs::remove_file(&file).unwrap();
        std::fs::create_dir(&file).unwrap();
        assert_eq!(
            load().probability(&ham).unwrap(),
            before,
            "a directory in its place"
        );
        std::fs::remove_dir(&file).unwrap();
        std::fs::write(&file, b"garbage").unwrap();
        let fallback = load();
        assert_eq!(fallback.probability(&ham).unwrap(), before);
        assert_eq!(round_of(&fallback, &store), (1, 1));
        assert!(SiteModel::load("none", None).unwrap().is_none());
        assert!(SiteModel::load("sometimes", None).is_err());
    }

    #[test]
    fn a_site_file_from_another_built_in_model_is_learned_again() {
        let data = tempfile::tempdir().unwrap();
        let store = FeedbackStore::open(data.path());
        store.record(HAM.as_bytes(), Label::Spam).unwrap();
        let site = SiteModel::load("auto", Some(data.path())).unwrap().unwrap();
        assert_eq!(round_of(&site, &store), (1, 1));
        // The same file, but naming another built-in model.
        let file = data.path().join("model/ngram.bin");
        let mut plain = inflate(&std::fs::read(&file).unwrap(), MAX_SITE_FILE).unwrap();
        plain[SITE_MAGIC.len()] ^= 1;
        std::fs::write(&file, deflate(&plain).unwrap()).unwrap();
        let upgraded = SiteModel::load("auto", Some(data.path())).unwrap().unwrap();
        assert_eq!(round_of(&upgraded, &store), (1, 1));
        // A truncated ledger is refused, not half read.
        plain[SITE_MAGIC.len()] ^= 1;
        plain.truncate(plain.len() - 3);
        assert!(matches!(
            decode_site(&deflate(&plain).unwrap()),
            Err(ModelFileError::Format)
        ));
    }

    #[test]
    fn a_long_subject_does_not_hide_the_text() {
        let long = SPAM.replace(
            "Subject: Cheap pills, best price!!!",
            &format!("Subject: {}", "x".repeat(5000)),
        );
        let text = visible_start(&message(&long));
        assert!(text.len() <= MAX_TEXT_BYTES + 3, "{}", text.len());
        assert!(text.contains("Buy cheap pills now"), "{text}");
        let chinese = SPAM.replace("Buy cheap pills now", &"便宜".repeat(2000));
        let text = visible_start(&message(&chinese));
        assert!(text.contains("便宜便宜") && text.len() <= MAX_TEXT_BYTES + 3);
    }

    #[test]
    fn the_gate_stops_a_wave_of_wrong_reports_where_it_would_flag_ordinary_mail() {
        let base = Model::from_bytes(BUILTIN_MODEL).unwrap();
        let minutes = |i: usize| HAM.replace("Tuesday's", &format!("Tuesday {i}'s"));
        let pills = |i: usize| SPAM.replace("best price", &format!("best price {i}"));
        let lesson = |raw: &str| features(&message(raw), base.bits());
        let reference = Reference::new(
            base.bits(),
            (0..40)
                .map(|i| (false, lesson(&minutes(i))))
                .chain((0..40).map(|i| (true, lesson(&pills(i)))))
                .collect(),
        );
        let (flagged_before, _) = reference.confident_errors(&base);
        // Ordinary minutes reported as spam, over and over.
        let data = tempfile::tempdir().unwrap();
        let store = FeedbackStore::open(data.path());
        for i in 100..160 {
            store.record(minutes(i).as_bytes(), Label::Spam).unwrap();
        }
        let gated = SiteModel::new(base.clone(), Some(data.path().join("gated")))
            .with_gate(reference.clone(), &base)
            .unwrap();
        let round = gated.learn_feedback(&store).unwrap();
        assert_eq!(round.learned + round.refused, 60);
        assert!(round.refused > 40, "{round:?}");
        let model = gated.model.read().unwrap().clone();
        let (flagged, _) = reference.confident_errors(&model);
        assert!(
            flagged <= flagged_before + 3,
            "{flagged_before} -> {flagged}"
        );
        // Refused reports are not tried again; a correction that agrees with the reference
        // still goes through.
        let round = gated.learn_feedback(&store).unwrap();
        assert_eq!((round.learned, round.refused, round.known), (0, 0, 60));
        store.record(pills(500).as_bytes(), Label::Spam).unwrap();
        let round = gated.learn_feedback(&store).unwrap();
        assert_eq!((round.learned, round.refused, round.known), (1, 0, 61));
        // The refusals are kept over a restart of the learner.
        let file = data.path().join("gated/ngram.bin");
        let (_, ledger) = decode_site(&std::fs::read(&file).unwrap())
            .unwrap()
            .unwrap();
        assert!(ledger.values().filter(|l| l.refused && l.bad).count() > 40);
        // Without the gate the same wave makes the model flag the reference's ordinary mail.
        let open = SiteModel::new(base.clone(), Some(data.path().join("open")));
        let round = open.learn_feedback(&store).unwrap();
        assert_eq!((round.learned, round.refused), (61, 0));
        let model = open.model.read().unwrap().clone();
        assert!(reference.confident_errors(&model).0 > flagged_before + 20);
        // A reference for another feature space is refused.
        let other = Reference::new(12, vec![(false, vec![1])]);
        assert!(
            SiteModel::new(base.clone(), None)
                .with_gate(other, &base)
                .is_err()
        );
    }
}
