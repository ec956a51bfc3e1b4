//! `jianmen cert-sm2`: SM2 keys, self-signed SM2 certificates and certificate requests for a
//! CA — the signing pair for RFC 8998 and TLCP, and TLCP's encryption pair.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use jianmen_gm::cert;

/// Options of `jianmen cert-sm2`.
#[derive(clap::Args)]
pub struct Args {
    /// Host name the certificate is for.
    #[arg(long)]
    pub host: String,
    /// Directory to write into (an existing key is never overwritten).
    #[arg(long)]
    pub dir: PathBuf,
    /// Days the self-signed certificate is valid.
    #[arg(long, default_value_t = 3650)]
    pub days: i64,
    /// Encrypt the keys (PKCS#8, scrypt + AES-256-CBC) with the first line of this file;
    /// point `tls.key_password_file` at it.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
}

/// `jianmen cert-sm2`: key (0600, never overwritten), self-signed certificate and request.
pub fn run(args: Args) -> Result<()> {
    let (host, dir, days) = (args.host.as_str(), args.dir.as_path(), args.days);
    if !jianmen_mta::config::is_domain_like(host) {
        anyhow::bail!("--host must be a host name");
    }
    if !(1..=36500).contains(&days) {
        anyhow::bail!("--days must be 1 to 36500");
    }
    let password = match args.password_file.as_deref() {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let line = text.lines().next().unwrap_or_default().to_owned();
            if line.is_empty() {
                anyhow::bail!("{}: the first line (the password) is empty", path.display());
            }
            Some(line)
        }
        None => None,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (stem, usage) in [
        ("sm2", cert::Usage::Signing),
        ("sm2-enc", cert::Usage::Encryption),
    ] {
        let key = jianmen_gm::sm2::Sm2PrivateKey::generate();
        let key_path = dir.join(format!("{stem}-key.pem"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .with_context(|| {
                format!(
                    "{} (an existing key is never overwritten)",
                    key_path.display()
                )
            })?;
        let pem = match &password {
            Some(p) => key.to_pkcs8_encrypted_pem(p.as_bytes())?,
            None => key.to_pkcs8_pem()?,
        };
        f.write_all(pem.as_bytes())?;
        f.sync_all()?;
        let certificate = cert::self_signed(&key, host, days, usage)?;
        std::fs::write(
            dir.join(format!("{stem}-cert.pem")),
            cert::pem("CERTIFICATE", &certificate),
        )?;
        let csr = cert::request(&key, host, usage)?;
        std::fs::write(
            dir.join(format!("{stem}.csr")),
            cert::pem("CERTIFICATE REQUEST", &csr),
        )?;
    }
    println!(
        "{}: sm2-key.pem, sm2-cert.pem, sm2.csr (signing) and sm2-enc-key.pem, sm2-enc-cert.pem, \
         sm2-enc.csr (TLCP encryption); certificates self-signed for {days} days, requests for your CA",
        dir.display()
    );
    Ok(())
}
