//! Decisions (EVENTS.md section 6): throttle, step up or block an account,
//! address or organisation for a while. Made from alerts by the
//! directory's `[[policy]]` entries, or by hand; kept in the data
//! directory, where enforcement points read the active ones.

use crate::ledger::Ledger;
use crate::Result;
use rusqlite::params;
use serde::{Deserialize, Serialize};
use vakt_event::directory::Policy;
use vakt_event::{Alert, Timestamp};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub id: String,
    /// `account`, `ip` or `organization`.
    pub scope: String,
    pub value: String,
    /// `throttle`, `step_up` or `block`.
    pub action: String,
    /// The rule and alert that caused it, or who made it by hand.
    pub reason: String,
    pub created: Timestamp,
    pub expires: Timestamp,
}

/// The decisions the policies make for an alert line. Times are the
/// alert's event time, so a replay decides as live watching would have.
pub fn from_alert(policies: &[Policy], alert: &Alert) -> Vec<Decision> {
    policies
        .iter()
        .filter(|p| (p.rule == "*" || p.rule == alert.rule) && alert.severity >= p.min_severity)
        .filter_map(|p| {
            let scope = p.scope.get_ref().as_str();
            let value = match scope {
                "account" => alert.actor.user.clone(),
                "ip" => alert.actor.ip.map(|i| i.to_string()),
                _ => alert.organization.clone(),
            }?;
            let action = p.action.get_ref().clone();
            Some(Decision {
                id: format!("{}-{action}-{scope}", alert.id),
                scope: scope.to_owned(),
                value,
                action,
                reason: format!("{} {}", alert.rule, alert.id),
                created: alert.timestamp,
                expires: Timestamp(alert.timestamp.0.saturating_add(p.ttl_ms)),
            })
        })
        .collect()
}

impl Ledger {
    /// Adds or replaces a decision.
    pub fn put_decision(&mut self, d: &Decision) -> Result<()> {
        let r = self.conn.execute(
            "INSERT OR REPLACE INTO decisions(id, scope, value, action, reason, created, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![d.id, d.scope, d.value, d.action, d.reason, d.created.0, d.expires.0],
        );
        self.db(r).map(|_| ())
    }

    /// Lifts a decision; whether it existed.
    pub fn delete_decision(&mut self, id: &str) -> Result<bool> {
        let r = self
            .conn
            .execute("DELETE FROM decisions WHERE id = ?1", [id]);
        self.db(r).map(|n| n > 0)
    }

    /// Decisions in force at `at`, or all of them.
    pub fn decisions(&self, at: Option<Timestamp>) -> Result<Vec<Decision>> {
        let r = self
            .conn
            .prepare("SELECT id, scope, value, action, reason, created, expires FROM decisions WHERE ?1 IS NULL OR (created <= ?1 AND expires > ?1) ORDER BY created, id")
            .and_then(|mut s| {
                s.query_map([at.map(|t| t.0)], |r| {
                    Ok(Decision {
                        id: r.get(0)?,
                        scope: r.get(1)?,
                        value: r.get(2)?,
                        action: r.get(3)?,
                        reason: r.get(4)?,
                        created: Timestamp(r.get(5)?),
                        expires: Timestamp(r.get(6)?),
                    })
                })?
                .collect()
            });
        self.db(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vakt_event::Directory;

    #[test]
    fn policies_turn_alerts_into_decisions_with_a_time_to_live() {
        let dir = Directory::from_toml(
            "[[policy]]\nrule = \"rate\"\nmin_severity = \"high\"\naction = \"block\"\nttl = \"1h\"\n\n[[policy]]\nmin_severity = \"critical\"\naction = \"step_up\"\nttl = \"10m\"\nscope = \"organization\"\n",
            "d",
        )
        .unwrap();
        let line = |sev: &str, rule: &str| -> Alert {
            serde_json::from_str(&format!(
                r#"{{"id":"{rule}-1","@timestamp":"2026-11-02T08:00:00Z","rule.id":"{rule}","severity":"{sev}","user.name":"p3.bot","organization.id":"partner-3","first_seen":"2026-11-02T07:00:00Z","message":"m","evidence":{{}},"customers":1,"alert.status":"new","alert.updates":0}}"#
            ))
            .unwrap()
        };
        assert!(from_alert(&dir.policies, &line("medium", "rate")).is_empty());
        let d = from_alert(&dir.policies, &line("high", "rate"));
        assert_eq!(d.len(), 1);
        assert_eq!(
            (
                d[0].scope.as_str(),
                d[0].value.as_str(),
                d[0].action.as_str()
            ),
            ("account", "p3.bot", "block")
        );
        assert_eq!(d[0].expires.0 - d[0].created.0, 3_600_000);
        assert_eq!(d[0].reason, "rate rate-1");
        let d = from_alert(&dir.policies, &line("critical", "canary"));
        assert_eq!(
            (d.len(), d[0].value.as_str(), d[0].action.as_str()),
            (1, "partner-3", "step_up")
        );
    }
}
