use std::sync::Arc;

use super::*;
use crate::queue::manager::unix_now;

fn channel(name: &str, source: &str, reserve: bool) -> ChannelConfig {
    ChannelConfig {
        name: name.into(),
        source: Some(source.parse().unwrap()),
        socks5: None,
        socks5_username: None,
        socks5_password_file: None,
        smarthost: None,
        address: None,
        reserve,
        weight: 1,
        max_connections: 5,
    }
}

fn config() -> RelayConfig {
    RelayConfig {
        channels: vec![
            channel("a", "127.0.0.2", false),
            channel("b", "127.0.0.3", false),
            channel("r", "127.0.0.4", true),
        ],
        dnsbl: vec![jianmen_scan::reputation::ZoneConfig {
            zone: "bl.test".into(),
            symbol: "X".into(),
            score: 1.0,
            codes: Vec::new(),
        }],
        holddown_secs: 100,
        passive_domains: 2,
        down_after: 3,
        down_secs: 50,
        ..RelayConfig::default()
    }
}

async fn relay(config: RelayConfig, store: Option<Arc<SqliteStore>>) -> Arc<Relay> {
    Relay::open(config, store, Arc::new(Metrics::default()))
        .await
        .unwrap()
}

fn states(r: &Relay) -> Vec<(State, bool)> {
    r.board().iter().map(|l| (l.state, l.promoted)).collect()
}

fn names(r: &Relay, ranked: &[usize]) -> Vec<String> {
    ranked
        .iter()
        .map(|&i| r.channels()[i].name().to_owned())
        .collect()
}

const ANSWERED: Report<'static> = Report {
    tried: Tried::Answered,
    delivered: 1,
    deferred: 0,
    latency: 0.1,
    error: None,
};

#[test]
fn block_list_refusals_are_told_from_other_refusals() {
    for listed in [
        "554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using bl.test",
        "550 5.7.1 IP 203.0.113.5 listed in zen.spamhaus.org",
        "550 5.7.1 Unfortunately, messages from [203.0.113.5] weren't sent: part of their network is on our block list (S3150)",
        "554 Your access to this mail system has been rejected due to the sending MTA's poor reputation",
        "421 4.7.0 [TSS04] Messages temporarily deferred, see RBLs",
        "550 rejected by Barracuda",
    ] {
        assert!(names_a_block_list(listed), "{listed}");
    }
    for other in [
        "550 5.1.1 <x@y>: Recipient address rejected: User unknown",
        "550 5.1.1 recipient not listed in our directory",
        "552 5.3.4 message too large",
        "451 4.3.0 try again later",
        "550 5.7.1 message content rejected: marbles",
    ] {
        assert!(!names_a_block_list(other), "{other}");
    }
}

#[test]
fn the_alert_names_each_change_in_both_languages() {
    let t = Transition {
        at: 1,
        channel: "hk-node".into(),
        from: State::Active,
        to: State::Listed,
        reason: "listed: zen.spamhaus.org (127.0.0.2)".into(),
        actor: "gateway".into(),
    };
    let text = String::from_utf8(watch::alert_message("gw.test", "A1", &[&t])).unwrap();
    assert!(text.contains("Auto-Submitted: auto-generated\r\n"));
    assert!(text.contains("hk-node: active -> listed (listed: zen.spamhaus.org (127.0.0.2))"));
    assert!(text.contains("发信通道"));
}

#[test]
fn policies_cover_exact_domains_suffixes_and_all() {
    let p = PolicyConfig {
        domains: vec!["example.org".into(), ".jp".into(), "*.edu".into()],
        channels: vec!["a".into()],
    };
    assert!(p.covers("example.org") && p.covers("mail.co.jp") && p.covers("mit.edu"));
    assert!(
        !p.covers("sub.example.org") && !p.covers("jp") && !p.covers("notjp") && !p.covers("xedu")
    );
    let all = PolicyConfig {
        domains: vec!["*".into()],
        channels: vec!["a".into()],
    };
    assert!(all.covers("anything.test"));
}

