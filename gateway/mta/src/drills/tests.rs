use super::*;
use crate::queue::spool::Spool;

async fn drills(dir: &std::path::Path) -> Arc<Drills> {
    let store = Arc::new(SqliteStore::open(&dir.join("q.db")).await.unwrap());
    let queue = Queue::open(Spool::open(&dir.join("spool")).unwrap(), store.clone(), 0)
        .await
        .unwrap();
    let config = DrillsConfig {
        enabled: true,
        base_url: "https://gw.example.com:8443".into(),
        report_address: "report@example.com".into(),
        ..DrillsConfig::default()
    };
    Drills::new(
        config,
        store,
        LinkKey::load_or_create(dir).unwrap(),
        queue,
        "gw.example.com".into(),
        chrono_tz::Asia::Shanghai,
    )
}

fn new_campaign(csv: &str) -> NewCampaign {
    NewCampaign {
        name: "Q4".into(),
        template_id: "builtin:invoice-en".into(),
        from_name: String::new(),
        from_address: "ap@vendor-invoices.test".into(),
        targets_csv: csv.into(),
        start_at: 0,
        rate_per_minute: 60,
    }
}

#[tokio::test]
async fn a_campaign_is_counted_per_step_once_and_per_department() {
    let dir = tempfile::tempdir().unwrap();
    let d = drills(dir.path()).await;
    let c = d
        .create(
            new_campaign("a@example.com,A,Sales\nb@example.com,B,Sales\nc@example.com,C,IT\n"),
            "console:sec",
        )
        .await
        .unwrap();
    assert_eq!(
        (c.state.as_str(), c.from_name.as_str()),
        ("draft", "Accounts Payable")
    );
    let token = |email: &str| d.open(&d.token(&c.id, email)).unwrap();
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        store::mark(&d.store, &c.id, email, Step::Sent, 100, Some("Q"))
            .await
            .unwrap();
    }
    assert!(
        d.record(&token("a@example.com"), Step::Clicked)
            .await
            .unwrap()
    );
    assert!(
        !d.record(&token("a@example.com"), Step::Clicked)
            .await
            .unwrap(),
        "once"
    );
    d.record(&token("a@example.com"), Step::Submitted)
        .await
        .unwrap();
    d.record(&token("c@example.com"), Step::Opened)
        .await
        .unwrap();
    let r = d.results(&c.id).await.unwrap();
    assert_eq!(
        (
            r.total.sent,
            r.total.opened,
            r.total.clicked,
            r.total.submitted
        ),
        (3, 2, 1, 1)
    );
    let sales = &r.departments.iter().find(|(n, _)| n == "Sales").unwrap().1;
    assert_eq!((sales.targets, sales.clicked), (2, 1));
    // A token for another campaign or purpose does not open.
    assert!(
        d.open(&d.key.seal("click", b"{\"c\":\"x\",\"r\":\"y\"}"))
            .is_err()
    );
}

#[tokio::test]
async fn a_forwarded_drill_counts_as_reported_and_states_move_only_forward() {
    let dir = tempfile::tempdir().unwrap();
    let d = drills(dir.path()).await;
    let c = d
        .create(new_campaign("a@example.com,A,Sales\n"), "console:sec")
        .await
        .unwrap();
    let person = targets::Target {
        email: "a@example.com".into(),
        name: "A <x>".into(),
        department: "Sales".into(),
    };
    let mail = String::from_utf8(d.message(&c, &person, "Q1", 1_796_464_800)).unwrap();
    assert!(mail.contains(&format!("{HEADER}: ")));
    assert!(mail.contains("From: =?UTF-8?B?"));
    let forwarded = format!("Subject: Fwd\r\n\r\n> {}", mail.replace("\r\n", "\r\n> "));
    assert_eq!(d.reported(forwarded.as_bytes()).await.unwrap(), 1);
    assert_eq!(d.reported(forwarded.as_bytes()).await.unwrap(), 0, "once");
    assert_eq!(
        d.reported(b"Subject: x\r\n\r\nX-Jianmen-Drill: forged.token")
            .await
            .unwrap(),
        0
    );
    assert!(matches!(
        d.set_state(&c.id, "paused").await,
        Err(DrillError::State(_))
    ));
    d.set_state(&c.id, "scheduled").await.unwrap();
    d.set_state(&c.id, "paused").await.unwrap();
    assert!(matches!(
        d.set_state("nope", "scheduled").await,
        Err(DrillError::NotFound)
    ));
    // Bad input is refused by field.
    let mut bad = new_campaign("a@example.com");
    bad.rate_per_minute = 0;
    assert!(matches!(
        d.create(bad, "x").await,
        Err(DrillError::Invalid("rate_per_minute", _))
    ));
    let mut bad = new_campaign("a@example.com");
    bad.template_id = "builtin:nothing".into();
    assert!(matches!(
        d.create(bad, "x").await,
        Err(DrillError::Invalid("template_id", _))
    ));
    let mut bad = new_campaign("a@example.com");
    bad.from_address = "x <y@z.test>".into();
    assert!(matches!(
        d.create(bad, "x").await,
        Err(DrillError::Invalid("from_address", _))
    ));
}
