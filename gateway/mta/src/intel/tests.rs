use super::*;

const MAIL: &[u8] = b"From: Billing <billing@vendor.test>\r\nSubject: Invoice\r\n\
    Message-ID: <inv-1@vendor.test>\r\nMIME-Version: 1.0\r\n\
    Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n\
    <a href=\"https://pay.vendor-portal.test/login\">pay</a>\r\n--b\r\n\
    Content-Type: application/octet-stream; name=a.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n\
    aGVsbG8=\r\n--b--\r\n";
/// SHA-256 of the attachment ("hello").
const HELLO: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

fn bundle(objects: &[serde_json::Value]) -> Vec<u8> {
    serde_json::json!({"type": "bundle", "id": "bundle--t", "objects": objects})
        .to_string()
        .into_bytes()
}

fn indicator(id: u32, pattern: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut i = serde_json::json!({
        "type": "indicator", "id": format!("indicator--{id}"), "spec_version": "2.1",
        "created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z",
        "pattern_type": "stix", "pattern": pattern,
    });
    if let (Some(i), Some(extra)) = (i.as_object_mut(), extra.as_object()) {
        i.extend(extra.clone());
    }
    i
}

async fn intel(max_indicators: usize) -> (Arc<Intel>, Arc<Watchlist>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("queue.db"))
            .await
            .unwrap(),
    );
    let index = HuntIndex::open(dir.path(), &["example.com".into()])
        .await
        .unwrap();
    index.index(
        unix_now() - 3600,
        "Q1",
        "billing@vendor.test",
        &["a@example.com".into(), "b@example.com".into()],
        MAIL.to_vec(),
    );
    index.flush().await;
    let watchlist = Watchlist::new();
    let config = IntelConfig {
        on_match: OnMatch::Propose,
        max_indicators,
        ..IntelConfig::default()
    };
    let intel = Intel::open(config, store, watchlist.clone(), Some(index), None, 30)
        .await
        .unwrap();
    (intel, watchlist, dir)
}

#[tokio::test]
async fn a_new_indicator_is_in_force_at_once_and_finds_delivered_mail_once() {
    let (intel, watchlist, _dir) = intel(100).await;
    let doc = bundle(&[
        indicator(
            1,
            &format!("[file:hashes.'SHA-256' = '{HELLO}']"),
            serde_json::json!({}),
        ),
        indicator(
            2,
            "[domain-name:value = 'vendor-portal.test']",
            serde_json::json!({}),
        ),
        indicator(3, "[process:name = 'evil.exe']", serde_json::json!({})),
    ]);
    let taken = intel.import(&doc).await.unwrap();
    assert_eq!((taken.new, taken.skipped_count, taken.hits), (2, 1, 2));
    assert_eq!(taken.skipped[0].0, "indicator--3");
    assert_eq!(watchlist.len(), 2);
    let hits = intel.hits(10).await.unwrap();
    assert_eq!(hits.len(), 2);
    assert!(
        hits.iter()
            .all(|h| h.queue_id == "Q1" && h.state == "proposed")
    );
    // The same again: nothing new, nothing found twice.
    let again = intel.import(&doc).await.unwrap();
    assert_eq!((again.new, again.unchanged, again.hits), (0, 2, 0));
    assert_eq!(intel.hits(10).await.unwrap().len(), 2);
    // Without a mail system, proposing is all there is: recalling one says why not.
    assert!(matches!(
        intel.recall_hit(hits[0].id, "console:sec").await,
        Err(IntelError::Recall(RecallError::NoSystem(_)))
    ));
    let sources = intel.sources().await.unwrap();
    assert_eq!(sources.len(), 1);
    // Two new indicators in all; the unusable one was refused by both imports.
    assert_eq!((sources[0].received, sources[0].skipped), (2, 2));
    let found = intel.indicators("vendor-portal", 10).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].observables,
        [("domain".into(), "vendor-portal.test".into())]
    );
}

#[tokio::test]
async fn revoked_expired_and_future_indicators_do_not_count() {
    let (intel, watchlist, _dir) = intel(100).await;
    let pattern = format!("[file:hashes.'SHA-256' = '{HELLO}']");
    intel
        .import(&bundle(&[
            indicator(1, &pattern, serde_json::json!({})),
            indicator(
                2,
                "[domain-name:value = 'old.test']",
                serde_json::json!({"valid_until": "2026-02-01T00:00:00Z"}),
            ),
            indicator(
                3,
                "[domain-name:value = 'later.test']",
                serde_json::json!({"valid_from": "2099-01-01T00:00:00Z"}),
            ),
        ]))
        .await
        .unwrap();
    assert_eq!(watchlist.len(), 1, "only the first is in force");
    // Its producer withdraws it (a newer version, revoked).
    let revoked = indicator(
        1,
        &pattern,
        serde_json::json!({"modified": "2026-03-01T00:00:00Z", "revoked": true}),
    );
    let taken = intel.import(&bundle(&[revoked])).await.unwrap();
    assert_eq!(taken.new, 1);
    assert!(watchlist.is_empty());
    // An older version arriving late changes nothing.
    let stale = intel
        .import(&bundle(&[indicator(1, &pattern, serde_json::json!({}))]))
        .await
        .unwrap();
    assert_eq!((stale.new, stale.unchanged), (0, 1));
    assert!(watchlist.is_empty());
}

#[tokio::test]
async fn a_full_store_refuses_more_and_bad_documents_are_refused_whole() {
    let (intel, _, _dir) = intel(1).await;
    let taken = intel
        .import(&bundle(&[
            indicator(1, "[domain-name:value = 'a.test']", serde_json::json!({})),
            indicator(2, "[domain-name:value = 'b.test']", serde_json::json!({})),
        ]))
        .await
        .unwrap();
    assert_eq!((taken.new, taken.skipped_count), (1, 1));
    assert!(taken.skipped[0].1.contains("no room"));
    for bad in [
        &b"not json"[..],
        b"{\"objects\": {}}",
        b"{\"objects\": []}",
        b"[]",
    ] {
        assert!(
            matches!(intel.import(bad).await, Err(IntelError::Invalid(_))),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    let huge = vec![b' '; MAX_IMPORT + 1];
    assert!(matches!(
        intel.import(&huge).await,
        Err(IntelError::Invalid(_))
    ));
}
