//! Offline upgrades from the console (system administrators only): the state of the releases,
//! and uploading a `.jup`, which is verified, installed beside the running version and started
//! on trial by stopping this process for the service manager to start it again (the unit says
//! `Restart=always`); see [`jianmen_mta::upgrade::release`] for the trial and the rollback.

use std::path::Path;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::accounts::Role;
use super::api::actor;
use super::{ApiError, Console, authorize};
use jianmen_mta::upgrade::release::{self, Releases};
use jianmen_mta::upgrade::{ComponentKind, Installed, Manifest, TrustedKey, UpgradeError};

type Data = web::Data<Console>;
type Reply = Result<HttpResponse, ApiError>;

/// Largest package accepted by upload.
const MAX_UPLOAD: u64 = 1024 * 1024 * 1024;
/// Where the package's ClamAV files go (when the service account may write there).
const CLAMAV_DIR: &str = "/var/lib/clamav";

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/system/upgrade", web::get().to(status))
        .route("/api/system/upgrade", web::post().to(upload));
}

/// The version this process runs: its release's, or its own build's.
fn running_version() -> String {
    std::env::var(release::ENV_VERSION).unwrap_or_else(|_| env!("CARGO_PKG_VERSION").to_owned())
}

async fn status(req: HttpRequest, console: Data) -> Reply {
    authorize(&req, &console, &[Role::System]).await?;
    let releases = &console.releases;
    Ok(HttpResponse::Ok().json(json!({
        "running": running_version(),
        "current_release": releases.current(),
        "previous_release": releases.previous(),
        "trial": releases.trial(),
        "last_rollback": releases.last_rollback().map(|s| s.trim().to_owned()),
        "max_upload_bytes": MAX_UPLOAD,
        "trust_file": release::trust_file().display().to_string(),
        "trusted": release::trust_file().exists(),
    })))
}

/// One upload installs at a time: a second one while a package is received, verified and
/// installed is refused, so two can never switch the current release under each other.
static UPLOADING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn upload(req: HttpRequest, console: Data, body: web::Payload) -> Reply {
    let session = authorize(&req, &console, &[Role::System]).await?;
    let Ok(_installing) = UPLOADING.try_lock() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "another upgrade package is being installed: wait for it",
        ));
    };
    let releases = &console.releases;
    if let Some(t) = releases.trial() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("{} is on trial: wait for its health verdict", t.version),
        ));
    }
    std::fs::create_dir_all(releases.root()).map_err(ApiError::internal)?;
    let path = releases
        .root()
        .join(format!(".upload-{}.jup", ulid::Ulid::new()));
    let received = receive(body, &path).await;
    let outcome = match received {
        Ok(()) => {
            let (releases, path) = (releases.clone(), path.clone());
            web::block(move || install(&releases, &path))
                .await
                .map_err(ApiError::internal)
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_file(&path);
    let who = actor(&session);
    match outcome? {
        Ok((manifest, mut clamav)) => {
            if clamav.starts_with("installed")
                && let Some(c) = &console.config.scan.clamav
            {
                match jianmen_scan::clamav::Clamd::new(c).reload().await {
                    Ok(()) => clamav.push_str("; clamd reloads"),
                    Err(e) => clamav.push_str(&format!("; clamd did not reload: {e}")),
                }
            }
            let detail = format!("{} to {} on trial", running_version(), manifest.version);
            console.record(&who, "upgrade.apply", &detail).await;
            tracing::warn!(version = %manifest.version, by = %who, "upgrade uploaded: restarting on trial");
            // The service manager starts it again on the new release.
            super::stop_for_restart();
            Ok(HttpResponse::Accepted().json(json!({
                "version": manifest.version,
                "from": running_version(),
                "restarting": true,
                "clamav": clamav,
            })))
        }
        Err(e) => {
            console.record(&who, "upgrade.refuse", &e.to_string()).await;
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                e.to_string(),
            ))
        }
    }
}

/// Streams the request body to `path`, refusing more than [`MAX_UPLOAD`] bytes.
async fn receive(mut body: web::Payload, path: &Path) -> Result<(), ApiError> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(ApiError::internal)?;
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::field("body", e.to_string()))?;
        size += chunk.len() as u64;
        if size > MAX_UPLOAD {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("packages are at most {MAX_UPLOAD} bytes"),
            ));
        }
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    if size == 0 {
        return Err(ApiError::field("body", "no package in the request"));
    }
    file.sync_all().await.map_err(ApiError::internal)
}

/// Verifies and installs the package and starts its trial; what became of its ClamAV files.
fn install(releases: &Releases, package: &Path) -> Result<(Manifest, String), UpgradeError> {
    let trusted = TrustedKey::load(&release::trust_file())?;
    let running = releases.effective_version(&running_version());
    let installed = Installed {
        version: &running,
        arch: std::env::consts::ARCH,
        trusted: &trusted,
    };
    let manifest = releases.install(package, &installed)?;
    releases.start_trial(&manifest.version)?;
    let release = releases.verified(&manifest.version, &trusted)?;
    let clamav = if release.component(ComponentKind::Clamav).is_none() {
        "none in the package".to_owned()
    } else {
        match release.install_clamav(Path::new(CLAMAV_DIR)) {
            Ok(names) => format!("installed in {CLAMAV_DIR}: {}", names.join(", ")),
            Err(e) => format!("not installed ({e}): run `jianmen upgrade apply` as root"),
        }
    };
    Ok((manifest, clamav))
}
