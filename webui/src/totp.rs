//! The second factor (两步验证): every console account may add a one-time code (TOTP, RFC 6238)
//! to its password. Enrolling shows a secret (as a QR code and as text) that an authenticator
//! app takes; it is in force only once a code from the app is confirmed. From then on a
//! sign-in needs both, each code is taken once, and a wrong code counts towards the lockout
//! like a wrong password. Removing it needs a current code; an administrator's password reset
//! removes it too (the way back in for someone who lost the phone). Each change is audited.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::accounts::Role;
use super::api::actor;
use super::{ApiError, Console, authorize, now};

type Data = web::Data<Console>;
type Reply = Result<HttpResponse, ApiError>;

/// Every role: each account guards its own sign-in.
const ANYONE: &[Role] = &[Role::System, Role::Security, Role::Audit];

/// Registers the routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/totp/begin", web::post().to(begin))
        .route("/api/totp/confirm", web::post().to(confirm))
        .route("/api/totp/remove", web::post().to(remove));
}

/// A new secret for the caller, with the `otpauth://` address apps read and its QR code as a
/// square of modules (`1` dark, row by row), which the page draws itself.
async fn begin(req: HttpRequest, console: Data) -> Reply {
    let s = authorize(&req, &console, ANYONE).await?;
    let secret = console.accounts.totp_begin(&s.account.name).await?;
    let issuer = "Jianmen";
    let label = format!(
        "{issuer}:{}@{}",
        s.account.name, console.config.server.hostname
    );
    let uri = format!(
        "otpauth://totp/{}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits=6&period=30",
        label.replace(' ', "%20")
    );
    let qr = qrcodegen::QrCode::encode_text(&uri, qrcodegen::QrCodeEcc::Medium)
        .map_err(ApiError::internal)?;
    let size = qr.size();
    let modules: String = (0..size)
        .flat_map(|y| (0..size).map(move |x| (x, y)))
        .map(|(x, y)| if qr.get_module(x, y) { '1' } else { '0' })
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(json!({ "secret": secret, "uri": uri, "qr": { "size": size, "modules": modules } })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Code {
    code: String,
}

fn checked(code: &Code) -> Result<&str, ApiError> {
    let c = code.code.trim();
    if c.len() != 6 || !c.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::field("code", "six digits from the app"));
    }
    Ok(c)
}

async fn confirm(req: HttpRequest, console: Data, body: web::Json<Code>) -> Reply {
    let s = authorize(&req, &console, ANYONE).await?;
    let code = checked(&body)?;
    console
        .accounts
        .totp_confirm(&s.account.name, code, now())
        .await?;
    console
        .record(
            &actor(&s),
            "totp.enable",
            "one-time codes required at sign-in",
        )
        .await;
    Ok(HttpResponse::Ok().json(json!({ "totp": true })))
}

async fn remove(req: HttpRequest, console: Data, body: web::Json<Code>) -> Reply {
    let s = authorize(&req, &console, ANYONE).await?;
    let code = checked(&body)?;
    console
        .accounts
        .totp_remove(&s.account.name, code, now())
        .await?;
    console
        .record(
            &actor(&s),
            "totp.disable",
            "one-time codes no longer required",
        )
        .await;
    Ok(HttpResponse::Ok().json(json!({ "totp": false })))
}
