//! Where a statistical classifier joins the verdict: its probabilities become bucketed
//! symbols (`NEURAL_SPAM_HIGH`, …) that the rule set scores like any other evidence, so
//! thresholds stay in one place and an administrator sees the model's part in the explanation.

use super::Symbols;
use super::message::Message;

/// A classifier's probabilities for one message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probabilities {
    /// Probability of spam.
    pub spam: f32,
    /// Probability of phishing.
    pub phish: f32,
}

/// A statistical model that judges a parsed message (the neural model plugs in here).
pub trait Classifier: Send + Sync {
    /// Probabilities for `message`, given the symbols the checks found; `Err` names why the
    /// model could not judge (the verdict then rests on the rules and says so).
    fn classify(&self, message: &Message, symbols: &Symbols) -> Result<Probabilities, String>;
}

/// Stands in for a model that failed to load: every message says so in its verdict.
pub struct Unavailable(pub String);

impl Classifier for Unavailable {
    fn classify(&self, _: &Message, _: &Symbols) -> Result<Probabilities, String> {
        Err(self.0.clone())
    }
}

/// Log-odds at which a model symbol carries its whole score: probability 0.999.
const FULL_LOG_ODDS: f64 = 6.906_754_778_648_554; // ln(999)

/// How much of a model symbol's score a (calibrated) probability earns: nothing at 0.5 or
/// below, rising with the log-odds to all of it at 0.999, so the verdict keeps the model's
/// ranking instead of a few coarse buckets.
pub fn strength(probability: f32) -> f64 {
    strength_above(probability, 0.0)
}

/// [`strength`] for a model whose opinion counts only beyond log-odds `floor`: nothing up to
/// it, all of the score at 0.999.
pub fn strength_above(probability: f32, floor: f64) -> f64 {
    if probability.is_nan() {
        return 0.0;
    }
    let p = f64::from(probability).clamp(1e-9, 1.0 - 1e-9);
    (((p / (1.0 - p)).ln() - floor) / (FULL_LOG_ODDS - floor)).clamp(0.0, 1.0)
}

/// Adds the model's symbols for `p`, weighted by [`strength`]: `NEURAL_PHISH` for phishing,
/// `NEURAL_SPAM` for the rest of its confidence that the message is not legitimate (so a phish
/// is not counted twice in the total) and `NEURAL_HAM` for legitimate.
pub fn add_symbols(p: Probabilities, symbols: &mut Symbols) {
    let detail = format!("spam {:.4}, phish {:.4}", p.spam, p.phish);
    let bad = p.spam + p.phish;
    let phish = strength(p.phish);
    for (name, weight) in [
        ("NEURAL_SPAM", strength(bad) - phish),
        ("NEURAL_PHISH", phish),
        ("NEURAL_HAM", strength(1.0 - bad)),
    ] {
        // Under 1 % of the score is noise in the explanation, not evidence.
        if weight >= 0.01 {
            symbols.add_weighted(name, weight, detail.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weight(s: &Symbols, name: &str) -> Option<f64> {
        s.hits().iter().find(|h| h.name == name).map(|h| h.weight)
    }

    #[test]
    fn strength_rises_with_confidence() {
        assert_eq!(strength(0.5), 0.0);
        assert_eq!(strength(0.2), 0.0);
        assert!((strength(0.999) - 1.0).abs() < 1e-6);
        assert_eq!(strength(1.0), 1.0);
        assert!(strength(0.9) < strength(0.99) && strength(0.99) < strength(0.999));
        assert_eq!(strength(f32::NAN), 0.0);
    }

    #[test]
    fn probabilities_become_weighted_symbols() {
        let mut s = Symbols::default();
        add_symbols(
            Probabilities {
                spam: 0.9995,
                phish: 0.0001,
            },
            &mut s,
        );
        assert_eq!(weight(&s, "NEURAL_SPAM"), Some(1.0));
        assert_eq!(weight(&s, "NEURAL_PHISH"), None);
        assert_eq!(weight(&s, "NEURAL_HAM"), None);
        let mut s = Symbols::default();
        add_symbols(
            Probabilities {
                spam: 0.05,
                phish: 0.94,
            },
            &mut s,
        );
        let phish = weight(&s, "NEURAL_PHISH").unwrap_or_default();
        assert!(phish > 0.3 && phish < 1.0, "{phish}");
        let spam = weight(&s, "NEURAL_SPAM").unwrap_or_default();
        assert!(
            (spam + phish - strength(0.99)).abs() < 1e-6,
            "{spam} {phish}"
        );
        let mut s = Symbols::default();
        add_symbols(
            Probabilities {
                spam: 0.002,
                phish: 0.0,
            },
            &mut s,
        );
        assert!(weight(&s, "NEURAL_HAM").unwrap_or_default() > 0.8);
        assert!(!s.has("NEURAL_SPAM"));
    }
}
