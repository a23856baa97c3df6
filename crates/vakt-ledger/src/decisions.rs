//! Decisions (EVENTS.md section 6): throttle, step up or block an account,
//! address or organisation for a while. Made from alerts by the
//! directory's `[[policy]]` entries, or by hand; kept in the data
//! directory, where enforcement points read the active ones.

use crate::ledger::Ledger;
use crate::Result;
use rusqlite::params;
use vakt_event::directory::Policy;
use vakt_event::{Alert, Timestamp};

pub use vakt_event::decision::{Action, Decision, DecisionError, Scope};

/// The decisions the policies make for an alert line, made at `made` (the
/// wall clock when live): a decision lives its whole time to live from when
/// it is made, so an alert on a late event (a log shipped an hour late, a
/// replay) still blocks now instead of being born expired. The alert's
/// event time stays in the alert the reason names. A value that cannot be
/// a decision (an over-long account name, say) is left out with a warning.
pub fn from_alert(policies: &[Policy], alert: &Alert, made: Timestamp) -> Vec<Decision> {
    policies
        .iter()
        .filter(|p| (p.rule == "*" || p.rule == alert.rule) && alert.severity >= p.min_severity)
        .filter_map(|p| {
            let scope = *p.scope.get_ref();
            let value = match scope {
                Scope::Account => alert.actor.user.clone(),
                Scope::Ip => alert.actor.ip.map(|i| i.to_string()),
                Scope::Organization => alert.organization.clone(),
            }?;
            let action = *p.action.get_ref();
            Decision::new(
                format!("{}-{action}-{scope}", alert.id),
                scope,
                &value,
                action,
                format!("{} {}", alert.rule, alert.id),
                made,
                p.ttl_ms,
            )
            .map_err(|e| tracing::warn!("alert {}: no {action} decision: {e}", alert.id))
            .ok()
        })
        .collect()
}

impl Ledger {
    /// Adds or replaces a decision, chained as an action; with a shared
    /// store, for every node's proxies at once ([`crate::shared`]).
    pub fn put_decision(&mut self, d: &Decision) -> Result<()> {
        self.share(crate::shared::Change::Put(d.clone()))?;
        self.chained(|l| l.put_decision_row(d))
    }

    /// Publishes a change of decisions to the other nodes: at once when
    /// this change commits by itself, else with the batch it is part of
    /// ([`Ledger::commit`]), so no node sees a decision before the alert
    /// that made it.
    fn share(&mut self, change: crate::shared::Change) -> Result<()> {
        match &self.shared {
            None => Ok(()),
            Some(shared) if self.conn.is_autocommit() => shared.publish(&change).map(|_| ()),
            Some(_) => {
                self.shared_pending.push(change);
                Ok(())
            }
        }
    }

    fn put_decision_row(&mut self, d: &Decision) -> Result<()> {
        let r = self.conn.execute(
            "INSERT OR REPLACE INTO decisions(id, scope, value, action, reason, created, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                d.id,
                d.scope.as_str(),
                d.value,
                d.action.as_str(),
                d.reason,
                d.created.0,
                d.expires.0
            ],
        );
        self.db(r)?;
        self.record_put(&crate::actions::DECISIONS, &d.id)
    }

    /// Lifts a decision, chained as an action; whether it existed.
    pub fn delete_decision(&mut self, id: &str) -> Result<bool> {
        let shared_found = match &self.shared {
            Some(shared) if self.conn.is_autocommit() => {
                shared.publish(&crate::shared::Change::Delete(id.to_owned()))?
            }
            Some(_) => {
                self.share(crate::shared::Change::Delete(id.to_owned()))?;
                false
            }
            None => false,
        };
        self.chained(|l| {
            let r = l.conn.execute("DELETE FROM decisions WHERE id = ?1", [id]);
            let found = l.db(r)? > 0 || shared_found;
            if found {
                l.record_delete(&crate::actions::DECISIONS, id)?;
            }
            Ok(found)
        })
    }

    /// Decisions in force at `at`, or all of them. A row that is no longer
    /// a decision (edited by hand) is left out with a warning naming it.
    pub fn decisions(&self, at: Option<Timestamp>) -> Result<Vec<Decision>> {
        if let Some(shared) = &self.shared {
            return shared.decisions(at);
        }
        type Row = (String, String, String, String, String, i64, i64);
        let r = self
            .conn
            .prepare("SELECT id, scope, value, action, reason, created, expires FROM decisions WHERE ?1 IS NULL OR (created <= ?1 AND expires > ?1) ORDER BY created, id")
            .and_then(|mut s| {
                s.query_map([at.map(|t| t.0)], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
                })?
                .collect::<rusqlite::Result<Vec<Row>>>()
            });
        let rows = self.db(r)?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, scope, value, action, reason, created, expires)| {
                Decision::stored(
                    id.clone(),
                    &scope,
                    &value,
                    &action,
                    reason,
                    Timestamp(created),
                    Timestamp(expires),
                )
                .map_err(|e| {
                    tracing::warn!("decision {} is skipped: {e}; lift it with `vakt decisions delete` and add it again", id.escape_debug())
                })
                .ok()
            })
            .collect())
    }
}

