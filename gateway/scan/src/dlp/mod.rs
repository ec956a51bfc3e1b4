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

use chrono::NaiveDate;

use crate::message::Message;
use crate::pool::Deadline;
pub use policy::{DlpAction, DlpConfig, DlpDecision, Inspection, Policies, PolicyError};

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
    let inspection = Inspection {
        findings,
        files: extracted
            .files
            .iter()
            .map(|f| (f.name.clone(), f.size))
            .collect(),
        encrypted: extracted.encrypted,
        unreadable: extracted.unreadable,
        truncated: extracted.truncated,
    };
    (text, inspection)
}
