use super::*;
use crate::quarantine::{Held, Status};
use crate::queue::spool::Spool;
use crate::queue::{MessageKind, NewMessage, QueueStore};

/// Monday 2026-11-30 09:00 UTC.
const MONDAY_9: i64 = 1_796_029_200;

async fn stores(dir: &std::path::Path) -> (Arc<SqliteStore>, Spool) {
    let store = Arc::new(SqliteStore::open(&dir.join("q.db")).await.unwrap());
    let spool = Spool::open(&dir.join("spool")).unwrap();
    (store, spool)
}

async fn send(watch: &Watch, account: &str, at: i64, to: &str) -> Observed {
    let rcpts = [to.to_owned()];
    watch
        .observe(
            account,
            &Sent {
                at,
                client: Some("10.0.0.7".parse().unwrap()),
                rcpts: &rcpts,
                flagged: false,
            },
        )
        .await
}

/// A new account sends `n` messages to strangers, ten seconds apart; the levels it passed.
async fn burst(watch: &Watch, account: &str, n: i64) -> Vec<Level> {
    let mut levels = vec![Level::Normal];
    for i in 0..n {
        let at = MONDAY_9 + i * 10;
        if watch.gate(account, at).await.is_err() {
            continue;
        }
        let o = send(watch, account, at, &format!("v{i}@outside.test")).await;
        if levels.last() != Some(&o.level) {
            assert!(o.raised.is_some(), "a rise is an event");
            levels.push(o.level);
        }
    }
    levels
}

#[tokio::test]
async fn a_burst_escalates_step_by_step_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = stores(dir.path()).await;
    let config = RiskConfig {
        throttle_per_hour: 40,
        ..RiskConfig::default()
    };
    let watch = Watch::open(config.clone(), store.clone()).await.unwrap();
    let levels = burst(&watch, "zhang@corp.test", 300).await;
    assert_eq!(
        levels,
        [Level::Normal, Level::Alert, Level::Throttled, Level::Held]
    );
    let board = watch.board(MONDAY_9 + 3000, 10);
    assert_eq!(board[0].account, "zhang@corp.test");
    assert!(
        board[0]
            .reasons
            .iter()
            .any(|r| matches!(r, Reason::NewRecipients { percent: 100, .. }))
    );
    assert!(board[0].volume[23] > 50, "{:?}", board[0].volume);
    let seen = board[0].messages;
    watch.flush().await.unwrap();

    let again = Watch::open(config, store).await.unwrap();
    let (view, events, _) = again
        .account("zhang@corp.test", MONDAY_9 + 3000)
        .await
        .unwrap();
    assert_eq!(view.level, Level::Held);
    assert_eq!(view.messages, seen, "the profile came back");
    let raised: Vec<Level> = events.iter().rev().map(|e| e.level).collect();
    assert_eq!(raised, [Level::Alert, Level::Throttled, Level::Held]);
    assert!(events.iter().all(|e| e.actor == "gateway"));
}

#[tokio::test]
async fn a_throttled_account_sends_its_allowance_then_waits() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = stores(dir.path()).await;
    let config = RiskConfig {
        hold: 0.0,
        throttle_per_hour: 5,
        ..RiskConfig::default()
    };
    let watch = Watch::open(config, store).await.unwrap();
    let mut at = MONDAY_9;
    while watch.gate("li@corp.test", at).await.is_ok() {
        let o = send(&watch, "li@corp.test", at, &format!("x{at}@outside.test")).await;
        at += 1;
        assert!(at < MONDAY_9 + 1000, "never throttled: {o:?}");
    }
    for _ in 0..10 {
        assert!(
            matches!(
                watch.gate("li@corp.test", at).await,
                Err(Refusal::Throttled)
            ),
            "without holding, refused for as long as it tries"
        );
    }
    // An hour refills the allowance.
    assert!(matches!(
        watch.gate("li@corp.test", at + 3600).await,
        Ok(None)
    ));
    assert!(
        matches!(watch.gate("other@corp.test", at).await, Ok(None)),
        "others are not touched"
    );
}

