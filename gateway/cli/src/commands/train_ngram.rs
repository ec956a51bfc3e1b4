//! `jianmen train-ngram`: trains the 4-gram model the gateway ships (`gateway/model/ngram.bin`)
//! on the training part of a corpora directory — neither the internal test split nor the
//! validation fold the verdict's points for it are chosen on — and prints how it alone does on
//! that validation fold. Beside it, it writes the reference the site learner's gate checks
//! every correction against: features of validation-fold messages (`ngram::Reference`).

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, Result};
use jianmen_scan::accuracy::{self, Judged};
use jianmen_scan::message::Message;
use jianmen_scan::ngram;

use crate::commands::features::{Item, load_corpora};

/// Options of `jianmen train-ngram`.
#[derive(clap::Args)]
pub struct Args {
    /// Directory of corpora, e.g. ../shared/corpora.
    #[arg(long)]
    pub corpora: PathBuf,
    /// Model file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Reference file to write (default: `ngram-reference.bin` beside the model).
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Leave this corpus out (repeatable): e.g. `enron_spam`, whose messages have only Subject
    /// and body, so its ham would teach that a message without headers is legitimate.
    #[arg(long, value_name = "CORPUS")]
    pub skip: Vec<String>,
    /// Passes over the training messages.
    #[arg(long, default_value_t = 3)]
    pub passes: usize,
    /// Bits of the hashed feature space.
    #[arg(long, default_value_t = ngram::DEFAULT_BITS,
          value_parser = clap::value_parser!(u8).range(12..=23))]
    pub bits: u8,
    /// Worker threads for reading and parsing.
    #[arg(long, short, default_value_t = 2)]
    pub jobs: usize,
}

/// Reference messages per corpus of legitimate mail, and per corpus and class of bad mail.
const REFERENCE_HAM_PER_CORPUS: usize = 100;
const REFERENCE_BAD_PER_CORPUS: usize = 50;

/// Features of every item, computed on `jobs` threads; `None` for a member that cannot be read.
pub fn features_of(items: &[Item], bits: u8, jobs: usize) -> Result<Vec<Option<Vec<u32>>>> {
    let next = AtomicUsize::new(0);
    let out = Mutex::new(vec![None; items.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, 64) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else { break };
                    let found = std::fs::read(&item.file)
                        .ok()
                        .map(|raw| ngram::features(&Message::parse(&raw), bits));
                    if let Ok(mut f) = out.lock() {
                        f[index] = found;
                    }
                }
            });
        }
    });
    out.into_inner()
        .map_err(|_| anyhow::anyhow!("features lock poisoned"))
}

/// Trains, writes the model and prints the validation figures.
pub fn run(args: Args) -> Result<()> {
    let work = tempfile::tempdir()?;
    let items: Vec<Item> = load_corpora(&args.corpora, work.path())?
        .into_iter()
        .filter(|i| !i.test && !args.skip.contains(&i.corpus))
        .collect();
    let features = features_of(&items, args.bits, args.jobs)?;
    // Corpora interleaved in a fixed pseudo-random order: an online learner must not see one
    // corpus after another, or it forgets the first.
    let mut order: Vec<usize> = (0..items.len())
        .filter(|i| !items[*i].validation && features[*i].is_some())
        .collect();
    order.sort_by_key(|i| mix(&items[*i].path));
    let mut model = ngram::Model::empty(args.bits);
    for _ in 0..args.passes {
        for i in &order {
            if let Some(f) = &features[*i] {
                model.learn(f, items[*i].label != "ham", ngram::DEFAULT_RATE);
            }
        }
    }
    let judged: Vec<Judged> = items
        .iter()
        .zip(&features)
        .filter(|(i, _)| i.validation)
        .filter_map(|(item, f)| {
            let p = model.probability(f.as_ref()?);
            Some(Judged {
                corpus: item.corpus.clone(),
                label: item.label.clone(),
                class: if p > 0.5 { "spam" } else { "clean" }.to_owned(),
                score: f64::from(p),
                micros: 0,
            })
        })
        .collect();
    println!(
        "trained on {} messages ({} updates over {} passes); the validation fold, 4-gram model alone:",
        order.len(),
        model.learned(),
        args.passes
    );
    print!("{}", accuracy::table(&accuracy::report(&judged)));
    let bytes = model.to_bytes()?;
    std::fs::write(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("wrote {} ({} bytes)", args.out.display(), bytes.len());
    let reference = reference(&items, &features, args.bits);
    let (ham, bad) = reference.counts();
    let (ham_flagged, bad_cleared) = reference.confident_errors(&model);
    let bytes = reference.to_bytes()?;
    let path = args
        .reference
        .unwrap_or_else(|| args.out.with_file_name("ngram-reference.bin"));
    std::fs::write(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "wrote {} ({} bytes): {ham} legitimate and {bad} bad messages of the validation fold; the model is confidently wrong on {ham_flagged} and {bad_cleared}",
        path.display(),
        bytes.len()
    );
    Ok(())
}

/// The gate's reference: of each corpus's validation fold, a fixed pseudo-random choice of
/// legitimate messages and of each class of bad ones.
fn reference(items: &[Item], features: &[Option<Vec<u32>>], bits: u8) -> ngram::Reference {
    let mut chosen: Vec<(u64, usize)> = items
        .iter()
        .enumerate()
        .filter(|(i, item)| item.validation && features[*i].is_some())
        .map(|(i, item)| (mix(&item.path), i))
        .collect();
    chosen.sort_unstable();
    let mut taken = std::collections::BTreeMap::<(&str, &str), usize>::new();
    let mut messages = Vec::new();
    for (_, i) in chosen {
        let (item, Some(f)) = (&items[i], &features[i]) else {
            continue;
        };
        let most = if item.label == "ham" {
            REFERENCE_HAM_PER_CORPUS
        } else {
            REFERENCE_BAD_PER_CORPUS
        };
        let n = taken.entry((&item.corpus, &item.label)).or_default();
        if *n < most {
            *n += 1;
            messages.push((item.label != "ham", f.clone()));
        }
    }
    ngram::Reference::new(bits, messages)
}

/// A hash of its own, not the split's FNV-1a: an order by the split's hash would line the
/// messages up by fold.
fn mix(path: &str) -> u64 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in path.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^ (h >> 29)
}
