//! `login_failures`: many failed logins from one actor in minutes.
//!
//! For S1 (bots behind partner accounts): before a bot can look customers
//! up it needs working credentials, and credential stuffing or guessing
//! shows as a burst of failed logins from one address or against one
//! account. In web logs that name no account, the actor is the address.
//!
//! - State: per actor, failed and total logins in the current and the
//!   previous 10-minute window (16 bytes plus the key).
//! - Thresholds: at least 20 failures in a sliding 10 minutes with over
//!   80% of logins failing is `medium`; 100 failures is `high`. A person
//!   who mistypes a password a few times stays far below.
//! - Blind spots: a slow spray (a few attempts per address per hour from
//!   many addresses) stays under the per-actor threshold; successful
//!   logins with stolen credentials are for `foreign_network` and
//!   `account_sharing`.

use crate::detector::{actor_of, reference, Detector, Finding};
use crate::evidence;
use crate::state::Keyed;
use vakt_enrich::Enriched;
use vakt_event::time::MINUTE;
use vakt_event::{Action, Event, Outcome, Severity, Timestamp};

const WINDOW: i64 = 10 * MINUTE;
const MIN_FAILURES: f64 = 20.0;
const HIGH_FAILURES: f64 = 100.0;
const MIN_FAILURE_SHARE: f64 = 0.8;

#[derive(Default)]
struct Counts {
    window: i64,
    failed: u32,
    total: u32,
    prev_failed: u32,
    prev_total: u32,
    first_failure: Timestamp,
    reported: Option<Severity>,
}

#[derive(Default)]
pub struct LoginFailures {
    actors: Keyed<Counts>,
}

impl Detector for LoginFailures {
    fn id(&self) -> &'static str {
        "login_failures"
    }

    fn observe(&mut self, ev: &Enriched, out: &mut Vec<Finding>) {
        let Event::Access(a) = ev.event else { return };
        if a.action != Action::Login {
            return;
        }
        let now = a.timestamp;
        let c = self.actors.touch(ev.actor, now, Counts::default);
        let window = now.0.div_euclid(WINDOW);
        if window != c.window {
            let adjacent = window == c.window + 1;
            c.prev_failed = if adjacent { c.failed } else { 0 };
            c.prev_total = if adjacent { c.total } else { 0 };
            c.failed = 0;
            c.total = 0;
            c.window = window;
            if !adjacent {
                c.reported = None;
            }
        }
        c.total += 1;
        if a.outcome != Outcome::Failure {
            return;
        }
        if c.failed == 0 && c.prev_failed == 0 {
            c.first_failure = now;
        }
        c.failed += 1;
        // Sliding estimate: the previous window weighs by how much of it is still in range.
        let into = (now.0.rem_euclid(WINDOW)) as f64 / WINDOW as f64;
        let failed = c.failed as f64 + c.prev_failed as f64 * (1.0 - into);
        let total = c.total as f64 + c.prev_total as f64 * (1.0 - into);
        if failed < MIN_FAILURES || failed / total < MIN_FAILURE_SHARE {
            return;
        }
        let severity = if failed >= HIGH_FAILURES {
            Severity::High
        } else {
            Severity::Medium
        };
        if c.reported.is_some_and(|r| r >= severity) {
            return;
        }
        c.reported = Some(severity);
        out.push(Finding {
            rule: "login_failures",
            key: a.user.clone(),
            actor: actor_of(ev),
            organization: ev.organization.map(str::to_owned),
            severity,
            at: now,
            first_seen: c.first_failure,
            message: format!(
                "{} failed {:.0} of {:.0} logins in the last 10 min; a person mistyping stays under {MIN_FAILURES:.0}",
                a.user, failed, total
            ),
            evidence: evidence! {
                "observed_failures_10min" => failed.round(),
                "observed_logins_10min" => total.round(),
                "threshold_failures" => MIN_FAILURES,
                "threshold_failure_share" => MIN_FAILURE_SHARE,
                "event" => reference(ev),
            },
            customers: 0,
        });
    }

    fn evict(&mut self, horizon: Timestamp) {
        self.actors.evict(horizon);
    }

    fn tracked_keys(&self) -> usize {
        self.actors.len()
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use vakt_event::{AccessEvent, Action, Outcome, Severity};

    fn login(h: &mut Harness, at_ms: i64, user: &str, ok: bool) {
        h.push_access(AccessEvent {
            timestamp: vakt_event::Timestamp(ts("2026-11-02T13:20:00Z").0 + at_ms),
            user: user.into(),
            action: Action::Login,
            outcome: if ok {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            ..Default::default()
        });
    }

    #[test]
    fn a_burst_of_failed_logins_is_one_escalating_incident() {
        let mut h = Harness::new("", None);
        for i in 0..300 {
            login(&mut h, i * 1500, "203.0.113.50", i % 50 == 0);
        }
        let alerts = h.finish();
        let ours = Harness::rule(&alerts, "login_failures");
        assert!(ours.iter().all(|a| a.id == ours[0].id), "{ours:#?}");
        assert_eq!(ours[0].severity, Severity::Medium);
        // Detected after about 20 failures at one per 1.5 s: within a minute.
        assert!(ours[0].timestamp.0 - ts("2026-11-02T13:20:00Z").0 < 60_000);
        assert!(ours.iter().any(|a| a.severity == Severity::High));
    }

    #[test]
    fn people_mistyping_and_busy_offices_are_left_alone() {
        let mut h = Harness::new("", None);
        // An office NAT address: 400 logins a day, a few percent mistyped.
        for i in 0..400 {
            login(&mut h, i * 90_000, "198.51.100.7", i % 25 != 0);
        }
        // Someone who forgot their password: five tries, then a reset.
        for i in 0..5 {
            login(&mut h, i * 10_000, "r17.anna", false);
        }
        assert!(Harness::rule(&h.finish(), "login_failures").is_empty());
    }
}
