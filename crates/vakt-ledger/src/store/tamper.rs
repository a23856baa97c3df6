//! Editing a ledger's entries and indexes behind vakt's back, as someone
//! with write access to the data directory could: what the tamper tests
//! check verify against. Not for use outside tests.

use super::segments::Segments;
use super::{EntryStore, StoredEntry};
use crate::keys::DataDir;
use crate::ledger::{meta_blob, STORE_POINT};
use crate::{LedgerError, Result};
use rusqlite::{params, Connection};

fn db(dir: &DataDir) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
    move |source| LedgerError::Db {
        path: dir.db_path(),
        source,
    }
}

fn entries(dir: &DataDir, conn: &Connection) -> Result<Vec<StoredEntry>> {
    let point = meta_blob(conn, STORE_POINT).map_err(db(dir))?;
    let store = Segments::open_read(&dir.entries_path(), point.as_deref())?;
    let mut all = Vec::new();
    store.scan(1, &mut |e| {
        all.push(e.clone());
        Ok(true)
    })?;
    Ok(all)
}

/// What to forge besides the entries.
enum Index<'a> {
    Agreeing,
    Customers(&'a mut Vec<(u64, u64)>),
    Accounts(&'a [StoredEntry]),
}

/// Writes `entries` as the ledger's store (indexes built from them unless
/// `index` forges one) and its point into the database, as a careful forger
/// would.
fn replace(dir: &DataDir, conn: &Connection, entries: &[StoredEntry], index: Index) -> Result<()> {
    let fresh = dir.path.join("entries.forged");
    let _ = std::fs::remove_dir_all(&fresh);
    let mut store = Segments::open(&fresh, None)?;
    for e in entries {
        store.push_unchecked(e.clone())?;
    }
    let point = match index {
        Index::Agreeing => store.flush()?,
        Index::Customers(pairs) => store.replace_customer_index(pairs)?,
        Index::Accounts(rows) => store.replace_account_index(rows)?,
    };
    store.committed()?;
    drop(store);
    let path = dir.entries_path();
    std::fs::remove_dir_all(&path).map_err(|source| LedgerError::Io {
        path: path.clone(),
        source,
    })?;
    std::fs::rename(&fresh, &path).map_err(|source| LedgerError::Io { path, source })?;
    conn.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
        params![STORE_POINT, point],
    )
    .map_err(db(dir))?;
    Ok(())
}

/// Rewrites the entries as `edit` leaves them (seqs as they are set), with
/// indexes that agree with the result.
pub fn rewrite_entries(dir: &DataDir, edit: impl FnOnce(&mut Vec<StoredEntry>)) -> Result<()> {
    let conn = Connection::open(dir.db_path()).map_err(db(dir))?;
    let mut all = entries(dir, &conn)?;
    edit(&mut all);
    replace(dir, &conn, &all, Index::Agreeing)
}

/// Rewrites the customer index as `edit` leaves its (customer key, seq)
/// pairs; the entries stay as they are.
pub fn rewrite_customer_index(
    dir: &DataDir,
    edit: impl FnOnce(&mut Vec<(u64, u64)>),
) -> Result<()> {
    let conn = Connection::open(dir.db_path()).map_err(db(dir))?;
    let all = entries(dir, &conn)?;
    let mut pairs: Vec<(u64, u64)> = all
        .iter()
        .flat_map(|e| {
            e.customers
                .iter()
                .map(move |c| (super::customer_key(c), e.seq))
        })
        .collect();
    edit(&mut pairs);
    replace(dir, &conn, &all, Index::Customers(&mut pairs))
}

/// Rewrites the account index's copy of the entries as `edit` leaves them;
/// the log stays as it is.
pub fn rewrite_account_index(
    dir: &DataDir,
    edit: impl FnOnce(&mut Vec<StoredEntry>),
) -> Result<()> {
    let conn = Connection::open(dir.db_path()).map_err(db(dir))?;
    let all = entries(dir, &conn)?;
    let mut forged = all.clone();
    edit(&mut forged);
    replace(dir, &conn, &all, Index::Accounts(&forged))
}
