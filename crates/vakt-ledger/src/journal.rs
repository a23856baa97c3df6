//! The data directory's changes of one batch, carried in the PostgreSQL
//! store's transaction, so that transaction is the one commit point of a
//! node whose entries are there.
//!
//! A node sharing a database with others cannot commit its data directory
//! last and undo the database to it after a crash, as one node alone does:
//! another node may already have resumed a Kafka partition from offsets
//! that transaction wrote. So a batch is committed the other way round.
//! Everything the batch changed in the data directory's SQLite database
//! (names, source lines, progress, checkpoint, alerts, actions, decisions)
//! goes to `vakt.journal` in the same PostgreSQL transaction as the
//! entries, their postings and the partitions' offsets. The data
//! directory commits after. A node killed between the two finds, when it
//! opens again, a journal one batch ahead of its data directory, and
//! applies it ([`roll_forward`]): nothing the database holds is undone.
//!
//! Only the newest batch's changes are kept per chain: the one before it
//! was committed to the data directory before this one began.
//!
//! The changes are row images: SQLite's update hook names each row the
//! batch inserted, updated or deleted, and at commit each is read back as
//! it now is (or marked gone). Applying them writes each row by its rowid
//! as it was left. SQLite's session extension would record the same, but
//! the `rusqlite` build of it needs libclang at build time, which a fresh
//! machine with only the Rust toolchain does not have. Known gap, as with
//! the hook itself: a `DELETE` without `WHERE` on a whole table is not
//! reported by SQLite; no writer does one inside a batch.

use crate::store::postgres::{connect, pg, LOCK_SPACE};
use crate::{LedgerError, Result};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The `meta` key of the number of the last batch whose changes the data
/// directory holds.
pub(crate) const JOURNAL_N: &str = "journal_n";

/// The rows the open transaction changed, by table and rowid.
type Changed = Arc<Mutex<BTreeSet<(String, i64)>>>;

/// Records what each batch changes in the ledger's database.
pub(crate) struct Recorder {
    changed: Changed,
}

impl Recorder {
    /// Starts recording the changes to `conn`'s main database.
    pub(crate) fn install(conn: &mut Connection) -> rusqlite::Result<Recorder> {
        let changed = Changed::default();
        let seen = changed.clone();
        conn.update_hook(Some(move |_, db: &str, table: &str, rowid: i64| {
            if db == "main" {
                if let Ok(mut c) = seen.lock() {
                    c.insert((table.to_owned(), rowid));
                }
            }
        }))?;
        Ok(Recorder { changed })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.changed.lock().map(|c| c.is_empty()).unwrap_or(true)
    }

    /// The rowids of `table` changed since the last [`Recorder::clear`].
    pub(crate) fn rowids(&self, table: &str) -> Vec<i64> {
        match self.changed.lock() {
            Ok(c) => c
                .iter()
                .filter(|(t, _)| t == table)
                .map(|(_, r)| *r)
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Forgets what was recorded (the batch committed).
    pub(crate) fn clear(&self) {
        if let Ok(mut c) = self.changed.lock() {
            c.clear();
        }
    }

    /// Every row changed since the last [`Recorder::clear`], as it now is
    /// in `conn` (inside the batch's transaction).
    pub(crate) fn changes(&self, conn: &Connection) -> rusqlite::Result<Vec<u8>> {
        let changed: Vec<(String, i64)> = match self.changed.lock() {
            Ok(c) => c.iter().cloned().collect(),
            Err(_) => Vec::new(),
        };
        let mut rows = Vec::with_capacity(changed.len());
        for (table, rowid) in changed {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT * FROM {} WHERE rowid = ?1",
                quoted(&table)
            ))?;
            let names: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
            let row = stmt
                .query_row([rowid], |r| {
                    let mut m = serde_json::Map::new();
                    for (i, name) in names.iter().enumerate() {
                        m.insert(name.clone(), to_json(r.get::<_, Value>(i)?));
                    }
                    Ok(m)
                })
                .optional()?;
            rows.push(serde_json::json!({ "table": table, "rowid": rowid, "row": row }));
        }
        Ok(serde_json::to_vec(&rows).expect("JSON values serialize"))
    }
}

