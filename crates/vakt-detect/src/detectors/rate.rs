//! `rate`: an account reading customers far faster than it and its peers do.
//!
//! For S1 (a bot behind a partner account): automated lookups show first
//! as a rate no person reaches, long before a telemarketer calls anyone.
//!
//! - State: per account, a sliding-hour counter, its busiest completed hour
//!   (decaying), hours observed, and what was reported (about 32 bytes);
//!   per peer group, a bounded sample of busy hours of its accounts.
//! - Thresholds: lookups in the last hour above 4x the larger of the
//!   account's own busiest hour (once it has 20 active hours) and its peers'
//!   99th percentile hour, and at least 120; `high` at 3x that, `critical`
//!   at 10x. A declared service is held to its `max_rate_per_minute` over
//!   ten minutes instead; a batch job inside its hours is not judged here.
//! - Blind spots: a bot that keeps under 4x a busy peer (S2's human pace)
//!   is for `volume_peers`, `foreign_network` and `account_sharing`.

use crate::detector::{actor_of, reference, Detector, Finding};
use crate::evidence;
use crate::state::{Keyed, PeerSample, SlidingCount};
use vakt_enrich::Enriched;
use vakt_event::directory::AccountKind;
use vakt_event::time::{HOUR, MINUTE};
use vakt_event::{Event, Severity, Timestamp};

const MIN_PER_HOUR: f64 = 120.0;
const FACTOR: f64 = 4.0;
const OWN_HOURS: u16 = 20;

#[derive(Default)]
struct Account {
    hour: SlidingCount,
    ten_min: SlidingCount,
    /// Lookups in the current clock hour, and which hour it is.
    clock_hour: i32,
    in_hour: u32,
    busiest: f32,
    hours: u16,
    reported: Option<Severity>,
    since: Timestamp,
}

#[derive(Default)]
pub struct Rate {
    accounts: Keyed<Account>,
    peers: Keyed<PeerSample>,
}

