//! How well verdicts separate legitimate mail from spam and phishing: the measures of
//! `jianmen eval`, of `benches/accuracy` (which applies them to rspamd and SpamAssassin too) and
//! of the gate that keeps a retrained model from replacing a better one.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

/// Labels a corpus gives messages, in report order.
pub const LABELS: [&str; 3] = ["ham", "spam", "phish"];
/// Classes a verdict can give, in report order.
pub const CLASSES: [&str; 6] = crate::verdict::THREAT_CLASS_NAMES;

/// One judged message.
#[derive(Debug, Clone)]
pub struct Judged {
    /// Corpus it came from.
    pub corpus: String,
    /// Its label: `ham`, `spam` or `phish`.
    pub label: String,
    /// The verdict's class (`clean` when let through).
    pub class: String,
    /// The verdict's score (higher = worse); ranks messages for the ROC.
    pub score: f64,
    /// CPU time the verdict took, in microseconds (0 when not measured).
    pub micros: u64,
}

impl Judged {
    fn flagged(&self) -> bool {
        self.class != "clean"
    }
    fn bad(&self) -> bool {
        self.label != "ham"
    }
}

/// The report's figures for one set of judged messages.
pub fn metrics(set: &[&Judged]) -> Value {
    let of = |label: &'static str| set.iter().filter(move |j| j.label == label);
    let pct = |label: &'static str| {
        let n = of(label).count();
        (n > 0).then(|| 100.0 * of(label).filter(|j| j.flagged()).count() as f64 / n as f64)
    };
    let (bad, ham) = scores(set);
    let mut confusion = serde_json::Map::new();
    for label in LABELS {
        let mut row = serde_json::Map::new();
        for class in CLASSES {
            row.insert(
                class.into(),
                of(label).filter(|j| j.class == class).count().into(),
            );
        }
        confusion.insert(label.into(), row.into());
    }
    let cpu = set.iter().map(|j| j.micros).sum::<u64>() as f64 / 1000.0 / set.len().max(1) as f64;
    json!({
        "messages": set.len(),
        "ham": of("ham").count(),
        "spam": of("spam").count(),
        "phish": of("phish").count(),
        "spam_caught_pct": pct("spam"),
        "phish_caught_pct": pct("phish"),
        "fp_pct": pct("ham"),
        "one_minus_roca_pct": one_minus_roc_area(&bad, &ham),
        "caught_at_fp_0_1_pct": caught_at_fp(&bad, &ham, 0.001),
        "caught_at_fp_0_02_pct": caught_at_fp(&bad, &ham, 0.0002),
        "confusion": confusion,
        "cpu_ms_per_msg": cpu,
    })
}

/// Scores of the spam + phishing messages and of the ham messages of `set`.
fn scores(set: &[&Judged]) -> (Vec<f64>, Vec<f64>) {
    let pick = |bad: bool| {
        set.iter()
            .filter(|j| j.bad() == bad)
            .map(|j| j.score)
            .collect()
    };
    (pick(true), pick(false))
}

/// Per corpus (sorted) and `total`: the figures of [`metrics`].
pub fn report(judged: &[Judged]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for name in corpus_names(judged)
        .iter()
        .map(String::as_str)
        .chain(["total"])
    {
        let set: Vec<&Judged> = judged
            .iter()
            .filter(|j| name == "total" || j.corpus == name)
            .collect();
        out.insert(name.to_owned(), metrics(&set));
    }
    out
}

fn corpus_names(judged: &[Judged]) -> Vec<String> {
    let mut names: Vec<String> = judged.iter().map(|j| j.corpus.clone()).collect();
    names.sort();
    names.dedup();
    names
}

/// Header of the figures [`figures_row`] prints.
pub const FIGURES_HEADER: &str = " spam %  phish %   FP %  1-ROCA %   @FP.1%  @FP.02%  CPU-ms";

/// One corpus's rates as fixed-width columns under [`FIGURES_HEADER`].
pub fn figures_row(m: &Value) -> String {
    let f = |k: &str| m[k].as_f64().map_or("–".to_owned(), |v| format!("{v:.2}"));
    format!(
        "{:>7} {:>8} {:>6} {:>9} {:>8} {:>8} {:>7}",
        f("spam_caught_pct"),
        f("phish_caught_pct"),
        f("fp_pct"),
        f("one_minus_roca_pct"),
        f("caught_at_fp_0_1_pct"),
        f("caught_at_fp_0_02_pct"),
        f("cpu_ms_per_msg")
    )
}

