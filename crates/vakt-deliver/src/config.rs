//! Delivery targets, from a TOML file:
//!
//! ```toml
//! [[target]]
//! name = "soc-webhook"
//! kind = "webhook"                 # the alert line as JSON
//! url = "https://siem.example.net/vakt"
//!
//! [[target]]
//! name = "on-call"
//! kind = "slack"                   # a Slack-compatible incoming webhook
//! url = "https://hooks.slack.com/services/T000/B000/XXXX"
//! min_severity = "high"            # default: low (everything)
//!
//! [[target]]
//! name = "siem"
//! kind = "syslog"
//! address = "tcp://10.0.0.5:6514"  # or udp://HOST:PORT
//! format = "cef"                   # rfc5424 (default) or cef
//! ```

use crate::targets::{self, Kind, Settings, Target};
use crate::{DeliverError, Result};
use serde::Deserialize;
use std::time::Duration;
use toml::Spanned;
use vakt_event::Severity;

#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    pub targets: Vec<TargetConfig>,
    /// Longest wait between retries of a failing target.
    pub max_backoff: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            targets: Vec::new(),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// One `[[target]]` entry, checked: its kind builds a target from it.
#[derive(Clone, Debug)]
pub struct TargetConfig {
    pub name: String,
    pub kind: &'static Kind,
    pub settings: Settings,
    pub min_severity: Severity,
}

impl TargetConfig {
    /// The target itself (the settings were checked at load).
    pub fn build(&self) -> std::result::Result<Box<dyn Target>, String> {
        (self.kind.build)(&self.settings)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    target: Vec<Spanned<RawTarget>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: String,
    kind: String,
    url: Option<String>,
    address: Option<String>,
    format: Option<String>,
    #[serde(default = "low")]
    min_severity: Severity,
}

fn low() -> Severity {
    Severity::Low
}

impl DeliveryConfig {
    pub fn load(path: &std::path::Path) -> Result<DeliveryConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| DeliverError::Config {
            path: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read the delivery file: {e}"),
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    pub fn from_toml(text: &str, path: &str) -> Result<DeliveryConfig> {
        let at = |offset: usize, message: String| {
            let before = &text.as_bytes()[..offset.min(text.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = offset.min(text.len())
                - before
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1)
                + 1;
            DeliverError::Config {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let file: File = toml::from_str(text).map_err(|e| {
            at(
                e.span().map_or(0, |s| s.start),
                e.message().trim().to_owned(),
            )
        })?;
        let mut targets: Vec<TargetConfig> = Vec::new();
        for t in file.target {
            let start = t.span().start;
            let t = t.into_inner();
            if !t
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                || t.name.is_empty()
            {
                return Err(at(
                    start,
                    format!(
                        "target name `{}`: use letters, digits, `-` and `_` (it names a file)",
                        t.name
                    ),
                ));
            }
            if targets.iter().any(|o| o.name == t.name) {
                return Err(at(
                    start,
                    format!("two targets are named `{}`; give each its own name", t.name),
                ));
            }
            let Some(kind) = targets::kind(&t.kind) else {
                return Err(at(
                    start,
                    format!(
                        "target `{}`: kind `{}` is not {}",
                        t.name,
                        t.kind,
                        targets::names()
                    ),
                ));
            };
            let settings = Settings {
                name: t.name.clone(),
                url: t.url,
                address: t.address,
                format: t.format,
            };
            (kind.build)(&settings).map_err(|message| at(start, message))?;
            targets.push(TargetConfig {
                name: t.name,
                kind,
                settings,
                min_severity: t.min_severity,
            });
        }
        Ok(DeliveryConfig {
            targets,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_mistakes_say_where_and_what_to_write() {
        let c = DeliveryConfig::from_toml(
            "[[target]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/a\"\n\n[[target]]\nname = \"siem\"\nkind = \"syslog\"\naddress = \"tcp://127.0.0.1:6514\"\nformat = \"cef\"\nmin_severity = \"high\"\n",
            "d.toml",
        )
        .unwrap();
        assert_eq!(c.targets.len(), 2);
        assert_eq!(
            c.targets[1].build().unwrap().describe(),
            "syslog tcp://127.0.0.1:6514 (cef)"
        );
        assert_eq!(c.targets[1].min_severity, Severity::High);
        let e = DeliveryConfig::from_toml(
            "[[target]]\nname = \"x\"\nkind = \"syslog\"\naddress = \"10.0.0.1:514\"\n",
            "d.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("d.toml:1:") && e.contains("udp://HOST:PORT"),
            "{e}"
        );
        let e = DeliveryConfig::from_toml("[[target]]\nname = \"x\"\nkind = \"webhook\"\nurl = \"ftp://a\"\nmin_severity = \"loud\"\n", "d.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("d.toml:5:"), "{e}");
        let e = DeliveryConfig::from_toml("[[target]]\nname = \"x\"\nkind = \"pager\"\n", "d.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("webhook, slack or syslog"), "{e}");
    }
}
