//! Jianmen's console crate: the HTTPS administration console — a JSON API (described by
//! `webui/pages/openapi.json`) and the zh-CN/English pages that use it (`webui/pages/`,
//! compiled in) — the recipients' self-service pages, the link service protected links lead to
//! ([`clicks`]), and the Prometheus endpoint ([`metrics`]). It drives the stores and services of `jianmen-mta` and hands the command
//! line a [`Console`] to serve; nothing below this crate serves HTTP.
//!
//! Every request is checked here before a handler runs: source address against
//! `console.allow_from`, session cookie, role (三权分立: [`accounts::Role`]), a forced password
//! change, and for state changes the CSRF token. Pages are served with a strict CSP, and
//! quarantined mail is previewed sanitised in a sandboxed frame with no network access.

#![warn(missing_docs)]

pub mod accounts;
mod api;
pub mod backup;
mod certificates;
pub mod clicks;
mod drills;
mod intel;
pub mod metrics;
mod ownlists;
mod policy;
mod recall;
mod relay;
mod risk;
mod selfservice;
mod settings;
mod totp;
mod upgrade;

use std::net::{IpAddr, TcpListener};
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;

use accounts::{AccountError, Accounts, Role, Session};
use jianmen_mta::audit::AuditLog;
use jianmen_mta::config::Config;
use jianmen_mta::quarantine::Quarantine;
use jianmen_mta::quarantine::links::LinkKey;
use jianmen_mta::queue::SqliteStore;
use jianmen_mta::tracking::Tracker;
use jianmen_scan::reputation::AddressList;

/// Everything the console's handlers need.
pub struct Console {
    /// The running configuration.
    pub config: Arc<Config>,
    /// Console accounts and sessions.
    pub accounts: Accounts,
    /// Held mail.
    pub quarantine: Quarantine,
    /// Message tracking.
    pub tracker: Tracker,
    /// The audit log.
    pub audit: Arc<AuditLog>,
    /// The queue's store (system page).
    pub store: Arc<SqliteStore>,
    /// Signs and checks the recipients' self-service links.
    pub links: LinkKey,
    /// Where uploaded upgrade packages are installed (`JIANMEN_RELEASES` or the default).
    pub releases: jianmen_mta::upgrade::release::Releases,
    /// The sending accounts' behaviour, when watched.
    pub watch: Option<Arc<jianmen_mta::risk::Watch>>,
    /// The delivery channels, when configured.
    pub relay: Option<Arc<jianmen_mta::relay::Relay>>,
    /// The hunt index of delivered messages.
    pub hunt: Option<jianmen_mta::hunt::HuntIndex>,
    /// Recall from the mailboxes, when a mail system is configured.
    pub recaller: Option<Arc<jianmen_mta::recall::Recaller>>,
    /// Threat intelligence.
    pub intel: Option<Arc<jianmen_mta::intel::Intel>>,
    /// The link service, when links are protected.
    pub link_service: Option<clicks::LinkService>,
    /// Phishing drills, when enabled.
    pub drills: Option<Arc<jianmen_mta::drills::Drills>>,
    /// The detection policy's versions, when it can be edited here.
    pub policy: Option<Arc<jianmen_mta::policy::PolicyBook>>,
    /// What STARTTLS and the console serve, when certificates may be changed here.
    pub tls: Option<Arc<jianmen_gm::tls::ServerTls>>,
    /// Certificates installed from the console.
    pub certs: jianmen_mta::certstore::CertStore,
    /// One certificate change at a time: what is served and what is on disk stay the same.
    cert_changes: tokio::sync::Mutex<()>,
    /// Where recipients sign in to their self-service pages, when configured.
    directory: Option<Arc<jianmen_mta::directory::Directory>>,
    allow: AddressList,
    /// The cluster's database and this node's name, in cluster mode.
    pub cluster: Option<(jianmen_mta::store::SharedDb, String)>,
}