/// The report as a fixed-width table, one row per corpus, then the confusion table of all.
pub fn table(report: &BTreeMap<String, Value>) -> String {
    let mut s = format!(
        "{:<20} {:>8} {:>6} {:>6} {:>6} {FIGURES_HEADER}\n",
        "corpus", "messages", "ham", "spam", "phish"
    );
    let total = report.get("total");
    let rows = report
        .iter()
        .filter(|(n, _)| n.as_str() != "total")
        .chain(report.get_key_value("total"));
    for (name, m) in rows {
        let _ = writeln!(
            s,
            "{name:<20} {:>8} {:>6} {:>6} {:>6} {}",
            m["messages"].to_string(),
            m["ham"].to_string(),
            m["spam"].to_string(),
            m["phish"].to_string(),
            figures_row(m)
        );
    }
    if let Some(total) = total {
        let _ = writeln!(s, "\nconfusion (all corpora): label → verdict class");
        let _ = write!(s, "{:<8}", "");
        for class in CLASSES {
            let _ = write!(s, " {class:>11}");
        }
        s.push('\n');
        for label in LABELS {
            let _ = write!(s, "{label:<8}");
            for class in CLASSES {
                let _ = write!(s, " {:>11}", total["confusion"][label][class].to_string());
            }
            s.push('\n');
        }
    }
    s
}

/// How often one symbol fired on each label: what finds a rule that fires on legitimate mail
/// without strong evidence (`jianmen eval --rules`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RuleHits {
    /// The symbol.
    pub symbol: String,
    /// The points it added (its largest, when they differed).
    pub points: f64,
    /// Messages it fired on, per label (`ham`, `spam`, `phish`).
    pub hits: [usize; 3],
    /// The share of each label's messages it fired on, in percent.
    pub pct: [f64; 3],
    /// Points toward spam or phishing while firing on legitimate mail at least a tenth as
    /// often as on the mail it is meant to catch: weak evidence for its points.
    pub suspect: bool,
}

/// Counts, per symbol, the messages of each label it fired on. `fired` pairs each judged
/// message with the symbols of its verdict and their points.
pub fn rule_hits<'a>(
    fired: impl IntoIterator<Item = (&'a Judged, &'a [(String, f64)])>,
) -> Vec<RuleHits> {
    let mut totals = [0usize; 3];
    let mut by_symbol: BTreeMap<&str, ([usize; 3], f64)> = BTreeMap::new();
    for (judged, symbols) in fired {
        let Some(label) = LABELS.iter().position(|l| *l == judged.label) else {
            continue;
        };
        totals[label] += 1;
        let mut seen: Vec<&str> = Vec::with_capacity(symbols.len());
        for (name, points) in symbols {
            if seen.contains(&name.as_str()) {
                continue;
            }
            seen.push(name);
            let entry = by_symbol.entry(name).or_insert(([0; 3], *points));
            entry.0[label] += 1;
            if points.abs() > entry.1.abs() {
                entry.1 = *points;
            }
        }
    }
    let pct = |n: usize, of: usize| {
        if of == 0 {
            0.0
        } else {
            (n as f64 * 100.0 / of as f64 * 1000.0).round() / 1000.0
        }
    };
    let mut rows: Vec<RuleHits> = by_symbol
        .into_iter()
        .map(|(symbol, (hits, points))| {
            let pct = [0, 1, 2].map(|l| pct(hits[l], totals[l]));
            let meant = pct[1].max(pct[2]);
            RuleHits {
                symbol: symbol.to_owned(),
                points,
                hits,
                pct,
                suspect: points > 0.0 && hits[0] > 0 && pct[0] * 10.0 >= meant,
            }
        })
        .collect();
    // Suspects first, then by how often they fire on legitimate mail.
    rows.sort_by(|a, b| {
        b.suspect
            .cmp(&a.suspect)
            .then(b.pct[0].total_cmp(&a.pct[0]))
            .then(a.symbol.cmp(&b.symbol))
    });
    rows
}

