//! Harness for end-to-end tests and benchmarks: starts the real `jianmen` binary with a generated
//! configuration, Postfix's `smtp-sink` as the downstream, and talks SMTP to the gateway with a
//! small blocking client (for what swaks cannot say: BDAT, NUL bytes, exact pipelining).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod postgres;

/// The `jianmen` binary under test: `$JIANMEN_BIN`, or the one built beside this test binary.
pub fn jianmen_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("JIANMEN_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("jianmen");
    assert!(
        bin.exists(),
        "{} not found: build it first (tests/run.sh does `cargo build --bins`)",
        bin.display()
    );
    bin
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `f` until it returns true or `timeout` passes; returns the last result.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until something answers SMTP with a 220 greeting on `addr`.
pub fn wait_for_smtp(addr: SocketAddr, timeout: Duration) -> bool {
    wait_until(timeout, || {
        let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = [0u8; 3];
        let ok = (&s).read_exact(&mut buf).is_ok() && &buf == b"220";
        let _ = (&s).write_all(b"QUIT\r\n");
        ok
    })
}

/// How to configure a gateway under test.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Port of the downstream for `example.com` (the protected domain).
    pub downstream: u16,
    /// Port of the downstream for every other domain (where bounces go).
    pub elsewhere: u16,
    /// Extra `key = value` lines for `[smtp]`.
    pub smtp: Vec<String>,
    /// Extra `key = value` lines for `[delivery]`.
    pub delivery: Vec<String>,
    /// Data directory; a fresh one inside the gateway's temp dir when `None`.
    pub data_dir: Option<PathBuf>,
    /// `tls` policy of the route to `downstream` (empty: the line left out, for the default).
    pub downstream_tls: &'static str,
    /// Extra lines of the route to `downstream` (`tls_ca`, `tls_name`, `tls_pins`).
    pub route: Vec<String>,
    /// Protected domains besides `example.com`.
    pub also_protected: Vec<String>,
    /// Route every other domain to `elsewhere`; when false they go by MX lookup.
    pub catch_all: bool,
    /// `key = value` lines for `[scan]`; by default scanning is off so that queue tests see
    /// messages unchanged (scan tests replace this).
    pub scan: Vec<String>,
    /// Whole TOML sections appended to the configuration (e.g. `[dns]`, `[scan.clamav]`).
    pub sections: Vec<String>,
    /// Extra `[tls]` lines (`self_signed = true` unless they give a `cert`).
    pub tls: Vec<String>,
    /// `server.user`: `root` by default, as the suites run as root on CI and their files are
    /// root's (only the privilege test names an account to drop to).
    pub user: String,
    /// SMTP port on 127.0.0.1; a free one when `None`.
    pub port: Option<u16>,
    /// Environment variables for the gateway process.
    pub env: Vec<(String, String)>,
    /// Run under a supervisor that starts `jianmen serve` again whenever it exits, as
    /// systemd's `Restart=` does (its pid is in `<dir>/gateway.pid`).
    pub supervised: bool,
}

impl Setup {
    /// A gateway for `example.com` delivering to `downstream`, bounces to `elsewhere`.
    pub fn new(downstream: u16, elsewhere: u16) -> Self {
        Self {
            downstream,
            elsewhere,
            smtp: Vec::new(),
            delivery: vec!["retry_initial_secs = 1".into(), "retry_max_secs = 2".into()],
            data_dir: None,
            downstream_tls: "none",
            route: Vec::new(),
            also_protected: Vec::new(),
            catch_all: true,
            scan: vec!["enabled = false".into()],
            sections: Vec::new(),
            tls: Vec::new(),
            user: "root".into(),
            port: None,
            env: Vec::new(),
            supervised: false,
        }
    }

    /// Turns scanning on (authentication off: tests have no DNS unless they start one) and
    /// adds `[scan]` lines.
    pub fn scanning(mut self, lines: &[&str]) -> Self {
        self.scan = vec!["enabled = true".into(), "auth = false".into()];
        self.scan.extend(lines.iter().map(|l| l.to_string()));
        self
    }

    /// Appends a whole TOML section (header line included).
    pub fn section(mut self, text: &str) -> Self {
        self.sections.push(text.to_owned());
        self
    }

    /// Serves the console on 127.0.0.1:`port` (the `[console]` section's other keys at their
    /// defaults).
    pub fn console(self, port: u16) -> Self {
        self.section(&format!("[console]\nlisten = \"127.0.0.1:{port}\""))
    }

    /// Adds a `[smtp]` line.
    pub fn smtp(mut self, line: &str) -> Self {
        self.smtp.push(line.to_owned());
        self
    }

    /// A gateway the organisation's server at `inside` sends out through: Internet domains
    /// resolved by `dns` with their MX hosts on port `mx_port` (no TLS, DANE or MTA-STS), the
    /// sending-behaviour watch off, no catch-all route; `example.com`'s route (and bounces) to
    /// port `elsewhere`.
    pub fn sending_out(elsewhere: u16, inside: &str, dns: &Dns, mx_port: u16) -> Self {
        let mut setup = Self::new(elsewhere, elsewhere)
            .smtp(&format!("internal_relays = [\"{inside}\"]"))
            .delivery(&format!("mx_port = {mx_port}"))
            .delivery("mx_tls = \"none\"")
            .delivery("dane = false")
            .delivery("mta_sts = false")
            .section(&format!("[dns]\nresolver = \"{}:{}\"", dns.ip, dns.port))
            .section("[behaviour]\nenabled = false");
        setup.catch_all = false;
        setup
    }

    /// Adds a `[delivery]` line.
    pub fn delivery(mut self, line: &str) -> Self {
        self.delivery.push(line.to_owned());
        self
    }

    fn toml(&self, data_dir: &Path, port: u16) -> String {
        format!(
            r#"[server]
hostname = "gw.jianmen.test"
data_dir = "{data}"
user = "{user}"

[smtp]
listen = ["127.0.0.1:{port}"]
{smtp}

[tls]
{tls_lines}

[domains]
protected = [{protected}]

[[route]]
domain = "example.com"
host = "127.0.0.1"
port = {downstream}
{tls}
{route}
{catch_all}
[delivery]
{delivery}

[metrics]
listen = "127.0.0.1:0"

[scan]
{scan}

{sections}
"#,
            scan = self.scan.join("\n"),
            tls_lines = if self.tls.iter().any(|l| l.starts_with("cert ")) {
                self.tls.join("\n")
            } else {
                std::iter::once("self_signed = true".to_owned())
                    .chain(self.tls.iter().cloned())
                    .collect::<Vec<_>>()
                    .join("\n")
            },
            route = self.route.join("\n"),
            sections = self.sections.join("\n\n"),
            data = data_dir.display(),
            user = self.user,
            smtp = self.smtp.join("\n"),
            delivery = self.delivery.join("\n"),
            downstream = self.downstream,
            tls = if self.downstream_tls.is_empty() {
                String::new()
            } else {
                format!("tls = \"{}\"", self.downstream_tls)
            },
            protected = std::iter::once("example.com")
                .chain(self.also_protected.iter().map(String::as_str))
                .map(|d| format!("\"{d}\""))
                .collect::<Vec<_>>()
                .join(", "),
            catch_all = if self.catch_all {
                format!(
                    "\n[[route]]\ndomain = \"*\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
                    self.elsewhere
                )
            } else {
                String::new()
            },
        )
    }
}

/// A running `jianmen serve`.
pub struct Gateway {
    child: Option<Child>,
    env: Vec<(String, String)>,
    supervised: bool,
    /// Scratch directory holding the config, data (by default) and log.
    pub dir: tempfile::TempDir,
    /// The SMTP address.
    pub addr: SocketAddr,
    /// The configuration file.
    pub config: PathBuf,
}

