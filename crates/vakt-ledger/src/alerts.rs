//! Alerts recorded in the ledger, for readers such as `vakt serve`.

use crate::ledger::Ledger;
use crate::Result;
use vakt_event::Severity;

/// Which recorded alerts to list.
#[derive(Clone, Debug, Default)]
pub struct AlertFilter {
    /// Only this rule (`rule.id`).
    pub rule: Option<String>,
    /// Only this severity and above.
    pub min_severity: Option<Severity>,
    /// At most this many.
    pub limit: usize,
    /// Only alerts an exception suppressed (true) or only the others
    /// (false); none: both.
    pub suppressed: Option<bool>,
}

/// The SQL condition for [`AlertFilter::suppressed`], on parameter `?n`.
pub(crate) fn suppressed_sql(n: usize) -> String {
    format!(
        "(?{n} IS NULL OR (json_extract(line, '$.\"{}\"') IS NOT NULL) = ?{n})",
        crate::ledger::SUPPRESSED_BY
    )
}

/// The severities at or above `min` (all when none), as the JSON array
/// the alert queries read with `json_each`.
pub(crate) fn severities_json(min: Option<Severity>) -> String {
    serde_json::to_string(&severities(min)).unwrap_or_default()
}

/// The names of the severities at or above `min` (all when none).
pub(crate) fn severities(min: Option<Severity>) -> Vec<&'static str> {
    [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ]
    .into_iter()
    .filter(|s| min.is_none_or(|m| *s >= m))
    .map(Severity::as_str)
    .collect()
}

impl Ledger {
    /// The latest line of each recorded incident (EVENTS.md section 5), the
    /// most recently active first; on a shared store, every node's.
    pub fn alerts(&self, f: &AlertFilter) -> Result<Vec<String>> {
        if let Some(shared) = &self.shared {
            let q = crate::alert_query::AlertQuery {
                rule: f.rule.clone(),
                min_severity: f.min_severity,
                limit: f.limit,
                suppressed: f.suppressed,
                ..Default::default()
            };
            return Ok(shared.alert_page(&q)?.lines);
        }
        let severities = severities_json(f.min_severity);
        let r = self
            .conn
            .prepare(&format!(
                "SELECT line FROM alerts WHERE (?1 IS NULL OR rule = ?1) AND severity IN (SELECT value FROM json_each(?2))
                 AND {} ORDER BY last DESC, id LIMIT ?3",
                suppressed_sql(4)
            ))
            .and_then(|mut s| {
                s.query_map(
                    rusqlite::params![
                        f.rule,
                        severities,
                        f.limit.min(i64::MAX as usize) as i64,
                        f.suppressed
                    ],
                    |r| r.get::<_, String>(0),
                )?
                .collect()
            });
        self.db(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataDir;
    use vakt_event::Alert;

    fn alert(id: &str, rule: &str, sev: &str, at: &str) -> Alert {
        serde_json::from_str(&format!(
            r#"{{"id":"{id}","@timestamp":"{at}","rule.id":"{rule}","severity":"{sev}","user.name":"a","first_seen":"{at}","message":"m","evidence":{{}},"customers":1,"alert.status":"new","alert.updates":0}}"#
        ))
        .unwrap()
    }

    #[test]
    fn alerts_newest_first_by_rule_and_minimum_severity() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir {
            path: tmp.path().to_owned(),
        };
        let mut l = Ledger::open(&dir).unwrap();
        l.record_alert(&alert("r-1", "rate", "medium", "2026-11-02T08:00:00Z"))
            .unwrap();
        l.record_alert(&alert("c-1", "canary", "critical", "2026-11-02T09:00:00Z"))
            .unwrap();
        l.record_alert(&alert("r-2", "rate", "high", "2026-11-02T10:00:00Z"))
            .unwrap();
        assert_eq!(l.progress("s").unwrap(), 0);
        l.set_progress("s", 42).unwrap();
        l.close().unwrap();
        let l = Ledger::open_read(&dir).unwrap();
        assert_eq!(l.progress("s").unwrap(), 42);
        let ids = |f: AlertFilter| -> Vec<String> {
            l.alerts(&f)
                .unwrap()
                .iter()
                .map(|line| serde_json::from_str::<Alert>(line).unwrap().id)
                .collect()
        };
        let all = AlertFilter {
            limit: 10,
            ..Default::default()
        };
        assert_eq!(ids(all.clone()), ["r-2", "c-1", "r-1"]);
        assert_eq!(
            ids(AlertFilter {
                rule: Some("rate".into()),
                ..all.clone()
            }),
            ["r-2", "r-1"]
        );
        assert_eq!(
            ids(AlertFilter {
                min_severity: Some(Severity::High),
                ..all.clone()
            }),
            ["r-2", "c-1"]
        );
        assert_eq!(ids(AlertFilter { limit: 1, ..all }), ["r-2"]);
    }
}
