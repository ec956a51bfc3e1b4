//! The sending-behaviour model on simulated traffic: no public data holds per-account sending
//! logs, so a deterministic simulator drives the real scoring code
//! (`jianmen_scan::behaviour::Profile`) with a fake clock. 300 accounts in 10 departments send
//! office mail on working hours (Monday–Friday 09–18 UTC, lighter some hours, none others), to
//! their own contacts mostly; a few send a weekly newsletter burst to their list; people travel
//! (a day from a new network); some stay late. After 8 weeks, 12 accounts are compromised in
//! three ways: a bulk spam burst to strangers, slow phishing to colleagues never written to, and
//! a reply-chain hijack to the account's own contacts — each from the attacker's network.
//! Beside them, a sales department that sends far more and mostly to people it never wrote to
//! starts cold like the rest, and six accounts join it in week 6: each is run twice on the same
//! traffic, once started from the department's baseline (`Profile::from_peers`), once from the
//! generic prior.
//!
//! Prints, per kind of compromise, the messages sent before the first alert (score ≥ 1); at
//! several thresholds the false alarms on ordinary traffic per 1,000 account-days beside the
//! compromises detected and the median messages to detection (the curve of detection against
//! false alarms; an attack goes on until every threshold fired); the sales department's false
//! alarms; the scoring cost; and as its last line (over the 300 office accounts):
//! `detected X/Y compromised accounts, median N messages to detection, false alarms F per 1,000
//! account-days`.
//!
//! Usage: `cargo run --release -p jianmen-benches --bin behaviour`.

use std::time::Instant;

use jianmen_scan::behaviour::{Assessment, Profile, Sent};

/// Monday 2026-01-05 00:00 UTC.
const START: i64 = 1_767_571_200;
const ACCOUNTS: usize = 300;
const DEPARTMENTS: usize = 10;
const WEEKS: i64 = 10;
/// When the compromises begin: the start of week 9.
const COMPROMISE_AT: i64 = START + 8 * 7 * 86_400;
/// The alert threshold the last line reports.
const ALERT: f64 = 1.0;
/// Accounts of the sales department from the start, and those joining it.
const SALES: usize = 12;
const JOINERS: usize = 6;
/// When they join: the start of week 6.
const JOIN_DAY: i64 = 5 * 7;

