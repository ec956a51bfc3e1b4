//! From evidence to a decision: symbol scores are summed per category, the class is chosen
//! (virus, then phishing or BEC — the stronger — then unscannable, then spam), and the explanation
//! names the evidence that weighed most, so an administrator can see why.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Symbols;
use super::rules::{Category, RuleSet};
use crate::config::Thresholds;

/// The classes a threat scan decides between, in report order.
pub const THREAT_CLASS_NAMES: [&str; 6] = ["clean", "spam", "phish", "bec", "virus", "unscannable"];

/// Every class's name: the threat classes, then `dlp` (outgoing mail a data-leak policy acted on).
pub const CLASS_NAMES: [&str; 7] = [
    "clean",
    "spam",
    "phish",
    "bec",
    "virus",
    "unscannable",
    "dlp",
];

/// The class of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Nothing wrong found.
    Clean,
    /// Unsolicited bulk mail.
    Spam,
    /// Credential theft or malicious links.
    Phish,
    /// Malware.
    Virus,
    /// Business email compromise.
    Bec,
    /// Not fully inspected (archive limits, the scan budget): it weighs at least as much as
    /// what it might hide, so it outranks spam.
    Unscannable,
    /// Outgoing mail a data-leak prevention policy acted on.
    Dlp,
}

impl Class {
    /// Lower-case name (`clean`, `spam`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Clean => "clean",
            Class::Spam => "spam",
            Class::Phish => "phish",
            Class::Virus => "virus",
            Class::Bec => "bec",
            Class::Unscannable => "unscannable",
            Class::Dlp => "dlp",
        }
    }
}

/// One piece of evidence with its weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredHit {
    /// Symbol name.
    pub name: String,
    /// Points it added.
    pub score: f64,
    /// What matched.
    pub detail: String,
}

/// The decision about one message (for one group of recipients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The class.
    pub class: Class,
    /// Total score (all symbols).
    pub score: f64,
    /// The evidence, heaviest first.
    pub symbols: Vec<ScoredHit>,
    /// One line a person can read.
    pub explanation: String,
}

