//! `jianmen features`: the content model's training data. Reads a directory laid out like
//! `../shared/corpora` (per corpus `*.tar.zst` + `labels.tsv`), computes every message's
//! features with the same code the scanner uses, assigns the documented train/validation/test split and
//! writes one TSV line per message: corpus, split, label, path, feature indices.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, bail};
use jianmen_scan::features;
use jianmen_scan::pipeline::Context;

/// One labelled message of a corpus.
pub struct Item {
    /// Corpus directory name.
    pub corpus: String,
    /// Member path in the archive.
    pub path: String,
    /// `ham`, `spam` or `phish`.
    pub label: String,
    /// In the internal test split.
    pub test: bool,
    /// In the validation fold of the development split: what a model trained on the rest is
    /// weighed on (the 4-gram model's points), never trained on by it.
    pub validation: bool,
    /// The unpacked message file.
    pub file: PathBuf,
}

impl Item {
    /// The split named in the trainer's input: `test`, `validation` (never trained on, so the
    /// verdict's points can be chosen on it) or `train`.
    pub fn split(&self) -> &'static str {
        if self.test {
            "test"
        } else if self.validation {
            "validation"
        } else {
            "train"
        }
    }
}

/// The held-back share of each corpus used for testing, as a fraction.
const TEST_SHARE: f64 = 0.2;

/// Which fifth of a corpus `path` falls in: 0 is the internal test split, 1 the validation
/// fold, the rest training. trec07p by time (the last fifth by TREC index is the test split,
/// the one before it validation), the others by a hash of the path.
fn fifth(corpus: &str, path: &str, trec_rank: Option<(usize, usize)>) -> u64 {
    if corpus.starts_with("trec07p")
        && let Some((rank, total)) = trec_rank
    {
        let share = rank as f64 / total.max(1) as f64;
        return if share >= 1.0 - TEST_SHARE {
            0
        } else if share >= 1.0 - 2.0 * TEST_SHARE {
            1
        } else {
            2
        };
    }
    jianmen_scan::fnv::fnv1a(path.bytes()) % 5
}

/// Whether `path` of `corpus` belongs to the internal test split: trec07p by time (the last
/// 20% by TREC index), the others by a hash of the path (about 20%).
pub fn is_test(corpus: &str, path: &str, trec_rank: Option<(usize, usize)>) -> bool {
    fifth(corpus, path, trec_rank) == 0
}

/// Unpacks every corpus under `corpora` into `work` and lists its labelled messages.
pub fn load_corpora(corpora: &Path, work: &Path) -> Result<Vec<Item>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpora)
        .with_context(|| format!("cannot read {}", corpora.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("labels.tsv").is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        bail!(
            "no corpus (a directory with labels.tsv) under {}",
            corpora.display()
        );
    }
    let mut out = Vec::new();
    for dir in dirs {
        let corpus = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let archive = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.to_string_lossy().ends_with(".tar.zst"))
            .with_context(|| format!("no .tar.zst in {}", dir.display()))?;
        let into = work.join(&corpus);
        std::fs::create_dir_all(&into)?;
        let status = Command::new("tar")
            .arg("--zstd")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&into)
            .status()
            .context("tar (needs zstd)")?;
        if !status.success() {
            bail!("cannot unpack {}", archive.display());
        }
        let labels = std::fs::read_to_string(dir.join("labels.tsv"))?;
        let rows: Vec<(String, String)> = labels
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut f = l.split('\t');
                Some((f.next()?.to_owned(), f.next()?.to_owned()))
            })
            .collect();
        let mut order: Vec<(u64, usize)> = rows
            .iter()
            .enumerate()
            .map(|(i, (p, _))| {
                let n = p
                    .rsplit('.')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(u64::MAX);
                (n, i)
            })
            .collect();
        order.sort();
        let mut rank = vec![0; rows.len()];
        for (r, (_, i)) in order.iter().enumerate() {
            rank[*i] = r;
        }
        let total = rows.len();
        for (i, (path, label)) in rows.into_iter().enumerate() {
            out.push(Item {
                test: is_test(&corpus, &path, Some((rank[i], total))),
                validation: fifth(&corpus, &path, Some((rank[i], total))) == 1,
                file: into.join(&path),
                corpus: corpus.clone(),
                path,
                label,
            });
        }
    }
    Ok(out)
}

/// Options of `jianmen features`.
#[derive(clap::Args)]
pub struct Args {
    /// Directory of corpora, e.g. ../shared/corpora.
    #[arg(long)]
    pub corpora: PathBuf,
    /// Output TSV file.
    #[arg(long)]
    pub out: PathBuf,
    /// Worker threads.
    #[arg(long, short, default_value_t = 2)]
    pub jobs: usize,
}

/// Runs the command and says how many messages it wrote.
pub fn run(args: Args) -> Result<()> {
    let work = tempfile::tempdir()?;
    let items = load_corpora(&args.corpora, work.path())?;
    let n = write(&items, &args.out, args.jobs)?;
    eprintln!("{n} messages written to {}", args.out.display());
    Ok(())
}

/// Writes the features of `items` to `out` (the trainer's input); returns how many.
pub fn write(items: &[Item], out: &Path, jobs: usize) -> Result<usize> {
    let pipeline = Arc::new(jianmen_scan::pipeline::Pipeline::offline()?);
    let writer = Mutex::new(BufWriter::new(
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?,
    ));
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| -> Result<()> {
        let mut workers = Vec::new();
        for _ in 0..jobs.clamp(1, 64) {
            workers.push(scope.spawn(|| -> Result<()> {
                let ctx = Context::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else {
                        return Ok(());
                    };
                    let Ok(raw) = std::fs::read(&item.file) else {
                        continue;
                    };
                    let (message, symbols) = pipeline.local_view(&raw, &ctx);
                    let f = features::extract(&message, &symbols);
                    let line = format!(
                        "{}\t{}\t{}\t{}\t{}\n",
                        item.corpus,
                        item.split(),
                        item.label,
                        item.path.replace(['\t', '\n'], " "),
                        f.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
                    );
                    let mut w = writer
                        .lock()
                        .map_err(|_| anyhow::anyhow!("writer lock poisoned"))?;
                    w.write_all(line.as_bytes())?;
                }
            }));
        }
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a feature worker panicked"))??;
        }
        Ok(())
    })?;
    writer
        .into_inner()
        .map_err(|_| anyhow::anyhow!("writer lock poisoned"))?
        .flush()?;
    Ok(items.len())
}
