//! `jianmen account`: console accounts managed at the appliance. The console lets the system
//! administrator manage system administrators and the security administrator its per-domain
//! delegates; security and audit administrators are created, reset and deleted only here, by
//! whoever can become root on the machine (三权分立: no console role makes or takes over the
//! account that checks it). Every action is recorded in the audit log.

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use jianmen_mta::config::Config;
use jianmen_mta::queue::manager::unix_now;
use jianmen_webui::accounts::{Accounts, Role};

/// What `jianmen account` does.
#[derive(Subcommand)]
enum AccountAction {
    /// List every account: name, role, domain, locked until.
    List,
    /// Create an account with a generated password (printed once; changed at first sign-in).
    Create {
        /// Login name (2 to 32 of a-z 0-9 . _ -, starting with a letter).
        name: String,
        /// system, security or audit.
        #[arg(long)]
        role: String,
        /// Make a per-domain administrator (a security administrator of this domain only).
        #[arg(long)]
        domain: Option<String>,
    },
    /// Give an account a new generated password (printed once), unlock it, end its sessions.
    Reset {
        /// Login name.
        name: String,
    },
    /// Lift a lockout.
    Unlock {
        /// Login name.
        name: String,
    },
    /// Delete an account (never the last system, security or audit administrator).
    Delete {
        /// Login name.
        name: String,
    },
}

/// Options of `jianmen account`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::ConfigPath,
    #[command(subcommand)]
    action: AccountAction,
}

/// Runs one account action on the configuration's console database.
pub async fn run(args: Args) -> Result<()> {
    let config = Config::load(&args.config.path)?;
    let console = config
        .console
        .clone()
        .context("the configuration has no [console] section")?;
    super::as_service(&config)?;
    let store = jianmen_mta::store::Store::open(&config).await?;
    let accounts = Accounts::open_in(&store, console).await?;
    match args.action {
        AccountAction::List => {
            for a in accounts.list().await? {
                println!(
                    "{:<32} {:<8} {:<24} {}",
                    a.name,
                    a.role.as_str(),
                    a.domain.as_deref().unwrap_or("-"),
                    if a.locked_until > unix_now() {
                        "locked"
                    } else {
                        ""
                    }
                );
            }
        }
        AccountAction::Create { name, role, domain } => {
            let Some(role) = Role::parse(&role) else {
                bail!("--role must be system, security or audit");
            };
            let password = accounts
                .create(&name, role, domain.as_deref(), unix_now())
                .await?;
            let detail = format!(
                "{name} as {}{}",
                role.as_str(),
                domain.map(|d| format!(" for {d}")).unwrap_or_default()
            );
            super::record(&config, "account.create", &detail).await?;
            println!("{name}: initial password {password} (must be changed at first sign-in)");
        }
        AccountAction::Reset { name } => {
            let password = accounts.reset(&name).await?;
            super::record(&config, "account.reset", &name).await?;
            println!("{name}: new password {password} (must be changed at first sign-in)");
        }
        AccountAction::Unlock { name } => {
            accounts.unlock(&name).await?;
            super::record(&config, "account.unlock", &name).await?;
            println!("{name}: unlocked");
        }
        AccountAction::Delete { name } => {
            accounts.delete(&name).await?;
            super::record(&config, "account.delete", &name).await?;
            println!("{name}: deleted");
        }
    }
    Ok(())
}
