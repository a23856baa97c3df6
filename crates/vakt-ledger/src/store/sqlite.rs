//! The SQLite engine: the tables vakt's ledger kept its entries in first.
//! One row per entry (`entries`, with a unique `(source, line)` and an
//! `(account, t)` index), one row per customer read (`reads`, clustered
//! by customer) and a dictionary of customer names (`customers`). Every append updates three B-trees at random places, which
//! is what caps it (see [`super::segments`] for the figures); kept to read
//! data directories written before the segments engine, and as the
//! baseline `vakt bench store` compares against.

use super::{customer_key, AccountRow, EntryStore, StoredEntry, LINK_BYTES};
use crate::ledger::{decode_ids, encode_ids};
use crate::{LedgerError, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

/// The entry tables as vakt has always created them.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries(
    seq INTEGER PRIMARY KEY,
    t INTEGER NOT NULL,
    account INTEGER NOT NULL,
    org INTEGER NOT NULL,
    ip TEXT NOT NULL,
    action INTEGER NOT NULL,
    records INTEGER NOT NULL,
    cats INTEGER NOT NULL,
    case_id TEXT NOT NULL,
    source INTEGER NOT NULL,
    line INTEGER NOT NULL,
    custs BLOB NOT NULL,
    link BLOB NOT NULL,
    UNIQUE(source, line)
);
CREATE INDEX IF NOT EXISTS entries_account_t ON entries(account, t);
CREATE TABLE IF NOT EXISTS reads(customer INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(customer, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
";

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    len: u64,
    in_transaction: bool,
}

impl SqliteStore {
    /// Opens (creating) the entry tables in the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let db = |source| LedgerError::Db {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(db)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; PRAGMA cache_size=-262144;")
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        let len: i64 = conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM entries", [], |r| {
                r.get(0)
            })
            .map_err(db)?;
        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
            len: len.max(0) as u64,
            in_transaction: false,
        })
    }

    fn db<T>(&self, r: rusqlite::Result<T>) -> Result<T> {
        r.map_err(|source| LedgerError::Db {
            path: self.path.clone(),
            source,
        })
    }

    /// A row as an entry; customer ids resolved to their names.
    fn entry(&self, r: &rusqlite::Row) -> Result<StoredEntry> {
        let e = self.db(Self::row(r))?;
        let custs: Vec<u8> = self.db(r.get(11))?;
        let mut names = Vec::new();
        for id in decode_ids(&custs) {
            let q = self
                .conn
                .prepare_cached("SELECT name FROM customers WHERE id = ?1")
                .and_then(|mut s| s.query_row([id], |r| r.get::<_, String>(0)).optional());
            // A dangling id stays visible (verify reports the entry changed).
            names.push(self.db(q)?.unwrap_or_else(|| format!("#{id}")));
        }
        names.sort_unstable();
        Ok(StoredEntry {
            customers: names,
            ..e
        })
    }

    fn row(r: &rusqlite::Row) -> rusqlite::Result<StoredEntry> {
        let link: Vec<u8> = r.get(12)?;
        let mut l = [0u8; LINK_BYTES];
        let n = link.len().min(LINK_BYTES);
        l[..n].copy_from_slice(&link[..n]);
        Ok(StoredEntry {
            seq: r.get::<_, i64>(0)? as u64,
            t: r.get(1)?,
            account: r.get::<_, i64>(2)? as u64,
            org: r.get::<_, i64>(3)? as u64,
            ip: r.get(4)?,
            action: r.get::<_, i64>(5)? as u64,
            records: r.get(6)?,
            categories: r.get::<_, i64>(7)? as u64,
            case_id: r.get(8)?,
            source: r.get::<_, i64>(9)? as u64,
            line: r.get(10)?,
            customers: Vec::new(),
            link: l,
        })
    }
}

const COLUMNS: &str =
    "seq, t, account, org, ip, action, records, cats, case_id, source, line, custs, link";

