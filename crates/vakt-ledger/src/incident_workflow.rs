//! What people decided about an incident: its status (new, acknowledged,
//! contained, resolved), its owner, its classification (true positive,
//! benign true positive, false positive) with a reason. One row of
//! `incident_states` per incident anyone has touched, chained as an
//! action; every change, and every note, is also an audit record about
//! the incident ([`crate::audit`]), which is the incident's history.
//!
//! An incident is an actor's alerts grouped by time
//! ([`crate::incidents`]), so its id is derived, not stored: `ACTOR/FIRST
//! ALERT ID`. When a new alert bridges two incidents of one actor into
//! one, the merged incident keeps the state of the one its id names, or
//! else the most recently changed state among its alerts' former
//! incidents ([`Ledger::incidents`] does the lookup).

use crate::audit::{check_text, AuditRecord, Who};
use crate::ledger::Ledger;
use crate::{LedgerError, Result};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use vakt_event::Timestamp;

/// Created at open, like the other tables; old data directories get it then.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS incident_states(
    id TEXT PRIMARY KEY, status TEXT NOT NULL, owner TEXT, classification TEXT, reason TEXT,
    updated INTEGER NOT NULL, updated_by TEXT NOT NULL
);
";

const COLUMNS: &str = crate::actions::INCIDENT_STATES.columns;

/// Where an incident stands.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Nobody has looked at it yet.
    #[default]
    New,
    /// Someone is on it.
    Acknowledged,
    /// The leak is stopped (a block, a revoked credential); the work goes on.
    Contained,
    /// Done, with a classification.
    Resolved,
}

impl IncidentStatus {
    pub const ALL: [IncidentStatus; 4] = [
        IncidentStatus::New,
        IncidentStatus::Acknowledged,
        IncidentStatus::Contained,
        IncidentStatus::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::New => "new",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::Contained => "contained",
            IncidentStatus::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<IncidentStatus> {
        IncidentStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// What the incident turned out to be.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    /// A real leak, or a real attempt.
    TruePositive,
    /// What the rule describes did happen, and it was allowed (a
    /// sanctioned export, a penetration test).
    BenignTruePositive,
    /// The rule was wrong about it.
    FalsePositive,
}

impl Classification {
    pub const ALL: [Classification; 3] = [
        Classification::TruePositive,
        Classification::BenignTruePositive,
        Classification::FalsePositive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Classification::TruePositive => "true_positive",
            Classification::BenignTruePositive => "benign_true_positive",
            Classification::FalsePositive => "false_positive",
        }
    }

    pub fn parse(s: &str) -> Option<Classification> {
        Classification::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// An incident's workflow fields as stored; an incident nobody touched is
/// `new` with no owner.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Workflow {
    pub status: IncidentStatus,
    pub owner: Option<String>,
    pub classification: Option<Classification>,
    /// Why it was classified so.
    pub reason: Option<String>,
    /// When a person last changed it, and who.
    pub updated: Option<Timestamp>,
    pub updated_by: Option<String>,
}

/// A change asked for: any of the fields, and a note. An empty `owner`
/// unassigns.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentChange {
    pub status: Option<IncidentStatus>,
    pub owner: Option<String>,
    pub classification: Option<Classification>,
    pub reason: Option<String>,
    pub note: Option<String>,
    /// With `false_positive`: also suppress the incident's actor for each
    /// of its rules, from now, so the same traffic raises nothing again.
    pub exception: Option<ExceptionAsk>,
}

/// How long the exceptions made on closing last: `for` (`30d`) or
/// `until` (RFC 3339); neither means until revoked.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionAsk {
    #[serde(rename = "for")]
    pub for_: Option<String>,
    pub until: Option<String>,
}

