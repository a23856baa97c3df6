//! The PostgreSQL engine: the ledger's entries in a PostgreSQL database
//! that several vakt nodes share.
//!
//! # Layout (schema `vakt`)
//!
//! - `entries`: one row per access, partitioned by month of the time it
//!   was recorded (`recorded`, the server's clock at commit). Each node
//!   writes its own chains (`chain`); a chain's entries are numbered from 1
//!   without gaps, as in every engine. Indexed by `(chain, seq)` for the
//!   walk and by `(chain, account, t)` for `scope --account`.
//! - The customer postings, in one of two designs chosen when the database
//!   is first used ([`Postings`]) and kept in `vakt.settings`:
//!   - [`Postings::Btree`]: a table `customer_postings(chain, key, seq)`,
//!     partitioned like the entries, with a B-tree on `(chain, key, seq)`;
//!     an access costs one row and one B-tree insert per customer.
//!   - [`Postings::Gin`]: the entry row carries its customers' keys
//!     (`keys bigint[]`) under a GIN index with its pending list on
//!     (`fastupdate`): inserts go to an unsorted list that is merged into
//!     the index in bulk once it holds `gin_pending_list_limit`; a look-up
//!     also scans that list.
//!
//! Keys are [`customer_key`] (64 bits of BLAKE3 of the name); answers
//! filter by name, so two names that share a key stay apart.
//!
//! # Why partitioned by recording time
//!
//! Event times come from the input, and an input is hostile: a line dated
//! in the year 9999 or 1901 would make a partition of its own, or one that
//! overlaps the next month's. The recording time is the server's and only
//! moves forward, so a month's partition is written once and can be
//! detached or dropped whole when its retention ends. `scope --account`
//! then reads each month's `(chain, account, t)` index: a dozen index
//! probes for a year.
//!
//! # Commit and crash
//!
//! [`EntryStore::flush`] copies the pushed entries (binary `COPY`) and
//! their postings in one PostgreSQL transaction and returns the last seq
//! as the commit point. Opened for appending with a point, the store
//! deletes what its chain holds after it (written, then killed before the
//! caller stored the point). One process appends to a chain at a time: it
//! holds a session advisory lock on the chain while connected, which
//! PostgreSQL releases when the connection ends, however the process ends.
//! A reader sees a chain up to the point it was opened or moved to, never
//! the rows a writer committed after.
//!
//! # Measured
//!
//! `vakt bench store --engines segments,pg-btree,pg-gin` (the same
//! generated accesses into each; PostgreSQL started by the bench on
//! loopback, `fsync=off`) is in `docs/SCALE.md` with the choice it led to.
//!
//! # Limits and blind spots
//!
//! - The database is trusted storage: verify walks the chain and compares
//!   each posting with its entry, but the GIN index and the B-trees on the
//!   entries are PostgreSQL's own (check them with `amcheck`).
//! - Connections are plain TCP or a Unix socket; TLS to the database is
//!   not built yet (put PostgreSQL on the same host or a private network).
//! - `disk_bytes` counts the whole `vakt` schema, every chain in it.

use super::{customer_key, AccountRow, EntryStore, StoredEntry, LINK_BYTES};
use crate::{LedgerError, Result};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Row};
use std::cell::RefCell;

/// Rows read per round trip when walking, so memory stays bounded.
pub(crate) const CHUNK: i64 = 10_000;
/// The first key of the advisory locks vakt takes (`vakt` in ASCII).
pub(crate) const LOCK_SPACE: i32 = 0x76616b74;
/// Second key of the lock held while the schema is created or changed.
const SCHEMA_LOCK: i32 = -1;
const POINT_MAGIC: &[u8; 4] = b"vpg1";

/// How the customer postings are kept; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Postings {
    Btree,
    Gin,
}

impl Postings {
    pub fn name(self) -> &'static str {
        match self {
            Postings::Btree => "btree",
            Postings::Gin => "gin",
        }
    }

    pub fn parse(s: &str) -> Option<Postings> {
        match s {
            "btree" => Some(Postings::Btree),
            "gin" => Some(Postings::Gin),
            _ => None,
        }
    }
}

