//! What a connection knows: the settings every connection shares, and the
//! client's identity, through which its accesses are submitted.

use super::record::{truncate, verb_action, Access, Stmt, Who, STATEMENT_TEXT};
use super::sql::{self, Verb};
use super::PgProxyConfig;
use crate::{EventSink, Guard};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use vakt_event::Outcome;

/// Lists of table names whose categories are remembered (a client sends
/// the same few all day; a flood of new ones empties the memo, it never
/// grows past this).
const CATEGORY_SETS: usize = 4096;
/// The longest list remembered, in bytes of names: a client names tables
/// in its SQL, and 4,096 lists of megabytes each would be gigabytes. A
/// longer list is matched every time, as it was before the memo.
const CATEGORY_KEY_BYTES: usize = 512;

/// Statement shapes whose scan is remembered ([`sql::shape`]): an
/// application sends the same few all day, with other numbers in them; a
/// flood of new ones empties the memo, it never grows past this.
const SHAPES: usize = 4096;

/// What the scan found in a statement of one shape.
#[derive(Clone)]
struct Shaped {
    verb: Verb,
    names_table: bool,
    categories: Arc<[String]>,
}

/// Statement shape -> what its scan found. Keys are at most
/// [`sql::SHAPE_MAX`] bytes, so the memo holds at most 4 MiB of them.
#[derive(Default)]
struct ShapeMemo(Mutex<foldhash::HashMap<Box<[u8]>, Shaped>>);

impl ShapeMemo {
    fn get_or_scan(&self, key: &[u8], scan: impl FnOnce() -> Shaped) -> Shaped {
        // Nothing is left half done under the lock by a panic.
        let mut memo = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = memo.get(key) {
            return s.clone();
        }
        let s = scan();
        if memo.len() >= SHAPES {
            memo.clear();
        }
        memo.insert(key.into(), s.clone());
        s
    }
}

/// Tables named by a statement -> their categories, bounded in entries
/// and in the size of each key.
#[derive(Default)]
struct CategoryMemo(Mutex<HashMap<Vec<String>, Arc<[String]>>>);

impl CategoryMemo {
    fn get_or_match(
        &self,
        named: &[String],
        matching: impl FnOnce() -> Vec<String>,
    ) -> Arc<[String]> {
        let bytes: usize = named.iter().map(String::len).sum();
        if bytes > CATEGORY_KEY_BYTES {
            return matching().into();
        }
        // Nothing is left half done under the lock by a panic.
        let mut memo = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = memo.get(named) {
            return c.clone();
        }
        let c: Arc<[String]> = matching().into();
        if memo.len() >= CATEGORY_SETS {
            memo.clear();
        }
        memo.insert(named.to_vec(), c.clone());
        c
    }
}

/// What every connection shares.
pub(crate) struct Shared {
    pub(super) config: PgProxyConfig,
    pub(super) guard: Arc<Guard>,
    pub(super) sink: Arc<EventSink>,
    /// Key column names, lower case, bare (`customers.customer_id` -> `customer_id`).
    keys: HashSet<Vec<u8>>,
    /// Table (lower case) -> categories.
    tables: Vec<(String, Vec<String>)>,
    categories_of: CategoryMemo,
    shapes: ShapeMemo,
    none: Arc<[String]>,
}

impl Shared {
    pub(crate) fn new(config: PgProxyConfig, guard: Arc<Guard>, sink: Arc<EventSink>) -> Shared {
        let keys = config
            .key_columns
            .iter()
            .map(|k| {
                let k = k.to_ascii_lowercase();
                k.rsplit('.').next().unwrap_or(&k).as_bytes().to_vec()
            })
            .collect();
        let tables = config
            .tables
            .iter()
            .map(|t| (t.name.to_ascii_lowercase(), t.categories.clone()))
            .collect();
        Shared {
            config,
            guard,
            sink,
            keys,
            tables,
            categories_of: CategoryMemo::default(),
            shapes: ShapeMemo::default(),
            none: Arc::from([]),
        }
    }

    pub(super) fn is_key(&self, name: &[u8]) -> bool {
        if self.keys.is_empty() {
            return false;
        }
        // PostgreSQL cuts names to 63 bytes: lower-cased on the stack.
        let mut lower = [0u8; 64];
        match lower.get_mut(..name.len()) {
            Some(lower) => {
                lower.copy_from_slice(name);
                lower.make_ascii_lowercase();
                self.keys.contains(&*lower)
            }
            None => self.keys.contains(&name.to_ascii_lowercase()),
        }
    }

    /// Categories of the configured tables among `named` (as written in
    /// SQL), remembered per list of names: this runs per statement.
    fn categories(&self, named: &[String]) -> Arc<[String]> {
        if named.is_empty() || self.tables.is_empty() {
            return self.none.clone();
        }
        self.categories_of
            .get_or_match(named, || self.categories_matching(named))
    }