impl Gateway {
    /// Writes the configuration and starts the gateway; waits for its greeting.
    pub fn start(setup: &Setup) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = setup.port.unwrap_or_else(free_port);
        let data = setup
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        let config = dir.path().join("jianmen.toml");
        std::fs::write(&config, setup.toml(&data, port)).expect("write config");
        let mut gw = Gateway {
            child: None,
            env: setup.env.clone(),
            supervised: setup.supervised,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            config,
        };
        gw.spawn();
        gw
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("gateway.log"))
            .expect("log file");
        let mut cmd = if self.supervised {
            let _ = std::fs::remove_file(self.dir.path().join("stop"));
            let mut sh = Command::new("sh");
            sh.args([
                "-c",
                r#"cd "$1" && while [ ! -e stop ]; do "$2" serve --config "$3" & echo $! > gateway.pid; wait $!; sleep 0.2; done"#,
                "supervisor",
            ])
            .arg(self.dir.path())
            .arg(jianmen_bin())
            .arg(&self.config);
            sh
        } else {
            let mut gw = Command::new(jianmen_bin());
            gw.args(["serve", "--config"]).arg(&self.config);
            gw
        };
        let child = cmd
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("JIANMEN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn jianmen");
        self.child = Some(child);
        assert!(
            wait_for_smtp(self.addr, Duration::from_secs(30)),
            "gateway did not start; log:\n{}",
            self.log()
        );
    }

    /// The gateway's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    /// Kills the process with SIGKILL (no chance to clean up); a supervised one is not
    /// started again.
    pub fn kill9(&mut self) {
        if self.supervised {
            let _ = std::fs::write(self.dir.path().join("stop"), b"");
            if let Some(pid) = self.pid() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM (what `systemctl stop` does).
    pub fn terminate(&self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }

    /// Waits for the process to exit by itself; its exit status, or `None` on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Stops the process as `systemctl restart` does (SIGTERM, then waits for it to exit) and
    /// starts it again.
    pub fn restart_gracefully(&mut self) {
        self.terminate();
        assert!(
            self.wait_exit(Duration::from_secs(60)).is_some(),
            "the gateway did not stop on SIGTERM; log:\n{}",
            self.log()
        );
        self.spawn();
    }

    /// The console account of `role` the gateway made at first start, from
    /// `data/initial-passwords.txt`: its name and generated password.
    pub fn initial_account(&self, role: &str) -> (String, String) {
        let path = self.dir.path().join("data/initial-passwords.txt");
        let passwords = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (written at first start)", path.display()));
        passwords
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f.len() == 3 && f[1] == role).then(|| (f[0].to_owned(), f[2].to_owned()))
            })
            .unwrap_or_else(|| panic!("no {role} account in {passwords}"))
    }

    /// Starts the process again on the same configuration and data.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// The Prometheus text from its metrics endpoint (found in its log).
    pub fn metrics(&self) -> String {
        use std::io::Read;
        let log = self.log();
        let addr = log
            .split("metrics on http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .expect("metrics address in log")
            .to_owned();
        let mut s = TcpStream::connect(addr).expect("metrics connect");
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .expect("metrics request");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("metrics reply");
        assert!(
            out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"),
            "{out}"
        );
        out
    }

    /// Runs `jianmen <args> --config <this config>` and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(jianmen_bin());
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let (head, tail) = args.split_at(1.min(args.len()));
        cmd.args(head).arg("--config").arg(&self.config).args(tail);
        cmd.output().expect("run jianmen cli")
    }

    /// Number of messages in the queue, from `jianmen queue list --json`.
    pub fn queue_len(&self) -> usize {
        let out = self.cli(&["queue", "list", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).lines().count()
    }

    /// The process id, while running (a supervised gateway's, not its supervisor's).
    pub fn pid(&self) -> Option<u32> {
        if self.supervised {
            return std::fs::read_to_string(self.dir.path().join("gateway.pid"))
                .ok()
                .and_then(|p| p.trim().parse().ok());
        }
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- gateway log ----\n{}", self.log());
        }
    }
}

/// How one start of smtp-sink went.
enum SinkStart {
    /// It answers with 220.
    Ready,
    /// It exited (its port was taken).
    Exited,
    /// It runs but did not answer in time.
    Silent,
}

/// Postfix's `smtp-sink`, dumping each message to a file.
pub struct Sink {
    child: Option<Child>,
    /// Where messages are dumped.
    pub dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
    options: Vec<String>,
    generation: usize,
    /// The port was picked here and nobody has been told it yet, so another may be picked if
    /// something takes it first.
    may_move: bool,
}

impl Sink {
    /// Starts a sink on a free port with extra smtp-sink `options` (e.g. `["-f", "RCPT"]`).
    pub fn start(options: &[&str]) -> Sink {
        Self::start_with(tempfile::tempdir().expect("tempdir"), None, options)
    }

    /// Starts a sink on `port`.
    pub fn start_on(port: u16, options: &[&str]) -> Sink {
        Self::start_with(tempfile::tempdir().expect("tempdir"), Some(port), options)
    }

    /// Starts a sink that dumps into RAM (/dev/shm), so that its own file creation does not
    /// weigh on what a benchmark measures.
    pub fn start_in_memory(options: &[&str]) -> Sink {
        let dir = tempfile::tempdir_in("/dev/shm").expect("tempdir in /dev/shm");
        Self::start_with(dir, None, options)
    }

    /// Starts a sink on `port`, or on a free one.
    fn start_with(dir: tempfile::TempDir, port: Option<u16>, options: &[&str]) -> Sink {
        // smtp-sink drops privileges to `nobody` when run as root.
        let _ = Command::new("chmod").arg("0777").arg(dir.path()).status();
        let mut sink = Sink {
            child: None,
            dir,
            port: port.unwrap_or_else(free_port),
            options: options.iter().map(|s| s.to_string()).collect(),
            generation: 0,
            may_move: port.is_none(),
        };
        sink.spawn();
        sink
    }

    fn spawn(&mut self) {
        // A free port can be taken by another test between its choice and smtp-sink's bind;
        // smtp-sink then exits, and a port picked here is picked again.
        for _ in 0..5 {
            match self.spawn_once() {
                SinkStart::Ready => {
                    self.may_move = false;
                    return;
                }
                SinkStart::Exited if self.may_move => self.port = free_port(),
                SinkStart::Exited | SinkStart::Silent => break,
            }
        }
        panic!("smtp-sink did not start on port {}", self.port);
    }

    fn spawn_once(&mut self) -> SinkStart {
        // A directory per run: a restarted smtp-sink may repeat its random file names.
        self.generation += 1;
        let template = format!("{}/d/{}/", self.dir.path().display(), self.generation);
        let mut cmd = Command::new("smtp-sink");
        if is_root() {
            cmd.args(["-u", "nobody"]);
        }
        cmd.args(["-d", &template])
            .args(&self.options)
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("256")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("smtp-sink (install postfix)");
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut exited = false;
        let answered = wait_until(Duration::from_secs(10), || {
            exited = matches!(child.try_wait(), Ok(Some(_)));
            exited || wait_for_smtp(addr, Duration::ZERO)
        });
        // Whoever answered, it was not this smtp-sink if it has exited since.
        exited = exited || matches!(child.try_wait(), Ok(Some(_)));
        self.child = Some(child);
        match (answered, exited) {
            (_, true) => SinkStart::Exited,
            (true, false) => SinkStart::Ready,
            (false, false) => SinkStart::Silent,
        }
    }

    /// Stops the sink.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts it with different options on the same port and dump directory.
    pub fn restart_with(&mut self, options: &[&str]) {
        self.stop();
        self.options = options.iter().map(|s| s.to_string()).collect();
        self.spawn();
    }

    /// Every message received completely so far, without smtp-sink's own headers (lines end
    /// in LF). smtp-sink creates a dump file when a transaction starts and keeps it open until
    /// the transaction ends, so files it still holds open are left out.
    pub fn messages(&self) -> Vec<SunkMessage> {
        let mut paths = Vec::new();
        if let Ok(runs) = std::fs::read_dir(self.dir.path().join("d")) {
            for run in runs.flatten() {
                if let Ok(entries) = std::fs::read_dir(run.path()) {
                    paths.extend(entries.flatten().map(|e| e.path()));
                }
            }
        }
        let open = self.open_files();
        paths
            .iter()
            .filter(|p| !open.contains(*p))
            .filter_map(|p| std::fs::read(p).ok())
            .map(|text| SunkMessage::parse(&text))
            .collect()
    }

    /// The messages with `subject` once at least one has arrived (within `timeout`; none
    /// after it).
    pub fn with_subject(&self, subject: &str, timeout: Duration) -> Vec<SunkMessage> {
        let of_subject = || {
            self.messages()
                .into_iter()
                .filter(|m| m.header("Subject").as_deref() == Some(subject))
                .collect::<Vec<_>>()
        };
        wait_until(timeout, || !of_subject().is_empty());
        of_subject()
    }