#[tokio::test]
async fn an_account_that_keeps_trying_past_its_throttle_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = stores(dir.path()).await;
    let config = RiskConfig {
        hold: 50.0,
        block: 0.0,
        throttle_per_hour: 5,
        ..RiskConfig::default()
    };
    let watch = Watch::open(config, store).await.unwrap();
    let mut at = MONDAY_9;
    while watch.gate("li@corp.test", at).await.is_ok() {
        send(&watch, "li@corp.test", at, &format!("x{at}@outside.test")).await;
        at += 1;
    }
    for _ in 1..4 {
        assert!(matches!(
            watch.gate("li@corp.test", at).await,
            Err(Refusal::Throttled)
        ));
    }
    let raised = watch.gate("li@corp.test", at).await.unwrap().expect("held");
    assert_eq!(raised.level, Level::Held);
    assert!(
        matches!(
            raised.reasons[0],
            Reason::PastThrottle {
                tried: 5,
                per_hour: 5
            }
        ),
        "{raised:?}"
    );
    assert!(
        matches!(watch.gate("li@corp.test", at).await, Ok(None)),
        "held mail is taken"
    );
    let o = send(&watch, "li@corp.test", at, "y@outside.test").await;
    assert_eq!(o.level, Level::Held);
}

fn held_message(id: &str, account: &str) -> NewMessage {
    NewMessage {
        id: id.into(),
        mail_from: account.into(),
        rcpts: vec!["v@outside.test".into()],
        size: 3,
        received_at: MONDAY_9,
        client_ip: "10.0.0.7".into(),
        helo: "mail.corp.test".into(),
        smtputf8: false,
        kind: MessageKind::Mail,
        held: Some(Box::new(Held {
            reason: "unusual sending".into(),
            class: crate::quarantine::approval::ACCOUNT_CLASS.into(),
            score: 3.0,
            subject: "s".into(),
            header_from: account.into(),
            report: None,
            expires_at: MONDAY_9 + 86_400,
        })),
    }
}

#[tokio::test]
async fn clearing_releases_the_held_mail_and_confirming_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, spool) = stores(dir.path()).await;
    let quarantine = Quarantine::new(store.clone(), spool.clone());
    let watch = Watch::open(RiskConfig::default(), store.clone())
        .await
        .unwrap();
    for account in ["a@corp.test", "b@corp.test"] {
        assert!(burst(&watch, account, 200).await.contains(&Level::Held));
    }
    let ids = [
        ("01AAAAAAAAAAAAAAAAAAAAAAA0", "a@corp.test"),
        ("01AAAAAAAAAAAAAAAAAAAAAAA1", "b@corp.test"),
    ];
    for (id, account) in ids {
        spool.write(id, &[b"x\r\n"]).unwrap();
        store.insert(&[held_message(id, account)]).await.unwrap();
        watch.note_hold(id, account).await.unwrap();
    }
    let now = MONDAY_9 + 4000;
    let cleared = watch
        .settle(
            "a@corp.test",
            Finding::FalseAlarm,
            "admin",
            &quarantine,
            now,
        )
        .await
        .unwrap();
    assert_eq!(cleared.released.len(), 1);
    assert_eq!(
        quarantine.get(ids[0].0).await.unwrap().summary.status,
        Status::Released
    );
    assert!(matches!(watch.gate("a@corp.test", now).await, Ok(None)));
    let (view, events, holds) = watch.account("a@corp.test", now).await.unwrap();
    assert_eq!((view.level, view.peak, holds), (Level::Normal, 0.0, 0));
    assert_eq!(events[0].actor, "admin");

    let confirmed = watch
        .settle(
            "b@corp.test",
            Finding::Compromised,
            "admin",
            &quarantine,
            now,
        )
        .await
        .unwrap();
    assert_eq!(confirmed.dropped, [ids[1].0]);
    assert_eq!(
        quarantine.get(ids[1].0).await.unwrap().summary.status,
        Status::Deleted
    );
    assert!(matches!(
        watch.gate("b@corp.test", now).await,
        Err(Refusal::Blocked)
    ));
    assert!(matches!(
        watch
            .settle(
                "nobody@corp.test",
                Finding::FalseAlarm,
                "admin",
                &quarantine,
                now
            )
            .await,
        Err(RiskError::NotFound(_))
    ));
}

