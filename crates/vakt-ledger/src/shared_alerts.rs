//! Alerts on a shared PostgreSQL store: every node's in `vakt.alerts`,
//! so the API and console of any node list, filter and open them all.
//!
//! A node records an alert line in its data directory, as one node alone
//! does (the row its actions chain signs), and the batch that recorded it
//! copies the row to `vakt.alerts` in the store's transaction
//! ([`crate::store::postgres::Rider`]): no node lists an alert whose batch
//! is not committed, and none is lost with a node killed after it. An
//! incident moves between nodes with its Kafka partition and keeps its id,
//! so two nodes may write one id: the row keeps the earliest `first_seen`
//! and `detected`, and the line, severity and actor of the latest `last`.
//!
//! Reads ([`Shared::alert_page`], [`Shared::alert_row`],
//! [`Shared::alert_rows`]) have the data directory's semantics: the same
//! filters, order (`last` descending, then id by bytes) and cursor. Text
//! from hostile input is stored as the entries' names are (NUL as `\0`);
//! the organisation and whether an exception suppressed the alert are
//! columns of their own, drawn from the line when it is copied, so no
//! query parses JSON that may hold what `jsonb` refuses.

use crate::alert_query::{AlertCursor, AlertPage, AlertQuery, AlertRow};
use crate::shared::Shared;
use crate::store::postgres::{from_text, pg, to_text};
use crate::Result;
use rusqlite::{Connection, OptionalExtension};
use vakt_event::Timestamp;

/// One recorded alert as the data directory holds it, to be copied.
#[derive(Debug, Clone)]
pub(crate) struct StoredAlert {
    id: String,
    rule: String,
    actor: String,
    user: Option<String>,
    first_seen: i64,
    detected: i64,
    last: i64,
    severity: String,
    line: String,
}

const COLUMNS: &str = "id, rule, actor, user, first_seen, detected, last, severity, line";

fn local(r: &rusqlite::Row) -> rusqlite::Result<StoredAlert> {
    Ok(StoredAlert {
        id: r.get(0)?,
        rule: r.get(1)?,
        actor: r.get(2)?,
        user: r.get(3)?,
        first_seen: r.get(4)?,
        detected: r.get(5)?,
        last: r.get(6)?,
        severity: r.get(7)?,
        line: r.get(8)?,
    })
}

/// The data directory's alert rows with these rowids (a batch's), as
/// they are now; a row since deleted is left out.
pub(crate) fn changed(conn: &Connection, rowids: &[i64]) -> rusqlite::Result<Vec<StoredAlert>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM alerts WHERE rowid = ?1"))?;
    let mut out = Vec::with_capacity(rowids.len());
    for rowid in rowids {
        if let Some(a) = stmt.query_row([rowid], local).optional()? {
            out.push(a);
        }
    }
    Ok(out)
}

/// Every alert row of the data directory (copied once, when a data
/// directory recorded alerts before they were shared).
pub(crate) fn all(conn: &Connection) -> rusqlite::Result<Vec<StoredAlert>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM alerts ORDER BY rowid"))?;
    let rows = stmt.query_map([], local)?;
    rows.collect()
}

/// Writes `a` to `vakt.alerts` in `tx`, merged with what another chain
/// wrote under the same id.
pub(crate) fn write(tx: &mut postgres::Transaction<'_>, chain: i32, a: &StoredAlert) -> Result<()> {
    let line: Option<serde_json::Value> = serde_json::from_str(&a.line).ok();
    let organization = line
        .as_ref()
        .and_then(|v| v.get("organization.id"))
        .and_then(|v| v.as_str())
        .map(|o| to_text(o).into_owned());
    let suppressed = line
        .as_ref()
        .and_then(|v| v.get(crate::ledger::SUPPRESSED_BY))
        .is_some_and(|v| !v.is_null());
    tx.execute(
        "INSERT INTO vakt.alerts(id, chain, rule, actor, \"user\", organization, suppressed, first_seen, detected, last, severity, line)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (id) DO UPDATE SET
           first_seen = LEAST(vakt.alerts.first_seen, excluded.first_seen),
           detected = LEAST(vakt.alerts.detected, excluded.detected),
           last = GREATEST(vakt.alerts.last, excluded.last),
           chain = CASE WHEN excluded.last >= vakt.alerts.last THEN excluded.chain ELSE vakt.alerts.chain END,
           rule = CASE WHEN excluded.last >= vakt.alerts.last THEN excluded.rule ELSE vakt.alerts.rule END,
           actor = CASE WHEN excluded.last >= vakt.alerts.last THEN excluded.actor ELSE vakt.alerts.actor END,
           \"user\" = CASE WHEN excluded.last >= vakt.alerts.last THEN excluded.\"user\" ELSE vakt.alerts.\"user\" END,
           organization = CASE WHEN excluded.last >= vakt.alerts.last THEN excluded.organization ELSE vakt.alerts.organization END,
           suppressed = CASE WHEN excluded.last >= vakt.alerts.last THEN excluded.suppressed ELSE vakt.alerts.suppressed END,
           severity = CASE WHEN excluded.last >= vakt.alerts.last THEN excluded.severity ELSE vakt.alerts.severity END,
           line = CASE WHEN excluded.last >= vakt.alerts.last THEN excluded.line ELSE vakt.alerts.line END",
        &[
            &to_text(&a.id),
            &chain,
            &to_text(&a.rule),
            &to_text(&a.actor),
            &a.user.as_deref().map(to_text),
            &organization,
            &suppressed,
            &a.first_seen,
            &a.detected,
            &a.last,
            &to_text(&a.severity),
            &to_text(&a.line),
        ],
    )
    .map_err(pg("sharing an alert"))?;
    Ok(())
}

