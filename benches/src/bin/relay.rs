//! The secure relay's two figures, on loopback with real peers.
//!
//! 1. **Delivery rate through 3 channels vs 1**: a destination (`smtp-sink -w 1`) that takes a
//!    second to answer each DATA — as a remote server that slows down senders does — with the
//!    gateway's usual cap of concurrent connections per destination *and per egress address*
//!    (`concurrency_per_destination = 5`). One channel gets 5 transactions at a time; three
//!    channels (127.0.0.2–4) get 5 each.
//! 2. **The extra delay a listing causes**: a destination Postfix refusing block-listed clients
//!    (`reject_rbl_client` on a dnsmasq zone); the first-choice channel is listed while mail
//!    flows. Per message, the gateway's own `delivery_ms` (the whole attempt, every channel it
//!    tried) before the listing, while the first choice is refused (before the watch takes it
//!    out), and after.
//!
//! Needs root (Postfix runs in a mount namespace of its own with dnsmasq as its resolver).
//! Run: `cargo build --release --bins && cargo run --release -p jianmen-benches --bin relay`
//! (`BENCH_MESSAGES` sets the messages of the first part, 60 by default).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use jianmen_testkit::{
    BlockListDns, Dns, Gateway, Postfix, Setup, Sink, free_port, send_out, wait_until,
};

const INSIDE: &str = "127.0.0.9";

fn send(gw: &Gateway, token: &str) {
    send_out(gw, INSIDE, token, 20);
}

fn gateway(dns: &Dns, mx_port: u16, elsewhere: &Sink, relay: &str, delivery: &[&str]) -> Gateway {
    let mut setup = Setup::sending_out(elsewhere.port, INSIDE, dns, mx_port).section(relay);
    for line in delivery {
        setup = setup.delivery(line);
    }
    Gateway::start(&setup)
}

/// Messages per second through `channels` source addresses to a destination taking a second
/// per DATA.
fn rate(channels: &[&str], messages: usize) -> f64 {
    let slow = Sink::start_in_memory(&["-w", "1"]);
    let elsewhere = Sink::start_in_memory(&[]);
    let dns = Dns::far_test(SocketAddr::from(([127, 0, 0, 1], free_port())), &[]);
    let relay: String = std::iter::once("[relay]\n".to_owned())
        .chain(
            channels
                .iter()
                .enumerate()
                .map(|(i, ip)| format!("[[relay.channel]]\nname = \"c{i}\"\nsource = \"{ip}\"\n")),
        )
        .collect();
    let gw = gateway(
        &dns,
        slow.port,
        &elsewhere,
        &relay,
        &["concurrency_per_destination = 5", "max_concurrency = 100"],
    );
    let started = Instant::now();
    for i in 0..messages {
        send(&gw, &format!("r{i}"));
    }
    assert!(
        wait_until(Duration::from_secs(600), || slow.messages().len()
            >= messages),
        "not everything arrived"
    );
    let took = started.elapsed().as_secs_f64();
    let mut by_channel = std::collections::BTreeMap::<String, usize>::new();
    for m in slow.messages() {
        *by_channel.entry(m.client_addr).or_default() += 1;
    }
    println!(
        "{} channel(s): messages by egress address {by_channel:?}",
        channels.len()
    );
    messages as f64 / took
}

/// `delivery_ms` of each delivery attempt in the gateway's log since `from` lines.
fn attempts_ms(log: &str, from: usize) -> Vec<u64> {
    log.lines()
        .skip(from)
        .filter(|l| l.contains("delivery attempt") && l.contains("far.test=Delivered"))
        .filter_map(|l| {
            l.split("delivery_ms=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn main() {
    let messages: usize = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let one = rate(&["127.0.0.2"], messages);
    let three = rate(&["127.0.0.2", "127.0.0.3", "127.0.0.4"], messages);
    println!(
        "| channels | msgs/s to a destination answering DATA after 1 s, 5 connections per egress address |"
    );
    println!("|---|---:|");
    println!("| 1 | {one:.1} |");
    println!("| 3 | {three:.1} ({:.1}×) |", three / one);

    // The listing.
    let internet = Sink::start_in_memory(&[]);
    let elsewhere = Sink::start_in_memory(&[]);
    let lists = BlockListDns::start();
    let dns = &lists.dns;
    let destination = Postfix::start_resolving(
        SocketAddr::from(([127, 0, 0, 1], internet.port)),
        "127.0.0.1",
        &[
            "smtpd_client_restrictions = reject_rbl_client bl.test",
            "smtpd_relay_restrictions = permit_mynetworks, reject",
            "max_use = 1",
        ],
        dns.ip,
    );
    let gw = gateway(
        dns,
        destination.port,
        &elsewhere,
        "[relay]\ndnsbl = [{ zone = \"bl.test\" }]\ncheck_secs = 600\npassive_domains = 0\n\
         [[relay.channel]]\nname = \"a\"\nsource = \"127.0.0.2\"\nweight = 10\n\
         [[relay.channel]]\nname = \"b\"\nsource = \"127.0.0.3\"\n",
        &["connection_idle_secs = 0"],
    );
    let phase = |label: &str, first: usize, n: usize| {
        let from = gw.log().lines().count();
        for i in first..first + n {
            // One at a time, so that each attempt is timed alone.
            send(&gw, &format!("l{i}"));
            assert!(wait_until(Duration::from_secs(30), || internet
                .messages()
                .len()
                > i));
        }
        let ms = attempts_ms(&gw.log(), from);
        println!("| {label} | {} | {} |", ms.len(), median(ms));
    };
    println!();
    println!("| first-choice channel | attempts | median delivery_ms |");
    println!("|---|---:|---:|");
    phase("clean", 0, 20);
    lists.list(&["127.0.0.2".parse().expect("address")]);
    // The first refusal makes the watch look at the list at once: the listing may end this
    // phase early, so only its first message is sure to meet the refusal.
    let from = gw.log().lines().count();
    let listed_at = Instant::now();
    send(&gw, "l20");
    assert!(wait_until(Duration::from_secs(30), || internet
        .messages()
        .len()
        > 20));
    let refused = attempts_ms(&gw.log(), from);
    println!(
        "| listed, refused, passed to the next channel | {} | {} |",
        refused.len(),
        median(refused)
    );
    assert!(wait_until(Duration::from_secs(30), || gw
        .metrics()
        .contains(
            "jianmen_channel_state{channel=\"a\",state=\"listed\"} 1"
        )));
    let out_after = listed_at.elapsed();
    phase("listed, out of rotation (the watch took it out)", 21, 20);
    println!();
    println!(
        "the watch took the listed channel out {:.2} s after the first refusal (check_secs = 600: \
         the refusal made it look at once)",
        out_after.as_secs_f64()
    );
}
