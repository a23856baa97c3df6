//! The rows people change, shared by the nodes of a PostgreSQL store:
//! exceptions, incident states, API tokens and console users. An
//! exception added on one node suppresses the alerts of every node, an
//! incident acknowledged on one is acknowledged on all, and a user or
//! token made on one signs in on any.
//!
//! `vakt.records` holds the newest version of each row (its table, its key,
//! and its value as the actions chain records it, or nothing when
//! deleted), numbered from one sequence. It is the truth every data
//! directory converges to:
//!
//! - **Publishing.** Each change to such a table is an action
//!   ([`crate::actions`]); an action of this node goes to `vakt.records`
//!   before the data directory commits it: in the batch's PostgreSQL
//!   transaction ([`crate::store::postgres::Rider`]), or, for a change
//!   made by itself (the API, the CLI), in a transaction of its own; if
//!   that fails, the change is rolled back here too. Versions are drawn
//!   under a transaction-scoped advisory lock, so they are committed in
//!   order: a node that has read up to version n has seen every version
//!   up to n.
//! - **Converging** ([`Ledger::sync_shared`]). A node reads the versions
//!   after the last one it applied and writes each row as the store has
//!   it, recorded as an action of its own chain (so `vakt ledger verify`
//!   holds on every node); a row already equal is left alone. A writer
//!   does so at each commit, and `vakt serve` whenever a change is
//!   announced on `vakt_records` (within a second otherwise).
//!
//! Two nodes changing one row at once: the later version wins on every
//! node. New exceptions are numbered from a sequence of the store, so two
//! nodes never give the same id to different exceptions. Rows a data
//! directory held before it was on the store are added once, when it is
//! first opened to write, unless the store has that key already.
//!
//! Console sessions are in `vakt.sessions` (see [`crate::sessions`]), so a
//! browser signed in on one node is signed in on all.

use crate::actions::{payload, Chained, EXCEPTIONS, INCIDENT_STATES, TOKENS, USERS};
use crate::keys::unhex;
use crate::ledger::Ledger;
use crate::shared::Shared;
use crate::store::postgres::{from_text, pg, to_text, LOCK_SPACE};
use crate::{LedgerError, Result};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, OptionalExtension};
use std::time::Duration;

/// The tables whose rows every node shares.
pub(crate) const SHARED: [&Chained; 4] = [&EXCEPTIONS, &INCIDENT_STATES, &TOKENS, &USERS];

/// The channel a change of shared rows is announced on (no payload).
pub const CHANNEL: &str = "vakt_records";

/// Held while versions are drawn and committed, and exception ids.
const RECORDS_LOCK: i32 = -3;

/// The `meta` key of the newest version this data directory applied.
const APPLIED: &str = "records_version";
/// The `meta` key set once the data directory's earlier rows are shared.
const SHARED_ONCE: &str = "records_shared";

/// A shared table, by name.
pub(crate) fn shared_table(table: &str) -> Option<&'static Chained> {
    SHARED.iter().copied().find(|c| c.table == table)
}

/// One row of a shared table as published: its value as the actions
/// chain records it, `None` when deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub table: &'static str,
    pub key: String,
    pub payload: Option<String>,
}

/// Publishes `records` in `tx`: each the newest version of its row
/// unless the store holds that value already; announced on [`CHANNEL`].
pub(crate) fn write(tx: &mut postgres::Transaction<'_>, records: &[Record]) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    insert(
        tx,
        records,
        "DO UPDATE SET payload = excluded.payload, version = excluded.version
         WHERE vakt.records.payload IS DISTINCT FROM excluded.payload",
    )?;
    tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])
        .map_err(pg("announcing the shared rows"))?;
    Ok(())
}

/// Adds `records` the store does not hold yet (a data directory's rows
/// from before it was on the store: the store's own are newer).
fn write_missing(tx: &mut postgres::Transaction<'_>, records: &[Record]) -> Result<()> {
    insert(tx, records, "DO NOTHING")
}

/// Inserts `records` under new versions, `on_conflict` deciding for a key
/// the store holds; versions are drawn under the lock, so they commit in
/// order.
fn insert(tx: &mut postgres::Transaction<'_>, records: &[Record], on_conflict: &str) -> Result<()> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&LOCK_SPACE, &RECORDS_LOCK],
    )
    .map_err(pg("locking the shared rows"))?;
    let sql = format!(
        "INSERT INTO vakt.records(tbl, key, payload, version) VALUES ($1, $2, $3, nextval('vakt.record_versions'))
         ON CONFLICT (tbl, key) {on_conflict}"
    );
    for r in records {
        tx.execute(
            &sql,
            &[
                &r.table,
                &to_text(&r.key),
                &r.payload.as_deref().map(to_text),
            ],
        )
        .map_err(pg("sharing a changed row"))?;
    }
    Ok(())
}

