//! Approvals (审批) of mail held for a reviewer: outgoing mail a data-leak prevention policy
//! held, and everything a contained account sent ([`crate::risk`]). Approving is a release
//! (the message goes out as it was signed at intake); rejecting — by a reviewer, or by the
//! policy's deadline passing — drops the message and tells the sender, in the same transaction,
//! with a notice that names the policy and the counts that fired it but quotes nothing of the
//! message: the notice itself must not become the leak.

use super::index::{self, Summary};
use super::{Quarantine, QuarantineError, Status};
use crate::queue::dsn::one_line;
use crate::queue::{MessageKind, NewMessage};

/// The class of items a DLP policy holds for an approval.
pub const APPROVAL_CLASS: &str = "dlp";
/// The class of items held because the account sending them is contained.
pub const ACCOUNT_CLASS: &str = "account";

/// Whether items of `class` wait for a reviewer's decision (approved or rejected, the sender
/// told when rejected) rather than being spam someone may release or delete.
pub fn awaits_review(class: &str) -> bool {
    class == APPROVAL_CLASS || class == ACCOUNT_CLASS
}

/// Who sends the notices of rejected approvals, and to whom they may go: only senders in the
/// protected domains (an outside envelope sender — forwarded mail — would learn the policy and
/// the recipients, and get backscatter).
pub struct Notices<'a> {
    hostname: &'a str,
    protected: &'a [String],
    zone: chrono_tz::Tz,
}

impl<'a> Notices<'a> {
    /// Notices from `hostname` to senders in `protected` domains.
    pub fn new(hostname: &'a str, protected: &'a [String]) -> Self {
        Self {
            hostname,
            protected,
            zone: chrono_tz::UTC,
        }
    }

    /// The same notices telling times in `zone`.
    pub fn in_zone(mut self, zone: chrono_tz::Tz) -> Self {
        self.zone = zone;
        self
    }

    /// Whether `mail_from` is told.
    fn tells(&self, mail_from: &str) -> bool {
        let domain = mail_from
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('.'))
            .unwrap_or_default();
        self.protected
            .iter()
            .any(|p| p.eq_ignore_ascii_case(domain))
    }
}

impl Summary {
    /// The tracking event of this item's rejection by `actor`.
    pub fn rejected_event(&self, actor: &str) -> crate::tracking::Event {
        crate::tracking::Event {
            at: crate::queue::manager::unix_now(),
            queue_id: self.id.clone(),
            kind: crate::tracking::EventKind::Rejected,
            mail_from: self.mail_from.clone(),
            rcpts: self.rcpts.clone(),
            subject: self.subject.clone(),
            client_ip: self.client_ip.clone(),
            class: self.class.clone(),
            score: self.score,
            detail: format!("not approved ({actor})"),
            direction: String::new(),
        }
    }
}

/// The notice a sender gets when their held message is not approved; `why` says who decided.
fn rejection_notice(
    hostname: &str,
    notice_id: &str,
    item: &Summary,
    why: &str,
    zone: chrono_tz::Tz,
) -> Vec<u8> {
    use base64::Engine;
    let date = chrono::Utc::now().to_rfc2822();
    let subject =
        base64::engine::general_purpose::STANDARD.encode("邮件未获审核放行 / Message not approved");
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n\
         To: <{to}>\r\n\
         Subject: =?UTF-8?B?{subject}?=\r\n\
         Date: {date}\r\n\
         Message-ID: <{notice_id}@{hostname}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         您于 {received} 发给 {rcpts} 的邮件未获审核放行，没有投递。\r\n\
         Your message of {received} to {rcpts} was not approved and was not delivered.\r\n\
         \r\n\
         {why}\r\n\
         策略 / Policy: {reason}\r\n\
         编号 / Reference: {id}\r\n\
         \r\n\
         如有疑问，请联系信息安全管理员。\r\n\
         Please contact your security administrator if you have questions.\r\n",
        to = item.mail_from,
        received = item.received_text(zone),
        rcpts = one_line(&item.rcpts),
        reason = one_line(&item.reason),
        id = item.id,
    )
    .into_bytes()
}

