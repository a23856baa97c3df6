//! Recording: a statement and what its answer showed (key columns,
//! `DataRow`s, COPY rows, `CommandComplete`) become one access event.
//! Pure: the pumps feed an [`Acc`] and call [`record`] when a statement
//! ends; nothing here reads a socket or a clock.

use super::sql::Verb;
use super::wire::{self, Column};
use super::PgError;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use vakt_event::{AccessEvent, Action, Outcome, Timestamp};

/// Statement texts kept in events.
pub(super) const STATEMENT_TEXT: usize = 1024;

/// `s` cut to at most `max` bytes, at a character boundary.
pub(super) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A statement as the proxy records it.
#[derive(Debug)]
pub(super) struct Stmt {
    pub(super) sql: Arc<str>,
    pub(super) verb: Verb,
    pub(super) names_table: bool,
    pub(super) categories: Arc<[String]>,
}

/// The connection's identity, as every event of it carries.
pub(super) struct Who<'a> {
    pub(super) user: &'a str,
    pub(super) ip: IpAddr,
    pub(super) application: Option<&'a str>,
    /// Backend pid from `BackendKeyData`, once known.
    pub(super) session: Option<&'a str>,
}

/// What one statement did, before it is told whose it was.
#[derive(Debug, PartialEq)]
pub(super) struct Access {
    pub(super) action: Action,
    pub(super) outcome: Outcome,
    pub(super) customer_ids: Vec<String>,
    pub(super) records: u64,
}

impl Access {
    /// An access of no rows and no customers (a refusal, a failed login).
    pub(super) fn bare(action: Action, outcome: Outcome) -> Access {
        Access {
            action,
            outcome,
            customer_ids: Vec::new(),
            records: 0,
        }
    }

    pub(super) fn event(self, who: &Who, stmt: Option<&Stmt>, timestamp: Timestamp) -> AccessEvent {
        AccessEvent {
            timestamp,
            user: who.user.to_string(),
            organization: None,
            source_ip: Some(who.ip),
            user_agent: who.application.map(str::to_string),
            session_id: who.session.map(str::to_string),
            action: self.action,
            outcome: self.outcome,
            customer_ids: self.customer_ids,
            records: self.records,
            categories: stmt.map(|s| s.categories.to_vec()).unwrap_or_default(),
            db_statement: stmt.map(|s| s.sql.to_string()),
            ..Default::default()
        }
    }
}

/// The action of a statement that did not complete, by its verb.
pub(super) fn verb_action(v: Verb) -> Option<Action> {
    match v {
        Verb::Read => Some(Action::Lookup),
        Verb::CopyTo => Some(Action::Export),
        Verb::CopyFrom | Verb::Update => Some(Action::Update),
        Verb::Delete => Some(Action::Delete),
        Verb::Other => None,
    }
}

/// What the current statement's answer has shown so far.
#[derive(Default)]
pub(super) struct Acc {
    pub(super) rows: u64,
    pub(super) ids: HashSet<String>,
    pub(super) ids_capped: bool,
    pub(super) copy_out: bool,
    pub(super) copy_in: bool,
    pub(super) copy_rows: u64,
    /// Key columns of the rows now coming, once known.
    pub(super) keys: Vec<Column>,
    pub(super) keys_known: bool,
}

impl Acc {
    pub(super) fn reset(&mut self) {
        self.rows = 0;
        self.ids.clear();
        self.ids_capped = false;
        self.copy_out = false;
        self.copy_in = false;
        self.copy_rows = 0;
        self.keys.clear();
        self.keys_known = false;
    }

    /// The key columns of the rows now coming (from a `RowDescription`, or
    /// from the statement's earlier `Describe`).
    pub(super) fn describe(&mut self, keys: Vec<Column>) {
        self.keys = keys;
        self.keys_known = true;
    }

    /// One `DataRow`: counted, and its key values kept, at most `max_ids`
    /// distinct ones.
    pub(super) fn data_row(&mut self, body: &[u8], max_ids: usize) -> Result<(), PgError> {
        self.rows += 1;
        if self.keys.is_empty() {
            return Ok(());
        }
        let (ids, capped) = (&mut self.ids, &mut self.ids_capped);
        wire::data_row(body, &self.keys, |col, v| {
            let Some(id) = wire::key_text(col, v) else {
                return;
            };
            if ids.contains(id.as_ref()) {
                return;
            }
            if ids.len() >= max_ids {
                *capped = true;
                return;
            }
            ids.insert(id.into_owned());
        })
    }
}

