//! Sending behaviour of internal accounts: what a stolen password looks like from the gateway.
//! Each account that sends outbound or internal mail has a [`Profile`] of robust running
//! statistics — messages per active hour, share of never-contacted recipients, the client
//! networks it sends from, the hours of the week it works — updated in constant time per message.
//! [`Profile::observe`] scores each message against the account's own baseline (a new account
//! starts from a prior of ordinary office mail) and explains the score in words an administrator
//! reads: "480 messages in 1 h (usual 12); 92% to recipients never contacted; from 203.0.113.0/24
//! (new)". Nothing here stores or acts: the gateway keeps the profiles and decides the
//! containment.

use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::reputation::network_of;

/// Recipients remembered per account (the oldest are forgotten first).
const MAX_CONTACTS: usize = 4096;
/// Client networks remembered per account.
const MAX_NETWORKS: usize = 16;
/// Weight of the newest active hour in the hourly-volume statistics (a half-life of ~35 hours).
const HOUR_ALPHA: f64 = 0.02;
/// Weight of the newest active hour in the new-recipient share.
const SHARE_ALPHA: f64 = 0.05;
/// What is left of the hour-of-week profile after each active hour (a half-life of ~140
/// active hours: a few weeks of office mail).
const WEEK_DECAY: f32 = 0.995;
/// How long a client network counts as new after it first appears.
const NEW_FOR: i64 = 86_400;
/// Messages before an account's own baseline is trusted more than the prior.
const MATURE: u64 = 50;
/// The prior counts as this many active hours: a new account's baselines move towards what it
/// does as a running mean would (the first hour weighs 1/6, the twentieth 1/25) until the
/// exponential weights take over, so a busy account is not judged by the prior for weeks.
const PRIOR_HOURS: f64 = 5.0;
/// Peers with a history of their own needed before a department's baseline replaces the
/// generic prior.
const MIN_PEERS: usize = 3;

/// One message an account sent, as the gateway saw it.
#[derive(Debug, Clone)]
pub struct Sent<'a> {
    /// Unix time.
    pub at: i64,
    /// The client it came from (XFORWARD), when known.
    pub client: Option<IpAddr>,
    /// Its recipients, lower case.
    pub rcpts: &'a [String],
    /// The scanner judged it spam, phishing or malware.
    pub flagged: bool,
}

/// Exponentially weighted mean and variance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ewma {
    /// Mean.
    pub mean: f64,
    /// Variance.
    pub var: f64,
}

impl Ewma {
    fn update(&mut self, x: f64, alpha: f64) {
        let delta = x - self.mean;
        self.mean += alpha * delta;
        self.var = (1.0 - alpha) * (self.var + alpha * delta * delta);
    }

    fn sd(&self) -> f64 {
        self.var.max(0.0).sqrt()
    }
}

/// One deviation a score rests on, as data: the console words it in its reader's language;
/// `Display` gives the English for logs and mail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// More messages in the hour than usual.
    Volume {
        /// Messages this hour.
        messages: u32,
        /// The usual active hour's.
        usual: u32,
    },
    /// Recipients the account never wrote to.
    NewRecipients {
        /// Their share of this hour's recipients, in percent.
        percent: u32,
        /// This hour's recipients.
        rcpts: u32,
        /// The usual share, in percent.
        usual_percent: u32,
    },
    /// The account's mail the scanner judged spam or phishing.
    Flagged {
        /// Such messages this hour.
        flagged: u32,
        /// All its messages this hour.
        messages: u32,
    },
    /// A client network the account had not sent from.
    NewNetwork {
        /// The network (/24 or /64).
        network: String,
    },
    /// An hour of the week the account never sends in.
    OddHour,
    /// Messages tried after the throttle's allowance ran out.
    PastThrottle {
        /// Attempts refused.
        tried: u32,
        /// The allowance per hour.
        per_hour: u32,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Volume { messages, usual } => {
                write!(f, "{messages} messages in 1 h (usual {usual})")
            }
            Reason::NewRecipients {
                percent,
                rcpts,
                usual_percent,
            } => write!(
                f,
                "{percent}% of {rcpts} recipients in 1 h never contacted (usual {usual_percent}%)"
            ),
            Reason::Flagged { flagged, messages } => write!(
                f,
                "{flagged} of {messages} messages in 1 h judged spam or phishing"
            ),
            Reason::NewNetwork { network } => write!(f, "from {network} (new)"),
            Reason::OddHour => f.write_str("at an hour it never sends"),
            Reason::PastThrottle { tried, per_hour } => write!(
                f,
                "{tried} more messages tried past the throttle ({per_hour} an hour)"
            ),
        }
    }
}

