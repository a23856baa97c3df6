//! The audit trail: what people did (an incident acknowledged, assigned,
//! noted or closed), who did it, when, through what (the console, the
//! API, the CLI), from where and why. Each record is a row of `audit`,
//! chained as an action like decisions and exceptions, so `vakt ledger
//! verify` fails when a record is changed or removed, and every
//! checkpoint signs the chain's head.
//!
//! Records are only ever added: nothing in vakt updates or deletes one.

use crate::ledger::Ledger;
use crate::{LedgerError, Result};
use rusqlite::params;
use serde::Serialize;
use vakt_event::Timestamp;

/// Created at open, like the other tables; old data directories get it then.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit(
    id TEXT PRIMARY KEY, at INTEGER NOT NULL, who TEXT NOT NULL, via TEXT NOT NULL, source TEXT,
    action TEXT NOT NULL, subject TEXT, reason TEXT, details TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_subject ON audit(subject, at);
";

const COLUMNS: &str = crate::actions::AUDIT.columns;

/// Longest text a person may write into a reason or a note.
pub const MAX_TEXT: usize = 4_000;

/// Who acted: a console user, an API token or a person at the CLI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Who {
    /// The console user, the token's name, or the CLI user.
    pub name: String,
    /// `console`, `api` or `cli`.
    pub via: String,
    /// The client address, or the host for the CLI.
    pub source: Option<String>,
}

impl Who {
    pub fn new(name: impl Into<String>, via: &str, source: Option<String>) -> Who {
        Who {
            name: name.into(),
            via: via.to_owned(),
            source,
        }
    }
}

/// One human action as recorded.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditRecord {
    /// `aud-1`, `aud-2`, ...
    pub id: String,
    pub at: Timestamp,
    pub who: String,
    pub via: String,
    pub source: Option<String>,
    /// What was done, as `thing.verb`: `incident.update`, `incident.note`.
    pub action: String,
    /// What it was done to: an incident id, a decision id.
    pub subject: Option<String>,
    /// Why, in the person's words.
    pub reason: Option<String>,
    /// What changed, field by field, as `{"field": [before, after]}`, and
    /// anything else the action carries (a note).
    pub details: serde_json::Value,
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<AuditRecord> {
    let details: String = r.get(8)?;
    Ok(AuditRecord {
        id: r.get(0)?,
        at: Timestamp(r.get(1)?),
        who: r.get(2)?,
        via: r.get(3)?,
        source: r.get(4)?,
        action: r.get(5)?,
        subject: r.get(6)?,
        reason: r.get(7)?,
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
    })
}

