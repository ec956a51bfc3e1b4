//! `jianmen eval`: accuracy of the whole verdict path (checks, rules and the content model, the
//! same as `jianmen scan`) on the internal test split of a corpora directory. Prints a table and
//! writes a JSON report with, per corpus and in total: `messages`, `ham`, `spam`, `phish`,
//! `spam_caught_pct`, `phish_caught_pct`, `fp_pct`, `one_minus_roca_pct`, `cpu_ms_per_msg`, the catch rate at 0.1 % and 0.02 % false positives
//! and a confusion table, and the members that could not be read (`unreadable`, counted in no
//! figure); and draws the ROC curve. With `--rules` it judges the development split instead (the
//! part rules may be tuned on) and adds, per symbol, how often it fired on ham, spam and
//! phishing (`rules`), suspects first: rules that give points toward spam while firing on
//! legitimate mail at least a tenth as often as on what they are meant to catch.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context as _, Result};
use jianmen_scan::accuracy::{self, Curve, Judged};
use jianmen_scan::message::Message;
use jianmen_scan::model::Classifier;
use jianmen_scan::ngram;
use jianmen_scan::pipeline::{Context, load_model};

use crate::commands::features::{Item, load_corpora};

/// Options of `jianmen eval`.
#[derive(clap::Args)]
pub struct Args {
    /// Directory of corpora, e.g. ../shared/corpora.
    #[arg(long)]
    pub corpora: PathBuf,
    /// JSON report to write.
    #[arg(long)]
    pub report: PathBuf,
    /// Worker threads.
    #[arg(long, short, default_value_t = 2)]
    pub jobs: usize,
    /// Score every message, not only the test split.
    #[arg(long)]
    pub all: bool,
    /// Also write one line per message: corpus, label, member path, class, score, CPU µs and
    /// the verdict's symbols as `NAME=points` separated by commas (TSV).
    #[arg(long)]
    pub scores: Option<PathBuf>,
    /// Content (word) model: `builtin`, `none` or an ONNX file.
    #[arg(long, default_value = "builtin")]
    pub model: String,
    /// Judge the development split and report how often each symbol fires per label.
    #[arg(long)]
    pub rules: bool,
    /// Judge the validation fold of the development split instead (what the 4-gram model was
    /// not trained on; its points are chosen there).
    #[arg(long, conflicts_with_all = ["rules", "all"])]
    pub validation: bool,
    /// The 4-gram model: `builtin` or `none`.
    #[arg(long, default_value = "builtin")]
    pub ngram: String,
    /// Judge in arrival order on one thread and teach the 4-gram model every message the
    /// verdict got wrong, right after it — as a site whose users release false positives and
    /// report missed spam would.
    #[arg(long)]
    pub learn_errors: bool,
    /// Leave this corpus out (repeatable): e.g. `enron_spam`, whose messages have only Subject
    /// and body, so structure rules fire on its ham for a reason real mail does not have.
    #[arg(long, value_name = "CORPUS")]
    pub skip: Vec<String>,
    /// TREC's immediate-feedback protocol on one corpus instead: the 4-gram model starts
    /// empty, and each message, in the corpus's arrival order, is scored and then learned.
    #[arg(long, value_name = "CORPUS", conflicts_with_all = ["rules", "all"])]
    pub online: Option<String>,
    /// The 4-gram model's learning rate (with `--online`).
    #[arg(long, default_value_t = ngram::DEFAULT_RATE)]
    pub rate: f32,
    /// Bits of the 4-gram model's feature space (with `--online`).
    #[arg(long, default_value_t = ngram::DEFAULT_BITS,
          value_parser = clap::value_parser!(u8).range(12..=23))]
    pub bits: u8,
}

/// TREC 2007's best (1−ROCA)% on trec07p, immediate feedback (Cormack, TREC 2007 overview).
const TREC_2007_BEST: f64 = 0.0055;

/// What [`judge`] made of a set of messages.
pub struct Judgement {
    /// Each judged message with its index in the items, in item order.
    pub judged: Vec<(usize, Judged)>,
    /// The symbols of each judged message's verdict and their points, in the same order.
    pub symbols: Vec<Vec<(String, f64)>>,
    /// Members that could not be read (their corpus path), which no figure includes.
    pub unreadable: Vec<String>,
}

