//! Accuracy, side by side: Jianmen's whole verdict path (`jianmen eval`), rspamd 3.4 with its
//! Bayes classifier on Redis and SpamAssassin 4.0 with its Bayes, both peers trained on the same
//! training split and scored on the same test split, network checks off for all three.
//! Prints per corpus: caught %, false positives %, 1-ROCA %, catch rate at 0.1 % and 0.02 %
//! false positives, then a confusion table per system; writes `target/accuracy/report.json`
//! and the ROC plot `target/accuracy/roc.svg`.
//!
//! Usage: `cargo build --release --bins && cargo run --release -p jianmen-benches --bin
//! accuracy [-- CORPORA_DIR [LEARN_CAP]]` (LEARN_CAP: at most this many training messages per
//! corpus and label for the peers; default all, which takes SpamAssassin's `sa-learn` ~25 min
//! here). Peers need `apt install rspamd redis-server spamassassin spamc`; a missing one is
//! skipped with a note.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jianmen_benches::{Rspamd, RspamdOptions, corpora_and_count, tree_cpu};
use jianmen_scan::accuracy::{self, Curve, Judged};
use jianmen_testkit::{jianmen_bin, wait_until};

/// A peer's run: trains on the linked training messages, judges the test messages.
type Peer = fn(&Path, &Learn, &[&Member]) -> Result<Vec<Judged>, String>;

/// One message of the split, as `jianmen features` assigned it.
struct Member {
    corpus: String,
    label: String,
    test: bool,
    file: PathBuf,
}

fn main() {
    let Some((corpora, learn_cap)) = corpora_and_count(usize::MAX) else {
        return;
    };
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/accuracy");
    std::fs::create_dir_all(&out_dir).expect("mkdir target/accuracy");
    let work = tempfile::tempdir_in("/var/tmp").expect("tempdir");

    println!("== jianmen eval (whole verdict path, test split)");
    let scores = work.path().join("jianmen.tsv");
    let status = Command::new(jianmen_bin())
        .args(["eval", "--corpora"])
        .arg(&corpora)
        .arg("--report")
        .arg(work.path().join("jianmen.json"))
        .arg("--scores")
        .arg(&scores)
        .status()
        .expect("jianmen eval");
    assert!(status.success(), "jianmen eval failed");
    let mut systems: Vec<(String, Vec<Judged>)> = vec![("jianmen".into(), read_scores(&scores))];

    let members = split(&corpora, work.path());
    let learn = link_training(&members, work.path(), learn_cap);
    let test: Vec<&Member> = members.iter().filter(|m| m.test).collect();
    println!(
        "\nsplit: {} training messages for the peers ({} spam+phish, {} ham), {} test messages",
        learn.spam + learn.ham,
        learn.spam,
        learn.ham,
        test.len()
    );

    let peers: [(&str, Peer); 2] = [
        ("rspamd 3.4 + Bayes", rspamd_peer),
        ("SpamAssassin 4.0 + Bayes", spamassassin_peer),
    ];
    for (name, peer) in peers {
        println!("\n== {name}");
        match peer(work.path(), &learn, &test) {
            Ok(judged) => systems.push((name.to_owned(), judged)),
            Err(e) => println!("{name}: not measured: {e}"),
        }
    }

    let mut doc = serde_json::Map::new();
    for (name, judged) in &systems {
        let report = accuracy::report(judged);
        println!("\n== {name}\n{}", accuracy::table(&report));
        doc.insert(
            name.clone(),
            serde_json::to_value(&report).unwrap_or_default(),
        );
    }
    side_by_side(&systems);
    let curves: Vec<Curve> = systems.iter().map(|(n, j)| Curve::of(n, j)).collect();
    let svg = accuracy::roc_svg("ROC on the test split, all corpora", &curves);
    std::fs::write(out_dir.join("roc.svg"), svg).expect("write roc.svg");
    std::fs::write(
        out_dir.join("report.json"),
        serde_json::to_vec_pretty(&doc).unwrap_or_default(),
    )
    .expect("write report.json");
    println!(
        "\nwritten: {} and {}",
        out_dir.join("report.json").display(),
        out_dir.join("roc.svg").display()
    );
}

