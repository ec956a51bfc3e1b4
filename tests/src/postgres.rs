//! A throwaway PostgreSQL cluster for the store and cluster-mode tests: Debian's server binaries
//! (package `postgresql`, installed by tests/run.sh), `initdb` into a temporary folder, one free
//! loopback port, password (SCRAM) authentication as a gateway would use, no system service.
//! Stopped and removed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{TestPki, free_port, wait_until};

/// The database role the tests connect as, and its password.
const ROLE: &str = "jianmen";
const PASSWORD: &str = "cluster-test-secret";

/// A running PostgreSQL server of the test's own.
pub struct Postgres {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    child: Child,
    dir: tempfile::TempDir,
}

/// The folder of the newest PostgreSQL server installed (`$JIANMEN_PG_BIN`, or Debian's
/// `/usr/lib/postgresql/<version>/bin`).
fn server_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("JIANMEN_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server (tests/run.sh installs Debian's postgresql)")
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("no /usr/lib/postgresql/<version>/bin/initdb")
}

/// The uid and gid of `user` in /etc/passwd.
fn account(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&user) && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

impl Postgres {
    /// Creates and starts a cluster. As root (which PostgreSQL refuses to run as) it runs as
    /// the `postgres` account the Debian package made.
    pub fn start() -> Postgres {
        Self::start_with(None, false, free_port())
    }

    /// As [`Postgres::start`], on `port` (a database a gateway was told of before it ran).
    pub fn start_on(port: u16) -> Postgres {
        Self::start_with(None, false, port)
    }

    /// As [`Postgres::start`], serving TLS (besides plain connections) with `pki`'s server
    /// certificate.
    pub fn start_with_tls(pki: &TestPki) -> Postgres {
        Self::start_with(Some(pki), false, free_port())
    }

    /// As [`Postgres::start`], with every commit flushed to disk as a production server's is
    /// (for benchmarks beside SQLite, which syncs its commits).
    pub fn start_durable() -> Postgres {
        Self::start_with(None, true, free_port())
    }

    fn start_with(pki: Option<&TestPki>, durable: bool, port: u16) -> Postgres {
        use std::os::unix::process::CommandExt;
        let bin = server_bin();
        let dir = tempfile::tempdir().expect("tempdir");
        let owner = crate::is_root().then(|| account("postgres").expect("the postgres account"));
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let pwfile = dir.path().join("password");
        std::fs::write(&pwfile, PASSWORD).expect("password file");
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).expect("chown");
        }
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                ROLE,
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdout(Stdio::null());
        if let Some((uid, gid)) = owner {
            initdb.uid(uid).gid(gid);
        }
        let out = initdb.output().expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut tls = Vec::new();
        if let Some(pki) = pki {
            // The server wants its key private and its own.
            for (from, name) in [(&pki.cert, "server.crt"), (&pki.key, "server.key")] {
                let to = dir.path().join(name);
                std::fs::copy(from, &to).expect("copy certificate");
                std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                    .expect("chmod");
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::chown(&to, Some(uid), Some(gid)).expect("chown");
                }
                let setting = if name == "server.crt" {
                    "ssl_cert_file"
                } else {
                    "ssl_key_file"
                };
                tls.push(format!("{setting}={}", to.display()));
            }
            tls.push("ssl=on".to_owned());
        }
        // Loopback TCP only (no socket in /var/run/postgresql); fsync off unless asked for: these
        // clusters hold test data for seconds, and the gateway's own durability is not
        // PostgreSQL's to test.
        let fsync = if durable { "fsync=on" } else { "fsync=off" };
        let mut server = Command::new(bin.join("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("port={port}")])
            .args(["-c", "unix_socket_directories="])
            .args(["-c", fsync, "-c", "max_connections=200"])
            .args(tls.iter().flat_map(|t| ["-c", t.as_str()]))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("server.log")).expect("log"),
            ));
        if let Some((uid, gid)) = owner {
            server.uid(uid).gid(gid);
        }
        let mut child = server.spawn().expect("postgres");
        let up = wait_until(Duration::from_secs(30), || {
            child.try_wait().ok().flatten().is_none()
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let pg = Postgres {
            port,
            bin,
            child,
            dir,
        };
        assert!(up, "postgres did not start: {}", pg.log());
        pg
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A connection URL for `database` (see [`Postgres::create_database`]).
    pub fn url(&self, database: &str) -> String {
        Self::url_on(self.port, database)
    }

    /// The URL `database` will have on a server started on `port`.
    pub fn url_on(port: u16, database: &str) -> String {
        format!("postgres://{ROLE}:{PASSWORD}@127.0.0.1:{port}/{database}")
    }

    /// Creates an empty database called `name` (each test takes its own).
    pub fn create_database(&self, name: &str) {
        let out = self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        assert!(out.contains("CREATE DATABASE"), "createdb {name}: {out}");
    }

    /// Runs `sql` in `database` with psql; returns what it printed (rows unaligned, `|` between
    /// fields), or panics with psql's error.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.client())
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .arg(self.url(database))
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn client(&self) -> PathBuf {
        let beside = self.bin.join("psql");
        if beside.exists() {
            beside
        } else {
            PathBuf::from("psql")
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A fast shutdown (SIGINT) ends the server's own processes too; SIGKILL only if it
        // hangs.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let ended = wait_until(Duration::from_secs(10), || {
            self.child.try_wait().ok().flatten().is_some()
        });
        if !ended {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
