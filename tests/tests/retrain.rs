//! Local learning end to end: `jianmen feedback` keeps corrections, `jianmen retrain` trains
//! with the real Python trainer (numpy + onnx, installed by tests/run.sh; `JIANMEN_PYTHON`
//! names the interpreter) and its gate refuses a model that is worse on the validation split,
//! and activates one that is not.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

use jianmen_testkit::{jianmen_bin, jianmen_ok, write_corpus};

// Made-up words: no rule knows them and neither does the built-in model, so only what a model
// learns from this corpus and its feedback can rank these messages.
const HAM_WORDS: &[&str] = &[
    "ostrel", "bimquo", "fandrel", "lutrex", "gorvain", "nispel", "tambrok", "yelvash", "corpique",
    "hadrune",
];
const SPAM_WORDS: &[&str] = &[
    "vexlor", "quandrix", "mobtrel", "zintaro", "plaxum", "drevnik", "sorvane", "kalmox",
    "trebizon", "wendrak",
];

/// A deterministic stream of word choices.
struct Lcg(u64);

impl Lcg {
    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        words[(self.0 >> 33) as usize % words.len()]
    }
}

fn message(rng: &mut Lcg, words: &[&str], n: usize) -> String {
    let subject: Vec<&str> = (0..4).map(|_| rng.pick(words)).collect();
    let body: Vec<&str> = (0..40).map(|_| rng.pick(words)).collect();
    format!(
        "From: Sender {n} <s{n}@corp{n}.test>\r\nTo: user@example.com\r\nSubject: {}\r\n\
         Date: Mon, 2 Jun 2025 10:00:00 +0800\r\nMessage-ID: <{n}@corp.test>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
        subject.join(" "),
        body.join(" ")
    )
}

/// A corpora directory with one corpus of `per_class` ham and spam messages.
fn corpora(root: &Path, per_class: usize) -> PathBuf {
    let mut rng = Lcg(7);
    let mut members = Vec::new();
    for i in 0..per_class {
        for (label, words) in [("ham", HAM_WORDS), ("spam", SPAM_WORDS)] {
            let bytes = message(&mut rng, words, i).into_bytes();
            members.push((format!("{label}-{i:03}.eml"), label, bytes));
        }
    }
    write_corpus(root, "synthetic", &members)
}

/// `jianmen scan --config CONFIG FILE`'s JSON line.
fn scan(config: &Path, file: &Path) -> serde_json::Value {
    let out = jianmen_ok([
        OsStr::new("scan"),
        "--config".as_ref(),
        config.as_ref(),
        file.as_ref(),
    ]);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn config(dir: &Path, model: &str) -> PathBuf {
    let path = dir.join(format!("jianmen-{model}.toml"));
    std::fs::write(
        &path,
        format!(
            "[server]\nhostname = \"gw.jianmen.test\"\ndata_dir = \"{}\"\n\
             [domains]\nprotected = [\"example.com\"]\n\
             [scan]\nauth = false\nfirst_contact = false\nmodel = \"{model}\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

fn retrain(config: &Path, corpora: &Path) -> (Option<i32>, String) {
    let trainer = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/model/train/train.py");
    let python = std::env::var("JIANMEN_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(jianmen_bin())
        .arg("retrain")
        .arg("--config")
        .arg(config)
        .arg("--corpora")
        .arg(corpora)
        .arg("--trainer")
        .arg(trainer)
        .arg("--python")
        .arg(python)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Records `n` fresh messages made of `words` as `label` through `jianmen feedback`.
fn feedback(dir: &Path, config: &Path, label: &str, words: &[&str], n: usize, seed: u64) {
    let files = dir.join(format!("feedback-{label}-{seed}"));
    std::fs::create_dir_all(&files).unwrap();
    let mut rng = Lcg(seed);
    let mut args = Vec::new();
    for i in 0..n {
        let f = files.join(format!("{i}.eml"));
        std::fs::write(&f, message(&mut rng, words, 1000 + i)).unwrap();
        args.push(f);
    }
    let mut argv = vec![
        OsString::from("feedback"),
        "--config".into(),
        config.into(),
        label.into(),
    ];
    argv.extend(args.into_iter().map(OsString::from));
    let out = jianmen_ok(argv);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("kept as")
            .count(),
        n
    );
}

#[test]
fn retrain_refuses_a_worse_model_and_activates_a_better_one() {
    let dir = tempfile::tempdir().unwrap();
    let corpora = corpora(dir.path(), 60);
    let model_file = dir.path().join("data/model/content.onnx");

    // Misleading feedback, three times the corpus: spam reported as "not spam" and ham as
    // spam. The model it trains ranks the validation split backwards, worse than the
    // built-in one, and is refused.
    let auto = config(dir.path(), "auto");
    feedback(dir.path(), &auto, "ham", SPAM_WORDS, 150, 11);
    feedback(dir.path(), &auto, "spam", HAM_WORDS, 150, 12);
    let (code, text) = retrain(&auto, &corpora);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("refused: the new model is worse on"),
        "{text}"
    );
    assert!(!text.contains("not measurable"), "{text}");
    assert!(!model_file.exists(), "a refused model is not installed");

    // The same messages corrected (the latest word wins), against a gateway running on rules
    // alone: the trained model is not worse, so it is activated where `auto` finds it.
    let none = config(dir.path(), "none");
    feedback(dir.path(), &none, "spam", SPAM_WORDS, 150, 11);
    feedback(dir.path(), &none, "ham", HAM_WORDS, 150, 12);
    let (code, text) = retrain(&none, &corpora);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("activated"), "{text}");
    assert!(model_file.is_file());
    assert!(dir.path().join("data/model/metrics.json").is_file());

    // `auto` now scans with the activated model.
    let sample = dir.path().join("members/synthetic/spam-000.eml");
    let v = scan(&auto, &sample);
    let names: Vec<&str> = v["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(names.iter().any(|n| n.starts_with("NEURAL_")), "{v}");
    assert!(!names.contains(&"NEURAL_UNAVAILABLE"), "{v}");

    // A corrupt activated model: the gateway keeps scanning and says why.
    std::fs::write(&model_file, b"not onnx").unwrap();
    let v = scan(&auto, &sample);
    assert!(v.to_string().contains("NEURAL_UNAVAILABLE"), "{v}");
}

#[test]
fn feedback_refuses_bad_labels_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "auto");
    let run = |args: &[&str]| {
        Command::new(jianmen_bin())
            .arg("feedback")
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["spamm", "/etc/hostname"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ham, spam or phish"));
    let out = run(&["spam", "/nonexistent/message.eml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    let empty = dir.path().join("empty.eml");
    std::fs::write(&empty, b"").unwrap();
    let out = run(&["spam", empty.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not kept"));
}