/// Per corpus, one row per system: the figures the issue compares.
fn side_by_side(systems: &[(String, Vec<Judged>)]) {
    let reports: Vec<(&str, BTreeMap<String, serde_json::Value>)> = systems
        .iter()
        .map(|(n, j)| (n.as_str(), accuracy::report(j)))
        .collect();
    let Some((_, first)) = reports.first() else {
        return;
    };
    println!(
        "\n== side by side (test split)\n{:<20} {:<26}{}",
        "corpus",
        "system",
        accuracy::FIGURES_HEADER
    );
    let corpora = first
        .keys()
        .filter(|c| c.as_str() != "total")
        .chain(first.keys().filter(|c| c.as_str() == "total"));
    for corpus in corpora {
        for (name, report) in &reports {
            if let Some(m) = report.get(corpus) {
                println!("{corpus:<20} {name:<26} {}", accuracy::figures_row(m));
            }
        }
    }
}

fn read_scores(path: &Path) -> Vec<Judged> {
    let text = std::fs::read_to_string(path).expect("read scores");
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some(Judged {
                corpus: f.first()?.to_string(),
                label: f.get(1)?.to_string(),
                class: f.get(3)?.to_string(),
                score: f.get(4)?.parse().ok()?,
                micros: f.get(5)?.parse().ok()?,
            })
        })
        .collect()
}

/// Every message with its split (from `jianmen features`, which owns the split), unpacked.
fn split(corpora: &Path, work: &Path) -> Vec<Member> {
    let listing = work.join("split.tsv");
    let status = Command::new(jianmen_bin())
        .args(["features", "--corpora"])
        .arg(corpora)
        .arg("--out")
        .arg(&listing)
        .status()
        .expect("jianmen features");
    assert!(status.success(), "jianmen features failed");
    let msgs = work.join("msgs");
    std::fs::create_dir_all(&msgs).expect("mkdir");
    for entry in std::fs::read_dir(corpora).expect("read corpora").flatten() {
        let dir = entry.path();
        let Some(archive) = std::fs::read_dir(&dir)
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(".tar.zst"))
        else {
            continue;
        };
        let status = Command::new("tar")
            .arg("--zstd")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&msgs)
            .status()
            .expect("tar (needs zstd)");
        assert!(status.success(), "cannot unpack {}", archive.display());
    }
    let text = std::fs::read_to_string(&listing).expect("read split");
    let mut members: Vec<Member> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let corpus = f.next()?.to_owned();
            let test = f.next()? == "test";
            let label = f.next()?.to_owned();
            let file = msgs.join(f.next()?);
            Some(Member {
                corpus,
                label,
                test,
                file,
            })
        })
        .collect();
    members.sort_by(|a, b| a.file.cmp(&b.file));
    members
}

/// Training messages hard-linked into `learn/spam` (spam and phishing) and `learn/ham`.
struct Learn {
    spam_dir: PathBuf,
    ham_dir: PathBuf,
    spam: usize,
    ham: usize,
}

fn link_training(members: &[Member], work: &Path, cap: usize) -> Learn {
    let spam_dir = work.join("learn/spam");
    let ham_dir = work.join("learn/ham");
    std::fs::create_dir_all(&spam_dir).expect("mkdir");
    std::fs::create_dir_all(&ham_dir).expect("mkdir");
    let mut taken: HashMap<(String, String), usize> = HashMap::new();
    let (mut spam, mut ham) = (0, 0);
    for m in members.iter().filter(|m| !m.test) {
        let n = taken
            .entry((m.corpus.clone(), m.label.clone()))
            .or_default();
        if *n >= cap {
            continue;
        }
        *n += 1;
        let (dir, count) = if m.label == "ham" {
            (&ham_dir, &mut ham)
        } else {
            (&spam_dir, &mut spam)
        };
        // Hard links: rspamc skips symbolic links when it walks a directory.
        if std::fs::hard_link(&m.file, dir.join(format!("{:06}", *count))).is_ok() {
            *count += 1;
        }
    }
    Learn {
        spam_dir,
        ham_dir,
        spam,
        ham,
    }
}

/// The test messages hard-linked into one directory, and what each link is.
fn link_test(test: &[&Member], dir: &Path) -> HashMap<PathBuf, (String, String)> {
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut map = HashMap::new();
    for (i, m) in test.iter().enumerate() {
        let link = dir.join(format!("{i:06}"));
        if std::fs::hard_link(&m.file, &link).is_ok() {
            map.insert(link, (m.corpus.clone(), m.label.clone()));
        }
    }
    map
}

