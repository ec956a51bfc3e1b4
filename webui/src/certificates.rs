//! The certificates the gateway serves, managed by the system administrator: install a pair
//! (PEM certificate chain and key, or a PKCS#12 file) for the international, SM2 signing or
//! TLCP encryption role; make a key and certificate request here and install what the CA
//! issues for it; or remove an installed pair to serve `[tls]`'s files (or generated ones)
//! again. A pair is checked before it is served (its key, dates and key usage: see
//! [`jianmen_gm::pair`]) and is served from the next handshake, on STARTTLS and the console
//! alike, without a restart. Each change is audited with the certificate's fingerprint.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use super::accounts::Role;
use super::api::actor;
use super::{ApiError, Console, authorize, now};
use jianmen_gm::pair::{self, CertRole, PairError};
use jianmen_gm::tls::Identity;

type Data = web::Data<Console>;
type Reply = Result<HttpResponse, ApiError>;

/// Registers the routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/certificates/{role}")
            // Base64 of the largest PKCS#12 accepted, with room for the JSON around it.
            .app_data(web::PayloadConfig::new(2 * pair::MAX_UPLOAD))
            .route(web::post().to(install))
            .route(web::delete().to(remove)),
    )
    .route("/api/certificates/{role}/request", web::post().to(request));
}

/// An uploaded pair: PEM `cert` with PEM `key` (or without, for the key of a request made
/// here), or a base64 `pkcs12` file; `password` opens an encrypted key or the PKCS#12 file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Upload {
    #[serde(default)]
    cert: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    pkcs12: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

fn role_of(name: &str) -> Result<CertRole, ApiError> {
    CertRole::parse(name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such certificate role"))
}

fn served(console: &Console) -> Result<&jianmen_gm::tls::ServerTls, ApiError> {
    console.tls.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "certificates cannot be changed here",
        )
    })
}

impl From<PairError> for ApiError {
    fn from(e: PairError) -> Self {
        let code = match e {
            PairError::TooLarge => "cert_too_large",
            PairError::Certificate(_) => "cert_unreadable",
            PairError::Key(_) => "cert_key",
            PairError::Pkcs12(_) => "cert_pkcs12",
            PairError::Mismatch => "cert_mismatch",
            PairError::OutOfDate { .. } => "cert_dates",
            PairError::Unsuitable(_) => "cert_unsuitable",
            PairError::Request(_) => return ApiError::internal(e),
        };
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).coded(code)
    }
}

/// SHA-256 of the leaf, as the audit log and the answer name it.
fn fingerprint(identity: &Identity) -> String {
    let leaf = identity
        .chain
        .first()
        .map(|c| c.as_ref())
        .unwrap_or_default();
    jianmen_gm::hex(ring::digest::digest(&ring::digest::SHA256, leaf).as_ref())
}

async fn install(
    req: HttpRequest,
    console: Data,
    role: web::Path<String>,
    body: web::Bytes,
) -> Reply {
    let s = authorize(&req, &console, &[Role::System]).await?;
    let role = role_of(&role)?;
    let tls = served(&console)?;
    let upload: Upload = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let _one_at_a_time = console.cert_changes.lock().await;
    let store = console.certs.clone();
    let hostname = console.config.server.hostname.clone();
    // Key derivation and parsing are work an upload decides: off the request threads.
    let (identity, warnings, from_request) =
        web::block(move || read_upload(upload, role, &store, &hostname))
            .await
            .map_err(ApiError::internal)??;
    let store = &console.certs;
    let previous = store.install(role, &identity).map_err(ApiError::internal)?;
    let print = fingerprint(&identity);
    if let Err(e) = tls.install(role, identity) {
        if let Err(undo) = store.put_back(previous) {
            tracing::error!(error = %undo, "cannot put the previous certificate back");
        }
        return Err(
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).coded("cert_unsuitable"),
        );
    }
    if from_request && let Err(e) = store.drop_request_key(role) {
        tracing::warn!(error = %e, "cannot remove the request key");
    }
    tracing::info!(role = role.as_str(), sha256 = %print, "certificate installed");
    console
        .record(
            &actor(&s),
            "tls.install",
            &format!("{} sha256={print}", role.as_str()),
        )
        .await;
    Ok(HttpResponse::Ok().json(json!({ "role": role, "sha256": print, "warnings": warnings })))
}

