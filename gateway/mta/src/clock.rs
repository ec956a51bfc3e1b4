//! The appliance's clock as the system administrator needs to see it: what time the gateway
//! thinks it is, in which zone, and whether the system keeps it synchronised (NTP). DKIM
//! signatures, TOTP codes, certificates, link expiry and the audit chain all trust this clock,
//! so a drifting one is worth a glance on the system page.
//!
//! Synchronisation is what systemd says (`timedatectl`, whichever client — timesyncd, chrony,
//! ntpd — keeps the time); where there is no systemd to ask, it is unknown rather than guessed.

use std::time::Duration;

use serde::Serialize;

/// How long the system may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// The clock and its synchronisation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClockStatus {
    /// The gateway's time (Unix seconds).
    pub now: i64,
    /// The zone times are shown in (`server.time_zone`).
    pub zone: String,
    /// Whether a time-synchronisation service is on (unknown without systemd).
    pub ntp_enabled: Option<bool>,
    /// Whether the clock is synchronised now (unknown without systemd).
    pub synchronized: Option<bool>,
}

/// Reads the clock's state; `zone` is the configured one.
pub async fn status(zone: &str) -> ClockStatus {
    let asked = tokio::time::timeout(
        ASK_TIMEOUT,
        tokio::process::Command::new("/usr/bin/timedatectl")
            .args(["show", "-p", "NTP", "-p", "NTPSynchronized"])
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let (ntp_enabled, synchronized) = match asked {
        Ok(Ok(out)) if out.status.success() => parse(&String::from_utf8_lossy(&out.stdout)),
        _ => (None, None),
    };
    ClockStatus {
        now: chrono::Utc::now().timestamp(),
        zone: zone.to_owned(),
        ntp_enabled,
        synchronized,
    }
}

/// `NTP=yes` and `NTPSynchronized=no` lines as they read.
fn parse(text: &str) -> (Option<bool>, Option<bool>) {
    let value = |key: &str| {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| match v.trim() {
                "yes" => Some(true),
                "no" => Some(false),
                _ => None,
            })
    };
    (value("NTP"), value("NTPSynchronized"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timedatectl_lines_are_read_and_nothing_else_is_guessed() {
        assert_eq!(
            parse("NTP=yes\nNTPSynchronized=no\n"),
            (Some(true), Some(false))
        );
        assert_eq!(parse("NTPSynchronized=yes\n"), (None, Some(true)));
        assert_eq!(parse("NTP=maybe\ngarbage\n"), (None, None));
    }

    /// Where systemd cannot be asked (this test's container, say), the state is unknown, and
    /// the time is still told.
    #[tokio::test]
    async fn the_time_is_told_whatever_the_system_says() {
        let s = status("Asia/Shanghai").await;
        assert!((s.now - chrono::Utc::now().timestamp()).abs() <= 2);
        assert_eq!(s.zone, "Asia/Shanghai");
        if !std::path::Path::new("/run/systemd/system").exists() {
            assert_eq!((s.ntp_enabled, s.synchronized), (None, None));
        }
    }
}
