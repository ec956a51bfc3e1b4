//! SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 3463).

use std::fmt;

/// One SMTP reply: a three-digit code, an enhanced status code and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Reply code, 200–599.
    pub code: u16,
    /// Enhanced status code such as `2.0.0`; may be empty for greetings.
    pub enhanced: String,
    /// Human-readable text; CR and LF are stripped when written.
    pub text: String,
}

impl Reply {
    /// Builds a reply.
    pub fn new(code: u16, enhanced: &str, text: impl Into<String>) -> Self {
        Self {
            code,
            enhanced: enhanced.to_owned(),
            text: text.into(),
        }
    }

    /// A 2xx reply.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// A 4xx reply: try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// Appends the wire form (one line, CRLF-terminated) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text: String = self
            .text
            .chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .collect();
        if self.enhanced.is_empty() {
            write!(f, "{} {}", self.code, text)
        } else {
            write!(f, "{} {} {}", self.code, self.enhanced, text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_strips_line_breaks() {
        let mut out = Vec::new();
        Reply::new(550, "5.7.1", "no\r\nrelay").write_to(&mut out);
        assert_eq!(out, b"550 5.7.1 no  relay\r\n");
        assert!(Reply::new(451, "4.3.0", "x").is_transient());
        assert!(!Reply::new(550, "5.7.1", "x").is_transient());
    }
}
