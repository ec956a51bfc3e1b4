//! Who may relay: the organisation's own mail servers (`smtp.internal_relays`) send outbound and
//! internal mail through the gateway; everyone else may only send to the protected domains. The
//! decision rests on the TCP peer address alone, so no command a client sends can make the
//! gateway an open relay. A trusted relay may also tell, with Postfix's XFORWARD, who its own
//! client was (address, HELO name, SASL login): that is recorded and judged, never trusted for
//! relaying.

use std::net::IpAddr;

use jianmen_scan::reputation::AddressList;

use super::reply::Reply;
use super::state::{Flow, Session};
use crate::config::SmtpConfig;

/// Longest XFORWARD attribute value kept (Postfix's own limit for names is 255).
const MAX_ATTRIBUTE: usize = 255;

/// The relays the gateway trusts, parsed once from `[smtp]`.
#[derive(Debug, Default, Clone)]
pub struct Relays {
    internal: AddressList,
    xforward: bool,
}

impl Relays {
    /// The relays `smtp.internal_relays` names (validated with the configuration: addresses
    /// and networks only) and whether their XFORWARD is believed.
    pub fn from_config(smtp: &SmtpConfig) -> Self {
        Self {
            internal: AddressList::parse(&smtp.internal_relays).unwrap_or_default(),
            xforward: smtp.xforward,
        }
    }

    /// Whether a client at `peer` is one of the organisation's mail servers (an IPv4 client
    /// on a dual-stack listener arrives as an IPv4-mapped IPv6 address).
    pub fn is_internal(&self, peer: IpAddr) -> bool {
        self.internal
            .matches(Some(peer.to_canonical()), &[])
            .is_some()
    }
}

/// What an internal relay said about its own client (RFC-less Postfix XFORWARD, see
/// XFORWARD_README): each attribute only when given and available.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The original client's address (`ADDR`).
    pub addr: Option<IpAddr>,
    /// Its host name (`NAME`).
    pub name: Option<String>,
    /// Its HELO name (`HELO`).
    pub helo: Option<String>,
    /// The SASL login it authenticated with (`LOGIN`).
    pub login: Option<String>,
}

/// Why an XFORWARD command was refused: the reply to send.
fn bad(text: &str) -> Reply {
    Reply::new(501, "5.5.4", text.to_owned())
}

/// Decodes xtext (RFC 3461 §4): `+XX` is the byte XX.
fn xtext(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'+' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    (!text.chars().any(char::is_control)).then_some(text)
}

impl Forwarded {
    /// Adds the `NAME=value` attributes of one XFORWARD command (`args` is what follows the
    /// verb); the command is refused whole when any attribute is malformed or unknown.
    pub fn add(&mut self, args: &str) -> Result<(), Reply> {
        let mut next = self.clone();
        let mut any = false;
        for attribute in args.split_ascii_whitespace() {
            any = true;
            let Some((name, value)) = attribute.split_once('=') else {
                return Err(bad("XFORWARD attribute must be NAME=value"));
            };
            let value = xtext(value).ok_or_else(|| bad("Bad XFORWARD attribute value"))?;
            if value.len() > MAX_ATTRIBUTE {
                return Err(bad("XFORWARD attribute value too long"));
            }
            // Postfix sends these when it does not know the value.
            let known = !matches!(value.as_str(), "[UNAVAILABLE]" | "[TEMPUNAVAIL]");
            match name.to_ascii_uppercase().as_str() {
                "ADDR" => {
                    next.addr = if known {
                        let ip = value.strip_prefix("IPv6:").unwrap_or(&value);
                        Some(
                            ip.parse()
                                .map_err(|_| bad("XFORWARD ADDR is not an address"))?,
                        )
                    } else {
                        None
                    }
                }
                "NAME" => next.name = known.then_some(value),
                "HELO" => next.helo = known.then_some(value),
                "LOGIN" => next.login = known.then_some(value),
                "PORT" | "PROTO" | "SOURCE" | "IDENT" => {}
                _ => return Err(bad("Unknown XFORWARD attribute")),
            }
        }
        if !any {
            return Err(bad("XFORWARD needs attributes"));
        }
        *self = next;
        Ok(())
    }
}

impl Session {
    /// The XFORWARD keywords advertised in EHLO, to internal relays only when configured.
    pub(super) fn xforward_offer(&self) -> Option<&'static str> {
        (self.relay && self.ctx.relays.xforward).then_some("XFORWARD NAME ADDR PROTO HELO LOGIN")
    }

    /// Handles XFORWARD: believed from an internal relay between transactions; from anyone
    /// else it is a command this server does not have.
    pub(super) fn xforward(&mut self, args: &str) -> Flow {
        if self.xforward_offer().is_none() {
            return self.fail(Reply::new(500, "5.5.2", "Command unrecognized"));
        }
        if self.tx.is_some() {
            return self.fail(Reply::new(
                503,
                "5.5.1",
                "XFORWARD not allowed in a transaction",
            ));
        }
        match self.forwarded.add(args) {
            Ok(()) => {
                self.send(&Reply::new(250, "2.0.0", "Ok"));
                Flow::Continue
            }
            Err(reply) => self.fail(reply),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xforward_attributes_decode_and_unknown_values_stay_unknown() {
        let mut f = Forwarded::default();
        f.add("NAME=pc1.corp.test ADDR=10.0.0.7 PORT=51234 PROTO=ESMTP HELO=pc1 LOGIN=zhang+2Ewei")
            .unwrap();
        assert_eq!(f.addr, Some("10.0.0.7".parse().unwrap()));
        assert_eq!(f.name.as_deref(), Some("pc1.corp.test"));
        assert_eq!(f.helo.as_deref(), Some("pc1"));
        assert_eq!(f.login.as_deref(), Some("zhang.wei"));
        f.add("ADDR=IPv6:2001:db8::1 LOGIN=[UNAVAILABLE]").unwrap();
        assert_eq!(f.addr, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(f.login, None);
        assert_eq!(f.name.as_deref(), Some("pc1.corp.test"));
    }

    #[test]
    fn a_bad_attribute_refuses_the_whole_command() {
        let mut f = Forwarded::default();
        for bad in [
            "",
            "ADDR",
            "ADDR=not-an-ip",
            "COLOR=blue",
            "NAME=a+0Db",
            "NAME=+4",
            "NAME=+zz",
        ] {
            assert!(f.add(bad).is_err(), "{bad:?}");
        }
        assert!(f.add("HELO=ok ADDR=nonsense").is_err());
        assert_eq!(
            f,
            Forwarded::default(),
            "nothing of a refused command is kept"
        );
        let long = format!("NAME={}", "a".repeat(300));
        assert!(f.add(&long).is_err());
    }

    #[test]
    fn only_addresses_and_networks_of_the_list_relay() {
        let smtp = SmtpConfig {
            internal_relays: vec!["127.0.0.5".into(), "10.1.0.0/16".into()],
            ..SmtpConfig::default()
        };
        let relays = Relays::from_config(&smtp);
        assert!(relays.is_internal("127.0.0.5".parse().unwrap()));
        assert!(relays.is_internal("10.1.200.3".parse().unwrap()));
        assert!(!relays.is_internal("127.0.0.1".parse().unwrap()));
        assert!(!relays.is_internal("10.2.0.1".parse().unwrap()));
        assert!(relays.is_internal("::ffff:127.0.0.5".parse().unwrap()));
        assert!(!Relays::default().is_internal("127.0.0.1".parse().unwrap()));
    }
}