/// Refuses text a person wrote that is too long or holds control
/// characters other than line breaks and tabs (they would rewrite a
/// terminal or a log line when shown).
pub fn check_text(what: &str, text: &str) -> Result<()> {
    if text.len() > MAX_TEXT {
        return Err(LedgerError::Invalid(format!(
            "the {what} is {} bytes; write at most {MAX_TEXT}",
            text.len()
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(LedgerError::Invalid(format!(
            "the {what} holds control characters; write plain text"
        )));
    }
    Ok(())
}

/// A human action as [`Ledger::audited`] records it.
#[derive(Clone, Debug, PartialEq)]
pub struct Audit {
    /// `thing.verb`: `decision.add`, `user.delete`, `session.start`.
    pub action: &'static str,
    pub subject: Option<String>,
    pub reason: Option<String>,
    pub details: serde_json::Value,
}

impl Audit {
    pub fn new(action: &'static str, subject: impl Into<String>) -> Audit {
        Audit {
            action,
            subject: Some(subject.into()),
            reason: None,
            details: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Audit {
        self.reason = Some(reason.into());
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Audit {
        self.details = details;
        self
    }

    /// A decision added, extended or lifted: what it enforces, on whom,
    /// until when.
    pub fn decision(action: &'static str, d: &vakt_event::decision::Decision) -> Audit {
        Audit::new(action, &d.id)
            .reason(&d.reason)
            .details(serde_json::json!({
                "scope": d.scope, "value": d.value, "action": d.action, "expires": d.expires,
            }))
    }

    /// An exception added or revoked: what it suppresses, until when.
    pub fn exception(action: &'static str, e: &vakt_event::Exception) -> Audit {
        Audit::new(action, &e.id)
            .reason(&e.reason)
            .details(serde_json::json!({
                "actor": e.actor, "rule": e.rule, "destination": e.destination, "until": e.until,
            }))
    }
}

impl Ledger {
    /// Runs `f`, a change a person makes, and records the [`Audit`] it
    /// returns (none when it changed nothing, e.g. lifting a decision
    /// that is gone) in the same transaction: the change and its record
    /// commit together or not at all.
    pub fn audited<T>(
        &mut self,
        who: &Who,
        f: impl FnOnce(&mut Ledger) -> Result<(T, Option<Audit>)>,
    ) -> Result<T> {
        self.chained(|l| {
            let (out, audit) = f(l)?;
            if let Some(a) = audit {
                l.record_audit(
                    who,
                    a.action,
                    a.subject.as_deref(),
                    a.reason.as_deref(),
                    a.details,
                )?;
            }
            Ok(out)
        })
    }

    /// Records a human action and chains it. Inside [`Ledger::chained`]
    /// (as the change it describes is), both commit or neither does.
    pub fn record_audit(
        &mut self,
        who: &Who,
        action: &str,
        subject: Option<&str>,
        reason: Option<&str>,
        details: serde_json::Value,
    ) -> Result<AuditRecord> {
        check_text("name", &who.name)?;
        if let Some(r) = reason {
            check_text("reason", r)?;
        }
        self.chained(|l| {
            let r = l
                .conn
                .query_row("SELECT COALESCE(MAX(rowid), 0) + 1 FROM audit", [], |r| {
                    r.get::<_, i64>(0)
                });
            let record = AuditRecord {
                id: format!("aud-{}", l.db(r)?),
                at: Timestamp::now(),
                who: who.name.clone(),
                via: who.via.clone(),
                source: who.source.clone(),
                action: action.to_owned(),
                subject: subject.map(str::to_owned),
                reason: reason.map(str::to_owned),
                details,
            };
            let r = l.conn.execute(
                &format!(
                    "INSERT INTO audit({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    record.id,
                    record.at.0,
                    record.who,
                    record.via,
                    record.source,
                    record.action,
                    record.subject,
                    record.reason,
                    record.details.to_string()
                ],
            );
            l.db(r)?;
            l.record_put(&crate::actions::AUDIT, &record.id)?;
            Ok(record)
        })
    }

    /// The records about `subject` (all when `None`), oldest first, at
    /// most `limit` of the newest.
    pub fn audit_records(&self, subject: Option<&str>, limit: usize) -> Result<Vec<AuditRecord>> {
        self.audit_query(&AuditQuery {
            subject: subject.map(str::to_owned),
            limit,
            ..Default::default()
        })
    }

    /// The records a query asks for, oldest first, at most `limit` of the
    /// newest.
    pub fn audit_query(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        // `action` is `decision` (every decision action) or `decision.add`.
        let sql = format!(
            "SELECT * FROM (SELECT {COLUMNS} FROM audit
             WHERE (?1 IS NULL OR subject = ?1)
               AND (?2 IS NULL OR action = ?2 OR substr(action, 1, length(?2) + 1) = ?2 || '.')
               AND (?3 IS NULL OR who = ?3)
               AND (?4 IS NULL OR at >= ?4)
             ORDER BY at DESC, rowid DESC LIMIT ?5) ORDER BY at, id"
        );
        let r = self.conn.prepare(&sql).and_then(|mut s| {
            s.query_map(
                params![
                    q.subject,
                    q.action,
                    q.who,
                    q.since.map(|t| t.0),
                    q.limit.min(i64::MAX as usize) as i64
                ],
                row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        });
        let mut out = self.db(r)?;
        // `aud-10` sorts before `aud-9` as text; within one millisecond
        // the number tells the order.
        out.sort_by_key(|a| {
            (
                a.at,
                a.id.trim_start_matches("aud-").parse::<u64>().unwrap_or(0),
            )
        });
        Ok(out)
    }
}

/// Which audit records to read.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub subject: Option<String>,
    /// `decision` for every decision action, or one: `decision.add`.
    pub action: Option<String>,
    pub who: Option<String>,
    pub since: Option<Timestamp>,
    pub limit: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataDir;

    #[test]
    fn records_are_kept_in_order_and_read_by_subject() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir {
            path: tmp.path().to_owned(),
        };
        let mut l = Ledger::open(&dir).unwrap();
        let ana = Who::new("ana", "console", Some("127.0.0.1".into()));
        for i in 0..12 {
            let subject = if i % 2 == 0 { "inc-a" } else { "inc-b" };
            l.record_audit(
                &ana,
                "incident.note",
                Some(subject),
                None,
                serde_json::json!({ "note": format!("n{i}") }),
            )
            .unwrap();
        }
        let a = l.audit_records(Some("inc-a"), 100).unwrap();
        let notes: Vec<_> = a.iter().map(|r| r.details["note"].clone()).collect();
        assert_eq!(notes, ["n0", "n2", "n4", "n6", "n8", "n10"]);
        assert_eq!(a[0].who, "ana");
        assert_eq!(a[0].source.as_deref(), Some("127.0.0.1"));
        let newest = l.audit_records(None, 3).unwrap();
        let ids: Vec<_> = newest.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["aud-10", "aud-11", "aud-12"]);
    }

    #[test]
    fn text_with_control_characters_or_too_long_is_refused() {
        assert!(check_text("note", "two\nlines\tand a tab").is_ok());
        assert!(check_text("note", "bell\u{7}").is_err());
        assert!(check_text("note", "\u{1b}[2J").is_err());
        assert!(check_text("note", &"x".repeat(MAX_TEXT + 1)).is_err());
    }
}