impl Console {
    /// The console state.
    pub fn new(
        config: Arc<Config>,
        accounts: Accounts,
        quarantine: Quarantine,
        tracker: Tracker,
        audit: Arc<AuditLog>,
        store: Arc<SqliteStore>,
        links: LinkKey,
    ) -> Console {
        let allow = config
            .console
            .as_ref()
            .and_then(|c| AddressList::parse(&c.allow_from).ok())
            .unwrap_or_default();
        settings::note_start();
        let certs = jianmen_mta::certstore::CertStore::new(&config.server.data_dir);
        Console {
            config,
            accounts,
            quarantine,
            tracker,
            audit,
            store,
            links,
            releases: jianmen_mta::upgrade::release::Releases::from_env(),
            watch: None,
            relay: None,
            hunt: None,
            recaller: None,
            intel: None,
            link_service: None,
            drills: None,
            policy: None,
            tls: None,
            certs,
            cert_changes: tokio::sync::Mutex::new(()),
            directory: None,
            allow,
            cluster: None,
        }
    }

    /// The same console showing the nodes of the cluster `shared` belongs to, if it does.
    pub fn in_cluster_of(mut self, shared: &jianmen_mta::store::Store) -> Console {
        self.cluster = shared
            .shared()
            .map(|db| (db.clone(), shared.node().to_owned()));
        self
    }

    /// The same console with upgrades installed under `releases` instead of the system's.
    pub fn with_releases(mut self, releases: jianmen_mta::upgrade::release::Releases) -> Console {
        self.releases = releases;
        self
    }

    /// The same console with the account-risk board over `watch`.
    pub fn watching(mut self, watch: Option<Arc<jianmen_mta::risk::Watch>>) -> Console {
        self.watch = watch;
        self
    }

    /// The same console with the delivery-channel board over `relay`.
    pub fn relaying(mut self, relay: Option<Arc<jianmen_mta::relay::Relay>>) -> Console {
        self.relay = relay;
        self
    }

    /// The same console with hunting over `hunt` and recall through `recaller`.
    pub fn recalling(
        mut self,
        hunt: Option<jianmen_mta::hunt::HuntIndex>,
        recaller: Option<Arc<jianmen_mta::recall::Recaller>>,
    ) -> Console {
        self.hunt = hunt;
        self.recaller = recaller;
        self
    }

    /// The same console with the threat-intelligence pages over `intel`.
    pub fn informed(mut self, intel: Option<Arc<jianmen_mta::intel::Intel>>) -> Console {
        self.intel = intel;
        self
    }

    /// The same console signing recipients in through the organisation's `directory`.
    pub fn signing_in_through(
        mut self,
        directory: Option<Arc<jianmen_mta::directory::Directory>>,
    ) -> Console {
        self.directory = directory;
        self
    }

    /// The same console editing the detection policy in `book`.
    pub fn editing_policy(mut self, book: Option<Arc<jianmen_mta::policy::PolicyBook>>) -> Console {
        self.policy = book;
        self
    }

    /// The same console serving `tls`, whose certificates it may change.
    pub fn serving_tls(mut self, tls: Arc<jianmen_gm::tls::ServerTls>) -> Console {
        self.tls = Some(tls);
        self
    }

    /// The same console running phishing drills through `drills`.
    pub fn drilling(mut self, drills: Option<Arc<jianmen_mta::drills::Drills>>) -> Console {
        self.drills = drills;
        self
    }

    /// The same console serving protected links through `links`.
    pub fn serving_links(mut self, links: Option<clicks::LinkService>) -> Console {
        self.link_service = links;
        self
    }

    /// Appends to the audit log; a failure is logged loudly (the action already happened).
    async fn record(&self, actor: &str, action: &str, detail: &str) {
        if let Err(e) = self.audit.append(actor, action, detail).await {
            tracing::error!(error = %e, action, "cannot append to the audit log");
        }
    }
}

