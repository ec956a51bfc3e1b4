//! SMTP throughput benchmark: Postfix `smtp-source` → `smtp-sink` directly, and the same load
//! through Jianmen (fsync durability on, spool on the real disk) twice: with the pass-through
//! scanner, and with the shipped scanner (content model, 4-gram model, rules, attachment checks,
//! SPF/DKIM/DMARC against a local dnsmasq that answers for the sender's domain). The sinks dump
//! into RAM so that their own file churn does not dominate either path. Each mode runs
//! `BENCH_RUNS` times (3) beside its own direct run; the ratio is the median of the runs. Prints
//! msgs/s, the gateway's CPU per message, per-transaction latency p50/p99 measured by our own
//! client, the gateway's peak RSS, its RSS with 1,000 idle sessions open, and last the lines
//! `pass-through: N% of direct` and `full scanner: N% of direct`.
//!
//! Run: `cargo build --release --bins && cargo run --release -p jianmen-benches --bin smtp_throughput`
//! (`BENCH_MESSAGES`, `BENCH_SESSIONS`, `BENCH_SIZE`, `BENCH_RUNS` override the load;
//! `BENCH_SCANNER=pass-through` or `full` runs one mode only, e.g. under `perf record`).

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use jianmen_testkit::{Client, Dns, Gateway, Setup, Sink, smtp_source, test_message, wait_until};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Per-transaction latencies (MAIL to final 250) from `sessions` parallel clients.
fn latencies(addr: SocketAddr, sessions: usize, per_session: usize) -> Vec<Duration> {
    let handles: Vec<_> = (0..sessions)
        .map(|s| {
            std::thread::spawn(move || {
                let mut c = Client::ready(addr);
                let mut out = Vec::with_capacity(per_session);
                for i in 0..per_session {
                    let msg = test_message(&format!("lat{s}x{i}"), 30);
                    let t = Instant::now();
                    let r = c.send_mail("sender@outside.example", &["user@example.com"], &msg);
                    assert_eq!(r.code, 250, "{}", r.text);
                    out.push(t.elapsed());
                }
                out
            })
        })
        .collect();
    let mut all: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    all
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// CPU time (user + system) a process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// A field of /proc/PID/status in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// The load of every run.
#[derive(Clone, Copy)]
struct Load {
    messages: usize,
    sessions: usize,
    size: usize,
}

/// `smtp-source → smtp-sink`: messages per second.
fn direct(load: Load) -> (f64, Sink) {
    let sink = Sink::start_in_memory(&[]);
    let took = smtp_source(
        &format!("127.0.0.1:{}", sink.port),
        load.messages,
        load.sessions,
        load.size,
    );
    assert!(wait_until(Duration::from_secs(60), || sink
        .messages()
        .len()
        >= load.messages));
    (load.messages as f64 / took.as_secs_f64(), sink)
}

/// What one run through the gateway measured.
struct Run {
    accepted: f64,
    end_to_end: f64,
    cpu_ms: f64,
    latency: Vec<Duration>,
    peak_rss: f64,
}

/// One run through a fresh gateway with `scan` as its `[scan]` lines and `sections` appended;
/// the gateway is handed back for the idle-session measurement.
fn through_gateway(load: Load, scan: &[String], sections: &[String]) -> (Run, Gateway) {
    let sink = Sink::start_in_memory(&[]);
    let mut setup = Setup::new(sink.port, sink.port)
        .smtp("max_sessions_per_ip = 2000")
        .smtp("max_sessions = 2000")
        .delivery("concurrency_per_destination = 20");
    setup.scan = scan.to_vec();
    setup.sections.extend(sections.iter().cloned());
    let gw = Gateway::start(&setup);
    let pid = gw.pid().expect("gateway pid");
    let cpu_before = cpu_time(pid);
    let started = Instant::now();
    let accept = smtp_source(
        &gw.addr.to_string(),
        load.messages,
        load.sessions,
        load.size,
    );
    assert!(
        wait_until(Duration::from_secs(600), || sink.messages().len()
            >= load.messages),
        "gateway did not deliver everything"
    );
    let end_to_end = started.elapsed();
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    let per_session = (load.messages / load.sessions / 5).max(20);
    let run = Run {
        accepted: load.messages as f64 / accept.as_secs_f64(),
        end_to_end: load.messages as f64 / end_to_end.as_secs_f64(),
        cpu_ms: cpu.as_secs_f64() * 1000.0 / load.messages as f64,
        latency: latencies(gw.addr, load.sessions, per_session),
        peak_rss: status_mib(pid, "VmHWM:"),
    };
    (run, gw)
}

/// The gateway's RSS before and with 1,000 idle sessions open.
fn idle_rss(gw: &Gateway) -> (f64, f64) {
    let pid = gw.pid().expect("gateway pid");
    let before = status_mib(pid, "VmRSS:");
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(gw.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let with_idle = status_mib(pid, "VmRSS:");
    drop(idle);
    (before, with_idle)
}

fn main() {
    let load = Load {
        messages: env_or("BENCH_MESSAGES", 5000),
        sessions: env_or("BENCH_SESSIONS", 20),
        size: env_or("BENCH_SIZE", 4096),
    };
    let runs = env_or("BENCH_RUNS", 3).max(1);
    println!(
        "smtp_throughput: {} messages, {} sessions, {}-byte bodies, {runs} runs per mode",
        load.messages, load.sessions, load.size
    );
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_owned())
            )
            .unwrap_or_default()
    );

    // The sender's domain has SPF and DMARC records, so the full scanner's authentication
    // checks run for real (their answers cached by the gateway after the first message).
    let dns = Dns::start(&[
        "--txt-record=outside.example,v=spf1 ip4:127.0.0.0/8 -all".to_owned(),
        "--txt-record=_dmarc.outside.example,v=DMARC1; p=none".to_owned(),
    ]);
    let modes = [
        ("pass-through", vec!["enabled = false".to_owned()], vec![]),
        (
            "full scanner",
            vec!["enabled = true".to_owned()],
            vec![format!("[dns]\nresolver = \"{}:{}\"", dns.ip, dns.port)],
        ),
    ];

    println!();
    println!(
        "| run | scanner | direct msgs/s | accepted msgs/s | vs direct | end to end msgs/s | gateway CPU-ms/msg | MAIL→250 p50 ms | p99 ms | peak RSS MiB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut ratios = [Vec::new(), Vec::new()];
    let mut idle = None;
    let mut direct_sink = None;
    let only = std::env::var("BENCH_SCANNER").unwrap_or_default();
    if !only.is_empty() && !modes.iter().any(|(name, _, _)| name.starts_with(&only)) {
        eprintln!("BENCH_SCANNER={only:?} names no mode: use pass-through or full");
        std::process::exit(2);
    }
    for run in 1..=runs {
        for (m, (name, scan, sections)) in modes.iter().enumerate() {
            if !only.is_empty() && !name.starts_with(&only) {
                continue;
            }
            let (direct_rate, sink) = direct(load);
            let (r, gw) = through_gateway(load, scan, sections);
            let ratio = 100.0 * r.accepted / direct_rate;
            ratios[m].push(ratio);
            println!(
                "| {run} | {name} | {direct_rate:.0} | {:.0} | {ratio:.0}% | {:.0} | {:.3} | {:.2} | {:.2} | {:.1} |",
                r.accepted,
                r.end_to_end,
                r.cpu_ms,
                percentile(&r.latency, 0.5),
                percentile(&r.latency, 0.99),
                r.peak_rss
            );
            if m == 0 && idle.is_none() {
                idle = Some(idle_rss(&gw));
            }
            direct_sink.get_or_insert(sink);
        }
    }
    if let Some(sink) = &direct_sink {
        let per_session = (load.messages / load.sessions / 5).max(20);
        let lat = latencies(
            SocketAddr::from(([127, 0, 0, 1], sink.port)),
            load.sessions,
            per_session,
        );
        println!(
            "\ndirect latency per transaction: p50 {:.2} ms p99 {:.2} ms",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
    }
    if let Some((before, with_idle)) = idle {
        println!(
            "gateway RSS (pass-through): {before:.1} MiB idle, {with_idle:.1} MiB with 1000 idle SMTP sessions open"
        );
    }
    for ((name, _, _), ratios) in modes.iter().zip(ratios) {
        if !ratios.is_empty() {
            println!("{name}: {:.0}% of direct", median(ratios));
        }
    }
}
