//! What the nodes of one PostgreSQL store share beyond the entries: the
//! decisions in force, so that a block made on one node is enforced by
//! the proxies of every other.
//!
//! A ledger whose entries are in PostgreSQL ([`crate::ledger::use_postgres`])
//! writes each decision to its own data directory (chained, as every
//! action) and to `vakt.decisions`, and says so on the `vakt_decisions`
//! channel (`NOTIFY`). Its list of decisions in force is read from
//! `vakt.decisions`: every node's. A guard waits on the channel
//! ([`Shared::wait_for_decisions`]) instead of only re-reading on a timer,
//! so a decision reaches every proxy in milliseconds; the timer stays as
//! the fallback for a lost connection.
//!
//! A decision made inside a batch (a policy acting on an alert) is
//! published in the batch's own PostgreSQL transaction, with its entries
//! and alert ([`crate::store::postgres::Rider`]), so no node sees a
//! decision before the alert that made it, and none is lost with a node
//! killed after it; one made by itself (the API, the CLI) at once.

use crate::store::postgres::{connect, from_text, pg, to_text, Conn};
use crate::Result;
use postgres::fallible_iterator::FallibleIterator;
use std::cell::{Cell, RefCell};
use std::time::Duration;
use vakt_event::decision::Decision;
use vakt_event::Timestamp;

/// Writes `change` to `vakt.decisions` and announces it, in `tx`; for a
/// deletion, whether the decision was there.
pub(crate) fn write_change(tx: &mut postgres::Transaction<'_>, change: &Change) -> Result<bool> {
    let n = match change {
        Change::Put(d) => tx
            .execute(
                "INSERT INTO vakt.decisions(id, scope, value, action, reason, created, expires) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id) DO UPDATE SET scope = excluded.scope, value = excluded.value, action = excluded.action,
                 reason = excluded.reason, created = excluded.created, expires = excluded.expires",
                &[
                    &to_text(&d.id),
                    &d.scope.as_str(),
                    &to_text(&d.value),
                    &d.action.as_str(),
                    &to_text(&d.reason),
                    &d.created.0,
                    &d.expires.0,
                ],
            )
            .map_err(pg("writing a decision"))?,
        Change::Delete(id) => tx
            .execute("DELETE FROM vakt.decisions WHERE id = $1", &[&to_text(id)])
            .map_err(pg("lifting a decision"))?,
    };
    tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])
        .map_err(pg("announcing a decision"))?;
    Ok(n > 0)
}

/// A change of decisions, as published.
#[derive(Debug, Clone)]
pub enum Change {
    Put(Decision),
    Delete(String),
}

/// The channel decisions are announced on. The announcement carries no
/// payload (a listener re-reads them all), so no decision id, however
/// long, can exceed NOTIFY's 8,000-byte limit and fail a commit.
pub const CHANNEL: &str = "vakt_decisions";

pub struct Shared {
    client: RefCell<Conn>,
    url: String,
    listening: Cell<bool>,
    /// Whether the connection listens for changes of shared rows.
    pub(crate) listening_records: Cell<bool>,
}

impl Shared {
    pub fn open(url: &str) -> Result<Shared> {
        Ok(Shared {
            client: RefCell::new(connect(url)?),
            url: url.to_owned(),
            listening: Cell::new(false),
            listening_records: Cell::new(false),
        })
    }

    /// The connection, made again when the last one was lost (a database
    /// restart, a network fault): a long-lived guard recovers by itself.
    pub(crate) fn client(&self) -> Result<std::cell::RefMut<'_, Conn>> {
        let mut c = self.client.borrow_mut();
        if c.is_closed() {
            *c = connect(&self.url)?;
            self.listening.set(false);
            self.listening_records.set(false);
        }
        Ok(c)
    }

    /// Publishes `change` in a transaction of its own; for a deletion,
    /// whether the decision was there.
    pub fn publish(&self, change: &Change) -> Result<bool> {
        self.client()?.with(|c| {
            let mut tx = c.transaction().map_err(pg("writing a decision"))?;
            let was = write_change(&mut tx, change)?;
            tx.commit().map_err(pg("writing a decision"))?;
            Ok(was)
        })
    }

    /// Every node's decisions in force at `at`, or all; rows that are no
    /// longer decisions (edited by hand) are left out with a warning.
    pub fn decisions(&self, at: Option<Timestamp>) -> Result<Vec<Decision>> {
        let at = at.map(|t| t.0);
        let rows = self
            .client()?
            .with(|c| {
                c.query(
                    "SELECT id, scope, value, action, reason, created, expires FROM vakt.decisions
                     WHERE $1::bigint IS NULL OR (created <= $1 AND expires > $1) ORDER BY created, id",
                    &[&at],
                )
            })
            .map_err(pg("reading the decisions"))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let id = from_text(r.get(0));
                Decision::stored(
                    id.clone(),
                    r.get(1),
                    &from_text(r.get(2)),
                    r.get(3),
                    from_text(r.get(4)),
                    Timestamp(r.get(5)),
                    Timestamp(r.get(6)),
                )
                .map_err(|e| {
                    tracing::warn!("decision {} in PostgreSQL is skipped: {e}; lift it with `vakt decisions delete` and add it again", id.escape_debug())
                })
                .ok()
            })
            .collect())
    }

    /// Waits up to `timeout` for a decision to be announced; whether one
    /// was. The first call starts listening.
    pub fn wait_for_decisions(&self, timeout: Duration) -> Result<bool> {
        self.wait_on(CHANNEL, &self.listening, timeout, "listening for decisions")
    }

    /// Waits up to `timeout` for an announcement on `channel`, listening
    /// first unless `listening` says so; whether one came.
    pub(crate) fn wait_on(
        &self,
        channel: &str,
        listening: &Cell<bool>,
        timeout: Duration,
        what: &str,
    ) -> Result<bool> {
        let mut c = self.client()?;
        let listen = !listening.get();
        let got = c.with(|c| -> Result<bool> {
            if listen {
                c.batch_execute(&format!("LISTEN {channel}"))
                    .map_err(pg(what))?;
            }
            let mut n = c.notifications();
            let got = n.timeout_iter(timeout).next().map_err(pg(what))?.is_some();
            // Several at once are one change.
            while n.iter().next().map_err(pg(what))?.is_some() {}
            Ok(got)
        })?;
        listening.set(true);
        Ok(got)
    }
}
