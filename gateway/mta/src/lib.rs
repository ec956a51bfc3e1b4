//! Jianmen's mail path: everything that holds, moves or records a message. Every message crosses
//! one pass:
//!
//! 1. [`smtp`] — a client connects; the session enforces limits and RFC 5321 order
//!    (`ehlo` → `mail` → `rcpt` → `data`), with STARTTLS from `jianmen_gm::tls`.
//! 2. [`intake`] — the gateway's inbox: at RCPT it applies recipient policy (protected domains,
//!    valid recipients); at end of DATA it asks the scanner (`jianmen_scan`) for a verdict
//!    (deliver, tag, hold, reject in-session) and enqueues.
//! 3. [`queue`] — the message is fsync'd to the spool and its envelope committed to the store
//!    (group commit) before the client hears 250; the manager then schedules delivery and
//!    retries, and bounces failures as DSNs. Mail a verdict holds stays in the spool, owned by
//!    the [`quarantine`] (search, release, delete, expiry) until an administrator or — through
//!    a signed link in a digest mail — the recipient releases it.
//! 4. [`outbound`] — the next hop is found (configured route or MX) and the message is handed
//!    over by SMTP, reusing connections and honouring per-destination limits.
//!
//! Around the path: [`config`] (the TOML file composed from each part's section and validated
//! at start), [`db`] (how every SQLite database is opened), [`metrics`] (Prometheus counters),
//! [`privilege`] (dropping root to the service account), [`audit`] (the hash-chained record of
//! administrative actions and its signed export), [`tracking`] (every message's fate,
//! searchable; [`hunt`] indexes what reached the mailboxes by hash, link, domain, sender and
//! Message-ID; [`recall`] takes delivered mail back out of the mailboxes; [`intel`] receives
//! threat-intelligence indicators, puts them in force at the door and hunts for what they name
//! among delivered mail; [`links`] rewrites the links of inbound mail to signed links whose
//! clicks are judged when they happen; [`drills`] runs phishing-simulation campaigns and
//! measures them), [`http`] (the small client for the documents the gateway fetches
//! itself), [`upgrade`] (signed offline upgrade packages, applied beside the installed
//! binary on trial and rolled back when unhealthy), [`dkim`] (outbound DKIM signing per
//! sending domain, and the keys for it), [`risk`] (the sending behaviour of internal accounts
//! and the containment of those that look compromised), [`relay`] (the egress channels mail to
//! the internet leaves by, chosen per destination and watched against block lists), [`policy`]
//! (the versions of the detection policy the console edits, put in force without a restart;
//! [`ownlists`], each recipient's own allow and block lists),
//! [`certstore`] (the certificates installed from the console in place of `[tls]`'s files),
//! [`directory`] (the organisation's LDAP/AD directory, where recipients sign in), [`clock`]
//! (the appliance's time and its synchronisation), [`backup`] (configuration, keys and
//! settings in one file sealed with a passphrase, and their restore), [`lock`] (the data
//! directory held by the one gateway that runs on it), [`settings`] (the protected domains, routes
//! and syslog collector changed in the console, laid over the configuration file's), [`store`]
//! (where the state shared by a cluster's nodes lives: the node's SQLite files, or one
//! PostgreSQL database for several nodes).
//!
//! It hands on the stores and services the console (`jianmen-webui`) and the command line
//! (`jianmen`) drive; it serves no HTTP itself (no actix-web below this crate).

#![warn(missing_docs)]

pub mod audit;
pub mod backup;
pub mod certstore;
pub mod clock;
pub mod config;
pub mod db;
pub mod directory;
pub mod dkim;
pub mod drills;
pub mod http;
pub mod hunt;
pub mod intake;
pub mod intel;
pub mod links;
pub mod lock;
pub mod metrics;
pub mod outbound;
pub mod ownlists;
pub mod policy;
pub mod privilege;
pub mod quarantine;
pub mod queue;
pub mod recall;
pub mod relay;
pub mod risk;
pub mod settings;
pub mod smtp;
pub mod store;
pub mod tracking;
pub mod upgrade;
