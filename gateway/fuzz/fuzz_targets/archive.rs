//! Any bytes as an attachment (zip, gzip, tar, OLE, PDF, HTML…): the recursive walker must stay
//! within its bounds and never panic.
#![no_main]

use jianmen_scan::config::AttachmentPolicy;
use jianmen_scan::message::Attachment;
use jianmen_scan::pool::Deadline;
use jianmen_scan::{Symbols, attach};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut symbols = Symbols::default();
    // A refused type makes the walker also judge every member's name and true type.
    let policy = AttachmentPolicy {
        blocked: vec!["exe".into()],
    };
    for name in ["a.zip", "b.tar.gz"] {
        attach::check(
            &[Attachment {
                name: name.into(),
                declared_type: String::new(),
                data: data.to_vec(),
            }],
            &policy,
            &Deadline::unlimited(),
            &mut symbols,
        );
    }
});
