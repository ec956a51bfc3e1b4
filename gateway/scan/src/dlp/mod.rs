//! Data-leak prevention (EDLP): what outgoing mail must not carry. [`identifiers`] finds validated
//! personal and organisational identifiers (ID, bank card, mobile, credit code and passport
//! numbers) and 密级 markings in text, and reports counts and masked samples, never the data.
//! Nothing in the gateway calls it yet: mail has no direction and there are no DLP policies.

pub mod identifiers;