/// Scores `items` on `jobs` threads with the offline pipeline, the content `model` and the
/// 4-gram model `ngram` (`None`: without it); `learner`, when given, learns every message
/// whose verdict was wrong right after it is judged.
pub fn judge(
    items: &[Item],
    jobs: usize,
    model: Option<Arc<dyn Classifier>>,
    ngram: Option<Arc<ngram::SiteModel>>,
    learner: Option<Arc<ngram::SiteModel>>,
) -> Result<Judgement> {
    let pipeline = Arc::new(
        jianmen_scan::pipeline::Pipeline::offline()?
            .with_classifier(model)
            .with_ngram(ngram),
    );
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(items.len()));
    let unreadable = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, 64) {
            scope.spawn(|| {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
                    return;
                };
                let ctx = Context::default();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else { break };
                    let Ok(raw) = std::fs::read(&item.file) else {
                        if let Ok(mut u) = unreadable.lock() {
                            u.push(item.path.clone());
                        }
                        continue;
                    };
                    let started = Instant::now();
                    let analysis = rt.block_on(pipeline.analyse(&raw, &ctx));
                    let (r, _) = pipeline.report(&analysis, &ctx, None, None);
                    let micros = started.elapsed().as_micros() as u64;
                    let bad = item.label != "ham";
                    if let Some(learner) = &learner
                        && bad == (r.class.as_str() == "clean")
                    {
                        learner.learn(&Message::parse(&raw), bad);
                    }
                    let symbols = r
                        .symbols
                        .iter()
                        .map(|h| (h.name.clone(), h.score))
                        .collect();
                    if let Ok(mut out) = results.lock() {
                        out.push((
                            index,
                            Judged {
                                corpus: item.corpus.clone(),
                                label: item.label.clone(),
                                class: r.class.as_str().to_owned(),
                                score: r.score,
                                micros,
                            },
                            symbols,
                        ));
                    }
                }
            });
        }
    });
    let mut results = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("results lock poisoned"))?;
    results.sort_by_key(|(i, _, _)| *i);
    let (judged, symbols) = results.into_iter().map(|(i, j, s)| ((i, j), s)).unzip();
    let mut unreadable = unreadable
        .into_inner()
        .map_err(|_| anyhow::anyhow!("results lock poisoned"))?;
    unreadable.sort();
    Ok(Judgement {
        judged,
        symbols,
        unreadable,
    })
}

