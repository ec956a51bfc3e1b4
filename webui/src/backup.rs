//! Backups from the console (system administrators only): the configuration, keys, installed
//! certificates and settings sealed with a passphrase the administrator types, downloaded as
//! one file (see [`jianmen_mta::backup`]). Restoring is not offered here: it writes the
//! configuration directory root owns, so it is `jianmen restore` at the appliance.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::accounts::Role;
use super::api::actor;
use super::{ApiError, Console, authorize};
use jianmen_mta::backup::{self, BackupError, SettingsOf, sealed::SealError};

type Data = web::Data<Console>;

/// The databases whose settings a backup of `config`'s gateway carries: the queue's (policy
/// versions, personal lists, drill templates) and the console's (accounts) — unless the
/// accounts are in a cluster's PostgreSQL database, which PostgreSQL's own tools back up.
pub fn databases(config: &jianmen_mta::config::Config) -> Vec<SettingsOf<'static>> {
    let mut databases = vec![backup::QUEUE_SETTINGS];
    if config.store.backend == jianmen_mta::store::Backend::Sqlite {
        databases.push(SettingsOf {
            file: super::accounts::DATABASE,
            tables: super::accounts::SETTINGS,
        });
    }
    databases
}

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/system/backup", web::post().to(download));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    passphrase: String,
}

/// One backup at a time: each spends 64 MiB on Argon2 and reads every settings table.
static MAKING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn download(
    req: HttpRequest,
    console: Data,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let session = authorize(&req, &console, &[Role::System]).await?;
    let body: Request = serde_json::from_slice(&body)
        .map_err(|e| ApiError::field("body", format!("invalid JSON body: {e}")))?;
    let Ok(_making) = MAKING.try_lock() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "another backup is being made: wait for it",
        ));
    };
    let who = actor(&session);
    let made = match backup::make(
        &console.config,
        &databases(&console.config),
        &body.passphrase,
    )
    .await
    {
        Ok(made) => made,
        Err(BackupError::Sealed(SealError::WeakPassphrase)) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                SealError::WeakPassphrase.to_string(),
            )
            .coded("backup_passphrase"));
        }
        Err(e) => {
            console.record(&who, "backup.fail", &e.to_string()).await;
            return Err(ApiError::internal(e));
        }
    };
    let detail = format!(
        "{} files, {} bytes sealed{}",
        made.manifest.files.len(),
        made.sealed.len(),
        if made.manifest.outside.is_empty() {
            String::new()
        } else {
            format!("; not in it: {}", made.manifest.outside.join(", "))
        }
    );
    console.record(&who, "backup.make", &detail).await;
    let day = chrono::DateTime::from_timestamp(made.manifest.made_at, 0)
        .unwrap_or_default()
        .with_timezone(&console.config.server.zone())
        .format("%Y%m%d-%H%M");
    let host: String = made
        .manifest
        .hostname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"jianmen-{host}-{day}.jbk\""),
        ))
        .insert_header(("X-Backup-Files", made.manifest.files.len().to_string()))
        .insert_header(("X-Backup-Outside", made.manifest.outside.len().to_string()))
        .body(made.sealed))
}
