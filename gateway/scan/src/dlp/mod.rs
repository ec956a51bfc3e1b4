//! Data-leak prevention (EDLP): what outgoing mail must not carry. [`identifiers`] finds validated
//! personal and organisational identifiers (ID, bank card, mobile, credit code and passport
//! numbers, e-mail address lists) and 密级 markings in text, and reports counts and masked
//! samples, never the data; [`extract`] gets the text out of bodies and attachments (Office
//! documents, PDF, nested archives) within fixed bounds; [`policy`] decides what an
//! organisation's rules do with what was found. The pipeline runs them on outbound and internal
//! mail (the direction comes from the SMTP session, see [`crate::Direction`]).

pub mod extract;
pub mod identifiers;
pub mod policy;

use std::borrow::Cow;

use chrono::NaiveDate;

use crate::message::Message;
use crate::pool::Deadline;
pub use policy::{DlpAction, DlpConfig, DlpDecision, Inspection, Policies, PolicyError};

/// Shown instead of a subject or file name that carries an identifier.
pub const WITHHELD: &str = "（含敏感信息，已隐藏 / withheld: sensitive data）";

/// What may be shown of `text` — a subject, a file name — in logs, tracking and the console: the
/// text, or [`WITHHELD`] when it carries an identifier (a 密级 marking is no personal data and
/// is shown). Where DLP's findings are shown must not be where the data leaks.
pub fn shown(text: &str, today: NaiveDate) -> Cow<'_, str> {
    let sensitive = identifiers::find(text, today)
        .iter()
        .any(|(d, _)| d != identifiers::Detector::Classification);
    if sensitive {
        Cow::Borrowed(WITHHELD)
    } else {
        Cow::Borrowed(text)
    }
}

/// Everything one message says, for the detectors: subject, body text and the text of its
/// attachments, with what could not be read.
pub fn inspect(message: &Message, deadline: &Deadline, today: NaiveDate) -> (String, Inspection) {
    let extracted = extract::attachments_text(&message.attachments, deadline);
    let mut text = String::with_capacity(
        message.subject.len() + message.text.len() + extracted.text.len() + 2,
    );
    text.push_str(&message.subject);
    text.push('\n');
    text.push_str(&message.text);
    text.push('\n');
    text.push_str(&extracted.text);
    let findings = identifiers::find(&text, today);
    let names = |names: Vec<String>| -> Vec<String> {
        names.iter().map(|n| shown(n, today).into_owned()).collect()
    };
    let inspection = Inspection {
        findings,
        // Only their extensions and sizes are judged; the names are kept for the report.
        files: extracted
            .files
            .iter()
            .map(|f| (shown(&f.name, today).into_owned(), f.size))
            .collect(),
        encrypted: names(extracted.encrypted),
        unreadable: names(extracted.unreadable),
        truncated: extracted.truncated,
    };
    (text, inspection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_or_name_that_carries_an_identifier_is_withheld() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        assert_eq!(shown("季度报告 Q4", today), "季度报告 Q4");
        assert_eq!(shown("客户 110105194912310118 资料", today), WITHHELD);
        assert_eq!(shown("张三_110105194912310118.zip", today), WITHHELD);
        assert_eq!(shown("绝密★ 会议通知", today), "绝密★ 会议通知");
    }
}