/// Runs the evaluation: prints the table, writes the JSON report, a ROC plot beside it
/// (`.svg`) and, when asked, one line per message (`corpus label path class score micros`).
pub fn run(args: Args) -> Result<()> {
    let Args {
        corpora,
        report,
        jobs,
        all: all_messages,
        scores,
        model,
        rules,
        validation,
        ngram: ngram_setting,
        learn_errors,
        skip,
        online: online_corpus,
        rate,
        bits,
    } = args;
    let (corpora, report, scores) = (corpora.as_path(), report.as_path(), scores.as_deref());
    let work = tempfile::tempdir()?;
    if let Some(corpus) = online_corpus {
        let mut items: Vec<_> = load_corpora(corpora, work.path())?
            .into_iter()
            .filter(|i| i.corpus == corpus)
            .collect();
        if items.is_empty() {
            anyhow::bail!("no corpus {corpus} under {}", corpora.display());
        }
        items.sort_by_key(|i| arrival(&i.path));
        return online(&items, jobs, rate, bits, report);
    }
    let model = load_model(&model, None, None).map_err(anyhow::Error::msg)?;
    let ngram = ngram::SiteModel::load(&ngram_setting, None)
        .map_err(anyhow::Error::msg)?
        .map(Arc::new);
    let mut items: Vec<_> = load_corpora(corpora, work.path())?
        .into_iter()
        .filter(|i| {
            let chosen = if validation {
                i.validation
            } else {
                all_messages || i.test != rules
            };
            chosen && !skip.contains(&i.corpus)
        })
        .collect();
    let learner = if learn_errors {
        items.sort_by_key(|i| arrival(&i.path));
        let site = ngram
            .clone()
            .context("--learn-errors needs the 4-gram model")?;
        Some(site)
    } else {
        None
    };
    let jobs = if learn_errors { 1 } else { jobs };
    let Judgement {
        judged: results,
        symbols,
        unreadable,
    } = judge(&items, jobs, model, ngram, learner)?;
    for path in &unreadable {
        eprintln!("jianmen eval: cannot read {path}: left out of every figure");
    }
    if let Some(path) = scores {
        let mut out = String::new();
        for ((i, j), symbols) in results.iter().zip(&symbols) {
            let symbols: Vec<String> = symbols.iter().map(|(n, p)| format!("{n}={p}")).collect();
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                j.corpus,
                j.label,
                items[*i].path,
                j.class,
                j.score,
                j.micros,
                symbols.join(",")
            );
        }
        std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let judged: Vec<Judged> = results.into_iter().map(|(_, j)| j).collect();
    let per = accuracy::report(&judged);
    print!("{}", accuracy::table(&per));
    let hits = rules
        .then(|| accuracy::rule_hits(judged.iter().zip(&symbols).map(|(j, s)| (j, s.as_slice()))));
    if let Some(hits) = &hits {
        print!("\n{}", accuracy::rules_table(hits));
    }
    let split = match (all_messages, rules, validation) {
        (true, _, _) => "all",
        (false, true, _) => "dev",
        (false, false, true) => "validation",
        (false, false, false) => "test",
    };
    if !unreadable.is_empty() {
        println!(
            "{} message(s) could not be read and are not counted",
            unreadable.len()
        );
    }
    let mut doc = serde_json::json!({ "split": split, "corpora": per, "unreadable": unreadable });
    if let Some(hits) = hits {
        doc["rules"] = serde_json::to_value(hits)?;
    }
    std::fs::write(report, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("cannot write {}", report.display()))?;
    let svg = report.with_extension("svg");
    let title = format!("Jianmen ROC, {split} split of {}", corpora.display());
    std::fs::write(
        &svg,
        accuracy::roc_svg(&title, &[Curve::of("jianmen", &judged)]),
    )
    .with_context(|| format!("cannot write {}", svg.display()))?;
    Ok(())
}

/// A member's place in its corpus's arrival order: TREC numbers its messages (`inmail.N`);
/// other corpora keep their listing order.
fn arrival(path: &str) -> (u64, String) {
    let n = path
        .rsplit('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    (n, path.to_owned())
}

/// TREC's immediate-feedback protocol: each message is scored by the model learned from all
/// before it, then learned with its true label. Features are computed ahead on `jobs`
/// threads; scoring and learning stay in arrival order.
fn online(
    items: &[Item],
    jobs: usize,
    rate: f32,
    bits: u8,
    report: &std::path::Path,
) -> Result<()> {
    let features = crate::commands::train_ngram::features_of(items, bits, jobs)?;
    let started = Instant::now();
    let mut model = ngram::Model::empty(bits);
    let mut judged = Vec::with_capacity(items.len());
    for (item, features) in items.iter().zip(&features) {
        let Some(features) = features else {
            eprintln!("jianmen eval: cannot read {}: left out", item.path);
            continue;
        };
        let score = model.log_odds(features);
        judged.push(Judged {
            corpus: format!("{} (online)", item.corpus),
            label: item.label.clone(),
            class: if score > 0.0 { "spam" } else { "clean" }.to_owned(),
            score: f64::from(score),
            micros: 0,
        });
        model.learn(features, item.label != "ham", rate);
    }
    let per = accuracy::report(&judged);
    print!("{}", accuracy::table(&per));
    let roca = per
        .get("total")
        .and_then(|m| m["one_minus_roca_pct"].as_f64());
    println!(
        "4-gram model, immediate feedback: (1-ROCA)% {} (TREC 2007's best on trec07p: {TREC_2007_BEST}); {} messages learned of {}, {:.1} s",
        roca.map_or("–".to_owned(), |r| format!("{r:.4}")),
        model.learned(),
        judged.len(),
        started.elapsed().as_secs_f64()
    );
    let doc = serde_json::json!({
        "protocol": "immediate feedback",
        "rate": rate,
        "bits": bits,
        "corpora": per,
        "trec_2007_best_one_minus_roca_pct": TREC_2007_BEST,
    });
    std::fs::write(report, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("cannot write {}", report.display()))
}
