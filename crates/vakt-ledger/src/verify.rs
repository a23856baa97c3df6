//! `vakt ledger verify`: everything a scope answer, an alert or a decision
//! rests on is proved against what the data directory's key signed.
//!
//! What is chained:
//! - Entries (accesses): each hashed with BLAKE3 into the entries chain.
//! - Actions: every write to a table people and policies change (alerts,
//!   decisions, API tokens, console users) is also an action, `put` with
//!   the row as it now is or `delete`, hashed into a chain of its own
//!   ([`crate::actions`]). An escalated alert is one more `put`: the row
//!   is recomputed from its last action.
//! - Checkpoints sign both heads. v1 (written before the actions chain)
//!   signs the entries' head; v2 signs the entries' head and the actions'
//!   head. Old v1 checkpoints keep verifying; the first time a newer vakt
//!   writes to an old ledger it records the chained tables' rows as they
//!   are (what was changed before then cannot be told) and signs v2 from
//!   then on. Actions written between batches re-sign the newest
//!   checkpoint with the new head.
//!
//! What verify checks, in this order, stopping at the first problem:
//! 1. the actions chain, link by link, against the newest checkpoint's head;
//! 2. the entries chain, link by link, each checkpoint's hash, signature
//!    and actions head, and every entry's names (by kind, as `vakt scope
//!    --account` looks them up) and customers;
//! 3. SQLite's `PRAGMA integrity_check` on the database (names, customers,
//!    checkpoints, chained tables): damage in pages the walk does not read;
//! 4. that the scoping indexes hold exactly what the entries say: the
//!    customer index (`vakt scope --customer`) every (customer, entry) pair
//!    and no other, the account index (`vakt scope --account`) a true copy
//!    of each access. Both sides are summed per bucket with a key drawn at
//!    each run, so nobody can make a forged index sum right; a bucket that
//!    differs is walked again alone to name the first pair or row;
//! 5. that alerts, decisions, exceptions, tokens and users are each what their last
//!    action says, and that nothing is there without one;
//! 6. anchors: checkpoints kept outside the data directory, signed by a
//!    public key given from outside it ([`crate::anchor`]), must still be
//!    in the ledger with the same hashes.
//!
//! Memory is bounded: entries, checkpoints, actions and table rows are
//! streamed in order; names and customer names come through a cache of
//! [`VerifyOptions::name_cache`] entries; the index sums take 128 KiB per
//! side; a bucket walked again holds about 1/4,096 of the index. The index
//! side is summed on a second read handle, on a thread of its own, while
//! the chain is walked (step 4 then only compares). A damaged block
//! of the entry store is reported as [`Problem::Corrupt`] naming its file.
//!
//! Blind spots: without an anchor, a tail cut together with its
//! checkpoints, or a ledger rewritten by someone holding `ledger.key`,
//! verifies (anchor it elsewhere, keep the key off the machine); rows
//! written by an older vakt after an upgrade are reported as changed;
//! console users' columns beyond name, password hash and creation are not
//! chained, nor are sessions (short-lived) or ingest progress.

