//! Detection cost per platform, in executed instructions: `jianmen scan` over the committed
//! fixture messages, natively under valgrind (callgrind) for x86_64 and under qemu-user with an
//! instruction-counting plugin (`benches/qemu/insn_count.c`) for aarch64 and loongarch64.
//! Emulated seconds say nothing about a Kunpeng or a Loongson; instruction counts are exact and
//! repeatable, and show what each target's code generation (SIMD kernels or their fallback)
//! costs. Also checks that every binary gives the same verdicts and scores as the first.
//!
//! Usage: `cargo run --release -p jianmen-benches --bin platforms -- [LABEL=BINARY ...]`, e.g.
//! `x86_64=target/release/jianmen aarch64=$(cross/build.sh aarch64-unknown-linux-gnu --release
//! | tail -n1)`. Without arguments it measures the native release binary only. Needs valgrind
//! (native) and qemu-user plus a C compiler (other targets).

use std::path::{Path, PathBuf};
use std::process::Command;

use jianmen_testkit::jianmen_bin;

/// Passes over the fixture set in the long run; the short run makes one. Their difference is
/// the per-message cost without start-up (model load and optimisation).
const LONG_PASSES: usize = 3;

fn main() {
    let mut binaries: Vec<(String, PathBuf)> = std::env::args()
        .skip(1)
        .map(|a| match a.split_once('=') {
            Some((label, path)) => (label.to_owned(), PathBuf::from(path)),
            None => panic!("arguments are LABEL=BINARY, got {a}"),
        })
        .collect();
    if binaries.is_empty() {
        binaries.push(("x86_64".to_owned(), jianmen_bin()));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fixtures = root.join("tests/fixtures/mail");
    let messages = count_files(&fixtures);
    let work = tempfile::tempdir().expect("tempdir");
    let plugin = work.path().join("insn_count.so");
    // `jianmen scan` reads a path once however often it is named: the long run scans copies.
    let copies: Vec<PathBuf> = (0..LONG_PASSES)
        .map(|i| {
            let copy = work.path().join(format!("pass{i}"));
            copy_dir(&fixtures, &copy);
            copy
        })
        .collect();
    let configs = [("model", "auto"), ("none", "none")].map(|(name, model)| {
        let path = work.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "[server]\nhostname = \"bench.localhost\"\ndata_dir = \"{}\"\n\
                 [domains]\nprotected = [\"localhost.localdomain\"]\n\
                 [scan]\nauth = false\nfirst_contact = false\nmodel = \"{model}\"\n",
                work.path().join("data").display()
            ),
        )
        .expect("write config");
        path
    });

    println!("Fixture set: {messages} messages ({})", fixtures.display());
    println!(
        "{:<22} {:>16} {:>16} {:>16} {:>18}",
        "binary", "insns/msg", "model insns/msg", "start-up insns", "verdicts"
    );
    let mut reference: Option<Vec<String>> = None;
    for (label, binary) in &binaries {
        let runner = match Runner::for_binary(binary, &plugin, &root) {
            Ok(r) => r,
            Err(e) => {
                println!("{label:<22} skipped: {e}");
                continue;
            }
        };
        let [model, none] = &configs;
        let (short, verdicts) = runner.count(binary, model, &copies[..1]);
        let (long, _) = runner.count(binary, model, &copies);
        let (short_none, _) = runner.count(binary, none, &copies[..1]);
        let (long_none, _) = runner.count(binary, none, &copies);
        let per_pass = |long: u64, short: u64| {
            assert!(
                long > short,
                "{label}: the long run counted no more than the short one"
            );
            (long - short) / (LONG_PASSES as u64 - 1)
        };
        let per_msg = per_pass(long, short) / messages as u64;
        let per_msg_none = per_pass(long_none, short_none) / messages as u64;
        let startup = short - per_pass(long, short);
        let same = match &reference {
            None => {
                reference = Some(verdicts);
                "reference".to_owned()
            }
            Some(r) if *r == verdicts => "identical".to_owned(),
            Some(r) => format!(
                "{} of {} differ",
                r.iter().zip(&verdicts).filter(|(a, b)| a != b).count(),
                r.len()
            ),
        };
        println!(
            "{label:<22} {per_msg:>16} {:>16} {startup:>16} {same:>18}",
            per_msg.saturating_sub(per_msg_none)
        );
    }
    println!(
        "(insns/msg: whole scan pipeline per message; model: its share, with model minus without; \
         start-up: one run's count less one pass — loading and optimising the model included)"
    );
}

