//! The gateway's [`Inbox`]: recipient policy at RCPT (protected domains, valid recipients),
//! the [`Scanner`] verdict at end of DATA, and the durable enqueue that earns the 250.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::queue::{MessageKind, MessageState, NewMessage, Queue, QueueError};
use crate::scan::{Envelope, Scanner, Verdict};
use crate::smtp::{Inbox, Reply};

/// Admission control, scanning and queueing for inbound mail.
pub struct Intake {
    config: Arc<Config>,
    scanner: Arc<dyn Scanner>,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    /// `smtp.valid_recipients` as a set: looked up on every RCPT, lists can be long.
    valid_recipients: HashSet<String>,
}

impl Intake {
    /// Creates the intake.
    pub fn new(
        config: Arc<Config>,
        scanner: Arc<dyn Scanner>,
        queue: Arc<Queue>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let valid_recipients = config.smtp.valid_recipients.iter().cloned().collect();
        Self {
            config,
            scanner,
            queue,
            metrics,
            valid_recipients,
        }
    }
}

fn storage_full() -> Reply {
    Reply::new(452, "4.3.1", "Insufficient system storage, try again later")
}

#[async_trait]
impl Inbox for Intake {
    async fn check_mail(&self, _from: &str) -> Result<(), Reply> {
        if self.queue.has_space() {
            Ok(())
        } else {
            Err(storage_full())
        }
    }

    async fn check_rcpt(&self, rcpt: &str) -> Result<(), Reply> {
        let domain = rcpt
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('.').to_lowercase())
            .unwrap_or_default();
        if !self.config.is_protected(&domain) {
            return Err(Reply::new(550, "5.7.1", "Relay access denied"));
        }
        let valid = &self.valid_recipients;
        if !valid.is_empty() && !valid.contains(&rcpt.to_lowercase()) {
            return Err(Reply::new(
                550,
                "5.1.1",
                "Recipient address rejected: user unknown",
            ));
        }
        Ok(())
    }

    async fn accept(&self, envelope: Envelope, message: Vec<u8>, trace_len: usize) -> Reply {
        let started = Instant::now();
        let verdict = self.scanner.scan(&envelope, &message[trace_len..]).await;
        let scan_us = started.elapsed().as_micros() as u64;
        let (state, hold_reason, extra) = match &verdict {
            Verdict::Reject {
                code,
                enhanced,
                text,
            } => {
                self.metrics.rejected("verdict");
                tracing::info!(
                    queue_id = %envelope.queue_id, from = %envelope.mail_from,
                    rcpts = %envelope.rcpts.join(","), size = message.len() - trace_len,
                    verdict = "reject", scan_us, "message rejected"
                );
                let text = format!("{text} (ref {})", envelope.queue_id);
                return Reply::new(*code, enhanced, text);
            }
            Verdict::Deliver => (MessageState::Active, None, Vec::new()),
            Verdict::Tag { headers } => {
                let mut extra = Vec::new();
                for (name, value) in headers {
                    extra.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                }
                (MessageState::Active, None, extra)
            }
            Verdict::Hold { reason } => (MessageState::Held, Some(reason.clone()), Vec::new()),
        };
        let new = NewMessage {
            id: envelope.queue_id.clone(),
            mail_from: envelope.mail_from.clone(),
            rcpts: envelope.rcpts.clone(),
            size: 0,
            received_at: chrono::Utc::now().timestamp(),
            client_ip: envelope.client_ip.to_string(),
            helo: envelope.helo.clone(),
            smtputf8: envelope.smtputf8,
            state,
            hold_reason,
            kind: MessageKind::Mail,
        };
        let size = message.len();
        let result = self.queue.enqueue(new, vec![extra, message]).await;
        let verdict_name = match verdict {
            Verdict::Deliver => "deliver",
            Verdict::Tag { .. } => "tag",
            Verdict::Hold { .. } => "hold",
            Verdict::Reject { .. } => "reject",
        };
        let spool_us = started.elapsed().as_micros() as u64 - scan_us;
        match result {
            Ok(()) => {
                self.metrics.accepted.inc();
                tracing::info!(
                    queue_id = %envelope.queue_id, from = %envelope.mail_from,
                    rcpts = %envelope.rcpts.join(","), client = %envelope.client_ip, size,
                    verdict = verdict_name, scan_us, spool_us, "message queued"
                );
                Reply::new(250, "2.0.0", format!("Ok: queued as {}", envelope.queue_id))
            }
            Err(QueueError::StorageFull) => {
                self.metrics.rejected("storage");
                tracing::warn!(queue_id = %envelope.queue_id, "spool full; message refused with 452");
                storage_full()
            }
            Err(e) => {
                self.metrics.rejected("spool");
                tracing::error!(queue_id = %envelope.queue_id, error = %e, "cannot queue message");
                Reply::new(451, "4.3.0", "Local error in processing, try again later")
            }
        }
    }
}