/// An API error: a status and a JSON body `{"error": …, "field": …, "code": …}`. `error` is
/// English (logs, scripts); `code`, where there is one, names the message in the console's
/// catalogue, which the pages show in their reader's language.
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status)
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(self)
    }
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            field: None,
            code: None,
        }
    }

    /// 400 naming the offending field.
    fn field(field: &str, error: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.to_owned()),
            ..Self::new(StatusCode::BAD_REQUEST, error)
        }
    }

    /// The same error, its message named `code` in the pages' catalogue (`err_<code>`).
    fn coded(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "not signed in").coded("unauthorized")
    }

    fn forbidden(why: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, why).coded("forbidden")
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "console request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").coded("internal")
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            // A locked account is answered like a wrong password: the answer must not tell an
            // attacker which names exist or that guessing has locked one (the audit log does).
            AccountError::BadCredentials | AccountError::Locked(_) => Self::new(
                StatusCode::UNAUTHORIZED,
                AccountError::BadCredentials.to_string(),
            )
            .coded("credentials"),
            AccountError::CodeNeeded => ApiError {
                field: Some("totp".into()),
                ..Self::new(StatusCode::UNAUTHORIZED, e.to_string())
            }
            .coded("totp_needed"),
            AccountError::SourceNotAllowed => {
                Self::new(StatusCode::FORBIDDEN, e.to_string()).coded("source")
            }
            AccountError::TooManyAttempts => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()).coded("too_many")
            }
            AccountError::Busy => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).coded("busy")
            }
            AccountError::WeakPassword(_) => {
                Self::field("new_password", e.to_string()).coded("weak_password")
            }
            AccountError::Invalid { field: "code", .. } => {
                Self::field("code", e.to_string()).coded("totp_wrong")
            }
            AccountError::Invalid { field, .. } => Self::field(field, e.to_string()),
            AccountError::NotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, e.to_string()).coded("no_account")
            }
            AccountError::Exists(_) => {
                Self::new(StatusCode::CONFLICT, e.to_string()).coded("account_exists")
            }
            AccountError::LastOfRole(..) => {
                Self::new(StatusCode::CONFLICT, e.to_string()).coded("last_of_role")
            }
            AccountError::NotYours(_) => {
                Self::new(StatusCode::FORBIDDEN, e.to_string()).coded("not_yours")
            }
            AccountError::Store(_) | AccountError::Hash(_) => Self::internal(e),
        }
    }
}

impl From<jianmen_mta::quarantine::QuarantineError> for ApiError {
    fn from(e: jianmen_mta::quarantine::QuarantineError) -> Self {
        use jianmen_mta::quarantine::QuarantineError as Q;
        match e {
            Q::NotFound(_) => Self::new(StatusCode::NOT_FOUND, e.to_string()).coded("no_item"),
            Q::Conflict { .. } => Self::new(StatusCode::CONFLICT, e.to_string()).coded("item_done"),
            Q::Store(_) | Q::Spool(_) => Self::internal(e),
        }
    }
}

/// The session cookie's name (`__Host-` binds it to this origin over HTTPS, path `/`).
const COOKIE: &str = "__Host-jianmen";

fn peer_ip(req: &HttpRequest) -> Option<IpAddr> {
    req.peer_addr().map(|a| a.ip())
}

/// Stops the gateway a second from now, as `systemctl stop` would (SIGTERM: sessions finish,
/// nothing queued is lost), for the service manager to start it again; the answer to the
/// request that asked goes out first.
fn stop_for_restart() {
    tokio::spawn(async {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGTERM);
    });
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The checks every API request passes: source address, session, forced password change,
/// role, and CSRF for state changes. Returns the session and the session token.
async fn authorize(
    req: &HttpRequest,
    console: &Console,
    roles: &[Role],
) -> Result<Session, ApiError> {
    source_allowed(req, console)?;
    let token = req
        .cookie(COOKIE)
        .map(|c| c.value().to_owned())
        .ok_or_else(ApiError::unauthorized)?;
    let session = console
        .accounts
        .session(&token, now())
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if req.method() != actix_web::http::Method::GET {
        let sent = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !constant_time_eq(sent.as_bytes(), session.csrf.as_bytes()) {
            return Err(ApiError::forbidden("missing or wrong CSRF token").coded("csrf"));
        }
    }
    if session.account.must_change && !roles.is_empty() {
        return Err(ApiError::forbidden("password change required").coded("must_change"));
    }
    if !roles.is_empty() && !roles.contains(&session.account.role) {
        return Err(ApiError::forbidden("your role may not do this").coded("role"));
    }
    Ok(session)
}

fn source_allowed(req: &HttpRequest, console: &Console) -> Result<(), ApiError> {
    if console.allow.is_empty() || console.allow.matches(peer_ip(req), &[]).is_some() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            &AccountError::SourceNotAllowed.to_string(),
        ))
    }
}

/// Compares without stopping at the first difference (the CSRF token is a secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The pages' Content-Security-Policy: only our own scripts and styles, frames only from
/// ourselves (the preview), nothing else.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

