//! Warnings as a breach's notification clocks run: every `every` (a
//! minute by default) `vakt serve` looks at the incidents marked a
//! personal-data breach and, for each deadline not yet met, raises a
//! `notification_deadline` alert when the share of its time gone passes
//! one of `[notification] warn_at` (0.5, 0.75, 0.9) and when it runs out:
//! recorded in the ledger with the incident's actor (so it joins the
//! incident) and sent to the alert outlets. One alert per incident and
//! deadline, escalated at each later fraction; the level reached is read
//! back from the ledger, so a restart does not warn twice.
//!
//! These alerts do not pass the policies: a deadline is the company's,
//! not the actor's doing, and must not block anyone.

use crate::http::lock;
use crate::State;
use std::sync::Arc;
use std::time::Duration;
use vakt_event::notification::{Clock, RULE};
use vakt_event::{Actor, Alert, AlertStatus, Severity, Timestamp};
use vakt_ledger::incidents::Incident;
use vakt_ledger::Result;

/// Checks the clocks every `every` until `stop` resolves.
pub(crate) async fn run(
    state: Arc<State>,
    every: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = &mut stop => return,
        }
        let s = state.clone();
        match tokio::task::spawn_blocking(move || check(&s, Timestamp::now())).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("notification clocks not checked: {e}"),
            Err(e) => tracing::warn!("notification clocks not checked: {e}"),
        }
    }
}

/// How far a clock has run: the number of `warn_at` fractions passed,
/// one more once it ran out.
fn level(c: &Clock, warn_at: &[f64]) -> usize {
    let passed = warn_at.iter().filter(|f| c.used >= **f).count();
    passed + usize::from(c.overdue())
}

/// A stable id per incident and deadline (FNV-1a, as detectors' ids).
fn alert_id(incident: &str, step: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in incident.bytes().chain([0]).chain(step.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{RULE}-{:012x}", h & 0xffff_ffff_ffff)
}

/// The incident's actor as an alert names it, so the warning groups
/// with the incident's own alerts.
fn actor(inc: &Incident) -> Actor {
    match (&inc.account, inc.actor.parse()) {
        (Some(user), _) => Actor::user(user),
        (None, Ok(ip)) => Actor {
            ip: Some(ip),
            ..Default::default()
        },
        (None, Err(_)) => Actor {
            host: Some(inc.actor.clone()),
            ..Default::default()
        },
    }
}

/// Raises what is due at `now`; returns the alerts raised.
pub(crate) fn check(state: &State, now: Timestamp) -> Result<Vec<Alert>> {
    let warn_at = state
        .directory
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .warn_at();
    let breaches: Vec<Incident> = lock(&state.reader)
        .incidents(Timestamp(i64::MIN), Timestamp(i64::MAX))?
        .into_iter()
        .filter(|i| i.workflow.breach.is_some())
        .collect();
    let mut raised = Vec::new();
    for inc in &breaches {
        for c in crate::incidents::clocks_of(state, inc, now) {
            let reached = level(&c, &warn_at);
            if c.done.is_some() || reached == 0 {
                continue;
            }
            let id = alert_id(&inc.id, c.step);
            let prior: Option<Alert> = lock(&state.reader)
                .alert_row(&id)?
                .and_then(|row| serde_json::from_str(&row.line).ok());
            let before = prior
                .as_ref()
                .and_then(|a| a.evidence.get("level"))
                .and_then(|v| v.as_u64())
                .unwrap_or(0) as usize;
            if reached <= before {
                continue;
            }
            let severity = match reached {
                _ if c.overdue() => Severity::Critical,
                1 => Severity::Medium,
                2 => Severity::High,
                _ => Severity::Critical,
            };
            let left = if c.overdue() {
                format!("overdue by {} h", (-c.left_ms) / 3_600_000)
            } else {
                format!("{} h left", c.left_ms / 3_600_000)
            };
            let mut evidence = serde_json::Map::new();
            evidence.insert("incident".into(), inc.id.clone().into());
            evidence.insert("step".into(), c.step.into());
            evidence.insert("regime".into(), c.regime.as_str().into());
            evidence.insert("due".into(), c.due.to_string().into());
            evidence.insert(
                "observed_time_used".into(),
                ((c.used * 100.0).round() / 100.0).into(),
            );
            evidence.insert(
                "threshold_time_used".into(),
                if c.overdue() {
                    1.0
                } else {
                    warn_at
                        .iter()
                        .copied()
                        .rfind(|f| c.used >= *f)
                        .unwrap_or(1.0)
                }
                .into(),
            );
            evidence.insert("level".into(), reached.into());
            let alert = Alert {
                id,
                timestamp: now,
                rule: RULE.to_owned(),
                severity,
                actor: actor(inc),
                organization: inc.organization.clone(),
                // Just after the incident's first alert: within its window,
                // never before its first alert (which names the incident).
                first_seen: Timestamp(inc.first.0.saturating_add(1)),
                message: format!(
                    "{} for incident {} is due {}: {left}; mark it made on the incident once sent",
                    c.title, inc.id, c.due
                ),
                evidence,
                customers: inc.customers,
                status: if prior.is_some() {
                    AlertStatus::Escalated
                } else {
                    AlertStatus::New
                },
                updates: prior.map_or(0, |p| p.updates + 1),
            };
            lock(&state.writer).record_alert(&alert)?;
            if let Some(d) = &state.deliverer {
                if let Err(e) = d.enqueue(&alert) {
                    tracing::warn!(
                        "notification warning {} not queued for delivery: {e}",
                        alert.id
                    );
                }
            }
            raised.push(alert);
        }
    }
    Ok(raised)
}
