//! One alert per incident: findings of the same rule and key merge into
//! one open incident, which is reported when it opens, again when its
//! severity rises, and a last time with its final figures when it goes
//! quiet or the input ends.

use crate::detector::Finding;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use vakt_enrich::snapshot::{self, SnapshotError};
use vakt_event::time::HOUR;
use vakt_event::{Alert, AlertStatus, Severity, Timestamp};

/// Findings further apart than this start a new incident.
pub const QUIET: i64 = 24 * HOUR;

/// An open incident in a snapshot. The alert is kept as its JSON line
/// (EVENTS.md): its flattened fields do not round-trip through a binary
/// format.
#[derive(Serialize, Deserialize)]
struct SavedIncident {
    rule: String,
    key: String,
    alert: String,
    last: Timestamp,
    dirty: bool,
}

struct Incident {
    alert: Alert,
    last: Timestamp,
    /// Figures changed since the last line written.
    dirty: bool,
}

#[derive(Default)]
pub struct Incidents {
    open: FxHashMap<(&'static str, String), Incident>,
    /// Incidents opened per rule.
    pub opened: std::collections::BTreeMap<&'static str, u64>,
}

impl Incidents {
    /// Merges a finding; returns the alert line to write, if any.
    pub fn merge(&mut self, f: Finding, emit: &mut dyn FnMut(Alert)) {
        let key = (f.rule, f.key);
        if let Some(inc) = self.open.get_mut(&key) {
            if f.at.0 - inc.last.0 <= QUIET {
                let a = &mut inc.alert;
                inc.last = inc.last.max(f.at);
                a.updates += 1;
                a.timestamp = f.at;
                a.message = f.message;
                a.evidence = f.evidence;
                a.customers = a.customers.max(f.customers);
                a.first_seen = a.first_seen.min(f.first_seen);
                if f.actor.ip.is_some() {
                    a.actor.ip = f.actor.ip;
                }
                if f.severity > a.severity {
                    a.severity = f.severity;
                    a.status = AlertStatus::Escalated;
                    inc.dirty = false;
                    emit(a.clone());
                } else {
                    inc.dirty = true;
                }
                return;
            }
            // Quiet for too long: the old incident is over.
            if let Some(old) = self.open.remove(&key) {
                Self::close(old, emit);
            }
        }
        *self.opened.entry(key.0).or_default() += 1;
        let alert = Alert {
            id: incident_id(key.0, &key.1, f.first_seen),
            timestamp: f.at,
            rule: key.0.to_owned(),
            severity: f.severity,
            actor: f.actor,
            organization: f.organization,
            first_seen: f.first_seen,
            message: f.message,
            evidence: f.evidence,
            customers: f.customers,
            status: AlertStatus::New,
            updates: 0,
        };
        emit(alert.clone());
        self.open.insert(
            key,
            Incident {
                alert,
                last: f.at,
                dirty: false,
            },
        );
    }

    fn close(inc: Incident, emit: &mut dyn FnMut(Alert)) {
        if inc.dirty {
            let mut a = inc.alert;
            a.status = AlertStatus::Update;
            emit(a);
        }
    }

    /// Closes incidents quiet since before `now - QUIET`.
    pub fn sweep(&mut self, now: Timestamp, emit: &mut dyn FnMut(Alert)) {
        let quiet: Vec<_> = self
            .open
            .iter()
            .filter(|(_, i)| now.0 - i.last.0 > QUIET)
            .map(|(k, _)| k.clone())
            .collect();
        let mut closing: Vec<Incident> = quiet
            .into_iter()
            .filter_map(|k| self.open.remove(&k))
            .collect();
        closing.sort_by(|a, b| a.alert.id.cmp(&b.alert.id));
        for inc in closing {
            Self::close(inc, emit);
        }
    }

    /// Closes every incident (end of input), in a stable order.
    pub fn finish(&mut self, emit: &mut dyn FnMut(Alert)) {
        let mut all: Vec<Incident> = self.open.drain().map(|(_, v)| v).collect();
        all.sort_by(|a, b| a.alert.id.cmp(&b.alert.id));
        for inc in all {
            Self::close(inc, emit);
        }
    }