    fn categories_matching(&self, named: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in named {
            let bare = n.rsplit('.').next().unwrap_or(n);
            for (t, cats) in &self.tables {
                let t_bare = t.rsplit('.').next().unwrap_or(t);
                let hit =
                    t == n || (!t.contains('.') && t == bare) || (!n.contains('.') && t_bare == n);
                if hit {
                    out.extend(cats.iter().cloned());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The statements of a simple query; `None` when it holds more than
    /// `max`. A one-statement text of a shape seen before is not scanned
    /// again (`key`: scratch for its shape).
    pub(super) fn statements(
        &self,
        text: &str,
        max: usize,
        key: &mut Vec<u8>,
    ) -> Option<Vec<Arc<Stmt>>> {
        if max >= 1 {
            if let Some((start, end)) = sql::shape(text, key) {
                let shaped = self.shaped(text, key);
                return Some(vec![stmt(text.get(start..end).unwrap_or(text), shaped)]);
            }
        }
        let (scanned, complete) = sql::scan_at_most(text, max);
        complete.then(|| {
            scanned
                .iter()
                .map(|s| {
                    let shaped = self.found(s.verb, &s.tables);
                    stmt(text.get(s.start..s.end).unwrap_or(text), shaped)
                })
                .collect()
        })
    }

    /// A prepared statement's text as one statement.
    pub(super) fn prepared(&self, text: &str, key: &mut Vec<u8>) -> Arc<Stmt> {
        if sql::shape(text, key).is_some() {
            return stmt(text, self.shaped(text, key));
        }
        // PostgreSQL refuses to prepare several statements: the cap only bounds the scan.
        let (scanned, _) = sql::scan_at_most(text, self.config.max_query_statements);
        let mut tables: Vec<String> = scanned.iter().flat_map(|s| s.tables.clone()).collect();
        tables.sort();
        tables.dedup();
        let verb = scanned.first().map_or(Verb::Other, |s| s.verb);
        stmt(text, self.found(verb, &tables))
    }

    /// What the scan finds in `text`, a statement of the shape `key`.
    fn shaped(&self, text: &str, key: &[u8]) -> Shaped {
        self.shapes.get_or_scan(key, || {
            let (scanned, _) = sql::scan_at_most(text, 1);
            match scanned.first() {
                Some(s) => self.found(s.verb, &s.tables),
                None => self.found(Verb::Other, &[]),
            }
        })
    }

    fn found(&self, verb: Verb, tables: &[String]) -> Shaped {
        Shaped {
            verb,
            names_table: !tables.is_empty(),
            categories: self.categories(tables),
        }
    }
}

fn stmt(text: &str, shaped: Shaped) -> Arc<Stmt> {
    Arc::new(Stmt {
        sql: truncate(text.trim(), STATEMENT_TEXT).into(),
        verb: shaped.verb,
        names_table: shaped.names_table,
        categories: shaped.categories,
    })
}

/// The connection's identity, shared by both pumps.
pub(super) struct Ctx {
    pub(super) shared: Arc<Shared>,
    pub(super) peer: SocketAddr,
    pub(super) user: String,
    pub(super) application: Option<String>,
    /// Backend pid from `BackendKeyData`, as the events' session id:
    /// written once, not per event.
    pub(super) session: OnceLock<String>,
    /// Set by the server pump at the first `ReadyForQuery`, before it
    /// reaches the client: until then the client may send only
    /// authentication messages.
    pub(super) logged_in: AtomicBool,
}

impl Ctx {
    pub(super) fn ip(&self) -> IpAddr {
        self.peer.ip()
    }

    pub(super) fn logged_in(&self) -> bool {
        self.logged_in.load(Ordering::Acquire)
    }

    pub(super) fn submit(&self, stmt: Option<&Stmt>, access: Access) {
        let who = Who {
            user: &self.user,
            ip: self.ip(),
            application: self.application.as_deref(),
            session: self.session.get().map(String::as_str),
        };
        let ev = access.event(&who, stmt, vakt_event::Timestamp::now());
        if let Err(e) = self.shared.sink.submit(ev) {
            tracing::error!(
                "pg proxy: an access by {} could not be recorded: {e}",
                self.user
            );
        }
    }

    /// Records a refused statement as a failed access, when it reads or changes data.
    pub(super) fn submit_refused(&self, stmt: &Stmt) {
        if let Some(action) = verb_action(stmt.verb) {
            self.submit(Some(stmt), Access::bare(action, Outcome::Failure));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize, len: usize) -> Vec<String> {
        (0..n).map(|i| format!("{i:0len$}")).collect()
    }

    #[test]
    fn a_statement_shape_is_scanned_once_and_the_memo_stays_bounded() {
        let memo = ShapeMemo::default();
        let found = || Shaped {
            verb: Verb::Read,
            names_table: true,
            categories: Arc::from(vec!["balance".to_string()]),
        };
        let mut scans = 0;
        let mut key = Vec::new();
        for aid in [7, 1234567, 42] {
            let text = format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid}");
            sql::shape(&text, &mut key).unwrap();
            let s = memo.get_or_scan(&key, || {
                scans += 1;
                found()
            });
            assert_eq!(
                (s.verb, &*s.categories),
                (Verb::Read, &["balance".to_string()][..])
            );
        }
        assert_eq!(scans, 1);
        for i in 0..SHAPES + 10 {
            memo.get_or_scan(format!("SELECT x{i}").as_bytes(), found);
        }
        assert!(memo.0.lock().unwrap().len() <= SHAPES);
    }

    #[test]
    fn the_category_memo_stays_bounded_in_entries_and_key_size() {
        let memo = CategoryMemo::default();
        let matched = || vec!["pii".to_string()];
        for i in 0..CATEGORY_SETS + 10 {
            assert_eq!(&*memo.get_or_match(&[format!("t{i}")], matched), ["pii"]);
        }
        assert!(memo.0.lock().unwrap().len() <= CATEGORY_SETS);
        // A list longer than the key cap is matched, not kept.
        let long = names(100, 64);
        assert_eq!(&*memo.get_or_match(&long, matched), ["pii"]);
        assert!(!memo.0.lock().unwrap().contains_key(&long));
        // A short list is matched once, then answered from the memo.
        let short = names(2, 8);
        let mut calls = 0;
        for _ in 0..3 {
            memo.get_or_match(&short, || {
                calls += 1;
                matched()
            });
        }
        assert_eq!(calls, 1);
    }
}
