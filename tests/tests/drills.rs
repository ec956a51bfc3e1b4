//! Phishing drills against real peers: a campaign to 20 people goes out through the gateway's
//! queue to smtp-sink; Chromium opens the links of 5 and submits the landing form for 2, typing
//! a password; a user forwards one to the report address. The results read 25% clicked, 10%
//! submitted, one report, per department too — and the typed password is nowhere in the data
//! directory or the log, even when a client sends it in the request body.

use std::process::Command;
use std::time::Duration;

use jianmen_testkit::{
    Browser, Client, Console, Gateway, Setup, Sink, free_port, readable_parts, wait_until,
};

const NEW_PASSWORD: &str = "Drill-Board-2026!";
const TYPED: &str = "Typed-Secret-Pa55!";
const DEPARTMENTS: [&str; 4] = ["财务部", "人力资源部", "研发中心", "市场部"];

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn a_drill_counts_clicks_submissions_and_reports_and_keeps_nothing_typed() {
    let sink = Sink::start(&[]);
    let console_port = free_port();
    let base = format!("https://127.0.0.1:{console_port}");
    let gw = Gateway::start(
        &Setup::new(sink.port, sink.port)
            .console(console_port)
            .section(&format!(
                "[drills]\nenabled = true\nbase_url = \"{base}\"\nreport_address = \"report@example.com\"\n"
            )),
    );
    let work = tempfile::tempdir().unwrap();
    let (user, password) = gw.initial_account("security");
    let console = Console::new(console_port, work.path());
    let csrf = console.sign_in(&user, &password, NEW_PASSWORD);

    let mut csv = String::from("姓名,部门,邮箱\n");
    for i in 0..20 {
        csv.push_str(&format!(
            "员工{i},{},user{i}@example.com\n",
            DEPARTMENTS[i % 4]
        ));
    }
    let (code, made) = console.post_json(
        "/api/drills",
        &csrf,
        &serde_json::json!({
            "name": "2026 年第四季度演练", "template_id": "builtin:salary-zh",
            "from_address": "hr-notice@example-hr.test", "targets_csv": csv, "rate_per_minute": 600,
        })
        .to_string(),
    );
    assert_eq!(code, 201, "{made}");
    let id = json(&made)["campaign"]["id"].as_str().unwrap().to_owned();
    assert!(sink.messages().is_empty(), "a draft sends nothing");
    let (code, body) = console.post_json(&format!("/api/drills/{id}/schedule"), &csrf, "");
    assert_eq!(code, 200, "{body}");
    assert!(
        wait_until(Duration::from_secs(60), || sink.messages().len() == 20),
        "{} sent:\n{}",
        sink.messages().len(),
        gw.log()
    );

    // Each copy has its own link; the lure names its recipient and their department.
    let mut links = std::collections::BTreeMap::new();
    let mut raw_of = std::collections::BTreeMap::new();
    for m in sink.messages() {
        let html = readable_parts(&m.content);
        let rcpt = m.rcpts[0].trim_matches(['<', '>']).to_owned();
        let at = html.find(&format!("{base}/d/")).expect("a drill link");
        let link: String = html[at..].split('"').next().unwrap().to_owned();
        assert!(html.contains(&format!("{link}/o.gif")), "the open pixel");
        assert!(html.contains("员工"), "{html}");
        links.insert(rcpt.clone(), link);
        raw_of.insert(rcpt, m.content);
    }
    assert_eq!(links.len(), 20);
    let people: Vec<&String> = links.keys().collect();
    // Three open it (their client loads images).
    for p in &people[10..13] {
        let out = Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("{}/o.gif", links[*p]))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    }
    // Five click, two of them type their password and submit.
    let clickers: Vec<String> = people[..5].iter().map(|p| links[*p].clone()).collect();
    Browser::ready().run(
        "drills.mjs",
        &[
            ("JM_LINKS", clickers.join(" ")),
            ("JM_SUBMIT", "2".into()),
            ("JM_TYPED", TYPED.into()),
            ("JM_URL", format!("{base}/")),
            ("JM_SEC_USER", user.clone()),
            ("JM_SEC_PASS", NEW_PASSWORD.into()),
            ("JM_NEW_PASS", NEW_PASSWORD.into()),
            ("JM_DRILL", id.clone()),
        ],
        || gw.log(),
    );
    // A client that does send what was typed is not listened to either.
    let out = Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "--data"])
        .arg(format!("user=user0&password={TYPED}"))
        .arg(&clickers[0])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    // One forwards theirs to the report address.
    let reporter = people[19];
    let forward = format!(
        "From: <{reporter}>\r\nTo: <report@example.com>\r\nSubject: Fwd: suspicious\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=f\r\n\r\n--f\r\nContent-Type: text/plain\r\n\r\nThis looks fake.\r\n\
         --f\r\nContent-Type: message/rfc822\r\n\r\n{}\r\n--f--\r\n",
        raw_of[reporter]
            .replace('\n', "\r\n")
            .replace("\r\r\n", "\r\n")
    );
    let mut c = Client::ready(gw.addr);
    assert_eq!(
        c.send_mail(reporter, &["report@example.com"], forward.as_bytes())
            .code,
        250
    );

    let results = || json(&console.request(&format!("/api/drills/{id}"), &[]).1);
    assert!(
        wait_until(Duration::from_secs(20), || results()["total"]["reported"]
            == 1),
        "{}",
        results()
    );
    let r = results();
    let total = &r["total"];
    assert_eq!(
        [
            &total["targets"],
            &total["sent"],
            &total["clicked"],
            &total["submitted"],
            &total["reported"]
        ],
        [20, 20, 5, 2, 1],
        "{total}"
    );
    assert_eq!(total["opened"], 8, "3 pixels + 5 clicks: {total}");
    let departments = r["departments"].as_array().unwrap();
    assert_eq!(departments.len(), 4);
    let clicked: u64 = departments
        .iter()
        .map(|d| d[1]["clicked"].as_u64().unwrap())
        .sum();
    assert_eq!(clicked, 5);
    // Exported.
    let (code, csv) = console.request(&format!("/api/drills/{id}/export.csv"), &[]);
    assert_eq!(code, 200);
    assert_eq!(csv.lines().count(), 21, "{csv}");

    // What was typed is nowhere: not in any file of the gateway's directory (its data — the
    // databases, the spool — its configuration and its log).
    let grep = Command::new("grep")
        .args(["-r", "-a", "-l", TYPED])
        .arg(gw.dir.path())
        .output()
        .unwrap();
    assert!(
        grep.stdout.is_empty(),
        "the typed password is in {}",
        String::from_utf8_lossy(&grep.stdout)
    );
    assert!(
        !gw.log().contains(TYPED),
        "the typed password is in the log"
    );
}
