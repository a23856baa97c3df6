//! Where the ledger's entries and their scoping indexes live: one small
//! trait, [`EntryStore`], so scope, verify and report do not care which
//! engine holds them.
//!
//! The ledger hands a store entries whose names are already interned
//! ([`StoredEntry`]) and the link that chains each; the store keeps them in
//! order, makes them durable at [`EntryStore::flush`], and answers the three
//! questions everything else is built on: the entries in order (verify,
//! exposure), the entries that name a customer (`scope --customer`), and an
//! account's accesses in a time window (`scope --account`).
//!
//! Durability is the caller's transaction: `flush` returns a commit point
//! (opaque bytes) that the ledger stores in the same SQLite transaction as
//! its checkpoint and ingest progress; a store opened with that point
//! forgets anything written after it (a process killed between the two
//! writes). So entries, alerts, decisions and progress commit together,
//! whichever engine holds the entries. A PostgreSQL store shared by
//! several nodes turns this round: its transaction is the commit point and
//! carries the batch's changes to the data directory
//! ([`postgres::PgStore::flush_with`], `crate::journal`), because another
//! node may resume from what it committed.
//!
//! # Engines
//!
//! - [`segments`]: an append-only chain log in compressed column blocks,
//!   and per-flush sorted runs of postings (customer to entries, account to
//!   its accesses) merged in tiers. The default.
//! - [`postgres`]: a PostgreSQL database several nodes share, one chain
//!   per writer, partitioned by month.
//! - [`sqlite`]: the tables vakt kept before (one row per entry, one per
//!   customer read, a B-tree each): kept to read old data directories and
//!   to compare against.
//!
//! How they compare, measured with `vakt bench store` on this design's
//! target workload, is in [`segments`]'s documentation.

mod pg_connect;
pub mod postgres;
pub mod segments;
pub mod sqlite;
#[doc(hidden)]
pub mod tamper;
pub(crate) mod varint;

use crate::Result;

/// Bytes of the stored per-entry link: enough to locate a change; the full
/// hash is in the signed checkpoints.
pub const LINK_BYTES: usize = 8;

/// One access as a store keeps it: names as ids of the ledger's name
/// dictionary (accounts, organisations, actions, categories and sources
/// are few), customers by name (they are many: a dictionary of them would
/// cost a look-up per access), sorted and distinct as the chain hashed them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredEntry {
    pub seq: u64,
    pub t: i64,
    pub account: u64,
    pub org: u64,
    pub action: u64,
    pub categories: u64,
    pub source: u64,
    pub ip: String,
    pub records: i64,
    pub case_id: String,
    pub line: i64,
    pub customers: Vec<String>,
    pub link: [u8; LINK_BYTES],
}

/// The key a customer's postings are filed under: 64 bits of BLAKE3 of the
/// name, the same in every version (it is on disk). Two names sharing a key
/// share a posting list; answers filter by name, so they stay exact.
pub fn customer_key(name: &str) -> u64 {
    let h = blake3::hash(name.as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 of 32"))
}

/// What `scope --account` needs of one access.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountRow {
    pub seq: u64,
    pub t: i64,
    pub ip: String,
    pub categories: u64,
    pub records: i64,
    pub customers: Vec<String>,
}

impl AccountRow {
    pub fn of(e: &StoredEntry) -> AccountRow {
        AccountRow {
            seq: e.seq,
            t: e.t,
            ip: e.ip.clone(),
            categories: e.categories,
            records: e.records,
            customers: e.customers.clone(),
        }
    }
}

/// A ledger's entry store. Entries are numbered from 1 without gaps.
pub trait EntryStore: Send {
    /// The engine's name, for figures and errors.
    fn engine(&self) -> &'static str;

    /// Whether [`EntryStore::push`] may be called.
    fn writable(&self) -> bool;

    /// Moves a read handle on to a later commit point, reading only what
    /// was added since; an engine that cannot says so with an error, and
    /// the caller opens it afresh.
    fn advance_read(&mut self, _point: Option<&[u8]>) -> Result<()> {
        Err(crate::LedgerError::Invalid(format!(
            "the {} engine is opened afresh at each point",
            self.engine()
        )))
    }

    /// The last entry's seq (0 when empty), flushed or not.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `e`, whose seq must be `len() + 1`. Not durable until
    /// [`EntryStore::flush`].
    fn push(&mut self, e: StoredEntry) -> Result<()>;

    /// Makes every pushed entry durable and returns the commit point, to be
    /// stored by the caller and given back when the store is next opened.
    fn flush(&mut self) -> Result<Vec<u8>>;

    /// Says the point the last flush returned is stored: what only older
    /// points needed may go.
    fn committed(&mut self) -> Result<()> {
        Ok(())
    }

    /// Visits the entries from `from` on, in order, while `visit` returns true.
    fn scan(&self, from: u64, visit: &mut dyn FnMut(&StoredEntry) -> Result<bool>) -> Result<()>;

    /// Visits the entries numbered `seqs` (ascending), in order.
    fn entries_at(
        &self,
        seqs: &[u64],
        visit: &mut dyn FnMut(&StoredEntry) -> Result<()>,
    ) -> Result<()>;

    /// Visits the entries that name `customer`, in order.
    fn customer(
        &self,
        customer: &str,
        visit: &mut dyn FnMut(&StoredEntry) -> Result<()>,
    ) -> Result<()>;

    /// Visits the accesses of `account` with `since <= t <= until`, in order.
    fn account(
        &self,
        account: u64,
        since: i64,
        until: i64,
        visit: &mut dyn FnMut(&AccountRow) -> Result<()>,
    ) -> Result<()>;

    /// Visits every posting of the customer index as ([`customer_key`],
    /// seq), in any order: verify compares them with what the entries name.
    fn customer_index(&self, visit: &mut dyn FnMut(u64, u64) -> Result<()>) -> Result<()>;

    /// Visits every row of the account index with its account, in any
    /// order: verify compares them with the entries.
    fn account_index(&self, visit: &mut dyn FnMut(u64, &AccountRow) -> Result<()>) -> Result<()>;

    /// Bytes the store takes on disk.
    fn disk_bytes(&self) -> Result<u64>;

    /// A second read handle on exactly what this one reads, for a walk on
    /// another thread; `None` when the engine cannot give one (then the
    /// caller walks on this handle).
    fn twin(&self) -> Option<Box<dyn EntryStore>> {
        None
    }

    /// The store as a PostgreSQL store several nodes share, whose flush
    /// carries the batch's other changes ([`postgres::PgStore::flush_with`]).
    fn as_postgres(&mut self) -> Option<&mut postgres::PgStore> {
        None
    }
}