/// xorshift64*: deterministic, good enough for traffic.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// Poisson-distributed count with mean `lambda` (Knuth; small means).
    fn poisson(&mut self, lambda: f64) -> u32 {
        let limit = (-lambda).exp();
        let (mut k, mut p) = (0, 1.0);
        loop {
            p *= self.unit();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Attack {
    /// Hundreds of messages an hour to strangers.
    BulkSpam,
    /// A few messages an hour, each to many colleagues never written to.
    ColleaguePhish,
    /// Replies to the account's own contacts, faster than the account ever writes, at night.
    ReplyHijack,
}

struct Account {
    dept: usize,
    /// Messages per active hour.
    rate: f64,
    /// Share of recipients chosen from its contacts (the rest are new).
    familiar: f64,
    /// The day it starts sending.
    joins: i64,
    contacts: Vec<String>,
    newsletter: Option<Vec<String>>,
    late: bool,
    attack: Option<Attack>,
    profile: Profile,
}

fn main() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accounts: Vec<Account> = (0..ACCOUNTS)
        .map(|i| {
            let dept = i % DEPARTMENTS;
            let mut contacts = Vec::with_capacity(50);
            for _ in 0..25 {
                contacts.push(format!("u{}@corp.test", dept * 1000 + rng.below(30)));
                contacts.push(format!("p{}@partner{dept}.test", rng.below(40)));
            }
            Account {
                dept,
                rate: 1.0 + rng.unit() * 5.0,
                familiar: 0.85,
                joins: 0,
                contacts,
                newsletter: (i % 33 == 0).then(|| {
                    (0..150)
                        .map(|k| format!("list{k}@members{dept}.test"))
                        .collect()
                }),
                late: i % 7 == 0,
                attack: None,
                profile: Profile::default(),
            }
        })
        .collect();
    for (n, i) in [3usize, 41, 77, 102, 150, 171, 199, 210, 233, 256, 270, 298]
        .iter()
        .enumerate()
    {
        accounts[*i].attack = Some(match n % 3 {
            0 => Attack::BulkSpam,
            1 => Attack::ColleaguePhish,
            _ => Attack::ReplyHijack,
        });
    }

    let thresholds = [0.5, 0.75, 1.0, 1.5, 2.0, 3.0];
    let mut ordinary = Alarms::new(thresholds.len());
    let mut to_detection: Vec<(Attack, Vec<Option<usize>>, usize)> = Vec::new();
    let mut explained: Vec<(Attack, String)> = Vec::new();
    let mut cost = Cost::default();
    for (i, acct) in accounts.iter_mut().enumerate() {
        let run = simulate(acct, i, &mut rng, &thresholds, &mut ordinary, &mut cost);
        if let Some(kind) = acct.attack {
            to_detection.push((kind, run.detection, run.attack_sent));
            if let Some(why) = run.explained
                && !explained.iter().any(|(k, _)| *k == kind)
            {
                explained.push((kind, why));
            }
        }
    }

    // A department that sends far more, mostly to people it never wrote to (sales), from a
    // cold start; then accounts joining it in week 6, started from the department's baseline
    // and — on the same traffic — from the generic prior.
    let mut sales: Vec<Account> = (0..SALES + JOINERS)
        .map(|i| {
            let contacts = (0..50)
                .map(|_| format!("c{}@client{}.test", rng.below(400), rng.below(40)))
                .collect();
            Account {
                dept: DEPARTMENTS,
                rate: 25.0 + rng.unit() * 15.0,
                familiar: 0.3,
                joins: if i < SALES { 0 } else { JOIN_DAY },
                contacts,
                newsletter: None,
                late: false,
                attack: None,
                profile: Profile::default(),
            }
        })
        .collect();
    let mut cold = Alarms::new(thresholds.len());
    for (i, acct) in sales.iter_mut().take(SALES).enumerate() {
        simulate(
            acct,
            ACCOUNTS + i,
            &mut rng,
            &thresholds,
            &mut cold,
            &mut cost,
        );
    }
    let (staff, joiners) = sales.split_at_mut(SALES);
    let mut from_peers = Alarms::new(thresholds.len());
    let mut from_prior = Alarms::new(thresholds.len());
    for (i, acct) in joiners.iter_mut().enumerate() {
        let n = ACCOUNTS + SALES + i;
        let (contacts, mut same_traffic) = (acct.contacts.clone(), rng.clone());
        acct.profile = Profile::from_peers(staff.iter().map(|a| &a.profile));
        simulate(acct, n, &mut rng, &thresholds, &mut from_peers, &mut cost);
        acct.profile = Profile::default();
        acct.contacts = contacts;
        simulate(
            acct,
            n,
            &mut same_traffic,
            &thresholds,
            &mut from_prior,
            &mut cost,
        );
    }

    let alert = thresholds.iter().position(|t| *t == ALERT).unwrap_or(0);
    let contain = thresholds.iter().position(|t| *t == 2.0).unwrap_or(0);
    // Messages to detection at threshold `k`, sorted, and the median.
    let detected = |k: usize| {
        let mut found: Vec<usize> = to_detection.iter().filter_map(|(_, d, _)| d[k]).collect();
        found.sort_unstable();
        let median = found.get(found.len() / 2).copied().unwrap_or(0);
        (found.len(), median)
    };
    for kind in [
        Attack::BulkSpam,
        Attack::ColleaguePhish,
        Attack::ReplyHijack,
    ] {
        let runs: Vec<String> = to_detection
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, d, sent)| match d[alert] {
                Some(n) => n.to_string(),
                None => format!("missed after {sent}"),
            })
            .collect();
        println!("{kind:?}: messages to detection {}", runs.join(", "));
        if let Some((_, why)) = explained.iter().find(|(k, _)| *k == kind) {
            println!("  first alert: {why}");
        }
    }
    println!(
        "detection against false alarms ({} ordinary account-days, {} compromised accounts):",
        ordinary.days,
        to_detection.len()
    );
    for (k, t) in thresholds.iter().enumerate() {
        let (found, median) = detected(k);
        println!(
            "  score >= {t:<4}: {:.2} false alarms per 1,000 account-days, {found} detected, \
             median {median} messages",
            ordinary.rate(k)
        );
    }
    println!(
        "sales department ({SALES} accounts, 25-40 messages an active hour, 70% to new recipients), \
         from a cold start: {:.2} alerts (score >= 1) and {:.2} containments (score >= 2) per \
         1,000 account-days",
        cold.rate(alert),
        cold.rate(contain)
    );
    println!(
        "{JOINERS} accounts joining it in week 6: {:.2} alerts and {:.2} containments per 1,000 \
         account-days from the department's baseline, {:.2} and {:.2} from the generic prior",
        from_peers.rate(alert),
        from_peers.rate(contain),
        from_prior.rate(alert),
        from_prior.rate(contain)
    );
    println!(
        "scoring: {:.2} us per message over {} messages",
        cost.spent.as_secs_f64() * 1e6 / cost.scored.max(1) as f64,
        cost.scored
    );
    let (found, median) = detected(alert);
    println!(
        "detected {found}/{} compromised accounts, median {median} messages to detection, false alarms {:.2} per 1,000 account-days",
        to_detection.len(),
        ordinary.rate(alert)
    );
}

