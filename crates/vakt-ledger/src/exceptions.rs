//! Exceptions (suppressions) kept in the data directory: added, listed
//! and revoked by people, each write chained as an action. A revoked
//! exception keeps its row, with who revoked it and when.

use crate::ledger::Ledger;
use crate::{LedgerError, Result};
use rusqlite::{params, OptionalExtension};
use vakt_event::{Exception, Timestamp};

/// Created at open, like the other tables; old data directories get it then.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS exceptions(
    id TEXT PRIMARY KEY, actor TEXT, rule TEXT, destination TEXT, until INTEGER,
    reason TEXT NOT NULL, created_by TEXT NOT NULL, created_at INTEGER NOT NULL,
    revoked_at INTEGER, revoked_by TEXT
);
";

const COLUMNS: &str = crate::actions::EXCEPTIONS.columns;

fn row(r: &rusqlite::Row) -> rusqlite::Result<Exception> {
    Ok(Exception {
        id: r.get(0)?,
        actor: r.get(1)?,
        rule: r.get(2)?,
        destination: r.get(3)?,
        until: r.get::<_, Option<i64>>(4)?.map(Timestamp),
        reason: r.get(5)?,
        created_by: r.get(6)?,
        created_at: Timestamp(r.get(7)?),
        revoked_at: r.get::<_, Option<i64>>(8)?.map(Timestamp),
        revoked_by: r.get(9)?,
    })
}

impl Ledger {
    /// Stores a new exception under the next id (`exc-1`, `exc-2`, ...),
    /// chained as an action, and returns it with its id.
    pub fn add_exception(&mut self, e: &Exception) -> Result<Exception> {
        self.chained(|l| {
            let r = l.conn.query_row(
                "SELECT COALESCE(MAX(rowid), 0) + 1 FROM exceptions",
                [],
                |r| r.get::<_, i64>(0),
            );
            let mut number = l.db(r)?;
            if let Some(shared) = &l.shared {
                // Numbered by the store: two nodes never give one id to
                // two exceptions (crate::shared_records).
                number = shared.next_exception_number(number)?;
            }
            let mut e = e.clone();
            e.id = format!("exc-{number}");
            let r = l.conn.execute(
                &format!("INSERT INTO exceptions({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
                params![
                    e.id,
                    e.actor,
                    e.rule,
                    e.destination,
                    e.until.map(|t| t.0),
                    e.reason,
                    e.created_by,
                    e.created_at.0,
                    e.revoked_at.map(|t| t.0),
                    e.revoked_by
                ],
            );
            l.db(r)?;
            l.record_put(&crate::actions::EXCEPTIONS, &e.id)?;
            Ok(e)
        })
    }

    /// Revokes an exception (the row stays, with who and when), chained as
    /// an action. The exception as it now is; None when there is no such
    /// id. Revoking a revoked one changes nothing.
    pub fn revoke_exception(&mut self, id: &str, by: &str) -> Result<Option<Exception>> {
        self.chained(|l| {
            let r = l.conn.execute(
                "UPDATE exceptions SET revoked_at = ?2, revoked_by = ?3 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, Timestamp::now().0, by],
            );
            if l.db(r)? > 0 {
                l.record_put(&crate::actions::EXCEPTIONS, id)?;
            }
            l.exception(id)
        })
    }

    /// One exception by id.
    pub fn exception(&self, id: &str) -> Result<Option<Exception>> {
        let r = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM exceptions WHERE id = ?1"),
                [id],
                row,
            )
            .optional();
        self.db(r)
    }

