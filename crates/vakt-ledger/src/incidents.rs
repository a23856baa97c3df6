//! Incidents: an actor's recorded alerts grouped by time. Alerts of one
//! actor whose windows (`first_seen` to `last`) overlap or lie less than
//! [`GAP_MS`] apart form one incident. Alerts are grouped over the whole
//! ledger whatever window is asked for, so an incident's id (its actor
//! and its first alert) is the same in every answer. Each incident
//! carries what people decided about it ([`crate::incident_workflow`]).

use crate::incident_workflow::Workflow;
use crate::ledger::Ledger;
use crate::Result;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use vakt_event::{Alert, Severity, Timestamp};

/// Largest gap between two alerts of one incident: 24 hours.
pub const GAP_MS: i64 = 24 * 3_600_000;

#[derive(Clone, Debug, Serialize)]
pub struct Incident {
    /// `actor` and the first alert's id.
    pub id: String,
    pub actor: String,
    pub account: Option<String>,
    pub organization: Option<String>,
    pub rules: BTreeSet<String>,
    pub severity: Severity,
    pub first: Timestamp,
    pub last: Timestamp,
    /// The most customers any one of its alerts names.
    pub customers: u64,
    /// Its alerts' ids, oldest first.
    pub alerts: Vec<String>,
    /// Status, owner, classification: `new` until someone changes it.
    #[serde(flatten)]
    pub workflow: Workflow,
}

impl Ledger {
    /// Incidents with an alert active in `[since, until]`, the most recently
    /// active first.
    pub fn incidents(&self, since: Timestamp, until: Timestamp) -> Result<Vec<Incident>> {
        let mut all = self.all_incidents()?;
        all.retain(|i| i.last >= since && i.first <= until);
        Ok(all)
    }

    /// The incident whose id is `id`, or which holds the alert `id`.
    pub fn find_incident(&self, id: &str) -> Result<Option<Incident>> {
        Ok(self
            .all_incidents()?
            .into_iter()
            .find(|i| i.id == id || i.alerts.iter().any(|a| a == id)))
    }

