//! The site learner's gate: what keeps a site's corrections from making the 4-gram model worse
//! than the one it shipped with.
//!
//! `jianmen retrain` activates a model only if it is not worse on a fixed validation set; the
//! online learner needs the same safety at every lesson, without the corpora. So the gateway
//! ships a reference: the hashed features (not the text) of labelled messages from the
//! validation fold, which neither the built-in model nor any site learned from. A lesson that
//! would make the model confidently wrong — earning points the wrong way — on more reference
//! messages than the built-in model is, beyond a small allowance, is refused and remembered as
//! refused. A wave of "spam" reports of ordinary mail (a user's mistake, or poisoning) then
//! stops where it would start to quarantine legitimate mail; corrections that agree with the
//! reference, or that it has nothing to say about, go through.

use super::{CONFIDENT_LOG_ODDS, Model, ModelFileError, deflate, inflate, take};

/// The reference the built-in model ships with (`jianmen train-ngram` writes both).
pub const BUILTIN_REFERENCE: &[u8] = include_bytes!("../../../model/ngram-reference.bin");

const MAGIC: &[u8; 8] = b"JMNGREF1";
/// Most messages a reference file may hold.
const MAX_MESSAGES: usize = 10_000;
/// Most features of one message in a reference file.
const MAX_FEATURES: usize = 1 << 16;
/// Largest reference file, inflated.
const MAX_BYTES: u64 = 64 << 20;

/// Labelled messages as the 4-gram model sees them.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    bits: u8,
    /// Each message: whether it is bad (spam or phishing), and its features, sorted.
    messages: Vec<(bool, Vec<u32>)>,
}

impl Reference {
    /// A reference of `messages` (bad or not, features) for a model over `2^bits` weights.
    pub fn new(bits: u8, messages: Vec<(bool, Vec<u32>)>) -> Reference {
        let messages = messages
            .into_iter()
            .take(MAX_MESSAGES)
            .map(|(bad, mut features)| {
                features.truncate(MAX_FEATURES);
                features.sort_unstable();
                (bad, features)
            })
            .collect();
        Reference { bits, messages }
    }

    /// How many legitimate and how many bad messages it holds.
    pub fn counts(&self) -> (usize, usize) {
        let bad = self.messages.iter().filter(|(bad, _)| *bad).count();
        (self.messages.len() - bad, bad)
    }

    /// The legitimate messages `model` is confident are bad, and the bad ones it is confident
    /// are legitimate: where its symbols would earn points the wrong way.
    pub fn confident_errors(&self, model: &Model) -> (usize, usize) {
        let confident = CONFIDENT_LOG_ODDS as f32;
        let (mut ham_flagged, mut bad_cleared) = (0, 0);
        for (bad, features) in &self.messages {
            let z = model.log_odds(features);
            if !bad && z >= confident {
                ham_flagged += 1;
            } else if *bad && z <= -confident {
                bad_cleared += 1;
            }
        }
        (ham_flagged, bad_cleared)
    }

    /// The reference as bytes: each message's sorted features as variable-length deltas,
    /// deflated.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelFileError> {
        let mut plain = Vec::new();
        plain.extend_from_slice(MAGIC);
        plain.push(self.bits);
        plain.extend_from_slice(&(self.messages.len() as u32).to_le_bytes());
        for (bad, features) in &self.messages {
            plain.push(u8::from(*bad));
            plain.extend_from_slice(&(features.len() as u32).to_le_bytes());
            let mut last = 0;
            for f in features {
                let mut delta = f - last;
                last = *f;
                loop {
                    let low = (delta & 0x7f) as u8;
                    delta >>= 7;
                    if delta == 0 {
                        plain.push(low);
                        break;
                    }
                    plain.push(low | 0x80);
                }
            }
        }
        Ok(deflate(&plain)?)
    }

    /// Reads what [`Reference::to_bytes`] wrote, within its bounds; anything else is refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Reference, ModelFileError> {
        let plain = inflate(bytes, MAX_BYTES)?;
        let (head, mut rest) = take(&plain, MAGIC.len() + 5)?;
        if &head[..MAGIC.len()] != MAGIC {
            return Err(ModelFileError::Format);
        }
        let bits = head[MAGIC.len()];
        if !super::BITS_RANGE.contains(&bits) {
            return Err(ModelFileError::Size(bits));
        }
        let count = le_u32(&head[MAGIC.len() + 1..]) as usize;
        if count > MAX_MESSAGES {
            return Err(ModelFileError::Format);
        }
        let mut messages = Vec::with_capacity(count);
        for _ in 0..count {
            let (head, tail) = take(rest, 5)?;
            let n = le_u32(&head[1..]) as usize;
            if head[0] > 1 || n > MAX_FEATURES {
                return Err(ModelFileError::Format);
            }
            let (mut features, mut last, mut tail) = (Vec::with_capacity(n), 0u32, tail);
            for _ in 0..n {
                let (mut delta, mut shift) = (0u32, 0);
                loop {
                    let (byte, after) = take(tail, 1)?;
                    tail = after;
                    if shift > 28 {
                        return Err(ModelFileError::Format);
                    }
                    delta |= u32::from(byte[0] & 0x7f) << shift;
                    shift += 7;
                    if byte[0] & 0x80 == 0 {
                        break;
                    }
                }
                last = last.checked_add(delta).ok_or(ModelFileError::Format)?;
                if last >> bits != 0 {
                    return Err(ModelFileError::Format);
                }
                features.push(last);
            }
            messages.push((head[0] == 1, features));
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(ModelFileError::Format);
        }
        Ok(Reference { bits, messages })
    }
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// A reference with the most confident errors a model checked against it may make: the base
/// model's own, plus an allowance (one legitimate message in 100 and one bad in 50, at least
/// three and five). Any lesson nudges the messages that sit just below the line over it (40
/// reports of one short message moved two of the 300 legitimate ones: 2.6 and 2.8 to beyond
/// 2.94 log-odds), and a site's own taste may move the model a little; a wave of wrong reports
/// moves far more.
pub(super) struct Gate {
    reference: Reference,
    most_ham_flagged: usize,
    most_bad_cleared: usize,
}