const ROW: &str =
    "id, rule, actor, \"user\", first_seen, last, severity, line, detected FROM vakt.alerts";

fn row(r: &postgres::Row) -> AlertRow {
    AlertRow {
        id: from_text(r.get(0)),
        rule: from_text(r.get(1)),
        actor: from_text(r.get(2)),
        user: r.get::<_, Option<String>>(3).map(from_text),
        first_seen: Timestamp(r.get(4)),
        last: Timestamp(r.get(5)),
        severity: from_text(r.get(6)),
        line: from_text(r.get(7)),
        detected: Timestamp(r.get(8)),
    }
}

impl Shared {
    /// [`crate::ledger::Ledger::alert_page`] over every node's alerts.
    pub fn alert_page(&self, q: &AlertQuery) -> Result<AlertPage> {
        let severities: Vec<&str> = crate::alerts::severities(q.min_severity);
        let limit = q.limit.min(i64::MAX as usize - 1);
        let rule = q.rule.as_deref().map(to_text);
        let actor = q.actor.as_deref().map(to_text);
        let organization = q.organization.as_deref().map(to_text);
        let cursor_id = q.cursor.as_ref().map(|c| to_text(&c.id).into_owned());
        let rows = self
            .client()?
            .with(|c| {
                c.query(
                    "SELECT id, last, line FROM vakt.alerts
                     WHERE ($1::text IS NULL OR rule = $1)
                     AND severity = ANY($2::text[])
                     AND ($3::text IS NULL OR actor = $3 OR \"user\" = $3)
                     AND ($4::text IS NULL OR organization = $4)
                     AND ($5::bigint IS NULL OR last >= $5)
                     AND ($6::bigint IS NULL OR first_seen <= $6)
                     AND ($7::bigint IS NULL OR last < $7 OR (last = $7 AND id COLLATE \"C\" > $8::text))
                     AND ($11::bool IS NULL OR suppressed = $11)
                     ORDER BY last DESC, id COLLATE \"C\" LIMIT $9 OFFSET $10",
                    &[
                        &rule,
                        &severities,
                        &actor,
                        &organization,
                        &q.since.map(|t| t.0),
                        &q.until.map(|t| t.0),
                        &q.cursor.as_ref().map(|c| c.last),
                        &cursor_id,
                        &(limit as i64 + 1),
                        &(q.offset.min(i64::MAX as usize) as i64),
                        &q.suppressed,
                    ],
                )
            })
            .map_err(pg("reading the alerts"))?;
        let more = rows.len() > limit;
        let mut page = AlertPage::default();
        for r in rows.iter().take(limit) {
            page.lines.push(from_text(r.get(2)));
        }
        if more {
            page.next = limit
                .checked_sub(1)
                .and_then(|i| rows.get(i))
                .map(|r| AlertCursor {
                    last: r.get(1),
                    id: from_text(r.get(0)),
                });
        }
        Ok(page)
    }

    /// [`crate::ledger::Ledger::alert_row`] over every node's alerts.
    pub fn alert_row(&self, id: &str) -> Result<Option<AlertRow>> {
        let rows = self
            .client()?
            .with(|c| c.query(&format!("SELECT {ROW} WHERE id = $1"), &[&to_text(id)]))
            .map_err(pg("reading an alert"))?;
        Ok(rows.first().map(row))
    }

    /// [`crate::ledger::Ledger::alert_rows`] over every node's alerts.
    pub fn alert_rows(&self, since: Timestamp, until: Timestamp) -> Result<Vec<AlertRow>> {
        let rows = self
            .client()?
            .with(|c| {
                c.query(
                    &format!(
                        "SELECT {ROW} WHERE last >= $1 AND first_seen <= $2 ORDER BY first_seen, id COLLATE \"C\""
                    ),
                    &[&since.0, &until.0],
                )
            })
            .map_err(pg("reading the alerts"))?;
        Ok(rows.iter().map(row).collect())
    }
}