/// What one message's score rests on.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// 0 for ordinary behaviour; 1 and above is worth an alert, 2 and above containment.
    pub score: f64,
    /// The deviations, strongest first.
    pub reasons: Vec<Reason>,
}

/// An account's sending behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    /// Messages seen in all.
    pub messages: u64,
    /// Messages per active hour.
    pub per_hour: Ewma,
    /// Share of a message's recipients the account never wrote to before.
    pub new_share: Ewma,
    /// The hour (Unix time / 3600) now being counted, its messages, recipients and new ones.
    hour: i64,
    in_hour: u32,
    rcpts_in_hour: u32,
    new_in_hour: u32,
    #[serde(default)]
    flagged_in_hour: u32,
    /// Active hours folded into the baselines.
    #[serde(default)]
    hours: u64,
    /// Messages per hour of the week (Monday 00h UTC first), decayed; the hour being counted
    /// joins it when it ends.
    week: Vec<f32>,
    /// Hashes of recipients written to, oldest first.
    contacts: VecDeque<u64>,
    /// `contacts` as a set, rebuilt after loading.
    #[serde(skip)]
    contact_set: Option<HashSet<u64>>,
    /// Client networks (/24, /64) sent from, with the first and the last time seen.
    networks: Vec<(IpAddr, i64, i64)>,
}

impl Default for Profile {
    /// A new account: the prior of ordinary office mail (a handful of messages in an active
    /// hour, a third of recipients new).
    fn default() -> Self {
        Self {
            messages: 0,
            per_hour: Ewma {
                mean: 4.0,
                var: 16.0,
            },
            new_share: Ewma {
                mean: 0.3,
                var: 0.09,
            },
            hour: 0,
            in_hour: 0,
            rcpts_in_hour: 0,
            new_in_hour: 0,
            flagged_in_hour: 0,
            hours: 0,
            week: vec![0.0; 168],
            contacts: VecDeque::new(),
            contact_set: None,
            networks: Vec::new(),
        }
    }
}

/// Stable across builds, so contacts stored by one version are known to the next.
fn hash_of(rcpt: &str) -> u64 {
    super::fnv::fnv1a(rcpt.bytes())
}

/// Hour of the week (0 = Monday 00:00–01:00 UTC) of Unix time `at`.
fn hour_of_week(at: i64) -> usize {
    // 1970-01-01 was a Thursday: three days after a Monday.
    ((at.div_euclid(3600) + 72).rem_euclid(168)) as usize
}

impl Profile {
    fn knows(&mut self, h: u64) -> bool {
        let contacts = &self.contacts;
        self.contact_set
            .get_or_insert_with(|| contacts.iter().copied().collect())
            .contains(&h)
    }

    fn remember(&mut self, h: u64) {
        if self.knows(h) {
            return;
        }
        if self.contacts.len() >= MAX_CONTACTS
            && let Some(old) = self.contacts.pop_front()
            && let Some(set) = &mut self.contact_set
        {
            set.remove(&old);
        }
        self.contacts.push_back(h);
        if let Some(set) = &mut self.contact_set {
            set.insert(h);
        }
    }

