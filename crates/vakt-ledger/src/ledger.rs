//! Appending to the ledger.

use crate::encode::{checkpoint_message, EntryFields};
use crate::keys::DataDir;
use crate::lines::Lines;
use crate::store::postgres::{Offset, PgStore, Rider};
use crate::store::segments::Segments;
use crate::store::sqlite::SqliteStore;
use crate::store::{EntryStore, StoredEntry};
use crate::{LedgerError, Result};
use ed25519_dalek::{Signer, SigningKey};
use rusqlite::{params, Connection, OptionalExtension};
use std::cell::{Ref, RefCell};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use vakt_event::{AccessEvent, Alert};

/// Entries per transaction: one commit, one signed checkpoint.
pub const BATCH: usize = 50_000;

/// A transaction is also committed after this long, so a live stream is
/// durable within about a second.
pub const BATCH_TIME: std::time::Duration = std::time::Duration::from_secs(1);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS names(id INTEGER PRIMARY KEY, kind INTEGER NOT NULL, name TEXT NOT NULL, UNIQUE(kind, name));
CREATE TABLE IF NOT EXISTS source_lines(source INTEGER PRIMARY KEY, ranges BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints(seq INTEGER PRIMARY KEY, hash BLOB NOT NULL, signature BLOB NOT NULL, actions INTEGER, actions_head BLOB);
CREATE TABLE IF NOT EXISTS decisions(
    id TEXT PRIMARY KEY, scope TEXT NOT NULL, value TEXT NOT NULL, action TEXT NOT NULL,
    reason TEXT NOT NULL, created INTEGER NOT NULL, expires INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_expires ON decisions(expires);
CREATE TABLE IF NOT EXISTS tokens(
    name TEXT PRIMARY KEY, role TEXT NOT NULL, hash BLOB NOT NULL UNIQUE, created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts(
    id TEXT PRIMARY KEY, rule TEXT NOT NULL, actor TEXT NOT NULL, user TEXT, first_seen INTEGER NOT NULL,
    detected INTEGER NOT NULL, last INTEGER NOT NULL, severity TEXT NOT NULL, line TEXT NOT NULL
);
";

/// The `meta` key set once the data directory's earlier alerts are in the
/// shared store.
const ALERTS_SHARED: &str = "alerts_shared";
/// The `meta` key set once the data directory's earlier names are in the
/// shared store.
const NAMES_SHARED: &str = "names_shared";

/// The field of a stored alert line that names the exception that suppressed it.
pub const SUPPRESSED_BY: &str = "vakt.suppressed_by";

/// Kinds of interned names.
#[derive(Copy, Clone)]
pub(crate) enum Kind {
    Account = 1,
    Org = 2,
    Action = 3,
    Categories = 4,
    Source = 5,
}

pub(crate) use crate::store::LINK_BYTES;

/// The `meta` key naming the entry store's engine; absent in ledgers whose
/// entries are still in SQLite tables (before the segments engine).
pub(crate) const ENGINE: &str = "engine";
/// The `meta` key holding the entry store's last commit point.
pub(crate) const STORE_POINT: &str = "store_point";
/// The `meta` keys of a ledger whose entries are in PostgreSQL: the
/// database's URL and this data directory's chain in it.
pub(crate) const STORE_URL: &str = "store_url";
pub(crate) const STORE_CHAIN: &str = "store_chain";

pub struct Ledger {
    /// Records the open batch's changes when the entries are in a shared
    /// PostgreSQL store (see [`crate::journal`]).
    recorder: Option<crate::journal::Recorder>,
    /// Shared sources (Kafka partitions) this node took, with the line the
    /// store held for each then and the line reached since.
    claims: HashMap<String, Offset>,
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
    dir: DataDir,
    /// Loaded by [`Ledger::open`], or when a read connection first seals.
    key: Option<SigningKey>,
    /// Actions recorded in the open transaction, to be sealed at commit.
    pub(crate) actions_dirty: bool,
    last_hash: [u8; 32],
    last_seq: i64,
    /// The entries. A reader's is reopened when the writer has committed
    /// since (see [`Ledger::entries`]).
    store: RefCell<Box<dyn EntryStore>>,
    store_point: RefCell<Option<Vec<u8>>>,
    /// What the nodes of a PostgreSQL store share (decisions); `None` for
    /// an embedded store.
    pub(crate) shared: Option<crate::shared::Shared>,
    /// Changes of decisions made in the open batch, published at its commit.
    pub(crate) shared_pending: Vec<crate::shared::Change>,
    /// Changed rows of the tables every node shares, to be published
    /// ([`crate::shared_records`]).
    pub(crate) records_pending: Vec<crate::shared_records::Record>,
    /// Detector snapshots taken in the open batch, for the store's
    /// transaction ([`crate::snapshots`]).
    pub(crate) snapshots_pending: Vec<crate::snapshots::Snapshot>,
    /// Set while rows from the store are applied, so they are not
    /// published back.
    pub(crate) importing: bool,
    writer: bool,
    /// Lines held per source id, loaded when the source is first appended.
    lines: HashMap<i64, Lines, foldhash::fast::RandomState>,
    lines_dirty: HashSet<i64, foldhash::fast::RandomState>,
    in_batch: usize,
    batch_started: std::time::Instant,
    appended: u64,
    duplicates: u64,
    /// Interned names per kind, cached: most entries repeat an account
    /// seen before. Six look-ups per append, so a fast hash (a flood of
    /// new names costs a SQLite insert each long before it costs probing)
    /// and names kept inline in the table when short (comparing a key
    /// then reads no other memory).
    names: [HashMap<smol_str::SmolStr, i64, foldhash::fast::RandomState>; 6],
    /// The last name looked up per kind: consecutive accesses mostly
    /// repeat the account, action, categories and source, and comparing
    /// one name costs less than hashing it.
    last_names: [Option<(smol_str::SmolStr, i64)>; 6],
    buf: Vec<u8>,
    /// The categories of the access being appended, joined.
    categories: String,
}

impl Ledger {
    /// Opens the data directory's ledger for appending, creating it (and
    /// the key) when missing.
    pub fn open(dir: &DataDir) -> Result<Ledger> {
        dir.init()?;
        dir.create_private_db().map_err(|source| LedgerError::Io {
            path: dir.db_path(),
            source,
        })?;
        let mut l = Self::open_db(dir, true)?;
        l.key = Some(dir.signing_key()?);
        l.chain_existing_rows()?;
        l.begin()?;
        if l.writer && l.shared.is_some() {
            l.start_recording()?;
            // What it took from the store (other nodes' users, tokens,
            // exceptions) is committed now, not with the first events:
            // until then this writer would hold the database's write lock
            // and its readers would not see it.
            l.commit()?;
        }
        Ok(l)
    }

    /// Opens an existing ledger for reading (scope, verify).
    pub fn open_read(dir: &DataDir) -> Result<Ledger> {
        if !dir.db_path().exists() {
            return Err(LedgerError::Invalid(format!(
                "no ledger in {}; run `vakt watch --data {}` on some input first",
                dir.path.display(),
                dir.path.display()
            )));
        }
        Self::open_db(dir, false)
    }

    fn open_db(dir: &DataDir, writer: bool) -> Result<Ledger> {
        dir.warn_if_loose();
        let path = dir.db_path();
        let db = |source| LedgerError::Db {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(db)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; PRAGMA temp_store=MEMORY; PRAGMA cache_size=-262144; PRAGMA wal_autocheckpoint=20000;")
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        conn.execute_batch(crate::actions::SCHEMA).map_err(db)?;
        conn.execute_batch(crate::exceptions::SCHEMA).map_err(db)?;
        conn.execute_batch(crate::incident_workflow::SCHEMA)
            .map_err(db)?;
        conn.execute_batch(crate::audit::SCHEMA).map_err(db)?;
        conn.execute_batch(crate::pages::SCHEMA).map_err(db)?;
        conn.execute_batch(crate::snapshots::SCHEMA).map_err(db)?;
        crate::actions::register(&conn).map_err(db)?;
        // Checkpoints written before the actions chain have no head (v1).
        let has_head: bool = conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM pragma_table_info('checkpoints') WHERE name = 'actions')",
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        if !has_head {
            conn.execute_batch(
                "ALTER TABLE checkpoints ADD COLUMN actions INTEGER; ALTER TABLE checkpoints ADD COLUMN actions_head BLOB;",
            )
            .map_err(db)?;
        }
        if writer && meta_text(&conn, ENGINE).map_err(db)?.as_deref() == Some("postgres") {
            if let Some((url, chain)) = postgres_store(&conn).map_err(db)? {
                if crate::journal::roll_forward(&conn, &path, &url, chain)? {
                    tracing::warn!(
                        "{}: the last batch was committed in PostgreSQL but not yet here (the process stopped between the two); applied it from the store's journal",
                        path.display()
                    );
                }
            }
        }
        let last_hash: [u8; 32] = conn
            .query_row("SELECT value FROM meta WHERE key = 'last_hash'", [], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .optional()
            .map_err(db)?
            .and_then(|v| v.try_into().ok())
            .unwrap_or([0; 32]);
        if writer && crate::migrate::is_v1(&conn).map_err(db)? {
            crate::migrate::to_segments(dir, &conn)?;
        }
        let store = open_store(dir, &conn, writer)?;
        let shared = match postgres_store(&conn).map_err(db)? {
            Some((url, _))
                if meta_text(&conn, ENGINE).map_err(db)?.as_deref() == Some("postgres") =>
            {
                Some(crate::shared::Shared::open(&url)?)
            }
            _ => None,
        };
        // Another process may be appending: then this one reads the
        // entries (and writes decisions, tokens, users) only.
        let writer = writer && store.writable();
        let store_point = meta_blob(&conn, STORE_POINT).map_err(db)?;
        let last_seq = store.len() as i64;
        Ok(Ledger {
            recorder: None,
            claims: HashMap::new(),
            conn,
            path,
            dir: dir.clone(),
            key: None,
            actions_dirty: false,
            last_hash,
            last_seq,
            store: RefCell::new(store),
            store_point: RefCell::new(store_point),
            shared,
            shared_pending: Vec::new(),
            records_pending: Vec::new(),
            snapshots_pending: Vec::new(),
            importing: false,
            writer,
            lines: HashMap::default(),
            lines_dirty: HashSet::default(),
            categories: String::new(),
            in_batch: 0,
            batch_started: std::time::Instant::now(),
            appended: 0,
            duplicates: 0,
            names: Default::default(),
            last_names: Default::default(),
            buf: Vec::with_capacity(256),
        })
    }

    pub(crate) fn db<T>(&self, r: rusqlite::Result<T>) -> Result<T> {
        r.map_err(|source| LedgerError::Db {
            path: self.path.clone(),
            source,
        })
    }

    /// The entry store, as of the last commit for a reader (reopened when
    /// the writer has committed since it last looked).
    pub(crate) fn entries(&self) -> Result<Ref<'_, Box<dyn EntryStore>>> {
        let engine = self.store.borrow().engine();
        if !self.writer && engine != "sqlite" {
            let r = meta_blob(&self.conn, STORE_POINT);
            let now = self.db(r)?;
            // While an answer is still reading the store, it stays as it is.
            if now != *self.store_point.borrow() {
                if let Ok(mut current) = self.store.try_borrow_mut() {
                    // Moved on in place: only what the writer added is read.
                    // Should a run it names be merged away meanwhile, the
                    // store is opened afresh at the newest point.
                    match current.advance_read(now.as_deref()) {
                        Ok(()) => *self.store_point.borrow_mut() = now,
                        Err(_) if engine == "segments" => {
                            *current = Box::new(self.open_latest(now)?)
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(self.store.borrow())
    }

    /// Opens the entry store at `point`; should the writer delete a run it
    /// names in between (a newer point is committed), at the newer point.
    fn open_latest(&self, mut point: Option<Vec<u8>>) -> Result<Segments> {
        let mut tries = 0;
        loop {
            match Segments::open_read(&self.dir.entries_path(), point.as_deref()) {
                Ok(s) => {
                    *self.store_point.borrow_mut() = point;
                    return Ok(s);
                }
                Err(LedgerError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && tries < 3 =>
                {
                    tries += 1;
                    let r = meta_blob(&self.conn, STORE_POINT);
                    point = self.db(r)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn begin(&mut self) -> Result<()> {
        let r = self.conn.execute_batch("BEGIN");
        self.db(r)
    }

    pub(crate) fn name_id(&mut self, kind: Kind, name: &str) -> Result<i64> {
        if let Some((last, id)) = &self.last_names[kind as usize] {
            if last == name {
                return Ok(*id);
            }
        }
        let id = match self.names[kind as usize].get(name) {
            Some(&id) => id,
            None => {
                let r = self.conn.prepare_cached("INSERT INTO names(kind, name) VALUES (?1, ?2) ON CONFLICT(kind, name) DO UPDATE SET name = name RETURNING id").and_then(|mut s| s.query_row(params![kind as u8, name], |r| r.get(0)));
                let id = self.db(r)?;
                self.names[kind as usize].insert(name.into(), id);
                id
            }
        };
        self.last_names[kind as usize] = Some((name.into(), id));
        Ok(id)
    }

    /// The id of account `name`, if it ever appended.
    pub(crate) fn account_id(&self, name: &str) -> Result<Option<i64>> {
        let r = self
            .conn
            .prepare_cached("SELECT id FROM names WHERE kind = ?1 AND name = ?2")
            .and_then(|mut s| {
                s.query_row(params![Kind::Account as u8, name], |r| r.get(0))
                    .optional()
            });
        self.db(r)
    }

    /// Appends one access, unless this source line is already in the
    /// ledger (a restart on the same input), and commits when the batch is
    /// due. Returns whether it was new.
    pub fn append(&mut self, e: &AccessEvent) -> Result<bool> {
        let new = self.append_as(e, e.organization.as_deref())?;
        self.commit_if_due()?;
        Ok(new)
    }

    /// Appends one access recorded under `organization` (the directory's,
    /// which wins over the event's), in the open batch: nothing is
    /// committed here, so the caller can record what the access led to
    /// (alerts, decisions) in the same transaction and then call
    /// [`Ledger::commit_if_due`].
    pub fn append_as(&mut self, e: &AccessEvent, organization: Option<&str>) -> Result<bool> {
        let source = e.origin.source.as_ref();
        let source_id = self.name_id(Kind::Source, source)?;
        if !self.lines.contains_key(&source_id) {
            let r = self
                .conn
                .query_row(
                    "SELECT ranges FROM source_lines WHERE source = ?1",
                    [source_id],
                    |r| r.get::<_, Vec<u8>>(0),
                )
                .optional();
            let lines = match self.db(r)? {
                Some(b) => Lines::decode(&b).ok_or_else(|| {
                    LedgerError::Invalid(format!(
                        "{}: the lines recorded for source {source} cannot be read; run `vakt ledger verify`",
                        self.path.display()
                    ))
                })?,
                None => Lines::default(),
            };
            self.lines.insert(source_id, lines);
        }
        let line = e.origin.line;
        if !self
            .lines
            .get_mut(&source_id)
            .expect("loaded above")
            .insert(line)
        {
            self.duplicates += 1;
            return Ok(false);
        }
        self.lines_dirty.insert(source_id);
        let line = line.min(i64::MAX as u64) as i64;
        let org = organization.unwrap_or_default();
        let ip = e
            .source_ip
            .map(vakt_event::addr::ip_text)
            .unwrap_or_default();
        let mut cats = std::mem::take(&mut self.categories);
        cats.clear();
        for (i, c) in e.categories.iter().enumerate() {
            if i > 0 {
                cats.push(',');
            }
            cats.push_str(c);
        }
        let case_id = e.case_id.as_deref().unwrap_or_default();
        // Customers are hashed and stored sorted and distinct, so the entry
        // can be rebuilt exactly from the store.
        let mut customers = e.customer_ids.clone();
        customers.sort_unstable();
        customers.dedup();
        let records = e.records.min(i64::MAX as u64) as i64;
        let mut buf = std::mem::take(&mut self.buf);
        let hash = EntryFields {
            t: e.timestamp.0,
            account: &e.user,
            org,
            ip: &ip,
            action: e.action.as_str(),
            records,
            customers: &customers,
            categories: &cats,
            case_id,
            source,
            line,
        }
        .link(&self.last_hash, &mut buf);
        self.buf = buf;
        let entry = StoredEntry {
            seq: self.last_seq as u64 + 1,
            t: e.timestamp.0,
            account: self.name_id(Kind::Account, &e.user)? as u64,
            org: self.name_id(Kind::Org, org)? as u64,
            action: self.name_id(Kind::Action, e.action.as_str())? as u64,
            categories: self.name_id(Kind::Categories, &cats)? as u64,
            source: source_id as u64,
            ip,
            records,
            case_id: case_id.to_owned(),
            line,
            customers,
            link: hash[..LINK_BYTES].try_into().expect("LINK_BYTES of 32"),
        };
        self.categories = cats;
        self.store.get_mut().push(entry)?;
        self.last_hash = hash;
        self.last_seq += 1;
        self.appended += 1;
        self.in_batch += 1;
        Ok(true)
    }

    /// Commits when the open batch holds [`BATCH`] entries or has been open
    /// for [`BATCH_TIME`] (checked every 1,024 entries, to keep the clock
    /// off the hot path). Returns whether it committed.
    pub fn commit_if_due(&mut self) -> Result<bool> {
        if self.in_batch >= BATCH
            || (self.in_batch > 0
                && self.in_batch.is_multiple_of(1024)
                && self.batch_started.elapsed() >= BATCH_TIME)
        {
            self.commit()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Records an alert line (the latest line per incident wins), and the
    /// row it leaves as an action: each escalation is chained.
    pub fn record_alert(&mut self, a: &Alert) -> Result<()> {
        self.record_alert_as(a, None)
    }

    /// [`Ledger::record_alert`]; with `suppressed_by`, the line carries
    /// `vakt.suppressed_by` = that exception's id.
    pub fn record_alert_as(&mut self, a: &Alert, suppressed_by: Option<&str>) -> Result<()> {
        self.chained(|l| l.record_alert_row(a, suppressed_by))
    }

    fn record_alert_row(&mut self, a: &Alert, suppressed_by: Option<&str>) -> Result<()> {
        let line = match suppressed_by {
            None => a.to_json_line(),
            Some(id) => {
                let mut v = serde_json::to_value(a).expect("alerts serialize to JSON");
                if let Some(m) = v.as_object_mut() {
                    m.insert(SUPPRESSED_BY.into(), id.into());
                }
                v.to_string()
            }
        };
        let r = self
            .conn
            .prepare_cached(
                "INSERT INTO alerts(id, rule, actor, user, first_seen, detected, last, severity, line) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8)
                 ON CONFLICT(id) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen), last = max(last, excluded.last),
                 severity = excluded.severity, line = excluded.line",
            )
            .and_then(|mut s| {
                s.execute(params![
                    a.id,
                    a.rule,
                    a.actor.label(),
                    a.actor.user,
                    a.first_seen.0,
                    a.timestamp.0,
                    a.severity.as_str(),
                    line
                ])
            });
        self.db(r)?;
        self.record_put(&crate::actions::ALERTS, &a.id)
    }

    /// How far an input was processed: the last line recorded with
    /// [`Ledger::set_progress`], or 0. Committed with the entries, so after
    /// a crash it names the last line whose accesses, alerts and decisions
    /// are all in the ledger.
    pub fn progress(&self, source: &str) -> Result<u64> {
        let r = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'progress:' || ?1",
                [source],
                |r| r.get::<_, i64>(0),
            )
            .optional();
        Ok(self.db(r)?.unwrap_or(0).max(0) as u64)
    }

    /// Records that `source` was processed up to `line`, in the current
    /// transaction; a shared source also in the store's, at the commit.
    pub fn set_progress(&mut self, source: &str, line: u64) -> Result<()> {
        if self.recorder.is_some() && is_shared_source(source) {
            if !self.claims.contains_key(source) {
                self.take_source(source)?;
            }
            if let Some(c) = self.claims.get_mut(source) {
                c.reached = c.reached.max(line);
            }
        }
        let r = self.conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('progress:' || ?1, ?2)",
            params![source, line.min(i64::MAX as u64) as i64],
        );
        self.db(r).map(|_| ())
    }

    /// How far `source` was processed, for a writer about to read it on:
    /// [`Ledger::progress`], except that a shared source (a Kafka
    /// partition) on a shared store is read from the store, where
    /// whichever node held it last recorded it. This node then holds the
    /// source at that line: a commit that would move it on after another
    /// node did is refused ([`LedgerError::Fenced`]), so two nodes never
    /// both record one message.
    pub fn take_source(&mut self, source: &str) -> Result<u64> {
        if self.recorder.is_none() || !is_shared_source(source) {
            return self.progress(source);
        }
        let line = match self.store.get_mut().as_postgres() {
            Some(store) => store.offset(source)?,
            None => return self.progress(source),
        };
        self.claims.insert(
            source.to_owned(),
            Offset {
                source: source.to_owned(),
                claimed: line,
                reached: line,
            },
        );
        Ok(line)
    }

    /// Whether the open batch goes to a shared store's transaction.
    pub(crate) fn is_recording(&self) -> bool {
        self.recorder.is_some()
    }

    /// The entries' PostgreSQL store, if they are in one.
    pub(crate) fn postgres_store(&mut self) -> Option<&mut crate::store::postgres::PgStore> {
        self.store.get_mut().as_postgres()
    }

    /// Lets go of a shared source (its partition went to another node),
    /// after committing: the next [`Ledger::take_source`] reads it afresh.
    pub fn release_source(&mut self, source: &str) {
        self.claims.remove(source);
    }

    /// The signing key, loaded from the data directory the first time a
    /// read connection seals.
    pub(crate) fn signing_key(&mut self) -> Result<&SigningKey> {
        if self.key.is_none() {
            self.key = Some(self.dir.signing_key()?);
        }
        Ok(self.key.as_ref().expect("loaded above"))
    }

    /// Writes the signed checkpoint (v2) for entries up to `seq`, whose
    /// chain hash is `hash`, with the actions chain's head as it now is.
    pub(crate) fn sign_checkpoint(&mut self, seq: i64, hash: &[u8; 32]) -> Result<()> {
        let r = crate::actions::head(&self.conn);
        let (n, head) = self.db(r)?;
        let sig = self
            .signing_key()?
            .sign(&checkpoint_message(seq, hash, Some((n, &head))));
        let r = self.conn.execute(
            "INSERT OR REPLACE INTO checkpoints(seq, hash, signature, actions, actions_head) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![seq, &hash[..], &sig.to_bytes()[..], n, &head[..]],
        );
        self.db(r).map(|_| ())
    }

    /// Commits the batch and seals it with a signed checkpoint; actions
    /// recorded without entries re-seal the newest checkpoint.
    pub fn commit(&mut self) -> Result<()> {
        if self.conn.is_autocommit() {
            // Opened for reading: its writes (decisions, alerts raised
            // beside a running writer) each commit in a sealed transaction
            // of their own, so there is nothing to commit.
            return Ok(());
        }
        let shared = self.recorder.is_some();
        if shared {
            // Other nodes' changes to the shared tables, before the
            // checkpoint seals the actions that apply them.
            self.sync_shared()?;
        }
        if self.in_batch > 0 {
            if !shared {
                let point = self.store.get_mut().flush()?;
                self.set_meta(STORE_POINT, &point)?;
            }
            for source in std::mem::take(&mut self.lines_dirty) {
                let ranges = self.lines[&source].encode();
                let r = self.conn.execute(
                    "INSERT OR REPLACE INTO source_lines(source, ranges) VALUES (?1, ?2)",
                    params![source, ranges],
                );
                self.db(r)?;
            }
            if self.key.is_some() {
                let (seq, hash) = (self.last_seq, self.last_hash);
                self.sign_checkpoint(seq, &hash)?;
            }
            let r = self.conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('last_hash', ?1)",
                params![&self.last_hash[..]],
            );
            self.db(r)?;
        } else if self.actions_dirty {
            self.seal_actions()?;
        }
        if shared {
            self.commit_to_store()?;
        } else if let Some(shared) = &self.shared {
            for change in std::mem::take(&mut self.shared_pending) {
                shared.publish(&change)?;
            }
            self.publish_pending_records()?;
        }
        let r = self.conn.execute_batch("COMMIT; BEGIN");
        self.db(r)?;
        self.store.get_mut().committed()?;
        if let Some(r) = &self.recorder {
            r.clear();
        }
        self.actions_dirty = false;
        self.in_batch = 0;
        self.batch_started = std::time::Instant::now();
        Ok(())
    }

    fn start_recording(&mut self) -> Result<()> {
        let r = crate::journal::Recorder::install(&mut self.conn);
        self.recorder = Some(self.db(r)?);
        self.share_earlier_alerts()?;
        self.share_earlier_records()
    }

    /// Copies the alerts and names this data directory recorded before
    /// they were shared to the store, once each.
    fn share_earlier_alerts(&mut self) -> Result<()> {
        let done = |key| {
            meta_text(&self.conn, key)
                .map(|v| v.is_some())
                .map_err(|source| LedgerError::Db {
                    path: self.path.clone(),
                    source,
                })
        };
        let (alerts_done, names_done) = (done(ALERTS_SHARED)?, done(NAMES_SHARED)?);
        if alerts_done && names_done {
            return Ok(());
        }
        let alerts = match alerts_done {
            true => Vec::new(),
            false => {
                let r = crate::shared_alerts::all(&self.conn);
                self.db(r)?
            }
        };
        let names = match names_done {
            true => Vec::new(),
            false => {
                let r = crate::shared_names::all(&self.conn);
                self.db(r)?
            }
        };
        if let Some(store) = self.store.get_mut().as_postgres() {
            store.share_earlier(&alerts, &names)?;
        }
        // Recorded with the next batch: a crash before it copies them again, alike.
        for key in [ALERTS_SHARED, NAMES_SHARED] {
            self.set_meta(key, b"1")?;
        }
        Ok(())
    }

    /// Commits the batch to the shared store: its entries, the changes it
    /// made here, its decisions and the shared sources it moved on, in one
    /// PostgreSQL transaction, which is then the batch's commit point.
    fn commit_to_store(&mut self) -> Result<()> {
        let offsets: Vec<Offset> = self
            .claims
            .values()
            .filter(|o| o.reached != o.claimed)
            .cloned()
            .collect();
        let idle = self.recorder.as_ref().is_none_or(|r| r.is_empty());
        if self.in_batch == 0
            && idle
            && offsets.is_empty()
            && self.shared_pending.is_empty()
            && self.records_pending.is_empty()
            && self.snapshots_pending.is_empty()
        {
            return Ok(());
        }
        let r = crate::journal::batch_number(&self.conn);
        let n = self.db(r)? + 1;
        let r = self.conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
            params![crate::journal::JOURNAL_N, n],
        );
        self.db(r)?;
        let recorder = self
            .recorder
            .as_ref()
            .expect("a shared store records its batches");
        let r = recorder.changes(&self.conn);
        let changes = self.db(r)?;
        let r = crate::shared_alerts::changed(&self.conn, &recorder.rowids("alerts"));
        let alerts = self.db(r)?;
        let r = crate::shared_names::changed(&self.conn, &recorder.rowids("names"));
        let names = self.db(r)?;
        let store = self.store.get_mut();
        let store = store.as_postgres().ok_or_else(|| {
            LedgerError::Invalid(format!(
                "{}: the ledger shares decisions but its entries are not in PostgreSQL",
                self.path.display()
            ))
        })?;
        let point = store.flush_with(&Rider {
            journal: Some((n, &changes)),
            decisions: &self.shared_pending,
            offsets: &offsets,
            alerts: &alerts,
            names: &names,
            records: &self.records_pending,
            snapshots: &self.snapshots_pending,
        })?;
        self.shared_pending.clear();
        self.records_pending.clear();
        self.snapshots_pending.clear();
        self.set_meta(STORE_POINT, &point)?;
        for o in offsets {
            if let Some(c) = self.claims.get_mut(&o.source) {
                c.claimed = o.reached;
            }
        }
        Ok(())
    }

    /// Commits what is pending and closes the ledger.
    pub fn close(mut self) -> Result<()> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.commit()?;
        let r = self.conn.execute_batch("COMMIT");
        self.db(r)
    }

    /// Sets a `meta` value in the open transaction.
    pub(crate) fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<()> {
        let r = self.conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
            params![key, value],
        );
        self.db(r).map(|_| ())
    }

    /// Entries appended and duplicates skipped in this session.
    pub fn counts(&self) -> (u64, u64) {
        (self.appended, self.duplicates)
    }

    /// Entries in the ledger (a reader: as of the writer's last commit).
    pub fn len(&self) -> i64 {
        if self.writer {
            return self.last_seq;
        }
        self.entries()
            .map(|s| s.len() as i64)
            .unwrap_or(self.last_seq)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `source` is named alike by every node (a Kafka partition,
/// `kafka:<topic>:<partition>`), so its progress is shared through a
/// shared store; a file path or an HTTP stream is one node's own.
pub fn is_shared_source(source: &str) -> bool {
    source.starts_with("kafka:")
}

/// Customer ids as LEB128 varints: three bytes for most.
pub(crate) fn encode_ids(ids: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ids.len() * 3);
    for &id in ids {
        let mut v = id as u64;
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
    }
    out
}

pub(crate) fn decode_ids(bytes: &[u8]) -> Vec<i64> {
    let mut out = Vec::new();
    let (mut v, mut shift) = (0u64, 0u32);
    for &b in bytes {
        if shift < 64 {
            v |= ((b & 0x7f) as u64) << shift;
        }
        if b & 0x80 == 0 {
            out.push(v as i64);
            v = 0;
            shift = 0;
        } else {
            shift += 7;
        }
    }
    out
}

/// A `meta` value as bytes.
pub(crate) fn meta_blob(conn: &Connection, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
        r.get::<_, Vec<u8>>(0)
    })
    .optional()
}

/// A `meta` value as text (some are written as text, some as bytes).
fn meta_text(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT CAST(value AS TEXT) FROM meta WHERE key = ?1",
        [key],
        |r| r.get::<_, String>(0),
    )
    .optional()
}

/// Opens the ledger's entry store: the segments engine at its committed
/// point, for appending when `writer` and no other process appends, else
/// for reading; or (a reader of a ledger not yet migrated) the SQLite
/// tables.
fn open_store(dir: &DataDir, conn: &Connection, writer: bool) -> Result<Box<dyn EntryStore>> {
    let db = |source| LedgerError::Db {
        path: dir.db_path(),
        source,
    };
    if crate::migrate::is_v1(conn).map_err(db)? {
        return Ok(Box::new(SqliteStore::open(&dir.db_path())?));
    }
    let point = meta_blob(conn, STORE_POINT).map_err(db)?;
    let engine = meta_text(conn, ENGINE).map_err(db)?;
    if engine.as_deref() == Some("postgres") {
        let (url, chain) = postgres_store(conn).map_err(db)?.ok_or_else(|| {
            LedgerError::Invalid(format!(
                "{}: the ledger's entries are in PostgreSQL but its URL or chain is not recorded; run `vakt ledger store` again",
                dir.db_path().display()
            ))
        })?;
        let p = crate::store::postgres::Postings::Btree;
        if writer {
            if let Some(s) = PgStore::try_open(&url, chain, p, point.as_deref())? {
                return Ok(Box::new(s));
            }
        }
        return Ok(Box::new(PgStore::open_read(&url, chain, point.as_deref())?));
    }
    let path = dir.entries_path();
    if writer {
        conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES (?1, 'segments')",
            [ENGINE],
        )
        .map_err(db)?;
        if let Some(s) = Segments::try_open(&path, point.as_deref())? {
            return Ok(Box::new(s));
        }
    }
    Ok(Box::new(Segments::open_read(&path, point.as_deref())?))
}

/// The PostgreSQL URL and chain of a ledger whose entries are there.
fn postgres_store(conn: &Connection) -> rusqlite::Result<Option<(String, i32)>> {
    let chain = meta_text(conn, STORE_CHAIN)?.and_then(|c| c.parse().ok());
    Ok(meta_text(conn, STORE_URL)?.zip(chain))
}

/// Where a data directory keeps its entries, as [`use_postgres`] left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresStore {
    pub chain: i32,
    pub postings: crate::store::postgres::Postings,
    /// Whether this call chose PostgreSQL (false: it already was, and only
    /// the URL was brought up to date).
    pub new: bool,
}

/// Makes the data directory's ledger keep its entries in the PostgreSQL
/// database at `url`, in a chain of its own; names, checkpoints, alerts,
/// decisions and ingest progress stay in its SQLite database. A ledger
/// that already holds entries in another engine is refused (there is no
/// move between them yet); one already in PostgreSQL takes the new URL (a
/// changed password, a moved server), which must reach the same database.
pub fn use_postgres(
    dir: &DataDir,
    url: &str,
    postings: crate::store::postgres::Postings,
) -> Result<PostgresStore> {
    let ledger = Ledger::open(dir)?;
    let conn = &ledger.conn;
    let db = |source| LedgerError::Db {
        path: dir.db_path(),
        source,
    };
    if let Some((_, chain)) = postgres_store(conn).map_err(db)? {
        // The chain must be there, as long as the ledger says.
        let point = meta_blob(conn, STORE_POINT).map_err(db)?;
        drop(ledger);
        let store = PgStore::open_read(url, chain, point.as_deref())?;
        let n = store.chain_len()?;
        if n < store.len() {
            return Err(LedgerError::Invalid(format!(
                "{}: chain {chain} there holds {n} entries where this ledger has {}: is it the same database?",
                crate::store::postgres::redacted(url),
                store.len()
            )));
        }
        let mut ledger = Ledger::open(dir)?;
        ledger.set_meta(STORE_URL, url.as_bytes())?;
        ledger.commit()?;
        ledger.close()?;
        return Ok(PostgresStore {
            chain,
            postings: store.postings(),
            new: false,
        });
    }
    if !ledger.is_empty() {
        return Err(LedgerError::Invalid(format!(
            "{} keeps {} entries in the {} engine; a data directory keeps the engine it started with: give `vakt ledger store` a new data directory",
            dir.path.display(),
            ledger.len(),
            ledger.store.borrow().engine()
        )));
    }
    drop(ledger);
    let name = format!(
        "{}:{}",
        std::fs::read_to_string("/etc/hostname")
            .unwrap_or_default()
            .trim(),
        dir.path.display()
    );
    let chain = crate::store::postgres::new_chain(url, &name, postings)?;
    let mut ledger = Ledger::open(dir)?;
    for (k, v) in [
        (ENGINE, b"postgres".to_vec()),
        (STORE_URL, url.as_bytes().to_vec()),
        (STORE_CHAIN, chain.to_string().into_bytes()),
    ] {
        ledger.set_meta(k, &v)?;
    }
    ledger.commit()?;
    ledger.close()?;
    let store = PgStore::open_read(url, chain, None)?;
    Ok(PostgresStore {
        chain,
        postings: store.postings(),
        new: true,
    })
}
