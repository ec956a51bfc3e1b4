//! RCPT TO: checks each recipient against the recipient limit and the inbox's policy.

use smtp_proto::RcptTo;

use super::reply::Reply;
use super::state::{Flow, Session};

impl Session {
    /// Handles RCPT TO.
    pub(super) async fn rcpt(&mut self, to: RcptTo<String>) -> Flow {
        let Some(tx) = &self.tx else {
            return self.fail(Reply::new(503, "5.5.1", "Need MAIL command first"));
        };
        if tx.rcpts.len() >= self.ctx.limits.max_recipients {
            self.send(&Reply::new(452, "4.5.3", "Too many recipients"));
            return Flow::Continue;
        }
        let smtputf8 = tx.smtputf8;
        let address = to.address;
        if address.is_empty() || !address.contains('@') {
            return self.fail(Reply::new(501, "5.1.3", "Bad recipient address syntax"));
        }
        if !smtputf8 && !address.is_ascii() {
            return self.fail(Reply::new(
                553,
                "5.6.7",
                "Non-ASCII address requires SMTPUTF8",
            ));
        }
        let from = tx.mail_from.clone();
        if let Err(reply) = self
            .ctx
            .inbox
            .check_rcpt(self.client_ip, self.relay, &from, &address)
            .await
        {
            if reply.is_transient() {
                self.send(&reply);
                return Flow::Continue;
            }
            return self.fail(reply);
        }
        let Some(tx) = self.tx.as_mut() else {
            return Flow::Continue;
        };
        if !tx.rcpts.iter().any(|r| r.eq_ignore_ascii_case(&address)) {
            tx.rcpts.push(address);
        }
        self.send(&Reply::new(250, "2.1.5", "Ok"));
        Flow::Continue
    }
}