impl Quarantine {
    /// Rejects a message held for approval: it is dropped and its sender gets the notice, in
    /// one transaction. Only items of the approval class can be rejected (a spam hold is
    /// deleted, never answered: its sender is usually forged).
    pub async fn reject(
        &self,
        id: &str,
        actor: &str,
        notices: &Notices<'_>,
        now: i64,
    ) -> Result<(), QuarantineError> {
        let item = self.get(id).await?;
        item.summary
            .require(Status::Held, "it cannot be rejected")?;
        if !awaits_review(&item.summary.class) {
            return Err(QuarantineError::Conflict {
                id: id.to_owned(),
                status: Status::Held.as_str(),
                why: "only messages held for approval can be rejected".into(),
            });
        }
        let why = format!("审批人拒绝 / Rejected by the reviewer ({actor}).");
        self.drop_with_notice(&item.summary, Status::Rejected, actor, notices, &why, now)
            .await
    }

    /// Drops a held item and, when it has a sender to tell, queues `why` to them in the same
    /// transaction.
    pub(super) async fn drop_with_notice(
        &self,
        item: &Summary,
        status: Status,
        actor: &str,
        notices: &Notices<'_>,
        why: &str,
        now: i64,
    ) -> Result<(), QuarantineError> {
        let hostname = notices.hostname;
        let notice = if !notices.tells(&item.mail_from) {
            None
        } else {
            let notice_id = ulid::Ulid::new().to_string();
            let body = rejection_notice(hostname, &notice_id, item, why, notices.zone);
            let spool = self.spool.clone();
            let (file, bytes) = (notice_id.clone(), body.clone());
            tokio::task::spawn_blocking(move || spool.write(&file, &[&bytes]))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
            Some(NewMessage {
                id: notice_id,
                mail_from: String::new(),
                rcpts: vec![item.mail_from.clone()],
                size: body.len() as u64,
                received_at: now,
                client_ip: "127.0.0.1".into(),
                helo: hostname.to_owned(),
                smtputf8: !item.mail_from.is_ascii(),
                kind: MessageKind::Dsn,
                held: None,
            })
        };
        let dropped =
            index::drop_message(&self.store, &item.id, status, actor, now, notice.as_ref()).await;
        if dropped.is_err()
            && let Some(n) = &notice
        {
            let _ = self.spool.remove(&n.id);
        }
        dropped?;
        self.remove_file(&item.id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_names_the_policy_and_quotes_nothing_of_the_message() {
        let item = Summary {
            id: "01JAPPROVAL0000000000000000".into(),
            received_at: 1_700_000_000,
            expires_at: 0,
            mail_from: "zhang@corp.test".into(),
            header_from: "zhang@corp.test".into(),
            subject: "客户 110105194912310118".into(),
            class: APPROVAL_CLASS.into(),
            score: 0.0,
            reason: "DLP policy \"身份证\" (hold): resident_id 5 ≥ 5".into(),
            size: 10,
            status: Status::Held,
            client_ip: "10.0.0.7".into(),
            rcpts: "a@partner.test".into(),
        };
        let notice = String::from_utf8(rejection_notice(
            "gw.test",
            "N1",
            &item,
            "x",
            chrono_tz::UTC,
        ))
        .unwrap();
        assert!(notice.contains("身份证") && notice.contains("resident_id 5"));
        assert!(notice.contains("To: <zhang@corp.test>"));
        assert!(
            !notice.contains("110105"),
            "the subject is not quoted: {notice}"
        );
        let protected = ["corp.test".to_owned()];
        let notices = Notices::new("gw.test", &protected);
        assert!(notices.tells("zhang@CORP.test"));
        assert!(
            !notices.tells("someone@outside.test"),
            "no backscatter outside"
        );
        assert!(!notices.tells(""));
    }
}