impl Detector for Rate {
    fn id(&self) -> &'static str {
        "rate"
    }

    fn observe(&mut self, ev: &Enriched, out: &mut Vec<Finding>) {
        let Event::Access(a) = ev.event else { return };
        if !a.action.reads_data() {
            return;
        }
        let now = a.timestamp;
        let batch_in_window = ev.kind() == AccountKind::Batch && ev.in_hours == Some(true);
        if batch_in_window {
            return;
        }
        let n = a.customer_ids.len().max(1) as u32;
        let acc = self.accounts.touch(ev.actor, now, Account::default);
        let clock_hour = now.0.div_euclid(HOUR) as i32;
        if clock_hour != acc.clock_hour {
            if acc.in_hour > 0 {
                // A completed active hour: learn from it (own peak decays slowly).
                acc.busiest = (acc.busiest * 0.98).max(acc.in_hour as f32);
                acc.hours = acc.hours.saturating_add(1);
                let peers = self.peers.touch(ev.peer_group, now, PeerSample::default);
                peers.push(acc.in_hour);
            }
            acc.clock_hour = clock_hour;
            acc.in_hour = 0;
        }
        acc.in_hour += n;
        let last_hour = acc.hour.add(now, n, HOUR);
        let last_ten = acc.ten_min.add(now, n, 10 * MINUTE);

        let (observed, threshold, basis) = if let Some(svc) = ev.service {
            let limit = svc.max_rate_per_minute as f64 * 10.0;
            (
                last_ten,
                limit,
                format!("its declared maximum of {}/min", svc.max_rate_per_minute),
            )
        } else {
            if last_hour < MIN_PER_HOUR {
                return;
            }
            let peer = self
                .peers
                .get(ev.peer_group)
                .map(|p| p.quantile(0.99))
                .unwrap_or(0.0);
            let own = if acc.hours >= OWN_HOURS {
                acc.busiest as f64
            } else {
                0.0
            };
            let baseline = own.max(peer);
            let basis = format!(
                "its own busiest hour {own:.0} and its peers' 99th percentile hour {peer:.0}"
            );
            (last_hour, (FACTOR * baseline).max(MIN_PER_HOUR), basis)
        };
        if observed <= threshold {
            if observed < threshold / 2.0 {
                acc.reported = None;
            }
            return;
        }
        let severity = if observed > 10.0 * threshold {
            Severity::Critical
        } else if observed > 3.0 * threshold {
            Severity::High
        } else {
            Severity::Medium
        };
        if acc.reported.is_none() {
            acc.since = now;
        }
        if acc.reported.is_some_and(|r| r >= severity) {
            return;
        }
        acc.reported = Some(severity);
        let window = if ev.service.is_some() {
            "10 min"
        } else {
            "hour"
        };
        out.push(Finding {
            rule: "rate",
            key: a.user.clone(),
            actor: actor_of(ev),
            organization: ev.organization.map(str::to_owned),
            severity,
            at: now,
            first_seen: Timestamp(acc.since.0 - if ev.service.is_some() { 10 * MINUTE } else { HOUR }),
            message: format!(
                "{} made {:.0} lookups in the last {window}, {:.1}x the threshold of {:.0} set by {basis}",
                a.user,
                observed,
                observed / threshold,
                threshold
            ),
            evidence: evidence! {
                "observed" => observed.round(),
                "threshold" => threshold.round(),
                "window" => window,
                "basis" => basis,
                "source_ip" => a.source_ip.map(|i| i.to_string()),
                "event" => reference(ev),
            },
            customers: observed.round() as u64,
        });
    }

    fn evict(&mut self, horizon: Timestamp) {
        self.accounts.evict(horizon);
        self.peers.evict(horizon);
    }

    fn tracked_keys(&self) -> usize {
        self.accounts.len() + self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use vakt_event::time::{DAY, HOUR, SECOND};
    use vakt_event::Severity;

    const DIR: &str = r#"
[[organization]]
id = "partner-3"
kind = "partner"
networks = ["172.20.3.0/28"]

[[account]]
name = "p3.shop"
organization = "partner-3"
role = "sales"

[[account]]
name = "p3.other"
organization = "partner-3"
role = "sales"

[[service]]
name = "svc-billing-sync"
max_rate_per_minute = 30
"#;

    /// Two weeks of a shop: about 5 lookups an hour in shop hours.
    fn history(h: &mut Harness, user: &str) {
        for day in 0..14 {
            for hour in 10..18 {
                for k in 0..5 {
                    let t = t0() + day * DAY + hour * HOUR + k * 11 * 60 * SECOND;
                    h.lookup(
                        t,
                        user,
                        "172.20.3.2",
                        (day * 100 + hour * 7 + k) as u64,
                        false,
                    );
                }
            }
        }
    }

    #[test]
    fn a_bot_at_one_lookup_every_two_seconds_is_caught_in_minutes_as_one_incident() {
        let mut h = Harness::new(DIR, None);
        history(&mut h, "p3.shop");
        let start = t0() + 15 * DAY + 2 * HOUR;
        for i in 0..5400 {
            h.lookup(
                start + i * 2 * SECOND,
                "p3.shop",
                "45.1.2.3",
                500_000 + i as u64,
                false,
            );
        }
        let alerts = h.finish();
        let rate = Harness::rule(&alerts, "rate");
        assert!(!rate.is_empty());
        assert!(
            rate.iter().all(|a| a.id == rate[0].id),
            "one incident: {rate:#?}"
        );
        assert!(
            rate[0].timestamp.0 - start < 10 * 60 * SECOND,
            "detected after {} ms",
            rate[0].timestamp.0 - start
        );
        assert!(rate.iter().any(|a| a.severity >= Severity::High));
        assert!(
            rate[0].message.contains("lookups in the last hour"),
            "{}",
            rate[0].message
        );
    }

    #[test]
    fn a_declared_service_under_its_rate_and_a_busy_launch_day_are_not_alerts() {
        let mut h = Harness::new(DIR, None);
        // Billing sync: one update every 3 s all day (20/min, declared 30/min).
        for i in 0..28_800 {
            h.lookup(
                t0() + i * 3 * SECOND,
                "svc-billing-sync",
                "10.60.0.11",
                i as u64,
                false,
            );
        }
        history(&mut h, "p3.shop");
        history(&mut h, "p3.other");
        // Launch day: three times the usual pace.
        for k in 0..(8 * 15) {
            h.lookup(
                t0() + 15 * DAY + 10 * HOUR + k * 4 * 60 * SECOND,
                "p3.shop",
                "172.20.3.2",
                k as u64,
                false,
            );
        }
        assert!(Harness::rule(&h.finish(), "rate").is_empty());
    }

    #[test]
    fn a_service_above_its_declared_rate_is_an_alert() {
        let mut h = Harness::new(DIR, None);
        for i in 0..3000 {
            h.lookup(
                t0() + i * SECOND,
                "svc-billing-sync",
                "10.60.0.11",
                i as u64,
                false,
            );
        }
        let alerts = h.finish();
        let rate = Harness::rule(&alerts, "rate");
        assert!(!rate.is_empty());
        assert!(
            rate[0].message.contains("declared maximum of 30/min"),
            "{}",
            rate[0].message
        );
    }
}
