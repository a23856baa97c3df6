//! Detection quality: alerts against a simulation's labels.

use crate::{Labels, Scenario};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;
use vakt_event::time::human_duration;
use vakt_event::{Alert, Severity, Timestamp};

/// Alerts earlier than a scenario's start by more than this are not its detection.
const SLACK_MS: i64 = 60_000;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not an alert line: {message}")]
    Bad {
        path: String,
        line: u64,
        message: String,
    },
}

/// Reads alert JSON lines; a bad line is an error naming its line.
pub fn read_alerts(path: &Path) -> Result<Vec<Alert>, ReadError> {
    let io = |source| ReadError::Io {
        path: path.display().to_string(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(|e| ReadError::Bad {
            path: path.display().to_string(),
            line: i as u64 + 1,
            message: e.to_string(),
        })?);
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScenarioResult {
    pub id: Scenario,
    pub title: String,
    pub detected: bool,
    /// Event time from the scenario's start to the first alert on its actors.
    pub time_to_detect_ms: Option<i64>,
    pub rules: Vec<String>,
    pub max_severity: Option<Severity>,
    pub customers: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Evaluation {
    pub scenarios: Vec<ScenarioResult>,
    pub incidents: u64,
    /// Benign actors with an incident of medium severity or above.
    pub false_positive_actors: Vec<String>,
    pub false_positives_per_1000_actor_days: f64,
    pub benign_actor_days: u64,
    /// Benign actors with only low-severity incidents, and those incidents.
    pub low_noise_actors: u64,
    pub low_noise_incidents: u64,
}

/// One incident: the earliest line's time, when it first reached medium,
/// the highest severity.
struct Incident<'a> {
    first: Timestamp,
    first_medium: Option<Timestamp>,
    severity: Severity,
    alert: &'a Alert,
}

/// The members a group alert names (`distributed_scraping`): the account
/// or address that starts each member's name.
fn group_members(a: &Alert) -> impl Iterator<Item = &str> {
    a.evidence
        .get("member_reads")
        .and_then(|m| m.as_array())
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("client")?.as_str()?.split(' ').next())
}

pub fn evaluate(labels: &Labels, alerts: &[Alert]) -> Evaluation {
    let mut incidents: HashMap<&str, Incident> = HashMap::new();
    for a in alerts {
        let e = incidents.entry(a.id.as_str()).or_insert(Incident {
            first: a.timestamp,
            first_medium: None,
            severity: a.severity,
            alert: a,
        });
        e.first = e.first.min(a.timestamp);
        e.severity = e.severity.max(a.severity);
        if a.severity >= Severity::Medium {
            e.first_medium = Some(e.first_medium.map_or(a.timestamp, |t| t.min(a.timestamp)));
        }
    }
    let mut incidents: Vec<Incident> = incidents.into_values().collect();
    incidents.sort_by(|a, b| a.first.cmp(&b.first).then(a.alert.id.cmp(&b.alert.id)));

    let on_actor = |inc: &Incident, users: &[String], hosts: &[String], ips: &[String]| {
        let a = &inc.alert.actor;
        group_members(inc.alert).any(|m| users.iter().chain(ips).any(|u| u == m))
            || a.user.as_ref().is_some_and(|u| users.contains(u))
            || a.host.as_ref().is_some_and(|h| hosts.contains(h))
            // An address alone names the actor only when no account or host does.
            || (a.user.is_none() && a.host.is_none() && a.ip.is_some_and(|ip| ips.contains(&ip.to_string())))
    };
    let mut scenarios = Vec::new();
    let mut scenario_actors: HashSet<String> = HashSet::new();
    for l in &labels.scenarios {
        scenario_actors.extend(l.actors.users.iter().cloned());
        scenario_actors.extend(l.actors.hosts.iter().cloned());
        scenario_actors.extend(l.actors.ips.iter().cloned());
        let hits: Vec<&Incident> = incidents
            .iter()
            .filter(|i| on_actor(i, &l.actors.users, &l.actors.hosts, &l.actors.ips))
            .filter(|i| i.first.0 >= l.start.0 - SLACK_MS && i.alert.first_seen.0 <= l.end.0)
            .filter(|i| i.severity >= Severity::Medium)
            .collect();
        let first = hits.iter().filter_map(|i| i.first_medium).min();
        scenarios.push(ScenarioResult {
            id: l.id,
            title: l.title.clone(),
            detected: first.is_some(),
            time_to_detect_ms: first.map(|f| (f.0 - l.start.0).max(0)),
            rules: hits
                .iter()
                .map(|i| i.alert.rule.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            max_severity: hits.iter().map(|i| i.severity).max(),
            customers: l.customers,
        });
    }
    let mut fp: BTreeSet<String> = BTreeSet::new();
    let mut low: BTreeMap<String, u64> = BTreeMap::new();
    for i in &incidents {
        let label = i.alert.actor.label();
        let scenario = scenario_actors.contains(&label)
            || group_members(i.alert).any(|m| scenario_actors.contains(m))
            || i.alert.actor.ip.is_some_and(|ip| {
                scenario_actors.contains(&ip.to_string()) && i.alert.actor.user.is_none()
            });
        if scenario {
            continue;
        }
        if i.severity >= Severity::Medium {
            fp.insert(label);
        } else {
            *low.entry(label).or_default() += 1;
        }
    }
    let low_actors = low.keys().filter(|k| !fp.contains(*k)).count() as u64;
    Evaluation {
        scenarios,
        incidents: incidents.len() as u64,
        false_positives_per_1000_actor_days: if labels.benign.actor_days == 0 {
            0.0
        } else {
            fp.len() as f64 * 1000.0 / labels.benign.actor_days as f64
        },
        false_positive_actors: fp.into_iter().collect(),
        benign_actor_days: labels.benign.actor_days,
        low_noise_actors: low_actors,
        low_noise_incidents: low.values().sum(),
    }
}

impl Evaluation {
    pub fn render_table(&self) -> String {
        let mut s = String::new();
        s += &format!(
            "  {:<4} {:<62} {:<9} {:>14}  {}\n",
            "", "scenario", "detected", "time to detect", "rules"
        );
        for r in &self.scenarios {
            s += &format!(
                "  {:<4} {:<62} {:<9} {:>14}  {}\n",
                r.id.id(),
                r.title,
                if r.detected { "yes" } else { "MISSED" },
                r.time_to_detect_ms
                    .map(human_duration)
                    .unwrap_or_else(|| "-".into()),
                r.rules.join(", ")
            );
        }
        let detected = self.scenarios.iter().filter(|r| r.detected).count();
        s += &format!(
            "  detected {}/{}; false-positive actors (medium+): {} over {} benign actor-days = {:.2} per 1,000 actor-days",
            detected,
            self.scenarios.len(),
            self.false_positive_actors.len(),
            self.benign_actor_days,
            self.false_positives_per_1000_actor_days
        );
        if !self.false_positive_actors.is_empty() {
            let shown: Vec<&str> = self
                .false_positive_actors
                .iter()
                .take(8)
                .map(String::as_str)
                .collect();
            s += &format!(
                " ({}{})",
                shown.join(", "),
                if self.false_positive_actors.len() > 8 {
                    ", ..."
                } else {
                    ""
                }
            );
        }
        s += &format!(
            "\n  low-severity noise: {} incidents on {} benign actors\n",
            self.low_noise_incidents, self.low_noise_actors
        );
        s
    }
}
