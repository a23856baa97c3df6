//! Alerts (EVENTS.md section 5).

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn raised(self) -> Severity {
        match self {
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            _ => Severity::Critical,
        }
    }
}

/// Whether this line opens an incident or updates one already reported.
/// One incident is one `id`; consumers keep the latest line per id.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// First report of the incident.
    New,
    /// The incident grew past a higher severity.
    Escalated,
    /// Final figures when the input ends or the incident goes quiet.
    Update,
}

/// The actor an alert is about: at least one field is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "user.name", skip_serializing_if = "Option::is_none", default)]
    pub user: Option<String>,
    #[serde(rename = "host.name", skip_serializing_if = "Option::is_none", default)]
    pub host: Option<String>,
    #[serde(rename = "source.ip", skip_serializing_if = "Option::is_none", default)]
    pub ip: Option<IpAddr>,
}

impl Actor {
    pub fn user(name: &str) -> Actor {
        Actor {
            user: Some(name.to_owned()),
            ..Default::default()
        }
    }

    pub fn host(name: &str) -> Actor {
        Actor {
            host: Some(name.to_owned()),
            ..Default::default()
        }
    }

    /// A short label for messages and tables: the user, else host, else address.
    pub fn label(&self) -> String {
        if let Some(u) = &self.user {
            u.clone()
        } else if let Some(h) = &self.host {
            h.clone()
        } else if let Some(ip) = &self.ip {
            ip.to_string()
        } else {
            String::from("?")
        }
    }
}

/// One alert line. Serialized field names follow EVENTS.md section 5;
/// `id`, `alert.status` and `alert.updates` are additions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Incident id, stable across the updates of one incident.
    pub id: String,
    #[serde(rename = "@timestamp")]
    pub timestamp: Timestamp,
    #[serde(rename = "rule.id")]
    pub rule: String,
    pub severity: Severity,
    #[serde(flatten)]
    pub actor: Actor,
    #[serde(
        rename = "organization.id",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub organization: Option<String>,
    pub first_seen: Timestamp,
    pub message: String,
    pub evidence: serde_json::Map<String, serde_json::Value>,
    pub customers: u64,
    #[serde(rename = "alert.status")]
    pub status: AlertStatus,
    /// How many times the incident's findings were merged into this alert.
    #[serde(rename = "alert.updates", default)]
    pub updates: u64,
}

impl Alert {
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("alerts serialize to JSON")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_round_trips_with_event_field_names() {
        let a = Alert {
            id: "rate-1".into(),
            timestamp: Timestamp(0),
            rule: "rate".into(),
            severity: Severity::High,
            actor: Actor::user("p3.bot"),
            organization: Some("partner-3".into()),
            first_seen: Timestamp(0),
            message: "m".into(),
            evidence: serde_json::Map::new(),
            customers: 7,
            status: AlertStatus::New,
            updates: 0,
        };
        let line = a.to_json_line();
        assert!(line.contains(r#""rule.id":"rate""#), "{line}");
        assert!(line.contains(r#""user.name":"p3.bot""#), "{line}");
        assert!(!line.contains("host.name"), "{line}");
        let back: Alert = serde_json::from_str(&line).unwrap();
        assert_eq!(back, a);
        assert!(Severity::Critical > Severity::Low);
    }
}
