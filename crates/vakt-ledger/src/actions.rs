//! The actions chain: every write to a table that people and policies
//! change (alerts, decisions, exceptions, API tokens, console users,
//! incident states, the audit trail, the pages' inventory) is also recorded
//! as an action: the table, `put` with the row as it now is or `delete`,
//! and the row's key, hashed into a chain of its own whose head every
//! checkpoint signs. `verify` recomputes each row from its last action.
//!
//! Actions are rare next to accesses, so each keeps its full 32-byte link
//! (a checkpoint's head can be looked up by seq) and none is added to the
//! append path of an access.

use crate::encode::{checkpoint_message, ActionFields};
use crate::keys::hex;
use crate::ledger::Ledger;
use crate::{LedgerError, Result};
use ed25519_dalek::{Signature, Verifier};
use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row};
use vakt_event::Timestamp;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS actions(
    seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, op TEXT NOT NULL, subject TEXT NOT NULL,
    payload TEXT NOT NULL, at INTEGER NOT NULL, link BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_subject ON actions(tbl, subject, seq);
";

/// A table whose rows are chained: its name and the columns an action's
/// payload is made of, its key first.
pub(crate) struct Chained {
    pub table: &'static str,
    pub columns: &'static str,
}

pub(crate) const ALERTS: Chained = Chained {
    table: "alerts",
    columns: "id, rule, actor, user, first_seen, detected, last, severity, line",
};
pub(crate) const DECISIONS: Chained = Chained {
    table: "decisions",
    columns: "id, scope, value, action, reason, created, expires",
};
pub(crate) const TOKENS: Chained = Chained {
    table: "tokens",
    columns: "name, role, hash, created",
};
/// Name, password hash, creation and role: what signing in, and what a
/// signed-in user may do, rest on.
pub(crate) const USERS: Chained = Chained {
    table: "users",
    columns: "name, hash, created, role",
};

/// Exceptions (suppressions): a revocation is one more `put`.
pub(crate) const EXCEPTIONS: Chained = Chained {
    table: "exceptions",
    columns: "id, actor, rule, destination, until, reason, created_by, created_at, revoked_at, revoked_by",
};

/// What people decided about an incident: status, owner, classification.
pub(crate) const INCIDENT_STATES: Chained = Chained {
    table: "incident_states",
    columns: "id, status, owner, classification, reason, updated, updated_by, aware_at, aware_reason, delay_reason, notified",
};

/// The audit trail: records are only added, so any `put` whose row is
/// changed or gone is tampering.
pub(crate) const AUDIT: Chained = Chained {
    table: "audit",
    columns: "id, at, who, via, source, action, subject, reason, details",
};

/// The payment pages' inventory: script versions, destinations, and the
/// headers of each page's last check.
pub(crate) const PAGE_SCRIPTS: Chained = Chained {
    table: "page_scripts",
    columns: "key, page, url, inline, sha384, bytes, loaded_by, first_seen, last_seen",
};
pub(crate) const PAGE_DESTINATIONS: Chained = Chained {
    table: "page_destinations",
    columns: "key, page, origin, kinds, initiator, first_seen, last_seen",
};
pub(crate) const PAGE_STATES: Chained = Chained {
    table: "page_states",
    columns: "page, final_url, csp, csp_report_only, sri, checked_at",
};

pub(crate) const CHAINED: [&Chained; 10] = [
    &ALERTS,
    &DECISIONS,
    &TOKENS,
    &USERS,
    &EXCEPTIONS,
    &INCIDENT_STATES,
    &AUDIT,
    &PAGE_SCRIPTS,
    &PAGE_DESTINATIONS,
    &PAGE_STATES,
];

impl Chained {
    pub(crate) fn key(&self) -> &'static str {
        self.columns.split(',').next().unwrap_or_default()
    }

    pub fn width(&self) -> usize {
        self.columns.split(',').count()
    }

    /// Every row, by key.
    pub fn select_all(&self) -> String {
        format!(
            "SELECT {} FROM {} ORDER BY {}",
            self.columns,
            self.table,
            self.key()
        )
    }

    pub(crate) fn select_one(&self) -> String {
        format!(
            "SELECT {} FROM {} WHERE {} = ?1",
            self.columns,
            self.table,
            self.key()
        )
    }
}

