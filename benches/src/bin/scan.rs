//! Detection cost, side by side: `jianmen scan` and rspamd 3.4 (Debian) over the same messages
//! from the dev corpora, one core and all cores, network checks off for both. Prints CPU-ms
//! per message, messages per second and the ratio.
//!
//! Usage: `cargo build --release --bins && cargo run --release -p jianmen-benches --bin scan
//! [-- CORPORA_DIR [PER_CORPUS]]`. The corpora directory defaults to `$JIANMEN_CORPORA`, then
//! `../shared/corpora`; without it the bench says so and exits 0. rspamd is used when
//! installed (`apt install rspamd`), skipped otherwise.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jianmen_benches::{Rspamd, RspamdOptions, corpora_and_count, corpus_dirs, first_messages};
use jianmen_testkit::jianmen_bin;

/// Messages sampled from each corpus (the first ones in `labels.tsv` order).
const DEFAULT_PER_CORPUS: usize = 2000;

fn main() {
    let Some((corpora, per_corpus)) = corpora_and_count(DEFAULT_PER_CORPUS) else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let sample = work.path().join("sample");
    let mut counts = Vec::new();
    for dir in &corpus_dirs(&corpora) {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let n = extract_sample(dir, &name, work.path(), &sample.join(&name), per_corpus);
        counts.push((name, n));
    }
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("Sample: {total} messages ({per_corpus} per corpus at most): {counts:?}");
    println!("Machine: {cores} cores\n");

    let mut rows = Vec::new();
    for jobs in [1, cores] {
        let (wall, cpu) = run_jianmen(&sample, jobs, total, None);
        rows.push((format!("jianmen scan, {jobs} thread(s)"), wall, cpu));
    }
    // The same without the content model: what the rules and checks cost alone.
    let rules_only = work.path().join("rules-only.toml");
    std::fs::write(
        &rules_only,
        format!(
            "[server]\nhostname = \"bench.localhost\"\ndata_dir = \"{}\"\n\
             [domains]\nprotected = [\"localhost.localdomain\"]\n\
             [scan]\nauth = false\nfirst_contact = false\nmodel = \"none\"\n",
            work.path().join("data").display()
        ),
    )
    .expect("write config");
    let (wall, cpu) = run_jianmen(&sample, 1, total, Some(&rules_only));
    rows.push(("jianmen scan, 1 thread, no model".to_owned(), wall, cpu));
    if Path::new("/usr/bin/rspamd").exists() {
        for workers in [1, cores] {
            match run_rspamd(&sample, workers, total, work.path()) {
                Ok((wall, cpu)) => {
                    rows.push((format!("rspamd 3.4, {workers} worker(s)"), wall, cpu))
                }
                Err(e) => println!("rspamd with {workers} worker(s) failed: {e}"),
            }
        }
    } else {
        println!("rspamd not installed (apt install rspamd): no side-by-side figures");
    }
    println!(
        "{:<32} {:>12} {:>12} {:>10}",
        "", "CPU-ms/msg", "msgs/s", "wall s"
    );
    for (name, wall, cpu) in &rows {
        println!(
            "{name:<32} {:>12.3} {:>12.0} {:>10.1}",
            cpu.as_secs_f64() * 1000.0 / total as f64,
            total as f64 / wall.as_secs_f64(),
            wall.as_secs_f64()
        );
    }
    let jianmen_cpu = rows[0].2.as_secs_f64();
    if let Some((_, _, rspamd_cpu)) = rows.iter().find(|(n, _, _)| n.starts_with("rspamd")) {
        println!(
            "\nrspamd spends {:.1}× the CPU of jianmen per message (goal ≥ 8×; jianmen goal ≤ 0.3 CPU-ms/msg)",
            rspamd_cpu.as_secs_f64() / jianmen_cpu
        );
    }
}

/// Unpacks one corpus and links its first `n` messages into `into`; returns how many.
fn extract_sample(dir: &Path, name: &str, work: &Path, into: &Path, n: usize) -> usize {
    let files = first_messages(dir, &work.join("raw").join(name), n);
    std::fs::create_dir_all(into).expect("mkdir");
    for (i, src) in files.iter().enumerate() {
        // Hard links: rspamc skips symbolic links when it walks a directory.
        std::fs::hard_link(src, into.join(format!("{i:06}.eml"))).expect("link");
    }
    files.len()
}

/// CPU time (user + system) of waited-for children of this process.
fn children_cpu() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(usage.user_time()) + tv(usage.system_time())
}

fn run_jianmen(
    sample: &Path,
    jobs: usize,
    expected: usize,
    config: Option<&Path>,
) -> (Duration, Duration) {
    let cpu0 = children_cpu();
    let started = Instant::now();
    let mut cmd = Command::new(jianmen_bin());
    cmd.args(["scan", "--jobs", &jobs.to_string()]);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let out = cmd
        .arg(sample)
        .stderr(Stdio::inherit())
        .output()
        .expect("jianmen scan");
    let wall = started.elapsed();
    let cpu = children_cpu() - cpu0;
    assert!(out.status.success(), "jianmen scan failed");
    let lines = out.stdout.iter().filter(|b| **b == b'\n').count();
    assert_eq!(lines, expected, "one JSON line per message");
    (wall, cpu)
}

/// Runs rspamd with network checks off and `workers` normal workers; scans the sample with
/// rspamc and returns (wall, rspamd CPU).
fn run_rspamd(
    sample: &Path,
    workers: usize,
    expected: usize,
    work: &Path,
) -> Result<(Duration, Duration), String> {
    let base = work.join(format!("rspamd-{workers}"));
    let mut rspamd = Rspamd::start(RspamdOptions {
        base: &base,
        workers,
        port: 11433,
        controller_port: None,
        local: Vec::new(),
    })?;
    let cpu0 = rspamd.cpu();
    let started = Instant::now();
    let out = Command::new("/usr/bin/rspamc")
        .args(["-h", &rspamd.scan_addr, "-n", "16", "-t", "30"])
        .arg(sample)
        .output()
        .map_err(|e| e.to_string());
    let wall = started.elapsed();
    let cpu = rspamd.cpu() - cpu0;
    rspamd.stop();
    let out = out?;
    let results = String::from_utf8_lossy(&out.stdout)
        .matches("Results for file")
        .count();
    if results != expected {
        return Err(format!("rspamc reported {results} of {expected} messages"));
    }
    Ok((wall, cpu))
}
