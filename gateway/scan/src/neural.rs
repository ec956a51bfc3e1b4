//! The content model: a small network (embedding bag → 32 ReLU units → ham/spam/phish) over the
//! hashed features of [`super::features`], trained by `gateway/model/train/train.py` on the
//! public corpora and run on the CPU with tract. The shipped model is built into the binary;
//! `scan.model` may name another file (e.g. one that arrived by offline upgrade).

use std::io::Cursor;
use std::sync::Mutex;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::dims;
use tract_onnx::tract_core::model::TypedSimpleState;

use super::Symbols;
use super::features::{self, MAX_FEATURES};
use super::message::Message;
use super::model::{Classifier, Probabilities};

/// The model trained on the dev corpora (see `gateway/model/MODEL_CARD.md`).
pub const BUILTIN_MODEL: &[u8] = include_bytes!("../../model/content.onnx");

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
#[error("content model: {0}")]
pub struct ModelError(String);

impl ModelError {
    /// A model file that could not be read.
    pub fn from_io(path: &str, e: &std::io::Error) -> Self {
        ModelError(format!("cannot read {path}: {e}"))
    }
}

type Plan = std::sync::Arc<TypedRunnableModel>;

/// A loaded, optimised content model.
pub struct ContentModel {
    plan: Plan,
    /// Run states kept between messages (one per thread that ran at once), so a run does not
    /// set up its buffers anew.
    idle_states: Mutex<Vec<TypedSimpleState>>,
}

impl ContentModel {
    /// Loads an ONNX model with the input contract of `train.py`: indices `[N]` int64, weights
    /// `[1, N]` float with 1/n per feature; output probabilities `[1, 3]`. The trainer exports
    /// N = 1024 (the most features a message has); the length is loaded as a symbol, so each run
    /// gathers only the message's own embedding rows instead of 1024 padded ones.
    pub fn load(bytes: &[u8]) -> Result<Self, ModelError> {
        let err = |e: TractError| ModelError(format!("{e:#}"));
        let model = tract_onnx::onnx()
            .model_for_read(&mut Cursor::new(bytes))
            .map_err(err)?;
        let n = model.sym("N");
        let plan = model
            .with_input_fact(0, i64::fact(dims!(n)).into())
            .map_err(err)?
            .with_input_fact(1, f32::fact(dims!(1, n)).into())
            .map_err(err)?
            .into_optimized()
            .map_err(err)?
            .into_runnable()
            .map_err(err)?;
        let model = Self {
            plan,
            idle_states: Mutex::new(Vec::new()),
        };
        // A model that does not take our input shape fails here, not on the first message.
        model.probabilities(&[1])?;
        Ok(model)
    }

    /// The model built into the binary.
    pub fn builtin() -> Result<Self, ModelError> {
        Self::load(BUILTIN_MODEL)
    }

    /// (ham, spam, phish) probabilities for sorted feature indices (at most
    /// [`MAX_FEATURES`] are used).
    pub fn probabilities(&self, indices: &[u32]) -> Result<[f32; 3], ModelError> {
        let err = |e: TractError| ModelError(format!("{e:#}"));
        let indices = &indices[..indices.len().min(MAX_FEATURES)];
        // No features reads the padding row with weight 0, as the trainer's all-padding input.
        let (idx, weight): (Vec<i64>, f32) = match indices.len() {
            0 => (vec![0], 0.0),
            n => (
                indices.iter().map(|&i| i64::from(i)).collect(),
                1.0 / n as f32,
            ),
        };
        let n = idx.len();
        let idx = Tensor::from_shape(&[n], &idx).map_err(err)?;
        let weights = Tensor::from_shape(&[1, n], &vec![weight; n]).map_err(err)?;
        let idle = self.idle_states.lock().ok().and_then(|mut s| s.pop());
        let mut state = match idle {
            Some(state) => state,
            None => self.plan.spawn().map_err(err)?,
        };
        let out = state.run(tvec!(idx.into(), weights.into())).map_err(err)?;
        if let Ok(mut idle) = self.idle_states.lock() {
            idle.push(state);
        }
        let view = out[0].to_plain_array_view::<f32>().map_err(err)?;
        let p: Vec<f32> = view.iter().copied().collect();
        match p.as_slice() {
            [ham, spam, phish] => Ok([*ham, *spam, *phish]),
            _ => Err(ModelError(format!("expected 3 outputs, got {}", p.len()))),
        }
    }
}

impl Classifier for ContentModel {
    fn classify(&self, message: &Message, symbols: &Symbols) -> Result<Probabilities, String> {
        let f = features::extract(message, symbols);
        let [_, spam, phish] = self.probabilities(&f).map_err(|e| e.to_string())?;
        Ok(Probabilities { spam, phish })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tract reproduces the trainer's numpy outputs on the committed sample.
    #[test]
    fn tract_matches_the_trainer() {
        let model = ContentModel::builtin().unwrap();
        let parity = include_str!("../../model/parity.tsv");
        let mut worst = 0f32;
        let mut rows = 0;
        for line in parity.lines() {
            let (idx, probs) = line.split_once('\t').unwrap();
            let idx: Vec<u32> = idx.split_whitespace().map(|x| x.parse().unwrap()).collect();
            let want: Vec<f32> = probs
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            let got = model.probabilities(&idx).unwrap();
            for (g, w) in got.iter().zip(&want) {
                worst = worst.max((g - w).abs());
            }
            rows += 1;
        }
        assert!(rows >= 20, "{rows} parity rows");
        assert!(worst < 1e-4, "max abs diff {worst}");
    }

    #[test]
    fn a_broken_model_file_is_a_clear_error() {
        let e = ContentModel::load(b"not an onnx file").err().unwrap();
        assert!(e.to_string().starts_with("content model:"), "{e}");
    }
}
