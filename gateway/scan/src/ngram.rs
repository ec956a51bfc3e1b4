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

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use super::Symbols;
use super::feedback::{FeedbackStore, Label};
use super::message::Message;
use super::model::strength_above;

/// The model trained on the development split of the public corpora (`jianmen train-ngram`).
pub const BUILTIN_MODEL: &[u8] = include_bytes!("../../model/ngram.bin");
/// Feedback messages learned per call of [`SiteModel::learn_feedback`]: a large backlog is
/// worked off over several rounds instead of holding the model for minutes.
const FEEDBACK_PER_ROUND: usize = 200;

/// Bytes of subject, display name and visible text read for 4-grams: the start of a message
/// carries its character, and the work per message stays bounded.
const MAX_TEXT_BYTES: usize = 2000;
/// Bits of the shipped model's hashed feature space.
pub const DEFAULT_BITS: u8 = 18;
/// Smallest and largest feature space a model file may declare (16 to 32 MiB of weights).
const BITS_RANGE: std::ops::RangeInclusive<u8> = 12..=23;
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
    for anomaly in &message.anomalies {
        shape("anomaly", anomaly);
    }
    shape("html", if message.has_html { "y" } else { "n" });
    shape("plain", if message.has_plain { "y" } else { "n" });
    for link in message.links.iter().take(50) {
        if let Some((host, _)) = super::phish::host_of(&link.href) {
            shape("link", &super::domain::registrable(&host));
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
/// above) and runs of white space made one space.
fn visible_start(message: &Message) -> String {
    let mut out = String::with_capacity(MAX_TEXT_BYTES + 8);
    let parts = [
        message.subject.as_str(),
        "\n",
        message.from_name.as_str(),
        "\n",
        message.text.as_str(),
    ];
    'parts: for part in parts {
        if part == "\n" {
            out.push('\n');
            continue;
        }
        for word in part.split_whitespace() {
            let word = if word.contains('@') {
                "<@>"
            } else if word.contains("://") || word.starts_with("www.") {
                "<url>"
            } else {
                word
            };
            if out.len() + word.len() + 1 > MAX_TEXT_BYTES {
                break 'parts;
            }
            if !out.is_empty() && !out.ends_with('\n') {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    out
}

fn string_hash(kind: &str, value: &str) -> u64 {
    // FNV-1a over "kind\0value", then the same mixing as the 4-grams.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in kind.bytes().chain([0]).chain(value.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h | (1 << 40)
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
        let mut plain = Vec::with_capacity(self.weights.len() + 32);
        plain.extend_from_slice(MAGIC);
        plain.push(self.bits);
        plain.extend_from_slice(&self.bias.to_le_bytes());
        plain.extend_from_slice(&self.learned.to_le_bytes());
        for w in &self.weights {
            plain.extend_from_slice(&w.to_le_bytes());
        }
        let mut out = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        out.write_all(&plain)?;
        Ok(out.finish()?)
    }

    /// Reads what [`Model::to_bytes`] wrote; anything else is refused, and no more than the
    /// declared feature space is ever read.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, ModelFileError> {
        let decoder = flate2::read::ZlibDecoder::new(bytes);
        let limit = (4u64 << BITS_RANGE.end()) + 64;
        let mut plain = Vec::new();
        decoder.take(limit + 1).read_to_end(&mut plain)?;
        let head = MAGIC.len() + 1 + 4 + 8;
        if plain.len() < head || &plain[..MAGIC.len()] != MAGIC {
            return Err(ModelFileError::Format);
        }
        let bits = plain[MAGIC.len()];
        if !BITS_RANGE.contains(&bits) {
            return Err(ModelFileError::Size(bits));
        }
        let word = |at: usize, n: usize| &plain[MAGIC.len() + 1 + at..MAGIC.len() + 1 + at + n];
        let bias = f32::from_le_bytes(word(0, 4).try_into().map_err(|_| ModelFileError::Format)?);
        let learned =
            u64::from_le_bytes(word(4, 8).try_into().map_err(|_| ModelFileError::Format)?);
        let weights = &plain[head..];
        if weights.len() != 4 << bits || !bias.is_finite() {
            return Err(ModelFileError::Format);
        }
        Ok(Model {
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
            learned,
        })
    }
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
/// users' reports) within seconds, and keeps what it learned under `data_dir/model/`.
pub struct SiteModel {
    model: RwLock<Model>,
    /// Where learned weights and the feedback already learned are kept; `None`: not kept.
    home: Option<PathBuf>,
    /// Feedback learned, as `label/file name` (a relabelled message is learned again).
    ledger: RwLock<BTreeSet<String>>,
}

impl std::fmt::Debug for SiteModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SiteModel")
    }
}

impl SiteModel {
    /// The model a `scan.ngram` setting names: `auto` (what this site learned under
    /// `data_dir/model/`, else the built-in model; corrections are learned and kept),
    /// `builtin` (the built-in model, learning nothing) or `none`.
    pub fn load(setting: &str, data_dir: Option<&Path>) -> Result<Option<SiteModel>, String> {
        let builtin = || Model::from_bytes(BUILTIN_MODEL).map_err(|e| format!("built-in {e}"));
        match setting {
            "none" => Ok(None),
            "builtin" => Ok(Some(SiteModel::new(builtin()?, None))),
            "auto" => {
                let Some(home) = data_dir.map(|d| d.join("model")) else {
                    return Ok(Some(SiteModel::new(builtin()?, None)));
                };
                let learned = home.join("ngram.bin");
                let model = match fs::read(&learned) {
                    Ok(bytes) => match Model::from_bytes(&bytes) {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::error!(file = %learned.display(), error = %e,
                                "learned 4-gram model unreadable; starting again from the built-in one");
                            builtin()?
                        }
                    },
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => builtin()?,
                    Err(e) => return Err(format!("{}: {e}", learned.display())),
                };
                let ledger = fs::read_to_string(home.join("ngram.learned"))
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect();
                let site = SiteModel::new(model, Some(home));
                if let Ok(mut l) = site.ledger.write() {
                    *l = ledger;
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
            model: RwLock::new(model),
            home,
            ledger: RwLock::default(),
        }
    }

    /// Probability that `message` is spam or phishing.
    pub fn probability(&self, message: &Message) -> Option<f32> {
        let model = self.model.read().ok()?;
        Some(model.probability(&features(message, model.bits())))
    }

    /// Learns `message` as bad (spam or phishing) or legitimate; returns whether it changed.
    pub fn learn(&self, message: &Message, bad: bool) -> bool {
        let Ok(mut model) = self.model.write() else {
            return false;
        };
        let bits = model.bits();
        model.learn(&features(message, bits), bad, FEEDBACK_RATE)
    }

    /// Learns what `store` holds and was not learned yet (at most a round's worth), then keeps
    /// the model and the ledger (written whole and renamed, so a crash leaves the previous
    /// ones). Returns how many messages were learned. A model without a home learns nothing.
    pub fn learn_feedback(&self, store: &FeedbackStore) -> Result<usize, std::io::Error> {
        let Some(home) = &self.home else {
            return Ok(0);
        };
        let entries = store.entries().map_err(std::io::Error::other)?;
        let mut fresh = Vec::new();
        {
            let ledger = self.ledger.read().map_err(|_| poisoned())?;
            for (label, path) in entries {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                let key = format!("{}/{name}", label.as_str());
                if !ledger.contains(&key) {
                    fresh.push((key, label, path));
                    if fresh.len() == FEEDBACK_PER_ROUND {
                        break;
                    }
                }
            }
        }
        if fresh.is_empty() {
            return Ok(0);
        }
        for (key, label, path) in &fresh {
            // Gone since listed (relabelled): its new label is learned next round.
            let Ok(raw) = read_bounded(path) else {
                continue;
            };
            self.learn(&Message::parse(&raw), *label != Label::Ham);
            self.ledger
                .write()
                .map_err(|_| poisoned())?
                .insert(key.clone());
        }
        fs::create_dir_all(home)?;
        let bytes = self
            .model
            .read()
            .map_err(|_| poisoned())?
            .to_bytes()
            .map_err(std::io::Error::other)?;
        replace(&home.join("ngram.bin"), &bytes)?;
        let ledger: String = self
            .ledger
            .read()
            .map_err(|_| poisoned())?
            .iter()
            .map(|k| format!("{k}\n"))
            .collect();
        replace(&home.join("ngram.learned"), ledger.as_bytes())?;
        Ok(fresh.len())
    }
}

fn poisoned() -> std::io::Error {
    std::io::Error::other("4-gram model lock poisoned")
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, std::io::Error> {
    let mut raw = Vec::new();
    File::open(path)?
        .take(super::feedback::MAX_MESSAGE_BYTES as u64)
        .read_to_end(&mut raw)?;
    Ok(raw)
}

/// Writes `path` whole: a temporary file, fsync'd, renamed over it, the directory fsync'd.
fn replace(path: &Path, bytes: &[u8]) -> Result<(), std::io::Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(
        ".{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let mut f = File::create(&temp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&temp, path)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deflate(plain: &[u8]) -> Vec<u8> {
        let mut out = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        out.write_all(plain).unwrap();
        out.finish().unwrap()
    }

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
        let wrong = deflate(b"JMNGRAM1\x1f\0\0\0\0\0\0\0\0\0\0\0\0");
        assert!(matches!(
            Model::from_bytes(&wrong),
            Err(ModelFileError::Size(31))
        ));
        let short = deflate(b"JMNGRAM1\x0e\0\0\0\0\0\0\0\0\0\0\0\0\0");
        assert!(matches!(
            Model::from_bytes(&short),
            Err(ModelFileError::Format)
        ));
    }

    #[test]
    fn a_site_model_learns_each_correction_once_keeps_it_and_relearns_a_relabel() {
        let data = tempfile::tempdir().unwrap();
        let store = FeedbackStore::open(data.path());
        let site = SiteModel::load("auto", Some(data.path())).unwrap().unwrap();
        let builtin = Model::from_bytes(BUILTIN_MODEL).unwrap();
        let ham = message(HAM);
        let before = site.probability(&ham).unwrap();
        assert_eq!(before, builtin.probability(&features(&ham, builtin.bits())));
        assert_eq!(site.learn_feedback(&store).unwrap(), 0);
        store.record(HAM.as_bytes(), Label::Spam).unwrap();
        assert_eq!(site.learn_feedback(&store).unwrap(), 1);
        let taught = site.probability(&ham).unwrap();
        assert!(taught > before, "{before} -> {taught}");
        assert_eq!(site.learn_feedback(&store).unwrap(), 0, "learned twice");
        // What it learned survives a restart, and is not learned again.
        let again = SiteModel::load("auto", Some(data.path())).unwrap().unwrap();
        assert_eq!(again.probability(&ham).unwrap(), taught);
        assert_eq!(again.learn_feedback(&store).unwrap(), 0);
        // A relabel ("not spam" after all) is learned as the new label.
        store.record(HAM.as_bytes(), Label::Ham).unwrap();
        assert_eq!(again.learn_feedback(&store).unwrap(), 1);
        assert!(again.probability(&ham).unwrap() < taught);
        // `builtin` learns nothing; a broken file falls back to the built-in model.
        let fixed = SiteModel::load("builtin", Some(data.path()))
            .unwrap()
            .unwrap();
        assert_eq!(fixed.learn_feedback(&store).unwrap(), 0);
        std::fs::write(data.path().join("model/ngram.bin"), b"garbage").unwrap();
        let fallback = SiteModel::load("auto", Some(data.path())).unwrap().unwrap();
        assert_eq!(fallback.probability(&ham).unwrap(), before);
        assert!(SiteModel::load("none", None).unwrap().is_none());
        assert!(SiteModel::load("sometimes", None).is_err());
    }
}
