//! What the benches share: running rspamd 3.4 beside Jianmen with its network checks off, and
//! measuring the CPU a process tree spends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running rspamd (Debian's 3.4) whose configuration lives under one directory and whose
/// checks never leave loopback.
pub struct Rspamd {
    child: Child,
    /// Address of its normal (scanning) worker.
    pub scan_addr: String,
    /// Address of its controller (learning), when enabled.
    pub controller_addr: Option<String>,
}

/// How to run rspamd.
pub struct RspamdOptions<'a> {
    /// Directory for its local configuration, logs and run files.
    pub base: &'a Path,
    /// Normal workers.
    pub workers: usize,
    /// Loopback port of the normal worker.
    pub port: u16,
    /// Loopback port of the controller, for `rspamc learn_*`; none disables it.
    pub controller_port: Option<u16>,
    /// Extra files under `local.d/` (name, contents), e.g. a Bayes classifier on Redis.
    pub local: Vec<(String, String)>,
}

/// Modules switched off: everything that needs the network, keeps state or learns on its own.
const DISABLED_MODULES: &[&str] = &[
    "rbl",
    "fuzzy_check",
    "asn",
    "dkim",
    "spf",
    "dmarc",
    "arc",
    "mx_check",
    "neural",
    "ratelimit",
    "greylist",
    "replies",
    "history_redis",
    "dcc",
    "spamassassin",
    "metadata_exporter",
    "clickhouse",
    "elastic",
    "external_services",
    "reputation",
    "dkim_signing",
    "arc_signing",
    "url_redirector",
    "hfilter",
];

