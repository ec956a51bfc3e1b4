//! SMTP throughput benchmark: Postfix `smtp-source` → `smtp-sink` directly, and the same load
//! through Jianmen (pass-through scanner, fsync durability on, spool on the real disk), in one
//! run. The sinks dump into RAM so that their own file churn does not dominate either path. Prints msgs/s for
//! both and their ratio, per-transaction latency p50/p99 measured by our own client, the
//! gateway's peak RSS, and its RSS with 1,000 idle sessions open.
//!
//! Run: `cargo build --release --bins && cargo run --release -p jianmen-benches --bin smtp_throughput`
//! (`BENCH_MESSAGES`, `BENCH_SESSIONS`, `BENCH_SIZE` override the load).

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use jianmen_testkit::{Client, Gateway, Setup, Sink, smtp_source, test_message, wait_until};

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

fn main() {
    let messages = env_or("BENCH_MESSAGES", 5000);
    let sessions = env_or("BENCH_SESSIONS", 20);
    let size = env_or("BENCH_SIZE", 4096);
    println!("smtp_throughput: {messages} messages, {sessions} sessions, {size}-byte bodies");
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

    // Direct: smtp-source → smtp-sink, measured before and after the gateway run; the ratio is
    // taken against the faster of the two (this machine's disk and CPU vary from run to run).
    let direct_run = || {
        let sink = Sink::start_in_memory(&[]);
        let took = smtp_source(
            &format!("127.0.0.1:{}", sink.port),
            messages,
            sessions,
            size,
        );
        assert!(wait_until(Duration::from_secs(60), || sink
            .messages()
            .len()
            >= messages));
        (messages as f64 / took.as_secs_f64(), sink)
    };
    let (direct_before, direct_sink) = direct_run();

    // Through the gateway.
    let sink = Sink::start_in_memory(&[]);
    let setup = Setup::new(sink.port, sink.port)
        .smtp("max_sessions_per_ip = 2000")
        .smtp("max_sessions = 2000")
        .delivery("concurrency_per_destination = 20");
    let gw = Gateway::start(&setup);
    let pid = gw.pid().expect("gateway pid");
    let cpu_before = cpu_time(pid);
    let started = Instant::now();
    let accept = smtp_source(&gw.addr.to_string(), messages, sessions, size);
    assert!(
        wait_until(Duration::from_secs(600), || sink.messages().len()
            >= messages),
        "gateway did not deliver everything"
    );
    let end_to_end = started.elapsed();
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    let accept_rate = messages as f64 / accept.as_secs_f64();
    let e2e_rate = messages as f64 / end_to_end.as_secs_f64();

    let per_session = (messages / sessions / 5).max(20);
    let lat_gw = latencies(gw.addr, sessions, per_session);
    let lat_direct = latencies(
        SocketAddr::from(([127, 0, 0, 1], direct_sink.port)),
        sessions,
        per_session,
    );
    let peak_rss = status_mib(pid, "VmHWM:");
    let (direct_after, _) = direct_run();
    let direct_rate = direct_before.max(direct_after);

    // 1,000 idle sessions.
    let before = status_mib(pid, "VmRSS:");
    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let s = TcpStream::connect(gw.addr).expect("connect");
        idle.push(s);
    }
    std::thread::sleep(Duration::from_secs(2));
    let with_idle = status_mib(pid, "VmRSS:");
    drop(idle);

    println!();
    println!("| path | msgs/s | vs direct |");
    println!("|---|---:|---:|");
    println!(
        "| smtp-source → smtp-sink (direct; best of {direct_before:.0} before and {direct_after:.0} after) | {direct_rate:.0} | 100% |"
    );
    println!(
        "| smtp-source → jianmen, accepted (250 after fsync) | {accept_rate:.0} | {:.0}% |",
        100.0 * accept_rate / direct_rate
    );
    println!(
        "| smtp-source → jianmen → smtp-sink, end to end | {e2e_rate:.0} | {:.0}% |",
        100.0 * e2e_rate / direct_rate
    );
    println!();
    println!(
        "latency per transaction, {} samples: jianmen p50 {:.2} ms p99 {:.2} ms; direct p50 {:.2} ms p99 {:.2} ms",
        lat_gw.len(),
        percentile(&lat_gw, 0.5),
        percentile(&lat_gw, 0.99),
        percentile(&lat_direct, 0.5),
        percentile(&lat_direct, 0.99)
    );
    println!(
        "gateway CPU: {:.3} CPU-ms per message received and delivered",
        cpu.as_secs_f64() * 1000.0 / messages as f64
    );
    println!("gateway peak RSS under load: {peak_rss:.1} MiB");
    println!(
        "gateway RSS: {before:.1} MiB idle, {with_idle:.1} MiB with 1000 idle SMTP sessions open"
    );
}