/// Builds the console application (also used by the API tests in-process).
pub fn configure(cfg: &mut web::ServiceConfig) {
    api::routes(cfg);
    risk::routes(cfg);
    relay::routes(cfg);
    recall::routes(cfg);
    intel::routes(cfg);
    policy::routes(cfg);
    ownlists::routes(cfg);
    totp::routes(cfg);
    certificates::routes(cfg);
    upgrade::routes(cfg);
    backup::routes(cfg);
    settings::routes(cfg);
    selfservice::routes(cfg);
    clicks::routes(cfg);
    drills::routes(cfg);
    assets(cfg);
}

macro_rules! asset {
    ($cfg:ident, $path:literal, $file:literal, $type:literal) => {
        $cfg.route(
            $path,
            web::get().to(|| async {
                HttpResponse::Ok()
                    .content_type($type)
                    .insert_header((header::CACHE_CONTROL, "no-cache"))
                    .body(&include_bytes!(concat!("../pages/", $file))[..])
            }),
        );
    };
}

fn assets(cfg: &mut web::ServiceConfig) {
    asset!(cfg, "/", "index.html", "text/html; charset=utf-8");
    asset!(cfg, "/app.js", "app.js", "text/javascript; charset=utf-8");
    asset!(cfg, "/app.css", "app.css", "text/css; charset=utf-8");
    asset!(cfg, "/api/openapi.json", "openapi.json", "application/json");
    // Vendored by webui/vendor/fetch.sh; the version is in the path, so it is cached for good.
    cfg.route(
        "/vendor/echarts-6.1.0.min.js",
        web::get().to(|| async {
            HttpResponse::Ok()
                .content_type("text/javascript; charset=utf-8")
                .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
                .body(&include_bytes!("../pages/vendor/echarts.min.js")[..])
        }),
    );
}

/// Where the console's shared state is, and the gateway's services it drives besides its
/// stores, each when the gateway runs it.
pub struct Services {
    /// Where the accounts and the audit log are (the node's files, or the cluster's database).
    pub shared: jianmen_mta::store::Store,
    /// The sending accounts' behaviour.
    pub watch: Option<Arc<jianmen_mta::risk::Watch>>,
    /// The delivery channels.
    pub relay: Option<Arc<jianmen_mta::relay::Relay>>,
    /// The hunt index of delivered messages.
    pub hunt: Option<jianmen_mta::hunt::HuntIndex>,
    /// Recall from the mailboxes.
    pub recaller: Option<Arc<jianmen_mta::recall::Recaller>>,
    /// Threat intelligence.
    pub intel: Option<Arc<jianmen_mta::intel::Intel>>,
    /// The link service.
    pub links: Option<clicks::LinkService>,
    /// Phishing drills.
    pub drills: Option<Arc<jianmen_mta::drills::Drills>>,
    /// The detection policy's versions.
    pub policy: Option<Arc<jianmen_mta::policy::PolicyBook>>,
}

/// Opens the console's state, creating the three initial accounts on first start: their
/// generated passwords are written once to `data_dir/initial-passwords.txt` (mode 0600) and
/// must be changed at first login. Uploaded upgrades are installed under `releases`; `tls` is
/// what the console serves (shared with STARTTLS, see [`served_tls`]).
pub async fn start(
    config: Arc<Config>,
    quarantine: Quarantine,
    tracker: Tracker,
    store: Arc<SqliteStore>,
    releases: jianmen_mta::upgrade::release::Releases,
    services: Services,
    tls: Arc<jianmen_gm::tls::ServerTls>,
) -> Result<Arc<Console>, StartError> {
    let Some(c) = config.console.clone() else {
        return Err(StartError::NotConfigured);
    };
    let data_dir = &config.server.data_dir;
    let accounts = Accounts::open_in(&services.shared, c.clone()).await?;
    let initial = accounts.create_initial(now()).await?;
    if !initial.is_empty() {
        let path = data_dir.join("initial-passwords.txt");
        let mut text = String::from(
            "# Jianmen console: change each password at first login, then delete this file.\n",
        );
        for (name, role, password) in &initial {
            text.push_str(&format!("{name}\t{}\t{password}\n", role.as_str()));
        }
        write_private(&path, &text)?;
        tracing::warn!(path = %path.display(), "console accounts created; initial passwords written");
    }
    let links = LinkKey::load_or_create(data_dir)?;
    let directory = config
        .directory
        .as_ref()
        .map(|d| jianmen_mta::directory::Directory::new(d).map(Arc::new))
        .transpose()
        .map_err(StartError::Directory)?;
    let console = Console::new(
        config,
        accounts,
        quarantine,
        tracker,
        Arc::new(AuditLog::open_in(&services.shared).await?),
        store,
        links,
    )
    .signing_in_through(directory)
    .with_releases(releases)
    .watching(services.watch)
    .relaying(services.relay)
    .recalling(services.hunt, services.recaller)
    .informed(services.intel)
    .serving_links(services.links)
    .drilling(services.drills)
    .editing_policy(services.policy)
    .serving_tls(tls)
    .in_cluster_of(&services.shared);
    Ok(Arc::new(console))
}