const SCHEMA: &str = "
CREATE SCHEMA IF NOT EXISTS vakt;
CREATE TABLE IF NOT EXISTS vakt.settings(key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS vakt.decisions(
    id text PRIMARY KEY,
    scope text NOT NULL,
    value text NOT NULL,
    action text NOT NULL,
    reason text NOT NULL,
    created bigint NOT NULL,
    expires bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_expires ON vakt.decisions(expires);
CREATE TABLE IF NOT EXISTS vakt.chains(
    chain serial PRIMARY KEY,
    name text NOT NULL,
    created timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS vakt.entries(
    chain integer NOT NULL,
    seq bigint NOT NULL,
    recorded timestamptz NOT NULL DEFAULT now(),
    t bigint NOT NULL,
    account bigint NOT NULL,
    org bigint NOT NULL,
    action bigint NOT NULL,
    cats bigint NOT NULL,
    source bigint NOT NULL,
    ip text NOT NULL,
    records bigint NOT NULL,
    case_id text NOT NULL,
    line bigint NOT NULL,
    customers text[] NOT NULL,
    keys bigint[],
    link bytea NOT NULL
) PARTITION BY RANGE (recorded);
CREATE INDEX IF NOT EXISTS entries_seq ON vakt.entries(chain, seq);
CREATE INDEX IF NOT EXISTS entries_account ON vakt.entries(chain, account, t);
CREATE TABLE IF NOT EXISTS vakt.customer_postings(
    chain integer NOT NULL,
    key bigint NOT NULL,
    seq bigint NOT NULL,
    recorded timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (recorded);
CREATE INDEX IF NOT EXISTS customer_postings_key ON vakt.customer_postings(chain, key, seq);
-- Per chain, the newest batch's changes to its data directory (see
-- vakt_ledger::journal).
CREATE TABLE IF NOT EXISTS vakt.journal(
    chain integer PRIMARY KEY,
    n bigint NOT NULL,
    upto bigint NOT NULL,
    changes bytea NOT NULL
);
-- Every node's alerts, the latest line per incident (see
-- vakt_ledger::shared_alerts).
CREATE TABLE IF NOT EXISTS vakt.alerts(
    id text PRIMARY KEY,
    chain integer NOT NULL,
    rule text NOT NULL,
    actor text NOT NULL,
    \"user\" text,
    organization text,
    suppressed boolean NOT NULL,
    first_seen bigint NOT NULL,
    detected bigint NOT NULL,
    last bigint NOT NULL,
    severity text NOT NULL,
    line text NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_last ON vakt.alerts(last DESC, id COLLATE \"C\");
-- Every chain's names (accounts, organisations, actions, categories,
-- sources) by the ids its entries hold; looked up by (kind, 64-bit hash
-- of the name), since a B-tree on the name would refuse a long one (see
-- vakt_ledger::shared_names).
CREATE TABLE IF NOT EXISTS vakt.names(
    chain integer NOT NULL,
    id bigint NOT NULL,
    kind smallint NOT NULL,
    key bigint NOT NULL,
    name text NOT NULL,
    PRIMARY KEY (chain, id)
);
CREATE INDEX IF NOT EXISTS names_key ON vakt.names(kind, key);
-- The newest version of each row people change (exceptions, incident
-- states, tokens, users), every node's data directory converging to it
-- (see vakt_ledger::shared_records); payload NULL: deleted.
CREATE SEQUENCE IF NOT EXISTS vakt.record_versions;
CREATE SEQUENCE IF NOT EXISTS vakt.exception_numbers;
CREATE TABLE IF NOT EXISTS vakt.records(
    tbl text NOT NULL,
    key text NOT NULL,
    payload text,
    version bigint NOT NULL,
    PRIMARY KEY (tbl, key)
);
CREATE INDEX IF NOT EXISTS records_version ON vakt.records(version);
-- Console sessions, by a hash of their id, so any node serves them.
CREATE TABLE IF NOT EXISTS vakt.sessions(
    id_hash bytea PRIMARY KEY,
    \"user\" text NOT NULL,
    csrf text NOT NULL,
    expires bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON vakt.sessions(\"user\");
-- How far each source every node reads alike (a Kafka partition) is
-- recorded, by whichever chain holds it.
CREATE TABLE IF NOT EXISTS vakt.offsets(
    source text PRIMARY KEY,
    line bigint NOT NULL,
    chain integer NOT NULL,
    updated timestamptz NOT NULL DEFAULT now()
);
-- The detector state of each such source up to a line, for the next
-- node to read it (crate::snapshots).
CREATE TABLE IF NOT EXISTS vakt.snapshots(
    source text PRIMARY KEY,
    line bigint NOT NULL,
    chain integer NOT NULL,
    taken timestamptz NOT NULL DEFAULT now(),
    state bytea NOT NULL
);
-- This month's and next month's partitions of each table, made when
-- missing (one node at a time).
CREATE OR REPLACE FUNCTION vakt.ensure_partitions() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    m timestamptz;
    part text;
    t text;
BEGIN
    FOR i IN 0..1 LOOP
        m := (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i)) AT TIME ZONE 'UTC';
        FOREACH t IN ARRAY ARRAY['entries', 'customer_postings'] LOOP
            part := t || '_' || to_char(m AT TIME ZONE 'UTC', '\"y\"YYYY\"m\"MM');
            IF to_regclass('vakt.' || part) IS NULL THEN
                PERFORM pg_advisory_xact_lock(1986095988, -2);
                -- Another node may have made it while this one waited; the
                -- catalog this transaction reads may not show it yet.
                BEGIN
                    EXECUTE format('CREATE TABLE vakt.%I PARTITION OF vakt.%I FOR VALUES FROM (%L) TO (%L)',
                        part, t, m, m + interval '1 month');
                EXCEPTION WHEN duplicate_table OR unique_violation THEN
                    NULL;
                END;
            END IF;
        END LOOP;
    END LOOP;
END
$$;
";

pub(crate) const COLUMNS: &str =
    "seq, t, account, org, action, cats, source, ip, records, case_id, line, customers, link";

/// What a batch commits in the store's transaction beside its entries,
/// so one transaction is its commit point on every node.
#[derive(Default)]
pub struct Rider<'a> {
    /// The batch's number and its changes to the data directory.
    pub journal: Option<(i64, &'a [u8])>,
    /// Decisions made or lifted in the batch, announced with it.
    pub decisions: &'a [crate::shared::Change],
    /// Shared sources the batch moved on.
    pub offsets: &'a [Offset],
    /// Alert rows the batch recorded or changed.
    pub(crate) alerts: &'a [crate::shared_alerts::StoredAlert],
    /// Names the batch interned.
    pub(crate) names: &'a [crate::shared_names::StoredName],
    /// Rows of the shared tables the batch changed.
    pub(crate) records: &'a [crate::shared_records::Record],
    /// Detector snapshots of sources the batch moved on.
    pub(crate) snapshots: &'a [crate::snapshots::Snapshot],
}

/// A shared source (a Kafka partition) moved on by a batch: from the line
/// this node found recorded when it took the source to the one it reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offset {
    pub source: String,
    pub claimed: u64,
    pub reached: u64,
}

pub struct PgStore {
    client: RefCell<Conn>,
    url: String,
    chain: i32,
    postings: Postings,
    writable: bool,
    /// Entries committed to the database (and in this handle's view).
    flushed: u64,
    /// Pushed, not yet flushed; all numbered after `flushed`.
    pending: Vec<StoredEntry>,
}

pub(crate) fn pg(what: &str) -> impl FnOnce(postgres::Error) -> LedgerError + '_ {
    move |source| LedgerError::Postgres {
        what: what.to_owned(),
        source,
    }
}

fn point_seq(point: Option<&[u8]>) -> Result<u64> {
    match point {
        None => Ok(0),
        Some(p) if p.len() == 12 && &p[..4] == POINT_MAGIC => {
            Ok(u64::from_le_bytes(p[4..].try_into().expect("8 bytes")))
        }
        Some(_) => Err(LedgerError::Invalid(
            "the commit point recorded for the PostgreSQL store cannot be read; run `vakt ledger verify`".into(),
        )),
    }
}

pub(crate) fn encode_point(seq: u64) -> Vec<u8> {
    let mut p = POINT_MAGIC.to_vec();
    p.extend_from_slice(&seq.to_le_bytes());
    p
}

impl PgStore {
    /// Opens chain `chain` in the database at `url` for appending, at
    /// `point` (what the caller last stored from [`EntryStore::flush`];
    /// `None` for nothing). Creates the schema when missing, with
    /// `postings` as its design; an existing database keeps the design it
    /// was made with. Fails when another process appends to the chain.
    pub fn open(url: &str, chain: i32, postings: Postings, point: Option<&[u8]>) -> Result<Self> {
        Self::try_open(url, chain, postings, point)?.ok_or_else(|| {
            LedgerError::Invalid(format!(
                "another vakt process is appending to chain {chain} of this PostgreSQL store; one may at a time: stop it, or give this one another chain"
            ))
        })
    }

    /// [`PgStore::open`], or `None` when another process appends to the chain.
    pub fn try_open(
        url: &str,
        chain: i32,
        postings: Postings,
        point: Option<&[u8]>,
    ) -> Result<Option<Self>> {
        let mut conn = connect(url)?;
        let at = point_seq(point)?;
        let opened = conn.with(|client| -> Result<Option<Postings>> {
            let postings = prepare_schema(client, postings)?;
            let locked: bool = client
                .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LOCK_SPACE, &chain])
                .map_err(pg("locking the chain"))?
                .get(0);
            if !locked {
                return Ok(None);
            }
            // Written after the point, by a process that died before the
            // caller stored it.
            let mut tx = client.transaction().map_err(pg("truncating"))?;
            let at_i = at as i64;
            tx.execute(
                "DELETE FROM vakt.entries WHERE chain = $1 AND seq > $2",
                &[&chain, &at_i],
            )
            .map_err(pg("truncating the entries to the commit point"))?;
            tx.execute(
                "DELETE FROM vakt.customer_postings WHERE chain = $1 AND seq > $2",
                &[&chain, &at_i],
            )
            .map_err(pg("truncating the postings to the commit point"))?;
            tx.commit().map_err(pg("truncating"))?;
            let have: i64 = client
                .query_one(
                    "SELECT COALESCE(MAX(seq), 0) FROM vakt.entries WHERE chain = $1",
                    &[&chain],
                )
                .map_err(pg("reading the chain's length"))?
                .get(0);
            if have as u64 != at {
                return Err(LedgerError::Invalid(format!(
                    "chain {chain} of the PostgreSQL store holds {have} entries where its commit point says {at}; entries were deleted: run `vakt ledger verify`"
                )));
            }
            Ok(Some(postings))
        })?;
        let Some(postings) = opened else {
            return Ok(None);
        };
        let client = conn;
        Ok(Some(PgStore {
            client: RefCell::new(client),
            url: url.to_owned(),
            chain,
            postings,
            writable: true,
            flushed: at,
            pending: Vec::new(),
        }))
    }

    /// Opens chain `chain` for reading, as of `point`.
    pub fn open_read(url: &str, chain: i32, point: Option<&[u8]>) -> Result<Self> {
        let mut client = connect(url)?;
        let postings = client.with(read_design)?.ok_or_else(|| {
            LedgerError::Invalid(
                "no vakt ledger in this PostgreSQL database; write to it first (vakt watch --store ...)".into(),
            )
        })?;
        Ok(PgStore {
            client: RefCell::new(client),
            url: url.to_owned(),
            chain,
            postings,
            writable: false,
            flushed: point_seq(point)?,
            pending: Vec::new(),
        })
    }

    /// Commits the pending entries with `rider` in one transaction, which
    /// is then the batch's commit point (see [`crate::journal`]); returns
    /// the point. Fails, and commits nothing, when a shared source of the
    /// rider was moved on by another chain since this one took it
    /// ([`LedgerError::Fenced`]).
    pub fn flush_with(&mut self, rider: &Rider<'_>) -> Result<Vec<u8>> {
        if !self.writable {
            return Err(LedgerError::Invalid(format!(
                "chain {} of the PostgreSQL store was opened for reading",
                self.chain
            )));
        }
        let chain = self.chain;
        let gin = self.postings == Postings::Gin;
        let pending = &self.pending;
        let upto = self.flushed + pending.len() as u64;
        self.client
            .get_mut()
            .with(|client| copy_batch(client, chain, gin, pending, upto, rider))?;
        self.flushed = upto;
        self.pending.clear();
        Ok(encode_point(self.flushed))
    }

    /// Copies alert rows and names recorded before they were shared, in
    /// one transaction.
    pub(crate) fn share_earlier(
        &mut self,
        alerts: &[crate::shared_alerts::StoredAlert],
        names: &[crate::shared_names::StoredName],
    ) -> Result<()> {
        let chain = self.chain;
        self.client.get_mut().with(|client| {
            let mut tx = client
                .transaction()
                .map_err(pg("sharing the alerts and names"))?;
            for alert in alerts {
                crate::shared_alerts::write(&mut tx, chain, alert)?;
            }
            crate::shared_names::write(&mut tx, chain, names)?;
            tx.commit().map_err(pg("sharing the alerts and names"))
        })
    }

    /// The line recorded for a shared source (0 for none), by any chain.
    pub fn offset(&self, source: &str) -> Result<u64> {
        let rows = self.query(
            "reading a source's offset",
            "SELECT line FROM vakt.offsets WHERE source = $1",
            &[&source],
        )?;
        Ok(rows
            .first()
            .map(|r| r.get::<_, i64>(0).max(0) as u64)
            .unwrap_or(0))
    }

    /// The latest detector snapshot of a source, whichever node wrote it.
    pub fn snapshot(&self, source: &str) -> Result<Option<crate::snapshots::Snapshot>> {
        let rows = self.query(
            "reading a detector snapshot",
            "SELECT line, state FROM vakt.snapshots WHERE source = $1",
            &[&source],
        )?;
        Ok(rows.first().map(|r| crate::snapshots::Snapshot {
            source: source.to_owned(),
            line: r.get::<_, i64>(0).max(0) as u64,
            state: r.get(1),
        }))
    }

    /// Entries the chain holds in the database, whatever this handle's point.
    pub fn chain_len(&self) -> Result<u64> {
        let rows = self.query(
            "reading the chain's length",
            "SELECT COALESCE(MAX(seq), 0) FROM vakt.entries WHERE chain = $1",
            &[&self.chain],
        )?;
        Ok(rows.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0).max(0) as u64)
    }

    /// The customer postings' design of this database.
    pub fn postings(&self) -> Postings {
        self.postings
    }

    /// Runs `sql` returning rows on this store's connection.
    fn query(&self, what: &str, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.client
            .borrow_mut()
            .with(|c| c.query(sql, params))
            .map_err(pg(what))
    }

    /// Visits the flushed entries the chunked query `sql` returns
    /// (parameters: chain, the seq to start from, the last seq in view,
    /// then `extra`), ordered by seq, [`CHUNK`] rows at a time.
    fn walk(
        &self,
        sql: &str,
        from: u64,
        extra: &[&(dyn ToSql + Sync)],
        visit: &mut dyn FnMut(&Row) -> Result<bool>,
    ) -> Result<bool> {
        let last = self.flushed as i64;
        let mut next = from.max(1) as i64;
        while next <= last {
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.chain, &next, &last];
            params.extend_from_slice(extra);
            let rows = self.query("walking the entries", sql, &params)?;
            let Some(end) = rows.last().map(|r| r.get::<_, i64>("seq")) else {
                break;
            };
            for r in &rows {
                if !visit(r)? {
                    return Ok(false);
                }
            }
            if (rows.len() as i64) < CHUNK {
                break;
            }
            next = end + 1;
        }
        Ok(true)
    }
}