fn rspamd_peer(work: &Path, learn: &Learn, test: &[&Member]) -> Result<Vec<Judged>, String> {
    for bin in ["/usr/bin/rspamd", "/usr/bin/redis-server"] {
        if !Path::new(bin).exists() {
            return Err(format!("{bin} missing (apt install rspamd redis-server)"));
        }
    }
    let redis_port = 16379;
    let mut redis = Command::new("/usr/bin/redis-server")
        .args(["--bind", "127.0.0.1", "--port", &redis_port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let _redis_guard = KillOnDrop(&mut redis);
    if !wait_until(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", redis_port)).is_ok()
    }) {
        return Err("redis-server did not start".into());
    }
    let base = work.join("rspamd");
    let rspamd = Rspamd::start(RspamdOptions {
        base: &base,
        workers: 2,
        port: 11433,
        controller_port: Some(11434),
        local: vec![
            (
                "redis.conf".into(),
                format!("servers = \"127.0.0.1:{redis_port}\";\n"),
            ),
            (
                "classifier-bayes.conf".into(),
                format!(
                    "backend = \"redis\";\nservers = \"127.0.0.1:{redis_port}\";\n\
                     autolearn = false;\nmin_learns = 50;\n"
                ),
            ),
        ],
    })?;
    let controller = rspamd.controller_addr.clone().unwrap_or_default();
    let started = Instant::now();
    for (command, dir) in [
        ("learn_spam", &learn.spam_dir),
        ("learn_ham", &learn.ham_dir),
    ] {
        let out = Command::new("/usr/bin/rspamc")
            .args(["-h", &controller, "-n", "8", "-t", "60", command])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        println!(
            "rspamc {command}: {} messages answered",
            text.matches("Results for file").count()
        );
    }
    println!("learned in {:.0} s", started.elapsed().as_secs_f64());
    let map = link_test(test, &work.join("test-rspamd"));
    let cpu0 = rspamd.cpu();
    let out = Command::new("/usr/bin/rspamc")
        .args(["-h", &rspamd.scan_addr, "-n", "16", "-t", "60"])
        .arg(work.join("test-rspamd"))
        .output()
        .map_err(|e| e.to_string())?;
    let cpu = rspamd.cpu() - cpu0;
    let judged = parse_rspamc(&String::from_utf8_lossy(&out.stdout), &map, cpu);
    if judged.len() != map.len() {
        return Err(format!(
            "rspamc answered for {} of {} messages",
            judged.len(),
            map.len()
        ));
    }
    Ok(judged)
}

/// rspamc's text output: per file `Results for file: PATH (…)`, `Action: …`, `Score: X / Y`.
/// A message counts as flagged when rspamd would act on it (add a header, rewrite the subject
/// or reject).
fn parse_rspamc(
    text: &str,
    map: &HashMap<PathBuf, (String, String)>,
    cpu: Duration,
) -> Vec<Judged> {
    let mut out = Vec::new();
    for block in text.split("Results for file: ").skip(1) {
        let path = block.split(" (").next().unwrap_or_default().trim();
        let Some((corpus, label)) = map.get(Path::new(path)) else {
            continue;
        };
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
        };
        let Some(score) = field("Score:")
            .and_then(|s| s.split('/').next())
            .and_then(|s| s.trim().parse::<f64>().ok())
        else {
            continue;
        };
        let action = field("Action:").unwrap_or("no action");
        let flagged = matches!(action, "add header" | "rewrite subject" | "reject");
        out.push(Judged {
            corpus: corpus.clone(),
            label: label.clone(),
            class: if flagged { "spam" } else { "clean" }.into(),
            score,
            micros: 0,
        });
    }
    spread_cpu(&mut out, cpu);
    out
}

/// Gives each judged message an equal share of `cpu` (the peers are measured as a whole).
fn spread_cpu(judged: &mut [Judged], cpu: Duration) {
    let each = cpu.as_micros() as u64 / judged.len().max(1) as u64;
    for j in judged {
        j.micros = each;
    }
}