/// How a binary is run so its executed instructions are counted.
enum Runner {
    /// Native: valgrind's callgrind counts every instruction of every thread.
    Valgrind,
    /// Foreign: qemu-user with the counting plugin.
    Qemu(Vec<String>),
}

impl Runner {
    /// Picks the runner from the binary's ELF machine field; builds the QEMU plugin when needed.
    fn for_binary(binary: &Path, plugin: &Path, root: &Path) -> Result<Runner, String> {
        let header = std::fs::read(binary)
            .map_err(|e| format!("{}: {e}", binary.display()))?
            .get(..20)
            .map(<[u8]>::to_vec)
            .ok_or("not an ELF file")?;
        if &header[..4] != b"\x7fELF" {
            return Err("not an ELF file".into());
        }
        let qemu: &[&str] = match u16::from_le_bytes([header[18], header[19]]) {
            0x3e => return Ok(Runner::Valgrind),
            0xb7 => &[
                "qemu-aarch64",
                "-L",
                "/usr/aarch64-linux-gnu",
                "-cpu",
                "max,sve=off",
            ],
            // As the cargo runner: without address randomisation (qemu-user 7.2 otherwise now
            // and then fails an allocation or hangs on a futex with this binary).
            0x102 => &["setarch", "-R", "qemu-loongarch64"],
            m => return Err(format!("ELF machine {m:#x} not supported")),
        };
        if !plugin.exists() {
            let status = Command::new("cc")
                .args(["-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-o"])
                .arg(plugin)
                .arg(root.join("benches/qemu/insn_count.c"))
                .status()
                .map_err(|e| format!("cc: {e}"))?;
            if !status.success() {
                return Err("cannot build the QEMU plugin".into());
            }
        }
        let mut args: Vec<String> = qemu.iter().map(|s| (*s).to_owned()).collect();
        args.push("-plugin".into());
        args.push(plugin.display().to_string());
        Ok(Runner::Qemu(args))
    }

    /// Runs `jianmen scan` over the fixture directories `passes`; returns the executed
    /// instructions and each message's path, verdict and score (rounded to 0.01, as the scores
    /// are printed).
    fn count(&self, binary: &Path, config: &Path, passes: &[PathBuf]) -> (u64, Vec<String>) {
        let log = tempfile::NamedTempFile::new().expect("temp file");
        let mut cmd = match self {
            Runner::Valgrind => {
                let mut c = Command::new("valgrind");
                c.args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
                    .arg(format!("--log-file={}", log.path().display()))
                    .arg(binary);
                c
            }
            Runner::Qemu(args) => {
                let mut c = Command::new(&args[0]);
                c.args(&args[1..])
                    .args(["-d", "plugin", "-D"])
                    .arg(log.path())
                    .arg(binary);
                c
            }
        };
        // One worker: the plugin's counter is exact for one guest thread at a time.
        cmd.args(["scan", "--jobs", "1", "--config"]).arg(config);
        cmd.args(passes);
        let out = cmd.output().expect("run jianmen scan");
        assert!(
            out.status.success(),
            "jianmen scan failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = std::fs::read_to_string(log.path()).expect("read count log");
        let count = log
            .lines()
            .find_map(|l| {
                l.split_once("Collected :")
                    .map(|(_, n)| n)
                    .or_else(|| l.strip_prefix("insns "))
            })
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no instruction count in:\n{log}"));
        let verdicts = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("scan JSON line");
                format!(
                    "{} {} {:.2}",
                    v["path"],
                    v["verdict"],
                    v["score"].as_f64().unwrap_or(f64::NAN)
                )
            })
            .collect();
        (count, verdicts)
    }
}

/// Copies the regular files under `from` to `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create fixture copy");
    for entry in std::fs::read_dir(from).expect("read fixtures") {
        let path = entry.expect("fixture entry").path();
        let target = to.join(path.file_name().expect("file name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy fixture");
        }
    }
}

/// Regular files under `dir`, recursively (what `jianmen scan DIR` reads).
fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("read fixtures")
        .filter_map(Result::ok)
        .map(|e| {
            let p = e.path();
            if p.is_dir() { count_files(&p) } else { 1 }
        })
        .sum()
}