impl IncidentChange {
    fn is_empty(&self) -> bool {
        *self == IncidentChange::default()
    }
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<(String, Workflow)> {
    let status: String = r.get(1)?;
    let classification: Option<String> = r.get(3)?;
    Ok((
        r.get(0)?,
        Workflow {
            status: IncidentStatus::parse(&status).unwrap_or_default(),
            owner: r.get(2)?,
            classification: classification.as_deref().and_then(Classification::parse),
            reason: r.get(4)?,
            updated: Some(Timestamp(r.get(5)?)),
            updated_by: Some(r.get(6)?),
        },
    ))
}

/// The change applied to `now`: the new fields and, per changed field,
/// `[before, after]`.
fn apply(
    now: &Workflow,
    change: &IncidentChange,
) -> Result<(Workflow, serde_json::Map<String, serde_json::Value>)> {
    use serde_json::json;
    let mut next = now.clone();
    let mut diff = serde_json::Map::new();
    if let Some(status) = change.status {
        if status != now.status {
            diff.insert("status".into(), json!([now.status, status]));
            next.status = status;
        }
    }
    if let Some(owner) = &change.owner {
        let owner = owner.trim();
        check_text("owner", owner)?;
        if owner.len() > 256 || owner.contains('\n') {
            return Err(LedgerError::Invalid(
                "the owner is a name on one line of at most 256 bytes".into(),
            ));
        }
        let owner = (!owner.is_empty()).then(|| owner.to_owned());
        if owner != now.owner {
            diff.insert("owner".into(), json!([now.owner, owner]));
            next.owner = owner;
        }
    }
    if let Some(reason) = &change.reason {
        check_text("reason", reason)?;
    }
    if let Some(c) = change.classification {
        let reason = change
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                LedgerError::Invalid(format!(
                    "classifying an incident as {} needs a reason: say why",
                    c.as_str()
                ))
            })?;
        if Some(c) != now.classification || Some(reason) != now.reason.as_deref() {
            diff.insert("classification".into(), json!([now.classification, c]));
            diff.insert("reason".into(), json!([now.reason, reason]));
            next.classification = Some(c);
            next.reason = Some(reason.to_owned());
        }
    } else if change.reason.is_some() {
        return Err(LedgerError::Invalid(
            "a reason goes with a classification: send `classification` too (true_positive, benign_true_positive or false_positive)".into(),
        ));
    }
    if next.status == IncidentStatus::Resolved && next.classification.is_none() {
        return Err(LedgerError::Invalid(
            "resolving an incident needs a classification (true_positive, benign_true_positive or false_positive) and a reason".into(),
        ));
    }
    Ok((next, diff))
}

impl Ledger {
    /// Every stored workflow, by incident id.
    pub fn incident_workflows(&self) -> Result<std::collections::HashMap<String, Workflow>> {
        let r = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM incident_states"))
            .and_then(|mut s| s.query_map([], row)?.collect());
        self.db(r)
    }