/// Makes the schema at `url` when missing (with `postings`, unless the
/// database has a design already) and a new chain named `name` (who
/// writes it: a data directory, a node); returns the chain's number.
pub fn new_chain(url: &str, name: &str, postings: Postings) -> Result<i32> {
    connect(url)?.with(|client| {
        prepare_schema(client, postings)?;
        Ok(client
            .query_one(
                "INSERT INTO vakt.chains(name) VALUES ($1) RETURNING chain",
                &[&name],
            )
            .map_err(pg("making a chain"))?
            .get(0))
    })
}

/// Drops the `vakt` schema at `url`: every chain's entries, for good.
/// For benches and tests that start from nothing.
pub fn reset(url: &str) -> Result<()> {
    connect(url)?
        .with(|c| c.batch_execute("DROP SCHEMA IF EXISTS vakt CASCADE"))
        .map_err(pg("dropping the schema"))
}

/// Runs `f` where the blocking client may block: that client drives a
/// runtime of its own, which tokio refuses to start on a thread already
/// driving one (`vakt serve` opens ledgers inside its runtime). There, `f`
/// runs on a scoped thread of its own.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// A connection that may be used (and dropped) on any thread, inside an
/// async runtime or not.
pub(crate) struct Conn(Option<Client>);

impl Conn {
    /// Runs `f` on the connection.
    pub(crate) fn with<T: Send>(&mut self, f: impl FnOnce(&mut Client) -> T + Send) -> T {
        let client = self.0.as_mut().expect("a connection until dropped");
        off_runtime(|| f(client))
    }

