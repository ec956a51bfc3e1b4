//! Any bytes as a message: the parsed view, the HTML reader, the attachment walker, the link
//! and sender checks and the built-in rules must neither panic nor hang.
#![no_main]

use std::sync::OnceLock;

use jianmen_scan::config::AttachmentPolicy;
use jianmen_scan::message::Message;
use jianmen_scan::phish::Targets;
use jianmen_scan::pool::Deadline;
use jianmen_scan::rules::RuleSet;
use jianmen_scan::{Symbols, attach, phish};
use libfuzzer_sys::fuzz_target;

fn rules() -> &'static (RuleSet, Targets, AttachmentPolicy) {
    static R: OnceLock<(RuleSet, Targets, AttachmentPolicy)> = OnceLock::new();
    R.get_or_init(|| {
        (
            RuleSet::load(true, None, &[]).expect("built-in rules"),
            Targets::new(&[], &["example.com".into()]),
            // Refused types make the walker judge names and true types too.
            AttachmentPolicy {
                blocked: ["exe", "rtf", "iso", "js"].map(String::from).to_vec(),
            },
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let (rules, targets, attachments) = rules();
    let message = Message::parse(data);
    let mut symbols = Symbols::default();
    phish::check_links(&message, targets, &mut symbols);
    phish::check_sender(&message, targets, &mut symbols);
    attach::check(
        &message.attachments,
        attachments,
        &Deadline::unlimited(),
        &mut symbols,
    );
    rules.evaluate(&message, &mut symbols);
});