    /// Files the running smtp-sink has open.
    fn open_files(&self) -> std::collections::HashSet<PathBuf> {
        let Some(pid) = self.child.as_ref().map(Child::id) else {
            return Default::default();
        };
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| {
                fds.flatten()
                    .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A message as smtp-sink dumped it.
#[derive(Debug, Clone)]
pub struct SunkMessage {
    /// `X-Mail-Args` (the MAIL FROM argument).
    pub mail_from: String,
    /// `X-Rcpt-Args`, one per RCPT.
    pub rcpts: Vec<String>,
    /// `X-Client-Addr`: the address the message came from.
    pub client_addr: String,
    /// The message as delivered (LF line ends).
    pub content: String,
}

impl SunkMessage {
    fn parse(raw: &[u8]) -> Self {
        let text = String::from_utf8_lossy(raw).into_owned();
        let mut mail_from = String::new();
        let mut rcpts = Vec::new();
        let mut client_addr = String::new();
        let mut lines = text.split_inclusive('\n');
        let mut consumed = 0;
        for line in lines.by_ref() {
            consumed += line.len();
            let l = line.trim_end();
            if let Some(v) = l.strip_prefix("X-Mail-Args: ") {
                mail_from = v.to_owned();
            } else if let Some(v) = l.strip_prefix("X-Rcpt-Args: ") {
                rcpts.push(v.to_owned());
            } else if let Some(v) = l.strip_prefix("X-Client-Addr: ") {
                client_addr = v.to_owned();
            } else if l.starts_with("Received: from") {
                // smtp-sink's three-line Received ends its own headers.
                for _ in 0..2 {
                    if let Some(more) = lines.next() {
                        consumed += more.len();
                    }
                }
                break;
            }
        }
        let mut content = text[consumed.min(text.len())..].to_owned();
        // smtp-sink appends an empty line after each message.
        if content.ends_with("\n\n") {
            content.pop();
        }
        Self {
            mail_from,
            rcpts,
            client_addr,
            content,
        }
    }

    /// The value of the first header field `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        let mut found: Option<String> = None;
        for line in self.content.lines() {
            if line.is_empty() {
                break;
            }
            let continuation = line.starts_with(' ') || line.starts_with('\t');
            match &mut found {
                Some(value) if continuation => {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                Some(_) => break,
                None if line.to_ascii_lowercase().starts_with(&prefix) => {
                    found = Some(line[prefix.len()..].trim().to_owned());
                }
                None => {}
            }
        }
        found
    }

    /// The body (after the first empty line).
    pub fn body(&self) -> &str {
        self.content
            .split_once("\n\n")
            .map(|(_, b)| b)
            .unwrap_or("")
    }
}

/// A private CA, a server certificate it issued, and an unrelated CA, made with the openssl
/// command (P-256 keys, 30 days).
pub struct TestPki {
    /// The CA that issued `cert`.
    pub ca: PathBuf,
    /// A CA that issued nothing here.
    pub other_ca: PathBuf,
    /// The server certificate.
    pub cert: PathBuf,
    /// Its private key (PEM, unencrypted).
    pub key: PathBuf,
}

impl TestPki {
    /// Makes them in `dir`, the server certificate for `names` (DNS names or IP addresses; the
    /// first is its CN).
    pub fn make(dir: &Path, names: &[&str]) -> TestPki {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let new_key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        for ca in ["ca", "other-ca"] {
            let (key, cert, subject) = (
                format!("{ca}.key"),
                format!("{ca}.pem"),
                format!("/CN=Jianmen test {ca}"),
            );
            let rest = [
                "-keyout", &key, "-out", &cert, "-days", "30", "-subj", &subject,
            ];
            openssl(&[&["req", "-x509"][..], &new_key, &rest].concat());
        }
        let subject = format!("/CN={}", names[0]);
        let rest = [
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            &subject,
        ];
        openssl(&[&["req"][..], &new_key, &rest].concat());
        let alt: Vec<String> = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{n}"),
                Err(_) => format!("DNS:{n}"),
            })
            .collect();
        std::fs::write(
            dir.join("server.ext"),
            format!("subjectAltName = {}\n", alt.join(",")),
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "30",
            "-extfile",
            "server.ext",
        ]);
        TestPki {
            ca: dir.join("ca.pem"),
            other_ca: dir.join("other-ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }
}

/// OpenLDAP's slapd (Debian's package) on loopback, serving `dc=example,dc=com` with people
/// under `ou=people` (inetOrgPerson, `{SSHA}` passwords made by slappasswd): the organisation's
/// directory for the recipients' sign-in. With a [`TestPki`] it also listens with TLS
/// (ldaps) on `tls_port`. Stopped when dropped.
pub struct Slapd {
    /// The plain LDAP port.
    pub port: u16,
    /// The ldaps port, when started with a certificate.
    pub tls_port: Option<u16>,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Slapd {
    /// Starts it with `people`: (uid, mail addresses, password).
    pub fn start(people: &[(&str, &[&str], &str)], pki: Option<&TestPki>) -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("db")).unwrap();
        let tls = pki.map_or(String::new(), |p| {
            format!(
                "TLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
                p.cert.display(),
                p.key.display()
            )
        });
        std::fs::write(
            d.join("slapd.conf"),
            format!(
                "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/inetorgperson.schema\npidfile {dir}/slapd.pid\n\
                 modulepath /usr/lib/ldap\nmoduleload back_mdb\n{tls}database mdb\n\
                 suffix \"dc=example,dc=com\"\nrootdn \"cn=admin,dc=example,dc=com\"\n\
                 rootpw admin-secret\ndirectory {dir}/db\n",
                dir = d.display()
            ),
        )
        .unwrap();
        let mut ldif = String::from(
            "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\no: Example\n\
             dc: example\n\ndn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n",
        );
        for (uid, mails, password) in people {
            let hashed = Command::new("slappasswd")
                .args(["-s", password])
                .output()
                .expect("slappasswd (tests/run.sh installs slapd)");
            let hashed = String::from_utf8_lossy(&hashed.stdout).trim().to_owned();
            ldif.push_str(&format!(
                "\ndn: uid={uid},ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\n\
                 uid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: {hashed}\n"
            ));
            for m in *mails {
                ldif.push_str(&format!("mail: {m}\n"));
            }
        }
        std::fs::write(d.join("people.ldif"), ldif).unwrap();
        let out = Command::new("slapadd")
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-l")
            .arg(d.join("people.ldif"))
            .output()
            .expect("slapadd");
        assert!(out.status.success(), "slapadd: {out:?}");
        let port = free_port();
        let tls_port = pki.map(|_| free_port());
        let mut urls = format!("ldap://127.0.0.1:{port}/");
        if let Some(p) = tls_port {
            urls.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
        }
        // -d keeps it in the foreground, a child to stop.
        let child = Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .args(["-h", &urls, "-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slapd");
        let up = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "slapd did not start");
        Slapd {
            port,
            tls_port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A helper server started for a test, stopped when dropped.
pub struct Listening {
    child: Child,
    /// The TCP (and, for DNS servers, UDP) port it serves on 127.0.0.1.
    pub port: u16,
}

impl Listening {
    /// Spawns `command` (stdout discarded) and waits until it accepts TCP on `port`; `what`,
    /// its standard error and `explain()` say what failed otherwise.
    pub fn spawn(
        command: &mut Command,
        port: u16,
        what: &str,
        explain: impl Fn() -> String,
    ) -> Listening {
        Self::spawn_at(
            command,
            SocketAddr::from(([127, 0, 0, 1], port)),
            what,
            explain,
        )
    }

    /// As [`Listening::spawn`], for a server on another address.
    pub fn spawn_at(
        command: &mut Command,
        addr: SocketAddr,
        what: &str,
        explain: impl Fn() -> String,
    ) -> Listening {
        Self::try_spawn_at(command, addr, what)
            .unwrap_or_else(|stderr| panic!("{what} did not start: {stderr}{}", explain()))
    }

    /// As [`Listening::spawn_at`], returning what the server wrote to standard error when it
    /// exits or does not listen within 30 s.
    pub fn try_spawn_at(
        command: &mut Command,
        addr: SocketAddr,
        what: &str,
    ) -> Result<Listening, String> {
        let stderr = tempfile::tempfile().expect("tempfile");
        let mut child = command
            .stdout(Stdio::null())
            .stderr(stderr.try_clone().expect("tempfile"))
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut exited = None;
        let up = wait_until(Duration::from_secs(30), || {
            exited = child.try_wait().ok().flatten();
            exited.is_some() || TcpStream::connect(addr).is_ok()
        });
        if up && exited.is_none() {
            return Ok(Listening {
                child,
                port: addr.port(),
            });
        }
        let _ = child.kill();
        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
        let mut written = String::new();
        let mut stderr = stderr;
        let _ = std::io::Seek::rewind(&mut stderr);
        let _ = std::io::Read::read_to_string(&mut stderr, &mut written);
        Err(format!("({status}) {written}"))
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// dnsmasq serving fixed records on 127.0.0.1, authoritative for `.example` (unknown names
/// there get NXDOMAIN).
pub struct Dns {
    server: Listening,
    _log: tempfile::TempDir,
    /// Its UDP/TCP port.
    pub port: u16,
    /// Its address.
    pub ip: std::net::IpAddr,
}

impl Dns {
    /// Starts dnsmasq with extra record options such as `--mx-host=…` and `--host-record=…`.
    pub fn start(records: &[String]) -> Dns {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], free_port())), records)
    }

    /// Starts dnsmasq on `addr`. Port 53 on an address of its own is what a program that reads
    /// `/etc/resolv.conf` (Postfix) can be pointed at.
    pub fn start_at(addr: SocketAddr, records: &[String]) -> Dns {
        Self::try_start_at(addr, records).unwrap_or_else(|why| panic!("{why}"))
    }

    /// dnsmasq on port 53 of a loopback address of its own ([`free_dns_addr`]); another
    /// address is tried when one is taken between the probe and dnsmasq's bind.
    fn start_on_port_53(records: &[String]) -> Dns {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start_at(free_dns_addr(), records) {
                Ok(dns) => return dns,
                Err(why) => failures.push(why),
            }
        }
        panic!("{}", failures.join("\n"))
    }

    fn try_start_at(addr: SocketAddr, records: &[String]) -> Result<Dns, String> {
        // Its log, for when it does not start (it writes as `nobody`).
        let log_dir = tempfile::tempdir().expect("tempdir");
        let _ = Command::new("chmod")
            .arg("0777")
            .arg(log_dir.path())
            .status();
        let log = log_dir.path().join("dnsmasq.log");
        let mut command = Command::new("dnsmasq");
        command
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--local=/example/",
                "--local-ttl=0",
            ])
            .arg(format!("--log-facility={}", log.display()))
            // A pid file of its own: dnsmasqs starting together all wrote /var/run/dnsmasq.pid
            // (created exclusively), and the loser refused to start ("File exists").
            .arg(format!(
                "--pid-file={}",
                log_dir.path().join("dnsmasq.pid").display()
            ))
            .arg(format!("--listen-address={}", addr.ip()))
            .arg(format!("--port={}", addr.port()))
            .args(records);
        let what = "dnsmasq (install dnsmasq-base)";
        let server = Listening::try_spawn_at(&mut command, addr, what).map_err(|stderr| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("{what} did not start on {addr}: {stderr}{log}")
        })?;
        Ok(Dns {
            server,
            _log: log_dir,
            port: addr.port(),
            ip: addr.ip(),
        })
    }

    /// Its answer to an A query for `name`: the first address, if any (None for NXDOMAIN,
    /// no data or no answer within a second).
    pub fn a(&self, name: &str) -> Option<std::net::Ipv4Addr> {
        let mut query = vec![0x4a, 0x4d, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.trim_end_matches('.').split('.') {
            query.push(label.len() as u8);
            query.extend_from_slice(label.as_bytes());
        }
        query.extend_from_slice(&[0, 0, 1, 0, 1]);
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
        socket.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        socket.send_to(&query, (self.ip, self.port)).ok()?;
        let mut reply = [0u8; 512];
        let n = socket.recv(&mut reply).ok()?;
        let answers = u16::from_be_bytes([reply[6], reply[7]]);
        // Answers follow the echoed question; an A record ends in its four address bytes.
        (answers > 0 && n >= query.len() + 16).then(|| {
            std::net::Ipv4Addr::new(reply[n - 4], reply[n - 3], reply[n - 2], reply[n - 1])
        })
    }

    /// dnsmasq on `at` answering for `far.test` (an Internet domain) with an MX host on
    /// 127.0.0.1, and `more` options.
    pub fn far_test(at: SocketAddr, more: &[String]) -> Dns {
        Self::start_at(at, &Self::far_test_records(more))
    }

    fn far_test_records(more: &[String]) -> Vec<String> {
        let mut records = vec![
            "--mx-host=far.test,mx.far.test,10".to_owned(),
            "--host-record=mx.far.test,127.0.0.1".to_owned(),
            "--local=/far.test/".to_owned(),
        ];
        records.extend_from_slice(more);
        records
    }

    /// Makes it read its hosts files (`--addn-hosts=…`) again and forget what it cached.
    pub fn reload(&self) {
        let _ = Command::new("kill")
            .arg("-HUP")
            .arg(self.server.child.id().to_string())
            .status();
    }
}

