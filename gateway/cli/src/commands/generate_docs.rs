//! `jianmen generate-docs` (hidden): the manual pages and shell completions the packages
//! install, written from the command line's own definition so they never drift from it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap_complete::Shell;

/// Options of `jianmen generate-docs`.
#[derive(clap::Args)]
pub struct Args {
    /// Output directory (created).
    #[arg(long)]
    pub out: PathBuf,
}

/// Writes `jianmen.1`, `jianmen-<command>.1`, `jianmen.bash`, `_jianmen` and `jianmen.fish`
/// for the command line `cli`.
pub fn run(args: Args, cli: clap::Command) -> Result<()> {
    let man = args.out.join("man");
    let completions = args.out.join("completions");
    for dir in [&man, &completions] {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    clap_mangen::generate_to(cli.clone(), &man).context("write manual pages")?;
    for (shell, name) in [
        (Shell::Bash, "jianmen.bash"),
        (Shell::Zsh, "_jianmen"),
        (Shell::Fish, "jianmen.fish"),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cli.clone(), "jianmen", &mut script);
        std::fs::write(completions.join(name), script).with_context(|| format!("write {name}"))?;
    }
    Ok(())
}
