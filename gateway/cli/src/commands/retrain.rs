//! `jianmen feedback` and `jianmen retrain`: local learning. Feedback is kept as raw messages in
//! the data directory; retrain computes features for a base corpus plus that feedback (the
//! same Rust code as scanning), runs the Python trainer, and activates the new model only if
//! it is not worse than the active one on a fixed validation set — the base corpora's test
//! split, which neither model trained on and which feedback never enters.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result, bail};
use jianmen_mta::config::Config;
use jianmen_scan::accuracy::{self, Judged};
use jianmen_scan::feedback::{FeedbackStore, Label};
use jianmen_scan::pipeline::{activated_model_path, load_model};

use crate::commands::eval::judge;
use crate::commands::features::{self, Item, load_corpora};

/// Largest message read from a file or standard input for feedback.
const MAX_FEEDBACK_FILE: u64 = jianmen_scan::feedback::MAX_MESSAGE_BYTES as u64;

/// Options of `jianmen feedback`.
#[derive(clap::Args)]
pub struct FeedbackArgs {
    /// Configuration file (its data directory holds the feedback).
    #[arg(long, short, default_value = "/etc/jianmen/jianmen.toml")]
    pub config: PathBuf,
    /// What the messages are: ham, spam or phish.
    pub label: String,
    /// Message files (`-` for standard input).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// `jianmen feedback`: keeps the files and records the action in the audit log.
pub async fn feedback_command(args: FeedbackArgs) -> Result<()> {
    feedback(&args.config, &args.label, &args.files)?;
    let detail = format!("{} message(s) as {}", args.files.len(), args.label);
    crate::commands::record(&Config::load(&args.config)?, "feedback", &detail).await
}

/// Keeps `files` (`-`: standard input) as feedback labelled `label`. The files are opened as
/// the caller (they may be readable by root only), the store written as the service account.
fn feedback(config: &Path, label: &str, files: &[PathBuf]) -> Result<()> {
    let config = Config::load(config)?;
    let Some(label) = Label::parse(label) else {
        bail!("label must be ham, spam or phish, not {label:?}");
    };
    let sources = files
        .iter()
        .map(|file| -> Result<Box<dyn std::io::Read>> {
            if file.as_os_str() == "-" {
                return Ok(Box::new(std::io::stdin()));
            }
            let opened = std::fs::File::open(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            Ok(Box::new(opened))
        })
        .collect::<Result<Vec<_>>>()?;
    crate::commands::as_service(&config)?;
    let store = FeedbackStore::open(&config.server.data_dir);
    for (file, source) in files.iter().zip(sources) {
        let mut raw = Vec::new();
        source.take(MAX_FEEDBACK_FILE + 1).read_to_end(&mut raw)?;
        let kept = store
            .record(&raw, label)
            .with_context(|| file.display().to_string())?;
        println!(
            "{}: kept as {} ({})",
            file.display(),
            label.as_str(),
            kept.display()
        );
    }
    Ok(())
}

/// Options of `jianmen retrain`.
#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (data directory, active model).
    #[arg(long, short, default_value = "/etc/jianmen/jianmen.toml")]
    pub config: PathBuf,
    /// Base corpora directory (per corpus `*.tar.zst` + `labels.tsv`).
    #[arg(long)]
    pub corpora: PathBuf,
    /// The trainer (`train.py`); found next to the binary's share directory by default.
    #[arg(long)]
    pub trainer: Option<PathBuf>,
    /// Python interpreter with the trainer's requirements.
    #[arg(long, default_value = "python3")]
    pub python: PathBuf,
    /// Worker threads.
    #[arg(long, short, default_value_t = 2)]
    pub jobs: usize,
}

/// `jianmen retrain`: retrains and records the outcome in the audit log; exit status 3 when
/// the new model was refused (not an error).
pub async fn retrain_command(args: Args) -> Result<ExitCode> {
    let (config, corpora) = (args.config.clone(), args.corpora.clone());
    let activated = run(args)?;
    let action = if activated {
        "model.activate"
    } else {
        "model.refuse"
    };
    let detail = format!("retrained on {}", corpora.display());
    crate::commands::record(&Config::load(&config)?, action, &detail).await?;
    Ok(if activated {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// Trains, gates and (when not worse) activates a new model; `Ok(false)` when refused.
fn run(opts: Args) -> Result<bool> {
    let config = Config::load(&opts.config)?;
    let data_dir = &config.server.data_dir;
    let trainer = match opts.trainer {
        Some(t) => t,
        None => find_trainer()?,
    };
    let work = tempfile::tempdir()?;
    let mut items = load_corpora(&opts.corpora, work.path())?;
    let feedback = FeedbackStore::open(data_dir).entries()?;
    println!(
        "base: {} messages ({} in the validation split); feedback: {} messages",
        items.len(),
        items.iter().filter(|i| i.test).count(),
        feedback.len()
    );
    for (label, file) in feedback {
        items.push(Item {
            corpus: "feedback".into(),
            path: file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            label: label.as_str().into(),
            test: false,
            validation: false,
            file,
        });
    }
    let features = work.path().join("features.tsv");
    features::write(&items, &features, opts.jobs)?;
    let candidate_dir = work.path().join("candidate");
    std::fs::create_dir_all(&candidate_dir)?;
    let status = Command::new(&opts.python)
        .arg(&trainer)
        .arg(&features)
        .arg(&candidate_dir)
        .status()
        .with_context(|| format!("cannot run {} {}", opts.python.display(), trainer.display()))?;
    if !status.success() {
        bail!("the trainer failed ({status})");
    }
    let candidate_file = candidate_dir.join("content.onnx");

    let validation: Vec<Item> = items.into_iter().filter(|i| i.test).collect();
    let shipped = jianmen_mta::upgrade::release::shipped();
    let active = load_model(&config.scan.model, Some(data_dir), shipped.model.as_deref())
        .map_err(anyhow::Error::msg)?;
    let candidate = load_model(&candidate_file.to_string_lossy(), Some(data_dir), None)
        .map_err(|e| anyhow::anyhow!("the new model does not load: {e}"))?;
    let measure = |model| -> Result<serde_json::Value> {
        let judgement = judge(&validation, opts.jobs, model, None, None)?;
        // The two models must be compared on the same, whole validation set.
        if let Some(first) = judgement.unreadable.first() {
            anyhow::bail!(
                "{} validation message(s) could not be read (first: {first}): no comparison",
                judgement.unreadable.len()
            );
        }
        let judged: Vec<Judged> = judgement.judged.into_iter().map(|(_, j)| j).collect();
        Ok(accuracy::metrics(&judged.iter().collect::<Vec<_>>()))
    };
    let active_figures = measure(active)?;
    let candidate_figures = measure(candidate)?;
    let show = |m: &serde_json::Value| {
        let f = |k: &str| m[k].as_f64().map_or("–".to_owned(), |v| format!("{v:.3}"));
        format!(
            "1-ROCA {} %, FP {} %, caught at 0.1 % FP {} %",
            f("one_minus_roca_pct"),
            f("fp_pct"),
            f("caught_at_fp_0_1_pct")
        )
    };
    println!(
        "validation ({} messages):\n  active ({}): {}\n  new: {}",
        validation.len(),
        config.scan.model,
        show(&active_figures),
        show(&candidate_figures)
    );
    if let Err(why) = accuracy::not_worse(&candidate_figures, &active_figures) {
        println!("refused: the new model is worse on {why}; the active model stays");
        return Ok(false);
    }
    let target = activated_model_path(data_dir);
    install(&candidate_file, &target)?;
    let record = serde_json::json!({
        "validation": { "active": active_figures, "new": candidate_figures },
        "trainer": serde_json::from_slice::<serde_json::Value>(
            &std::fs::read(candidate_dir.join("metrics.json")).unwrap_or_default()
        ).unwrap_or_default(),
    });
    std::fs::write(
        target.with_file_name("metrics.json"),
        serde_json::to_vec_pretty(&record)?,
    )?;
    println!(
        "activated: {} (the `auto` model setting uses it; send SIGHUP or restart the gateway)",
        target.display()
    );
    if config.scan.model != "auto" {
        println!(
            "note: scan.model = {:?}, so the gateway keeps using that until set to \"auto\"",
            config.scan.model
        );
    }
    Ok(true)
}

/// Puts `file` at `target` atomically and durably, keeping the model it replaces as
/// `content.onnx.previous` for rollback.
fn install(file: &Path, target: &Path) -> Result<()> {
    let dir = target.parent().context("model path has no directory")?;
    std::fs::create_dir_all(dir)?;
    let staged = target.with_extension("onnx.new");
    std::fs::copy(file, &staged)?;
    std::fs::File::open(&staged)?.sync_all()?;
    if target.exists() {
        std::fs::rename(target, target.with_extension("onnx.previous"))?;
    }
    std::fs::rename(&staged, target)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// The trainer shipped with the package, else the one in the source tree the binary was built
/// from.
fn find_trainer() -> Result<PathBuf> {
    let mut candidates = vec![PathBuf::from("/usr/share/jianmen/train/train.py")];
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/jianmen → gateway/model/train/train.py
        if let Some(root) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            candidates.push(root.join("gateway/model/train/train.py"));
        }
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .context("trainer not found: pass --trainer PATH/train.py")
}