/// A row as an action's payload: its values as a JSON array, blobs as
/// `{"x": hex}`, so that a row is equal to its last recorded version
/// exactly when every value and type is.
pub(crate) fn payload(row: &Row, width: usize) -> rusqlite::Result<String> {
    let mut values = Vec::with_capacity(width);
    for i in 0..width {
        values.push(match row.get_ref(i)? {
            ValueRef::Null => serde_json::Value::Null,
            ValueRef::Integer(v) => v.into(),
            ValueRef::Real(v) => v.into(),
            ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
            ValueRef::Blob(b) => serde_json::json!({ "x": hex(b) }),
        });
    }
    Ok(serde_json::Value::Array(values).to_string())
}

/// A row's key as text (keys are text; anything else is shown as stored).
pub(crate) fn key_of(row: &Row) -> rusqlite::Result<String> {
    Ok(match row.get_ref(0)? {
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        other => format!("{other:?}"),
    })
}

/// `vakt_action_link(prev, table, op, subject, payload, at)`: the next
/// link, computed inside the INSERT so that reading the head and writing
/// after it are one statement, under one write lock, even when another
/// connection (the server's) records actions too.
pub(crate) fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "vakt_action_link",
        6,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let prev: [u8; 32] = ctx.get::<Vec<u8>>(0)?.try_into().map_err(|_| {
                rusqlite::Error::UserFunctionError(
                    "the previous action's link is not 32 bytes".into(),
                )
            })?;
            let (table, op, subject, payload) = (
                ctx.get::<String>(1)?,
                ctx.get::<String>(2)?,
                ctx.get::<String>(3)?,
                ctx.get::<String>(4)?,
            );
            let mut buf = Vec::new();
            let hash = ActionFields {
                table: &table,
                op: &op,
                subject: &subject,
                payload: &payload,
                at: ctx.get(5)?,
            }
            .link(&prev, &mut buf);
            Ok(hash.to_vec())
        },
    )
}

/// The last action's seq and link: `(0, zeros)` when there is none.
pub(crate) fn head(conn: &Connection) -> rusqlite::Result<(i64, [u8; 32])> {
    let last = conn
        .query_row(
            "SELECT seq, link FROM actions ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
        )
        .optional()?;
    Ok(match last {
        Some((seq, link)) => (seq, link.try_into().unwrap_or([0; 32])),
        None => (0, [0; 32]),
    })
}

impl Ledger {
    fn record_action(&mut self, table: &str, op: &str, subject: &str, payload: &str) -> Result<()> {
        let r = self
            .conn
            .prepare_cached(
                "INSERT INTO actions(seq, tbl, op, subject, payload, at, link)
                 SELECT n + 1, ?1, ?2, ?3, ?4, ?5, vakt_action_link(prev, ?1, ?2, ?3, ?4, ?5)
                 FROM (SELECT COALESCE(MAX(seq), 0) AS n,
                       COALESCE((SELECT link FROM actions ORDER BY seq DESC LIMIT 1), zeroblob(32)) AS prev FROM actions)",
            )
            .and_then(|mut s| s.execute(params![table, op, subject, payload, Timestamp::now().0]));
        self.db(r)?;
        self.actions_dirty = true;
        let published = (op == "put").then_some(payload);
        self.share_record(table, subject, published);
        Ok(())
    }

    /// Records the row of `c` keyed `key` as it now is.
    pub(crate) fn record_put(&mut self, c: &Chained, key: &str) -> Result<()> {
        let width = c.width();
        let r = self
            .conn
            .prepare_cached(&c.select_one())
            .and_then(|mut s| s.query_row([key], |r| payload(r, width)));
        let payload = self.db(r)?;
        self.record_action(c.table, "put", key, &payload)
    }

    /// Records that the row of `c` keyed `key` was deleted.
    pub(crate) fn record_delete(&mut self, c: &Chained, key: &str) -> Result<()> {
        self.record_action(c.table, "delete", key, "")
    }

