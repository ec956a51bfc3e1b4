//! `jianmen dkim keygen`: a new DKIM key for a sending domain, filed where the gateway loads
//! it (`data_dir/keys/<domain>/<selector>.pem`), and the DNS record that publishes it.
//! Rotation is a new selector: keys are never overwritten, so the one that signs now keeps
//! signing until `[[dkim.domains]]` names the next.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use jianmen_mta::config::Config;
use jianmen_mta::dkim::{self, KeyAlgorithm};
use nix::unistd::{Gid, Uid, User};

/// The key types `--algorithm` takes.
#[derive(Clone, Copy, ValueEnum)]
enum Algorithm {
    /// RSA, 2048 bits: what every receiver checks.
    Rsa,
    /// Ed25519 (RFC 8463): short, but not every receiver checks it yet.
    Ed25519,
}

/// What `jianmen dkim` does.
#[derive(Subcommand)]
enum DkimAction {
    /// Make a key for a domain and selector (never overwriting one) and print its DNS record.
    Keygen {
        /// The signing domain (the From domain of the mail to sign).
        #[arg(long)]
        domain: String,
        /// The selector: a new name per key (e.g. jm2026a), published as
        /// <selector>._domainkey.<domain>.
        #[arg(long)]
        selector: String,
        /// The key type.
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: Algorithm,
    },
}

/// Options of `jianmen dkim`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::ConfigPath,
    #[command(subcommand)]
    action: DkimAction,
}

/// Runs a `jianmen dkim` action.
pub async fn run(args: Args) -> Result<()> {
    let config = Config::load(&args.config.path)?;
    match args.action {
        DkimAction::Keygen {
            domain,
            selector,
            algorithm,
        } => {
            let algorithm = match algorithm {
                Algorithm::Rsa => KeyAlgorithm::Rsa,
                Algorithm::Ed25519 => KeyAlgorithm::Ed25519,
            };
            keygen(&config, &domain, &selector, algorithm).await
        }
    }
}

/// Writes the key (0600, in directories of 0700, all the service account's) and prints the
/// record to publish and the configuration that makes it sign.
async fn keygen(
    config: &Config,
    domain: &str,
    selector: &str,
    algorithm: KeyAlgorithm,
) -> Result<()> {
    let path = dkim::key_path(&config.server.data_dir, domain, selector)?;
    // Run as root on a data directory the service account owns, become that account: what is
    // made is then its own. Still root (a data directory of root's), hand what is made over
    // to `server.user` below, or the gateway could not read the key once it drops root.
    super::as_service(config)?;
    let owner = service_owner(&config.server.user)?;
    if path.exists() {
        bail!(
            "{} exists: a key is never overwritten (the selector may be signing mail now); \
             choose a new selector",
            path.display()
        );
    }
    let Some(domain_dir) = path.parent() else {
        bail!("{} has no directory", path.display());
    };
    let keys_dir = config.server.data_dir.join("keys");
    for dir in [keys_dir.as_path(), domain_dir] {
        make_private_dir(dir, owner)?;
    }
    let (pem, txt) = dkim::generate_key(algorithm)?;
    // Written beside its name and linked into place only if the name is still free: the file
    // appears whole or not at all, and a key made meanwhile by someone else is not replaced.
    let mut file = tempfile::Builder::new()
        .prefix(".keygen-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(domain_dir)
        .with_context(|| format!("creating a file in {}", domain_dir.display()))?;
    file.write_all(pem.as_bytes())?;
    file.as_file().sync_all()?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(file.as_file(), Some(uid.as_raw()), Some(gid.as_raw()))
            .with_context(|| format!("handing the key to {}", config.server.user))?;
    }
    file.persist_noclobber(&path).map_err(|e| {
        anyhow::anyhow!(
            "{}: {} (a key is never overwritten: choose a new selector)",
            path.display(),
            e.error
        )
    })?;
    std::fs::File::open(domain_dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", domain_dir.display()))?;
    let (domain, selector) = (
        dkim::normalise_domain(domain),
        dkim::normalise_selector(selector),
    );
    super::record(
        config,
        "dkim.keygen",
        &format!("{selector}._domainkey.{domain} ({algorithm})"),
    )
    .await
    .with_context(|| {
        format!(
            "{} was written, but the audit log could not record it",
            path.display()
        )
    })?;
    println!("{}: new {algorithm} key", path.display());
    println!();
    println!("Publish this record in the {domain} zone:");
    println!();
    println!("{}", dkim::dns_record(&domain, &selector, &txt));
    println!();
    println!("(the value whole, for DNS consoles that take it in one field: {txt})");
    println!();
    println!("Once it resolves, sign with it: in the configuration add (or switch to)");
    println!();
    println!("[[dkim.domains]]");
    println!("domain = \"{domain}\"");
    println!("selector = \"{selector}\"");
    println!();
    println!(
        "and restart the gateway. Keep a previous selector's record published for a few days \
         after switching, for mail still on its way."
    );
    Ok(())
}

/// The account that must own what keygen makes when it runs as root: `server.user`'s ids, or
/// `None` when there is nothing to hand over (not root, or the account is root).
fn service_owner(user: &str) -> Result<Option<(Uid, Gid)>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let account = User::from_name(user)
        .with_context(|| format!("looking up server.user {user:?}"))?
        .with_context(|| {
            format!(
                "server.user {user:?} does not exist: the gateway, running as it, could not \
                 read the key; create it (the packages do) or name another"
            )
        })?;
    if account.uid.is_root() {
        return Ok(None);
    }
    Ok(Some((account.uid, account.gid)))
}

/// Makes `dir` (0700, owned by `owner` when given) unless it exists; an existing directory
/// is left as it is.
fn make_private_dir(dir: &Path, owner: Option<(Uid, Gid)>) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    // The umask cannot widen 0700, but the mode is set outright all the same.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir, Some(uid.as_raw()), Some(gid.as_raw()))
            .with_context(|| format!("handing {} to the service account", dir.display()))?;
    }
    Ok(())
}