    /// The exceptions in force at `at` (not revoked, not ended), or all of
    /// them, oldest first.
    pub fn exceptions(&self, at: Option<Timestamp>) -> Result<Vec<Exception>> {
        let r = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM exceptions
                 WHERE ?1 IS NULL OR (revoked_at IS NULL AND (until IS NULL OR until > ?1))
                 ORDER BY created_at, rowid"
            ))
            .and_then(|mut s| s.query_map([at.map(|t| t.0)], row)?.collect());
        self.db(r)
    }

    /// The `user.name` and `rule.id` of a recorded alert, for an exception
    /// made from it; an error naming the id when there is none.
    pub fn alert_actor_and_rule(&self, alert_id: &str) -> Result<(String, String)> {
        let r = self
            .conn
            .query_row(
                "SELECT actor, rule FROM alerts WHERE id = ?1",
                [alert_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional();
        self.db(r)?.ok_or_else(|| {
            LedgerError::Invalid(format!(
                "no recorded alert {alert_id}; `GET /v1/alerts` or the console lists them"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataDir;
    use vakt_event::NewException;

    #[test]
    fn exceptions_are_added_listed_revoked_and_verified() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir {
            path: tmp.path().join("data"),
        };
        let mut l = Ledger::open(&dir).unwrap();
        let now = Timestamp::now();
        let new = |actor: &str, until: Option<Timestamp>| {
            Exception::new(
                NewException {
                    actor: Some(actor.into()),
                    rule: Some("rate".into()),
                    until,
                    reason: "nightly job".into(),
                    ..Default::default()
                },
                "anna",
                now,
                &["rate"],
            )
            .unwrap()
        };
        let a = l.add_exception(&new("p3.bot", None)).unwrap();
        let b = l
            .add_exception(&new("p3.sync", Some(Timestamp(now.0 + 60_000))))
            .unwrap();
        assert_eq!((a.id.as_str(), b.id.as_str()), ("exc-1", "exc-2"));
        l.close().unwrap();

        let mut w = Ledger::open_read(&dir).unwrap();
        assert_eq!(w.exceptions(Some(now)).unwrap(), [a.clone(), b.clone()]);
        // After its end it is no longer in force, but still listed.
        assert_eq!(
            w.exceptions(Some(Timestamp(now.0 + 60_000))).unwrap(),
            std::slice::from_ref(&a)
        );
        let revoked = w.revoke_exception("exc-1", "bert").unwrap().unwrap();
        assert_eq!(revoked.revoked_by.as_deref(), Some("bert"));
        assert!(w.revoke_exception("exc-9", "bert").unwrap().is_none());
        assert_eq!(w.exceptions(Some(now)).unwrap(), [b]);
        assert_eq!(w.exceptions(None).unwrap().len(), 2);
        let report = crate::verify::verify(&dir).unwrap();
        assert!(report.problem.is_none(), "{report:?}");

        // A row changed outside vakt is found.
        w.conn
            .execute(
                "UPDATE exceptions SET revoked_at = NULL, revoked_by = NULL WHERE id = 'exc-1'",
                [],
            )
            .unwrap();
        let report = crate::verify::verify(&dir).unwrap();
        assert_eq!(
            report.problem,
            Some(crate::Problem::ExceptionChanged { id: "exc-1".into() })
        );
    }

    #[test]
    fn a_suppressed_alert_is_stored_flagged_and_listed_only_when_asked_for() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir {
            path: tmp.path().join("data"),
        };
        let mut l = Ledger::open(&dir).unwrap();
        let alert = |id: &str| -> vakt_event::Alert {
            serde_json::from_str(&format!(
                r#"{{"id":"{id}","@timestamp":"2026-11-02T08:00:00Z","rule.id":"rate","severity":"high","user.name":"a","first_seen":"2026-11-02T08:00:00Z","message":"m","evidence":{{}},"customers":1,"alert.status":"new"}}"#
            ))
            .unwrap()
        };
        l.record_alert(&alert("shown")).unwrap();
        l.record_alert_as(&alert("hidden"), Some("exc-1")).unwrap();
        l.close().unwrap();
        let l = Ledger::open_read(&dir).unwrap();
        let ids = |suppressed: Option<bool>| -> Vec<String> {
            let q = crate::alert_query::AlertQuery {
                limit: 10,
                suppressed,
                ..Default::default()
            };
            let lines = l.alert_page(&q).unwrap().lines;
            let f = crate::alerts::AlertFilter {
                limit: 10,
                suppressed,
                ..Default::default()
            };
            assert_eq!(l.alerts(&f).unwrap(), lines);
            lines
                .iter()
                .map(|s| serde_json::from_str::<vakt_event::Alert>(s).unwrap().id)
                .collect()
        };
        assert_eq!(ids(Some(false)), ["shown"]);
        assert_eq!(ids(Some(true)), ["hidden"]);
        assert_eq!(ids(None), ["hidden", "shown"]);
        let line = l.alert_row("hidden").unwrap().unwrap().line;
        assert!(line.contains(r#""vakt.suppressed_by":"exc-1""#), "{line}");
        assert!(crate::verify::verify(&dir).unwrap().problem.is_none());
    }
}