    /// Whether the server closed the connection (restarted, or the network failed).
    pub(crate) fn is_closed(&self) -> bool {
        self.0.as_ref().is_none_or(|c| c.is_closed())
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            off_runtime(move || drop(c));
        }
    }
}

/// Connects as `url` says, over TLS when its `sslmode` asks for it
/// (see `pg_connect`).
pub(crate) fn connect(url: &str) -> Result<Conn> {
    let target = super::pg_connect::target(url)?;
    off_runtime(|| match target.tls {
        Some(tls) => target.config.connect(tls),
        None => target.config.connect(NoTls),
    })
    .map(|c| Conn(Some(c)))
    .map_err(|source| LedgerError::Postgres {
        what: format!("connecting to {}", redacted(url)),
        source,
    })
}

/// `url` without its password, for messages.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

pub(crate) fn read_design(client: &mut Client) -> Result<Option<Postings>> {
    let exists: bool = client
        .query_one("SELECT to_regclass('vakt.settings') IS NOT NULL", &[])
        .map_err(pg("reading the schema"))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT value FROM vakt.settings WHERE key = 'postings'",
            &[],
        )
        .map_err(pg("reading the postings design"))?;
    match row {
        None => Ok(None),
        Some(r) => {
            let v: String = r.get(0);
            Postings::parse(&v).map(Some).ok_or_else(|| {
                LedgerError::Invalid(format!(
                    "vakt.settings names postings design {v:?}, which this vakt does not know; upgrade vakt"
                ))
            })
        }
    }
}

