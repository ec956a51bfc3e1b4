//! HELO/EHLO: greets the client, resets the transaction and advertises extensions.

use super::reply::Reply;
use super::state::{Flow, Session};

impl Session {
    /// Handles EHLO (`esmtp`) or HELO.
    pub(super) fn ehlo(&mut self, host: String, esmtp: bool) -> Flow {
        if host.chars().any(|c| c.is_control()) || host.len() > 255 {
            return self.fail(Reply::new(501, "5.5.4", "Invalid host name"));
        }
        self.tx = None;
        self.forwarded = Default::default();
        self.helo = Some(host);
        self.esmtp = esmtp;
        let name = &self.ctx.hostname;
        if !esmtp {
            self.send(&Reply::new(250, "", name.clone()));
            return Flow::Continue;
        }
        let mut lines = vec![
            format!("{name} Hello [{}]", self.client_ip),
            "PIPELINING".to_owned(),
            format!("SIZE {}", self.ctx.limits.max_message_size),
            "8BITMIME".to_owned(),
            "SMTPUTF8".to_owned(),
            "ENHANCEDSTATUSCODES".to_owned(),
            "CHUNKING".to_owned(),
        ];
        if self.ctx.tls.is_some() && !self.tls {
            lines.push("STARTTLS".to_owned());
        }
        if let Some(offer) = self.xforward_offer() {
            lines.push(offer.to_owned());
        }
        let mut out = Vec::with_capacity(256);
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.extend_from_slice(format!("250{sep}{line}\r\n").as_bytes());
        }
        self.conn.reply(&out);
        Flow::Continue
    }
}
