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
    updated INTEGER NOT NULL, updated_by TEXT NOT NULL,
    aware_at INTEGER, aware_reason TEXT, delay_reason TEXT, notified TEXT
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
    /// Set once a person marks the incident a personal-data breach: the
    /// notification clocks run from its awareness time.
    pub breach: Option<Breach>,
}

/// A personal-data breach as marked: when the company became aware, why
/// that time (when it is not the moment of marking), why any notification
/// is late, and which notifications were made when.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Breach {
    pub aware_at: Timestamp,
    pub aware_reason: Option<String>,
    pub delay_reason: Option<String>,
    /// Notification steps done (`gdpr.art33`), and when.
    pub notified: std::collections::BTreeMap<String, Timestamp>,
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
    /// `true`: mark it a personal-data breach, aware now (or `aware_at`).
    pub breach: Option<bool>,
    /// When the company became aware (RFC 3339); needs `aware_reason`.
    pub aware_at: Option<String>,
    pub aware_reason: Option<String>,
    /// Why a notification is or will be late (GDPR Art. 33(1)).
    pub delay_reason: Option<String>,
    /// A notification step done (`gdpr.art33`), at `notified_at` or now.
    pub notified: Option<String>,
    pub notified_at: Option<String>,
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
    let notified: Option<String> = r.get(10)?;
    let breach = r.get::<_, Option<i64>>(7)?.map(|aware| {
        Ok::<_, rusqlite::Error>(Breach {
            aware_at: Timestamp(aware),
            aware_reason: r.get(8)?,
            delay_reason: r.get(9)?,
            notified: notified
                .as_deref()
                .and_then(|n| serde_json::from_str(n).ok())
                .unwrap_or_default(),
        })
    });
    Ok((
        r.get(0)?,
        Workflow {
            status: IncidentStatus::parse(&status).unwrap_or_default(),
            owner: r.get(2)?,
            classification: classification.as_deref().and_then(Classification::parse),
            reason: r.get(4)?,
            updated: Some(Timestamp(r.get(5)?)),
            updated_by: Some(r.get(6)?),
            breach: breach.transpose()?,
        },
    ))
}

fn time(what: &str, v: &str) -> Result<Timestamp> {
    Timestamp::parse(v).map_err(|e| {
        LedgerError::Invalid(format!(
            "`{what}` {v:?}: {e}; write RFC 3339, e.g. 2026-11-02T08:00:00Z"
        ))
    })
}

/// The breach part of a change applied to `next`, its diff in `diff`.
fn apply_breach(
    next: &mut Workflow,
    change: &IncidentChange,
    now: Timestamp,
    diff: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<()> {
    use serde_json::json;
    for (what, text) in [
        ("aware_reason", &change.aware_reason),
        ("delay_reason", &change.delay_reason),
    ] {
        if let Some(t) = text {
            check_text(what, t)?;
        }
    }
    match change.breach {
        Some(false) => return Err(LedgerError::Invalid(
            "a breach marking stays on record; correct `aware_at` with an `aware_reason` instead"
                .into(),
        )),
        Some(true) if next.breach.is_none() => {
            next.breach = Some(Breach {
                aware_at: now,
                ..Default::default()
            });
            diff.insert("breach".into(), json!([false, true]));
        }
        _ => {}
    }
    let touches = change.aware_at.is_some()
        || change.aware_reason.is_some()
        || change.delay_reason.is_some()
        || change.notified.is_some()
        || change.notified_at.is_some();
    let Some(b) = next.breach.as_mut() else {
        if touches {
            return Err(LedgerError::Invalid(
                "mark the incident a breach first (`\"breach\": true`)".into(),
            ));
        }
        return Ok(());
    };
    if let Some(at) = &change.aware_at {
        let at = time("aware_at", at)?;
        let why = change
            .aware_reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                LedgerError::Invalid(
                    "an awareness time other than now needs `aware_reason`: say how the company learned of it then".into(),
                )
            })?;
        if at.0 > now.0 {
            return Err(LedgerError::Invalid(
                "`aware_at` is in the future; the company became aware at or before now".into(),
            ));
        }
        if at != b.aware_at {
            diff.insert("aware_at".into(), json!([b.aware_at, at]));
            b.aware_at = at;
        }
        if Some(why) != b.aware_reason.as_deref() {
            diff.insert("aware_reason".into(), json!([b.aware_reason, why]));
            b.aware_reason = Some(why.to_owned());
        }
    } else if change.aware_reason.is_some() {
        return Err(LedgerError::Invalid(
            "`aware_reason` goes with `aware_at`".into(),
        ));
    }
    if let Some(why) = change.delay_reason.as_deref().map(str::trim) {
        let why = (!why.is_empty()).then(|| why.to_owned());
        if why != b.delay_reason {
            diff.insert("delay_reason".into(), json!([b.delay_reason, why]));
            b.delay_reason = why;
        }
    }
    match (&change.notified, &change.notified_at) {
        (Some(step), at) => {
            if !vakt_event::notification::is_step(step) {
                return Err(LedgerError::Invalid(format!(
                    "`notified` {step:?} is not a notification step; use gdpr.art33, telecom.authority, nis2.early_warning, nis2.notification or nis2.final_report"
                )));
            }
            let at = match at {
                Some(a) => time("notified_at", a)?,
                None => now,
            };
            if at.0 > now.0 || at.0 < b.aware_at.0 {
                return Err(LedgerError::Invalid(
                    "`notified_at` is between the awareness time and now".into(),
                ));
            }
            let before = b.notified.insert(step.clone(), at);
            if before != Some(at) {
                diff.insert(format!("notified.{step}"), json!([before, at]));
            }
        }
        (None, Some(_)) => {
            return Err(LedgerError::Invalid(
                "`notified_at` goes with `notified` (the step)".into(),
            ))
        }
        (None, None) => {}
    }
    Ok(())
}