/// A row's values from its payload (the inverse of
/// [`crate::actions::payload`]); `None` when it is not one `c` can hold.
fn values(c: &Chained, payload: &str) -> Option<Vec<Value>> {
    let v: Vec<serde_json::Value> = serde_json::from_str(payload).ok()?;
    if v.len() != c.width() {
        return None;
    }
    v.into_iter()
        .map(|v| match v {
            serde_json::Value::Null => Some(Value::Null),
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(Value::Integer)
                .or_else(|| n.as_f64().map(Value::Real)),
            serde_json::Value::String(s) => Some(Value::Text(s)),
            serde_json::Value::Object(o) => unhex(o.get("x")?.as_str()?).map(Value::Blob),
            _ => None,
        })
        .collect()
}

impl Shared {
    /// Publishes `records` in a transaction of their own.
    pub(crate) fn publish_records(&self, records: &[Record]) -> Result<()> {
        self.client()?.with(|c| {
            let mut tx = c.transaction().map_err(pg("sharing a changed row"))?;
            write(&mut tx, records)?;
            tx.commit().map_err(pg("sharing a changed row"))
        })
    }

    /// Rows the store holds that were not there before.
    fn publish_missing(&self, records: &[Record]) -> Result<()> {
        self.client()?.with(|c| {
            let mut tx = c.transaction().map_err(pg("sharing the earlier rows"))?;
            write_missing(&mut tx, records)?;
            tx.commit().map_err(pg("sharing the earlier rows"))
        })
    }

    /// The rows changed after version `after`, oldest first, with their
    /// versions; rows of tables this vakt does not share are skipped.
    fn records_after(&self, after: i64) -> Result<Vec<(Record, i64)>> {
        let rows = self
            .client()?
            .with(|c| {
                c.query(
                    "SELECT tbl, key, payload, version FROM vakt.records WHERE version > $1 ORDER BY version",
                    &[&after],
                )
            })
            .map_err(pg("reading the shared rows"))?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let table = shared_table(r.get(0))?.table;
                let record = Record {
                    table,
                    key: from_text(r.get(1)),
                    payload: r.get::<_, Option<String>>(2).map(from_text),
                };
                Some((record, r.get(3)))
            })
            .collect())
    }

    /// The number of the next new exception: after every number any node
    /// gave and after `local_next`, the first this data directory would give.
    pub(crate) fn next_exception_number(&self, local_next: i64) -> Result<i64> {
        self.client()?.with(|c| {
            let mut tx = c.transaction().map_err(pg("numbering an exception"))?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[&LOCK_SPACE, &RECORDS_LOCK],
            )
            .map_err(pg("numbering an exception"))?;
            let n: i64 = tx
                .query_one(
                    "SELECT GREATEST(nextval('vakt.exception_numbers'), $1::bigint)",
                    &[&local_next],
                )
                .map_err(pg("numbering an exception"))?
                .get(0);
            tx.execute("SELECT setval('vakt.exception_numbers', $1)", &[&n])
                .map_err(pg("numbering an exception"))?;
            tx.commit().map_err(pg("numbering an exception"))?;
            Ok(n)
        })
    }

    /// Waits up to `timeout` for a change of shared rows to be announced;
    /// whether one was. Use a ledger of its own for it: one listening for
    /// decisions as well would take both channels' announcements.
    fn wait_for_records(&self, timeout: Duration) -> Result<bool> {
        self.wait_on(
            CHANNEL,
            &self.listening_records,
            timeout,
            "listening for shared rows",
        )
    }
}

impl Ledger {
    /// Whether this ledger's entries are in a shared PostgreSQL store.
    pub fn is_on_shared_store(&self) -> bool {
        self.shared.is_some()
    }

    /// Waits up to `timeout` for a node to announce a change of shared
    /// rows; whether one did. Not on a shared store: sleeps, `false`.
    pub fn wait_for_shared_rows(&self, timeout: Duration) -> Result<bool> {
        match &self.shared {
            Some(shared) => shared.wait_for_records(timeout),
            None => {
                std::thread::sleep(timeout);
                Ok(false)
            }
        }
    }