use crate::actions::{self, key_of, payload, Chained};
use crate::anchor::Anchor;
use crate::encode::{checkpoint_message, ActionFields, EntryFields};
use crate::keys::{hex, DataDir};
use crate::ledger::{Kind, Ledger, LINK_BYTES};
use crate::store::{customer_key, AccountRow, EntryStore, StoredEntry};
use crate::{LedgerError, Result};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use rusqlite::{OptionalExtension, Row};
use smol_str::SmolStr;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// The first thing found wrong, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Entries `from..=to` are missing.
    Removed { from: i64, to: i64 },
    /// The entry at `seq` no longer matches the chain: changed, inserted
    /// before or moved.
    Changed { seq: i64 },
    /// The chain up to `seq` does not match what its checkpoint signed.
    CheckpointMismatch { seq: i64 },
    /// The checkpoint at `seq` has an invalid signature.
    BadSignature { seq: i64 },
    /// Entries from `seq` on are not covered by any checkpoint: appended
    /// outside vakt.
    Unsealed { seq: i64 },
    /// SQLite finds the database file damaged.
    Corrupt { detail: String },
    /// Entry `seq` read `customer`, but the scoping index does not say so:
    /// `vakt scope --customer` would leave the access out.
    IndexMissing { seq: i64, customer: String },
    /// The scoping index says entry `seq` read `customer`; the chain does not.
    IndexExtra { seq: i64, customer: String },
    /// The account index's copy of entry `seq` is not what the entry says
    /// (or is missing, or is extra): `vakt scope --account` would answer
    /// wrongly.
    AccountIndexChanged { seq: i64 },
    /// Actions `from..=to` of the actions chain are missing.
    ActionsRemoved { from: i64, to: i64 },
    /// Action `seq` no longer matches the actions chain.
    ActionChanged { seq: i64 },
    /// Actions from `seq` on are not sealed by any checkpoint.
    ActionsUnsealed { seq: i64 },
    /// The alert `id` is not what its chained actions say it is.
    AlertChanged { id: String },
    /// The decision `id` is not what its chained actions say it is.
    DecisionChanged { id: String },
    /// The API token `name` is not what its chained actions say it is.
    TokenChanged { name: String },
    /// The console user `name` is not what its chained actions say it is.
    UserChanged { name: String },
    /// The exception `id` is not what its chained actions say it is.
    ExceptionChanged { id: String },
    /// The workflow of incident `id` is not what its chained actions say it is.
    IncidentChanged { id: String },
    /// The audit record `id` is not what its chained actions say it is.
    AuditChanged { id: String },
    /// A row of a page's inventory (`table`, keyed `key`) is not what its
    /// chained actions say it is.
    PageInventoryChanged { table: String, key: String },
    /// The ledger ends at entry `have`; a checkpoint kept outside it was at `anchored`.
    ShorterThanAnchor { anchored: i64, have: i64 },
    /// The ledger differs from the checkpoint anchored at entry `seq`.
    AnchorMismatch { seq: i64, what: String },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const RESTORE: &str = "restore the data directory from a backup and verify it again";
        match self {
            Problem::Removed { from, to } => write!(f, "entries {from} to {to} were removed"),
            Problem::Changed { seq } => write!(
                f,
                "entry {seq} was changed, inserted or moved: it no longer matches the chain"
            ),
            Problem::CheckpointMismatch { seq } => write!(
                f,
                "the entries up to {seq} do not match what their signed checkpoint vouches for"
            ),
            Problem::BadSignature { seq } => {
                write!(f, "the checkpoint at entry {seq} has an invalid signature")
            }
            Problem::Unsealed { seq } => write!(
                f,
                "entries from {seq} on are not sealed by any checkpoint: added outside vakt"
            ),
            Problem::Corrupt { detail } => write!(
                f,
                "a ledger file is damaged: {detail}; {RESTORE}"
            ),
            Problem::IndexMissing { seq, customer } => write!(
                f,
                "entry {seq} read customer {customer}, but the customer index no longer says so: `vakt scope --customer {customer}` would leave it out; {RESTORE}"
            ),
            Problem::IndexExtra { seq, customer } => write!(
                f,
                "the customer index says entry {seq} read customer {customer}; the chain does not: it was added outside vakt; {RESTORE}"
            ),
            Problem::AccountIndexChanged { seq } => write!(
                f,
                "the account index's copy of entry {seq} is not what the chain holds: `vakt scope --account` would answer wrongly; {RESTORE}"
            ),
            Problem::ActionsRemoved { from, to } => write!(
                f,
                "actions {from} to {to} (alerts, decisions, tokens, users) were removed; {RESTORE}"
            ),
            Problem::ActionChanged { seq } => write!(
                f,
                "action {seq} (alerts, decisions, tokens, users) was changed: it no longer matches the actions chain; {RESTORE}"
            ),
            Problem::ActionsUnsealed { seq } => write!(
                f,
                "actions from {seq} on are not sealed by any checkpoint: added outside vakt; {RESTORE}"
            ),
            Problem::AlertChanged { id } => write!(
                f,
                "alert {id} was changed, added or deleted outside vakt: it is not what its chained actions say; {RESTORE}"
            ),
            Problem::DecisionChanged { id } => write!(
                f,
                "decision {id} was changed, added or deleted outside vakt: it is not what its chained actions say; {RESTORE}"
            ),
            Problem::TokenChanged { name } => write!(
                f,
                "API token {name} was changed, added or deleted outside vakt; revoke it with `vakt token revoke {name}` and {RESTORE}"
            ),
            Problem::UserChanged { name } => write!(
                f,
                "console user {name} was changed, added or deleted outside vakt; delete it with `vakt user delete {name}` and {RESTORE}"
            ),
            Problem::ExceptionChanged { id } => write!(
                f,
                "exception {id} was changed, added or deleted outside vakt: it is not what its chained actions say; {RESTORE}"
            ),
            Problem::IncidentChanged { id } => write!(
                f,
                "the status, owner or classification of incident {id} was changed, added or deleted outside vakt: it is not what its chained actions say; {RESTORE}"
            ),
            Problem::AuditChanged { id } => write!(
                f,
                "audit record {id} was changed, added or deleted outside vakt: the record of who did what is not what its chained actions say; {RESTORE}"
            ),
            Problem::PageInventoryChanged { table, key } => write!(
                f,
                "the payment pages' inventory ({table}, {}) was changed, added or deleted outside vakt: a script or destination may have been slipped in as known; {RESTORE}",
                key.replace('\n', " ")
            ),
            Problem::ShorterThanAnchor { anchored, have } => write!(
                f,
                "the ledger ends at entry {have}, but a checkpoint anchored outside it vouches for entry {anchored}: entries {} to {anchored} were cut with their checkpoints; {RESTORE}",
                have + 1
            ),
            Problem::AnchorMismatch { seq, what } => write!(
                f,
                "the ledger differs from the checkpoint anchored at entry {seq}: {what}; {RESTORE}"
            ),
        }
    }
}

/// What verify found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub entries: i64,
    pub checkpoints: i64,
    pub last_checkpoint: Option<(i64, String)>,
    /// Actions in the actions chain.
    pub actions: i64,
    /// Whether alerts, decisions, tokens and users are chained: false for a
    /// ledger no vakt with the actions chain has written to yet.
    pub actions_chained: bool,
    /// Anchors checked.
    pub anchors: usize,
    /// Most names held in memory at once.
    pub names_cached: usize,
    pub problem: Option<Problem>,
}

/// Names kept in memory by default while walking: a million names take
/// about 64 MiB. A ledger with fewer names (most: accounts are the many
/// ones) has them all read in one pass before the walk; one with more
/// looks names up as it meets them, keeping the most recent.
pub const NAME_CACHE: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Checkpoints kept outside the data directory that the ledger must
    /// still hold.
    pub anchors: Vec<Anchor>,
    /// The key signatures are checked with; `ledger.pub` when none. Give
    /// one from outside the data directory: whoever can rewrite the ledger
    /// can replace `ledger.pub` too.
    pub public_key: Option<VerifyingKey>,
    /// Names (accounts, organisations, actions, categories, sources) kept
    /// in memory at most.
    pub name_cache: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            anchors: Vec::new(),
            public_key: None,
            name_cache: NAME_CACHE,
        }
    }
}

pub fn verify(dir: &DataDir) -> Result<VerifyReport> {
    verify_with_progress(dir, &mut |_, _| {})
}