    /// Runs `f` (a write to a chained table and its action). In the open
    /// batch of an appending ledger, the batch's checkpoint seals it; on a
    /// connection without one (`open_read`, as `vakt serve` writes
    /// decisions), `f` runs in a transaction of its own that re-signs the
    /// newest checkpoint with the new head before it commits.
    pub(crate) fn chained<T>(&mut self, f: impl FnOnce(&mut Ledger) -> Result<T>) -> Result<T> {
        if !self.conn.is_autocommit() {
            return f(self);
        }
        let r = self.conn.execute_batch("BEGIN IMMEDIATE");
        self.db(r)?;
        let out = f(self).and_then(|v| {
            if self.actions_dirty {
                self.seal_actions()?;
            }
            // Published before it commits here: the store is the truth
            // every node converges to (crate::shared_records).
            self.publish_pending_records()?;
            Ok(v)
        });
        if out.is_err() {
            self.records_pending.clear();
        }
        let r = self
            .conn
            .execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
        self.actions_dirty = false;
        self.db(r)?;
        out
    }

    /// Signs the newest checkpoint again, with the actions chain's head as
    /// it now is: how actions recorded between batches are sealed. Only a
    /// checkpoint whose signature holds is signed again, so a forged one is
    /// never vouched for.
    pub(crate) fn seal_actions(&mut self) -> Result<()> {
        type Cp = (i64, Vec<u8>, Vec<u8>, Option<i64>, Option<Vec<u8>>);
        let r = self
            .conn
            .query_row(
                "SELECT seq, hash, signature, actions, actions_head FROM checkpoints ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional();
        let newest: Option<Cp> = self.db(r)?;
        let (seq, hash) = match newest {
            None => (0, [0; 32]),
            Some((seq, hash, sig, n, head)) => {
                let key = self.signing_key()?.verifying_key();
                let hash: [u8; 32] = hash.try_into().unwrap_or([0; 32]);
                let head: Option<[u8; 32]> = head.and_then(|h| h.try_into().ok());
                let actions = n.zip(head);
                let message =
                    checkpoint_message(seq, &hash, actions.as_ref().map(|(n, h)| (*n, h)));
                let valid = <[u8; 64]>::try_from(&sig[..])
                    .is_ok_and(|s| key.verify(&message, &Signature::from_bytes(&s)).is_ok());
                if !valid {
                    return Err(LedgerError::Invalid(format!(
                        "the newest checkpoint (entry {seq}) has an invalid signature, so it is not signed again; run `vakt ledger verify` and restore the data directory from a backup"
                    )));
                }
                (seq, hash)
            }
        };
        self.sign_checkpoint(seq, &hash)
    }

    /// Records every row of the chained tables as it is, once, when a
    /// ledger written before the actions chain existed is first opened for
    /// writing, and seals them. What was changed before then cannot be
    /// told apart; from then on every change is chained.
    pub(crate) fn chain_existing_rows(&mut self) -> Result<()> {
        let started = "SELECT EXISTS(SELECT 1 FROM actions) OR EXISTS(SELECT 1 FROM checkpoints WHERE actions IS NOT NULL)";
        let r = self.conn.query_row(started, [], |r| r.get::<_, bool>(0));
        if self.db(r)? {
            return Ok(());
        }
        self.users_table()?;
        self.chained(|l| {
            // Checked again under the write lock: another process may have
            // done it meanwhile.
            let r = l.conn.query_row(started, [], |r| r.get::<_, bool>(0));
            if l.db(r)? {
                return Ok(());
            }
            for c in CHAINED {
                // Once per data directory: the keys are held, not streamed,
                // because each action is written on the same connection.
                let r = l
                    .conn
                    .prepare(&format!("SELECT {} FROM {} ORDER BY 1", c.key(), c.table))
                    .and_then(|mut s| {
                        s.query_map([], key_of)?
                            .collect::<rusqlite::Result<Vec<_>>>()
                    });
                for key in l.db(r)? {
                    l.record_put(c, &key)?;
                }
            }
            let r = l
                .conn
                .query_row("SELECT EXISTS(SELECT 1 FROM checkpoints)", [], |r| {
                    r.get::<_, bool>(0)
                });
            if l.db(r)? {
                // A v2 checkpoint from now on, even with nothing recorded.
                l.actions_dirty = true;
            }
            Ok(())
        })
    }
}