fn spamassassin_peer(work: &Path, learn: &Learn, test: &[&Member]) -> Result<Vec<Judged>, String> {
    for bin in ["/usr/bin/sa-learn", "/usr/sbin/spamd", "/usr/bin/spamc"] {
        if !Path::new(bin).exists() {
            return Err(format!("{bin} missing (apt install spamassassin spamc)"));
        }
    }
    let sa = work.join("sa");
    let etc = sa.join("etc");
    std::fs::create_dir_all(&etc).map_err(|e| e.to_string())?;
    // Debian's plugin list (*.pre) and site rules, then ours: Bayes on, network off.
    for entry in std::fs::read_dir("/etc/spamassassin")
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "pre" || e == "cf") && p.is_file() {
            let _ = std::fs::copy(&p, etc.join(entry.file_name()));
        }
    }
    let bayes = sa.join("bayes");
    std::fs::create_dir_all(&bayes).map_err(|e| e.to_string())?;
    std::fs::write(
        etc.join("local.cf"),
        format!(
            "use_bayes 1\nbayes_auto_learn 0\nbayes_path {}/bayes\nbayes_file_mode 0666\n\
             dns_available no\nskip_rbl_checks 1\nuse_razor2 0\nuse_pyzor 0\n\
             required_score 5.0\nlock_method flock\n",
            bayes.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let started = Instant::now();
    for (kind, dir) in [("--spam", &learn.spam_dir), ("--ham", &learn.ham_dir)] {
        let out = Command::new("/usr/bin/sa-learn")
            .arg("--siteconfigpath")
            .arg(&etc)
            .args(["--no-sync", kind])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        println!(
            "sa-learn {kind}: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    let _ = Command::new("/usr/bin/sa-learn")
        .arg("--siteconfigpath")
        .arg(&etc)
        .arg("--sync")
        .status();
    println!("learned in {:.0} s", started.elapsed().as_secs_f64());
    // spamd drops to `nobody` when started as root: let it read the database.
    let _ = Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(&sa)
        .status();
    let port = 11783;
    let mut spamd = Command::new("/usr/sbin/spamd");
    spamd
        .arg("--siteconfigpath")
        .arg(&etc)
        .args(["-L", "-x", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--allowed-ips", "127.0.0.1", "--max-children", "2"])
        // Children that exit take their CPU time with them: keep them for the whole run.
        .args(["--max-conn-per-child", "1000000"])
        .args(["-s", "stderr"])
        .arg("--pidfile")
        .arg(sa.join("spamd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if nix::unistd::geteuid().is_root() {
        spamd.args(["-u", "nobody"]);
    }
    let mut spamd = spamd.spawn().map_err(|e| e.to_string())?;
    let pid = spamd.id();
    let _spamd_guard = KillOnDrop(&mut spamd);
    if !wait_until(Duration::from_secs(120), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }) {
        return Err("spamd did not start".into());
    }
    let cpu0 = tree_cpu(pid);
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                while let Some(m) = test.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let Ok(file) = std::fs::File::open(&m.file) else {
                        continue;
                    };
                    let Ok(out) = Command::new("/usr/bin/spamc")
                        .args(["-d", "127.0.0.1", "-p", &port.to_string()])
                        .args(["-c", "-s", "30000000", "-t", "120"])
                        .stdin(file)
                        .output()
                    else {
                        continue;
                    };
                    // "-c": one line "score/threshold".
                    let line = String::from_utf8_lossy(&out.stdout);
                    let mut parts = line.trim().split('/');
                    let score = parts.next().and_then(|s| s.parse::<f64>().ok());
                    let threshold = parts.next().and_then(|s| s.parse::<f64>().ok());
                    if let (Some(score), Some(threshold)) = (score, threshold)
                        && let Ok(mut r) = results.lock()
                    {
                        r.push(Judged {
                            corpus: m.corpus.clone(),
                            label: m.label.clone(),
                            class: if score >= threshold { "spam" } else { "clean" }.into(),
                            score,
                            micros: 0,
                        });
                    }
                }
            });
        }
    });
    let cpu = tree_cpu(pid) - cpu0;
    let mut judged = results.into_inner().unwrap_or_default();
    if judged.len() != test.len() {
        return Err(format!(
            "spamc answered for {} of {} messages",
            judged.len(),
            test.len()
        ));
    }
    spread_cpu(&mut judged, cpu);
    Ok(judged)
}

/// Stops a helper process when the peer's run ends, however it ends.
struct KillOnDrop<'a>(&'a mut Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}
