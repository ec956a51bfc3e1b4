//! Hostile messages beside normal mail (issue 20's acceptance): the encoded-word Subject, 1 MiB
//! of `<`, the 2,001-member zip with a program and the 1 MB header line are sent at once, each
//! on its own session, while normal messages go through another; prints how long each hostile
//! message took to be answered and the normal messages' answer times (goal: under a second).
//!
//! Run: `cargo build --release --bins && cargo run --release -p jianmen-benches --bin hostile`
//! (`BENCH_ROUNDS` sets how many times the four are sent; default 3).

use std::time::{Duration, Instant};

use jianmen_testkit::{Client, Gateway, Setup, Sink, hostile, test_message};

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let sink = Sink::start_in_memory(&[]);
    let gw = Gateway::start(&Setup::new(sink.port, sink.port).scanning(&[]));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("Machine: {cores} cores; scan budget: the default (5 s)\n");
    let mut normal_times = Vec::new();
    for round in 0..rounds {
        let addr = gw.addr;
        let hostile: Vec<_> = [
            ("encoded-word Subject", hostile::encoded_word_subject()),
            ("1 MiB of <", hostile::html_of_open_brackets()),
            (
                "2,001-member zip",
                hostile::zip_with_a_program_behind_2000_members(),
            ),
            ("1 MB header line", hostile::megabyte_header_line()),
        ]
        .into_iter()
        .map(|(what, m)| {
            std::thread::spawn(move || {
                let mut c = Client::ready(addr);
                let t = Instant::now();
                let r = c.send_mail("a@outside.test", &["user@example.com"], &m);
                (what, t.elapsed(), r.text)
            })
        })
        .collect();
        // Normal mail, one after another, while the hostile ones are in flight.
        let mut c = Client::ready(addr);
        for i in 0..5 {
            let m = test_message(&format!("normal{round}x{i}"), 20);
            let t = Instant::now();
            let r = c.send_mail("lina@partner.test", &["user@example.com"], &m);
            assert_eq!(r.code, 250, "{}", r.text);
            normal_times.push(t.elapsed());
        }
        for h in hostile {
            let (what, took, answer) = h.join().expect("sender thread");
            let first = answer.lines().next().unwrap_or_default();
            println!(
                "round {round}: {what:<22} answered in {:>7.1} ms: {first}",
                ms(took)
            );
        }
    }
    normal_times.sort();
    let worst = normal_times.last().copied().unwrap_or_default();
    println!(
        "\nnormal messages beside them: {} sent, median {:.1} ms, worst {:.1} ms (goal: < 1000 ms){}",
        normal_times.len(),
        ms(normal_times[normal_times.len() / 2]),
        ms(worst),
        if worst < Duration::from_secs(1) {
            ""
        } else {
            "  NOT MET"
        }
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
