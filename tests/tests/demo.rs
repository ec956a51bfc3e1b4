//! `jianmen demo`, as README's first command runs it (on free ports here): mail to a demo
//! recipient reaches the built-in mailbox with the verdict headers, the console and the metrics
//! answer, and everything it keeps stays in its directory.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use jianmen_testkit::{
    Client, Console, free_port, jianmen_bin, test_message, wait_for_smtp, wait_until,
};

struct Demo {
    child: Child,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn the_demo_delivers_to_its_mailbox_and_keeps_its_state_in_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (smtp, mailbox, console, metrics) = (free_port(), free_port(), free_port(), free_port());
    let out = dir.path().join("demo.out");
    let demo = Demo {
        child: Command::new(jianmen_bin())
            .arg("demo")
            .arg("--dir")
            .arg(dir.path())
            .args(["--smtp", &addr(smtp).to_string()])
            .args(["--mailbox", &addr(mailbox).to_string()])
            .args(["--console", &addr(console).to_string()])
            .args(["--metrics", &addr(metrics).to_string()])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the demo"),
    };
    assert!(wait_for_smtp(addr(smtp), Duration::from_secs(30)));

    // Mail to a demo recipient lands in the built-in mailbox, judged.
    let r = Client::ready(addr(smtp)).send_mail(
        "someone@example.org",
        &["alice@demo.jianmen.test"],
        &test_message("demo", 3),
    );
    assert_eq!(r.code, 250, "{r:?}");
    let inbox = dir.path().join("mailbox/alice@demo.jianmen.test");
    assert!(wait_until(Duration::from_secs(30), || std::fs::read_dir(
        &inbox
    )
    .is_ok_and(|mut d| d.next().is_some())));
    let delivered = std::fs::read_dir(&inbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(delivered).unwrap();
    assert!(text.contains("X-Jianmen-Verdict: clean"), "{text}");
    assert!(text.contains("Subject: test demo"), "{text}");
    // A recipient the demo does not know is refused at RCPT.
    let mut c = Client::ready(addr(smtp));
    c.cmd("MAIL FROM:<someone@example.org>");
    assert_eq!(c.cmd("RCPT TO:<mallory@demo.jianmen.test>").code, 550);

    // The first run prints the console's initial passwords, kept in the demo's directory.
    let passwords = std::fs::read_to_string(dir.path().join("data/initial-passwords.txt")).unwrap();
    let printed = std::fs::read_to_string(&out).unwrap();
    let sysadmin = passwords
        .lines()
        .find_map(|l| l.strip_prefix("sysadmin\tsystem\t"))
        .expect("a system administrator");
    assert!(printed.contains(sysadmin), "{printed}");

    // Metrics answer and count the message.
    let mut m = TcpStream::connect(addr(metrics)).unwrap();
    std::io::Write::write_all(&mut m, b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    std::io::Read::read_to_string(&mut m, &mut body).unwrap();
    assert!(body.contains("jianmen_messages_accepted_total 1"), "{body}");

    // The console answers; a package uploaded there is received under the demo's directory,
    // not /var/lib/jianmen (finding 10 of the hardening review). Garbage is refused.
    let web = Console::new(console, dir.path());
    let (code, _) = web.request("/", &[]);
    assert_eq!(code, 200);
    let csrf = web.sign_in("sysadmin", sysadmin, "Demo-Gate-2026!x");
    let junk = dir.path().join("junk.jup");
    std::fs::write(&junk, b"not a package").unwrap();
    let (code, body) = web.upload(&csrf, &junk);
    assert_eq!(code, 422, "{body}");
    assert!(dir.path().join("data/releases").is_dir());
    drop(demo);
}
