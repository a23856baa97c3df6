//! `automation`: a human account working at a machine's steady cadence.
//!
//! For S1: a bot's lookups come at near-constant intervals, hour after
//! hour; people pause, read and get distracted.
//!
//! - State: per account, a moving mean and variance of the interval
//!   between its reads, the length of the current regular run and what
//!   was reported (about 24 bytes).
//! - Thresholds: 50 consecutive intervals (`min_requests`) with a
//!   coefficient of variation under 0.25 (`max_cv`) at a mean under 10 s
//!   (`max_mean_interval_s`) is `medium`; 500 such intervals
//!   (`high_requests`) is `high`. Declared services and batch jobs are
//!   machines by declaration and are left to `rate`. Each threshold is a
//!   parameter ([`PARAMS`]).
//! - Blind spots: in [`INFO`] (`vakt detectors` shows them).

use crate::detector::{actor_of, reference, Detector, DetectorInfo, Finding};
use crate::evidence;
use crate::params::{Param, Settings, Values};
use crate::state::Keyed;
use vakt_enrich::snapshot::{self, SnapshotError};
use vakt_enrich::Enriched;
use vakt_event::directory::AccountKind;
use vakt_event::{Event, Severity, Timestamp};

pub const INFO: DetectorInfo = DetectorInfo {
    id: "automation",
    title: "a human account working at a machine's steady cadence",
    incidents: &["S1"],
    remediation: super::CONTAIN_ACCOUNT,
    blind_spots: "a bot that randomises its pace like a person (S2's 30-120 s with jitter) has a human coefficient of variation; it is left to `volume_peers`, `foreign_network` and `account_sharing`",
    params: PARAMS,
    per_organization: false,
};

pub const PARAMS: &[Param] = &[
    Param::count(
        "min_requests",
        50.0,
        "consecutive requests at a steady cadence for `medium`",
    ),
    Param::count(
        "high_requests",
        500.0,
        "consecutive requests at a steady cadence for `high`",
    ),
    Param::number(
        "max_cv",
        0.25,
        "coefficient of variation of the intervals below which a cadence is steady",
    ),
    Param::number(
        "max_mean_interval_s",
        10.0,
        "seconds between requests, on average, below which a cadence counts",
    ),
];

struct Limits {
    run: u32,
    long_run: u32,
    max_cv: f64,
    max_mean_ms: f64,
}

impl Limits {
    fn new(v: &Values) -> Limits {
        let n = |name| v.get(name).min(u32::MAX as f64) as u32;
        Limits {
            run: n("min_requests"),
            long_run: n("high_requests"),
            max_cv: v.get("max_cv"),
            max_mean_ms: v.get("max_mean_interval_s") * 1000.0,
        }
    }
}

pub(crate) fn build(s: &Settings) -> Box<dyn Detector> {
    Box::new(Automation {
        limits: Limits::new(&s.global),
        accounts: Keyed::default(),
    })
}
/// Weight of the newest interval in the moving figures.
const ALPHA: f64 = 1.0 / 16.0;

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Cadence {
    last: Timestamp,
    mean: f32,
    var: f32,
    run: u32,
    run_start: Timestamp,
    reported: Option<Severity>,
}

pub struct Automation {
    limits: Limits,
    accounts: Keyed<Cadence>,
}