/// What STARTTLS and the console serve: `[tls]` (or generated certificates without it), with
/// the pairs installed from the console in place of their files.
pub fn served_tls(
    config: &Config,
) -> Result<Arc<jianmen_gm::tls::ServerTls>, jianmen_gm::tls::TlsError> {
    let base = config
        .tls
        .clone()
        .unwrap_or_else(jianmen_mta::config::TlsConfig::generated);
    let effective =
        jianmen_mta::certstore::CertStore::new(&config.server.data_dir).effective(&base);
    match jianmen_gm::tls::ServerTls::new(&effective, &config.server.hostname) {
        Ok(tls) => Ok(Arc::new(tls)),
        // An installed pair that no longer loads must not keep the gateway down.
        Err(e)
            if effective.cert != base.cert
                || effective.sm_cert != base.sm_cert
                || effective.sm_enc_cert != base.sm_enc_cert =>
        {
            tracing::error!(error = %e, "a certificate installed in the console does not load: the configured ones are served");
            Ok(Arc::new(jianmen_gm::tls::ServerTls::new(
                &base,
                &config.server.hostname,
            )?))
        }
        Err(e) => Err(e),
    }
}

/// Binds the console's address (before the daemon gives up root: 443 is privileged).
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} for the console: {e}"),
        )
    })
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// There is no `[console]` section.
    #[error("no [console] section")]
    NotConfigured,
    /// The account database failed.
    #[error(transparent)]
    Accounts(#[from] AccountError),
    /// The audit log failed.
    #[error(transparent)]
    Audit(#[from] jianmen_mta::audit::AuditError),
    /// The certificate could not be loaded.
    #[error(transparent)]
    Tls(#[from] jianmen_gm::tls::TlsError),
    /// The listener or a file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The `[directory]` section cannot be used.
    #[error("[directory]: {0}")]
    Directory(String),
}

/// How long a client may take over its TLS or TLCP handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves the console over HTTPS on a bound listener until the process ends. Each connection
/// gets the handshake its first bytes ask for (international TLS, RFC 8998 or TLCP, as on
/// STARTTLS); HTTP/1.1 then runs over whichever stream resulted. actix-web's own TLS
/// listeners take a single rustls configuration, so the pipeline is assembled here.
pub async fn serve(
    console: Arc<Console>,
    listener: TcpListener,
    tls: Arc<jianmen_gm::tls::ServerTls>,
) -> std::io::Result<()> {
    use actix_http::{HttpService, Protocol};
    use actix_service::{ServiceFactoryExt, fn_service, map_config};

    let data = web::Data::from(console);
    actix_server::Server::build()
        .workers(2)
        .disable_signals()
        .listen("console", listener, move || {
            let app = actix_web::App::new()
                .app_data(data.clone())
                .wrap(security_headers())
                .configure(configure);
            let tls = tls.clone();
            let handshake = fn_service(move |io: actix_web::rt::net::TcpStream| {
                let tls = tls.clone();
                async move {
                    let peer = io.peer_addr().ok();
                    let (stream, _) = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(io))
                        .await
                        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))
                        .and_then(|accepted| accepted)
                        .map_err(actix_http::error::DispatchError::Io)?;
                    Ok::<_, actix_http::error::DispatchError>((stream, Protocol::Http1, peer))
                }
            });
            handshake.and_then(
                HttpService::build()
                    .client_request_timeout(std::time::Duration::from_secs(10))
                    .finish(map_config(app, |_| actix_web::dev::AppConfig::default())),
            )
        })?
        .run()
        .await
}

/// Headers on every response (a handler may set its own CSP, e.g. the preview).
pub fn security_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CSP))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add(("Cross-Origin-Resource-Policy", "same-origin"))
}