impl Rspamd {
    /// Writes the configuration and starts rspamd; returns once its worker accepts connections.
    pub fn start(options: RspamdOptions) -> Result<Rspamd, String> {
        let base = options.base;
        let local = base.join("local");
        for d in ["local/local.d", "local/override.d", "run", "log"] {
            std::fs::create_dir_all(base.join(d)).map_err(|e| e.to_string())?;
        }
        // Compiled regexp (hyperscan) caches survive between runs here.
        let db = Path::new("/var/tmp/jianmen-bench-rspamd-db");
        std::fs::create_dir_all(db).map_err(|e| e.to_string())?;
        let controller = match options.controller_port {
            Some(port) => format!(
                "bind_socket = \"127.0.0.1:{port}\";\ncount = 1;\nsecure_ip = \"127.0.0.1\";\n"
            ),
            None => "enabled = false;\n".to_owned(),
        };
        let mut files = vec![
            // Nothing leaves loopback: DNS goes to a closed port and fails at once.
            (
                "local.d/options.inc".to_owned(),
                "dns { nameserver = [\"127.0.0.1:9\"]; timeout = 0.1s; retransmits = 0; }\n"
                    .to_owned(),
            ),
            (
                "local.d/worker-normal.inc".to_owned(),
                format!(
                    "bind_socket = \"127.0.0.1:{}\";\ncount = {};\n",
                    options.port, options.workers
                ),
            ),
            ("override.d/worker-controller.inc".to_owned(), controller),
            (
                "override.d/worker-proxy.inc".to_owned(),
                "enabled = false;\n".to_owned(),
            ),
            (
                "override.d/worker-fuzzy.inc".to_owned(),
                "enabled = false;\n".to_owned(),
            ),
            (
                "override.d/logging.inc".to_owned(),
                format!(
                    "type = \"file\";\nfilename = \"{}\";\nlevel = \"error\";\n",
                    base.join("log/rspamd.log").display()
                ),
            ),
        ];
        for module in DISABLED_MODULES {
            files.push((
                format!("local.d/{module}.conf"),
                "enabled = false;\n".into(),
            ));
        }
        for (name, text) in options.local {
            files.push((format!("local.d/{name}"), text));
        }
        for (rel, text) in files {
            std::fs::write(local.join(rel), text).map_err(|e| e.to_string())?;
        }
        let var = |k: &str, v: &Path| format!("--var={k}={}", v.display());
        let child = Command::new("/usr/bin/rspamd")
            .args(["-f", "-i", "-u", "root", "-g", "root"])
            .arg(var("LOCAL_CONFDIR", &local))
            .arg(var("DBDIR", db))
            .arg(var("RUNDIR", &base.join("run")))
            .arg(var("LOGDIR", &base.join("log")))
            .args(["-c", "/etc/rspamd/rspamd.conf"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut rspamd = Rspamd {
            child,
            scan_addr: format!("127.0.0.1:{}", options.port),
            controller_addr: options.controller_port.map(|p| format!("127.0.0.1:{p}")),
        };
        let ports: Vec<u16> = [Some(options.port), options.controller_port]
            .into_iter()
            .flatten()
            .collect();
        let ready = jianmen_testkit::wait_until(Duration::from_secs(300), || {
            ports
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
        });
        if !ready {
            rspamd.stop();
            return Err("rspamd did not start".into());
        }
        // Let workers finish loading maps and compiling before measuring.
        std::thread::sleep(Duration::from_secs(3));
        Ok(rspamd)
    }

    /// CPU time rspamd and its workers have spent so far.
    pub fn cpu(&self) -> Duration {
        tree_cpu(self.child.id())
    }

    /// SIGTERM to rspamd's main process, which stops its workers too (SIGKILL would orphan
    /// them).
    pub fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// CPU time of a process and all its descendants, from /proc (clock ticks of 10 ms).
pub fn tree_cpu(pid: u32) -> Duration {
    let mut total = 0u64;
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            // Fields after the command name (which may contain spaces) start after ") ".
            if let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let utime: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
                let stime: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
                total += utime + stime;
            }
        }
        if let Ok(children) = std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")) {
            stack.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    Duration::from_millis(total * 10)
}

/// The corpora directory: the first argument, else `$JIANMEN_CORPORA`, else
/// `../shared/corpora` beside the checkout.
pub fn corpora_dir(arg: Option<String>) -> PathBuf {
    arg.map(PathBuf::from)
        .or_else(|| std::env::var_os("JIANMEN_CORPORA").map(PathBuf::from))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora"))
}

/// The corpora directory ([`corpora_dir`], from the first argument) and the number the second
/// argument gives (else `default_count`); `None`, said on stdout, when the corpora are not there,
/// so a machine without them runs the bench to an empty end.
pub fn corpora_and_count(default_count: usize) -> Option<(PathBuf, usize)> {
    let mut args = std::env::args().skip(1);
    let corpora = corpora_dir(args.next());
    let count = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default_count);
    if !corpora.is_dir() {
        println!(
            "corpora not found at {} (set JIANMEN_CORPORA); nothing to measure",
            corpora.display()
        );
        return None;
    }
    Some((corpora, count))
}

/// The corpora under `corpora` (directories with a `labels.tsv`), in name order.
pub fn corpus_dirs(corpora: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpora)
        .expect("read corpora")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("labels.tsv").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Unpacks a corpus into `into` and returns its first `n` messages' files (in `labels.tsv`
/// order, those that are there).
pub fn first_messages(dir: &Path, into: &Path, n: usize) -> Vec<PathBuf> {
    unpack_corpus(dir, into);
    let labels = std::fs::read_to_string(dir.join("labels.tsv")).expect("labels.tsv");
    labels
        .lines()
        .skip(1)
        .take(n)
        .filter_map(|line| line.split('\t').next())
        .map(|path| into.join(path))
        .filter(|file| file.is_file())
        .collect()
}

/// Unpacks a corpus's `.tar.zst` archive into `into` (needs tar with zstd); the paths of its
/// `labels.tsv` are then relative to `into`.
pub fn unpack_corpus(dir: &Path, into: &Path) {
    let archive = std::fs::read_dir(dir)
        .expect("read corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(".tar.zst"))
        .expect("corpus archive");
    std::fs::create_dir_all(into).expect("mkdir");
    let status = std::process::Command::new("tar")
        .arg("--zstd")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(into)
        .status()
        .expect("tar (needs zstd)");
    assert!(status.success(), "cannot unpack {}", archive.display());
}