/// The change applied to `now` at the time `at`: the new fields and, per
/// changed field, `[before, after]`.
fn apply(
    now: &Workflow,
    change: &IncidentChange,
    at: Timestamp,
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
    apply_breach(&mut next, change, at, &mut diff)?;
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
        if (change.exception.is_some() || !exceptions.is_empty())
            && change.classification != Some(Classification::FalsePositive)
        {
            return Err(LedgerError::Invalid(
                "an exception goes with classifying the incident as false_positive, in the same change".into(),
            ));
        }
        self.chained(|l| {
            // What is stored now, read under the write lock, wins over what
            // the caller read earlier: another process (the CLI beside
            // `vakt serve`) may have changed it since.
            let stored = l.incident_workflow(id)?;
            let current = stored.as_ref().unwrap_or(current);
            let (mut next, diff) = apply(current, change, Timestamp::now())?;
            if diff.is_empty() && change.note.is_none() && exceptions.is_empty() {
                return Ok((current.clone(), None));
            }
            if !diff.is_empty() {
                let at = Timestamp::now();
                next.updated = Some(at);
                next.updated_by = Some(who.name.clone());
                let b = next.breach.as_ref();
                let r = l.conn.execute(
                    &format!(
                        "INSERT INTO incident_states({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                         ON CONFLICT(id) DO UPDATE SET status = ?2, owner = ?3, classification = ?4,
                         reason = ?5, updated = ?6, updated_by = ?7, aware_at = ?8, aware_reason = ?9,
                         delay_reason = ?10, notified = ?11"
                    ),
                    params![
                        id,
                        next.status.as_str(),
                        next.owner,
                        next.classification.map(Classification::as_str),
                        next.reason,
                        at.0,
                        who.name,
                        b.map(|b| b.aware_at.0),
                        b.and_then(|b| b.aware_reason.clone()),
                        b.and_then(|b| b.delay_reason.clone()),
                        b.map(|b| serde_json::json!(b.notified).to_string()),
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
        assert!(apply(&now, &resolve, Timestamp(0)).is_err());
        let no_reason = IncidentChange {
            classification: Some(Classification::FalsePositive),
            ..resolve.clone()
        };
        assert!(apply(&now, &no_reason, Timestamp(0)).is_err());
        let ok = IncidentChange {
            reason: Some("the export was the quarterly audit".into()),
            ..no_reason
        };
        let (next, diff) = apply(&now, &ok, Timestamp(0)).unwrap();
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
        assert!(apply(&now, &reason_alone, Timestamp(0)).is_err());
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
        assert!(apply(&now, &same, Timestamp(0)).unwrap().1.is_empty());
        let clear = IncidentChange {
            owner: Some(String::new()),
            ..change()
        };
        let (next, diff) = apply(&now, &clear, Timestamp(0)).unwrap();
        assert_eq!(next.owner, None);
        assert_eq!(diff["owner"], serde_json::json!(["ana", null]));
    }

    #[test]
    fn a_breach_is_marked_aware_now_and_its_time_is_changed_only_with_a_reason() {
        let now = Timestamp::parse("2026-11-03T10:00:00Z").unwrap();
        let err = |w: &Workflow, c: IncidentChange| apply(w, &c, now).unwrap_err().to_string();
        let plain = Workflow::default();
        assert!(err(
            &plain,
            IncidentChange {
                aware_at: Some("2026-11-02T08:00:00Z".into()),
                ..change()
            }
        )
        .contains("mark the incident a breach first"));
        assert!(err(
            &plain,
            IncidentChange {
                breach: Some(false),
                ..change()
            }
        )
        .contains("stays on record"));
        let (marked, diff) = apply(
            &plain,
            &IncidentChange {
                breach: Some(true),
                ..change()
            },
            now,
        )
        .unwrap();
        assert_eq!(marked.breach.as_ref().unwrap().aware_at, now);
        assert!(diff.contains_key("breach"));
        let earlier = IncidentChange {
            aware_at: Some("2026-11-02T08:00:00Z".into()),
            ..change()
        };
        assert!(err(&marked, earlier.clone()).contains("needs `aware_reason`"));
        let (w, diff) = apply(
            &marked,
            &IncidentChange {
                aware_reason: Some("the partner's e-mail of that morning".into()),
                ..earlier
            },
            now,
        )
        .unwrap();
        let b = w.breach.as_ref().unwrap();
        assert_eq!(
            b.aware_at,
            Timestamp::parse("2026-11-02T08:00:00Z").unwrap()
        );
        assert_eq!(diff["aware_at"][1], serde_json::json!(b.aware_at));
        assert!(err(
            &w,
            IncidentChange {
                aware_at: Some("2026-11-04T00:00:00Z".into()),
                aware_reason: Some("x".into()),
                ..change()
            }
        )
        .contains("in the future"));
        assert!(err(
            &w,
            IncidentChange {
                notified: Some("gdpr.art99".into()),
                ..change()
            }
        )
        .contains("not a notification step"));
        let (w, diff) = apply(
            &w,
            &IncidentChange {
                notified: Some("gdpr.art33".into()),
                delay_reason: Some("waiting for the partner's logs".into()),
                ..change()
            },
            now,
        )
        .unwrap();
        let b = w.breach.unwrap();
        assert_eq!(b.notified["gdpr.art33"], now);
        assert_eq!(
            b.delay_reason.as_deref(),
            Some("waiting for the partner's logs")
        );
        assert!(diff.contains_key("notified.gdpr.art33") && diff.contains_key("delay_reason"));
    }
}