/// [`verify`], calling `progress(entries checked, entries in all)` now and then.
pub fn verify_with_progress(
    dir: &DataDir,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport> {
    verify_with(dir, &VerifyOptions::default(), progress)
}

/// [`verify_with_progress`] with anchors, a public key and a cache size.
pub fn verify_with(
    dir: &DataDir,
    options: &VerifyOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport> {
    let mut report = VerifyReport {
        entries: 0,
        checkpoints: 0,
        last_checkpoint: None,
        actions: 0,
        actions_chained: false,
        anchors: options.anchors.len(),
        names_cached: 0,
        problem: None,
    };
    let key = match options.public_key {
        Some(k) => k,
        None => dir.verifying_key()?,
    };
    let l = match Ledger::open_read(dir) {
        Ok(l) => l,
        Err(e) => return corrupt(e, report),
    };
    let mut w = Walk {
        l: &l,
        key,
        names: NameCache::new(options.name_cache),
        report: &mut report,
    };
    if let Err(e) = w.preload_names() {
        return corrupt(e, report);
    }
    match w.run(options, progress) {
        Ok(p) => {
            report.problem = p;
            Ok(report)
        }
        Err(e) => corrupt(e, report),
    }
}

/// A database error that means a damaged file becomes a [`Problem::Corrupt`].
fn corrupt(e: LedgerError, mut report: VerifyReport) -> Result<VerifyReport> {
    match &e {
        LedgerError::Db {
            source: rusqlite::Error::SqliteFailure(f, _),
            ..
        } if matches!(
            f.code,
            rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
        ) =>
        {
            report.problem = Some(Problem::Corrupt {
                detail: e.to_string(),
            });
            Ok(report)
        }
        LedgerError::Damaged { path, what } => {
            report.problem = Some(Problem::Corrupt {
                detail: format!("{}: {what}", path.display()),
            });
            Ok(report)
        }
        _ => Err(e),
    }
}

/// Names by id and kind, at most `cap` of them. Names read in one pass
/// sit in a table indexed by id (a look-up is one read of memory, the name
/// inline when short); names looked up as met sit in two generations, the
/// older dropped whole when the newer fills, so what is used often stays.
struct NameCache {
    /// By id: the name's kind and text.
    table: Vec<Option<(u8, SmolStr)>>,
    tabled: usize,
    hot: HashMap<i64, SmolStr, foldhash::fast::RandomState>,
    cold: HashMap<i64, SmolStr, foldhash::fast::RandomState>,
    cap: usize,
    peak: usize,
}

impl NameCache {
    fn new(cap: usize) -> NameCache {
        NameCache {
            table: Vec::new(),
            tabled: 0,
            hot: HashMap::default(),
            cold: HashMap::default(),
            cap: cap.max(16),
            peak: 0,
        }
    }

    fn get(&mut self, id: i64, kind: i64) -> Option<SmolStr> {
        let in_table = usize::try_from(id).ok().and_then(|i| self.table.get(i));
        if let Some(Some((k, name))) = in_table {
            if i64::from(*k) == kind {
                return Some(name.clone());
            }
        }
        let key = name_key(id, kind);
        if let Some(n) = self.hot.get(&key) {
            return Some(n.clone());
        }
        let n = self.cold.remove(&key)?;
        self.insert(id, kind, n.clone());
        Some(n)
    }

    fn insert(&mut self, id: i64, kind: i64, name: SmolStr) {
        if self.hot.len() >= self.cap / 2 {
            self.cold = std::mem::take(&mut self.hot);
        }
        self.hot.insert(name_key(id, kind), name);
        self.count();
    }

    /// Files a name of the one-pass load: in the table when its id is
    /// below `limit` (ids are row ids, dense from 1; a far one must not
    /// make the table huge), else as met.
    fn load(&mut self, id: i64, kind: i64, name: SmolStr, limit: usize) {
        match (usize::try_from(id), u8::try_from(kind)) {
            (Ok(i), Ok(k)) if i < limit => {
                if self.table.len() <= i {
                    self.table.resize(i + 1, None);
                }
                if self.table[i].replace((k, name)).is_none() {
                    self.tabled += 1;
                    self.count();
                }
            }
            _ => self.insert(id, kind, name),
        }
    }

    fn count(&mut self) {
        self.peak = self
            .peak
            .max(self.tabled + self.hot.len() + self.cold.len());
    }
}

/// A checkpoint row.
struct Checkpoint {
    seq: i64,
    hash: Vec<u8>,
    signature: Vec<u8>,
    actions: Option<i64>,
    actions_head: Option<Vec<u8>>,
}

const CHECKPOINT: &str = "SELECT seq, hash, signature, actions, actions_head FROM checkpoints";

impl Checkpoint {
    fn from_row(r: &Row) -> rusqlite::Result<Checkpoint> {
        Ok(Checkpoint {
            seq: r.get(0)?,
            hash: r.get(1)?,
            signature: r.get(2)?,
            actions: r.get(3)?,
            actions_head: r.get(4)?,
        })
    }

    /// The actions head it signs: `None` for v1, `Some(None)` when the row
    /// is neither v1 nor a well-formed v2.
    fn actions(&self) -> Option<Option<(i64, [u8; 32])>> {
        match (self.actions, &self.actions_head) {
            (None, None) => None,
            (Some(n), Some(h)) => Some(<[u8; 32]>::try_from(&h[..]).ok().map(|h| (n, h))),
            _ => Some(None),
        }
    }
}

struct Walk<'a> {
    l: &'a Ledger,
    key: VerifyingKey,
    names: NameCache,
    report: &'a mut VerifyReport,
}

type Found = Result<Option<Problem>>;

/// Runs each step in turn and returns the first problem.
macro_rules! step {
    ($e:expr) => {
        if let Some(p) = $e? {
            return Ok(Some(p));
        }
    };
}

impl Walk<'_> {
    fn db<T>(&self, r: rusqlite::Result<T>) -> Result<T> {
        self.l.db(r)
    }

    fn run(&mut self, options: &VerifyOptions, progress: &mut dyn FnMut(u64, u64)) -> Found {
        let mut anchors = options.anchors.clone();
        anchors.sort_by_key(|a| a.seq);
        step!(self.anchors_signed(&anchors));
        let r = self.l.conn.query_row(
            &format!("{CHECKPOINT} ORDER BY seq DESC LIMIT 1"),
            [],
            Checkpoint::from_row,
        );
        let newest = self.db(r.optional())?;
        let r = self
            .l
            .conn
            .query_row("SELECT COUNT(*) FROM checkpoints", [], |r| r.get(0));
        self.report.checkpoints = self.db(r)?;
        self.report.last_checkpoint = newest.as_ref().map(|c| (c.seq, hex(&c.hash)));
        step!(self.actions_chain(newest.as_ref()));
        // Held to the end: the store stays at one point for both walks.
        let l = self.l;
        let pinned = l.entries()?;
        let twin = pinned.twin();
        let key = rand::random();
        let mut sums = IndexSums::new(key);
        let stop = AtomicBool::new(false);
        // The index is summed on a second handle while this thread walks
        // the chain.
        let (chain, from_index) = std::thread::scope(|s| {
            let walker = twin.map(|t| {
                let stop = &stop;
                std::thread::Builder::new()
                    .name("vakt-verify-index".into())
                    .spawn_scoped(s, move || index_sums(t.as_ref(), key, stop))
            });
            let chain = self.entries_chain(
                newest.as_ref().map_or(0, |c| c.seq),
                &anchors,
                &mut sums,
                progress,
            );
            if !matches!(chain, Ok(None)) {
                stop.store(true, Ordering::Relaxed);
            }
            let from_index = walker.map(|w| {
                w.map_err(|e| LedgerError::Invalid(format!("cannot start a verify thread: {e}")))?
                    .join()
                    .unwrap_or_else(|_| {
                        Err(LedgerError::Invalid(
                            "the index walk stopped on a panic".into(),
                        ))
                    })
            });
            (chain, from_index)
        });
        step!(chain);
        let from_index = from_index.transpose()?;
        step!(self.anchored_actions(&anchors));
        step!(self.integrity());
        step!(self.indexes(&sums, from_index));
        drop(pinned);
        if self.report.actions_chained {
            self.l.users_table()?;
            for c in actions::CHAINED {
                step!(self.table_against_actions(c));
            }
        }
        Ok(None)
    }

    /// Every anchor must be signed by the given key, as written.
    fn anchors_signed(&self, anchors: &[Anchor]) -> Found {
        let ours = crate::keys::fingerprint(&self.key);
        for a in anchors {
            if !a.signed_by(&self.key) {
                let what = if a.key != ours {
                    format!(
                        "the anchor was signed by key {}, not by the given public key ({ours})",
                        a.key
                    )
                } else {
                    "the anchor's signature does not verify with the given public key: the anchor was edited".to_owned()
                };
                return Ok(Some(Problem::AnchorMismatch { seq: a.seq, what }));
            }
        }
        Ok(None)
    }

    fn signed(&self, c: &Checkpoint, hash: &[u8; 32]) -> bool {
        let actions = match c.actions() {
            None => None,
            Some(Some((n, h))) => Some((n, h)),
            Some(None) => return false,
        };
        let message = checkpoint_message(c.seq, hash, actions.as_ref().map(|(n, h)| (*n, h)));
        <[u8; 64]>::try_from(&c.signature[..]).is_ok_and(|s| {
            self.key
                .verify(&message, &Signature::from_bytes(&s))
                .is_ok()
        })
    }

    /// The link of action `n` (zeros for 0), once the chain is proved.
    fn action_link(&self, n: i64) -> Result<Option<[u8; 32]>> {
        if n == 0 {
            return Ok(Some([0; 32]));
        }
        let r = self
            .l
            .conn
            .prepare_cached("SELECT link FROM actions WHERE seq = ?1")
            .and_then(|mut s| s.query_row([n], |r| r.get::<_, Vec<u8>>(0)).optional());
        Ok(self.db(r)?.and_then(|v| v.try_into().ok()))
    }

    /// Whether a checkpoint's (or anchor's) actions head is in the chain.
    fn head_problem(&self, n: i64, head: &[u8; 32]) -> Found {
        if n > self.report.actions {
            return Ok(Some(Problem::ActionsRemoved {
                from: self.report.actions + 1,
                to: n,
            }));
        }
        if self.action_link(n)?.as_ref() != Some(head) {
            return Ok(Some(Problem::ActionChanged { seq: n }));
        }
        Ok(None)
    }

    fn actions_chain(&mut self, newest: Option<&Checkpoint>) -> Found {
        let r = self.l.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM actions) OR EXISTS(SELECT 1 FROM checkpoints WHERE actions IS NOT NULL)",
            [],
            |r| r.get::<_, bool>(0),
        );
        self.report.actions_chained = self.db(r)?;
        if !self.report.actions_chained {
            return Ok(None);
        }
        let mut stmt = self.db(self.l.conn.prepare(
            "SELECT seq, tbl, op, subject, payload, at, link FROM actions ORDER BY seq",
        ))?;
        let mut rows = self.db(stmt.query([]))?;
        let (mut prev, mut expected, mut buf) = ([0u8; 32], 1i64, Vec::new());
        while let Some(row) = self.db(rows.next())? {
            let seq: i64 = self.db(row.get(0))?;
            if seq != expected {
                return Ok(Some(if seq > expected {
                    Problem::ActionsRemoved {
                        from: expected,
                        to: seq - 1,
                    }
                } else {
                    Problem::ActionChanged { seq }
                }));
            }
            let text = |i| row.get::<_, String>(i);
            let (table, op, subject, payload) =
                self.db((|| Ok((text(1)?, text(2)?, text(3)?, text(4)?)))())?;
            let hash = ActionFields {
                table: &table,
                op: &op,
                subject: &subject,
                payload: &payload,
                at: self.db(row.get(5))?,
            }
            .link(&prev, &mut buf);
            let stored: Vec<u8> = self.db(row.get(6))?;
            if stored != hash {
                return Ok(Some(Problem::ActionChanged { seq }));
            }
            prev = hash;
            expected += 1;
        }
        self.report.actions = expected - 1;
        let sealed = newest.and_then(|c| c.actions()).flatten();
        match sealed {
            None if self.report.actions > 0 => {
                return Ok(Some(Problem::ActionsUnsealed { seq: 1 }));
            }
            Some((n, _)) if n < self.report.actions => {
                return Ok(Some(Problem::ActionsUnsealed { seq: n + 1 }));
            }
            // The newest checkpoint's head itself is checked, with its
            // signature, on the walk over entries.
            _ => {}
        }
        Ok(None)
    }

    /// Each anchored actions head must be in the proved actions chain.
    fn anchored_actions(&self, anchors: &[Anchor]) -> Found {
        for a in anchors {
            if let Some(Some((n, head))) = a.actions_head_bytes() {
                if n > self.report.actions {
                    return Ok(Some(Problem::AnchorMismatch {
                        seq: a.seq,
                        what: format!(
                            "the actions chain ends at action {}, the anchor vouches for {n}: actions were cut",
                            self.report.actions
                        ),
                    }));
                }
                if self.action_link(n)? != Some(head) {
                    return Ok(Some(Problem::AnchorMismatch {
                        seq: a.seq,
                        what: format!("action {n} is not the one anchored"),
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Checks a checkpoint against the chain hash at its seq.
    fn checkpoint(&self, c: &Checkpoint, hash: &[u8; 32]) -> Found {
        if c.hash[..] != hash[..] {
            return Ok(Some(Problem::CheckpointMismatch { seq: c.seq }));
        }
        if !self.signed(c, hash) {
            return Ok(Some(Problem::BadSignature { seq: c.seq }));
        }
        if let Some(Some((n, head))) = c.actions() {
            step!(self.head_problem(n, &head));
        }
        Ok(None)
    }

    /// Reads every name in one pass when half the cache holds them all:
    /// far cheaper than a look-up per name met.
    fn preload_names(&mut self) -> Result<()> {
        let r = self
            .l
            .conn
            .query_row("SELECT COUNT(*) FROM names", [], |r| r.get::<_, i64>(0));
        let n = self.db(r)?.max(0) as usize;
        if n == 0 || n > self.names.cap / 2 {
            return Ok(());
        }
        let names = &mut self.names;
        let limit = 4 * n + 1024;
        let r = self
            .l
            .conn
            .prepare("SELECT id, kind, name FROM names")
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })?
                .try_for_each(|row| {
                    let (id, kind, name) = row?;
                    names.load(id, kind, SmolStr::from(name), limit);
                    Ok(())
                })
            });
        self.db(r)?;
        self.report.names_cached = self.names.peak;
        Ok(())
    }

    /// The name `id` stands for, if it is one of `kind` (`scope --account`
    /// looks an account up by name and kind).
    fn name(&mut self, id: u64, kind: Kind) -> Result<Option<SmolStr>> {
        // Keyed with the kind: an id of another kind is not this name.
        if let Some(n) = self.names.get(id as i64, kind as i64) {
            return Ok(Some(n));
        }
        let r = self
            .l
            .conn
            .prepare_cached("SELECT name FROM names WHERE id = ?1 AND kind = ?2")
            .and_then(|mut s| {
                s.query_row(rusqlite::params![id as i64, kind as i64], |r| {
                    r.get::<_, String>(0)
                })
                .optional()
            });
        let name: Option<SmolStr> = self.db(r)?.map(SmolStr::from);
        if let Some(n) = &name {
            self.names.insert(id as i64, kind as i64, n.clone());
            self.report.names_cached = self.names.peak;
        }
        Ok(name)
    }

    fn entries_chain(
        &mut self,
        last_cp: i64,
        anchors: &[Anchor],
        index: &mut IndexSums,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Found {
        let total = self.l.len().max(0) as u64;
        let l = self.l;
        let mut cps = self.db(l.conn.prepare(&format!("{CHECKPOINT} ORDER BY seq")))?;
        let mut cps = self.db(cps.query_map([], Checkpoint::from_row))?;
        let mut next_cp = self.db(cps.next().transpose())?;
        // A checkpoint at 0 seals actions recorded before any entry.
        while let Some(c) = next_cp.take_if(|c| c.seq <= 0) {
            if c.seq < 0 {
                return Ok(Some(Problem::CheckpointMismatch { seq: c.seq }));
            }
            step!(self.checkpoint(&c, &[0; 32]));
            next_cp = self.db(cps.next().transpose())?;
        }
        let mut anchors = anchors.iter().peekable();
        while let Some(a) = anchors.next_if(|a| a.seq <= 0) {
            if a.hash_bytes() != Some([0; 32]) {
                return Ok(Some(Problem::AnchorMismatch {
                    seq: a.seq,
                    what: "the anchor's hash is not the empty chain's".into(),
                }));
            }
        }
        let store = l.entries()?;
        let (mut prev, mut expected, mut buf) = ([0u8; 32], 1i64, Vec::new());
        let mut found: Option<Problem> = None;
        store.scan(1, &mut |e| {
            let seq = e.seq as i64;
            self.report.entries += 1;
            if self.report.entries % (1 << 16) == 0 {
                progress(self.report.entries as u64, total);
            }
            if seq != expected {
                found = Some(if seq > expected {
                    Problem::Removed {
                        from: expected,
                        to: seq - 1,
                    }
                } else {
                    Problem::Changed { seq }
                });
                return Ok(false);
            }
            expected = seq + 1;
            let (Some(account), Some(org), Some(action), Some(categories), Some(source)) = (
                self.name(e.account, Kind::Account)?,
                self.name(e.org, Kind::Org)?,
                self.name(e.action, Kind::Action)?,
                self.name(e.categories, Kind::Categories)?,
                self.name(e.source, Kind::Source)?,
            ) else {
                found = Some(Problem::Changed { seq });
                return Ok(false);
            };
            let hash = EntryFields {
                t: e.t,
                account: &account,
                org: &org,
                ip: &e.ip,
                action: &action,
                records: e.records,
                customers: &e.customers,
                categories: &categories,
                case_id: &e.case_id,
                source: &source,
                line: e.line,
            }
            .link(&prev, &mut buf);
            if e.link[..] != hash[..LINK_BYTES] {
                found = Some(Problem::Changed { seq });
                return Ok(false);
            }
            index.entry(e);
            if let Some(c) = next_cp.take_if(|c| c.seq == seq) {
                if let Some(p) = self.checkpoint(&c, &hash)? {
                    found = Some(p);
                    return Ok(false);
                }
                next_cp = self.db(cps.next().transpose())?;
            }
            while let Some(a) = anchors.next_if(|a| a.seq == seq) {
                if a.hash_bytes() != Some(hash) {
                    found = Some(Problem::AnchorMismatch {
                        seq,
                        what: format!(
                            "the chain hash there is {}, the anchor's {}",
                            hex(&hash),
                            a.hash
                        ),
                    });
                    return Ok(false);
                }
            }
            if seq > last_cp {
                found = Some(Problem::Unsealed { seq });
                return Ok(false);
            }
            prev = hash;
            Ok(true)
        })?;
        if found.is_some() {
            return Ok(found);
        }
        let have = expected - 1;
        if last_cp > have {
            // A checkpoint vouches for entries that are gone: the tail was cut.
            return Ok(Some(Problem::Removed {
                from: expected,
                to: last_cp,
            }));
        }
        if let Some(anchored) = anchors.map(|a| a.seq).max() {
            return Ok(Some(Problem::ShorterThanAnchor { anchored, have }));
        }
        Ok(None)
    }

    fn integrity(&self) -> Found {
        let r = self
            .l
            .conn
            .prepare("PRAGMA integrity_check(10)")
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            });
        let said = self.db(r)?;
        if said.len() == 1 && said[0] == "ok" {
            return Ok(None);
        }
        Ok(Some(Problem::Corrupt {
            detail: format!("SQLite says: {}", said.join("; ")),
        }))
    }

    /// The scoping indexes hold exactly what the entries say: the sums the
    /// chain walk took of each (customer, entry) pair and each account row
    /// must equal those of the indexes (`from_index`, when summed on
    /// another thread), bucket by bucket. A bucket that
    /// differs is walked again, alone, to name the first pair or row.
    fn indexes(&mut self, from_entries: &IndexSums, from_index: Option<IndexSums>) -> Found {
        let store = self.l.entries()?;
        let from_index = match from_index {
            Some(sums) => sums,
            None => index_sums(store.as_ref(), from_entries.key, &AtomicBool::new(false))?,
        };
        if let Some(b) = first_difference(&from_entries.customers, &from_index.customers) {
            let mut want = Vec::new();
            store.scan(1, &mut |e| {
                for c in &e.customers {
                    let k = customer_key(c);
                    if bucket(k) == b {
                        want.push((e.seq, k));
                    }
                }
                Ok(true)
            })?;
            let mut have = Vec::new();
            store.customer_index(&mut |c, seq| {
                if bucket(c) == b {
                    have.push((seq, c));
                }
                Ok(())
            })?;
            let (kind, (seq, c)) = match first_unlike(want, have) {
                Some(d) => d,
                None => return Ok(None),
            };
            let customer = customer_named(store.as_ref(), seq, c)?;
            drop(store);
            let seq = seq as i64;
            return Ok(Some(if kind == Side::Entries {
                Problem::IndexMissing { seq, customer }
            } else {
                Problem::IndexExtra { seq, customer }
            }));
        }
        if let Some(b) = first_difference(&from_entries.accounts, &from_index.accounts) {
            let key = from_entries.key;
            let mut want = Vec::new();
            store.scan(1, &mut |e| {
                if bucket(e.account) == b {
                    want.push((e.seq, entry_account_sum(key, e)));
                }
                Ok(true)
            })?;
            let mut have = Vec::new();
            store.account_index(&mut |a, row| {
                if bucket(a) == b {
                    have.push((row.seq, account_sum(key, a, row)));
                }
                Ok(())
            })?;
            drop(store);
            let seq = first_unlike(want, have).map_or(0, |(_, (seq, _))| seq as i64);
            return Ok(Some(Problem::AccountIndexChanged { seq }));
        }
        Ok(None)
    }

    /// Merges a table's rows, by key, with the last action of each key.
    fn table_against_actions(&self, c: &Chained) -> Found {
        let changed = |key: String| {
            Some(match c.table {
                "alerts" => Problem::AlertChanged { id: key },
                "decisions" => Problem::DecisionChanged { id: key },
                "tokens" => Problem::TokenChanged { name: key },
                "exceptions" => Problem::ExceptionChanged { id: key },
                "incident_states" => Problem::IncidentChanged { id: key },
                "audit" => Problem::AuditChanged { id: key },
                "page_scripts" | "page_destinations" | "page_states" => {
                    Problem::PageInventoryChanged {
                        table: c.table.into(),
                        key,
                    }
                }
                _ => Problem::UserChanged { name: key },
            })
        };
        // SQLite takes the bare columns from the row holding MAX(seq).
        let mut last = self.db(self.l.conn.prepare(
            "SELECT subject, op, payload, MAX(seq) FROM actions WHERE tbl = ?1 GROUP BY subject ORDER BY subject",
        ))?;
        let mut last = self.db(last.query([c.table]))?;
        let mut table = self.db(self.l.conn.prepare(&c.select_all()))?;
        let mut table = self.db(table.query([]))?;
        let width = c.width();
        let next_action = |rows: &mut rusqlite::Rows| -> Result<Option<(String, String, String)>> {
            match self.db(rows.next())? {
                Some(r) => Ok(Some(self.db((|| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))())?)),
                None => Ok(None),
            }
        };
        let next_row = |rows: &mut rusqlite::Rows| -> Result<Option<(String, String)>> {
            match self.db(rows.next())? {
                Some(r) => Ok(Some(self.db((|| Ok((key_of(r)?, payload(r, width)?)))())?)),
                None => Ok(None),
            }
        };
        let (mut a, mut t) = (next_action(&mut last)?, next_row(&mut table)?);
        loop {
            match (a.take(), t.take()) {
                (None, None) => return Ok(None),
                (Some((subject, op, _)), None) => {
                    if op == "put" {
                        return Ok(changed(subject));
                    }
                    a = next_action(&mut last)?;
                }
                (None, Some((key, _))) => return Ok(changed(key)),
                (Some((subject, op, p)), Some((key, row))) => match subject.cmp(&key) {
                    std::cmp::Ordering::Less => {
                        if op == "put" {
                            return Ok(changed(subject));
                        }
                        a = next_action(&mut last)?;
                        t = Some((key, row));
                    }
                    std::cmp::Ordering::Greater => return Ok(changed(key)),
                    std::cmp::Ordering::Equal => {
                        if op != "put" || p != row {
                            return Ok(changed(key));
                        }
                        a = next_action(&mut last)?;
                        t = next_row(&mut table)?;
                    }
                },
            }
        }
    }
}