    fn all_incidents(&self) -> Result<Vec<Incident>> {
        let mut per_actor: BTreeMap<String, Vec<Incident>> = BTreeMap::new();
        for row in self.alert_rows(Timestamp(i64::MIN), Timestamp(i64::MAX))? {
            let alert: Option<Alert> = serde_json::from_str(&row.line).ok();
            let severity = alert.as_ref().map_or(Severity::Low, |a| a.severity);
            let customers = alert.as_ref().map_or(0, |a| a.customers);
            let organization = alert.and_then(|a| a.organization);
            let list = per_actor.entry(row.actor.clone()).or_default();
            match list.last_mut() {
                Some(inc) if row.first_seen.0 <= inc.last.0.saturating_add(GAP_MS) => {
                    inc.rules.insert(row.rule);
                    inc.severity = inc.severity.max(severity);
                    inc.last = inc.last.max(row.last);
                    inc.customers = inc.customers.max(customers);
                    inc.organization = inc.organization.take().or(organization);
                    inc.alerts.push(row.id);
                }
                _ => list.push(Incident {
                    id: format!("{}/{}", row.actor, row.id),
                    actor: row.actor,
                    account: row.user,
                    organization,
                    rules: BTreeSet::from([row.rule]),
                    severity,
                    first: row.first_seen,
                    last: row.last,
                    customers,
                    alerts: vec![row.id],
                    workflow: Workflow::default(),
                }),
            }
        }
        let mut out: Vec<Incident> = per_actor.into_values().flatten().collect();
        let mut stored = self.incident_workflows()?;
        if !stored.is_empty() {
            for inc in &mut out {
                inc.workflow = match stored.remove(&inc.id) {
                    Some(w) => w,
                    // Bridged into an older incident: the newest state of
                    // the incidents it swallowed.
                    None => inc.alerts[1..]
                        .iter()
                        .filter_map(|a| stored.remove(&format!("{}/{a}", inc.actor)))
                        .max_by_key(|w| w.updated)
                        .unwrap_or_default(),
                };
            }
        }
        out.sort_by(|a, b| b.last.cmp(&a.last).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::alert_query::{AlertCursor, AlertQuery};
    use crate::{DataDir, Ledger};
    use vakt_event::{Alert, Timestamp};

    fn alert(id: &str, user: &str, rule: &str, sev: &str, at: &str, org: &str) -> Alert {
        serde_json::from_str(&format!(
            r#"{{"id":"{id}","@timestamp":"{at}","rule.id":"{rule}","severity":"{sev}","user.name":"{user}","organization.id":"{org}","first_seen":"{at}","message":"m","evidence":{{}},"customers":3,"alert.status":"new","alert.updates":0}}"#
        ))
        .unwrap()
    }

    fn ledger(tmp: &tempfile::TempDir) -> Ledger {
        let dir = DataDir {
            path: tmp.path().to_owned(),
        };
        let mut l = Ledger::open(&dir).unwrap();
        for a in [
            alert(
                "a1",
                "alice",
                "rate",
                "medium",
                "2026-11-02T08:00:00Z",
                "acme",
            ),
            alert(
                "a2",
                "alice",
                "canary",
                "critical",
                "2026-11-03T07:00:00Z",
                "acme",
            ),
            alert("a3", "alice", "rate", "low", "2026-11-06T08:00:00Z", "acme"),
            alert("b1", "bob", "rate", "high", "2026-11-02T09:00:00Z", "other"),
        ] {
            l.record_alert(&a).unwrap();
        }
        l.close().unwrap();
        Ledger::open_read(&dir).unwrap()
    }

    #[test]
    fn alerts_of_an_actor_less_than_a_day_apart_are_one_incident() {
        let tmp = tempfile::tempdir().unwrap();
        let l = ledger(&tmp);
        let inc = l
            .incidents(Timestamp(i64::MIN), Timestamp(i64::MAX))
            .unwrap();
        let got: Vec<(String, Vec<String>, &str)> = inc
            .iter()
            .map(|i| (i.actor.clone(), i.alerts.clone(), i.severity.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("alice".into(), vec!["a3".into()], "low"),
                ("alice".into(), vec!["a1".into(), "a2".into()], "critical"),
                ("bob".into(), vec!["b1".into()], "high"),
            ]
        );
        assert_eq!(inc[1].rules.len(), 2);
    }

    #[test]
    fn alert_pages_filter_by_actor_organization_and_time_and_continue_at_the_cursor() {
        let tmp = tempfile::tempdir().unwrap();
        let l = ledger(&tmp);
        let ids = |q: &AlertQuery| -> (Vec<String>, Option<AlertCursor>) {
            let p = l.alert_page(q).unwrap();
            (
                p.lines
                    .iter()
                    .map(|x| serde_json::from_str::<Alert>(x).unwrap().id)
                    .collect(),
                p.next,
            )
        };
        let q = AlertQuery {
            limit: 2,
            ..Default::default()
        };
        let (first, next) = ids(&q);
        assert_eq!(first, ["a3", "a2"]);
        let next = next.unwrap();
        assert_eq!(AlertCursor::decode(&next.encode()), Some(next.clone()));
        let (second, end) = ids(&AlertQuery {
            cursor: Some(next),
            ..q.clone()
        });
        assert_eq!((second, end), (vec!["b1".into(), "a1".into()], None));
        assert_eq!(
            ids(&AlertQuery {
                offset: 3,
                ..q.clone()
            })
            .0,
            ["a1"]
        );
        let acme = AlertQuery {
            organization: Some("other".into()),
            ..q.clone()
        };
        assert_eq!(ids(&acme).0, ["b1"]);
        let alice_early = AlertQuery {
            actor: Some("alice".into()),
            until: Some(Timestamp::parse("2026-11-04T00:00:00Z").unwrap()),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(ids(&alice_early).0, ["a2", "a1"]);
        let since = AlertQuery {
            since: Some(Timestamp::parse("2026-11-03T00:00:00Z").unwrap()),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(ids(&since).0, ["a3", "a2"]);
    }
}