impl Detector for Automation {
    fn info(&self) -> &'static DetectorInfo {
        &INFO
    }

    fn observe(&mut self, ev: &Enriched, out: &mut Vec<Finding>) {
        let Event::Access(a) = ev.event else { return };
        if ev.kind() != AccountKind::Human || !a.action.reads_data() {
            return;
        }
        let now = a.timestamp;
        let lim = &self.limits;
        let c = self.accounts.touch(ev.actor, now, Cadence::default);
        if c.last.0 == 0 {
            c.last = now;
            c.run_start = now;
            return;
        }
        let gap = (now.0 - c.last.0).max(0) as f64;
        c.last = now;
        if c.mean == 0.0 {
            c.mean = gap as f32;
            return;
        }
        let mean = c.mean as f64;
        let d = gap - mean;
        let new_mean = mean + ALPHA * d;
        let new_var = (1.0 - ALPHA) * (c.var as f64 + ALPHA * d * d);
        c.mean = new_mean as f32;
        c.var = new_var as f32;
        let cv = new_var.sqrt() / new_mean.max(1.0);
        if cv < lim.max_cv && new_mean < lim.max_mean_ms {
            if c.run == 0 {
                c.run_start = now;
            }
            c.run += 1;
        } else {
            c.run = 0;
            c.reported = None;
            return;
        }
        let severity = match c.run {
            r if r >= lim.long_run => Severity::High,
            r if r >= lim.run => Severity::Medium,
            _ => return,
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
            first_seen: c.run_start,
            message: format!(
                "{} has read at a machine's steady pace for {} requests in a row: one every {:.1} s, varying by only {:.0}%; people pause",
                a.user,
                c.run,
                new_mean / 1000.0,
                cv * 100.0
            ),
            evidence: evidence! {
                "observed_regular_requests" => c.run,
                "observed_mean_interval_s" => (new_mean / 100.0).round() / 10.0,
                "observed_cv" => (cv * 1000.0).round() / 1000.0,
                "threshold_cv" => lim.max_cv,
                "threshold_requests" => lim.run,
                "event" => reference(ev),
            },
            customers: c.run as u64,
        });
    }

    fn evict(&mut self, horizon: Timestamp) {
        self.accounts.evict(horizon);
    }

    fn save(&self) -> Result<Vec<u8>, SnapshotError> {
        snapshot::save(&self.accounts)
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SnapshotError> {
        self.accounts = snapshot::load(state)?;
        Ok(())
    }

    fn tracked_keys(&self) -> usize {
        self.accounts.len()
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use vakt_event::time::SECOND;

    #[test]
    fn a_bot_with_a_steady_cadence_is_caught_after_fifty_requests() {
        let mut h = Harness::new("", None);
        let start = t0();
        for i in 0..2000i64 {
            // 2.5 s +-10%
            let jitter = ((i * 7919) % 500) - 250;
            h.lookup(
                start + i * 2500 + jitter,
                "p3.shop",
                "45.1.2.3",
                i as u64,
                false,
            );
        }
        let alerts = h.finish();
        let auto = Harness::rule(&alerts, "automation");
        assert!(!auto.is_empty());
        assert!(auto.iter().all(|a| a.id == auto[0].id));
        assert!(auto[0].timestamp.0 - start < 200 * SECOND);
        assert!(auto
            .iter()
            .any(|a| a.severity == vakt_event::Severity::High));
    }

    #[test]
    fn people_at_human_pace_and_declared_services_are_not_bots() {
        const DIR: &str = r#"
[[service]]
name = "svc-billing-sync"
max_rate_per_minute = 30
"#;
        let mut h = Harness::new(DIR, None);
        // S2's pace: every 30-120 s with jitter, for a working day.
        let mut t = t0();
        for i in 0..400u64 {
            t += 30 * SECOND + ((i * 7919) % 90) as i64 * SECOND;
            h.lookup(t, "r7.anna", "185.1.2.3", i, false);
        }
        // A person looking up customers in bursts.
        let mut t = t0();
        for i in 0..400u64 {
            t += if i % 5 == 0 {
                300 * SECOND
            } else {
                (2 + (i * 31) % 20) as i64 * SECOND
            };
            h.lookup(t, "st1.erik", "10.1.1.2", i, false);
        }
        // Billing sync: exactly every 3 s, declared.
        for i in 0..3000 {
            h.lookup(
                t0() + i * 3 * SECOND,
                "svc-billing-sync",
                "10.60.0.11",
                i as u64,
                false,
            );
        }
        assert!(Harness::rule(&h.finish(), "automation").is_empty());
    }
}
