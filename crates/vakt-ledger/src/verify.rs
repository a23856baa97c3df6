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
//!    --account` looks them up) and customers, each of which must be in the
//!    scoping index (`reads`, which `vakt scope --customer` answers from);
//! 3. SQLite's `PRAGMA integrity_check`: damage in pages the walk does not
//!    read (indexes, free pages) and indexes that disagree with their tables;
//! 4. that `reads` holds no row beyond those the entries name (counted in
//!    step 2, so a surplus is found without holding the index in memory);
//! 5. that alerts, decisions, exceptions, tokens and users are each what their last
//!    action says, and that nothing is there without one;
//! 6. anchors: checkpoints kept outside the data directory, signed by a
//!    public key given from outside it ([`crate::anchor`]), must still be
//!    in the ledger with the same hashes.
//!
//! Memory is bounded: entries, checkpoints, actions and table rows are
//! streamed in key order; names come from the database by join, customer
//! names through a small cache of [`VerifyOptions::name_cache`] entries.
//!
//! Blind spots: without an anchor, a tail cut together with its
//! checkpoints, or a ledger rewritten by someone holding `ledger.key`,
//! verifies (anchor it elsewhere, keep the key off the machine); rows
//! written by an older vakt after an upgrade are reported as changed;
//! console users' columns beyond name, password hash and creation are not
//! chained, nor are sessions (short-lived) or ingest progress.

use crate::actions::{self, key_of, payload, Chained};
use crate::anchor::Anchor;
use crate::encode::{checkpoint_message, link, ActionFields, EntryFields};
use crate::keys::{hex, DataDir};
use crate::ledger::{decode_ids, Kind, Ledger, LINK_BYTES};
use crate::{LedgerError, Result};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use rusqlite::{OptionalExtension, Row};
use std::collections::HashMap;

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
                "the database file is damaged; SQLite says: {detail}; {RESTORE}"
            ),
            Problem::IndexMissing { seq, customer } => write!(
                f,
                "entry {seq} read customer {customer}, but the scoping index (table reads) no longer says so: `vakt scope --customer {customer}` would leave it out; {RESTORE}"
            ),
            Problem::IndexExtra { seq, customer } => write!(
                f,
                "the scoping index (table reads) says entry {seq} read customer {customer}; the chain does not: a row was added outside vakt; {RESTORE}"
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
    /// Most customer names held in memory at once.
    pub names_cached: usize,
    pub problem: Option<Problem>,
}

/// Customer names kept in memory by default while walking.
pub const NAME_CACHE: usize = 65_536;

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Checkpoints kept outside the data directory that the ledger must
    /// still hold.
    pub anchors: Vec<Anchor>,
    /// The key signatures are checked with; `ledger.pub` when none. Give
    /// one from outside the data directory: whoever can rewrite the ledger
    /// can replace `ledger.pub` too.
    pub public_key: Option<VerifyingKey>,
    /// Customer names kept in memory at most.
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
        _ => Err(e),
    }
}

/// Customer names by id, at most `cap` of them: two generations, the
/// older dropped whole when the newer fills, so what is used often stays.
struct NameCache {
    hot: HashMap<i64, String>,
    cold: HashMap<i64, String>,
    cap: usize,
    peak: usize,
}

impl NameCache {
    fn new(cap: usize) -> NameCache {
        NameCache {
            hot: HashMap::new(),
            cold: HashMap::new(),
            cap: cap.max(2),
            peak: 0,
        }
    }

    fn get(&mut self, id: i64) -> Option<String> {
        if let Some(n) = self.hot.get(&id) {
            return Some(n.clone());
        }
        let n = self.cold.remove(&id)?;
        self.insert(id, n.clone());
        Some(n)
    }