#[test]
fn the_section_is_checked() {
    assert!(config().check().is_ok());
    let mut twice = config();
    twice.channels.push(channel("a", "127.0.0.9", false));
    assert!(twice.check().unwrap_err().contains("twice"));
    let mut all_reserve = config();
    for c in &mut all_reserve.channels {
        c.reserve = true;
    }
    assert!(all_reserve.check().is_err());
    let mut unknown = config();
    unknown.policies.push(PolicyConfig {
        domains: vec!["x.test".into()],
        channels: vec!["nope".into()],
    });
    assert!(unknown.check().unwrap_err().contains("nope"));
    let mut clear_password = config();
    clear_password.channels[0].smarthost = Some(config::SmartHostConfig {
        host: "relay.test".into(),
        port: 587,
        tls: crate::config::TlsPolicy::Opportunistic,
        tls_ca: None,
        tls_name: None,
        tls_pins: Vec::new(),
        username: Some("gw".into()),
        password_file: Some("/nonexistent".into()),
    });
    assert!(
        clear_password
            .check()
            .unwrap_err()
            .contains("only over TLS")
    );
    if let Some(s) = clear_password.channels[0].smarthost.as_mut() {
        s.tls = crate::config::TlsPolicy::Required;
    }
    assert!(clear_password.check().is_ok());
    if let Some(s) = clear_password.channels[0].smarthost.as_mut() {
        s.password_file = None;
    }
    assert!(clear_password.check().is_err());
    let mut bad_name = config();
    bad_name.channels[0].name = "a b".into();
    assert!(bad_name.check().is_err());
}

#[tokio::test]
async fn ranking_follows_policy_state_record_and_stickiness() {
    let mut c = config();
    c.policies.push(PolicyConfig {
        domains: vec![".jp".into()],
        channels: vec!["b".into(), "r".into()],
    });
    let r = relay(c, None).await;
    // Reserves come after the active channels; the policy keeps `a` away from .jp.
    let jp = names(&r, &r.ranked("mail.jp"));
    assert_eq!(jp, ["b", "r"]);
    let any = names(&r, &r.ranked("x.test"));
    assert_eq!(any.len(), 3);
    assert_eq!(any[2], "r");
    // Equally good channels share new domains between them.
    let firsts: std::collections::HashSet<String> = (0..40)
        .map(|n| names(&r, &r.ranked(&format!("d{n}.test")))[0].clone())
        .collect();
    assert_eq!(firsts.len(), 2, "{firsts:?}");
    // A domain keeps to the first channel that delivered there while that stays healthy,
    // even when another takes some of its mail meanwhile.
    let [first, second] = [r.ranked("x.test")[0], r.ranked("x.test")[1]];
    r.note(second, "x.test", ANSWERED);
    assert_eq!(r.ranked("x.test")[0], second);
    r.note(first, "x.test", ANSWERED);
    assert_eq!(r.ranked("x.test")[0], second);
    for _ in 0..6 {
        let failed = Report {
            tried: Tried::Deferred,
            delivered: 0,
            deferred: 1,
            ..ANSWERED
        };
        r.note(second, "x.test", failed);
    }
    assert_ne!(r.ranked("x.test")[0], second);
}

#[tokio::test]
async fn listed_channels_carry_mail_only_when_nothing_else_can_and_drained_ones_never() {
    let r = relay(config(), None).await;
    let t0 = unix_now();
    r.review(&[(0, vec!["bl.test (127.0.0.2)".into()])], t0);
    r.decide("b", true, "admin").await.unwrap();
    assert_eq!(names(&r, &r.ranked("x.test")), ["r"]);
    r.review(&[(2, vec!["bl.test (127.0.0.4)".into()])], t0);
    // Everything left is listed: many destinations ignore any one list.
    let mut listed = names(&r, &r.ranked("x.test"));
    listed.sort();
    assert_eq!(listed, ["a", "r"]);
    r.decide("a", true, "admin").await.unwrap();
    assert_eq!(names(&r, &r.ranked("x.test")), ["r"]);
    r.decide("r", true, "admin").await.unwrap();
    assert!(r.ranked("x.test").is_empty());
}

#[tokio::test]
async fn a_listed_channel_leaves_a_reserve_takes_over_and_both_return() {
    let r = relay(config(), None).await;
    let t0 = unix_now();
    assert_eq!(
        states(&r),
        [
            (State::Active, false),
            (State::Active, false),
            (State::Reserve, false)
        ]
    );
    let changes = r.review(&[(0, vec!["bl.test (127.0.0.2)".into()])], t0);
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(
        states(&r),
        [
            (State::Listed, false),
            (State::Active, false),
            (State::Active, true)
        ]
    );
    assert_eq!(names(&r, &r.ranked("x.test")).len(), 2);
    assert!(!r.ranked("x.test").contains(&0));
    // Still listed, then clean but within the hold-down: stays out.
    r.review(&[(0, vec!["bl.test (127.0.0.2)".into()])], t0 + 10);
    r.review(&[(0, vec![])], t0 + 20);
    r.review(&[], t0 + 119);
    assert_eq!(r.board()[0].state, State::Listed);
    // Clean for the hold-down: back, and the reserve stands down.
    let back = r.review(&[], t0 + 120);
    assert_eq!(back.len(), 2, "{back:?}");
    assert_eq!(
        states(&r),
        [
            (State::Active, false),
            (State::Active, false),
            (State::Reserve, false)
        ]
    );
}