/// Creates the schema when missing (one process at a time) and returns
/// the database's postings design.
fn prepare_schema(client: &mut Client, wanted: Postings) -> Result<Postings> {
    let encoding: String = client
        .query_one("SHOW server_encoding", &[])
        .map_err(pg("reading the database's encoding"))?
        .get(0);
    if encoding != "UTF8" {
        return Err(LedgerError::Invalid(format!(
            "the PostgreSQL database is encoded {encoding}; vakt's store needs UTF8: create one with CREATE DATABASE vakt ENCODING 'UTF8' TEMPLATE template0"
        )));
    }
    let mut tx = client.transaction().map_err(pg("creating the schema"))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&LOCK_SPACE, &SCHEMA_LOCK],
    )
    .map_err(pg("locking the schema"))?;
    tx.batch_execute(SCHEMA)
        .map_err(pg("creating the schema"))?;
    tx.execute(
        "INSERT INTO vakt.settings(key, value) VALUES ('postings', $1) ON CONFLICT DO NOTHING",
        &[&wanted.name()],
    )
    .map_err(pg("recording the postings design"))?;
    let design: String = tx
        .query_one(
            "SELECT value FROM vakt.settings WHERE key = 'postings'",
            &[],
        )
        .map_err(pg("reading the postings design"))?
        .get(0);
    let design = Postings::parse(&design).ok_or_else(|| {
        LedgerError::Invalid(format!(
            "vakt.settings names postings design {design:?}, which this vakt does not know; upgrade vakt"
        ))
    })?;
    if design == Postings::Gin {
        tx.batch_execute(
            "CREATE INDEX IF NOT EXISTS entries_keys ON vakt.entries USING gin(keys) WITH (fastupdate = on)",
        )
        .map_err(pg("creating the GIN index"))?;
    }
    tx.commit().map_err(pg("creating the schema"))?;
    Ok(design)
}

/// Copies `pending` (and, for B-tree postings, their postings) in one
/// transaction.
fn copy_batch(
    client: &mut Client,
    chain: i32,
    gin: bool,
    pending: &[StoredEntry],
    upto: u64,
    rider: &Rider<'_>,
) -> Result<()> {
    let mut tx = client.transaction().map_err(pg("starting the flush"))?;
    if !pending.is_empty() {
        copy_entries(&mut tx, chain, gin, pending)?;
    }
    for o in rider.offsets {
        move_offset(&mut tx, chain, o)?;
    }
    for change in rider.decisions {
        crate::shared::write_change(&mut tx, change)?;
    }
    for alert in rider.alerts {
        crate::shared_alerts::write(&mut tx, chain, alert)?;
    }
    crate::shared_names::write(&mut tx, chain, rider.names)?;
    for s in rider.snapshots {
        write_snapshot(&mut tx, chain, s)?;
    }
    // Last: its lock is held until the commit.
    crate::shared_records::write(&mut tx, rider.records)?;
    if let Some((n, changes)) = rider.journal {
        tx.execute(
            "INSERT INTO vakt.journal(chain, n, upto, changes) VALUES ($1, $2, $3, $4)
             ON CONFLICT (chain) DO UPDATE SET n = excluded.n, upto = excluded.upto, changes = excluded.changes",
            &[&chain, &n, &(upto as i64), &changes],
        )
        .map_err(pg("writing the batch's journal"))?;
    }
    tx.commit().map_err(pg("committing the flush"))
}