impl Ledger {
    /// Waits up to `timeout` for a change of decisions another process
    /// announced (a shared store); with an embedded store, just waits.
    /// Whether a change was announced.
    pub fn wait_for_decisions(&self, timeout: std::time::Duration) -> Result<bool> {
        match &self.shared {
            Some(shared) => shared.wait_for_decisions(timeout),
            None => {
                std::thread::sleep(timeout);
                Ok(false)
            }
        }
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
        let now = Timestamp::now();
        assert!(from_alert(&dir.policies, &line("medium", "rate"), now).is_empty());
        let d = from_alert(&dir.policies, &line("high", "rate"), now);
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].scope, d[0].value.as_str(), d[0].action),
            (Scope::Account, "p3.bot", Action::Block)
        );
        assert_eq!(d[0].expires.0 - d[0].created.0, 3_600_000);
        assert_eq!(d[0].reason, "rate rate-1");
        let d = from_alert(&dir.policies, &line("critical", "canary"), now);
        assert_eq!(
            (d.len(), d[0].value.as_str(), d[0].action),
            (1, "partner-3", Action::StepUp)
        );
    }

    /// Finding 16: a decision stamped with its (late) event's time was born
    /// expired, and the account it should have blocked went on reading.
    #[test]
    fn finding_16_decisions_from_late_events_live_from_when_they_are_made() {
        let dir = Directory::from_toml(
            "[[policy]]\nrule = \"rate\"\nmin_severity = \"high\"\naction = \"block\"\nttl = \"1h\"\n",
            "d",
        )
        .unwrap();
        let now = Timestamp::now();
        let two_hours_ago = Timestamp(now.0 - 2 * 3_600_000);
        let alert: Alert = serde_json::from_str(&format!(
            r#"{{"id":"rate-1","@timestamp":"{two_hours_ago}","rule.id":"rate","severity":"high","user.name":"p3.bot","first_seen":"{two_hours_ago}","message":"m","evidence":{{}},"customers":1,"alert.status":"new","alert.updates":0}}"#
        ))
        .unwrap();
        let d = from_alert(&dir.policies, &alert, now);
        assert_eq!(d.len(), 1);
        assert!(
            d[0].created <= now && d[0].expires > now,
            "in force now: {:?}..{:?}",
            d[0].created,
            d[0].expires
        );
        assert_eq!(d[0].expires.0, now.0 + 3_600_000);
    }

    #[test]
    fn a_row_edited_by_hand_into_nonsense_is_skipped_and_the_rest_are_read() {
        let tmp = tempfile::tempdir().unwrap();
        let data = crate::DataDir {
            path: tmp.path().join("data"),
        };
        let mut l = Ledger::open(&data).unwrap();
        let t = Timestamp(1_793_000_000_000);
        for (id, value) in [("a", "192.0.2.7"), ("b", "::1")] {
            let d = Decision::new(
                id.into(),
                Scope::Ip,
                value,
                Action::Block,
                "r".into(),
                t,
                60_000,
            )
            .unwrap();
            l.put_decision(&d).unwrap();
        }
        l.conn
            .execute(
                "UPDATE decisions SET value = 'somewhere' WHERE id = 'a'",
                [],
            )
            .unwrap();
        l.conn
            .execute(
                "UPDATE decisions SET value = '0:0:0:0:0:0:0:1', action = 'ban' WHERE id = 'b'",
                [],
            )
            .unwrap();
        assert!(l.decisions(None).unwrap().is_empty());
        l.conn
            .execute("UPDATE decisions SET action = 'block' WHERE id = 'b'", [])
            .unwrap();
        let read = l.decisions(Some(t)).unwrap();
        assert_eq!(
            read.iter()
                .map(|d| (d.id.as_str(), d.value.as_str()))
                .collect::<Vec<_>>(),
            [("b", "::1")]
        );
    }
}