/// A statement finished: `tag` from `CommandComplete`, `None` for a
/// suspended portal or a failure. `None` back when there is nothing to
/// record (no table named and no customer seen, or a statement that
/// neither reads nor changes rows). Takes the customers out of `acc`.
pub(super) fn record(
    stmt: Option<&Stmt>,
    tag: Option<&str>,
    outcome: Outcome,
    acc: &mut Acc,
) -> Option<Access> {
    let mut words = tag.unwrap_or("").split_ascii_whitespace();
    let command = words.next().unwrap_or("");
    let count = words.last().and_then(|n| n.parse::<u64>().ok());
    let verb = stmt.map_or(Verb::Other, |s| s.verb);
    let read_action = |rows: u64| {
        if rows > 1 {
            Action::Search
        } else {
            Action::Lookup
        }
    };
    let (action, records) = match (outcome, command) {
        (Outcome::Failure, _) | (_, "") => {
            // Failed, or a portal suspended after `rows` rows.
            let action = match verb_action(verb) {
                Some(Action::Lookup) if tag.is_none() && outcome == Outcome::Success => {
                    read_action(acc.rows)
                }
                Some(a) => a,
                None if !acc.ids.is_empty() => read_action(acc.rows),
                None => return None,
            };
            (action, acc.rows.max(acc.copy_rows))
        }
        (_, "SELECT" | "FETCH") => {
            let rows = count.unwrap_or(acc.rows);
            (read_action(rows), rows)
        }
        (_, "COPY") => {
            let rows = count.unwrap_or(acc.copy_rows);
            let export = acc.copy_out || (!acc.copy_in && verb == Verb::CopyTo);
            (
                if export {
                    Action::Export
                } else {
                    Action::Update
                },
                rows,
            )
        }
        (_, "INSERT" | "UPDATE" | "MERGE") => (Action::Update, count.unwrap_or(0)),
        (_, "DELETE") => (Action::Delete, count.unwrap_or(0)),
        _ if !acc.ids.is_empty() => (read_action(acc.rows), acc.rows),
        _ => return None,
    };
    if !stmt.is_some_and(|s| s.names_table) && acc.ids.is_empty() {
        return None; // SELECT 1, SELECT now(): no table, no customers
    }
    let mut customer_ids: Vec<String> = acc.ids.drain().collect();
    customer_ids.sort_unstable();
    Some(Access {
        action,
        outcome,
        customer_ids,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmt(sql: &str, verb: Verb, categories: &[&str]) -> Stmt {
        Stmt {
            sql: sql.into(),
            verb,
            names_table: !categories.is_empty(),
            categories: categories.iter().map(|c| c.to_string()).collect(),
        }
    }

    /// `customer_id` as the second column, in text format.
    fn key() -> Vec<Column> {
        vec![Column {
            index: 1,
            type_oid: 23,
            format: 0,
        }]
    }

    /// A `DataRow` body of text values.
    fn row(values: &[&str]) -> Vec<u8> {
        let mut b = (values.len() as i16).to_be_bytes().to_vec();
        for v in values {
            b.extend_from_slice(&(v.len() as i32).to_be_bytes());
            b.extend_from_slice(v.as_bytes());
        }
        b
    }

    fn answer(keys: Vec<Column>, rows: &[&[&str]]) -> Acc {
        let mut acc = Acc::default();
        acc.describe(keys);
        for r in rows {
            acc.data_row(&row(r), 100).unwrap();
        }
        acc
    }

    #[test]
    fn a_select_by_key_is_a_lookup_of_that_customer() {
        let s = stmt(
            "SELECT name, customer_id FROM customers WHERE customer_id = 7",
            Verb::Read,
            &["pii"],
        );
        let mut acc = answer(key(), &[&["Ann", "7"]]);
        let got = record(Some(&s), Some("SELECT 1"), Outcome::Success, &mut acc).unwrap();
        assert_eq!(
            got,
            Access {
                action: Action::Lookup,
                outcome: Outcome::Success,
                customer_ids: vec!["7".into()],
                records: 1,
            }
        );
    }

    #[test]
    fn a_select_returning_many_customers_is_a_search_of_each_once() {
        let s = stmt("SELECT * FROM customers", Verb::Read, &["pii"]);
        let mut acc = answer(key(), &[&["Bo", "9"], &["Ann", "7"], &["Ann", "7"]]);
        let got = record(Some(&s), Some("SELECT 3"), Outcome::Success, &mut acc).unwrap();
        assert_eq!(got.action, Action::Search);
        assert_eq!(got.customer_ids, vec!["7", "9"]);
        assert_eq!(got.records, 3);
        assert!(
            acc.ids.is_empty(),
            "the customers are taken out of the answer"
        );
    }

    #[test]
    fn customers_past_the_cap_are_counted_but_not_kept() {
        let mut acc = Acc::default();
        acc.describe(key());
        for id in ["1", "2", "3"] {
            acc.data_row(&row(&["x", id]), 2).unwrap();
        }
        assert!(acc.ids_capped);
        let s = stmt("SELECT * FROM customers", Verb::Read, &["pii"]);
        let got = record(Some(&s), Some("SELECT 3"), Outcome::Success, &mut acc).unwrap();
        assert_eq!((got.customer_ids.len(), got.records), (2, 3));
    }

    #[test]
    fn copy_to_is_an_export_of_its_rows() {
        let s = stmt("COPY customers TO STDOUT", Verb::CopyTo, &["pii"]);
        let mut acc = Acc {
            copy_out: true,
            copy_rows: 5,
            ..Acc::default()
        };
        let got = record(Some(&s), Some("COPY 5"), Outcome::Success, &mut acc).unwrap();
        assert_eq!((got.action, got.records), (Action::Export, 5));
        // COPY FROM is an update.
        let s = stmt("COPY customers FROM STDIN", Verb::CopyFrom, &["pii"]);
        let mut acc = Acc {
            copy_in: true,
            ..Acc::default()
        };
        let got = record(Some(&s), Some("COPY 2"), Outcome::Success, &mut acc).unwrap();
        assert_eq!((got.action, got.records), (Action::Update, 2));
    }

    #[test]
    fn updates_and_deletes_count_the_rows_they_changed() {
        let s = stmt("UPDATE customers SET x = 1", Verb::Update, &["pii"]);
        let got = record(
            Some(&s),
            Some("UPDATE 4"),
            Outcome::Success,
            &mut Acc::default(),
        );
        assert_eq!(
            got.map(|a| (a.action, a.records)),
            Some((Action::Update, 4))
        );
        let s = stmt("DELETE FROM customers", Verb::Delete, &["pii"]);
        let got = record(
            Some(&s),
            Some("DELETE 2"),
            Outcome::Success,
            &mut Acc::default(),
        );
        assert_eq!(
            got.map(|a| (a.action, a.records)),
            Some((Action::Delete, 2))
        );
    }

    #[test]
    fn a_failed_statement_is_a_failure_of_its_verb_without_customers() {
        let s = stmt("SELECT * FROM customers WHERE nope", Verb::Read, &["pii"]);
        let got = record(Some(&s), None, Outcome::Failure, &mut Acc::default()).unwrap();
        assert_eq!(got, Access::bare(Action::Lookup, Outcome::Failure));
        let s = stmt("DELETE FROM customers", Verb::Delete, &["pii"]);
        let got = record(Some(&s), None, Outcome::Failure, &mut Acc::default()).unwrap();
        assert_eq!(got.action, Action::Delete);
    }

    #[test]
    fn a_statement_naming_no_table_and_no_customer_is_not_recorded() {
        let s = stmt("SELECT 1", Verb::Read, &[]);
        assert_eq!(
            record(
                Some(&s),
                Some("SELECT 1"),
                Outcome::Success,
                &mut Acc::default()
            ),
            None
        );
        let s = stmt("SET x = 1", Verb::Other, &[]);
        assert_eq!(
            record(Some(&s), None, Outcome::Failure, &mut Acc::default()),
            None
        );
        // A key column in the result is enough, even from no configured table.
        let s = stmt("SELECT customer_id FROM v", Verb::Read, &[]);
        let mut acc = answer(key(), &[&["x", "3"]]);
        let got = record(Some(&s), Some("SELECT 1"), Outcome::Success, &mut acc).unwrap();
        assert_eq!(got.customer_ids, vec!["3"]);
    }

    #[test]
    fn a_suspended_portal_records_the_rows_read_so_far() {
        let s = stmt("SELECT * FROM customers", Verb::Read, &["pii"]);
        let mut acc = answer(key(), &[&["a", "1"], &["b", "2"]]);
        let got = record(Some(&s), None, Outcome::Success, &mut acc).unwrap();
        assert_eq!((got.action, got.records), (Action::Search, 2));
    }

    #[test]
    fn the_event_names_who_what_and_the_statement() {
        let s = stmt("SELECT * FROM customers", Verb::Read, &["pii"]);
        let who = Who {
            user: "app",
            ip: "10.0.0.5".parse().unwrap(),
            application: Some("psql"),
            session: Some("4242"),
        };
        let access = Access {
            customer_ids: vec!["7".into()],
            records: 1,
            ..Access::bare(Action::Lookup, Outcome::Success)
        };
        let ev = access.event(&who, Some(&s), Timestamp(5));
        assert_eq!(ev.user, "app");
        assert_eq!(ev.source_ip, Some(who.ip));
        assert_eq!(ev.user_agent.as_deref(), Some("psql"));
        assert_eq!(ev.session_id.as_deref(), Some("4242"));
        assert_eq!(ev.categories, vec!["pii"]);
        assert_eq!(ev.db_statement.as_deref(), Some("SELECT * FROM customers"));
        assert_eq!((ev.customer_ids, ev.records), (vec!["7".to_string()], 1));
        let unknown_pid = Who {
            session: None,
            ..who
        };
        let ev =
            Access::bare(Action::Login, Outcome::Failure).event(&unknown_pid, None, Timestamp(5));
        assert_eq!((ev.session_id, ev.db_statement), (None, None));
    }
}