/// Scores `symbols` with `rules` — or the points `scores` gives a symbol in their place — and
/// decides the class under `thresholds`.
pub fn decide(
    rules: &RuleSet,
    scores: &BTreeMap<String, f64>,
    symbols: &Symbols,
    thresholds: &Thresholds,
) -> Report {
    let mut total = 0.0f64;
    let (mut phish, mut bec, mut virus, mut ham) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut uninspected = false;
    let mut scored: Vec<ScoredHit> = Vec::with_capacity(symbols.hits().len());
    for hit in symbols.hits() {
        let info = rules.info(&hit.name);
        let category = info.map_or(Category::Spam, |i| i.category);
        let points = scores
            .get(&hit.name)
            .copied()
            .or(info.map(|i| i.score))
            .unwrap_or(0.0);
        let score = points * hit.weight;
        total += score;
        match category {
            Category::Spam => {}
            Category::Phish => phish += score,
            Category::Bec => bec += score,
            Category::Virus => virus += score,
            Category::Ham => ham += score,
            // A score of 0 is how an operator turns a symbol off, this one too.
            Category::Unscannable => uninspected |= score != 0.0,
        }
        scored.push(ScoredHit {
            name: hit.name.clone(),
            score,
            detail: hit.detail.clone(),
        });
    }
    scored.sort_by(|a, b| b.score.abs().total_cmp(&a.score.abs()));
    let is_phish = phish + ham >= thresholds.phish;
    let is_bec = bec + ham >= thresholds.bec;
    // Fraud often carries evidence of both; the stronger names it.
    let class = if virus >= thresholds.virus {
        Class::Virus
    } else if is_phish && (!is_bec || phish >= bec) {
        Class::Phish
    } else if is_bec {
        Class::Bec
    } else if uninspected {
        Class::Unscannable
    } else if total >= thresholds.spam {
        Class::Spam
    } else {
        Class::Clean
    };
    let (evidence, limit) = match class {
        Class::Virus => (virus, thresholds.virus),
        Class::Phish => (phish + ham, thresholds.phish),
        Class::Bec => (bec + ham, thresholds.bec),
        Class::Spam | Class::Clean | Class::Unscannable | Class::Dlp => (total, thresholds.spam),
    };
    let reasons: Vec<String> = scored
        .iter()
        .filter(|h| h.score != 0.0)
        .take(6)
        .map(|h| {
            let desc = rules
                .info(&h.name)
                .map(|i| i.description.as_str())
                .unwrap_or_default();
            let mut s = format!("{} {:+.1}", h.name, h.score);
            if !desc.is_empty() {
                s.push_str(&format!(" [{desc}]"));
            }
            if !h.detail.is_empty() {
                s.push_str(&format!(" ({})", h.detail));
            }
            s
        })
        .collect();
    let relation = if evidence >= limit { "≥" } else { "<" };
    let measure = if class == Class::Unscannable {
        // The class is not a score's doing: say what was left uninspected instead.
        "not fully inspected".to_owned()
    } else {
        format!("{evidence:.1} {relation} {limit:.1}")
    };
    let explanation = format!(
        "{}: {measure}{}{}",
        class.as_str(),
        if reasons.is_empty() { "" } else { "; " },
        reasons.join("; ")
    );
    Report {
        class,
        score: total,
        symbols: scored,
        explanation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_of(names: &[&str]) -> Class {
        class_scored(names, &BTreeMap::new())
    }

    fn class_scored(names: &[&str], scores: &BTreeMap<String, f64>) -> Class {
        let rules = RuleSet::load(true, None, &[]).expect("built-in rules");
        let mut symbols = Symbols::default();
        for name in names {
            symbols.add(name, "");
        }
        decide(&rules, scores, &symbols, &Thresholds::default()).class
    }

    /// The console's rule switches and weights: points set in the policy replace the rule
    /// file's, 0 turns a symbol off, and the symbol keeps its category.
    #[test]
    fn points_set_in_the_policy_replace_the_rule_files() {
        let exe = ["ATTACH_EXECUTABLE", "ATTACH_DOUBLE_EXT"];
        assert_eq!(class_of(&exe), Class::Virus);
        let off: BTreeMap<String, f64> = exe.iter().map(|s| (s.to_string(), 0.0)).collect();
        assert_eq!(class_scored(&exe, &off), Class::Clean);
        let heavier = BTreeMap::from([("NEURAL_PHISH".to_string(), 2.0)]);
        assert_eq!(class_of(&["NEURAL_PHISH"]), Class::Phish);
        assert_ne!(class_scored(&["NEURAL_PHISH"], &heavier), Class::Phish);
    }

    #[test]
    fn the_stronger_of_phishing_and_bec_names_the_class() {
        let bec = [
            "BEC_LOOKALIKE_DOMAIN",
            "BEC_IMPERSONATION_WITH_REQUEST",
            "BEC_PAYMENT_EN",
            "BEC_REPLY_TO_DIVERGENT",
        ];
        assert_eq!(class_of(&bec), Class::Bec);
        let mut and_phish = bec.to_vec();
        and_phish.push("NEURAL_PHISH");
        assert_eq!(
            class_of(&and_phish),
            Class::Bec,
            "BEC 11.5 outweighs phishing 10"
        );
        assert_eq!(
            class_of(&["NEURAL_PHISH", "BEC_PAYMENT_EN"]),
            Class::Phish,
            "BEC evidence under its threshold does not compete"
        );
        assert_eq!(class_of(&[]), Class::Clean);
    }

    /// Finding 3 of the hardening review: an archive walk that stopped at a limit added one
    /// point and the message went out tagged. What was not inspected now decides the class
    /// however little it scores, below only what was found for certain.
    #[test]
    fn what_was_not_inspected_outranks_spam_but_not_a_found_virus() {
        for limit in [
            "ARCHIVE_TOO_MANY_MEMBERS",
            "ARCHIVE_TOO_DEEP",
            "ARCHIVE_MEMBER_TRUNCATED",
            "ARCHIVE_TOO_LARGE",
            "SCAN_BUDGET_EXCEEDED",
            "MIME_TOO_MANY_PARTS",
            "MIME_TOO_DEEP",
        ] {
            assert_eq!(class_of(&[limit]), Class::Unscannable, "{limit}");
            assert_eq!(
                class_of(&[limit, "BLOCKLISTED", "NEURAL_SPAM", "EN_LOTTERY"]),
                Class::Unscannable,
                "{limit}"
            );
            assert_eq!(
                class_of(&[limit, "ATTACH_EXECUTABLE", "ATTACH_DOUBLE_EXT"]),
                Class::Virus,
                "{limit}"
            );
        }
    }
}
