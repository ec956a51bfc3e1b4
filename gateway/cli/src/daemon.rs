//! Starting the gateway: open the queue, bind the listeners, then run the SMTP server, the queue
//! manager and the metrics endpoint side by side. Binding happens before anything is served so
//! a bad address fails start-up instead of a later task.

use std::net::SocketAddr;
use std::sync::Arc;

use jianmen_mta::audit::AuditLog;
use jianmen_mta::config::Config;
use jianmen_mta::dkim::DkimSigner;
use jianmen_mta::hunt::HuntIndex;
use jianmen_mta::intake::Intake;
use jianmen_mta::metrics::Metrics;
use jianmen_mta::outbound::Outbound;
use jianmen_mta::quarantine::Quarantine;
use jianmen_mta::quarantine::digest::DigestSettings;
use jianmen_mta::quarantine::links::LinkKey;
use jianmen_mta::queue::manager::Manager;
use jianmen_mta::queue::spool::Spool;
use jianmen_mta::queue::{Queue, QueueError, SqliteStore};
use jianmen_mta::recall::Recaller;
use jianmen_mta::relay::Relay;
use jianmen_mta::risk::Watch;
use jianmen_mta::settings::SettingsState;
use jianmen_mta::smtp::{Relays, Server, SessionContext};
use jianmen_mta::tracking::Tracker;
use jianmen_mta::upgrade::health;
use jianmen_mta::upgrade::release::{self, Releases};
use jianmen_scan::pipeline::Pipeline;
use jianmen_scan::reputation::BlockLists;
use jianmen_scan::{PassThrough, Scanner};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory or spool is unusable.
    #[error("data directory {path}")]
    DataDir {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The queue could not be opened.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The TLS certificate could not be loaded.
    #[error(transparent)]
    Tls(#[from] jianmen_gm::tls::TlsError),
    /// A listener could not be bound, or the resolver not configured.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The detection pipeline could not be built.
    #[error(transparent)]
    Scan(#[from] jianmen_scan::pipeline::PipelineError),
    /// The console could not start.
    #[error("console: {0}")]
    Console(#[from] jianmen_webui::StartError),
    /// Another gateway (or a restore) holds the data directory.
    #[error(transparent)]
    Lock(#[from] jianmen_mta::lock::LockError),
    /// Started as root, the gateway could not become its service account.
    #[error(transparent)]
    Privilege(#[from] jianmen_mta::privilege::PrivilegeError),
    /// A DKIM signing key could not be loaded.
    #[error("DKIM: {0}")]
    Dkim(#[from] jianmen_mta::dkim::DkimError),
    /// The shared store (cluster mode) could not be opened.
    #[error(transparent)]
    SharedStore(#[from] jianmen_mta::store::OpenError),
    /// The audit log could not be opened.
    #[error(transparent)]
    Audit(#[from] jianmen_mta::audit::AuditError),
}

/// What needs the store (the node's files, or the cluster's database): the node's entry in the
/// cluster's register, the audit log's forwarding, the console.
struct StoreSide {
    config: Arc<Config>,
    listener: Option<std::net::TcpListener>,
    quarantine: Quarantine,
    tracker: Tracker,
    store: Arc<SqliteStore>,
    releases: Releases,
    /// The console's services, given the opened store.
    services: Box<dyn FnOnce(jianmen_mta::store::Store) -> jianmen_webui::Services + Send>,
    tls: Arc<jianmen_gm::tls::ServerTls>,
}

impl StoreSide {
    async fn start(self, shared: jianmen_mta::store::Store) -> Result<(), StartError> {
        let config = self.config;
        if let Some(db) = shared.shared() {
            let address = config
                .console
                .as_ref()
                .map_or_else(|| config.server.hostname.clone(), |c| c.listen.to_string());
            let node = jianmen_mta::store::nodes::Registration::join(
                db,
                shared.node(),
                &address,
                env!("CARGO_PKG_VERSION"),
                jianmen_mta::queue::manager::unix_now(),
            )
            .await
            .map_err(jianmen_mta::store::OpenError::from)?;
            tracing::info!(node = shared.node(), "joined the cluster");
            tokio::spawn(node.keep_beating());
        }
        if let Some(collector) = &config.audit.syslog {
            let log = AuditLog::open_in(&shared).await?;
            tracing::info!(collector, "audit rows forwarded by syslog");
            tokio::spawn(jianmen_mta::audit::syslog::forward(
                log,
                collector.clone(),
                jianmen_mta::audit::syslog::Origin {
                    hostname: config.server.hostname.clone(),
                    sd_id: config
                        .audit
                        .syslog_enterprise_number
                        .map(|n| format!("jianmen@{n}")),
                },
                config.server.data_dir.join("audit-syslog.seq"),
            ));
        }
        let Some(listener) = self.listener else {
            return Ok(());
        };
        let console = jianmen_webui::start(
            config,
            self.quarantine,
            self.tracker,
            self.store,
            self.releases,
            (self.services)(shared),
            self.tls.clone(),
        )
        .await?;
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "console on https://{addr}/");
        }
        tokio::spawn(async move {
            if let Err(e) = jianmen_webui::serve(console, listener, self.tls).await {
                tracing::error!(error = %e, "console stopped");
            }
        });
        Ok(())
    }
}

/// The listeners of one configuration, bound.
struct Bound {
    smtp: Vec<tokio::net::TcpListener>,
    metrics: Option<std::net::TcpListener>,
    console: Option<std::net::TcpListener>,
}

async fn bind(config: &Config) -> std::io::Result<Bound> {
    Ok(Bound {
        smtp: Server::bind(&config.smtp.listen).await?,
        metrics: match config.metrics.listen {
            Some(addr) => Some(std::net::TcpListener::bind(addr).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr} for metrics: {e}"),
                )
            })?),
            None => None,
        },
        console: match &config.console {
            Some(c) => Some(jianmen_webui::bind(c.listen)?),
            None => None,
        },
    })
}

/// Binds `config`'s listeners. When listeners the console set cannot be bound (an address the
/// machine no longer has, a port another program took), the gateway starts on the
/// configuration file's listeners, keeping the console's other settings, and says why — on the
/// console's System page too — rather than not at all: the console must stay reachable to put
/// it right.
async fn bind_or_fall_back(config: Config) -> Result<(Config, Bound), StartError> {
    let error = match bind(&config).await {
        Ok(bound) => return Ok((config, bound)),
        Err(e) => e,
    };
    let saved = (config.settings == SettingsState::Applied)
        .then(|| {
            jianmen_mta::settings::read(&config.server.data_dir)
                .ok()
                .flatten()
        })
        .flatten()
        .filter(|s| s.sets_listeners());
    let (Some(file), Some(saved)) = (config.file.as_deref(), saved) else {
        return Err(error.into());
    };
    let others = jianmen_mta::settings::SystemSettings {
        smtp_listen: None,
        console_listen: None,
        ..saved
    };
    let Ok(mut fallback) = Config::load_file(file).and_then(|c| c.overlaid(&others)) else {
        return Err(error.into());
    };
    tracing::error!(%error, "the listeners set in the console cannot be bound: the configuration file's are used");
    fallback.settings = SettingsState::ListenersRefused(error.to_string());
    match bind(&fallback).await {
        Ok(bound) => Ok((fallback, bound)),
        Err(second) => Err(std::io::Error::new(
            second.kind(),
            format!("{error}; and with the configuration file's listeners: {second}"),
        )
        .into()),
    }
}

/// Opens the queue of a configuration (used by the daemon and the `queue` commands).
pub async fn open_store(config: &Config) -> Result<SqliteStore, StartError> {
    std::fs::create_dir_all(&config.server.data_dir).map_err(|source| StartError::DataDir {
        path: config.server.data_dir.display().to_string(),
        source,
    })?;
    Ok(SqliteStore::open(&config.database_path())
        .await
        .map_err(QueueError::from)?)
}

/// Runs the gateway until the process is stopped; the console installs uploaded upgrades under
/// `releases`.
pub async fn run(config: Config, releases: Releases) -> Result<(), StartError> {
    // From here on SIGTERM and SIGINT are the gateway's to handle: one that arrives while it
    // starts, or the moment it starts serving, shuts it down cleanly instead of killing it.
    let stop = shutdown_signal();
    // Ports first (25, 465, 587 and 443 need root or CAP_NET_BIND_SERVICE), then root is given
    // up before any mail, key or database is opened, so every file is the service account's.
    let (config, bound) = bind_or_fall_back(config).await?;
    let config = Arc::new(config);
    let Bound {
        smtp: listeners,
        metrics: metrics_listener,
        console: console_listener,
    } = bound;
    match jianmen_mta::privilege::drop_root(&config.server.user)? {
        Some(dropped) => tracing::info!(
            user = %config.server.user,
            uid = %dropped.uid,
            gid = %dropped.gid,
            "ports bound; root given up"
        ),
        None if nix::unistd::Uid::effective().is_root() => {
            tracing::warn!("running as root because server.user = \"root\"")
        }
        None => {}
    }
    std::fs::create_dir_all(&config.server.data_dir).map_err(|source| StartError::DataDir {
        path: config.server.data_dir.display().to_string(),
        source,
    })?;
    // Held for the gateway's life: no second gateway, and no restore, on this data directory.
    let _lock = jianmen_mta::lock::DataDirLock::take(&config.server.data_dir)?;
    let metrics = Arc::new(Metrics::default());
    let store = Arc::new(open_store(&config).await?);
    let spool = Spool::configured(&config).map_err(|source| StartError::DataDir {
        path: config.spool_dir().display().to_string(),
        source,
    })?;
    let queue = Queue::open(
        spool,
        store.clone(),
        config.smtp.min_free_space_mib * 1024 * 1024,
    )
    .await?;
    let hunt = HuntIndex::open(&config.server.data_dir, &config.domains.protected)
        .await
        .map_err(QueueError::from)?;
    let quarantine = Quarantine::new(store.clone(), queue.spool().clone()).indexing(hunt.clone());
    let tracker = Tracker::open(&config.server.data_dir)
        .await
        .map_err(QueueError::from)?;
    tokio::spawn(jianmen_mta::tracking::purge_periodically(
        tracker.clone(),
        Some(hunt.clone()),
        config.tracking.retention_days,
    ));
    tokio::spawn(jianmen_mta::quarantine::expire_periodically(
        quarantine.clone(),
        config.server.hostname.clone(),
        config.domains.protected.clone(),
        config.server.zone(),
    ));
    if config.quarantine.digest_hours > 0
        && let Some(settings) = DigestSettings::from_config(&config)
    {
        let key = LinkKey::load_or_create(&config.server.data_dir)?;
        tokio::spawn(jianmen_mta::quarantine::digest::send_periodically(
            quarantine.clone(),
            settings,
            key,
            config.quarantine.digest_hours,
        ));
    }
    // One set of certificates for STARTTLS and the console: one installed in the console is
    // served by both from the next handshake.
    let served_tls = jianmen_webui::served_tls(&config)?;
    let tls = config.tls.as_ref().map(|_| served_tls.clone());
    let resolver = jianmen_scan::dns::resolver(&config.dns)?;
    if !config.scan.enabled {
        tracing::warn!("scan.enabled = false: inbound messages are delivered unscanned");
    }
    // Threat-intelligence indicators in force: every scanned message is checked against them.
    let watchlist = jianmen_scan::intel::Watchlist::new();
    // Outbound and internal mail is judged by the DLP policies even without threat scanning.
    let mut judge = None;
    let scanner: Arc<dyn Scanner> = if config.scan.enabled || !config.dlp.policy.is_empty() {
        let env = jianmen_scan::pipeline::Environment {
            skipped: Some(metrics.clone()),
            ..release::scan_environment(&config)
        };
        let pipeline = Arc::new(
            Pipeline::new(&config.scan, &env, Some(resolver.clone()))?
                .with_intel(watchlist.clone()),
        );
        tokio::spawn(reload_on_sighup(pipeline.clone()));
        if let Some(ngram) = pipeline.ngram() {
            tokio::spawn(learn_feedback(
                ngram,
                jianmen_scan::feedback::FeedbackStore::open(&config.server.data_dir),
            ));
        }
        judge = Some(pipeline.clone());
        Arc::new(pipeline)
    } else {
        Arc::new(PassThrough)
    };
    // The policy the console edits: its newest version is in force from the first message.
    let policy = jianmen_mta::policy::PolicyBook::open(
        store.clone(),
        config.scan_policy(),
        config.domains.protected.clone(),
        judge.clone(),
    )
    .await
    .map_err(std::io::Error::other)?;
    let mut outbound = Outbound::new(&config, resolver)?;
    let relay = if config.relay.channels.is_empty() {
        None
    } else {
        let relay = Relay::open(config.relay.clone(), Some(store.clone()), metrics.clone())
            .await
            .map_err(std::io::Error::other)?;
        let lists = (!config.relay.dnsbl.is_empty())
            .then(|| {
                // Answers are trusted for a minute at most: listings come and go.
                let fresh = jianmen_scan::dns::fresh_resolver(
                    &config.dns,
                    std::time::Duration::from_secs(60),
                )?;
                Ok::<_, std::io::Error>(BlockLists::new(
                    fresh,
                    config.relay.dnsbl.clone(),
                    Vec::new(),
                    std::time::Duration::from_millis(config.dns.timeout_ms.saturating_mul(3)),
                ))
            })
            .transpose()?;
        tokio::spawn(jianmen_mta::relay::watch::run(
            relay.clone(),
            lists,
            queue.clone(),
            config.server.hostname.clone(),
        ));
        outbound = outbound.relaying(relay.clone());
        Some(relay)
    };
    let outbound = Arc::new(outbound);
    let manager = Manager::new(
        queue.clone(),
        outbound,
        config.delivery.clone(),
        config.server.hostname.clone(),
        metrics.clone(),
        tracker.clone(),
    );
    let queue_for_health = queue.clone();
    let recaller = if config.recall.imap.is_empty() {
        None
    } else {
        Some(
            Recaller::open(
                config.recall.clone(),
                store.clone(),
                Some(jianmen_mta::recall::Notices {
                    queue: queue.clone(),
                    hostname: config.server.hostname.clone(),
                    zone: config.server.zone(),
                }),
            )
            .await
            .map_err(|e| std::io::Error::other(format!("recall: {e}")))?,
        )
    };
    let intel = jianmen_mta::intel::Intel::open(
        config.intel.clone(),
        store.clone(),
        watchlist,
        Some(hunt.clone()),
        recaller.clone(),
        config.tracking.retention_days,
    )
    .await
    .map_err(QueueError::from)?;
    intel.start();
    let signer = DkimSigner::load(&config.dkim, &config.server.data_dir)?;
    let watch = if config.behaviour.enabled {
        let watch = Watch::open(config.behaviour.clone(), store.clone())
            .await
            .map_err(QueueError::from)?;
        tokio::spawn(jianmen_mta::risk::flush_periodically(watch.clone()));
        Some(watch)
    } else {
        None
    };
    let queue_for_links = queue.clone();
    let mut intake = Intake::new(
        config.clone(),
        scanner,
        queue,
        metrics.clone(),
        tracker.clone(),
    )
    .signing(signer)
    .hunting(hunt.clone());
    // Click-time link protection: links rewritten at intake, clicks judged by the scanner.
    // Phishing drills: sent from the queue, reports read at intake.
    let drills = if config.drills.enabled {
        let drills = jianmen_mta::drills::Drills::new(
            config.drills.clone(),
            store.clone(),
            LinkKey::load_or_create(&config.server.data_dir)?,
            queue_for_links.clone(),
            config.server.hostname.clone(),
            config.server.zone(),
        );
        drills.start();
        intake = intake.reporting_drills(drills.clone());
        Some(drills)
    } else {
        None
    };
    let links = match (config.links.enabled, judge) {
        (true, Some(judge)) => {
            let key = LinkKey::load_or_create(&config.server.data_dir)?;
            let guard = Arc::new(jianmen_mta::links::LinkGuard::new(
                config.links.clone(),
                key,
                &config.domains.protected,
            ));
            intake = intake.guarding_links(guard.clone());
            Some(jianmen_webui::clicks::LinkService::new(
                guard,
                judge,
                queue_for_links,
            ))
        }
        _ => None,
    };
    if let Some(w) = &watch {
        intake = intake.watching(w.clone());
    }
    let intake = Arc::new(intake);
    let server = Arc::new(Server::new(SessionContext {
        hostname: config.server.hostname.clone(),
        limits: Arc::new(config.smtp.clone()),
        tls,
        inbox: intake,
        metrics: metrics.clone(),
        relays: Arc::new(Relays::from_config(&config.smtp)),
    }));
    for addr in &config.smtp.listen {
        tracing::info!(%addr, "SMTP listening");
    }
    let console_addr = console_listener.as_ref().and_then(|l| l.local_addr().ok());
    let side = StoreSide {
        config: config.clone(),
        listener: console_listener,
        quarantine: quarantine.clone(),
        tracker: tracker.clone(),
        store,
        releases,
        services: {
            let (watch, hunt, recaller) = (watch.clone(), hunt.clone(), recaller.clone());
            Box::new(move |shared| jianmen_webui::Services {
                shared,
                watch,
                relay,
                hunt: Some(hunt),
                recaller,
                intel: Some(intel),
                links,
                drills,
                policy: Some(policy),
            })
        },
        tls: served_tls,
    };
    if config.store.backend == jianmen_mta::store::Backend::Postgres {
        // The mail path does not wait for the cluster's database; what needs it starts when it
        // answers. If that fails, the node goes on with its mail and says so: stopping it would
        // cut its sessions and deliveries for a console it can do without.
        let config = config.clone();
        tokio::spawn(async move {
            let started = match jianmen_mta::store::Store::open_patiently(&config).await {
                Ok(shared) => side.start(shared).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = started {
                tracing::error!(
                    error = %e,
                    "the console and cluster membership did not start (mail goes on); restart the node once the cause is fixed"
                );
            }
        });
    } else {
        side.start(jianmen_mta::store::Store::open(&config).await?)
            .await?;
    }
    tokio::spawn(manager.run());
    if let Some(listener) = metrics_listener {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "metrics on http://{addr}/metrics");
        }
        tokio::spawn(async move {
            if let Err(e) = jianmen_webui::metrics::serve(metrics, listener).await {
                tracing::error!(error = %e, "metrics endpoint stopped");
            }
        });
    }
    if let Some(version) = std::env::var(release::ENV_VERSION).ok().filter(|v| {
        Releases::from_env()
            .trial()
            .is_some_and(|t| &t.version == v)
    }) {
        let smtp: Vec<SocketAddr> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        // In cluster mode the console waits for the database: an upgrade is not judged by it.
        let console_addr =
            console_addr.filter(|_| config.store.backend == jianmen_mta::store::Backend::Sqlite);
        tokio::spawn(check_trial(
            version,
            smtp,
            console_addr,
            queue_for_health,
            config.clone(),
        ));
    }
    tokio::select! {
        _ = server.clone().serve(listeners) => {}
        signal = stop => {
            // Leaving the select drops the accept loops: the listeners close.
            let grace = std::time::Duration::from_secs(config.server.shutdown_grace_secs);
            tracing::info!(%signal, "shutting down: no new connections, open sessions may finish");
            server.begin_shutdown();
            let deadline = tokio::time::Instant::now() + grace;
            while server.active_sessions() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            tracing::info!(cut = server.active_sessions(), "stopped");
        }
    }
    if let Some(w) = &watch
        && let Err(e) = w.flush().await
    {
        tracing::error!(error = %e, "sending-behaviour profiles not written at shutdown");
    }
    Ok(())
}

/// Keeps a release on trial once it passes the health check; exits (for the service manager to
/// restart it, and the launcher to roll back) when it does not, or has no verdict within
/// [`health::TRIAL_DEADLINE`].
async fn check_trial(
    version: String,
    smtp: Vec<SocketAddr>,
    console: Option<SocketAddr>,
    queue: Arc<Queue>,
    config: Arc<Config>,
) {
    let passed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let late = version.clone();
    health::watchdog(health::TRIAL_DEADLINE, passed.clone(), move || {
        let problem = format!(
            "no health verdict within {} s",
            health::TRIAL_DEADLINE.as_secs()
        );
        fail_trial(&late, &problem)
    });
    let model = config
        .scan
        .enabled
        .then_some((config.scan.model.as_str(), config.server.data_dir.as_path()));
    let target = health::Target {
        smtp: &smtp,
        console,
        queue: &queue,
        model,
    };
    let verdict = health::check(&target).await;
    let kept = verdict.and_then(|()| {
        Releases::from_env()
            .confirm(&version)
            .map_err(|e| format!("passed its health check but cannot be kept: {e}"))
    });
    match kept {
        Ok(_) => {
            passed.store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::info!(%version, "release passed its health check: kept");
        }
        Err(problem) => fail_trial(&version, &problem),
    }
}

/// Records why the release on trial failed and exits for the launcher to roll back.
fn fail_trial(version: &str, problem: &str) -> ! {
    tracing::error!(%version, %problem, "release failed its health check: exiting to roll back");
    if let Err(e) = Releases::from_env().fail(version, problem) {
        tracing::error!(error = %e, "cannot record the failure");
    }
    std::process::exit(health::EXIT_UNHEALTHY)
}

/// Teaches the 4-gram model every correction the feedback store receives (console, users,
/// `jianmen feedback`), a few seconds after it arrives.
async fn learn_feedback(
    model: Arc<jianmen_scan::ngram::SiteModel>,
    store: jianmen_scan::feedback::FeedbackStore,
) {
    let store = Arc::new(store);
    let mut last_error = String::new();
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        let (model, store) = (model.clone(), store.clone());
        match tokio::task::spawn_blocking(move || model.learn_feedback(&store)).await {
            Ok(Ok(round)) => {
                last_error.clear();
                if round.learned + round.refused > 0 {
                    tracing::info!(
                        learned = round.learned,
                        refused = round.refused,
                        known = round.known,
                        "4-gram model learned from feedback"
                    );
                }
            }
            Ok(Err(e)) if e.to_string() != last_error => {
                tracing::error!(error = %e, "4-gram model cannot learn from feedback");
                last_error = e.to_string();
            }
            Ok(Err(_)) => {}
            Err(e) => tracing::error!(error = %e, "4-gram learner stopped"),
        }
    }
}

/// Reloads the rule files and the content model on every SIGHUP; a broken file leaves the
/// old ones in force.
async fn reload_on_sighup(pipeline: Arc<Pipeline>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        match pipeline.reload_rules() {
            Ok(n) => tracing::info!(rules = n, "rules reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "rules not reloaded; the previous rules stay in force")
            }
        }
        match pipeline.reload_model() {
            Ok(what) => tracing::info!(model = what, "content model reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "content model not reloaded; the one in use stays")
            }
        }
    }
}

/// Resolves on SIGTERM or SIGINT with the signal's name; never, if no handler can be set. The
/// handlers are installed when this is called, not when the future is first polled: a signal in
/// between would otherwise take its default action and kill the process mid-session (seen under
/// QEMU, where the window is wide: an idle session got no 421).
fn shutdown_signal() -> impl std::future::Future<Output = &'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        match handlers {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => std::future::pending().await,
        }
    }
}
