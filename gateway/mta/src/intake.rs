//! The gateway's [`Inbox`]: recipient policy at RCPT (protected domains, valid recipients),
//! the [`Scanner`] verdict at end of DATA, and the durable enqueue that earns the 250.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::config::Config;
use crate::dkim::DkimSigner;
use crate::links::LinkGuard;
use crate::metrics::Metrics;
use crate::quarantine::Held;
use crate::quarantine::approval::ACCOUNT_CLASS;
use crate::queue::{MessageKind, NewMessage, Queue, QueueError};
use crate::risk::{self, Level, Refusal, Watch};
use crate::smtp::{Inbox, Reply};
use crate::tracking::{Event, EventKind, Tracker};
use jianmen_scan::behaviour::Sent;
use jianmen_scan::greylist::{Decision, Greylist, RateLimiter};
use jianmen_scan::reputation::AddressList;
use jianmen_scan::verdict::{Class, Report};
use jianmen_scan::{Direction, Disposition, Envelope, Scanner, Verdict};

/// What happened to some recipients of a message, for [`Intake::track`].
struct Outcome<'a> {
    queue_id: &'a str,
    kind: EventKind,
    rcpts: &'a [String],
    report: Option<&'a Report>,
    /// Used when there is no report.
    detail: String,
}

/// Admission control, scanning and queueing for inbound mail.
pub struct Intake {
    config: Arc<Config>,
    scanner: Arc<dyn Scanner>,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    /// `smtp.valid_recipients` as a set: looked up on every RCPT, lists can be long.
    valid_recipients: HashSet<String>,
    /// `scan.rate_limit_per_minute`, when set.
    rate_limit: Option<RateLimiter>,
    /// `scan.greylist`, when enabled.
    greylist: Option<Greylist>,
    /// Clients and senders exempt from greylisting and rate limits when the scanner keeps no
    /// allow list of its own (`scan.allow` of the file).
    allow: AddressList,
    /// Message tracking.
    tracker: Tracker,
    /// Signs outbound mail of the configured sending domains.
    signer: DkimSigner,
    /// The sending accounts' behaviour, when watched.
    watch: Option<Arc<Watch>>,
    /// Where delivered messages are indexed for hunting and recall.
    hunt: Option<crate::hunt::HuntIndex>,
    /// Rewrites the links of inbound mail for click-time protection.
    links: Option<Arc<LinkGuard>>,
    /// Phishing drills, told of mail to the report address.
    drills: Option<Arc<crate::drills::Drills>>,
}

impl Intake {
    /// Creates the intake.
    pub fn new(
        config: Arc<Config>,
        scanner: Arc<dyn Scanner>,
        queue: Arc<Queue>,
        metrics: Arc<Metrics>,
        tracker: Tracker,
    ) -> Self {
        let valid_recipients = config.smtp.valid_recipients.iter().cloned().collect();
        let scan = &config.scan;
        let rate_limit =
            (scan.rate_limit_per_minute > 0).then(|| RateLimiter::new(scan.rate_limit_per_minute));
        let g = &scan.greylist;
        let greylist = g.enabled.then(|| {
            Greylist::new(
                Duration::from_secs(g.delay_secs),
                Duration::from_secs(g.retry_window_hours * 3600),
                Duration::from_secs(g.pass_days * 86400),
            )
        });
        // Validated with the configuration; an unparsable list cannot reach here.
        let allow = AddressList::parse(&scan.allow).unwrap_or_default();
        Self {
            config,
            scanner,
            queue,
            metrics,
            valid_recipients,
            rate_limit,
            greylist,
            allow,
            tracker,
            signer: DkimSigner::default(),
            watch: None,
            hunt: None,
            links: None,
            drills: None,
        }
    }

    /// Watches the sending behaviour of internal accounts and contains them by `watch`'s policy.
    pub fn watching(mut self, watch: Arc<Watch>) -> Self {
        self.watch = Some(watch);
        self
    }

    /// Tells `drills` of the mail sent to its report address (a forwarded drill is reported).
    pub fn reporting_drills(mut self, drills: Arc<crate::drills::Drills>) -> Self {
        self.drills = Some(drills);
        self
    }

