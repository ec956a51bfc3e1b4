//! Any bytes as a message through the whole offline scan path — parsing, HTML, attachments and
//! archives, links, senders, rules, the verdict — as `jianmen scan` runs it: it must neither
//! panic nor hang (libFuzzer's `-timeout` catches inputs that take too long).
#![no_main]

use std::sync::{Arc, OnceLock};

use jianmen_scan::pipeline::{Context, Pipeline};
use libfuzzer_sys::fuzz_target;

fn scanner() -> &'static (tokio::runtime::Runtime, Arc<Pipeline>) {
    static S: OnceLock<(tokio::runtime::Runtime, Arc<Pipeline>)> = OnceLock::new();
    S.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let pipeline = Pipeline::offline().expect("offline pipeline");
        (runtime, Arc::new(pipeline))
    })
}

fuzz_target!(|data: &[u8]| {
    let (runtime, pipeline) = scanner();
    let ctx = Context::default();
    let analysis = runtime.block_on(pipeline.analyse(data, &ctx));
    let _ = pipeline.report(&analysis, &ctx, None, None);
});
