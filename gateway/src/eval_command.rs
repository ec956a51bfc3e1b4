//! `jianmen eval`: accuracy of the whole verdict path (checks, rules and the content model, the
//! same as `jianmen scan`) on the internal test split of a corpora directory. Prints a table and
//! writes a JSON report with, per corpus and in total: `messages`, `ham`, `spam`, `phish`,
//! `spam_caught_pct`, `phish_caught_pct`, `fp_pct`, `one_minus_roca_pct`, `cpu_ms_per_msg`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context as _, Result};
use jianmen::scan::pipeline::Context;
use jianmen::scan::verdict::Class;

use crate::features_command::load_corpora;

/// One judged message: label, flagged (verdict not clean), score, CPU microseconds.
struct Judged {
    corpus: String,
    label: String,
    flagged: bool,
    score: f64,
    micros: u64,
}

/// Runs the evaluation; `all_messages` scores the train split too.
pub fn run(corpora: &Path, report: &Path, jobs: usize, all_messages: bool) -> Result<()> {
    let work = tempfile::tempdir()?;
    let items: Vec<_> = load_corpora(corpora, work.path())?
        .into_iter()
        .filter(|i| all_messages || i.test)
        .collect();
    let pipeline = crate::scan_command::offline_pipeline()?;
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, 64) {
            scope.spawn(|| {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
                    return;
                };
                let ctx = Context::default();
                while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let Ok(raw) = std::fs::read(&item.file) else {
                        continue;
                    };
                    let started = Instant::now();
                    let analysis = rt.block_on(pipeline.analyse(&raw, &ctx));
                    let (r, _) = pipeline.report(&analysis, &ctx, None);
                    let micros = started.elapsed().as_micros() as u64;
                    if let Ok(mut out) = results.lock() {
                        out.push(Judged {
                            corpus: item.corpus.clone(),
                            label: item.label.clone(),
                            flagged: r.class != Class::Clean,
                            score: r.score,
                            micros,
                        });
                    }
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("results lock poisoned"))?;
    let mut per: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut corpora_names: Vec<String> = results.iter().map(|j| j.corpus.clone()).collect();
    corpora_names.sort();
    corpora_names.dedup();
    println!(
        "{:<20} {:>8} {:>6} {:>6} {:>6} {:>8} {:>8} {:>7} {:>9} {:>8}",
        "corpus",
        "messages",
        "ham",
        "spam",
        "phish",
        "spam %",
        "phish %",
        "FP %",
        "1-ROCA %",
        "CPU-ms"
    );
    for name in corpora_names.iter().map(String::as_str).chain(["total"]) {
        let set: Vec<&Judged> = results
            .iter()
            .filter(|j| name == "total" || j.corpus == name)
            .collect();
        let m = metrics(&set);
        let f = |k: &str| m[k].as_f64().map_or("–".to_owned(), |v| format!("{v:.2}"));
        println!(
            "{name:<20} {:>8} {:>6} {:>6} {:>6} {:>8} {:>8} {:>7} {:>9} {:>8}",
            m["messages"],
            m["ham"],
            m["spam"],
            m["phish"],
            f("spam_caught_pct"),
            f("phish_caught_pct"),
            f("fp_pct"),
            f("one_minus_roca_pct"),
            f("cpu_ms_per_msg")
        );
        per.insert(name.to_owned(), m);
    }
    let split = if all_messages { "all" } else { "test" };
    let doc = serde_json::json!({ "split": split, "corpora": per });
    std::fs::write(report, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("cannot write {}", report.display()))?;
    Ok(())
}

fn metrics(set: &[&Judged]) -> serde_json::Value {
    let count = |l: &str| set.iter().filter(|j| j.label == l).count();
    let pct = |l: &str| {
        let of: Vec<_> = set.iter().filter(|j| j.label == l).collect();
        (!of.is_empty())
            .then(|| 100.0 * of.iter().filter(|j| j.flagged).count() as f64 / of.len() as f64)
    };
    let ham: Vec<f64> = set
        .iter()
        .filter(|j| j.label == "ham")
        .map(|j| j.score)
        .collect();
    let bad: Vec<f64> = set
        .iter()
        .filter(|j| j.label != "ham")
        .map(|j| j.score)
        .collect();
    let cpu = set.iter().map(|j| j.micros).sum::<u64>() as f64 / 1000.0 / set.len().max(1) as f64;
    serde_json::json!({
        "messages": set.len(),
        "ham": count("ham"),
        "spam": count("spam"),
        "phish": count("phish"),
        "spam_caught_pct": pct("spam"),
        "phish_caught_pct": pct("phish"),
        "fp_pct": pct("ham"),
        "one_minus_roca_pct": one_minus_roc_area(&bad, &ham),
        "cpu_ms_per_msg": cpu,
    })
}

/// (1 − area under the ROC curve) × 100 of the verdict score, ties counted half; `None` without
/// both classes.
fn one_minus_roc_area(positive: &[f64], negative: &[f64]) -> Option<f64> {
    if positive.is_empty() || negative.is_empty() {
        return None;
    }
    let mut all: Vec<(f64, bool)> = positive
        .iter()
        .map(|s| (*s, true))
        .chain(negative.iter().map(|s| (*s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mann–Whitney U over ranks, with average ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += avg_rank * all[i..j].iter().filter(|(_, p)| *p).count() as f64;
        i = j;
    }
    let (p, n) = (positive.len() as f64, negative.len() as f64);
    let auc = (rank_sum - p * (p + 1.0) / 2.0) / (p * n);
    Some((1.0 - auc) * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_area_of_perfect_random_and_inverted_scores() {
        assert_eq!(one_minus_roc_area(&[3.0, 4.0], &[1.0, 2.0]), Some(0.0));
        assert_eq!(one_minus_roc_area(&[1.0, 1.0], &[1.0, 1.0]), Some(50.0));
        assert_eq!(one_minus_roc_area(&[1.0], &[2.0]), Some(100.0));
        assert_eq!(one_minus_roc_area(&[], &[2.0]), None);
    }
}
