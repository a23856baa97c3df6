//! `enumeration`: an account walking through customer ids in order.
//!
//! For S1: scrapers often iterate ids (`/customers/1200`, `/1201`, ...),
//! which no support or sales task does.
//!
//! - State: per account, the last customer number read, the length of the
//!   current near-sequential run and when it began (about 24 bytes).
//! - Thresholds: 30 consecutive reads (`min_run`) whose ids each differ
//!   from the previous by 1 to 3 (`max_step`, either direction) is
//!   `medium`; 300 (`high_run`) is `high`. Each threshold is a parameter
//!   ([`PARAMS`]).
//! - Blind spots: in [`INFO`] (`vakt detectors` shows them).

use crate::detector::{actor_of, reference, Detector, DetectorInfo, Finding};
use crate::evidence;
use crate::params::{Param, Settings, Values};
use crate::state::{id_number, Keyed};
use vakt_enrich::snapshot::{self, SnapshotError};
use vakt_enrich::Enriched;
use vakt_event::{Event, Severity, Timestamp};

pub const INFO: DetectorInfo = DetectorInfo {
    id: "enumeration",
    title: "an account walking through customer ids in order",
    incidents: &["S1"],
    remediation: super::CONTAIN_ACCOUNT,
    blind_spots: "random ids (caught by `rate` and `automation` when fast), non-numeric ids, and a walk spread over several accounts",
    params: PARAMS,
    per_organization: false,
};

pub const PARAMS: &[Param] = &[
    Param::count(
        "min_run",
        30.0,
        "consecutive near-sequential reads for `medium`",
    ),
    Param::count(
        "high_run",
        300.0,
        "consecutive near-sequential reads for `high`",
    ),
    Param::count(
        "max_step",
        3.0,
        "largest difference between consecutive customer numbers that still counts as a walk",
    ),
];

struct Limits {
    run: u32,
    long_run: u32,
    max_step: u64,
}

impl Limits {
    fn new(v: &Values) -> Limits {
        let n = |name| v.get(name).min(u32::MAX as f64) as u32;
        Limits {
            run: n("min_run"),
            long_run: n("high_run"),
            max_step: v.get("max_step") as u64,
        }
    }
}

pub(crate) fn build(s: &Settings) -> Box<dyn Detector> {
    Box::new(Enumeration {
        limits: Limits::new(&s.global),
        accounts: Keyed::default(),
    })
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Walk {
    last: u64,
    run: u32,
    since: Timestamp,
    first_id: u64,
    reported: Option<Severity>,
}

pub struct Enumeration {
    limits: Limits,
    accounts: Keyed<Walk>,
}

impl Detector for Enumeration {
    fn info(&self) -> &'static DetectorInfo {
        &INFO
    }

    fn observe(&mut self, ev: &Enriched, out: &mut Vec<Finding>) {
        let Event::Access(a) = ev.event else { return };
        if a.customer_ids.len() != 1 || !a.action.reads_data() {
            return;
        }
        let Some(id) = id_number(&a.customer_ids[0]) else {
            return;
        };
        let lim = &self.limits;
        let w = self.accounts.touch(ev.actor, a.timestamp, Walk::default);
        let step = id.abs_diff(w.last);
        if step == 0 {
            return;
        }
        if step <= lim.max_step {
            if w.run == 0 {
                w.since = a.timestamp;
                w.first_id = w.last;
            }
            w.run += 1;
        } else {
            w.run = 0;
            w.reported = None;
        }
        w.last = id;
        let severity = match w.run {
            r if r >= lim.long_run => Severity::High,
            r if r >= lim.run => Severity::Medium,
            _ => return,
        };
        if w.reported.is_some_and(|r| r >= severity) {
            return;
        }
        w.reported = Some(severity);
        out.push(Finding {
            rule: INFO.id,
            key: a.user.clone(),
            actor: actor_of(ev),
            organization: ev.organization.map(str::to_owned),
            severity,
            at: a.timestamp,
            first_seen: w.since,
            message: format!(
                "{} read {} customers in id order ({} to {}); no support or sales task walks the customer list",
                a.user,
                w.run + 1,
                w.first_id,
                id
            ),
            evidence: evidence! {
                "observed_sequential_reads" => w.run + 1,
                "threshold" => lim.run,
                "first_id" => w.first_id,
                "last_id" => id,
                "event" => reference(ev),
            },
            customers: w.run as u64 + 1,
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
    fn walking_ids_in_order_is_caught() {
        let mut h = Harness::new("", None);
        for i in 0..400u64 {
            h.lookup(
                t0() + i as i64 * 3 * SECOND,
                "203.0.113.9",
                "203.0.113.9",
                1200 + i,
                false,
            );
        }
        let alerts = h.finish();
        let e = Harness::rule(&alerts, "enumeration");
        assert!(!e.is_empty());
        assert!(e.iter().all(|a| a.id == e[0].id));
        assert!(e[0].message.contains("in id order"));
        assert!(e.iter().any(|a| a.severity == vakt_event::Severity::High));
    }

    #[test]
    fn popular_customers_and_rereads_are_not_a_walk() {
        let mut h = Harness::new("", None);
        // Popular customers are read again and again, and neighbours happen by chance.
        for i in 0..2000u64 {
            let c = (i * 2654435761) % 5000;
            h.lookup(
                t0() + i as i64 * 20 * SECOND,
                "cc.eva",
                "10.50.0.2",
                c,
                true,
            );
            h.lookup(
                t0() + i as i64 * 20 * SECOND + 1,
                "cc.eva",
                "10.50.0.2",
                c,
                true,
            );
        }
        assert!(Harness::rule(&h.finish(), "enumeration").is_empty());
    }
}
