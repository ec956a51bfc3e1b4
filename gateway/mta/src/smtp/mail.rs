//! MAIL FROM: starts a transaction after checking order, size, body type and UTF-8 use.

use smtp_proto::{MAIL_BODY_BINARYMIME, MAIL_SMTPUTF8, MailFrom};

use super::reply::Reply;
use super::state::{Flow, Session, Transaction};

impl Session {
    /// Handles MAIL FROM.
    pub(super) async fn mail(&mut self, from: MailFrom<String>) -> Flow {
        if self.helo.is_none() {
            return self.fail(Reply::new(503, "5.5.1", "Send HELO/EHLO first"));
        }
        if self.tx.is_some() {
            return self.fail(Reply::new(503, "5.5.1", "Nested MAIL command"));
        }
        if self.messages >= self.ctx.limits.max_messages_per_session {
            self.send(&Reply::new(
                421,
                "4.7.0",
                "Too many messages in one session",
            ));
            return Flow::Close;
        }
        if from.size > self.ctx.limits.max_message_size {
            return self.fail(Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            ));
        }
        if from.flags & MAIL_BODY_BINARYMIME != 0 {
            return self.fail(Reply::new(555, "5.5.4", "BODY=BINARYMIME is not supported"));
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        if smtputf8 && !self.esmtp {
            return self.fail(Reply::new(555, "5.5.4", "SMTPUTF8 requires EHLO"));
        }
        if !smtputf8 && !from.address.is_ascii() {
            return self.fail(Reply::new(
                553,
                "5.6.7",
                "Non-ASCII address requires SMTPUTF8",
            ));
        }
        if let Err(reply) = self
            .ctx
            .inbox
            .check_mail(
                self.client_ip,
                self.relay,
                self.forwarded.login.as_deref(),
                &from.address,
            )
            .await
        {
            return self.fail(reply);
        }
        self.tx = Some(Transaction {
            queue_id: ulid::Ulid::new().to_string(),
            mail_from: from.address,
            smtputf8,
            rcpts: Vec::new(),
            bdat: None,
            forwarded: std::mem::take(&mut self.forwarded),
        });
        self.send(&Reply::new(250, "2.1.0", "Ok"));
        Flow::Continue
    }
}