#[tokio::test]
async fn refusals_at_several_domains_list_a_channel_even_when_no_list_does() {
    let r = relay(config(), None).await;
    let t0 = unix_now();
    r.refused(1, "one.test", "554 blocked using private.bl");
    r.review(&[(1, vec![])], t0);
    assert_eq!(
        r.board()[1].state,
        State::Active,
        "one domain is not enough"
    );
    r.refused(1, "two.test", "554 blocked using private.bl");
    r.review(&[(1, vec![])], t0);
    assert_eq!(r.board()[1].state, State::Listed);
    assert!(
        r.board()[1].reason.contains("2 domains"),
        "{}",
        r.board()[1].reason
    );
    // Back once the lists are clean and the last refusal is older than the hold-down.
    r.review(&[(1, vec![])], t0 + 50);
    assert_eq!(r.board()[1].state, State::Listed);
    r.review(&[(1, vec![])], t0 + 200);
    assert_eq!(r.board()[1].state, State::Active);
}

#[tokio::test]
async fn a_broken_channel_goes_down_rests_and_is_tried_again() {
    let r = relay(config(), None).await;
    let broken = Report {
        tried: Tried::Broken,
        delivered: 0,
        deferred: 1,
        latency: 1.0,
        error: Some("cannot send from 127.0.0.2: address not available"),
    };
    r.note(0, "x.test", broken);
    r.note(0, "y.test", ANSWERED);
    for _ in 0..2 {
        r.note(0, "x.test", broken);
    }
    let t0 = unix_now();
    r.review(&[], t0);
    assert_eq!(
        r.board()[0].state,
        State::Active,
        "an answer in between resets the run"
    );
    r.note(0, "x.test", broken);
    r.review(&[], t0);
    assert_eq!(r.board()[0].state, State::Down);
    assert!(r.board()[0].reason.contains("address not available"));
    assert_eq!(r.board()[2].state, State::Active);
    r.review(&[], t0 + 49);
    assert_eq!(r.board()[0].state, State::Down);
    r.review(&[], t0 + 50);
    assert_eq!(states(&r)[0], (State::Active, false));
    assert_eq!(r.board()[2].state, State::Reserve);
}

#[tokio::test]
async fn administrators_drain_and_activate_and_states_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("q.db")).await.unwrap());
    let r = relay(config(), Some(store.clone())).await;
    let changes = r.decide("a", true, "admin").await.unwrap();
    assert_eq!(
        changes.len(),
        2,
        "drained, and the reserve promoted: {changes:?}"
    );
    assert!(matches!(
        r.decide("a", true, "admin").await,
        Err(DecideError::Already(State::Drained))
    ));
    assert!(matches!(
        r.decide("zz", true, "admin").await,
        Err(DecideError::Unknown)
    ));
    let listing = r.review(&[(1, vec!["bl.test (127.0.0.3)".into()])], unix_now());
    r.publish(&listing).await;
    assert!(matches!(
        r.decide("b", false, "admin").await,
        Err(DecideError::Listed)
    ));
    let history = r.history("a", 10).await.unwrap();
    assert_eq!(history[0].to, State::Drained);
    assert_eq!(history[0].actor, "admin");
    // The listing was stored with its transition.
    let mut listed = config();
    listed.channels.push(channel("s", "127.0.0.5", true));
    drop(r);
    let again = relay(listed, Some(store)).await;
    let st = states(&again);
    assert_eq!(st[0].0, State::Drained);
    assert_eq!(st[1].0, State::Listed);
    assert_eq!(
        st.iter().filter(|s| s.0 == State::Active).count(),
        2,
        "both reserves promoted for the two active channels out: {st:?}"
    );
    again.decide("a", false, "admin").await.unwrap();
    assert_eq!(states(&again)[0], (State::Active, false));
    assert_eq!(
        states(&again)
            .iter()
            .filter(|s| s.0 == State::Active)
            .count(),
        2
    );
}
