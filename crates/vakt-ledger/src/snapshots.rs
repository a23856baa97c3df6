//! Detector snapshots of the sources that move between nodes (Kafka
//! partitions): the state a detection engine built from a source's lines
//! up to `line`, so the next node to read the source takes that state and
//! reads on from `line`, instead of reading the source from its start.
//!
//! A snapshot is written in the batch that records its source's progress
//! to at least `line`, so it never holds a line the ledger lacks. On a
//! shared store it is a row of `vakt.snapshots` written in the batch's
//! PostgreSQL transaction, for any node; otherwise a row of the data
//! directory's `snapshots` table. It is a cache, not evidence: it is
//! outside the hash chain, and a node that cannot use one reads the
//! source from its start as before.

use crate::ledger::Ledger;
use crate::Result;
use rusqlite::{params, OptionalExtension};

pub(crate) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS snapshots(\
source TEXT PRIMARY KEY, line INTEGER NOT NULL, taken INTEGER NOT NULL, state BLOB NOT NULL)";

/// One source's detector state as of `line`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub source: String,
    pub line: u64,
    pub state: Vec<u8>,
}

impl Ledger {
    /// Keeps `state` as the detector state of `source` up to `line`, with
    /// the open batch; call it in the batch that records the source's
    /// progress to `line` or beyond. A later snapshot replaces it; an
    /// earlier one written by another node after it does not.
    pub fn put_snapshot(&mut self, source: &str, line: u64, state: Vec<u8>) -> Result<()> {
        let snapshot = Snapshot {
            source: source.to_owned(),
            line,
            state,
        };
        if self.is_recording() {
            // In the store's transaction only: the data directory's copy
            // would go to the batch's journal as well.
            self.snapshots_pending.retain(|s| s.source != source);
            self.snapshots_pending.push(snapshot);
            return Ok(());
        }
        let r = self.conn.execute(
            "INSERT INTO snapshots(source, line, taken, state) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(source) DO UPDATE SET line = excluded.line, taken = excluded.taken, state = excluded.state
             WHERE snapshots.line <= excluded.line",
            params![
                snapshot.source,
                line.min(i64::MAX as u64) as i64,
                vakt_event::Timestamp::now().0,
                snapshot.state
            ],
        );
        self.db(r).map(|_| ())
    }

    /// The latest snapshot of `source`, from the store when the ledger is
    /// on a shared one (whichever node wrote it).
    pub fn snapshot(&mut self, source: &str) -> Result<Option<Snapshot>> {
        if let Some(store) = self.postgres_store() {
            return store.snapshot(source);
        }
        let r = self
            .conn
            .query_row(
                "SELECT line, state FROM snapshots WHERE source = ?1",
                [source],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )
            .optional();
        Ok(self.db(r)?.map(|(line, state)| Snapshot {
            source: source.to_owned(),
            line: line.max(0) as u64,
            state,
        }))
    }
}