/// dnsmasq on a port-53 address of its own, serving `far.test`'s MX and the block list
/// `bl.test`, whose entries change while it runs (the addresses listed are in a hosts file
/// dnsmasq reads again on SIGHUP).
pub struct BlockListDns {
    /// The server: `dns.ip` is what a resolv.conf names.
    pub dns: Dns,
    hosts: PathBuf,
    _dir: tempfile::TempDir,
}

impl BlockListDns {
    /// Starts it with nothing listed.
    pub fn start() -> BlockListDns {
        let dir = tempfile::tempdir().expect("tempdir");
        let hosts = dir.path().join("listed");
        std::fs::write(&hosts, "").expect("hosts file");
        // dnsmasq reads the file again as `nobody`.
        let _ = Command::new("chmod").arg("0755").arg(dir.path()).status();
        let _ = Command::new("chmod").arg("0644").arg(&hosts).status();
        let dns = Dns::start_on_port_53(&Dns::far_test_records(&[
            "--local=/bl.test/".to_owned(),
            format!("--addn-hosts={}", hosts.display()),
        ]));
        BlockListDns {
            dns,
            hosts,
            _dir: dir,
        }
    }

    /// Lists exactly `listed` (none: clears the list) and waits until the server answers so.
    pub fn list(&self, listed: &[std::net::Ipv4Addr]) {
        let name = |ip: &std::net::Ipv4Addr| {
            let o = ip.octets();
            format!("{}.{}.{}.{}.bl.test", o[3], o[2], o[1], o[0])
        };
        let lines: String = listed
            .iter()
            .map(|ip| format!("127.0.0.2 {}\n", name(ip)))
            .collect();
        std::fs::write(&self.hosts, lines).expect("hosts file");
        self.dns.reload();
        let probe = name(&listed.first().copied().unwrap_or([127, 0, 0, 2].into()));
        let want = !listed.is_empty();
        assert!(
            wait_until(Duration::from_secs(10), || self.dns.a(&probe).is_some()
                == want),
            "dnsmasq did not take the new list"
        );
    }
}

/// A free loopback address of its own with port 53 unused, for a DNS server that programs
/// reading `/etc/resolv.conf` can be pointed at.
pub fn free_dns_addr() -> SocketAddr {
    // Each call in a process starts further along, so a retry does not probe the same address.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    for n in 0..200u32 {
        let seed = std::process::id()
            .wrapping_add(call.wrapping_mul(104_729))
            .wrapping_add(n.wrapping_mul(7919));
        let ip = std::net::Ipv4Addr::new(
            127,
            53,
            (seed % 250) as u8 + 1,
            (seed / 250 % 250) as u8 + 1,
        );
        let addr = SocketAddr::from((ip, 53));
        if std::net::UdpSocket::bind(addr).is_ok() && std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no loopback address with port 53 free (run as root)");
}