/// A name's place in the cache: its id with its kind, since an id of
/// another kind is not this name.
fn name_key(id: i64, kind: i64) -> i64 {
    id.wrapping_mul(8).wrapping_add(kind)
}

/// Buckets the index sums are kept in: a difference is looked for again
/// in one bucket only, about 1/4,096 of the index.
const BUCKETS: usize = 4096;

fn bucket(key: u64) -> usize {
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 52) as usize % BUCKETS
}

/// The name of the customer filed under `key`: in entry `seq` if it names
/// one (a pair missing from the index), else in the first entry that does
/// (a pair added to it).
fn customer_named(store: &dyn EntryStore, seq: u64, key: u64) -> Result<String> {
    let find = |e: &StoredEntry| e.customers.iter().find(|c| customer_key(c) == key).cloned();
    let mut name = None;
    store.entries_at(&[seq], &mut |e| {
        name = find(e);
        Ok(())
    })?;
    if name.is_none() {
        store.scan(1, &mut |e| {
            name = find(e);
            Ok(name.is_none())
        })?;
    }
    Ok(name.unwrap_or_else(|| format!("a customer filed under key {key:016x}")))
}

/// A keyed 128-bit mix: with a key drawn at each run, nobody can make a
/// changed index sum to the same value.
fn mix(key: u64, a: u64, b: u64) -> u128 {
    let lane = |k: u64| {
        let mut z = k ^ a.wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ b.rotate_left(29);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    ((lane(key) as u128) << 64) | lane(key.rotate_left(17) ^ 0x5851_f42d_4c95_7f2d) as u128
}

/// What an account row says, folded into one number.
fn account_sum(key: u64, account: u64, row: &AccountRow) -> u128 {
    RowView {
        seq: row.seq,
        t: row.t,
        ip: &row.ip,
        categories: row.categories,
        records: row.records,
        customers: &row.customers,
    }
    .sum(key, account)
}

/// [`account_sum`] of an entry, without copying it into a row first.
fn entry_account_sum(key: u64, e: &StoredEntry) -> u128 {
    RowView {
        seq: e.seq,
        t: e.t,
        ip: &e.ip,
        categories: e.categories,
        records: e.records,
        customers: &e.customers,
    }
    .sum(key, e.account)
}

/// An account row's fields, borrowed from a row or from an entry.
struct RowView<'a> {
    seq: u64,
    t: i64,
    ip: &'a str,
    categories: u64,
    records: i64,
    customers: &'a [String],
}

