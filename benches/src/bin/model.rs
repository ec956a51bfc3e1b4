//! The content model's cost, taken apart: over messages sampled from the dev corpora, one
//! thread, it prints the microseconds per message spent parsing, computing the hashed
//! features, and running the network with tract — and tract's fixed cost per run (the same
//! network on a single feature), so the share of the embedding gather is the difference.
//!
//! Usage: `cargo run --release -p jianmen-benches --bin model [-- CORPORA_DIR [PER_CORPUS]]`
//! (`$JIANMEN_CORPORA`, then `../shared/corpora`; 500 messages per corpus by default).

use std::hint::black_box;
use std::time::{Duration, Instant};

use jianmen_benches::{corpora_and_count, corpus_dirs, first_messages};
use jianmen_scan::Symbols;
use jianmen_scan::features;
use jianmen_scan::message::Message;
use jianmen_scan::neural::ContentModel;

const DEFAULT_PER_CORPUS: usize = 500;
/// Each stage is repeated over the whole sample this many times; the fastest pass is kept.
const PASSES: usize = 3;

fn main() {
    let Some((corpora, per_corpus)) = corpora_and_count(DEFAULT_PER_CORPUS) else {
        return;
    };
    let raw = sample(&corpora, per_corpus);
    let n = raw.len();
    if n == 0 {
        println!("no messages in {}; nothing to measure", corpora.display());
        return;
    }
    println!("Sample: {n} messages ({per_corpus} per corpus at most), one thread\n");

    let started = Instant::now();
    let model = ContentModel::builtin().expect("built-in model");
    println!(
        "model load and optimisation: {} ms",
        started.elapsed().as_millis()
    );

    let parse = fastest(|| {
        for m in &raw {
            black_box(Message::parse(m));
        }
    });
    let messages: Vec<Message> = raw.iter().map(|m| Message::parse(m)).collect();
    let symbols = Symbols::default();
    let extract = fastest(|| {
        for m in &messages {
            black_box(features::extract(m, &symbols));
        }
    });
    let indices: Vec<Vec<u32>> = messages
        .iter()
        .map(|m| features::extract(m, &symbols))
        .collect();
    let run = fastest(|| {
        for f in &indices {
            black_box(model.probabilities(f).expect("model runs"));
        }
    });
    let fixed = fastest(|| {
        for _ in 0..n {
            black_box(model.probabilities(&[1]).expect("model runs"));
        }
    });
    let mut counts: Vec<usize> = indices.iter().map(Vec::len).collect();
    counts.sort_unstable();
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "features per message: median {}, p90 {}, at the cap ({}) {:.1}%",
        counts[n / 2],
        counts[n * 9 / 10],
        features::MAX_FEATURES,
        100.0
            * counts
                .iter()
                .filter(|&&c| c == features::MAX_FEATURES)
                .count() as f64
            / n as f64
    );
    println!("{:<44} {:>8}", "stage", "µs/msg");
    println!("{:<44} {:>8.1}", "parse (not the model's cost)", per(parse));
    println!("{:<44} {:>8.1}", "features", per(extract));
    println!("{:<44} {:>8.1}", "network (tract run)", per(run));
    println!(
        "{:<44} {:>8.1}",
        "  of which fixed per run (one feature)",
        per(fixed)
    );
    println!(
        "model: {:.1} µs per message (features + network; goal ≤ 200)",
        per(extract + run)
    );
}

/// The first `per_corpus` messages of each corpus, read into memory.
fn sample(corpora: &std::path::Path, per_corpus: usize) -> Vec<Vec<u8>> {
    let work = tempfile::tempdir().expect("tempdir");
    let mut out = Vec::new();
    for dir in corpus_dirs(corpora) {
        let into = work.path().join(dir.file_name().unwrap_or_default());
        out.extend(
            first_messages(&dir, &into, per_corpus)
                .iter()
                .filter_map(|file| std::fs::read(file).ok()),
        );
    }
    out
}

/// The fastest of [`PASSES`] timed runs of `pass`.
fn fastest(mut pass: impl FnMut()) -> Duration {
    (0..PASSES)
        .map(|_| {
            let t = Instant::now();
            pass();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}