#[tokio::test]
async fn ordinary_accounts_are_forgotten_beyond_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = stores(dir.path()).await;
    let watch = Watch::open(RiskConfig::default(), store.clone())
        .await
        .unwrap();
    for i in 0..(MAX_ACCOUNTS as i64 + 10) {
        send(
            &watch,
            &format!("u{i}@corp.test"),
            MONDAY_9 + i,
            "c@corp.test",
        )
        .await;
    }
    assert_eq!(watch.accounts().len(), MAX_ACCOUNTS);
    assert!(
        !watch.accounts().contains_key("u0@corp.test"),
        "the quietest went first"
    );
    // One that comes back before the profiles are written keeps its row.
    send(&watch, "u1@corp.test", MONDAY_9 + 30_000, "c@corp.test").await;
    watch.flush().await.unwrap();
    let again = Watch::open(RiskConfig::default(), store).await.unwrap();
    assert_eq!(again.accounts().len(), MAX_ACCOUNTS);
    assert!(again.accounts().contains_key("u1@corp.test"));
    assert!(!again.accounts().contains_key("u0@corp.test"));
}

#[test]
fn the_policy_is_checked_and_levels_follow_the_score() {
    let c = RiskConfig::default();
    assert!(c.check().is_ok());
    assert_eq!(c.level_for(0.5), Level::Normal);
    assert_eq!(c.level_for(1.0), Level::Alert);
    assert_eq!(c.level_for(2.5), Level::Throttled);
    assert_eq!(c.level_for(9.0), Level::Held, "block is off by default");
    let bad = RiskConfig {
        throttle: 5.0,
        ..RiskConfig::default()
    };
    assert!(bad.check().unwrap_err().contains("alert ≤ throttle"));
    assert!(
        RiskConfig {
            notify: vec!["root".into()],
            ..RiskConfig::default()
        }
        .check()
        .is_err()
    );
    assert_eq!(
        account_of(Some("Zhang.Wei"), "x@corp.test").as_deref(),
        Some("zhang.wei")
    );
    assert_eq!(
        account_of(None, "X@Corp.test").as_deref(),
        Some("x@corp.test")
    );
    assert_eq!(account_of(None, ""), None);
    assert_eq!(
        account_of(Some("li\r\nna\u{0}"), "x@corp.test").as_deref(),
        Some("lina")
    );
    assert_eq!(account_of(Some("\u{7}"), "").as_deref(), None);
}

#[test]
fn the_alert_names_the_account_and_the_reasons() {
    let event = Event {
        at: MONDAY_9,
        account: "zhang@corp.test\r\nBcc: x@evil.test".into(),
        level: Level::Throttled,
        score: 2.4,
        reasons: vec![Reason::Volume {
            messages: 480,
            usual: 12,
        }],
        actor: "gateway".into(),
    };
    let text = String::from_utf8(alert_message("gw.test", "A1", &event)).unwrap();
    assert!(text.contains("限速 / throttled"));
    assert!(
        text.contains("  - 480 messages in 1 h (usual 12)\r\n"),
        "{text}"
    );
    assert!(
        text.contains("zhang@corp.test  Bcc: x@evil.test") && !text.contains("\nBcc:"),
        "no header can be injected: {text}"
    );
}
