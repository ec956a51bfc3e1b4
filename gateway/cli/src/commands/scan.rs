//! `jianmen scan`: judge message files without running a server, one JSON line per message.
//! Field names (`path`, `verdict`, `score`, `symbols`, `explanation`, `micros`, and for
//! outbound and internal mail `direction`, `dlp`, `policy`) are stable: benches,
//! administrators and outside acceptance checks read them.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, Result};
use jianmen_mta::config::Config;
use jianmen_scan::Direction;
use jianmen_scan::pipeline::{Context, Pipeline};

/// Largest message file read.
const MAX_FILE: u64 = 64 * 1024 * 1024;
/// Deepest directory recursion.
const MAX_DIR_DEPTH: usize = 8;

/// Options of `jianmen scan`.
#[derive(clap::Args)]
pub struct Args {
    /// Files, directories or `-`.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Use this configuration's [scan] section, network checks included.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Client address the message came from (for SPF and DNSBL).
    #[arg(long)]
    pub client_ip: Option<IpAddr>,
    /// HELO name of the client.
    #[arg(long, default_value = "")]
    pub helo: String,
    /// Envelope sender.
    #[arg(long, default_value = "")]
    pub mail_from: String,
    /// Envelope recipient (repeatable).
    #[arg(long = "rcpt")]
    pub rcpts: Vec<String>,
    /// Worker threads.
    #[arg(long, short, default_value_t = 1)]
    pub jobs: usize,
    /// Which way the messages travel: inbound mail is judged for threats, outbound and
    /// internal mail by the data-leak prevention policies of `--config` (their findings are
    /// listed even without a configuration).
    #[arg(long, value_enum, default_value = "inbound")]
    pub direction: DirectionArg,
}

/// `--direction` values.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DirectionArg {
    /// From the Internet to the organisation.
    Inbound,
    /// From the organisation to the Internet.
    Outbound,
    /// Within the organisation.
    Internal,
}

impl From<DirectionArg> for Direction {
    fn from(d: DirectionArg) -> Self {
        match d {
            DirectionArg::Inbound => Direction::Inbound,
            DirectionArg::Outbound => Direction::Outbound,
            DirectionArg::Internal => Direction::Internal,
        }
    }
}

/// Runs the command; returns the number of messages scanned.
pub fn run(opts: Args) -> Result<usize> {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    for p in &opts.paths {
        collect(p, 0, &mut seen, &mut files)
            .with_context(|| format!("cannot read {}", p.display()))?;
    }
    let pipeline = Arc::new(match &opts.config {
        Some(path) => {
            let config = Config::load(path)?;
            let resolver = jianmen_scan::dns::resolver(&config.dns)?;
            Pipeline::new(
                &config.scan,
                &jianmen_mta::upgrade::release::scan_environment(&config),
                Some(resolver),
            )?
        }
        None => Pipeline::offline()?,
    });
    let ctx = Context {
        client_ip: opts.client_ip,
        helo: opts.helo.clone(),
        mail_from: opts.mail_from.clone(),
        rcpts: opts.rcpts.clone(),
        direction: opts.direction.into(),
    };
    let next = AtomicUsize::new(0);
    let out = std::sync::Mutex::new(std::io::stdout());
    let jobs = opts.jobs.clamp(1, 64);
    std::thread::scope(|scope| -> Result<()> {
        let mut workers = Vec::new();
        for _ in 0..jobs {
            workers.push(scope.spawn(|| -> Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else {
                        return Ok(());
                    };
                    let line = match read_message(path) {
                        Ok(raw) => {
                            rt.block_on(judge(&pipeline, &ctx, opts.direction.into(), path, &raw))
                        }
                        Err(e) => serde_json::json!({
                            "path": path_name(path),
                            "error": e.to_string(),
                        })
                        .to_string(),
                    };
                    let mut o = out
                        .lock()
                        .map_err(|_| anyhow::anyhow!("stdout lock poisoned"))?;
                    writeln!(o, "{line}")?;
                }
            }));
        }
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a scan worker panicked"))??;
        }
        Ok(())
    })?;
    Ok(files.len())
}

