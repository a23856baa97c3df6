//! Recorded alerts filtered by actor, organisation and time, a page at a
//! time, and one alert by id.

use crate::ledger::Ledger;
use crate::Result;
use rusqlite::OptionalExtension;
use vakt_event::{Severity, Timestamp};

/// Where the previous page ended: the last alert's `last` and id (the
/// order is `last` descending, then id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertCursor {
    pub last: i64,
    pub id: String,
}

impl AlertCursor {
    /// `LAST.ID`, safe in a query string once percent-encoded.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.last, self.id)
    }

    pub fn decode(s: &str) -> Option<AlertCursor> {
        let (last, id) = s.split_once('.')?;
        Some(AlertCursor {
            last: last.parse().ok()?,
            id: id.to_owned(),
        })
    }
}

/// Which recorded alerts to list.
#[derive(Clone, Debug, Default)]
pub struct AlertQuery {
    pub rule: Option<String>,
    pub min_severity: Option<Severity>,
    /// The actor's label or account name.
    pub actor: Option<String>,
    /// The alert's `organization`.
    pub organization: Option<String>,
    /// Alerts active at or after this time (their `last`).
    pub since: Option<Timestamp>,
    /// Alerts that began at or before this time (their `first_seen`).
    pub until: Option<Timestamp>,
    /// Continue after this alert.
    pub cursor: Option<AlertCursor>,
    /// Skip this many (after the cursor, if any).
    pub offset: usize,
    pub limit: usize,
    /// As [`crate::alerts::AlertFilter::suppressed`].
    pub suppressed: Option<bool>,
}

/// One page: the stored alert lines and, when more follow, where to continue.
#[derive(Clone, Debug, Default)]
pub struct AlertPage {
    pub lines: Vec<String>,
    pub next: Option<AlertCursor>,
}

/// A recorded alert with its window, as the ledger keeps it.
#[derive(Clone, Debug)]
pub struct AlertRow {
    pub id: String,
    pub rule: String,
    pub actor: String,
    pub user: Option<String>,
    pub first_seen: Timestamp,
    pub last: Timestamp,
    pub severity: String,
    pub line: String,
    /// When it was first recorded (the clock of the node that did).
    pub detected: Timestamp,
}

impl Ledger {
    /// A page of the latest line of each recorded incident, most recently active first.
    /// On a shared store, every node's.
    pub fn alert_page(&self, q: &AlertQuery) -> Result<AlertPage> {
        if let Some(shared) = &self.shared {
            return shared.alert_page(q);
        }
        let severities = crate::alerts::severities_json(q.min_severity);
        let limit = q.limit.min(i64::MAX as usize - 1);
        let r = self
            .conn
            .prepare_cached(&format!(
                "SELECT id, last, line FROM alerts
                 WHERE (?1 IS NULL OR rule = ?1)
                 AND severity IN (SELECT value FROM json_each(?2))
                 AND (?3 IS NULL OR actor = ?3 OR user = ?3)
                 AND (?4 IS NULL OR json_extract(line, '$.\"organization.id\"') = ?4)
                 AND (?5 IS NULL OR last >= ?5)
                 AND (?6 IS NULL OR first_seen <= ?6)
                 AND (?7 IS NULL OR last < ?7 OR (last = ?7 AND id > ?8))
                 AND {}
                 ORDER BY last DESC, id LIMIT ?9 OFFSET ?10",
                crate::alerts::suppressed_sql(11)
            ))
            .and_then(|mut s| {
                s.query_map(
                    rusqlite::params![
                        q.rule,
                        severities,
                        q.actor,
                        q.organization,
                        q.since.map(|t| t.0),
                        q.until.map(|t| t.0),
                        q.cursor.as_ref().map(|c| c.last),
                        q.cursor.as_ref().map(|c| c.id.as_str()),
                        limit as i64 + 1,
                        q.offset.min(i64::MAX as usize) as i64,
                        q.suppressed,
                    ],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                        ))
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
            });
        let mut rows = self.db(r)?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more {
            rows.last().map(|(id, last, _)| AlertCursor {
                last: *last,
                id: id.clone(),
            })
        } else {
            None
        };
        Ok(AlertPage {
            lines: rows.into_iter().map(|(_, _, l)| l).collect(),
            next,
        })
    }

    /// One recorded alert, or None; on a shared store, any node's.
    pub fn alert_row(&self, id: &str) -> Result<Option<AlertRow>> {
        if let Some(shared) = &self.shared {
            return shared.alert_row(id);
        }
        let r = self
            .conn
            .query_row(
                "SELECT id, rule, actor, user, first_seen, last, severity, line, detected FROM alerts WHERE id = ?1",
                [id],
                row,
            )
            .optional();
        self.db(r)
    }

    /// Every recorded alert whose window meets `[since, until]`, oldest
    /// first; on a shared store, every node's.
    pub fn alert_rows(&self, since: Timestamp, until: Timestamp) -> Result<Vec<AlertRow>> {
        if let Some(shared) = &self.shared {
            return shared.alert_rows(since, until);
        }
        let r = self
            .conn
            .prepare(
                "SELECT id, rule, actor, user, first_seen, last, severity, line, detected FROM alerts
                 WHERE last >= ?1 AND first_seen <= ?2 ORDER BY first_seen, id",
            )
            .and_then(|mut s| s.query_map([since.0, until.0], row)?.collect());
        self.db(r)
    }
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<AlertRow> {
    Ok(AlertRow {
        id: r.get(0)?,
        rule: r.get(1)?,
        actor: r.get(2)?,
        user: r.get(3)?,
        first_seen: Timestamp(r.get(4)?),
        last: Timestamp(r.get(5)?),
        severity: r.get(6)?,
        line: r.get(7)?,
        detected: Timestamp(r.get(8)?),
    })
}