    fn insert(&mut self, id: i64, name: String) {
        if self.hot.len() >= self.cap / 2 {
            self.cold = std::mem::take(&mut self.hot);
        }
        self.hot.insert(id, name);
        self.peak = self.peak.max(self.hot.len() + self.cold.len());
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
        let mut pairs = 0u64;
        step!(self.entries_chain(
            newest.as_ref().map_or(0, |c| c.seq),
            &anchors,
            &mut pairs,
            progress
        ));
        step!(self.anchored_actions(&anchors));
        step!(self.integrity());
        step!(self.index_surplus(pairs));
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
            ActionFields {
                table: &table,
                op: &op,
                subject: &subject,
                payload: &payload,
                at: self.db(row.get(5))?,
            }
            .bytes(&mut buf);
            let hash = link(&prev, &buf);
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

    fn customer(&mut self, id: i64) -> Result<Option<String>> {
        if let Some(n) = self.names.get(id) {
            return Ok(Some(n));
        }
        let r = self
            .l
            .conn
            .prepare_cached("SELECT name FROM customers WHERE id = ?1")
            .and_then(|mut s| s.query_row([id], |r| r.get::<_, String>(0)).optional());
        let name = self.db(r)?;
        if let Some(n) = &name {
            self.names.insert(id, n.clone());
            self.report.names_cached = self.names.peak;
        }
        Ok(name)
    }

    fn in_index(&self, customer: i64, seq: i64) -> Result<bool> {
        let r = self
            .l
            .conn
            .prepare_cached("SELECT EXISTS(SELECT 1 FROM reads WHERE customer = ?1 AND seq = ?2)")
            .and_then(|mut s| s.query_row([customer, seq], |r| r.get(0)));
        self.db(r)
    }

    fn entries_chain(
        &mut self,
        last_cp: i64,
        anchors: &[Anchor],
        pairs: &mut u64,
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
        // Names are joined, with their kind: `scope --account` looks an
        // account up by name and kind.
        let mut stmt = self.db(l.conn.prepare(
            "SELECT e.seq, e.t, a.name, a.kind, o.name, o.kind, e.ip, x.name, x.kind, e.records,
                    c.name, c.kind, e.case_id, s.name, s.kind, e.line, e.custs, e.link
             FROM entries e LEFT JOIN names a ON a.id = e.account LEFT JOIN names o ON o.id = e.org
             LEFT JOIN names x ON x.id = e.action LEFT JOIN names c ON c.id = e.cats
             LEFT JOIN names s ON s.id = e.source ORDER BY e.seq",
        ))?;
        let mut rows = self.db(stmt.query([]))?;
        let (mut prev, mut expected, mut buf) = ([0u8; 32], 1i64, Vec::new());
        let mut customers: Vec<(i64, String)> = Vec::new();
        while let Some(row) = self.db(rows.next())? {
            let seq: i64 = self.db(row.get(0))?;
            self.report.entries += 1;
            if self.report.entries % (1 << 16) == 0 {
                progress(self.report.entries as u64, total);
            }
            if seq != expected {
                return Ok(Some(if seq > expected {
                    Problem::Removed {
                        from: expected,
                        to: seq - 1,
                    }
                } else {
                    Problem::Changed { seq }
                }));
            }
            expected = seq + 1;
            let named = |i: usize, kind: Kind| -> rusqlite::Result<Option<String>> {
                let k: Option<i64> = row.get(i + 1)?;
                Ok(if k == Some(kind as i64) {
                    row.get(i)?
                } else {
                    None
                })
            };
            let r = (|| {
                Ok((
                    named(2, Kind::Account)?,
                    named(4, Kind::Org)?,
                    named(7, Kind::Action)?,
                    named(10, Kind::Categories)?,
                    named(13, Kind::Source)?,
                ))
            })();
            let (Some(account), Some(org), Some(action), Some(categories), Some(source)) =
                self.db(r)?
            else {
                return Ok(Some(Problem::Changed { seq }));
            };
            let ip: String = self.db(row.get(6))?;
            let case_id: String = self.db(row.get(12))?;
            let custs: Vec<u8> = self.db(row.get(16))?;
            let stored: Vec<u8> = self.db(row.get(17))?;
            customers.clear();
            for id in decode_ids(&custs) {
                match self.customer(id)? {
                    Some(name) => customers.push((id, name)),
                    None => return Ok(Some(Problem::Changed { seq })),
                }
            }
            customers.sort_unstable_by(|a, b| a.1.cmp(&b.1));
            let names: Vec<String> = customers.iter().map(|(_, n)| n.clone()).collect();
            EntryFields {
                t: self.db(row.get(1))?,
                account: &account,
                org: &org,
                ip: &ip,
                action: &action,
                records: self.db(row.get(9))?,
                customers: &names,
                categories: &categories,
                case_id: &case_id,
                source: &source,
                line: self.db(row.get(15))?,
            }
            .bytes(&mut buf);
            let hash = link(&prev, &buf);
            if stored != hash[..LINK_BYTES] {
                return Ok(Some(Problem::Changed { seq }));
            }
            for (id, name) in &customers {
                if !self.in_index(*id, seq)? {
                    return Ok(Some(Problem::IndexMissing {
                        seq,
                        customer: name.clone(),
                    }));
                }
            }
            *pairs += customers.len() as u64;
            if let Some(c) = next_cp.take_if(|c| c.seq == seq) {
                step!(self.checkpoint(&c, &hash));
                next_cp = self.db(cps.next().transpose())?;
            }
            while let Some(a) = anchors.next_if(|a| a.seq == seq) {
                if a.hash_bytes() != Some(hash) {
                    return Ok(Some(Problem::AnchorMismatch {
                        seq,
                        what: format!(
                            "the chain hash there is {}, the anchor's {}",
                            hex(&hash),
                            a.hash
                        ),
                    }));
                }
            }
            if seq > last_cp {
                return Ok(Some(Problem::Unsealed { seq }));
            }
            prev = hash;
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
            detail: said.join("; "),
        }))
    }

    /// `reads` holds exactly the (customer, entry) pairs the entries name:
    /// each was found in it on the walk, so a larger count means rows the
    /// chain does not hold; the first is named.
    fn index_surplus(&self, pairs: u64) -> Found {
        let r = self
            .l
            .conn
            .query_row("SELECT COUNT(*) FROM reads", [], |r| r.get::<_, i64>(0));
        if self.db(r)?.max(0) as u64 <= pairs {
            return Ok(None);
        }
        let mut stmt = self.db(self.l.conn.prepare(
            "SELECT r.customer, r.seq, e.custs, c.name FROM reads r
             LEFT JOIN entries e ON e.seq = r.seq LEFT JOIN customers c ON c.id = r.customer",
        ))?;
        let mut rows = self.db(stmt.query([]))?;
        while let Some(row) = self.db(rows.next())? {
            let r = (|| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Option<Vec<u8>>>(2)?,
                    row.get::<_, Option<String>>(3)?,
                ))
            })();
            let (customer, seq, custs, name) = self.db(r)?;
            if !custs.is_some_and(|c| decode_ids(&c).contains(&customer)) {
                return Ok(Some(Problem::IndexExtra {
                    seq,
                    customer: name.unwrap_or_else(|| format!("#{customer}")),
                }));
            }
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