    /// Rewrites the web links of inbound mail through `guard`.
    pub fn guarding_links(mut self, guard: Arc<LinkGuard>) -> Self {
        self.links = Some(guard);
        self
    }

    /// Indexes what it delivers into the organisation's mailboxes in `hunt`.
    pub fn hunting(mut self, hunt: crate::hunt::HuntIndex) -> Self {
        self.hunt = Some(hunt);
        self
    }

    /// Signs outbound mail with `signer` (DKIM keys per sending domain).
    pub fn signing(mut self, signer: DkimSigner) -> Self {
        self.signer = signer;
        self
    }

    /// The `DKIM-Signature` field for an outbound message as it will be sent (`extra` header
    /// fields on top of `body`), signed after every change the gateway made to it; empty when
    /// its From domain does not sign here. A message that cannot be signed goes unsigned,
    /// logged: refusing it would lose the organisation's mail over a key problem.
    fn dkim_signature(&self, queue_id: &str, extra: &[u8], body: &[u8]) -> Vec<u8> {
        if self.signer.is_empty() {
            return Vec::new();
        }
        let whole;
        let message = if extra.is_empty() {
            body
        } else {
            whole = [extra, body].concat();
            &whole
        };
        match self.signer.sign(message) {
            Some(Ok(field)) => {
                self.metrics.dkim("signed");
                field.into_bytes()
            }
            Some(Err(e)) => {
                self.metrics.dkim("unsigned");
                tracing::warn!(queue_id, error = %e, "outbound message left unsigned");
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// Takes outbound and internal mail into its account's profile; when the account is held,
    /// the account and why, for the message to be held for review.
    async fn observe(
        &self,
        envelope: &Envelope,
        dispositions: &[Disposition],
    ) -> Option<(String, String)> {
        let watch = self.watch.as_ref()?;
        if envelope.direction == Direction::Inbound {
            return None;
        }
        let account = risk::account_of(envelope.login.as_deref(), &envelope.mail_from)?;
        let flagged = dispositions.iter().any(|d| {
            d.report.as_ref().is_some_and(|r| {
                matches!(
                    r.class,
                    Class::Spam | Class::Phish | Class::Virus | Class::Bec
                )
            })
        });
        let rcpts: Vec<String> = envelope.rcpts.iter().map(|r| r.to_lowercase()).collect();
        let sent = Sent {
            at: chrono::Utc::now().timestamp(),
            client: Some(envelope.client_ip),
            rcpts: &rcpts,
            flagged,
        };
        let observed = watch.observe(&account, &sent).await;
        if let Some(event) = &observed.raised {
            self.raised(event).await;
        }
        (observed.level >= Level::Held).then(|| {
            let why = risk::words(&observed.reasons);
            let reason = format!(
                "账户 {account} 发信行为异常，暂扣待审核 / Unusual sending by {account}: {why}"
            );
            (account, reason)
        })
    }

    /// Counts an account's rise and tells `behaviour.notify`.
    async fn raised(&self, event: &risk::Event) {
        self.metrics.contained(event.level.as_str());
        let Some(watch) = &self.watch else { return };
        let notify = &watch.config().notify;
        if notify.is_empty() {
            return;
        }
        let id = ulid::Ulid::new().to_string();
        let body = risk::alert_message(&self.config.server.hostname, &id, event);
        let alert = NewMessage {
            id: id.clone(),
            mail_from: String::new(),
            rcpts: notify.clone(),
            size: 0,
            received_at: crate::queue::manager::unix_now(),
            client_ip: "127.0.0.1".into(),
            helo: self.config.server.hostname.clone(),
            smtputf8: notify.iter().any(|a| !a.is_ascii()),
            kind: MessageKind::Dsn,
            held: None,
        };
        if let Err(e) = self.queue.enqueue(alert, vec![body]).await {
            tracing::error!(queue_id = %id, error = %e, "cannot queue the containment alert");
        }
    }

    /// Whether `rcpt` is in a protected domain.
    fn is_local(&self, rcpt: &str) -> bool {
        let domain = rcpt
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('.').to_lowercase())
            .unwrap_or_default();
        self.config.is_protected(&domain)
    }

    /// Keeps a copy of inbound mail refused at SMTP in quarantine, under the queue id the
    /// refusal named (`ref …`), when its class is one `[quarantine]` copies: a false positive
    /// at reject level can then still be released. Best effort: the refusal stands either way,
    /// and no copy is kept unless the spool has room to spare.
    async fn keep_rejected_copy(
        &self,
        envelope: &Envelope,
        message: &[u8],
        trace_len: usize,
        report: Option<&Report>,
        reply: &str,
    ) -> bool {
        let q = &self.config.quarantine;
        let Some(report) = report else {
            return false;
        };
        if q.rejected_copy_days == 0
            || envelope.direction != Direction::Inbound
            || !self.queue.has_space_to_spare()
            || !q
                .rejected_copy_classes
                .iter()
                .any(|c| c == report.class.as_str())
        {
            return false;
        }
        let now = chrono::Utc::now().timestamp();
        let held = Held::new(
            &message[trace_len.min(message.len())..],
            format!("refused at SMTP ({reply}); a copy kept"),
            Some(report.clone()),
            Some(q.rejected_copy_days * 24),
            &q.retention_days,
            now,
        );
        let copy = queued(
            envelope,
            envelope.queue_id.clone(),
            envelope.rcpts.clone(),
            now,
            Some(Box::new(held)),
        );
        match self
            .queue
            .enqueue(copy, vec![Vec::new(), Vec::new(), message.to_vec()])
            .await
        {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(queue_id = %envelope.queue_id, error = %e, "no copy of the refused message kept");
                false
            }
        }
    }

    /// Whether greylisting and rate limits spare `client_ip` or `from`: the allow list in force
    /// (edited in the console), or the file's when the scanner keeps none.
    fn exempt(&self, client_ip: IpAddr, from: &str) -> bool {
        self.scanner
            .allowed(client_ip, from)
            .unwrap_or_else(|| self.allow.matches(Some(client_ip), &[from]).is_some())
    }

    /// Records what was decided for some recipients of a message in the tracking log.
    fn track(&self, envelope: &Envelope, subject: &str, o: Outcome<'_>) {
        self.tracker.record(Event {
            at: chrono::Utc::now().timestamp(),
            queue_id: o.queue_id.to_owned(),
            kind: o.kind,
            mail_from: envelope.mail_from.clone(),
            rcpts: o.rcpts.join(","),
            subject: subject.to_owned(),
            client_ip: envelope.client_ip.to_string(),
            class: o.report.map_or("", |r| r.class.as_str()).to_owned(),
            score: o.report.map_or(0.0, |r| r.score),
            detail: o.report.map_or(o.detail, |r| r.explanation.clone()),
            direction: envelope.direction.as_str().to_owned(),
        });
    }
}

fn storage_full() -> Reply {
    Reply::new(452, "4.3.1", "Insufficient system storage, try again later")
}

/// The queue's record of (a copy of) the message `envelope` describes, for `rcpts`.
fn queued(
    envelope: &Envelope,
    id: String,
    rcpts: Vec<String>,
    now: i64,
    held: Option<Box<Held>>,
) -> NewMessage {
    NewMessage {
        id,
        mail_from: envelope.mail_from.clone(),
        rcpts,
        size: 0,
        received_at: now,
        client_ip: envelope.client_ip.to_string(),
        helo: envelope.helo.clone(),
        smtputf8: envelope.smtputf8,
        kind: MessageKind::Mail,
        held,
    }
}

#[async_trait]
impl Inbox for Intake {
    async fn check_mail(
        &self,
        client_ip: IpAddr,
        relay: bool,
        login: Option<&str>,
        from: &str,
    ) -> Result<(), Reply> {
        if !self.queue.has_space() {
            return Err(storage_full());
        }
        if relay
            && let Some(watch) = &self.watch
            && let Some(account) = risk::account_of(login, from)
        {
            match watch.gate(&account, chrono::Utc::now().timestamp()).await {
                Ok(None) => {}
                Ok(Some(raised)) => self.raised(&raised).await,
                Err(Refusal::Throttled) => {
                    self.metrics.rejected("account_throttled");
                    tracing::info!(account, "sending account throttled");
                    return Err(Reply::new(
                        451,
                        "4.7.1",
                        "This account is sending unusually much and is slowed down; try again later",
                    ));
                }
                Err(Refusal::Blocked) => {
                    self.metrics.rejected("account_blocked");
                    tracing::info!(account, "sending account blocked");
                    return Err(Reply::new(
                        550,
                        "5.7.1",
                        "Sending from this account is suspended; contact your administrator",
                    ));
                }
            }
        }
        // The organisation's own server sends for all its users: an inbound rate limit on its
        // address would throttle the whole organisation.
        if !relay
            && let Some(limiter) = &self.rate_limit
            && !self.exempt(client_ip, from)
            && !limiter.allow(client_ip)
        {
            self.metrics.rejected("rate");
            tracing::info!(client = %client_ip, from, "rate limit exceeded");
            return Err(Reply::new(
                451,
                "4.7.1",
                "Too many messages from your address, slow down and try again later",
            ));
        }
        Ok(())
    }