    /// A new account's profile that starts from its department's usual behaviour — the median
    /// active-hour volume and new-recipient share of its peers that have a history — instead
    /// of the generic prior; the generic prior when fewer than three peers have one. A new
    /// salesperson is then not judged by a clerk's volume, nor a new clerk by a salesperson's.
    pub fn from_peers<'a>(peers: impl IntoIterator<Item = &'a Profile>) -> Profile {
        let mature: Vec<&Profile> = peers.into_iter().filter(|p| p.maturity() >= 1.0).collect();
        let mut profile = Profile::default();
        if mature.len() < MIN_PEERS {
            return profile;
        }
        let median = |of: &dyn Fn(&Profile) -> f64| {
            let mut values: Vec<f64> = mature.iter().map(|p| of(p)).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        profile.per_hour = Ewma {
            mean: median(&|p| p.per_hour.mean),
            var: median(&|p| p.per_hour.var),
        };
        profile.new_share = Ewma {
            mean: median(&|p| p.new_share.mean),
            var: median(&|p| p.new_share.var),
        };
        profile
    }

    /// How much the account's own history counts against the prior, 0 to 1.
    fn maturity(&self) -> f64 {
        (self.messages as f64 / MATURE as f64).min(1.0)
    }

    /// Folds the hour being counted into the baselines with weight `alpha` and starts the next.
    fn close_hour(&mut self, next: i64, alpha: f64) {
        if self.in_hour > 0 {
            let warm = 1.0 / (self.hours as f64 + 1.0 + PRIOR_HOURS);
            self.hours += 1;
            self.per_hour
                .update(f64::from(self.in_hour), alpha.max(warm));
            let share = f64::from(self.new_in_hour) / f64::from(self.rcpts_in_hour.max(1));
            self.new_share
                .update(share, (alpha * SHARE_ALPHA / HOUR_ALPHA).max(warm));
            for w in &mut self.week {
                *w *= WEEK_DECAY;
            }
            self.week[hour_of_week(self.hour * 3600)] += self.in_hour as f32;
        }
        self.hour = next;
        self.in_hour = 0;
        self.rcpts_in_hour = 0;
        self.new_in_hour = 0;
        self.flagged_in_hour = 0;
    }

    /// An administrator found the account's latest behaviour legitimate (a mailing it was
    /// asked to send): the hour so far joins the baselines at once and with more weight than
    /// an ordinary hour, so the same volume does not alarm again.
    pub fn forgive(&mut self) {
        let hour = self.hour;
        self.close_hour(hour, 0.3);
    }

    /// Takes one message into the profile and scores it against what the profile knew before.
    pub fn observe(&mut self, sent: &Sent<'_>) -> Assessment {
        let hour = sent.at.div_euclid(3600);
        if hour != self.hour {
            // The hour just ended joins the baselines; the one being counted is judged
            // against them, so a burst cannot make itself look usual.
            self.close_hour(hour, HOUR_ALPHA);
        }
        let mut new = 0u32;
        for r in sent.rcpts {
            let h = hash_of(r);
            if !self.knows(h) {
                new += 1;
            }
            self.remember(h);
        }
        self.in_hour = self.in_hour.saturating_add(1);
        self.rcpts_in_hour = self
            .rcpts_in_hour
            .saturating_add(sent.rcpts.len().max(1) as u32);
        self.new_in_hour = self.new_in_hour.saturating_add(new);
        self.flagged_in_hour = self.flagged_in_hour.saturating_add(u32::from(sent.flagged));
        let hour_share = f64::from(self.new_in_hour) / f64::from(self.rcpts_in_hour);
        // What the account does (volume, recipients) weighs; the circumstances (network,
        // hour) only strengthen it.
        let mut conduct: Vec<(f64, Reason)> = Vec::new();
        let mut circumstances: Vec<(f64, Reason)> = Vec::new();

        // Volume: this hour's messages against the usual active hour. The spread has a floor
        // (Poisson-like) so a very regular account is not alarmed by a few more messages; a
        // burst to people it writes to anyway (a newsletter, month-end reports) weighs less.
        let usual = self.per_hour.mean.max(1.0);
        let spread = self.per_hour.sd().max(usual.sqrt()).max(2.0);
        // An hour of the week the account has (almost) never sent in: volume there is less
        // likely a planned mailing.
        let mature = self.maturity();
        let slot = hour_of_week(sent.at);
        let total: f32 = self.week.iter().sum();
        let odd_hour = mature >= 1.0 && total > 0.0 && self.week[slot] / total < 0.002;
        let known_weight = if odd_hour { 0.6 } else { 0.3 };
        let excess = (f64::from(self.in_hour) - usual - 4.0 * spread) / (usual + 4.0 * spread);
        if excess > 0.0 {
            conduct.push((
                excess.min(3.0) * (known_weight + (1.0 - known_weight) * hour_share),
                Reason::Volume {
                    messages: self.in_hour,
                    usual: usual.round() as u32,
                },
            ));
        }
        // Recipients never written to, over the hour, when there are enough of them to judge.
        if self.rcpts_in_hour >= 10 {
            let usual_share = self.new_share.mean.clamp(0.05, 0.95);
            let unusual = (hour_share - usual_share) / (1.0 - usual_share);
            let weight = (f64::from(self.rcpts_in_hour) / 50.0).min(1.0);
            if unusual > 0.3 && hour_share > 0.6 {
                conduct.push((
                    unusual * weight,
                    Reason::NewRecipients {
                        percent: (hour_share * 100.0).round() as u32,
                        rcpts: self.rcpts_in_hour,
                        usual_percent: (usual_share * 100.0).round() as u32,
                    },
                ));
            }
        }
        // The account's own mail judged spam or phishing: a few such messages in an hour are
        // what a hijacked account sends, whatever its volume.
        if self.flagged_in_hour >= 2 {
            let share = f64::from(self.flagged_in_hour) / f64::from(self.in_hour);
            conduct.push((
                share * (f64::from(self.flagged_in_hour) / 5.0).min(1.0) * 1.5,
                Reason::Flagged {
                    flagged: self.flagged_in_hour,
                    messages: self.in_hour,
                },
            ));
        }
        // A client network never seen, once the account has a history of its own.
        // A network stays new for a day after it first appears.
        if let Some(ip) = sent.client {
            let net = network_of(ip);
            let known_before = self
                .networks
                .iter()
                .any(|(_, first, _)| *first < sent.at - NEW_FOR);
            let first = match self.networks.iter_mut().find(|(n, _, _)| *n == net) {
                Some(seen) => {
                    seen.2 = sent.at;
                    seen.1
                }
                None => {
                    if self.networks.len() >= MAX_NETWORKS
                        && let Some(oldest) = self
                            .networks
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, (_, _, last))| *last)
                            .map(|(i, _)| i)
                    {
                        self.networks.swap_remove(oldest);
                    }
                    self.networks.push((net, sent.at, sent.at));
                    sent.at
                }
            };
            if mature >= 1.0 && known_before && first > sent.at - NEW_FOR {
                circumstances.push((
                    0.5,
                    Reason::NewNetwork {
                        network: net.to_string(),
                    },
                ));
            }
        }
        if odd_hour {
            circumstances.push((0.3, Reason::OddHour));
        }
        self.messages += 1;

        // Unusual circumstances alone (a trip, a late evening) are no alarm.
        let acted: f64 = conduct.iter().map(|(w, _)| w).sum();
        let score = if acted > 0.3 {
            acted + circumstances.iter().map(|(w, _)| w).sum::<f64>()
        } else {
            0.0
        };
        let mut reasons = conduct;
        reasons.append(&mut circumstances);
        reasons.sort_by(|a, b| b.0.total_cmp(&a.0));
        Assessment {
            score,
            reasons: reasons.into_iter().map(|(_, r)| r).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(reasons: &[Reason]) -> String {
        reasons
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn rcpts(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// Monday 2026-11-30 09:00 UTC.
    const MONDAY_9: i64 = 1_796_029_200;

    fn office_week(p: &mut Profile, weeks: i64) {
        let colleagues: Vec<String> = (0..30).map(|i| format!("c{i}@corp.test")).collect();
        for w in 0..weeks {
            for day in 0..5 {
                for hour in 0..8 {
                    for m in 0..3 {
                        let at = MONDAY_9 + (w * 7 + day) * 86_400 + hour * 3600 + m * 600;
                        let to = [colleagues[((day * 8 + hour + m) % 30) as usize].clone()];
                        let a = p.observe(&Sent {
                            at,
                            client: Some("10.1.2.3".parse().unwrap()),
                            rcpts: &to,
                            flagged: false,
                        });
                        assert!(a.score < 1.0, "ordinary mail scored {a:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_burst_to_strangers_from_a_new_network_is_scored_and_explained() {
        let mut p = Profile::default();
        office_week(&mut p, 4);
        let start = MONDAY_9 + 28 * 86_400 + 14 * 3600;
        let mut first_alarm = None;
        for i in 0..100 {
            let to = rcpts(&[&format!("victim{i}@outside.test")]);
            let a = p.observe(&Sent {
                at: start + i * 10,
                client: Some("203.0.113.7".parse().unwrap()),
                rcpts: &to,
                flagged: false,
            });
            if a.score >= 2.0 && first_alarm.is_none() {
                first_alarm = Some((i, a));
            }
        }
        let (at, a) = first_alarm.expect("the burst is found");
        assert!(at < 30, "after {at} messages");
        let text = words(&a.reasons);
        assert!(text.contains("messages in 1 h (usual 3)"), "{text}");
        assert!(text.contains("never contacted"), "{text}");
        assert!(text.contains("203.0.113.0 (new)"), "{text}");
    }

    #[test]
    fn a_trip_alone_is_no_alarm_and_profiles_survive_serialisation() {
        let mut p = Profile::default();
        office_week(&mut p, 2);
        let json = serde_json::to_string(&p).unwrap();
        let mut back: Profile = serde_json::from_str(&json).unwrap();
        let to = rcpts(&["c1@corp.test"]);
        let a = back.observe(&Sent {
            at: MONDAY_9 + 14 * 86_400,
            client: Some("198.51.100.9".parse().unwrap()),
            rcpts: &to,
            flagged: false,
        });
        assert_eq!(a.score, 0.0, "{a:?}");
        assert!(words(&a.reasons).contains("(new)"), "{a:?}");
        assert!(back.knows(hash_of("c29@corp.test")), "contacts came back");
    }

    fn burst(p: &mut Profile, start: i64, n: i64, tag: &str) -> f64 {
        let mut worst: f64 = 0.0;
        for i in 0..n {
            let to = rcpts(&[&format!("{tag}{i}@outside.test")]);
            let a = p.observe(&Sent {
                at: start + i * 10,
                client: Some("10.1.2.3".parse().unwrap()),
                rcpts: &to,
                flagged: false,
            });
            worst = worst.max(a.score);
        }
        worst
    }

    #[test]
    fn mail_the_scanner_flags_counts_against_the_account() {
        let mut p = Profile::default();
        office_week(&mut p, 2);
        let start = MONDAY_9 + 14 * 86_400 + 3600;
        let mut last = None;
        for (i, flagged) in [false, true, true, true, true, true]
            .into_iter()
            .enumerate()
        {
            let to = rcpts(&[&format!("c{i}@corp.test")]);
            last = Some(p.observe(&Sent {
                at: start + i as i64 * 60,
                client: Some("10.1.2.3".parse().unwrap()),
                rcpts: &to,
                flagged,
            }));
        }
        let a = last.unwrap();
        assert!(a.score >= 1.0, "{a:?}");
        assert_eq!(
            a.reasons[0].to_string(),
            "5 of 6 messages in 1 h judged spam or phishing"
        );
        let json = serde_json::to_string(&a.reasons[0]).unwrap();
        assert_eq!(json, r#"{"kind":"flagged","flagged":5,"messages":6}"#);
    }

    #[test]
    fn a_forgiven_burst_alarms_less_the_next_time() {
        let mut p = Profile::default();
        office_week(&mut p, 4);
        let start = MONDAY_9 + 28 * 86_400 + 14 * 3600;
        let first = burst(&mut p, start, 60, "a");
        assert!(first >= 2.0, "{first}");
        p.forgive();
        let second = burst(&mut p, start + 3600, 60, "b");
        assert!(second < first, "{second} after forgiving, {first} before");
    }

    #[test]
    fn a_new_account_starts_from_its_departments_baseline() {
        // A sales department: 20 messages an active hour, mostly to new people.
        let mut sales = Vec::new();
        for s in 0..5 {
            let mut p = Profile::default();
            for hour in 0..120 {
                burst(&mut p, MONDAY_9 + hour * 3600, 20, &format!("s{s}h{hour}-"));
            }
            sales.push(p);
        }
        assert!(
            Profile::from_peers(&sales[..2]).per_hour.mean < 5.0,
            "too few peers"
        );
        let prior = Profile::from_peers(&sales);
        assert!(prior.per_hour.mean > 15.0, "{:?}", prior.per_hour);
        // A new salesperson's first busy hour alarms under the generic prior only.
        let start = MONDAY_9 + 200 * 3600;
        let generic = burst(&mut Profile::default(), start, 30, "new-");
        let departmental = burst(&mut prior.clone(), start, 30, "new-");
        assert!(generic >= 1.0, "{generic}");
        assert!(departmental < 1.0, "{departmental}");
    }

    #[test]
    fn contacts_are_bounded() {
        let mut p = Profile::default();
        for i in 0..(MAX_CONTACTS + 100) {
            let to = [format!("r{i}@x.test")];
            p.observe(&Sent {
                at: MONDAY_9 + i as i64,
                client: None,
                rcpts: &to,
                flagged: false,
            });
        }
        assert_eq!(p.contacts.len(), MAX_CONTACTS);
        assert!(!p.knows(hash_of("r0@x.test")));
        assert!(p.knows(hash_of(&format!("r{}@x.test", MAX_CONTACTS + 99))));
    }

    #[test]
    fn hours_of_the_week_start_on_monday() {
        assert_eq!(hour_of_week(MONDAY_9), 9);
        assert_eq!(hour_of_week(MONDAY_9 + 6 * 86_400), 6 * 24 + 9);
    }
}