/// Keeps a source's detector snapshot, unless a later one is there
/// (another node read the source further since).
fn write_snapshot(
    tx: &mut postgres::Transaction<'_>,
    chain: i32,
    s: &crate::snapshots::Snapshot,
) -> Result<()> {
    tx.execute(
        "INSERT INTO vakt.snapshots(source, line, chain, state) VALUES ($1, $2, $3, $4)
         ON CONFLICT (source) DO UPDATE SET line = excluded.line, chain = excluded.chain, taken = now(), state = excluded.state
         WHERE vakt.snapshots.line <= excluded.line",
        &[&s.source, &(s.line.min(i64::MAX as u64) as i64), &chain, &s.state],
    )
    .map_err(pg("writing a detector snapshot"))?;
    Ok(())
}

/// Moves a shared source on, unless another chain moved it since this
/// one took it: then the whole batch is refused.
fn move_offset(tx: &mut postgres::Transaction<'_>, chain: i32, o: &Offset) -> Result<()> {
    let (claimed, reached) = (o.claimed as i64, o.reached as i64);
    let moved = tx
        .execute(
            "UPDATE vakt.offsets SET line = $3, chain = $4, updated = now() WHERE source = $1 AND line = $2",
            &[&o.source, &claimed, &reached, &chain],
        )
        .map_err(pg("recording a source's offset"))?;
    let moved = moved == 1
        || (claimed == 0
            && tx
                .execute(
                    "INSERT INTO vakt.offsets(source, line, chain) VALUES ($1, $2, $3) ON CONFLICT (source) DO NOTHING",
                    &[&o.source, &reached, &chain],
                )
                .map_err(pg("recording a source's offset"))?
                == 1);
    if moved {
        return Ok(());
    }
    let found = tx
        .query_opt(
            "SELECT line FROM vakt.offsets WHERE source = $1",
            &[&o.source],
        )
        .map_err(pg("reading a source's offset"))?
        .map(|r| r.get::<_, i64>(0))
        .unwrap_or(0);
    Err(LedgerError::Fenced {
        source_name: o.source.clone(),
        claimed: o.claimed,
        found: found.max(0) as u64,
    })
}

fn copy_entries(
    tx: &mut postgres::Transaction<'_>,
    chain: i32,
    gin: bool,
    pending: &[StoredEntry],
) -> Result<()> {
    tx.execute("SELECT vakt.ensure_partitions()", &[])
        .map_err(pg("creating this month's partitions"))?;
    let sink = tx
        .copy_in(
            "COPY vakt.entries(chain, seq, t, account, org, action, cats, source, ip, records, case_id, line, customers, keys, link) FROM STDIN BINARY",
        )
        .map_err(pg("copying entries"))?;
    let types = [
        Type::INT4,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::INT8,
        Type::TEXT_ARRAY,
        Type::INT8_ARRAY,
        Type::BYTEA,
    ];
    let mut w = BinaryCopyInWriter::new(sink, &types);
    let mut postings: Vec<(i64, i64)> = Vec::new();
    for e in pending {
        let keys: Vec<i64> = e.customers.iter().map(|c| customer_key(c) as i64).collect();
        let seq = e.seq as i64;
        if !gin {
            postings.extend(keys.iter().map(|&k| (k, seq)));
        }
        let keys = gin.then_some(keys);
        let customers: Vec<_> = e.customers.iter().map(|c| to_text(c)).collect();
        w.write(&[
            &chain,
            &seq,
            &e.t,
            &(e.account as i64),
            &(e.org as i64),
            &(e.action as i64),
            &(e.categories as i64),
            &(e.source as i64),
            &e.ip,
            &e.records,
            &to_text(&e.case_id),
            &e.line,
            &customers,
            &keys,
            &&e.link[..],
        ])
        .map_err(pg("copying entries"))?;
    }
    w.finish().map_err(pg("copying entries"))?;
    if !postings.is_empty() {
        // Sorted, so the B-tree is filled in key order.
        postings.sort_unstable();
        let sink = tx
            .copy_in("COPY vakt.customer_postings(chain, key, seq) FROM STDIN BINARY")
            .map_err(pg("copying postings"))?;
        let mut w = BinaryCopyInWriter::new(sink, &[Type::INT4, Type::INT8, Type::INT8]);
        for (k, s) in &postings {
            w.write(&[&chain, k, s]).map_err(pg("copying postings"))?;
        }
        w.finish().map_err(pg("copying postings"))?;
    }
    Ok(())
}

/// A query on some connection: SQL and parameters to rows.
pub(crate) type Query<'a> = dyn FnMut(&str, &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> + 'a;