    async fn check_rcpt(
        &self,
        client_ip: IpAddr,
        relay: bool,
        from: &str,
        rcpt: &str,
    ) -> Result<(), Reply> {
        let local = self.is_local(rcpt);
        if !local && !relay {
            return Err(Reply::new(550, "5.7.1", "Relay access denied"));
        }
        if !local || relay {
            // Outbound, or internal mail the organisation's own server already accepted.
            return Ok(());
        }
        let valid = &self.valid_recipients;
        if !valid.is_empty() && !valid.contains(&rcpt.to_lowercase()) {
            return Err(Reply::new(
                550,
                "5.1.1",
                "Recipient address rejected: user unknown",
            ));
        }
        if let Some(greylist) = &self.greylist
            && !self.exempt(client_ip, from)
            && let Decision::Defer(secs) = greylist.check(client_ip, from, rcpt)
        {
            self.metrics.rejected("greylist");
            return Err(Reply::new(
                451,
                "4.7.1",
                format!("Greylisted, please try again in {secs} seconds"),
            ));
        }
        Ok(())
    }

    async fn accept(&self, mut envelope: Envelope, message: Vec<u8>, trace_len: usize) -> Reply {
        let started = Instant::now();
        if envelope.direction == Direction::Outbound
            && envelope.rcpts.iter().all(|r| self.is_local(r))
        {
            envelope.direction = Direction::Internal;
        }
        if let Some(drills) = &self.drills {
            let report = &drills.config().report_address;
            if !report.is_empty()
                && envelope
                    .rcpts
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(report))
            {
                match drills.reported(&message[trace_len..]).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(queue_id = %envelope.queue_id, reported = n, "drill reported")
                    }
                    Err(e) => tracing::error!(error = %e, "cannot record a drill report"),
                }
            }
        }
        let dispositions = self.scanner.scan(&envelope, &message[trace_len..]).await;
        let scan_us = started.elapsed().as_micros() as u64;
        let account_hold = self.observe(&envelope, &dispositions).await;
        for d in &dispositions {
            if d.report.as_ref().is_some_and(|r| r.class == Class::Dlp) {
                self.metrics.dlp_incident(match d.verdict {
                    Verdict::Hold { .. } => "hold",
                    Verdict::Reject { .. } => "block",
                    _ => "log",
                });
            }
        }
        let size = message.len() - trace_len;
        let (subject, _) = crate::quarantine::headline(&message[trace_len..]);
        // Outgoing mail is judged for the data it carries: a subject holding some is not shown.
        let subject = if envelope.direction == Direction::Inbound {
            subject
        } else {
            jianmen_scan::dlp::shown(&subject, chrono::Local::now().date_naive()).into_owned()
        };
        if let Some(Disposition {
            verdict:
                Verdict::Reject {
                    code,
                    enhanced,
                    text,
                },
            ..
        }) = dispositions.first()
            && dispositions
                .iter()
                .all(|d| matches!(d.verdict, Verdict::Reject { .. }))
        {
            self.metrics.rejected("verdict");
            let report = dispositions.first().and_then(|d| d.report.as_ref());
            let reply = format!("{code} {enhanced} {text}");
            let kept = self
                .keep_rejected_copy(&envelope, &message, trace_len, report, &reply)
                .await;
            self.track(
                &envelope,
                &subject,
                Outcome {
                    queue_id: &envelope.queue_id,
                    kind: EventKind::Rejected,
                    rcpts: &envelope.rcpts,
                    report,
                    detail: if kept {
                        format!("{reply} (a copy is kept in quarantine)")
                    } else {
                        reply
                    },
                },
            );
            tracing::info!(
                queue_id = %envelope.queue_id, from = %envelope.mail_from,
                rcpts = %envelope.rcpts.join(","), size, verdict = "reject", scan_us,
                "message rejected"
            );
            return Reply::new(
                *code,
                enhanced,
                format!("{text} (ref {})", envelope.queue_id),
            );
        }
        let mut message = message;
        let last = dispositions.len().saturating_sub(1);
        let mut first = true;
        for (i, d) in dispositions.into_iter().enumerate() {
            // Only a split message needs copies; the last (usually only) group takes it.
            let mut own = || {
                if i == last {
                    std::mem::take(&mut message)
                } else {
                    message.clone()
                }
            };
            let now = chrono::Utc::now().timestamp();
            let hold = |reason: String, report: Option<Report>, hours, body: &[u8]| {
                let mut held = Held::new(
                    &body[trace_len.min(body.len())..],
                    reason,
                    report,
                    hours,
                    &self.config.quarantine.retention_days,
                    now,
                );
                held.subject = subject.clone();
                Some(Box::new(held))
            };
            let report = d.report.clone();
            // Whatever a contained account sends that would go out waits for review.
            let (verdict, for_account) = match (&account_hold, d.verdict) {
                (Some((account, reason)), Verdict::Deliver | Verdict::Tag { .. }) => {
                    let hours = self.watch.as_ref().map(|w| w.config().hold_hours);
                    (
                        Verdict::Hold {
                            reason: reason.clone(),
                            hours,
                        },
                        Some(account),
                    )
                }
                (_, verdict) => (verdict, None),
            };
            let (mut held, extra, body) = match verdict {
                Verdict::Discard { reason } => {
                    self.track(
                        &envelope,
                        &subject,
                        Outcome {
                            queue_id: &envelope.queue_id,
                            kind: EventKind::Discarded,
                            rcpts: &d.rcpts,
                            report: d.report.as_ref(),
                            detail: reason.clone(),
                        },
                    );
                    tracing::info!(
                        queue_id = %envelope.queue_id, from = %envelope.mail_from,
                        rcpts = %d.rcpts.join(","), size, verdict = "discard", reason,
                        "message discarded"
                    );
                    continue;
                }
                // Other recipients accept the message, so one reply cannot refuse it: hold
                // it for these recipients instead of bouncing or losing it.
                Verdict::Reject { text, .. } => {
                    let body = own();
                    let reason = format!("{text} (refused for these recipients only)");
                    (hold(reason, d.report, None, &body), Vec::new(), body)
                }
                Verdict::Deliver => (None, Vec::new(), own()),
                Verdict::Tag {
                    headers,
                    subject_prefix,
                } => {
                    let mut extra = Vec::new();
                    for (name, value) in &headers {
                        extra.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                    }
                    let body = match subject_prefix {
                        Some(prefix) => prefix_subject(&own(), trace_len, &prefix, &mut extra),
                        None => own(),
                    };
                    (None, extra, body)
                }
                Verdict::Hold { reason, hours } => {
                    let body = own();
                    (hold(reason, d.report, hours, &body), Vec::new(), body)
                }
            };
            let id = if std::mem::take(&mut first) {
                envelope.queue_id.clone()
            } else {
                ulid::Ulid::new().to_string()
            };
            if let (Some(account), Some(held), Some(watch)) =
                (for_account, held.as_mut(), &self.watch)
            {
                held.class = ACCOUNT_CLASS.to_owned();
                if let Err(e) = watch.note_hold(&id, account).await {
                    // Still held, and found on the approvals page; only clearing the account
                    // will not release it.
                    tracing::error!(queue_id = %id, account, error = %e, "cannot note an account's held message");
                }
            }
            let verdict_name = if held.is_some() { "hold" } else { "deliver" };
            // What goes into the organisation's mailboxes is indexed as it arrived (before its
            // links are rewritten), to be found again.
            let for_index = (self.hunt.is_some() && held.is_none())
                .then(|| body.get(trace_len..).unwrap_or_default().to_vec());
            let copies = match (&self.links, &held) {
                (Some(guard), None) if envelope.direction == Direction::Inbound => {
                    // Parsing and re-encoding is CPU work: off the SMTP sessions' threads.
                    let (guard, rcpts) = (guard.clone(), d.rcpts.clone());
                    match tokio::task::spawn_blocking(move || {
                        guard.copies(id, rcpts, body, trace_len, now)
                    })
                    .await
                    {
                        Ok(copies) => copies,
                        // Only a bug gets here. Nothing of this group is queued and the client
                        // tries again (a group queued before this one would arrive twice).
                        Err(e) => {
                            tracing::error!(queue_id = %envelope.queue_id, error = %e, "link rewriting failed");
                            return Reply::new(
                                451,
                                "4.3.0",
                                "Local error in processing, try again later",
                            );
                        }
                    }
                }
                _ => vec![(id, d.rcpts.clone(), body)],
            };
            for (id, rcpts, body) in copies {
                let mailboxes: Vec<String> = match (&self.hunt, &for_index) {
                    (Some(hunt), Some(_)) => hunt.mailboxes(&rcpts),
                    _ => Vec::new(),
                };
                let new = queued(&envelope, id.clone(), rcpts.clone(), now, held.take());
                let signature = if envelope.direction == Direction::Outbound {
                    self.dkim_signature(&id, &extra, &body)
                } else {
                    Vec::new()
                };
                match self
                    .queue
                    .enqueue(new, vec![signature, extra.clone(), body])
                    .await
                {
                    Ok(()) => {
                        if let (Some(hunt), Some(raw)) = (&self.hunt, &for_index)
                            && !mailboxes.is_empty()
                        {
                            hunt.index(now, &id, &envelope.mail_from, &mailboxes, raw.clone());
                        }
                        self.metrics.accepted.inc();
                        self.metrics.directed(envelope.direction.as_str());
                        let kind = if verdict_name == "hold" {
                            EventKind::Quarantined
                        } else {
                            EventKind::Queued
                        };
                        self.track(
                            &envelope,
                            &subject,
                            Outcome {
                                queue_id: &id,
                                kind,
                                rcpts: &rcpts,
                                report: report.as_ref(),
                                detail: String::new(),
                            },
                        );
                        let spool_us = started.elapsed().as_micros() as u64 - scan_us;
                        tracing::info!(
                            queue_id = %id, from = %envelope.mail_from,
                            rcpts = %rcpts.join(","), client = %envelope.client_ip, size,
                            direction = envelope.direction.as_str(), verdict = verdict_name, scan_us,
                            spool_us, "message queued"
                        );
                    }
                    Err(QueueError::StorageFull) => {
                        self.metrics.rejected("storage");
                        tracing::warn!(queue_id = %id, "spool full; message refused with 452");
                        return storage_full();
                    }
                    Err(e) => {
                        self.metrics.rejected("spool");
                        tracing::error!(queue_id = %id, error = %e, "cannot queue message");
                        return Reply::new(
                            451,
                            "4.3.0",
                            "Local error in processing, try again later",
                        );
                    }
                }
            }
        }
        Reply::new(250, "2.0.0", format!("Ok: queued as {}", envelope.queue_id))
    }
}

/// The message with `prefix` put in front of its Subject (after our trace header, which is
/// the first `trace_len` bytes); a Subject field is added to `extra` when there is none.
fn prefix_subject(message: &[u8], trace_len: usize, prefix: &str, extra: &mut Vec<u8>) -> Vec<u8> {
    let head_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 2);
    let mut line_start = trace_len;
    while line_start < head_end {
        let line_end = message[line_start..head_end]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(head_end, |p| line_start + p + 2);
        let line = &message[line_start..line_end];
        if line.len() >= 8 && line[..8].eq_ignore_ascii_case(b"subject:") {
            let mut at = line_start + 8;
            if message.get(at) == Some(&b' ') {
                at += 1;
            }
            let mut out = Vec::with_capacity(message.len() + prefix.len() + 1);
            out.extend_from_slice(&message[..at]);
            out.extend_from_slice(prefix.as_bytes());
            out.push(b' ');
            out.extend_from_slice(&message[at..]);
            return out;
        }
        line_start = line_end;
    }
    extra.extend_from_slice(format!("Subject: {prefix}\r\n").as_bytes());
    message.to_vec()
}
