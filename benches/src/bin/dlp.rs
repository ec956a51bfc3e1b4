//! Data-leak prevention on legitimate mail: every ham message of the dev corpora inspected by
//! `jianmen_scan::dlp::inspect` as if it were leaving the organisation (subject, body text and
//! the text of its attachments). Prints, per corpus and detector, how many ham messages per
//! 10,000 have a finding — what a policy firing on a single identifier would stop — and how
//! many carry 5 or more distinct ones; then the DLP step's cost in CPU-µs per message (text
//! extraction and detectors; MIME parsing, which every scan shares, excluded).
//!
//! Usage: `cargo run --release -p jianmen-benches --bin dlp [-- CORPORA_DIR]`. The corpora
//! directory defaults to `$JIANMEN_CORPORA`, then `../shared/corpora`; without it the bench says
//! so and exits 0. Needs tar with zstd.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use jianmen_benches::{corpora_dir, corpus_dirs, unpack_corpus};
use jianmen_scan::dlp::identifiers::Detector;
use jianmen_scan::message::Message;
use jianmen_scan::pool::Deadline;

/// The threshold an "≥ N identifiers" policy might use, reported beside single hits.
const MANY: usize = 5;
/// A bulk threshold, for detectors such as e-mail addresses that legitimate mail carries a few of.
const BULK: usize = 50;

fn main() {
    let corpora = corpora_dir(std::env::args().nth(1));
    if !corpora.is_dir() {
        println!(
            "corpora not found at {} (set JIANMEN_CORPORA); nothing to measure",
            corpora.display()
        );
        return;
    }
    let today = chrono::Local::now().date_naive();
    let work = tempfile::tempdir_in("/var/tmp").expect("tempdir");

    println!(
        "{:<20} {:>7} {:<15} {:>14} {:>16} {:>16}",
        "corpus",
        "ham",
        "detector",
        "hit /10,000",
        format!("≥{MANY} /10,000"),
        format!("≥{BULK} /10,000")
    );
    let (mut messages, mut spent) = (0usize, Duration::ZERO);
    for dir in &corpus_dirs(&corpora) {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let ham = ham_paths(dir);
        if ham.is_empty() {
            continue;
        }
        let root = work.path().join(&name);
        unpack_corpus(dir, &root);
        let mut hits: BTreeMap<Detector, (usize, usize, usize)> = BTreeMap::new();
        let mut read = 0;
        for path in &ham {
            let Ok(raw) = std::fs::read(root.join(path)) else {
                continue;
            };
            read += 1;
            let message = Message::parse(&raw);
            let started = Instant::now();
            let (_, inspection) =
                jianmen_scan::dlp::inspect(&message, &Deadline::unlimited(), today);
            spent += started.elapsed();
            for (detector, f) in inspection.findings.iter() {
                let entry = hits.entry(detector).or_default();
                entry.0 += 1;
                entry.1 += usize::from(f.distinct >= MANY);
                entry.2 += usize::from(f.distinct >= BULK);
            }
        }
        messages += read;
        let per_10k = |n: usize| n as f64 * 10_000.0 / read.max(1) as f64;
        if hits.is_empty() {
            println!(
                "{name:<20} {read:>7} {:<15} {:>14} {:>16} {:>16}",
                "(none)", 0, 0, 0
            );
        }
        for (detector, (any, many, bulk)) in &hits {
            println!(
                "{name:<20} {read:>7} {:<15} {:>14.1} {:>16.1} {:>16.1}",
                detector.name(),
                per_10k(*any),
                per_10k(*many),
                per_10k(*bulk)
            );
        }
        std::fs::remove_dir_all(&root).ok();
    }
    println!(
        "DLP step: {:.1} µs per message over {messages} ham messages (one thread, MIME parsing excluded)",
        spent.as_secs_f64() * 1e6 / messages.max(1) as f64
    );
}

/// The archive paths of a corpus's ham messages, from its `labels.tsv`.
fn ham_paths(dir: &Path) -> Vec<String> {
    let labels = std::fs::read_to_string(dir.join("labels.tsv")).expect("labels.tsv");
    labels
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let path = fields.next()?;
            (fields.next()? == "ham").then(|| path.to_owned())
        })
        .collect()
}