/// Runs Postfix's `smtp-source`: `messages` messages with `size`-byte bodies from
/// sender@outside.example to user@example.com over `sessions` parallel sessions; returns its
/// wall time. Panics if it reports a failure.
pub fn smtp_source(target: &str, messages: usize, sessions: usize, size: usize) -> Duration {
    let started = Instant::now();
    let out = Command::new("smtp-source")
        .args(["-m", &messages.to_string(), "-s", &sessions.to_string()])
        .args(["-l", &size.to_string()])
        .args(["-f", "sender@outside.example", "-t", "user@example.com"])
        .arg(target)
        .output()
        .expect("smtp-source (install postfix)");
    assert!(
        out.status.success(),
        "smtp-source failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

/// Runs swaks with `args` and returns its output (it is told never to wait for a TTY).
pub fn swaks(args: &[&str]) -> Output {
    Command::new("swaks")
        .args(args)
        .args(["--timeout", "30"])
        .stdin(Stdio::null())
        .output()
        .expect("swaks (install swaks)")
}

/// One SMTP reply as read by [`Client`].
#[derive(Debug, Clone)]
pub struct Reply {
    /// Reply code.
    pub code: u16,
    /// All lines, codes included.
    pub text: String,
}

/// A blocking SMTP client that says exactly what it is told.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects and reads the greeting (returned).
    pub fn connect(addr: SocketAddr) -> (Client, Reply) {
        Client::greeted(TcpStream::connect(addr).expect("connect"))
    }

    /// Connects from `source` (a loopback address such as 127.0.5.1, standing in for another
    /// host) and reads the greeting (returned).
    pub fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> (Client, Reply) {
        let domain = socket2::Domain::for_address(addr);
        let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None).expect("socket");
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .expect("bind the source address");
        socket.connect(&addr.into()).expect("connect");
        Client::greeted(socket.into())
    }

    fn greeted(stream: TcpStream) -> (Client, Reply) {
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let writer = stream.try_clone().expect("clone");
        let mut c = Client {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = c.read_reply();
        (c, greeting)
    }

    /// Connects, checks the greeting and says EHLO.
    pub fn ready(addr: SocketAddr) -> Client {
        let (mut c, greeting) = Client::connect(addr);
        assert_eq!(greeting.code, 220, "{}", greeting.text);
        let r = c.cmd("EHLO client.example.org");
        assert_eq!(r.code, 250, "{}", r.text);
        c
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// Reads one reply; code 0 if the connection closed.
    pub fn read_reply(&mut self) -> Reply {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    return Reply {
                        code: 0,
                        text: format!("{text}<closed>"),
                    };
                }
                Ok(_) => {}
            }
            text.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                return Reply { code, text };
            }
        }
    }

    /// Sends one command line and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.read_reply()
    }

    /// MAIL, RCPTs, DATA and the dot-stuffed `message`; returns the final reply (or the first
    /// failing one).
    pub fn send_mail(&mut self, from: &str, rcpts: &[&str], message: &[u8]) -> Reply {
        let r = self.cmd(&format!("MAIL FROM:<{from}>"));
        if r.code != 250 {
            return r;
        }
        for rcpt in rcpts {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>"));
            if r.code != 250 {
                return r;
            }
        }
        let r = self.cmd("DATA");
        if r.code != 354 {
            return r;
        }
        let mut wire = Vec::with_capacity(message.len() + 16);
        for line in message.split_inclusive(|&b| b == b'\n') {
            if line.first() == Some(&b'.') {
                wire.push(b'.');
            }
            wire.extend_from_slice(line);
        }
        if !wire.ends_with(b"\r\n") {
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b".\r\n");
        self.send(&wire);
        self.read_reply()
    }
}

/// A small test message with a unique token in its Subject and Message-ID.
pub fn test_message(token: &str, body_lines: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Sender <sender@outside.example>\r\nTo: <user@example.com>\r\n\
         Subject: test {token}\r\nMessage-ID: <{token}@outside.example>\r\n\r\n"
    );
    for i in 0..body_lines {
        m.push_str(&format!(
            "line {i} of message {token}: the quick brown fox\r\n"
        ));
    }
    m.into_bytes()
}

/// Base64 of `data` (standard alphabet, padded), for MIME parts.
pub fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A message from an outside vendor with `data` attached as `name`.
pub fn with_attachment(subject: &str, name: &str, data: &[u8]) -> Vec<u8> {
    format!(
        "From: Vendor <billing@vendor.test>\r\nTo: user@example.com\r\nSubject: {subject}\r\n\
         Date: Mon, 2 Jun 2025 10:00:00 +0800\r\nMessage-ID: <{subject}@vendor.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease see the attached file.\r\n\
         --b\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        b64(data)
    )
    .into_bytes()
}

/// The hostile messages of the hardening review (issue 20), built as the review sent them.
pub mod hostile {
    use std::io::Write;

    fn headers(subject: &str) -> String {
        format!(
            "From: a@outside.test\r\nTo: user@example.com\r\nSubject: {subject}\r\n\
             Date: Mon, 2 Jun 2025 10:00:00 +0800\r\nMessage-ID: <{}@outside.test>\r\n",
            subject.len()
        )
    }

    /// `=?a?B?x` 150,000 times, folded into lines of 70 so that only the decoder sees 1 MB.
    pub fn encoded_word_subject() -> Vec<u8> {
        let words = "=?a?B?x".repeat(150_000);
        let folded: Vec<&str> = words
            .as_bytes()
            .chunks(70)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!("{}\r\nbody\r\n", headers(&folded.join("\r\n "))).into_bytes()
    }

    /// An HTML body of 1 MiB of `<`, in lines of 76.
    pub fn html_of_open_brackets() -> Vec<u8> {
        let line = "<".repeat(76);
        let body: Vec<&str> = std::iter::repeat_n(line.as_str(), 1024 * 1024 / 76).collect();
        format!(
            "{}MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n{}\r\n",
            headers("brackets"),
            body.join("\r\n")
        )
        .into_bytes()
    }

    /// A zip of 2,000 empty files and then a program.
    pub fn zip_with_a_program_behind_2000_members() -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        for i in 0..2000 {
            w.start_file(format!("{i}.txt"), opts).unwrap();
        }
        w.start_file("payload.exe", opts).unwrap();
        w.write_all(b"MZ\x90\x00\x03\x00\x00\x00").unwrap();
        let zip = w.finish().unwrap().into_inner();
        super::with_attachment("members", "files.zip", &zip)
    }

    /// One header line of 1 MB.
    pub fn megabyte_header_line() -> Vec<u8> {
        format!(
            "{}X-Long: {}\r\n\r\nbody\r\n",
            headers("long"),
            "a".repeat(1_000_000)
        )
        .into_bytes()
    }
}

/// SHA-256 of `data`, hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The EICAR antivirus test string (not malware; every scanner is meant to flag it).
pub const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// A real ClamAV `clamd` on a unix socket, with a one-signature database that flags EICAR
/// (freshclam cannot download here, and clamd will not start without a database).
pub struct Clamd {
    child: Child,
    _dir: tempfile::TempDir,
    /// Its socket.
    pub socket: PathBuf,
    /// Its database directory.
    pub db: PathBuf,
}