/// Visits the entries of `chain` numbered `seqs` (ascending, all
/// committed), in order, [`CHUNK`] at a time; one an index names but the
/// chain lacks is an error.
pub(crate) fn entries_by_seq(
    query: &mut Query<'_>,
    chain: i32,
    seqs: &[u64],
    visit: &mut dyn FnMut(&StoredEntry) -> Result<()>,
) -> Result<()> {
    let sql = format!(
        "SELECT {COLUMNS} FROM vakt.entries WHERE chain = $1 AND seq = ANY($2) ORDER BY seq"
    );
    for part in seqs.chunks(CHUNK as usize) {
        let want: Vec<i64> = part.iter().map(|&s| s as i64).collect();
        let rows = query(&sql, &[&chain, &want])?;
        if rows.len() != part.len() {
            return Err(LedgerError::Invalid(format!(
                "chain {chain} of the PostgreSQL store lacks {} of the entries {}..={} an index names; run `vakt ledger verify` on its node",
                part.len() - rows.len(),
                part[0],
                part[part.len() - 1]
            )));
        }
        for r in &rows {
            visit(&entry(r))?;
        }
    }
    Ok(())
}

/// `s` as PostgreSQL text, which cannot hold NUL: a backslash is doubled
/// and NUL written `\0`, so any name read from hostile input round-trips.
pub(crate) fn to_text(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\\', '\0']) {
        return s.into();
    }
    s.replace('\\', "\\\\").replace('\0', "\\0").into()
}