impl EntryStore for SqliteStore {
    fn engine(&self) -> &'static str {
        "sqlite"
    }

    fn writable(&self) -> bool {
        true
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn push(&mut self, e: StoredEntry) -> Result<()> {
        if e.seq != self.len + 1 {
            return Err(LedgerError::Invalid(format!(
                "entry {} appended after entry {}",
                e.seq, self.len
            )));
        }
        if !self.in_transaction {
            let r = self.conn.execute_batch("BEGIN");
            self.db(r)?;
            self.in_transaction = true;
        }
        let mut ids = Vec::with_capacity(e.customers.len());
        for c in &e.customers {
            let r = self
                .conn
                .prepare_cached("INSERT INTO customers(name) VALUES (?1) ON CONFLICT(name) DO UPDATE SET name = name RETURNING id")
                .and_then(|mut s| s.query_row([c], |r| r.get::<_, i64>(0)));
            ids.push(self.db(r)?);
        }
        let r = self
            .conn
            .prepare_cached(&format!(
                "INSERT INTO entries({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    e.seq as i64,
                    e.t,
                    e.account as i64,
                    e.org as i64,
                    e.ip,
                    e.action as i64,
                    e.records,
                    e.categories as i64,
                    e.case_id,
                    e.source as i64,
                    e.line,
                    encode_ids(&ids),
                    &e.link[..]
                ])
            });
        self.db(r)?;
        for c in ids {
            let r = self
                .conn
                .prepare_cached("INSERT OR IGNORE INTO reads(customer, seq) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![c, e.seq as i64]));
            self.db(r)?;
        }
        self.len = e.seq;
        Ok(())
    }

    fn flush(&mut self) -> Result<Vec<u8>> {
        if self.in_transaction {
            let r = self.conn.execute_batch("COMMIT");
            self.db(r)?;
            self.in_transaction = false;
        }
        Ok(self.len.to_le_bytes().to_vec())
    }

    fn scan(&self, from: u64, visit: &mut dyn FnMut(&StoredEntry) -> Result<bool>) -> Result<()> {
        let mut stmt = self.db(self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM entries WHERE seq >= ?1 ORDER BY seq"
        )))?;
        let mut rows = self.db(stmt.query([from as i64]))?;
        while let Some(row) = self.db(rows.next())? {
            let e = self.entry(row)?;
            if !visit(&e)? {
                break;
            }
        }
        Ok(())
    }

    fn entries_at(
        &self,
        seqs: &[u64],
        visit: &mut dyn FnMut(&StoredEntry) -> Result<()>,
    ) -> Result<()> {
        for &seq in seqs {
            let r = self
                .conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM entries WHERE seq = ?1"))
                .and_then(|mut s| s.query_row([seq as i64], |r| Ok(self.entry(r))).optional());
            if let Some(e) = self.db(r)? {
                visit(&e?)?;
            }
        }
        Ok(())
    }

    fn customer(
        &self,
        customer: &str,
        visit: &mut dyn FnMut(&StoredEntry) -> Result<()>,
    ) -> Result<()> {
        let r = self
            .conn
            .query_row(
                "SELECT id FROM customers WHERE name = ?1",
                [customer],
                |r| r.get::<_, i64>(0),
            )
            .optional();
        let Some(customer) = self.db(r)? else {
            return Ok(());
        };
        let cols: Vec<String> = COLUMNS.split(", ").map(|c| format!("e.{c}")).collect();
        let mut stmt = self.db(self.conn.prepare(&format!(
            "SELECT {} FROM reads r JOIN entries e ON e.seq = r.seq WHERE r.customer = ?1 ORDER BY r.seq",
            cols.join(", ")
        )))?;
        let mut rows = self.db(stmt.query([customer]))?;
        while let Some(row) = self.db(rows.next())? {
            let e = self.entry(row)?;
            visit(&e)?;
        }
        Ok(())
    }

    fn account(
        &self,
        account: u64,
        since: i64,
        until: i64,
        visit: &mut dyn FnMut(&AccountRow) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.db(self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM entries WHERE account = ?1 AND t BETWEEN ?2 AND ?3 ORDER BY seq"
        )))?;
        let mut rows = self.db(stmt.query(params![account as i64, since, until]))?;
        while let Some(row) = self.db(rows.next())? {
            let e = self.entry(row)?;
            visit(&AccountRow::of(&e))?;
        }
        Ok(())
    }

    fn customer_index(&self, visit: &mut dyn FnMut(u64, u64) -> Result<()>) -> Result<()> {
        let mut stmt = self.db(self.conn.prepare(
            "SELECT coalesce(c.name, '#' || r.customer), r.seq FROM reads r LEFT JOIN customers c ON c.id = r.customer",
        ))?;
        let mut rows = self.db(stmt.query([]))?;
        while let Some(row) = self.db(rows.next())? {
            let (c, seq): (String, i64) = self.db((|| Ok((row.get(0)?, row.get(1)?)))())?;
            visit(customer_key(&c), seq as u64)?;
        }
        Ok(())
    }

    /// The account index is SQLite's own (`entries_account_t`), checked by
    /// its integrity check: its rows are the entries'.
    fn account_index(&self, visit: &mut dyn FnMut(u64, &AccountRow) -> Result<()>) -> Result<()> {
        self.scan(1, &mut |e| {
            visit(e.account, &AccountRow::of(e))?;
            Ok(true)
        })
    }

    fn disk_bytes(&self) -> Result<u64> {
        let r = self
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
            .optional();
        let pages = self.db(r)?.unwrap_or(0);
        let r = self
            .conn
            .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0));
        Ok((pages * self.db(r)?) as u64)
    }
}
