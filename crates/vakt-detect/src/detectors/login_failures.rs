//! `login_failures`: many failed logins from one actor in minutes.
//!
//! For S1 (bots behind partner accounts): before a bot can look customers
//! up it needs working credentials, and credential stuffing or guessing
//! shows as a burst of failed logins from one address or against one
//! account. In web logs that name no account, the actor is the address.
//!
//! - State: per actor, failed and total logins in the current and the
//!   previous 10-minute window (16 bytes plus the key).
//! - Thresholds: at least 20 failures (`min_failures`) in a sliding 10
//!   minutes (`window_minutes`) with over 80% of logins failing
//!   (`min_failure_share`) is `medium`; 100 failures (`high_failures`) is
//!   `high`. A person who mistypes a password a few times stays far below.
//!   Each threshold is a parameter ([`PARAMS`]).
//! - Blind spots: in [`INFO`] (`vakt detectors` shows them).

use crate::detector::{actor_of, reference, Detector, DetectorInfo, Finding};
use crate::evidence;
use crate::params::{Param, Settings, Values};
use crate::state::Keyed;
use vakt_enrich::snapshot::{self, SnapshotError};
use vakt_enrich::Enriched;
use vakt_event::time::MINUTE;
use vakt_event::{Action, Event, Outcome, Severity, Timestamp};

pub const INFO: DetectorInfo = DetectorInfo {
    id: "login_failures",
    title: "many failed logins from one actor in minutes",
    incidents: &["S1"],
    remediation: super::CONTAIN_ACCOUNT,
    blind_spots: "a slow spray (a few attempts per address per hour from many addresses) stays under the per-actor threshold; successful logins with stolen credentials are for `foreign_network` and `account_sharing`",
    params: PARAMS,
    per_organization: false,
};

pub const PARAMS: &[Param] = &[
    Param::count(
        "window_minutes",
        10.0,
        "minutes of the sliding window failures are counted in",
    ),
    Param::count(
        "min_failures",
        20.0,
        "failed logins in the window for `medium`",
    ),
    Param::count(
        "high_failures",
        100.0,
        "failed logins in the window for `high`",
    ),
    Param::share(
        "min_failure_share",
        0.8,
        "share of the window's logins that must fail",
    ),
];

struct Limits {
    window: i64,
    min_failures: f64,
    high_failures: f64,
    min_failure_share: f64,
}

impl Limits {
    fn new(v: &Values) -> Limits {
        Limits {
            // Past a year the window no longer changes what is seen.
            window: v.get("window_minutes").min(60.0 * 24.0 * 366.0) as i64 * MINUTE,
            min_failures: v.get("min_failures"),
            high_failures: v.get("high_failures"),
            min_failure_share: v.get("min_failure_share"),
        }
    }
}

pub(crate) fn build(s: &Settings) -> Box<dyn Detector> {
    Box::new(LoginFailures {
        limits: Limits::new(&s.global),
        actors: Keyed::default(),
    })
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Counts {
    window: i64,
    failed: u32,
    total: u32,
    prev_failed: u32,
    prev_total: u32,
    first_failure: Timestamp,
    reported: Option<Severity>,
}

pub struct LoginFailures {
    limits: Limits,
    actors: Keyed<Counts>,
}

impl Detector for LoginFailures {
    fn info(&self) -> &'static DetectorInfo {
        &INFO
    }

    fn observe(&mut self, ev: &Enriched, out: &mut Vec<Finding>) {
        let Event::Access(a) = ev.event else { return };
        if a.action != Action::Login {
            return;
        }
        let now = a.timestamp;
        let lim = &self.limits;
        let c = self.actors.touch(ev.actor, now, Counts::default);
        let window = now.0.div_euclid(lim.window);
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
        let into = (now.0.rem_euclid(lim.window)) as f64 / lim.window as f64;
        let failed = c.failed as f64 + c.prev_failed as f64 * (1.0 - into);
        let total = c.total as f64 + c.prev_total as f64 * (1.0 - into);
        if failed < lim.min_failures || failed / total < lim.min_failure_share {
            return;
        }
        let severity = if failed >= lim.high_failures {
            Severity::High
        } else {
            Severity::Medium
        };
        if c.reported.is_some_and(|r| r >= severity) {
            return;
        }
        c.reported = Some(severity);
        out.push(Finding {
            rule: INFO.id,
            key: a.user.clone(),
            actor: actor_of(ev),
            organization: ev.organization.map(str::to_owned),
            severity,
            at: now,
            first_seen: c.first_failure,
            message: format!(
                "{} failed {:.0} of {:.0} logins in the last {} min; a person mistyping stays under {:.0}",
                a.user, failed, total, lim.window / MINUTE, lim.min_failures
            ),
            evidence: evidence! {
                "observed_failures_10min" => failed.round(),
                "observed_logins_10min" => total.round(),
                "threshold_failures" => lim.min_failures,
                "threshold_failure_share" => lim.min_failure_share,
                "event" => reference(ev),
            },
            customers: 0,
        });
    }

    fn evict(&mut self, horizon: Timestamp) {
        self.actors.evict(horizon);
    }

    fn save(&self) -> Result<Vec<u8>, SnapshotError> {
        snapshot::save(&self.actors)
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SnapshotError> {
        self.actors = snapshot::load(state)?;
        Ok(())
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