/// The per-symbol table `jianmen eval --rules` prints.
pub fn rules_table(rows: &[RuleHits]) -> String {
    let mut s = format!(
        "{:<34} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  suspect\n",
        "symbol", "points", "ham", "ham %", "spam", "spam %", "phish", "phish %"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<34} {:>7.2} {:>8} {:>8.3} {:>8} {:>8.3} {:>8} {:>8.3}  {}",
            r.symbol,
            r.points,
            r.hits[0],
            r.pct[0],
            r.hits[1],
            r.pct[1],
            r.hits[2],
            r.pct[2],
            if r.suspect { "yes" } else { "" }
        );
    }
    s
}

/// (1 − area under the ROC curve) × 100, ties counted half; `None` without both classes.
pub fn one_minus_roc_area(positive: &[f64], negative: &[f64]) -> Option<f64> {
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

/// Percentage of `positive` scored above the strictest threshold that lets at most
/// `fp_rate` of `negative` through as false positives; `None` without both classes.
pub fn caught_at_fp(positive: &[f64], negative: &[f64], fp_rate: f64) -> Option<f64> {
    if positive.is_empty() || negative.is_empty() {
        return None;
    }
    let mut neg = negative.to_vec();
    neg.sort_by(|a, b| b.total_cmp(a));
    let allowed = (fp_rate * neg.len() as f64).floor() as usize;
    let threshold = neg.get(allowed).copied().unwrap_or(f64::NEG_INFINITY);
    let caught = positive.iter().filter(|s| **s > threshold).count();
    Some(100.0 * caught as f64 / positive.len() as f64)
}

/// How much worse, in percentage points, a retrained model may measure and still count as
/// not worse (the validation set's sampling noise, not a real loss).
pub const GATE_TOLERANCE_PCT: f64 = 0.01;

/// The retrain gate: `Ok` when `candidate`'s figures (from [`metrics`]) are not worse than
/// `active`'s on the same validation set — neither its 1-ROCA nor its false-positive rate
/// more than [`GATE_TOLERANCE_PCT`] higher, nor its catch rate at 0.1 % false positives lower;
/// `Err` names the figure that is worse.
pub fn not_worse(candidate: &Value, active: &Value) -> Result<(), String> {
    let figure = |m: &Value, k: &str| m[k].as_f64();
    for (key, higher_is_worse) in [
        ("one_minus_roca_pct", true),
        ("fp_pct", true),
        ("caught_at_fp_0_1_pct", false),
    ] {
        let (Some(c), Some(a)) = (figure(candidate, key), figure(active, key)) else {
            return Err(format!(
                "{key}: not measurable (the validation set needs ham and spam)"
            ));
        };
        let loss = if higher_is_worse { c - a } else { a - c };
        if loss > GATE_TOLERANCE_PCT {
            return Err(format!("{key}: {c:.3} against {a:.3} for the active model"));
        }
    }
    Ok(())
}

/// Points (false-positive rate, catch rate) of the ROC curve, one per distinct score.
fn roc_points(positive: &[f64], negative: &[f64]) -> Vec<(f64, f64)> {
    let mut all: Vec<(f64, bool)> = positive
        .iter()
        .map(|s| (*s, true))
        .chain(negative.iter().map(|s| (*s, false)))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (p, n) = (positive.len().max(1) as f64, negative.len().max(1) as f64);
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut points = vec![(0.0, 0.0)];
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            if all[j].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            j += 1;
        }
        points.push((fp as f64 / n, tp as f64 / p));
        i = j;
    }
    points
}

/// One curve of a ROC plot.
pub struct Curve {
    /// Legend text.
    pub name: String,
    /// Scores of spam and phishing.
    pub positive: Vec<f64>,
    /// Scores of ham.
    pub negative: Vec<f64>,
}

impl Curve {
    /// The curve of every corpus in `judged` together, under `name`.
    pub fn of(name: &str, judged: &[Judged]) -> Curve {
        let set: Vec<&Judged> = judged.iter().collect();
        let (positive, negative) = scores(&set);
        Curve {
            name: name.to_owned(),
            positive,
            negative,
        }
    }
}