/// Writes `changes` (from [`Recorder::changes`]) to `conn`.
fn apply(conn: &Connection, changes: &[u8]) -> std::result::Result<(), String> {
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(changes).map_err(|e| format!("the journal cannot be read ({e})"))?;
    let tables: BTreeSet<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| e.to_string())?;
    for r in rows {
        let (Some(table), Some(rowid)) = (r["table"].as_str(), r["rowid"].as_i64()) else {
            return Err("a journal row names no table or rowid".into());
        };
        if !tables.contains(table) {
            return Err(format!(
                "the journal names table {table:?}, which this data directory does not have"
            ));
        }
        let result = match r["row"].as_object() {
            None => conn.execute(
                &format!("DELETE FROM {} WHERE rowid = ?1", quoted(table)),
                [rowid],
            ),
            Some(row) => {
                let columns: Vec<String> = row.keys().map(|c| quoted(c)).collect();
                let mut values = vec![Value::Integer(rowid)];
                for v in row.values() {
                    values.push(from_json(v).ok_or("a journal value cannot be read")?);
                }
                let marks = vec!["?"; values.len()].join(", ");
                conn.execute(
                    &format!(
                        "INSERT OR REPLACE INTO {}(rowid, {}) VALUES ({marks})",
                        quoted(table),
                        columns.join(", ")
                    ),
                    params_from_iter(values),
                )
            }
        };
        result.map_err(|e| format!("table {table}, row {rowid}: {e}"))?;
    }
    Ok(())
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A column's value as JSON: text as a string, a blob as `{"blob": hex}`.
fn to_json(v: Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => i.into(),
        Value::Real(f) => f.into(),
        Value::Text(t) => t.into(),
        Value::Blob(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            serde_json::json!({ "blob": hex })
        }
    }
}

fn from_json(v: &serde_json::Value) -> Option<Value> {
    Some(match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Real(n.as_f64()?),
        },
        serde_json::Value::String(s) => Value::Text(s.clone()),
        serde_json::Value::Object(o) => {
            let hex = o.get("blob")?.as_str()?;
            if hex.len() % 2 != 0 {
                return None;
            }
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            Value::Blob(bytes)
        }
        _ => return None,
    })
}

/// The batch number the data directory holds.
pub(crate) fn batch_number(conn: &Connection) -> rusqlite::Result<i64> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [JOURNAL_N], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .unwrap_or(0))
}

/// Brings the data directory at `db` up to the chain's journal in the
/// database at `url`, when a process wrote a batch there and died before
/// its data directory committed it. Does nothing when another process
/// appends to the chain (it is that process's to do). Returns whether a
/// batch was applied.
pub(crate) fn roll_forward(
    conn: &Connection,
    db: &std::path::Path,
    url: &str,
    chain: i32,
) -> Result<bool> {
    let mut client = connect(url)?;
    // Held while the batch is applied here; dropped with the connection.
    let row = client.with(|c| -> Result<Option<(i64, i64, Vec<u8>)>> {
        let free: bool = c
            .query_one(
                "SELECT pg_try_advisory_lock($1, $2)",
                &[&LOCK_SPACE, &chain],
            )
            .map_err(pg("locking the chain"))?
            .get(0);
        let has_journal: bool = c
            .query_one("SELECT to_regclass('vakt.journal') IS NOT NULL", &[])
            .map_err(pg("reading the journal"))?
            .get(0);
        if !free || !has_journal {
            return Ok(None);
        }
        Ok(c.query_opt(
            "SELECT n, upto, changes FROM vakt.journal WHERE chain = $1",
            &[&chain],
        )
        .map_err(pg("reading the journal"))?
        .map(|r| (r.get(0), r.get(1), r.get(2))))
    })?;
    let Some((n, upto, changes)) = row else {
        return Ok(false);
    };
    let sqlite = |source| LedgerError::Db {
        path: db.to_owned(),
        source,
    };
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sqlite)?;
    let applied = (|| -> Result<bool> {
        let have = batch_number(conn).map_err(sqlite)?;
        if n <= have {
            return Ok(false);
        }
        if n != have + 1 {
            return Err(LedgerError::Invalid(format!(
                    "{}: the data directory holds batch {have} of chain {chain} but PostgreSQL's journal is at batch {n}; the data directory is older than the database (restored from a backup?): restore the newest copy",
                    db.display()
                )));
        }
        apply(conn, &changes).map_err(|e| {
                LedgerError::Invalid(format!(
                    "{}: the last batch of chain {chain}, committed in PostgreSQL, does not apply to the data directory: {e}; restore the data directory from a backup",
                    db.display()
                ))
            })?;
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
            params![
                crate::ledger::STORE_POINT,
                crate::store::postgres::encode_point(upto as u64)
            ],
        )
        .map_err(sqlite)?;
        Ok(true)
    })();
    match applied {
        Ok(true) => conn.execute_batch("COMMIT").map_err(sqlite)?,
        _ => {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    applied
}
