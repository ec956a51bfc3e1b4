//! The scan hook's verdicts take effect in the SMTP session: reject at end of DATA with a
//! reference id, tag with headers before spooling, hold without delivery.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use jianmen_mta::config::Config;
use jianmen_mta::intake::Intake;
use jianmen_mta::metrics::Metrics;
use jianmen_mta::queue::spool::Spool;
use jianmen_mta::queue::{MessageState, Queue, QueueStore, SqliteStore};
use jianmen_mta::smtp::{Server, SessionContext};
use jianmen_scan::{Disposition, Envelope, Scanner, Verdict};

/// Decides by the Subject line.
struct BySubject;

#[async_trait]
impl Scanner for BySubject {
    async fn scan(&self, envelope: &Envelope, message: &[u8]) -> Vec<Disposition> {
        let text = String::from_utf8_lossy(message);
        let verdict = if text.contains("Subject: reject") {
            Verdict::Reject {
                code: 550,
                enhanced: "5.7.1".into(),
                text: "Message refused as spam".into(),
            }
        } else if text.contains("Subject: tag") {
            Verdict::Tag {
                headers: vec![("X-Jianmen-Spam".into(), "yes".into())],
                subject_prefix: Some("[SPAM]".into()),
            }
        } else if text.contains("Subject: hold") {
            Verdict::Hold {
                reason: "suspicious".into(),
                hours: None,
            }
        } else {
            Verdict::Deliver
        };
        Disposition::all(envelope, verdict)
    }
}

async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        all.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return all;
        }
    }
}

#[tokio::test]
async fn verdicts_reject_tag_and_hold() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(&format!(
        "[server]\nhostname = \"gw.test\"\ndata_dir = \"{}\"\n[domains]\nprotected = [\"example.com\"]\n",
        dir.path().display()
    ))
    .unwrap();
    let store = Arc::new(SqliteStore::open(&config.database_path()).await.unwrap());
    let queue = Queue::open(Spool::configured(&config).unwrap(), store.clone(), 0)
        .await
        .unwrap();
    let metrics = Arc::new(Metrics::default());
    let config = Arc::new(config);
    let intake = Intake::new(
        config.clone(),
        Arc::new(BySubject),
        queue.clone(),
        metrics.clone(),
        jianmen_mta::tracking::Tracker::open(dir.path())
            .await
            .unwrap(),
    );
    let listeners = Server::bind(&["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let addr = listeners[0].local_addr().unwrap();
    let server = Arc::new(Server::new(SessionContext {
        hostname: "gw.test".into(),
        limits: Arc::new(config.smtp.clone()),
        tls: None,
        inbox: Arc::new(intake),
        metrics,
        relays: Arc::default(),
    }));
    tokio::spawn(server.serve(listeners));

    let (read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
    let mut read = BufReader::new(read);
    assert!(reply(&mut read).await.starts_with("220"));
    write.write_all(b"EHLO c\r\n").await.unwrap();
    assert!(reply(&mut read).await.starts_with("250"));
    let mut send = async |subject: &str| -> String {
        write
            .write_all(
                format!(
                    "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n\
                     Subject: {subject}\r\n\r\nbody\r\n.\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        for _ in 0..3 {
            reply(&mut read).await;
        }
        reply(&mut read).await
    };
    let rejected = send("reject").await;
    assert!(
        rejected.starts_with("550 5.7.1 Message refused as spam (ref "),
        "{rejected}"
    );
    let tagged = send("tag").await;
    assert!(tagged.starts_with("250"), "{tagged}");
    let held = send("hold").await;
    assert!(held.starts_with("250"), "{held}");

    let queued = store.list(10).await.unwrap();
    assert_eq!(queued.len(), 2, "the rejected message was not queued");
    let tag_id = tagged.split_whitespace().last().unwrap();
    let tag = queued.iter().find(|m| m.id == tag_id).unwrap();
    assert_eq!(tag.state, MessageState::Active);
    let data = String::from_utf8(queue.spool().read(tag_id).unwrap()).unwrap();
    assert!(
        data.starts_with("X-Jianmen-Spam: yes\r\nReceived: from c"),
        "{data}"
    );
    assert!(data.contains("\r\nSubject: [SPAM] tag\r\n"), "{data}");
    let held_id = held.split_whitespace().last().unwrap();
    let hold = queued.iter().find(|m| m.id == held_id).unwrap();
    assert_eq!(hold.state, MessageState::Held);
    assert_eq!(hold.hold_reason.as_deref(), Some("suspicious"));
    assert!(
        store
            .due(i64::MAX, 10)
            .await
            .unwrap()
            .iter()
            .all(|id| id != held_id)
    );
}