async fn judge(
    pipeline: &Arc<Pipeline>,
    ctx: &Context,
    direction: Direction,
    path: &Path,
    raw: &[u8],
) -> String {
    let mut line = if direction == Direction::Inbound {
        threats(pipeline, ctx, path, raw).await
    } else {
        leaks(pipeline, ctx, direction, path, raw).await
    };
    if let Some(warning) = not_a_message(raw) {
        line["warning"] = warning.into();
    }
    line.to_string()
}

/// The data-leak prevention verdict on outgoing mail: what each detector found (counts and
/// masked samples), and the policy that acts.
async fn leaks(
    pipeline: &Arc<Pipeline>,
    ctx: &Context,
    direction: Direction,
    path: &Path,
    raw: &[u8],
) -> serde_json::Value {
    let outcome = pipeline
        .dlp_inspect(raw, direction, &ctx.mail_from, &ctx.rcpts)
        .await;
    let report = outcome.report();
    let findings: Vec<serde_json::Value> = outcome
        .inspection
        .findings
        .iter()
        .map(|(detector, found)| {
            serde_json::json!({
                "detector": detector.name(),
                "count": found.distinct,
                "sample": found.samples.first(),
                "samples": found.samples,
            })
        })
        .collect();
    serde_json::json!({
        "path": path_name(path),
        "direction": direction,
        "verdict": report.class,
        "score": 0.0,
        "action": outcome.decision.as_ref().map_or("deliver", |d| d.action.as_str()),
        "policy": outcome.decision.as_ref().map(|d| &d.policy),
        "dlp": findings,
        "encrypted": outcome.inspection.encrypted,
        "unreadable": outcome.inspection.unreadable,
        "truncated": outcome.inspection.truncated,
        "symbols": report.symbols,
        "explanation": report.explanation,
        "micros": outcome.micros,
    })
}

/// The threat verdict on inbound mail.
async fn threats(
    pipeline: &Arc<Pipeline>,
    ctx: &Context,
    path: &Path,
    raw: &[u8],
) -> serde_json::Value {
    let analysis = pipeline.analyse(raw, ctx).await;
    let domain = ctx
        .rcpts
        .first()
        .and_then(|r| r.rsplit_once('@'))
        .map(|(_, d)| d.to_ascii_lowercase());
    let (report, action) = pipeline.report(&analysis, ctx, domain.as_deref(), None);
    serde_json::json!({
        "path": path_name(path),
        "verdict": report.class,
        "score": (report.score * 100.0).round() / 100.0,
        "action": action,
        "symbols": report.symbols,
        "explanation": report.explanation,
        "micros": analysis.micros,
    })
}

/// Why `raw` does not look like a mail message, if it does not: an empty or binary file is
/// judged like any input, but the verdict then says little about mail.
fn not_a_message(raw: &[u8]) -> Option<&'static str> {
    let first_line = raw.split(|&b| b == b'\n').next().unwrap_or_default();
    let header_like = first_line.starts_with(b"From ")
        || first_line
            .iter()
            .position(|&b| b == b':')
            .is_some_and(|colon| {
                colon > 0 && first_line[..colon].iter().all(|b| b.is_ascii_graphic())
            });
    if raw.is_empty() {
        Some("empty file")
    } else if raw.iter().take(4096).any(|&b| b == 0) {
        Some("binary file, not a mail message")
    } else if !header_like {
        Some("no header field on the first line: not a mail message?")
    } else {
        None
    }
}

fn path_name(path: &Path) -> String {
    if path == Path::new("-") {
        "-".into()
    } else {
        path.display().to_string()
    }
}

fn read_message(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(MAX_FILE)
            .read_to_end(&mut raw)?;
    } else {
        std::fs::File::open(path)?
            .take(MAX_FILE)
            .read_to_end(&mut raw)?;
    }
    Ok(raw)
}

/// Adds the message files under `path` to `files`, each directory once: a directory reached
/// again (through symbolic links such as `loop -> .`) is skipped, so links cannot multiply the
/// walk.
fn collect(
    path: &Path,
    depth: usize,
    seen: &mut HashSet<(u64, u64)>,
    files: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    if path == Path::new("-") || path.is_file() {
        files.push(path.to_owned());
        return Ok(());
    }
    let meta = std::fs::metadata(path)?;
    if depth >= MAX_DIR_DEPTH || !seen.insert((meta.dev(), meta.ino())) {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            collect(&e, depth + 1, seen, files)?;
        } else if e.is_file() {
            files.push(e);
        }
    }
    Ok(())
}