impl RowView<'_> {
    fn sum(&self, key: u64, account: u64) -> u128 {
        let mut h = blake3::Hasher::new();
        h.update(&self.t.to_le_bytes());
        h.update(self.ip.as_bytes());
        h.update(&self.categories.to_le_bytes());
        h.update(&self.records.to_le_bytes());
        for c in self.customers {
            h.update(&(c.len() as u32).to_le_bytes());
            h.update(c.as_bytes());
        }
        let d = h.finalize();
        let d = u64::from_le_bytes(d.as_bytes()[..8].try_into().expect("8 of 32"));
        mix(key ^ account, self.seq, d)
    }
}

/// Sums, per bucket, of the (customer, entry) pairs and account rows seen.
struct IndexSums {
    key: u64,
    customers: Vec<u128>,
    accounts: Vec<u128>,
}

impl IndexSums {
    fn new(key: u64) -> IndexSums {
        IndexSums {
            key,
            customers: vec![0; BUCKETS],
            accounts: vec![0; BUCKETS],
        }
    }

    fn customer(&mut self, c: u64, seq: u64) {
        let s = &mut self.customers[bucket(c)];
        *s = s.wrapping_add(mix(self.key, c, seq));
    }

    fn account(&mut self, a: u64, row: &AccountRow) {
        self.add_account(a, account_sum(self.key, a, row));
    }