/// False alarms on ordinary traffic: account-days, and those with an alarm at each threshold.
struct Alarms {
    days: usize,
    alarmed: Vec<usize>,
}

impl Alarms {
    fn new(thresholds: usize) -> Self {
        Self {
            days: 0,
            alarmed: vec![0; thresholds],
        }
    }

    /// Alarmed days per 1,000 account-days at threshold `k`.
    fn rate(&self, k: usize) -> f64 {
        self.alarmed[k] as f64 * 1000.0 / self.days.max(1) as f64
    }
}

/// What scoring cost.
#[derive(Default)]
struct Cost {
    scored: usize,
    spent: std::time::Duration,
}

impl Cost {
    fn score(&mut self, profile: &mut Profile, sent: &Sent<'_>) -> Assessment {
        let t = Instant::now();
        let a = profile.observe(sent);
        self.spent += t.elapsed();
        self.scored += 1;
        a
    }
}

/// How a compromised account's attack went.
struct Run {
    /// Attack messages sent when each threshold first fired.
    detection: Vec<Option<usize>>,
    attack_sent: usize,
    /// The first alert's reasons.
    explained: Option<String>,
}

/// Runs account `i` from the day it joins to the end; its ordinary days count in `alarms`.
fn simulate(
    acct: &mut Account,
    i: usize,
    rng: &mut Rng,
    thresholds: &[f64],
    alarms: &mut Alarms,
    cost: &mut Cost,
) -> Run {
    let home: std::net::IpAddr = format!("10.{}.{}.20", acct.dept, i % 200).parse().unwrap();
    let mut detection: Vec<Option<usize>> = vec![None; thresholds.len()];
    let mut attack_sent = 0usize;
    let mut explained = None;
    for day in acct.joins..WEEKS * 7 {
        let midnight = START + day * 86_400;
        let weekday = day % 7 < 5;
        let travelling = rng.unit() < 0.02;
        let client: std::net::IpAddr = if travelling {
            format!("198.51.{}.{}", rng.below(250), rng.below(250))
                .parse()
                .unwrap()
        } else {
            home
        };
        let compromised = acct.attack.is_some() && midnight >= COMPROMISE_AT;
        let mut worst = 0.0f64;
        for hour in 0..24 {
            let working = weekday && (9..18).contains(&hour);
            let evening = acct.late && weekday && (18..22).contains(&hour);
            let lambda = if working {
                acct.rate * if rng.unit() < 0.3 { 0.3 } else { 1.0 }
            } else if evening {
                acct.rate * 0.3
            } else {
                0.0
            };
            let mut messages: Vec<Vec<String>> = Vec::new();
            for _ in 0..rng.poisson(lambda) {
                let mut rcpts = Vec::new();
                for _ in 0..1 + rng.below(3) {
                    if rng.unit() < acct.familiar {
                        rcpts.push(acct.contacts[rng.below(acct.contacts.len())].clone());
                    } else {
                        let new =
                            format!("n{}@somewhere{}.test", rng.next() % 100_000, rng.below(500));
                        acct.contacts.push(new.clone());
                        rcpts.push(new);
                    }
                }
                messages.push(rcpts);
            }
            if let Some(list) = &acct.newsletter
                && day % 7 == 2
                && hour == 10
            {
                messages.extend(list.chunks(1).map(|c| c.to_vec()));
            }
            for (m, rcpts) in messages.iter().enumerate() {
                let at = midnight + hour * 3600 + (m as i64 * 3600) / messages.len() as i64;
                let s = cost.score(
                    &mut acct.profile,
                    &Sent {
                        at,
                        client: Some(client),
                        rcpts,
                        flagged: false,
                    },
                );
                // Ordinary mail of a compromised account is neither a detection nor a false
                // alarm.
                if !compromised {
                    worst = worst.max(s.score);
                }
            }
            // The attacker's mail, from the attacker's network.
            if compromised && let Some(kind) = acct.attack {
                let attacker: std::net::IpAddr = "203.0.113.66".parse().unwrap();
                let (count, night_only) = match kind {
                    Attack::BulkSpam => (400, false),
                    Attack::ColleaguePhish => (4, false),
                    Attack::ReplyHijack => (25, true),
                };
                if night_only && !(1..5).contains(&hour) {
                    continue;
                }
                if kind == Attack::BulkSpam && hour != 3 {
                    continue;
                }
                for m in 0..count {
                    let rcpts: Vec<String> = match kind {
                        Attack::BulkSpam => {
                            vec![format!("t{}@victims.test", rng.next() % 1_000_000)]
                        }
                        Attack::ColleaguePhish => (0..12)
                            .map(|_| format!("u{}@corp.test", rng.below(10_000) + 20_000))
                            .collect(),
                        Attack::ReplyHijack => {
                            vec![acct.contacts[rng.below(acct.contacts.len())].clone()]
                        }
                    };
                    let at = midnight + hour * 3600 + (m as i64 * 3600) / count as i64;
                    let s = cost.score(
                        &mut acct.profile,
                        &Sent {
                            at,
                            client: Some(attacker),
                            rcpts: &rcpts,
                            flagged: false,
                        },
                    );
                    attack_sent += 1;
                    for (k, t) in thresholds.iter().enumerate() {
                        if detection[k].is_none() && s.score >= *t {
                            detection[k] = Some(attack_sent);
                        }
                    }
                    if explained.is_none() && s.score >= ALERT {
                        explained = Some(
                            s.reasons
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join("; "),
                        );
                    }
                }
            }
        }
        if !compromised {
            alarms.days += 1;
            for (k, t) in thresholds.iter().enumerate() {
                if worst >= *t {
                    alarms.alarmed[k] += 1;
                }
            }
        }
        // Attacked until every threshold has fired (or the simulation ends).
        if compromised && detection.iter().all(Option::is_some) {
            break;
        }
    }
    Run {
        detection,
        attack_sent,
        explained,
    }
}
