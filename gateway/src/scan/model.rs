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

/// Adds the bucketed model symbols for `p`.
pub fn add_symbols(p: Probabilities, symbols: &mut Symbols) {
    let detail = format!("spam {:.3}, phish {:.3}", p.spam, p.phish);
    let bucket = |prob: f32, high: &str, medium: &str| {
        if prob >= 0.95 {
            Some(high.to_owned())
        } else if prob >= 0.8 {
            Some(medium.to_owned())
        } else {
            None
        }
    };
    if let Some(s) = bucket(p.phish, "NEURAL_PHISH_HIGH", "NEURAL_PHISH_MEDIUM") {
        symbols.add(&s, detail.clone());
    }
    if let Some(s) = bucket(p.spam, "NEURAL_SPAM_HIGH", "NEURAL_SPAM_MEDIUM") {
        symbols.add(&s, detail.clone());
    }
    if p.spam + p.phish <= 0.05 {
        symbols.add("NEURAL_HAM", detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_map_to_buckets() {
        let mut s = Symbols::default();
        add_symbols(
            Probabilities {
                spam: 0.97,
                phish: 0.01,
            },
            &mut s,
        );
        assert!(s.has("NEURAL_SPAM_HIGH") && !s.has("NEURAL_PHISH_MEDIUM"));
        let mut s = Symbols::default();
        add_symbols(
            Probabilities {
                spam: 0.1,
                phish: 0.85,
            },
            &mut s,
        );
        assert!(s.has("NEURAL_PHISH_MEDIUM") && !s.has("NEURAL_SPAM_MEDIUM"));
        let mut s = Symbols::default();
        add_symbols(
            Probabilities {
                spam: 0.02,
                phish: 0.01,
            },
            &mut s,
        );
        assert!(s.has("NEURAL_HAM"));
    }
}