    /// The open incidents and the counts, for a snapshot.
    pub fn save(&self) -> Result<Vec<u8>, SnapshotError> {
        let mut open = Vec::with_capacity(self.open.len());
        for ((rule, key), inc) in &self.open {
            open.push(SavedIncident {
                rule: (*rule).to_owned(),
                key: key.clone(),
                alert: serde_json::to_string(&inc.alert)
                    .map_err(|e| SnapshotError::Encode(e.to_string()))?,
                last: inc.last,
                dirty: inc.dirty,
            });
        }
        open.sort_by(|a, b| (&a.rule, &a.key).cmp(&(&b.rule, &b.key)));
        let opened: Vec<(&str, u64)> = self.opened.iter().map(|(r, n)| (*r, *n)).collect();
        snapshot::save(&(open, opened))
    }

    /// What [`Incidents::save`] saved; `rules` are the engine's rule ids.
    pub fn restore(state: &[u8], rules: &[&'static str]) -> Result<Incidents, SnapshotError> {
        let (open, opened): (Vec<SavedIncident>, Vec<(String, u64)>) = snapshot::load(state)?;
        let rule = |r: &str| {
            rules
                .iter()
                .find(|id| **id == r)
                .copied()
                .ok_or_else(|| SnapshotError::Mismatch(format!("no detector has rule {r}")))
        };
        let mut incidents = Incidents::default();
        for saved in open {
            let alert = serde_json::from_str(&saved.alert)
                .map_err(|e| SnapshotError::Decode(e.to_string()))?;
            let incident = Incident {
                alert,
                last: saved.last,
                dirty: saved.dirty,
            };
            incidents
                .open
                .insert((rule(&saved.rule)?, saved.key), incident);
        }
        for (r, n) in opened {
            incidents.opened.insert(rule(&r)?, n);
        }
        Ok(incidents)
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Highest severity currently open for a rule and key.
    pub fn severity(&self, rule: &'static str, key: &str) -> Option<Severity> {
        self.open
            .get(&(rule, key.to_owned()))
            .map(|i| i.alert.severity)
    }
}

/// A stable id: the same input gives the same ids on every run.
fn incident_id(rule: &str, key: &str, first_seen: Timestamp) -> String {
    // FNV-1a: tiny, stable across platforms and releases.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain(first_seen.0.to_le_bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{rule}-{:012x}", h & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vakt_event::Actor;

    fn finding(at: i64, sev: Severity, customers: u64) -> Finding {
        Finding {
            rule: "rate",
            key: "p3.bot".into(),
            actor: Actor::user("p3.bot"),
            organization: None,
            severity: sev,
            at: Timestamp(at),
            first_seen: Timestamp(0),
            message: format!("{customers} customers"),
            evidence: serde_json::Map::new(),
            customers,
        }
    }

    #[test]
    fn many_findings_make_one_incident_that_escalates_and_closes() {
        let mut inc = Incidents::default();
        let mut out = Vec::new();
        let mut emit = |a: Alert| out.push(a);
        for i in 0..30_000 {
            let sev = if i < 1000 {
                Severity::Medium
            } else {
                Severity::High
            };
            inc.merge(finding(i * 1000, sev, i as u64), &mut emit);
        }
        inc.finish(&mut emit);
        let statuses: Vec<_> = out.iter().map(|a| a.status).collect();
        assert_eq!(
            statuses,
            vec![
                AlertStatus::New,
                AlertStatus::Escalated,
                AlertStatus::Update
            ]
        );
        assert!(out.iter().all(|a| a.id == out[0].id));
        assert_eq!(out[2].customers, 29_999);
        assert_eq!(out[2].updates, 29_999);
    }

    #[test]
    fn a_quiet_gap_starts_a_new_incident() {
        let mut inc = Incidents::default();
        let mut out = Vec::new();
        let mut emit = |a: Alert| out.push(a);
        inc.merge(finding(0, Severity::Medium, 1), &mut emit);
        let mut later = finding(QUIET + 2 * HOUR, Severity::Medium, 1);
        later.first_seen = later.at;
        inc.merge(later, &mut emit);
        assert_eq!(out.len(), 2);
        assert_ne!(out[0].id, out[1].id);
        assert_eq!(inc.opened["rate"], 2);
    }
}