/// An SVG ROC plot: false positives on a log axis (0.01 %–100 %), catch rate 80–100 %.
pub fn roc_svg(title: &str, curves: &[Curve]) -> String {
    const W: f64 = 720.0;
    const H: f64 = 480.0;
    const LEFT: f64 = 70.0;
    const TOP: f64 = 40.0;
    const PW: f64 = 600.0;
    const PH: f64 = 380.0;
    const COLOURS: [&str; 6] = [
        "#c0392b", "#2471a3", "#229954", "#8e44ad", "#d68910", "#555",
    ];
    let x = |fp: f64| LEFT + PW * ((fp.max(1e-4).log10() + 4.0) / 4.0);
    let y = |tp: f64| TOP + PH * (1.0 - ((tp * 100.0 - 80.0) / 20.0).clamp(0.0, 1.0));
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"22\" font-size=\"15\">{}</text>\n",
        escape(title)
    );
    for (i, label) in ["0.01%", "0.1%", "1%", "10%", "100%"].iter().enumerate() {
        let gx = LEFT + PW * i as f64 / 4.0;
        let _ = writeln!(
            s,
            "<line x1=\"{gx}\" y1=\"{TOP}\" x2=\"{gx}\" y2=\"{}\" stroke=\"#ddd\"/>\
             <text x=\"{gx}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
            TOP + PH,
            TOP + PH + 16.0
        );
    }
    for pct in [80, 85, 90, 95, 100] {
        let gy = y(f64::from(pct) / 100.0);
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{gy}\" x2=\"{}\" y2=\"{gy}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{pct}%</text>",
            LEFT + PW,
            LEFT - 6.0,
            gy + 4.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">false positives (ham flagged), log scale</text>\
         <text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">spam + phishing caught</text>",
        LEFT + PW / 2.0,
        H - 8.0,
        TOP + PH / 2.0,
        TOP + PH / 2.0
    );
    for (i, curve) in curves.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut points: Vec<String> = roc_points(&curve.positive, &curve.negative)
            .into_iter()
            .map(|(fp, tp)| format!("{:.1},{:.1}", x(fp), y(tp)))
            .collect();
        points.dedup(); // thousands of thresholds fall on the same pixel

        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"{colour}\">{}</text>",
            points.join(" "),
            LEFT + PW - 220.0,
            TOP + PH - 16.0 * (curves.len() - i) as f64,
            escape(&curve.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_that_fire_on_ham_without_strong_evidence_are_suspects() {
        let ham = judged("ham", "clean", 0.0);
        let spam = judged("spam", "spam", 9.0);
        let sym = |names: &[(&str, f64)]| -> Vec<(String, f64)> {
            names.iter().map(|(n, p)| (n.to_string(), *p)).collect()
        };
        // 10 ham, 10 spam: WEAK fires on 2 ham and 4 spam; STRONG on 0 ham, 9 spam; HAM_SIGN
        // (negative points) on 8 ham.
        let mut rows: Vec<(Judged, Vec<(String, f64)>)> = Vec::new();
        for i in 0..10 {
            let mut h = vec![];
            if i < 2 {
                h.push(("WEAK", 2.0));
            }
            if i < 8 {
                h.push(("HAM_SIGN", -1.0));
            }
            rows.push((ham.clone(), sym(&h)));
            let mut s = vec![];
            if i < 4 {
                s.push(("WEAK", 2.0));
                s.push(("WEAK", 2.0));
            }
            if i < 9 {
                s.push(("STRONG", 5.0));
            }
            rows.push((spam.clone(), sym(&s)));
        }
        let hits = rule_hits(rows.iter().map(|(j, s)| (j, s.as_slice())));
        let by = |name: &str| hits.iter().find(|r| r.symbol == name).unwrap().clone();
        assert_eq!(hits[0].symbol, "WEAK", "suspects first");
        assert_eq!(
            (by("WEAK").hits, by("WEAK").pct[0], by("WEAK").suspect),
            ([2, 4, 0], 20.0, true),
            "counted once a message"
        );
        assert!(!by("STRONG").suspect);
        assert!(
            !by("HAM_SIGN").suspect,
            "evidence of ham is no false positive"
        );
        assert!(
            rules_table(&hits)
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("WEAK")
        );
    }

    fn judged(label: &str, class: &str, score: f64) -> Judged {
        Judged {
            corpus: "c".into(),
            label: label.into(),
            class: class.into(),
            score,
            micros: 10,
        }
    }

    #[test]
    fn roc_area_of_perfect_random_and_inverted_scores() {
        assert_eq!(one_minus_roc_area(&[3.0, 4.0], &[1.0, 2.0]), Some(0.0));
        assert_eq!(one_minus_roc_area(&[1.0, 1.0], &[1.0, 1.0]), Some(50.0));
        assert_eq!(one_minus_roc_area(&[1.0], &[2.0]), Some(100.0));
        assert_eq!(one_minus_roc_area(&[], &[2.0]), None);
    }

    #[test]
    fn catch_rate_at_a_false_positive_budget() {
        let ham: Vec<f64> = (0..1000).map(f64::from).collect();
        // 0.1 % of 1000 ham = one may pass: the threshold is the second-highest ham (998).
        assert_eq!(
            caught_at_fp(&[998.5, 999.5, 5.0, 2000.0], &ham, 0.001),
            Some(75.0)
        );
        // 0.02 % of 1000 = none may: above the highest ham (999) only.
        assert_eq!(
            caught_at_fp(&[998.5, 999.5, 5.0, 2000.0], &ham, 0.0002),
            Some(50.0)
        );
        assert_eq!(caught_at_fp(&[1.0], &[], 0.001), None);
    }

    #[test]
    fn confusion_and_rates() {
        let set = [
            judged("ham", "clean", 0.0),
            judged("ham", "spam", 7.0),
            judged("spam", "spam", 9.0),
            judged("phish", "phish", 12.0),
            judged("phish", "clean", 1.0),
        ];
        let m = metrics(&set.iter().collect::<Vec<_>>());
        assert_eq!(m["fp_pct"], 50.0);
        assert_eq!(m["spam_caught_pct"], 100.0);
        assert_eq!(m["phish_caught_pct"], 50.0);
        assert_eq!(m["confusion"]["phish"]["clean"], 1);
        assert_eq!(m["confusion"]["ham"]["spam"], 1);
        assert_eq!(m["confusion"]["spam"]["virus"], 0);
        let table = table(&report(&set));
        assert!(
            table.contains("total") && table.contains("confusion"),
            "{table}"
        );
    }

    #[test]
    fn the_gate_refuses_any_worse_figure() {
        let m = |roca: f64, fp: f64, caught: f64| json!({"one_minus_roca_pct": roca, "fp_pct": fp, "caught_at_fp_0_1_pct": caught});
        let active = m(0.5, 1.0, 80.0);
        assert!(not_worse(&m(0.5, 1.0, 80.0), &active).is_ok());
        assert!(not_worse(&m(0.2, 0.5, 90.0), &active).is_ok());
        assert!(
            not_worse(&m(0.505, 1.0, 80.0), &active).is_ok(),
            "within tolerance"
        );
        let e = not_worse(&m(0.7, 1.0, 80.0), &active).unwrap_err();
        assert!(e.starts_with("one_minus_roca_pct"), "{e}");
        assert!(
            not_worse(&m(0.4, 1.2, 80.0), &active)
                .unwrap_err()
                .starts_with("fp_pct")
        );
        assert!(not_worse(&m(0.4, 1.0, 70.0), &active).is_err());
        let unmeasurable = json!({"one_minus_roca_pct": null, "fp_pct": 0.0});
        assert!(not_worse(&unmeasurable, &active).is_err());
    }

    #[test]
    fn roc_plot_draws_each_curve() {
        let set = [judged("ham", "clean", 0.0), judged("spam", "spam", 9.0)];
        let svg = roc_svg("t <1>", &[Curve::of("a&b", &set), Curve::of("c", &set)]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a&amp;b") && svg.contains("t &lt;1&gt;"));
        assert_eq!(
            roc_points(&[2.0, 1.0], &[0.0]),
            vec![(0.0, 0.0), (0.0, 0.5), (0.0, 1.0), (1.0, 1.0)]
        );
    }
}