    /// Applies a change to the incident `id` (which the caller has found)
    /// and records it, with the note, as one audit record; `exceptions`
    /// (made by the caller from `change.exception`, only with a
    /// `false_positive` classification) are added with an audit record
    /// each. All commit or none does. A change that changes nothing and
    /// has no note records nothing. Returns the workflow as it now is and
    /// the record, if any.
    pub fn update_incident(
        &mut self,
        id: &str,
        current: &Workflow,
        change: &IncidentChange,
        who: &Who,
        exceptions: &[vakt_event::Exception],
    ) -> Result<(Workflow, Option<AuditRecord>)> {
        if change.is_empty() {
            return Err(LedgerError::Invalid(
                "nothing to change: send any of status, owner, classification with reason, note"
                    .into(),
            ));
        }
        if let Some(note) = &change.note {
            check_text("note", note)?;
            if note.trim().is_empty() {
                return Err(LedgerError::Invalid("the note is empty".into()));
            }
        }
        let (mut next, diff) = apply(current, change)?;
        if (change.exception.is_some() || !exceptions.is_empty())
            && change.classification != Some(Classification::FalsePositive)
        {
            return Err(LedgerError::Invalid(
                "an exception goes with classifying the incident as false_positive, in the same change".into(),
            ));
        }
        if diff.is_empty() && change.note.is_none() && exceptions.is_empty() {
            return Ok((current.clone(), None));
        }
        self.chained(|l| {
            if !diff.is_empty() {
                let at = Timestamp::now();
                next.updated = Some(at);
                next.updated_by = Some(who.name.clone());
                let r = l.conn.execute(
                    &format!(
                        "INSERT INTO incident_states({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT(id) DO UPDATE SET status = ?2, owner = ?3, classification = ?4,
                         reason = ?5, updated = ?6, updated_by = ?7"
                    ),
                    params![
                        id,
                        next.status.as_str(),
                        next.owner,
                        next.classification.map(Classification::as_str),
                        next.reason,
                        at.0,
                        who.name
                    ],
                );
                l.db(r)?;
                l.record_put(&crate::actions::INCIDENT_STATES, id)?;
            }
            let mut details = serde_json::Map::new();
            if !diff.is_empty() {
                details.insert("changes".into(), serde_json::Value::Object(diff.clone()));
            }
            if let Some(note) = &change.note {
                details.insert("note".into(), note.trim().into());
            }
            let mut made = Vec::new();
            for e in exceptions {
                let e = l.add_exception(e)?;
                l.record_audit(
                    who,
                    "exception.add",
                    Some(&e.id),
                    Some(&e.reason),
                    serde_json::json!({
                        "incident": id, "actor": e.actor, "rule": e.rule, "until": e.until,
                    }),
                )?;
                made.push(e.id);
            }
            if !made.is_empty() {
                details.insert("exceptions".into(), made.into());
            }
            let action = if diff.is_empty() {
                "incident.note"
            } else {
                "incident.update"
            };
            let reason = diff
                .contains_key("classification")
                .then(|| next.reason.clone())
                .flatten();
            let record = l.record_audit(
                who,
                action,
                Some(id),
                reason.as_deref(),
                serde_json::Value::Object(details),
            )?;
            Ok((next, Some(record)))
        })
    }

    /// The stored workflow of one incident id, if anyone changed it.
    pub fn incident_workflow(&self, id: &str) -> Result<Option<Workflow>> {
        let r = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM incident_states WHERE id = ?1"
            ))
            .and_then(|mut s| s.query_row([id], row).optional());
        Ok(self.db(r)?.map(|(_, w)| w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change() -> IncidentChange {
        IncidentChange::default()
    }

    #[test]
    fn resolving_needs_a_classification_and_a_classification_needs_a_reason() {
        let now = Workflow::default();
        let resolve = IncidentChange {
            status: Some(IncidentStatus::Resolved),
            ..change()
        };
        assert!(apply(&now, &resolve).is_err());
        let no_reason = IncidentChange {
            classification: Some(Classification::FalsePositive),
            ..resolve.clone()
        };
        assert!(apply(&now, &no_reason).is_err());
        let ok = IncidentChange {
            reason: Some("the export was the quarterly audit".into()),
            ..no_reason
        };
        let (next, diff) = apply(&now, &ok).unwrap();
        assert_eq!(next.status, IncidentStatus::Resolved);
        assert_eq!(next.classification, Some(Classification::FalsePositive));
        assert_eq!(
            diff.keys().map(String::as_str).collect::<Vec<_>>(),
            ["classification", "reason", "status"]
        );
        let reason_alone = IncidentChange {
            reason: Some("because".into()),
            ..change()
        };
        assert!(apply(&now, &reason_alone).is_err());
    }

    #[test]
    fn an_empty_owner_unassigns_and_the_same_value_is_no_change() {
        let now = Workflow {
            owner: Some("ana".into()),
            ..Workflow::default()
        };
        let same = IncidentChange {
            owner: Some(" ana ".into()),
            ..change()
        };
        assert!(apply(&now, &same).unwrap().1.is_empty());
        let clear = IncidentChange {
            owner: Some(String::new()),
            ..change()
        };
        let (next, diff) = apply(&now, &clear).unwrap();
        assert_eq!(next.owner, None);
        assert_eq!(diff["owner"], serde_json::json!(["ana", null]));
    }
}
