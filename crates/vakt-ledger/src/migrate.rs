//! `vakt ledger migrate`: moves the entries of a ledger written before the
//! segments engine (SQLite tables `entries` and `reads`) into the segments
//! engine, in place.
//!
//! 1. The ledger is verified as it is; a ledger that fails is not touched.
//! 2. A copy of the database is kept as `ledger.db.v1` (`VACUUM INTO`).
//! 3. The entries are copied in order into a new store, keeping their seqs,
//!    links and names (customers by name, as the chain hashed them): the
//!    chain and every signed checkpoint stay valid as they are.
//! 4. One SQLite transaction names the new engine and its commit point,
//!    records the lines held per source, and drops the old tables
//!    (`entries`, `reads`, `customers`). A kill
//!    before it leaves the old ledger as it was (the half-built store is
//!    removed at the next attempt); after it, the new one.
//! 5. The ledger is verified again.
//!
//! Opening an old ledger for writing (`vakt watch --data`, `vakt serve`)
//! runs the same steps first.

use crate::keys::DataDir;
use crate::ledger::{ENGINE, STORE_POINT};
use crate::lines::Lines;
use crate::store::segments::Segments;
use crate::store::sqlite::SqliteStore;
use crate::store::EntryStore;
use crate::verify::{verify, Problem};
use crate::{LedgerError, Result};
use rusqlite::{params, Connection};
use std::collections::HashMap;
use std::path::PathBuf;

/// Entries copied between two flushes of the new store.
const FLUSH: u64 = 1_000_000;

/// Whether the ledger's entries are still in the SQLite tables.
pub(crate) fn is_v1(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'entries')",
        [],
        |r| r.get(0),
    )
}

/// What a migration did.
#[derive(Debug, Clone)]
pub struct Migrated {
    pub entries: u64,
    /// The old database, kept.
    pub backup: PathBuf,
    /// Bytes of the entries before (the old database) and after (the new
    /// store, and the database without the entry tables).
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub seconds: f64,
}

/// Whether `dir` holds a ledger still to migrate.
pub fn needed(dir: &DataDir) -> Result<bool> {
    if !dir.db_path().exists() {
        return Ok(false);
    }
    let db = |source| LedgerError::Db {
        path: dir.db_path(),
        source,
    };
    let conn = Connection::open(dir.db_path()).map_err(db)?;
    is_v1(&conn).map_err(db)
}

/// Migrates `dir` (see the module documentation). `None` when there was
/// nothing to migrate.
pub fn migrate(dir: &DataDir) -> Result<Option<Migrated>> {
    if !needed(dir)? {
        return Ok(None);
    }
    let db = |source| LedgerError::Db {
        path: dir.db_path(),
        source,
    };
    let conn = Connection::open(dir.db_path()).map_err(db)?;
    conn.execute_batch("PRAGMA busy_timeout=5000;")
        .map_err(db)?;
    to_segments(dir, &conn)
}

fn refused(dir: &DataDir, when: &str, p: &Problem) -> LedgerError {
    let what = if when == "before" {
        "nothing was changed: keep the data directory as evidence, or restore it from a backup, before writing to it again"
    } else {
        "the old database is kept as ledger.db.v1: copy it over ledger.db and remove entries/ to go back, and report this"
    };
    LedgerError::Invalid(format!(
        "{}: the ledger does not verify {when} the move to the segments engine ({p}); {what}",
        dir.path.display(),
    ))
}

/// The migration itself, on the database connection `conn` of `dir`;
/// `None` when another process migrated it first.
pub(crate) fn to_segments(dir: &DataDir, conn: &Connection) -> Result<Option<Migrated>> {
    let started = std::time::Instant::now();
    let db = |source| LedgerError::Db {
        path: dir.db_path(),
        source,
    };
    let path = dir.entries_path();
    // Whoever holds the lock migrates; the others wait for nothing and say so.
    let Some(lock) = Segments::lock(&path)? else {
        return Err(LedgerError::Invalid(format!(
            "{}: another vakt process is moving this ledger to the segments engine, or appending to it; wait for it, then start again",
            dir.path.display()
        )));
    };
    if !is_v1(conn).map_err(db)? {
        return Ok(None);
    }
    tracing::warn!(
        "moving the ledger's entries in {} to the segments engine; the old database is kept as ledger.db.v1",
        dir.path.display()
    );
    if let Some(p) = verify(dir)?.problem {
        return Err(refused(dir, "before", &p));
    }
    let backup = dir.path.join("ledger.db.v1");
    let _ = std::fs::remove_file(&backup);
    conn.execute("VACUUM INTO ?1", [backup.to_string_lossy()])
        .map_err(db)?;
    let bytes_before = std::fs::metadata(&backup).map(|m| m.len()).unwrap_or(0);
    let old = SqliteStore::open(&dir.db_path())?;
    // Without a point, what a migration killed earlier left is cleared.
    let mut new = Segments::open_locked(&path, None, lock)?;
    let mut lines: HashMap<u64, Lines> = HashMap::new();
    let mut copied = 0u64;
    let mut failed = None;
    old.scan(1, &mut |e| {
        lines
            .entry(e.source)
            .or_default()
            .insert(e.line.max(0) as u64);
        if let Err(err) = new.push(e.clone()) {
            failed = Some(err);
            return Ok(false);
        }
        copied += 1;
        if copied.is_multiple_of(FLUSH) {
            new.flush()?;
        }
        Ok(true)
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let point = new.flush()?;
    drop(old);
    conn.execute_batch("BEGIN IMMEDIATE").map_err(db)?;
    let r = (|| {
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, 'segments')",
            [ENGINE],
        )?;
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
            params![STORE_POINT, point],
        )?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS source_lines(source INTEGER PRIMARY KEY, ranges BLOB NOT NULL);",
        )?;
        for (source, l) in &lines {
            conn.execute(
                "INSERT OR REPLACE INTO source_lines(source, ranges) VALUES (?1, ?2)",
                params![*source as i64, l.encode()],
            )?;
        }
        conn.execute_batch("DROP TABLE reads; DROP TABLE entries; DROP TABLE customers; COMMIT;")
    })();
    if let Err(e) = r {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(db(e));
    }
    new.committed()?;
    conn.execute_batch("VACUUM").map_err(db)?;
    if let Some(p) = verify(dir)?.problem {
        return Err(refused(dir, "after", &p));
    }
    let bytes_after = std::fs::metadata(dir.db_path())
        .map(|m| m.len())
        .unwrap_or(0)
        + new.disk_bytes()?;
    Ok(Some(Migrated {
        entries: copied,
        backup,
        bytes_before,
        bytes_after,
        seconds: started.elapsed().as_secs_f64(),
    }))
}