    /// Brings this data directory's exceptions, incident states, tokens
    /// and users to what the shared store holds (every node's changes),
    /// each applied row recorded as an action; how many rows changed. A
    /// ledger that is not on a shared store has nothing to do.
    pub fn sync_shared(&mut self) -> Result<usize> {
        let Some(shared) = &self.shared else {
            return Ok(0);
        };
        let r = self.conn.query_row(
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?1",
            [APPLIED],
            |r| r.get::<_, i64>(0),
        );
        let after = self.db(r.optional())?.unwrap_or(0);
        let records = shared.records_after(after)?;
        let Some(newest) = records.last().map(|(_, v)| *v) else {
            return Ok(0);
        };
        self.chained(|l| {
            l.importing = true;
            let applied = records
                .iter()
                .map(|(r, _)| l.apply_record(r))
                .collect::<Result<Vec<bool>>>();
            l.importing = false;
            let n = applied?.into_iter().filter(|a| *a).count();
            let r = l.conn.execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), excluded.value)",
                params![APPLIED, newest],
            );
            l.db(r)?;
            Ok(n)
        })
    }

    /// Writes `r` here unless the row is so already; whether it changed.
    fn apply_record(&mut self, r: &Record) -> Result<bool> {
        let Some(c) = shared_table(r.table) else {
            return Ok(false);
        };
        self.shared_table_ready(c)?;
        let width = c.width();
        let q = self
            .conn
            .prepare_cached(&c.select_one())
            .and_then(|mut s| s.query_row([&r.key], |row| payload(row, width)).optional());
        let here = self.db(q)?;
        if here == r.payload {
            return Ok(false);
        }
        match &r.payload {
            None => {
                let q = self.conn.execute(
                    &format!("DELETE FROM {} WHERE {} = ?1", c.table, c.key()),
                    [&r.key],
                );
                self.db(q)?;
                if c.table == USERS.table {
                    self.sessions_table()?;
                    let q = self
                        .conn
                        .execute("DELETE FROM sessions WHERE user = ?1", [&r.key]);
                    self.db(q)?;
                }
                self.record_delete(c, &r.key)?;
            }
            Some(p) => {
                let Some(values) = values(c, p) else {
                    tracing::warn!(
                        "the shared row {} {:?} is not one this vakt can hold; left as it is here",
                        c.table,
                        r.key
                    );
                    return Ok(false);
                };
                let marks = vec!["?"; width].join(", ");
                let q = self.conn.execute(
                    &format!(
                        "INSERT OR REPLACE INTO {}({}) VALUES ({marks})",
                        c.table, c.columns
                    ),
                    params_from_iter(values),
                );
                self.db(q)?;
                self.record_put(c, &r.key)?;
            }
        }
        Ok(true)
    }

    /// Creates a shared table made on first use (users) when missing.
    fn shared_table_ready(&self, c: &Chained) -> Result<()> {
        if c.table == USERS.table {
            self.users_table()?;
        }
        Ok(())
    }

    /// Publishes the rows of the shared tables this data directory held
    /// before it was on the store, once; then applies the store's.
    pub(crate) fn share_earlier_records(&mut self) -> Result<()> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let r = self
            .conn
            .query_row("SELECT 1 FROM meta WHERE key = ?1", [SHARED_ONCE], |_| {
                Ok(())
            });
        if self.db(r.optional())?.is_none() {
            let mut records = Vec::new();
            for c in SHARED {
                self.shared_table_ready(c)?;
                let width = c.width();
                let q = self.conn.prepare(&c.select_all()).and_then(|mut s| {
                    s.query_map([], |row| {
                        Ok(Record {
                            table: c.table,
                            key: crate::actions::key_of(row)?,
                            payload: Some(payload(row, width)?),
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<Record>>>()
                });
                records.extend(self.db(q)?);
            }
            shared.publish_missing(&records)?;
            self.set_meta(SHARED_ONCE, b"1")?;
        }
        self.sync_shared().map(|_| ())
    }

    /// Queues `r` for the store when this ledger shares it; see
    /// [`crate::actions`].
    pub(crate) fn share_record(&mut self, table: &str, key: &str, payload: Option<&str>) {
        if self.shared.is_none() || self.importing {
            return;
        }
        if let Some(c) = shared_table(table) {
            self.records_pending.push(Record {
                table: c.table,
                key: key.to_owned(),
                payload: payload.map(str::to_owned),
            });
        }
    }

    /// Publishes what [`Ledger::share_record`] queued, in a transaction of
    /// its own (a change made outside a batch).
    pub(crate) fn publish_pending_records(&mut self) -> Result<()> {
        if self.records_pending.is_empty() {
            return Ok(());
        }
        let Some(shared) = &self.shared else {
            self.records_pending.clear();
            return Ok(());
        };
        let records = std::mem::take(&mut self.records_pending);
        shared.publish_records(&records).map_err(|e| {
            LedgerError::Invalid(format!(
                "the change was not made: the shared store refused it ({e}); try again once PostgreSQL answers"
            ))
        })
    }
}
