//! Exceptions (EVENTS.md section 8): an analyst's "false positive" turned
//! into a suppression. An exception names an actor, a rule, a destination,
//! or any combination, and optionally an end; every alert the detectors
//! raise afterwards that it matches is recorded and counted but neither
//! enforced nor delivered.

use crate::alert::Alert;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The longest scope value or reason kept, in bytes.
pub const MAX_FIELD_BYTES: usize = 256;

/// An exception that could not be made; the message says what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExceptionError {
    #[error("an exception needs a scope: give at least one of actor, rule or destination")]
    NoScope,
    #[error("`reason` is empty; say why the alerts are false positives")]
    NoReason,
    #[error("`rule` \"{0}\" is not a rule; use one of: {1}")]
    UnknownRule(String, String),
    #[error("`until` {0} is not in the future; give a later time or leave it out")]
    Past(Timestamp),
    #[error("`{0}` is longer than {MAX_FIELD_BYTES} bytes or holds a control character; give it as printed, on one line")]
    BadField(&'static str),
}

/// What a person asks for; [`Exception::new`] checks it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewException {
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub destination: Option<String>,
    #[serde(default)]
    pub until: Option<Timestamp>,
    #[serde(default)]
    pub reason: String,
}

/// A suppression of matching alerts, kept in the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    pub id: String,
    /// A user name, host name or address: matched on the alert's
    /// `user.name`, `host.name` and `source.ip`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub actor: Option<String>,
    /// A `rule.id`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rule: Option<String>,
    /// A flow destination (address or domain), as the alert's evidence names it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub destination: Option<String>,
    /// No longer applied from this time on; none: until revoked.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub until: Option<Timestamp>,
    pub reason: String,
    pub created_by: String,
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub revoked_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub revoked_by: Option<String>,
}

/// Trimmed, `None` when empty; refused when too long or multi-line.
fn field(name: &'static str, v: Option<String>) -> Result<Option<String>, ExceptionError> {
    let Some(v) = v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.len() > MAX_FIELD_BYTES || v.chars().any(char::is_control) {
        return Err(ExceptionError::BadField(name));
    }
    Ok(Some(v))
}

/// Equal as addresses when both are, else equal ignoring ASCII case.
fn same_name(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => x.to_canonical() == y.to_canonical(),
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// Where an alert's evidence names a flow's destination.
const DESTINATION_KEYS: [&str; 3] = ["destination", "destination.ip", "destination.domain"];

impl Exception {
    /// Checks `n` (a scope, a reason, a rule among `rules`, an end after
    /// `now`) and makes the exception; the ledger gives it its id.
    pub fn new(
        n: NewException,
        created_by: &str,
        now: Timestamp,
        rules: &[&str],
    ) -> Result<Exception, ExceptionError> {
        let actor = field("actor", n.actor)?;
        let rule = field("rule", n.rule)?;
        let destination = field("destination", n.destination)?;
        if actor.is_none() && rule.is_none() && destination.is_none() {
            return Err(ExceptionError::NoScope);
        }
        let reason = field("reason", Some(n.reason))?.ok_or(ExceptionError::NoReason)?;
        if let Some(r) = &rule {
            if !rules.contains(&r.as_str()) {
                return Err(ExceptionError::UnknownRule(r.clone(), rules.join(", ")));
            }
        }
        if let Some(t) = n.until {
            if t <= now {
                return Err(ExceptionError::Past(t));
            }
        }
        Ok(Exception {
            id: String::new(),
            actor,
            rule,
            destination,
            until: n.until,
            reason,
            created_by: created_by.to_owned(),
            created_at: now,
            revoked_at: None,
            revoked_by: None,
        })
    }

    /// Not revoked and not past its end at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.until.is_none_or(|u| now < u)
    }

    /// Whether it suppresses `alert` at `now`: active, and every scope it
    /// names is the alert's.
    pub fn matches(&self, alert: &Alert, now: Timestamp) -> bool {
        if !self.is_active(now)
            || (self.actor.is_none() && self.rule.is_none() && self.destination.is_none())
        {
            return false;
        }
        let actor_ok = self.actor.as_deref().is_none_or(|want| {
            let a = &alert.actor;
            a.user.as_deref().is_some_and(|u| u == want)
                || a.host
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(want))
                || a.ip.is_some_and(|ip| same_name(&ip.to_string(), want))
        });
        let rule_ok = self.rule.as_deref().is_none_or(|r| r == alert.rule);
        let destination_ok = self.destination.as_deref().is_none_or(|want| {
            DESTINATION_KEYS.iter().any(|k| {
                alert
                    .evidence
                    .get(*k)
                    .and_then(|v| v.as_str())
                    .is_some_and(|d| same_name(d, want))
            })
        });
        actor_ok && rule_ok && destination_ok
    }
}