impl Gate {
    /// A gate that holds models to `base`'s errors on `reference`; `None` when the reference
    /// was made for another feature space.
    pub(super) fn new(reference: Reference, base: &Model) -> Option<Gate> {
        if reference.bits != base.bits() {
            return None;
        }
        let (ham, bad) = reference.counts();
        let (ham_flagged, bad_cleared) = reference.confident_errors(base);
        Some(Gate {
            most_ham_flagged: ham_flagged + (ham / 100).max(3),
            most_bad_cleared: bad_cleared + (bad / 50).max(5),
            reference,
        })
    }

    /// Teaches `model` the message with `features`, unless the lesson would take it beyond the
    /// allowance and leave it worse than before; then the model is left as it was. Returns
    /// whether the lesson was admitted (one the model had nothing to learn from counts as
    /// admitted). A model already beyond the allowance (taught before this gate existed) can
    /// still learn what brings it back.
    pub(super) fn teach(&self, model: &mut Model, features: &[u32], bad: bool, rate: f32) -> bool {
        let saved: Vec<(usize, f32)> = features
            .iter()
            .filter_map(|i| Some((*i as usize, *model.weights.get(*i as usize)?)))
            .collect();
        let (bias, learned) = (model.bias, model.learned);
        if !model.learn(features, bad, rate) {
            return true;
        }
        let after = self.reference.confident_errors(model);
        if after.0 <= self.most_ham_flagged && after.1 <= self.most_bad_cleared {
            return true;
        }
        for (i, w) in saved {
            model.weights[i] = w;
        }
        model.bias = bias;
        model.learned = learned;
        let before = self.reference.confident_errors(model);
        if after.0 <= before.0 && after.1 <= before.1 {
            model.learn(features, bad, rate);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_reference_fits_the_built_in_model() {
        let reference = Reference::from_bytes(BUILTIN_REFERENCE).unwrap();
        let (ham, bad) = reference.counts();
        assert!(ham >= 200 && bad >= 200, "{ham} ham, {bad} bad");
        let model = Model::from_bytes(super::super::BUILTIN_MODEL).unwrap();
        let (ham_flagged, bad_cleared) = reference.confident_errors(&model);
        // The built-in model was not trained on these messages and gets most of them right.
        assert!(ham_flagged * 20 < ham, "{ham_flagged} of {ham}");
        assert!(bad_cleared * 10 < bad, "{bad_cleared} of {bad}");
        assert!(Gate::new(reference, &model).is_some());
    }

    #[test]
    fn a_reference_round_trips_and_bad_files_are_refused() {
        let reference = Reference::new(
            12,
            vec![
                (true, vec![4095, 0, 7, 7, 300]),
                (false, vec![]),
                (false, vec![1]),
            ],
        );
        let bytes = reference.to_bytes().unwrap();
        let back = Reference::from_bytes(&bytes).unwrap();
        assert_eq!(back, reference);
        assert_eq!(back.messages[0].1, vec![0, 7, 7, 300, 4095]);
        assert_eq!(back.counts(), (2, 1));
        // A feature beyond the declared space, a wrong magic, trailing bytes: refused.
        let mut plain = inflate(&bytes, MAX_BYTES).unwrap();
        plain[MAGIC.len()] = 11;
        assert!(Reference::from_bytes(&deflate(&plain).unwrap()).is_err());
        plain[MAGIC.len()] = 12;
        plain.push(0);
        assert!(Reference::from_bytes(&deflate(&plain).unwrap()).is_err());
        assert!(Reference::from_bytes(b"JMNGREF1").is_err());
        assert!(Reference::from_bytes(&deflate(b"JMNGRAM1\x0c").unwrap()).is_err());
    }
}