/// The inverse of [`to_text`].
pub(crate) fn from_text(s: String) -> String {
    if !s.contains('\\') {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn texts(v: Vec<String>) -> Vec<String> {
    v.into_iter().map(from_text).collect()
}

pub(crate) fn entry(r: &Row) -> StoredEntry {
    let link: Vec<u8> = r.get("link");
    let mut l = [0u8; LINK_BYTES];
    let n = link.len().min(LINK_BYTES);
    l[..n].copy_from_slice(&link[..n]);
    StoredEntry {
        seq: r.get::<_, i64>("seq") as u64,
        t: r.get("t"),
        account: r.get::<_, i64>("account") as u64,
        org: r.get::<_, i64>("org") as u64,
        action: r.get::<_, i64>("action") as u64,
        categories: r.get::<_, i64>("cats") as u64,
        source: r.get::<_, i64>("source") as u64,
        ip: r.get("ip"),
        records: r.get("records"),
        case_id: from_text(r.get("case_id")),
        line: r.get("line"),
        customers: texts(r.get("customers")),
        link: l,
    }
}

pub(crate) fn account_row(r: &Row) -> AccountRow {
    AccountRow {
        seq: r.get::<_, i64>("seq") as u64,
        t: r.get("t"),
        ip: r.get("ip"),
        categories: r.get::<_, i64>("cats") as u64,
        records: r.get("records"),
        customers: texts(r.get("customers")),
    }
}

impl EntryStore for PgStore {
    fn engine(&self) -> &'static str {
        match self.postings {
            Postings::Btree => "pg-btree",
            Postings::Gin => "pg-gin",
        }
    }

    fn writable(&self) -> bool {
        self.writable
    }

    fn advance_read(&mut self, point: Option<&[u8]>) -> Result<()> {
        if self.writable {
            return Err(LedgerError::Invalid(
                "only a read handle moves on to a later point".into(),
            ));
        }
        let seq = point_seq(point)?;
        if seq < self.flushed {
            return Err(LedgerError::Invalid(
                "the newest commit point of the PostgreSQL store is behind one read before; run `vakt ledger verify`".into(),
            ));
        }
        self.flushed = seq;
        Ok(())
    }

    fn len(&self) -> u64 {
        self.flushed + self.pending.len() as u64
    }

    fn push(&mut self, e: StoredEntry) -> Result<()> {
        if !self.writable {
            return Err(LedgerError::Invalid(format!(
                "chain {} of the PostgreSQL store was opened for reading",
                self.chain
            )));
        }
        if e.seq != self.len() + 1 {
            return Err(LedgerError::Invalid(format!(
                "entry {} appended after entry {}",
                e.seq,
                self.len()
            )));
        }
        self.pending.push(e);
        Ok(())
    }

    fn flush(&mut self) -> Result<Vec<u8>> {
        if !self.writable || self.pending.is_empty() {
            return Ok(encode_point(self.flushed));
        }
        self.flush_with(&Rider::default())
    }

    fn as_postgres(&mut self) -> Option<&mut PgStore> {
        Some(self)
    }

    fn scan(&self, from: u64, visit: &mut dyn FnMut(&StoredEntry) -> Result<bool>) -> Result<()> {
        let sql = format!(
            "SELECT {COLUMNS} FROM vakt.entries WHERE chain = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq LIMIT {CHUNK}"
        );
        if !self.walk(&sql, from, &[], &mut |r| visit(&entry(r)))? {
            return Ok(());
        }
        for e in self.pending.iter().filter(|e| e.seq >= from) {
            if !visit(e)? {
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
        let flushed = seqs.partition_point(|&s| s <= self.flushed);
        let mut query =
            |sql: &str, params: &[&(dyn ToSql + Sync)]| self.query("reading entries", sql, params);
        entries_by_seq(&mut query, self.chain, &seqs[..flushed], visit)?;
        for &s in &seqs[flushed..] {
            match self.pending.get((s - self.flushed - 1) as usize) {
                Some(e) => visit(e)?,
                None => {
                    return Err(LedgerError::Invalid(format!(
                        "entry {s} is not in chain {} of the PostgreSQL store",
                        self.chain
                    )))
                }
            }
        }
        Ok(())
    }

    fn customer(
        &self,
        customer: &str,
        visit: &mut dyn FnMut(&StoredEntry) -> Result<()>,
    ) -> Result<()> {
        let key = customer_key(customer) as i64;
        let last = self.flushed as i64;
        // `seq + 0`: the bound is a filter, never a range scan of the seq
        // index beside the GIN's (which a planner without statistics on a
        // fresh partition picks, reading every entry).
        let rows = match self.postings {
            Postings::Gin => self.query(
                "finding a customer's entries",
                &format!("SELECT {COLUMNS} FROM vakt.entries WHERE chain = $1 AND keys @> ARRAY[$2::bigint] AND seq + 0 <= $3 ORDER BY seq"),
                &[&self.chain, &key, &last],
            )?,
            Postings::Btree => self.query(
                "finding a customer's entries",
                &format!("SELECT {COLUMNS} FROM vakt.entries WHERE chain = $1 AND seq = ANY(ARRAY(SELECT seq FROM vakt.customer_postings WHERE chain = $1 AND key = $2 AND seq <= $3)) ORDER BY seq"),
                &[&self.chain, &key, &last],
            )?,
        };
        let named = |e: &StoredEntry| e.customers.iter().any(|c| c == customer);
        for r in &rows {
            let e = entry(r);
            if named(&e) {
                visit(&e)?;
            }
        }
        for e in self.pending.iter().filter(|e| named(e)) {
            visit(e)?;
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
        let rows = self.query(
            "finding an account's accesses",
            "SELECT seq, t, ip, cats, records, customers FROM vakt.entries WHERE chain = $1 AND account = $2 AND t >= $3 AND t <= $4 AND seq <= $5 ORDER BY seq",
            &[&self.chain, &(account as i64), &since, &until, &(self.flushed as i64)],
        )?;
        for r in &rows {
            visit(&account_row(r))?;
        }
        for e in &self.pending {
            if e.account == account && e.t >= since && e.t <= until {
                visit(&AccountRow::of(e))?;
            }
        }
        Ok(())
    }

    fn customer_index(&self, visit: &mut dyn FnMut(u64, u64) -> Result<()>) -> Result<()> {
        match self.postings {
            Postings::Gin => {
                let sql = format!("SELECT seq, keys FROM vakt.entries WHERE chain = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq LIMIT {CHUNK}");
                self.walk(&sql, 1, &[], &mut |r| {
                    let seq = r.get::<_, i64>("seq") as u64;
                    let keys: Option<Vec<i64>> = r.get("keys");
                    for k in keys.unwrap_or_default() {
                        visit(k as u64, seq)?;
                    }
                    Ok(true)
                })?;
            }
            Postings::Btree => {
                // Walked in index order, from the last (key, seq) read.
                let last = self.flushed as i64;
                let (mut key, mut seq) = (i64::MIN, i64::MIN);
                loop {
                    let rows = self.query(
                        "walking the customer postings",
                        &format!("SELECT key, seq FROM vakt.customer_postings WHERE chain = $1 AND (key, seq) > ($2, $3) AND seq <= $4 ORDER BY key, seq LIMIT {CHUNK}"),
                        &[&self.chain, &key, &seq, &last],
                    )?;
                    for r in &rows {
                        (key, seq) = (r.get(0), r.get(1));
                        visit(key as u64, seq as u64)?;
                    }
                    if (rows.len() as i64) < CHUNK {
                        break;
                    }
                }
            }
        }
        for e in &self.pending {
            for c in &e.customers {
                visit(customer_key(c), e.seq)?;
            }
        }
        Ok(())
    }

    fn account_index(&self, visit: &mut dyn FnMut(u64, &AccountRow) -> Result<()>) -> Result<()> {
        let sql = format!("SELECT account, seq, t, ip, cats, records, customers FROM vakt.entries WHERE chain = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq LIMIT {CHUNK}");
        self.walk(&sql, 1, &[], &mut |r| {
            visit(r.get::<_, i64>("account") as u64, &account_row(r))?;
            Ok(true)
        })?;
        for e in &self.pending {
            visit(e.account, &AccountRow::of(e))?;
        }
        Ok(())
    }

    fn disk_bytes(&self) -> Result<u64> {
        let rows = self.query(
            "measuring the store",
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'vakt' AND c.relkind = 'r'",
            &[],
        )?;
        Ok(rows.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0).max(0) as u64)
    }

    fn twin(&self) -> Option<Box<dyn EntryStore>> {
        if self.writable && !self.pending.is_empty() {
            return None;
        }
        let mut twin = PgStore::open_read(&self.url, self.chain, None).ok()?;
        twin.flushed = self.flushed;
        Some(Box::new(twin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text() {
        for s in ["C-1", "", "a\\b", "\\", "\0", "x\0y\\0z\\", "\\\\0", "ö\0å"] {
            let t = to_text(s);
            assert!(!t.contains('\0'), "{s:?} -> {t:?}");
            assert_eq!(from_text(t.into_owned()), s);
        }
    }

    #[test]
    fn the_lock_space_in_the_schema_is_the_one_in_code() {
        assert!(SCHEMA.contains(&format!("pg_advisory_xact_lock({LOCK_SPACE}, -2)")));
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redacted("postgres://vakt:s3cret@db:5432/vakt"),
            "postgres://vakt:***@db:5432/vakt"
        );
        assert_eq!(redacted("host=db user=vakt"), "host=db user=vakt");
    }
}
