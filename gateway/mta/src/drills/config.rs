//! The `[drills]` section: phishing-simulation campaigns.

use serde::Deserialize;

/// The `[drills]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrillsConfig {
    /// Drills can be made and sent.
    pub enabled: bool,
    /// Where drill links and pixels lead: the console's HTTPS address as users reach it.
    pub base_url: String,
    /// Where users forward suspicious mail; a drill forwarded there counts as reported (the
    /// mail is delivered on as usual).
    pub report_address: String,
    /// The fastest a campaign may send.
    pub max_rate_per_minute: u32,
}

impl Default for DrillsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            base_url: String::new(),
            report_address: String::new(),
            max_rate_per_minute: 600,
        }
    }
}

impl DrillsConfig {
    /// Refuses a missing or non-https base address.
    pub fn check(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        let url = url::Url::parse(&self.base_url).map_err(|e| format!("base_url: {e}"))?;
        if url.scheme() != "https" || url.host_str().is_none() || url.query().is_some() {
            return Err("base_url must be https://host[:port][/path]".into());
        }
        if !(1..=100_000).contains(&self.max_rate_per_minute) {
            return Err("max_rate_per_minute must be 1 to 100000".into());
        }
        Ok(())
    }
}