/// The pair an upload gives, checked for `role`; whether its key is a request's made here.
fn read_upload(
    upload: Upload,
    role: CertRole,
    store: &jianmen_mta::certstore::CertStore,
    hostname: &str,
) -> Result<(Identity, Vec<pair::PairWarning>, bool), ApiError> {
    let password = upload.password.as_deref().unwrap_or_default();
    let mut from_request = false;
    let identity = match (&upload.pkcs12, &upload.cert, &upload.key) {
        (Some(p12), None, None) => {
            let der = base64::engine::general_purpose::STANDARD
                .decode(p12.trim())
                .map_err(|_| ApiError::field("pkcs12", "not base64"))?;
            pair::from_pkcs12(&der, password)?
        }
        (None, Some(cert), Some(key)) => {
            pair::from_pem(cert.as_bytes(), key.as_bytes(), Some(password.as_bytes()))?
        }
        // The key in the same text as the chain.
        (None, Some(cert), None) if cert.contains("PRIVATE KEY-----") => {
            pair::from_pem(cert.as_bytes(), cert.as_bytes(), Some(password.as_bytes()))?
        }
        (None, Some(cert), None) => {
            let key = store
                .request_key(role)
                .map_err(ApiError::internal)?
                .ok_or_else(|| {
                    ApiError::field("key", "give the key, or make a request here first")
                        .coded("cert_no_request")
                })?;
            from_request = true;
            pair::from_pem(cert.as_bytes(), &key, None)?
        }
        _ => {
            return Err(ApiError::field(
                "cert",
                "give a PEM certificate (with its key) or a PKCS#12 file",
            ));
        }
    };
    let warnings = pair::check(&identity, role, hostname, now())?;
    Ok((identity, warnings, from_request))
}

/// Serves `[tls]`'s files (or a generated certificate) for the role again.
async fn remove(req: HttpRequest, console: Data, role: web::Path<String>) -> Reply {
    let s = authorize(&req, &console, &[Role::System]).await?;
    let role = role_of(&role)?;
    let tls = served(&console)?;
    let _one_at_a_time = console.cert_changes.lock().await;
    let store = &console.certs;
    if !store.is_installed(role) {
        return Err(
            ApiError::new(StatusCode::NOT_FOUND, "nothing is installed for this role")
                .coded("cert_not_installed"),
        );
    }
    let base = console
        .config
        .tls
        .clone()
        .unwrap_or_else(jianmen_mta::config::TlsConfig::generated);
    let host = &console.config.server.hostname;
    let configured = match role {
        CertRole::International => Identity::international(&base, host),
        CertRole::Sm2Signing => Identity::sm2(&base, host),
        CertRole::Sm2Encryption => Identity::sm2_encryption(&base, host),
    }
    .map_err(ApiError::internal)?;
    tls.install(role, configured).map_err(ApiError::internal)?;
    store.remove(role).map_err(ApiError::internal)?;
    console
        .record(&actor(&s), "tls.remove", role.as_str())
        .await;
    Ok(HttpResponse::NoContent().finish())
}

/// Whether to replace a request still waiting for its certificate.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewRequest {
    #[serde(default)]
    replace: bool,
}

/// A new key kept here and a request (PKCS#10) for the host name, to send to a CA. A request
/// still waiting is replaced only when asked: its key is what the certificate a CA may already
/// be issuing belongs to.
async fn request(
    req: HttpRequest,
    console: Data,
    role: web::Path<String>,
    body: web::Bytes,
) -> Reply {
    let s = authorize(&req, &console, &[Role::System]).await?;
    let role = role_of(&role)?;
    served(&console)?;
    let asked: NewRequest = if body.is_empty() {
        NewRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::field("body", format!("invalid JSON body: {e}")))?
    };
    let _one_at_a_time = console.cert_changes.lock().await;
    let waiting = console
        .certs
        .request_key(role)
        .map_err(ApiError::internal)?
        .is_some();
    if waiting && !asked.replace {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "a request for this role still waits for its certificate",
        )
        .coded("cert_request_pending"));
    }
    let hostname = console.config.server.hostname.clone();
    let (key, csr) = web::block(move || pair::request(role, &hostname))
        .await
        .map_err(ApiError::internal)??;
    console
        .certs
        .save_request_key(role, &key)
        .map_err(ApiError::internal)?;
    console
        .record(&actor(&s), "tls.request", role.as_str())
        .await;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(json!({ "role": role, "csr": csr })))
}
