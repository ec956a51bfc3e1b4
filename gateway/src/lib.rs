//! Jianmen (剑门) — a mail security gateway. Every message crosses one pass:
//!
//! 1. [`smtp`] — a client connects; the session enforces limits and RFC 5321 order
//!    (`ehlo` → `mail` → `rcpt` → `data`), with STARTTLS from [`tls`].
//! 2. [`intake`] — the gateway's inbox: at RCPT it applies recipient policy (protected domains,
//!    valid recipients); at end of DATA it asks the [`scan`] hook for a verdict (deliver, tag,
//!    hold, reject in-session) and enqueues.
//! 3. [`queue`] — the message is fsync'd to the spool and its envelope committed to the store
//!    (group commit) before the client hears 250; the manager then schedules delivery and
//!    retries, and bounces failures as DSNs. Mail a verdict holds stays in the spool, owned by
//!    the [`quarantine`] (search, release, delete, expiry) until an administrator or — through
//!    a signed link in a digest mail — the recipient releases it.
//! 4. [`outbound`] — the next hop is found (configured route or MX) and the message is handed
//!    over by SMTP, reusing connections and honouring per-destination limits.
//!
//! Around the path: [`config`] (TOML, validated at start), [`metrics`] (Prometheus),
//! [`daemon`] (wiring; as root it binds its ports, then [`privilege`] drops to the service account), [`demo`] (self-contained demo with a built-in downstream mailbox),
//! [`accuracy`] (how well verdicts separate ham from spam: `jianmen eval`, the retrain gate),
//! [`audit`] (the hash-chained record of administrative actions, signed export with
//! [`signing`]), [`keyfile`] (secret keys under `data_dir/keys`), [`tracking`] (every message's fate, searchable), [`upgrade`] (signed offline upgrade packages, applied beside the installed binary on trial and rolled back when unhealthy), [`webui`] (the HTTPS console,
//! its JSON API and the recipients' self-service pages).

#![warn(missing_docs)]

pub mod accuracy;
pub mod audit;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod dns;
pub mod gm;
pub mod intake;
pub mod keyfile;
pub mod metrics;
pub mod outbound;
pub mod privilege;
pub mod quarantine;
pub mod queue;
pub mod scan;
pub mod signing;
pub mod smtp;
pub mod tls;
pub mod tracking;
pub mod upgrade;
pub mod webui;