impl Clamd {
    /// Starts clamd and waits until its socket answers PING.
    pub fn start() -> Clamd {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("db");
        std::fs::create_dir(&db).expect("db dir");
        let hex: String = EICAR.bytes().map(|b| format!("{b:02x}")).collect();
        std::fs::write(
            db.join("jianmen-test.ndb"),
            format!("Jianmen.Test.EICAR:0:*:{hex}\n"),
        )
        .expect("write signature");
        let socket = dir.path().join("clamd.sock");
        let conf = dir.path().join("clamd.conf");
        let mut text = format!(
            "Foreground yes\nLocalSocket {}\nDatabaseDirectory {}\nLogFile {}\nScanArchive yes\n",
            socket.display(),
            db.display(),
            dir.path().join("clamd.log").display()
        );
        if is_root() {
            text.push_str("User root\n");
        }
        std::fs::write(&conf, text).expect("write clamd.conf");
        let clamd = ["/usr/sbin/clamd", "clamd"]
            .into_iter()
            .find(|p| !p.starts_with('/') || Path::new(p).exists())
            .unwrap_or("clamd");
        let child = Command::new(clamd)
            .arg(format!("--config-file={}", conf.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clamd (install clamav-daemon)");
        let ping = |s: &Path| {
            std::os::unix::net::UnixStream::connect(s)
                .and_then(|mut c| {
                    c.write_all(b"zPING\0")?;
                    let mut buf = [0u8; 5];
                    c.read_exact(&mut buf)?;
                    Ok(&buf[..4] == b"PONG")
                })
                .unwrap_or(false)
        };
        assert!(
            wait_until(Duration::from_secs(60), || ping(&socket)),
            "clamd did not start; log: {}",
            std::fs::read_to_string(dir.path().join("clamd.log")).unwrap_or_default()
        );
        Clamd {
            child,
            _dir: dir,
            socket,
            db,
        }
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a corpora directory laid out like `../shared/corpora` under `root` with one corpus
/// `name` (`<name>/<name>-dev.tar.zst` + `labels.tsv`) holding `members` (file name, label,
/// bytes); returns the corpora directory.
pub fn write_corpus(root: &Path, name: &str, members: &[(String, &str, Vec<u8>)]) -> PathBuf {
    let corpora = root.join("corpora");
    let corpus = corpora.join(name);
    let staging = root.join("members").join(name);
    std::fs::create_dir_all(&corpus).expect("mkdir corpus");
    std::fs::create_dir_all(&staging).expect("mkdir members");
    let mut labels = String::from("path\tlabel\tsource\n");
    for (file, label, bytes) in members {
        std::fs::write(staging.join(file), bytes).expect("write member");
        labels.push_str(&format!("{name}/{file}\t{label}\ttest\n"));
    }
    std::fs::write(corpus.join("labels.tsv"), labels).expect("write labels");
    let status = Command::new("tar")
        .args(["--zstd", "-cf"])
        .arg(corpus.join(format!("{name}-dev.tar.zst")))
        .arg("-C")
        .arg(root.join("members"))
        .arg(name)
        .status()
        .expect("tar (needs zstd)");
    assert!(status.success(), "tar failed");
    corpora
}

/// Runs `jianmen` with `args` and checks that it succeeded (its stderr is the failure message).
pub fn jianmen_ok<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(jianmen_bin())
        .args(args)
        .output()
        .expect("run jianmen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The console over HTTPS, with curl (its self-signed certificate accepted), keeping the
/// session cookie in a file.
pub struct Console {
    port: u16,
    cookies: PathBuf,
}

impl Console {
    /// The console on 127.0.0.1:`port`; the cookie jar goes in `dir`.
    pub fn new(port: u16, dir: &Path) -> Console {
        Console {
            port,
            cookies: dir.join("console-cookies"),
        }
    }

    /// Runs curl with `args` against `endpoint`; the status code and body.
    pub fn request(&self, endpoint: &str, args: &[&str]) -> (u16, String) {
        let out = Command::new("curl")
            .arg("-sk")
            .arg("-b")
            .arg(&self.cookies)
            .arg("-c")
            .arg(&self.cookies)
            .args(["-w", "\n%{http_code}"])
            .args(args)
            .arg(format!("https://127.0.0.1:{}{endpoint}", self.port))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// POSTs JSON `body` with the CSRF token.
    pub fn post_json(&self, endpoint: &str, csrf: &str, body: &str) -> (u16, String) {
        let csrf = format!("X-CSRF-Token: {csrf}");
        self.request(
            endpoint,
            &[
                "-H",
                "Content-Type: application/json",
                "-H",
                &csrf,
                "--data-binary",
                body,
            ],
        )
    }

    /// Signs in with a password that needs no change; the CSRF token.
    pub fn log_in(&self, user: &str, password: &str) -> String {
        let body = serde_json::json!({"username": user, "password": password}).to_string();
        let (code, body) = self.post_json("/api/login", "", &body);
        assert_eq!(code, 200, "{body}");
        let session: serde_json::Value = serde_json::from_str(&body).expect("session JSON");
        session["csrf"].as_str().expect("csrf").to_owned()
    }

    /// Signs in, changes the first-login password to `new`, signs in again; the CSRF token.
    pub fn sign_in(&self, user: &str, password: &str, new: &str) -> String {
        let csrf = self.log_in(user, password);
        let change =
            serde_json::json!({"current_password": password, "new_password": new}).to_string();
        let (code, body) = self.post_json("/api/password", &csrf, &change);
        assert!(code < 300, "{code} {body}");
        self.log_in(user, new)
    }

    /// POSTs an upgrade package.
    pub fn upload(&self, csrf: &str, package: &Path) -> (u16, String) {
        let csrf = format!("X-CSRF-Token: {csrf}");
        let file = format!("@{}", package.display());
        self.request(
            "/api/system/upgrade",
            &[
                "-H",
                "Content-Type: application/octet-stream",
                "-H",
                &csrf,
                "--data-binary",
                &file,
            ],
        )
    }
}

/// A private Postfix instance on 127.0.0.1 standing for the organisation's mail server: it
/// accepts its users' mail on `port` and relays everything to `relayhost` (the gateway),
/// sending XFORWARD, from the source address `bind` (another loopback address, so the gateway
/// can tell its relay from other clients). Its own configuration, queue and log live in a
/// temporary directory; the system's Postfix is left alone. Stopped on drop.
pub struct Postfix {
    dir: tempfile::TempDir,
    /// Its SMTP port on 127.0.0.1.
    pub port: u16,
}

impl Postfix {
    /// Starts the instance; `extra` are further main.cf lines.
    pub fn start(relayhost: SocketAddr, bind: &str, extra: &[&str]) -> Postfix {
        Self::launch(relayhost, bind, extra, None)
    }

    /// As [`Postfix::start`], with its DNS lookups (block lists, `reject_rbl_client`) sent to
    /// `nameserver` (port 53): it runs in a mount namespace of its own where
    /// `/etc/resolv.conf` names that server, the system's file untouched.
    pub fn start_resolving(
        relayhost: SocketAddr,
        bind: &str,
        extra: &[&str],
        nameserver: std::net::IpAddr,
    ) -> Postfix {
        Self::launch(relayhost, bind, extra, Some(nameserver))
    }

    fn launch(
        relayhost: SocketAddr,
        bind: &str,
        extra: &[&str],
        nameserver: Option<std::net::IpAddr>,
    ) -> Postfix {
        let dir = tempfile::tempdir().expect("tempdir");
        // Postfix's daemons run as `postfix` and must reach their queue inside.
        let _ = Command::new("chmod").arg("0755").arg(dir.path()).status();
        let (conf, queue, data) = (
            dir.path().join("conf"),
            dir.path().join("queue"),
            dir.path().join("data"),
        );
        for d in [&conf, &queue, &data] {
            std::fs::create_dir_all(d).expect("postfix dirs");
        }
        let chown = Command::new("chown").arg("postfix").arg(&data).status();
        assert!(
            chown.is_ok_and(|s| s.success()),
            "chown postfix (run as root)"
        );
        let port = free_port();
        // Debian's master.cf, with every service out of chroot and smtpd on our port.
        let master = std::fs::read_to_string("/usr/share/postfix/master.cf.dist")
            .expect("postfix's master.cf.dist (install postfix)");
        let master: Vec<String> = master
            .lines()
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                if line.starts_with('#') || line.starts_with(' ') || fields.len() < 8 {
                    return line.to_owned();
                }
                let name = if fields[0] == "smtp" && fields[1] == "inet" {
                    format!("127.0.0.1:{port}")
                } else {
                    fields[0].to_owned()
                };
                let mut f: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
                f[0] = name;
                f[4] = "n".into();
                f.join(" ")
            })
            .collect();
        std::fs::write(conf.join("master.cf"), master.join("\n") + "\n").expect("master.cf");
        let main = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {queue}\n\
             data_directory = {data}\n\
             myhostname = mail.corp.test\n\
             mydomain = corp.test\n\
             myorigin = corp.test\n\
             mydestination =\n\
             local_transport = error:no local delivery\n\
             alias_maps =\n\
             alias_database =\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\n\
             smtpd_relay_restrictions = permit_mynetworks, reject\n\
             relayhost = [{relay_ip}]:{relay_port}\n\
             smtp_bind_address = {bind}\n\
             smtp_send_xforward_command = yes\n\
             smtputf8_enable = no\n\
             maillog_file_prefixes = {dir}\n\
             maillog_file = {dir}/maillog\n\
             {extra}\n",
            queue = queue.display(),
            data = data.display(),
            relay_ip = relayhost.ip(),
            relay_port = relayhost.port(),
            dir = dir.path().display(),
            extra = extra.join("\n"),
        );
        std::fs::write(conf.join("main.cf"), main).expect("main.cf");
        let postfix = Postfix { dir, port };
        let out = match nameserver {
            None => postfix.command("start"),
            Some(ns) => {
                let resolv = postfix.dir.path().join("resolv.conf");
                std::fs::write(
                    &resolv,
                    format!("nameserver {ns}\noptions attempts:1 timeout:2\n"),
                )
                .expect("resolv.conf");
                Command::new("unshare")
                    .args(["--mount", "--propagation", "private", "sh", "-c"])
                    .arg(r#"mount --bind "$1" /etc/resolv.conf && exec postfix -c "$2" start"#)
                    .arg("postfix-in-namespace")
                    .arg(&resolv)
                    .arg(postfix.dir.path().join("conf"))
                    .stdin(Stdio::null())
                    .output()
                    .expect("unshare (util-linux)")
            }
        };
        assert!(
            out.status.success(),
            "postfix start: {out:?}\n{}",
            postfix.log()
        );
        assert!(
            wait_for_smtp(
                SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_secs(20)
            ),
            "postfix did not start:\n{}",
            postfix.log()
        );
        postfix
    }

    fn command(&self, what: &str) -> Output {
        Command::new("postfix")
            .arg("-c")
            .arg(self.dir.path().join("conf"))
            .arg(what)
            .stdin(Stdio::null())
            .output()
            .expect("postfix (install postfix)")
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Asks it to deliver what it has queued now.
    pub fn flush(&self) {
        let _ = self.command("flush");
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = self.command("stop");
    }
}

/// Sends `token@far.test` a test message (`lines` body lines) from user@example.com through
/// `gw`, connecting from `inside` (an internal relay); panics unless it is accepted.
pub fn send_out(gw: &Gateway, inside: &str, token: &str, lines: usize) {
    let source = inside.parse().expect("an address");
    let (mut c, _) = Client::connect_from(source, gw.addr);
    assert_eq!(c.cmd("EHLO mail.example.com").code, 250);
    let rcpt = format!("{token}@far.test");
    let reply = c.send_mail("user@example.com", &[&rcpt], &test_message(token, lines));
    assert_eq!(reply.code, 250, "{}", reply.text);
    c.cmd("QUIT");
}

/// A private Dovecot mail server on loopback: IMAPS (certificate and key given) and LMTP, the
/// users given, and a master user who may log in as any of them (`user*master`). Mail lives in
/// a temporary directory; stopped on drop.
pub struct Dovecot {
    run: DovecotRun,
    /// IMAPS port on 127.0.0.1.
    pub imaps_port: u16,
    /// LMTP port on 127.0.0.1.
    pub lmtp_port: u16,
}

impl Dovecot {
    /// Starts it with `users` (address, password), the master user `master` and TLS from `cert`
    /// and `key`.
    pub fn start(users: &[(&str, &str)], master: (&str, &str), cert: &Path, key: &Path) -> Dovecot {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        let _ = Command::new("chmod").arg("0755").arg(dir.path()).status();
        std::fs::create_dir_all(dir.path().join("mail")).expect("mail dir");
        let _ = Command::new("chmod")
            .arg("0777")
            .arg(dir.path().join("mail"))
            .status();
        let passwd = |list: &[(&str, &str)]| -> String {
            list.iter()
                .map(|(u, p)| format!("{u}:{{PLAIN}}{p}\n"))
                .collect()
        };
        for (name, text) in [("users", passwd(users)), ("masters", passwd(&[master]))] {
            std::fs::write(dir.path().join(name), text).expect("passwd file");
            let _ = Command::new("chmod")
                .arg("0644")
                .arg(dir.path().join(name))
                .status();
        }
        let (imaps_port, lmtp_port) = (free_port(), free_port());
        let conf = format!(
            "protocols = imap lmtp\nlisten = 127.0.0.1\nbase_dir = {d}/run\nstate_dir = {d}/state\n\
             log_path = {d}/dovecot.log\nssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\n\
             disable_plaintext_auth = no\nauth_mechanisms = plain login\n\
             auth_master_user_separator = *\n\
             default_login_user = dovenull\ndefault_internal_user = dovecot\n\
             mail_location = maildir:{d}/mail/%d/%n\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/masters\n  master = yes\n  result_success = continue\n}}\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/users\n}}\n\
             userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}/mail/%d/%n allow_all_users=yes\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = 0\n  }}\n  inet_listener imaps {{\n    port = {imaps_port}\n    ssl = yes\n  }}\n}}\n\
             service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {lmtp_port}\n  }}\n}}\n",
            cert = cert.display(),
            key = key.display(),
        );
        let run = DovecotRun::start(dir, &conf);
        let up = wait_until(Duration::from_secs(15), || {
            TcpStream::connect(("127.0.0.1", imaps_port)).is_ok()
                && TcpStream::connect(("127.0.0.1", lmtp_port)).is_ok()
        });
        assert!(up, "dovecot did not start:\n{}", run.log());
        Dovecot {
            run,
            imaps_port,
            lmtp_port,
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.run.log()
    }
}

/// A private Dovecot run from a configuration in its own directory, logging there; stopped on
/// drop.
struct DovecotRun {
    dir: tempfile::TempDir,
    child: Child,
}

impl DovecotRun {
    fn start(dir: tempfile::TempDir, conf: &str) -> DovecotRun {
        std::fs::write(dir.path().join("dovecot.conf"), conf).expect("dovecot.conf");
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(dir.path().join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dovecot (install dovecot-core, dovecot-imapd and dovecot-lmtpd)");
        DovecotRun { dir, child }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for DovecotRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private Dovecot serving only its authentication socket, for Postfix's SMTP AUTH
/// (`smtpd_sasl_type = dovecot`): the users and passwords given, nothing else. Its
/// configuration, socket and log live in a temporary directory; stopped on drop.
pub struct DovecotAuth {
    run: DovecotRun,
    /// The socket Postfix asks (`smtpd_sasl_path`).
    pub socket: PathBuf,
}

impl DovecotAuth {
    /// Starts it with `users` (name, password).
    pub fn start(users: &[(&str, &str)]) -> DovecotAuth {
        let dir = tempfile::tempdir().expect("tempdir");
        // Its auth process runs as `dovecot` and reads the users file.
        let _ = Command::new("chmod").arg("0755").arg(dir.path()).status();
        let d = dir.path().display().to_string();
        let passwd: String = users
            .iter()
            .map(|(u, p)| format!("{u}:{{PLAIN}}{p}\n"))
            .collect();
        std::fs::write(dir.path().join("users"), passwd).expect("users file");
        let _ = Command::new("chmod")
            .arg("0644")
            .arg(dir.path().join("users"))
            .status();
        let socket = dir.path().join("auth");
        let conf = format!(
            "protocols = none\nbase_dir = {d}/run\nstate_dir = {d}/state\n\
             log_path = {d}/dovecot.log\nssl = no\ndisable_plaintext_auth = no\n\
             auth_mechanisms = plain login\n\
             default_login_user = dovenull\ndefault_internal_user = dovecot\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/users\n}}\n\
             userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}\n}}\n\
             service auth {{\n  unix_listener {socket} {{\n    mode = 0666\n  }}\n}}\n",
            socket = socket.display()
        );
        let run = DovecotRun::start(dir, &conf);
        let up = wait_until(Duration::from_secs(15), || socket.exists());
        assert!(up, "dovecot did not start:\n{}", run.log());
        DovecotAuth { run, socket }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.run.log()
    }
}

/// Verifies a message's DKIM signature with an independent verifier, python3-dkim (dkimpy; with
/// python3-nacl for Ed25519): DNS is a function answering the one name given (argv[1]) with
/// the TXT value given (argv[2]), and nothing else. Prints `pass` or `fail`, dkimpy's reasons
/// on stderr.
const DKIMPY_VERIFY: &str = r#"
import logging, sys
import dkim
import nacl.signing
name, txt = sys.argv[1].encode(), sys.argv[2].encode()
def dns(qname, timeout=5):
    return txt if qname == name else None
logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)
ok = dkim.verify(sys.stdin.buffer.read(), logger=logging.getLogger("dkim"), dnsfunc=dns)
print("pass" if ok else "fail")
"#;

/// `python3-dkim`'s verdict (`pass` or `fail`) on `message` with `txt` published at `name`
/// (`selector._domainkey.domain.`); dkimpy's reasons are printed when it fails.
pub fn dkimpy(message: &[u8], name: &str, txt: &str) -> String {
    // Debian's python3, where python3-dkim is installed (not whatever `python3` is first on
    // the PATH).
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", DKIMPY_VERIFY, name, txt])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(message)
        .expect("message written");
    let out = child.wait_with_output().expect("python3 finishes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python3-dkim and python3-nacl are needed (tests/run.sh installs them): {stderr}"
    );
    let verdict = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if verdict != "pass" {
        eprintln!("dkimpy: {stderr}");
    }
    verdict
}

/// `n` valid 居民身份证 numbers (GB 11643: region 110105, born 1990-03-07, check character by
/// ISO 7064 MOD 11-2); with `valid` false, the same numbers with a wrong check character.
pub fn resident_ids(n: usize, valid: bool) -> Vec<String> {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    (0..n)
        .map(|i| {
            let body = format!("11010519900307{:03}", 100 + i * 7);
            let sum: u32 = body
                .bytes()
                .zip(WEIGHTS)
                .map(|(b, w)| u32::from(b - b'0') * w)
                .sum();
            let right = CHECK[(sum % 11) as usize];
            let check = if valid {
                right
            } else {
                // Any other character is wrong.
                CHECK[((sum + 1) % 11) as usize]
            };
            format!("{body}{}", check as char)
        })
        .collect()
}

/// A minimal but well-formed .xlsx (Office Open XML) workbook with one sheet whose rows are
/// `rows` (each cell an inline string, as spreadsheets store long digit strings).
pub fn xlsx(rows: &[Vec<String>]) -> Vec<u8> {
    fn escape(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }
    let mut sheet = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
         <worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheetData>",
    );
    for (r, row) in rows.iter().enumerate() {
        sheet.push_str(&format!("<row r=\"{}\">", r + 1));
        for (c, cell) in row.iter().enumerate() {
            let col = (b'A' + c as u8) as char;
            sheet.push_str(&format!(
                "<c r=\"{col}{}\" t=\"inlineStr\"><is><t>{}</t></is></c>",
                r + 1,
                escape(cell)
            ));
        }
        sheet.push_str("</row>");
    }
    sheet.push_str("</sheetData></worksheet>");
    let files: [(&str, String); 5] = [
        (
            "[Content_Types].xml",
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
             <Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
             <Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
             <Default Extension=\"xml\" ContentType=\"application/xml\"/>\
             <Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>\
             <Override PartName=\"/xl/worksheets/sheet1.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>\
             </Types>"
                .into(),
        ),
        (
            "_rels/.rels",
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
             <Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
             <Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"xl/workbook.xml\"/>\
             </Relationships>"
                .into(),
        ),
        (
            "xl/workbook.xml",
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
             <workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" \
             xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\">\
             <sheets><sheet name=\"客户\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>"
                .into(),
        ),
        (
            "xl/_rels/workbook.xml.rels",
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
             <Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
             <Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet\" Target=\"worksheets/sheet1.xml\"/>\
             </Relationships>"
                .into(),
        ),
        ("xl/worksheets/sheet1.xml", sheet),
    ];
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in files {
        zip.start_file(name, options).expect("zip entry");
        zip.write_all(content.as_bytes()).expect("zip write");
    }
    zip.finish().expect("zip finish");
    out.into_inner()
}

/// The console's browser runs (`tests/browser/*.mjs`: Debian's Chromium driven by
/// playwright-core, both installed by tests/run.sh); screenshots go to
/// `target/console-screenshots/`.
pub struct Browser {
    dir: PathBuf,
    shots: PathBuf,
}

impl Browser {
    /// Checks that Chromium and playwright-core are installed.
    pub fn ready() -> Browser {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser");
        assert!(
            dir.join("node_modules/playwright-core").exists()
                && Path::new("/usr/bin/chromium").exists(),
            "tests/run.sh installs chromium and playwright-core (npm ci in tests/browser)"
        );
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
        std::fs::create_dir_all(&shots).expect("screenshot directory");
        Browser { dir, shots }
    }

    /// Where the runs' screenshots go.
    pub fn shots(&self) -> &Path {
        &self.shots
    }

    /// Runs `script` with the `JM_*` variables `env` (and `JM_SHOTS`); when it fails, panics
    /// with its output and `log` (the gateway's, say). The browser lives in a time zone far
    /// from the gateway's (New York), so pages that showed its own would be caught.
    pub fn run(&self, script: &str, env: &[(&str, String)], log: impl FnOnce() -> String) {
        let out = Command::new("node")
            .arg(self.dir.join(script))
            .current_dir(&self.dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("JM_SHOTS", &self.shots)
            .env("TZ", "America/New_York")
            .output()
            .expect("node runs");
        assert!(
            out.status.success(),
            "browser run {script} failed:\n{}\n{}\n--- log ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            log()
        );
    }
}

/// Runs medallion over TLS (its own command serves plain HTTP only).
const MEDALLION: &str = r#"
import json, sys
from medallion import application_instance, register_blueprints, set_config
conf = json.load(open(sys.argv[1]))
for part in ("users", "taxii", "backend"):
    set_config(application_instance, part, conf)
register_blueprints(application_instance)
application_instance.run(host="127.0.0.1", port=int(sys.argv[2]), ssl_context=(sys.argv[3], sys.argv[4]))
"#;

/// Adds a STIX envelope to a TAXII collection, as a producer would.
const TAXII_ADD: &str = r#"
import base64, ssl, sys, urllib.request
url, ca, user, password = sys.argv[1:5]
request = urllib.request.Request(url, data=sys.stdin.buffer.read(), method="POST", headers={
    "Content-Type": "application/taxii+json;version=2.1",
    "Accept": "application/taxii+json;version=2.1",
    "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode(),
})
with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=ca)) as r:
    print(r.status, r.read().decode())
"#;

/// medallion, the OASIS TAXII 2.1 reference server (`JIANMEN_MEDALLION_PYTHON`: the Python
/// it is installed in), serving one writable collection over TLS with basic authentication.
pub struct Medallion {
    _server: Listening,
    _dir: tempfile::TempDir,
    python: String,
    ca: PathBuf,
    /// The collection's URL, as a TAXII client is configured with.
    pub collection: String,
    /// Its user.
    pub user: &'static str,
    /// Its password.
    pub password: &'static str,
}

impl Medallion {
    /// Starts it with an empty collection, its certificate (for 127.0.0.1) from `pki`.
    pub fn start(pki: &TestPki) -> Medallion {
        let python = std::env::var("JIANMEN_MEDALLION_PYTHON").unwrap_or_else(|_| "python3".into());
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let root = format!("https://127.0.0.1:{port}/intel/");
        let id = "472c94ae-3113-4e3e-a4dd-a9f4ac7471d4";
        let data = serde_json::json!({
            "/discovery": {"title": "test", "description": "", "contact": "",
                           "default": root, "api_roots": [root]},
            "intel": {
                "information": {"title": "intel", "description": "",
                                "versions": ["application/taxii+json;version=2.1"],
                                "max_content_length": 10_000_000},
                "status": [],
                "collections": [{"id": id, "title": "Indicators", "description": "",
                                 "can_read": true, "can_write": true,
                                 "media_types": ["application/stix+json;version=2.1"],
                                 "objects": [], "manifest": []}]
            }
        });
        let data_path = dir.path().join("data.json");
        std::fs::write(&data_path, data.to_string()).expect("medallion data");
        let conf = serde_json::json!({
            "backend": {"module": "medallion.backends.memory_backend",
                        "module_class": "MemoryBackend",
                        "filename": data_path},
            "users": {"feed": "feed-secret-7"},
            "taxii": {"max_page_size": 100}
        });
        let conf_path = dir.path().join("conf.json");
        std::fs::write(&conf_path, conf.to_string()).expect("medallion conf");
        let mut command = Command::new(&python);
        command
            .args(["-c", MEDALLION])
            .arg(&conf_path)
            .arg(port.to_string())
            .arg(&pki.cert)
            .arg(&pki.key);
        let server = Listening::spawn(
            &mut command,
            port,
            "medallion (tests/run.sh installs it; JIANMEN_MEDALLION_PYTHON)",
            String::new,
        );
        Medallion {
            _server: server,
            _dir: dir,
            python,
            ca: pki.ca.clone(),
            collection: format!("{root}collections/{id}/"),
            user: "feed",
            password: "feed-secret-7",
        }
    }

    /// Adds `objects` (STIX objects) to the collection.
    pub fn add(&self, objects: &[serde_json::Value]) {
        let mut child = Command::new(&self.python)
            .args(["-c", TAXII_ADD])
            .arg(format!("{}objects/", self.collection))
            .arg(&self.ca)
            .args([self.user, self.password])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python runs");
        let envelope = serde_json::json!({ "objects": objects }).to_string();
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(envelope.as_bytes())
            .expect("envelope written");
        let out = child.wait_with_output().expect("python finishes");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success()
                && said.starts_with("202")
                && said.contains("\"failure_count\": 0"),
            "medallion did not take the objects: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The readable (text/*, not attached) parts of a message, decoded, as Python's email package
/// reads them: what a mail client shows.
pub fn readable_parts(message: &str) -> String {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import email, sys\n\
             m = email.message_from_string(sys.stdin.read())\n\
             for p in m.walk():\n\
             \x20   if p.get_content_maintype() == 'text' and not p.get_filename():\n\
             \x20       print(p.get_payload(decode=True).decode(p.get_content_charset() or 'utf-8'))\n",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(message.as_bytes())
        .expect("message written");
    let out = child.wait_with_output().expect("python3 finishes");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