/// The first exception in `list` that suppresses `alert` at `now`.
pub fn suppressing<'a>(
    list: &'a [Exception],
    alert: &Alert,
    now: Timestamp,
) -> Option<&'a Exception> {
    list.iter().find(|e| e.matches(alert, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: [&str; 3] = ["rate", "egress", "canary"];
    const NOW: Timestamp = Timestamp(1_793_000_000_000);

    fn alert(user: &str, rule: &str, destination: Option<&str>) -> Alert {
        let mut a: Alert = serde_json::from_str(&format!(
            r#"{{"id":"{rule}-1","@timestamp":"2026-11-02T08:00:00Z","rule.id":"{rule}","severity":"high","user.name":"{user}","source.ip":"192.0.2.7","first_seen":"2026-11-02T08:00:00Z","message":"m","evidence":{{}},"customers":1,"alert.status":"new"}}"#
        ))
        .unwrap();
        if let Some(d) = destination {
            a.evidence.insert("destination".into(), d.into());
        }
        a
    }

    fn exception(actor: Option<&str>, rule: Option<&str>, destination: Option<&str>) -> Exception {
        Exception::new(
            NewException {
                actor: actor.map(Into::into),
                rule: rule.map(Into::into),
                destination: destination.map(Into::into),
                until: None,
                reason: "known batch job".into(),
            },
            "anna",
            NOW,
            &RULES,
        )
        .unwrap()
    }

    #[test]
    fn an_actor_exception_matches_the_user_host_or_address_of_any_rule() {
        let e = exception(Some("p3.bot"), None, None);
        assert!(e.matches(&alert("p3.bot", "rate", None), NOW));
        assert!(e.matches(&alert("p3.bot", "canary", None), NOW));
        assert!(!e.matches(&alert("p3.anna", "rate", None), NOW));
        let by_ip = exception(Some("::ffff:192.0.2.7"), None, None);
        assert!(by_ip.matches(&alert("anyone", "rate", None), NOW));
    }

    #[test]
    fn a_rule_exception_matches_that_rule_for_every_actor() {
        let e = exception(None, Some("rate"), None);
        assert!(e.matches(&alert("a", "rate", None), NOW));
        assert!(e.matches(&alert("b", "rate", None), NOW));
        assert!(!e.matches(&alert("a", "canary", None), NOW));
    }

    #[test]
    fn a_destination_exception_matches_the_evidence_destination_only() {
        let e = exception(None, None, Some("Backup.Example.net"));
        assert!(e.matches(&alert("h", "egress", Some("backup.example.net")), NOW));
        assert!(!e.matches(&alert("h", "egress", Some("evil.example")), NOW));
        assert!(!e.matches(&alert("h", "egress", None), NOW));
    }

    #[test]
    fn an_actor_and_rule_exception_needs_both() {
        let e = exception(Some("p3.bot"), Some("rate"), None);
        assert!(e.matches(&alert("p3.bot", "rate", None), NOW));
        assert!(!e.matches(&alert("p3.bot", "canary", None), NOW));
        assert!(!e.matches(&alert("p3.anna", "rate", None), NOW));
    }

    #[test]
    fn an_exception_stops_matching_at_its_end_and_when_revoked() {
        let mut e = exception(Some("p3.bot"), None, None);
        e.until = Some(Timestamp(NOW.0 + 1_000));
        let a = alert("p3.bot", "rate", None);
        assert!(e.matches(&a, NOW));
        assert!(!e.matches(&a, Timestamp(NOW.0 + 1_000)));
        e.until = None;
        e.revoked_at = Some(NOW);
        assert!(!e.matches(&a, NOW));
    }

    #[test]
    fn bad_input_is_refused_with_what_to_fix() {
        let new =
            |actor: Option<&str>, rule: Option<&str>, until: Option<Timestamp>, reason: &str| {
                Exception::new(
                    NewException {
                        actor: actor.map(Into::into),
                        rule: rule.map(Into::into),
                        destination: None,
                        until,
                        reason: reason.into(),
                    },
                    "anna",
                    NOW,
                    &RULES,
                )
            };
        assert_eq!(
            new(None, None, None, "r").unwrap_err(),
            ExceptionError::NoScope
        );
        assert_eq!(
            new(Some("  "), None, None, "r").unwrap_err(),
            ExceptionError::NoScope
        );
        assert_eq!(
            new(Some("a"), None, None, "  ").unwrap_err(),
            ExceptionError::NoReason
        );
        let e = new(Some("a"), Some("rat"), None, "r").unwrap_err();
        assert!(e.to_string().contains("rate, egress, canary"), "{e}");
        assert_eq!(
            new(Some("a"), None, Some(NOW), "r").unwrap_err(),
            ExceptionError::Past(NOW)
        );
        assert_eq!(
            new(Some("a\nb"), None, None, "r").unwrap_err(),
            ExceptionError::BadField("actor")
        );
        assert!(new(Some("a"), None, Some(Timestamp(NOW.0 + 1)), "r").is_ok());
    }
}