    fn add_account(&mut self, a: u64, sum: u128) {
        let s = &mut self.accounts[bucket(a)];
        *s = s.wrapping_add(sum);
    }

    fn entry(&mut self, e: &StoredEntry) {
        for c in &e.customers {
            self.customer(customer_key(c), e.seq);
        }
        self.add_account(e.account, entry_account_sum(self.key, e));
    }
}

/// The sums of every customer and account posting of `store`; gives up
/// (with an error nobody reads) once `stop` is set.
fn index_sums(store: &dyn EntryStore, key: u64, stop: &AtomicBool) -> Result<IndexSums> {
    let mut sums = IndexSums::new(key);
    let mut seen = 0u32;
    let mut stopped = || {
        seen = seen.wrapping_add(1);
        if seen.is_multiple_of(1 << 16) && stop.load(Ordering::Relaxed) {
            return Err(LedgerError::Invalid("the index walk was stopped".into()));
        }
        Ok(())
    };
    store.customer_index(&mut |c, seq| {
        stopped()?;
        sums.customer(c, seq);
        Ok(())
    })?;
    store.account_index(&mut |a, row| {
        stopped()?;
        sums.account(a, row);
        Ok(())
    })?;
    Ok(sums)
}

fn first_difference(a: &[u128], b: &[u128]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

#[derive(PartialEq, Eq)]
enum Side {
    Entries,
    Index,
}

/// The first item (by seq) only one side holds, and which side.
fn first_unlike<T: Ord>(mut want: Vec<T>, mut have: Vec<T>) -> Option<(Side, T)> {
    want.sort_unstable();
    have.sort_unstable();
    let (mut i, mut j) = (0, 0);
    while i < want.len() || j < have.len() {
        match (want.get(i), have.get(j)) {
            (Some(w), Some(h)) if w == h => {
                i += 1;
                j += 1;
            }
            (Some(w), Some(h)) if w < h => return Some((Side::Entries, want.swap_remove(i))),
            (Some(_), None) => return Some((Side::Entries, want.swap_remove(i))),
            _ => return Some((Side::Index, have.swap_remove(j))),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer;

    /// A ledger as an older vakt left it: no actions, v1 checkpoints.
    fn old_ledger(dir: &DataDir) {
        let mut l = Ledger::open(dir).unwrap();
        let mut e = vakt_event::AccessEvent {
            user: "anna".into(),
            customer_ids: vec!["C-1".into()],
            ..Default::default()
        };
        e.origin = vakt_event::Origin::new("x".into(), 1);
        l.append(&e).unwrap();
        l.record_alert(
            &serde_json::from_str(r#"{"id":"rate-1","@timestamp":"2027-01-15T08:00:00Z","rule.id":"rate","severity":"high","user.name":"anna","first_seen":"2027-01-15T07:00:00Z","message":"m","evidence":{},"customers":1,"alert.status":"new","alert.updates":0}"#).unwrap(),
        )
        .unwrap();
        l.close().unwrap();
        let key = dir.signing_key().unwrap();
        let c = rusqlite::Connection::open(dir.db_path()).unwrap();
        let (seq, hash): (i64, Vec<u8>) = c
            .query_row("SELECT seq, hash FROM checkpoints", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        let sig = key.sign(&checkpoint_message(seq, &hash.try_into().unwrap(), None));
        c.execute_batch("DELETE FROM actions").unwrap();
        c.execute(
            "UPDATE checkpoints SET signature = ?1, actions = NULL, actions_head = NULL",
            [&sig.to_bytes()[..]],
        )
        .unwrap();
    }

    #[test]
    fn a_ledger_with_v1_checkpoints_verifies_and_is_chained_when_next_written() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir {
            path: tmp.path().join("d"),
        };
        old_ledger(&dir);
        let r = verify(&dir).unwrap();
        assert_eq!((r.problem, r.actions_chained), (None, false));
        // Opened for writing: the rows there are chained, the newest checkpoint re-signed as v2.
        Ledger::open(&dir).unwrap().close().unwrap();
        let r = verify(&dir).unwrap();
        assert_eq!((r.problem, r.actions_chained, r.actions), (None, true, 1));
        let c = rusqlite::Connection::open(dir.db_path()).unwrap();
        c.execute_batch("UPDATE alerts SET severity = 'low'")
            .unwrap();
        assert_eq!(
            verify(&dir).unwrap().problem,
            Some(Problem::AlertChanged {
                id: "rate-1".into()
            })
        );
    }

    #[test]
    fn a_decision_written_on_a_read_connection_is_sealed_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir {
            path: tmp.path().join("d"),
        };
        Ledger::open(&dir).unwrap().close().unwrap();
        let mut l = Ledger::open_read(&dir).unwrap();
        let d = crate::decisions::Decision::new(
            "d-1".into(),
            crate::decisions::Scope::Ip,
            "192.0.2.1",
            crate::decisions::Action::Block,
            "r".into(),
            vakt_event::Timestamp(1_800_000_000_000),
            60_000,
        )
        .unwrap();
        l.put_decision(&d).unwrap();
        l.create_token("ops", crate::tokens::Role::Admin).unwrap();
        assert!(l.revoke_token("ops").unwrap());
        let r = verify(&dir).unwrap();
        assert_eq!((r.problem, r.actions, r.checkpoints), (None, 3, 1));
    }
}
