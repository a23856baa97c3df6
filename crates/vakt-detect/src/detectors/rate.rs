//! `rate`: an account reading customers far faster than it and its peers do.
//!
//! For S1 (a bot behind a partner account): automated lookups show first
//! as a rate no person reaches, long before a telemarketer calls anyone.
//!
//! - State: per account, a sliding-hour counter, its busiest completed hour
//!   (decaying), hours observed, and what was reported (about 32 bytes);
//!   per peer group, a bounded sample of busy hours of its accounts.
//! - Thresholds: lookups in the last hour above 4x (`factor`) the larger
//!   of the account's own busiest hour (once it has 20 active hours,
//!   `own_hours`) and its peers' 99th percentile hour, and at least 120
//!   (`min_per_hour`); `high` at 3x that, `critical` at 10x. A declared
//!   service is held to its `max_rate_per_minute` over ten minutes
//!   instead; a batch job inside its hours is not judged here. Each
//!   threshold is a parameter ([`PARAMS`]), also per organisation.
//! - Blind spots: in [`INFO`] (`vakt detectors` shows them).

use crate::detector::{actor_of, reference, Detector, DetectorInfo, Finding};
use crate::evidence;
use crate::params::{Param, PerOrg, Settings, Values};
use crate::state::{Keyed, PeerSample, SlidingCount};
use vakt_enrich::snapshot::{self, SnapshotError};
use vakt_enrich::Enriched;
use vakt_event::directory::AccountKind;
use vakt_event::time::{HOUR, MINUTE};
use vakt_event::{Event, Severity, Timestamp};

pub const INFO: DetectorInfo = DetectorInfo {
    id: "rate",
    title: "an account reading customers far faster than it and its peers do",
    incidents: &["S1"],
    remediation: super::CONTAIN_ACCOUNT,
    blind_spots: "a bot that keeps under 4x a busy peer (S2's human pace) is for `volume_peers`, `foreign_network` and `account_sharing`",
    params: PARAMS,
    per_organization: true,
};

pub const PARAMS: &[Param] = &[
    Param::count(
        "min_per_hour",
        120.0,
        "lookups in the last hour below which an account is not judged",
    ),
    Param::number(
        "factor",
        4.0,
        "times the larger of the account's busiest hour and its peers' 99th percentile hour",
    ),
    Param::count(
        "own_hours",
        20.0,
        "active hours before the account's own busiest hour counts",
    ),
    Param::number("high_factor", 3.0, "times the threshold for `high`"),
    Param::number(
        "critical_factor",
        10.0,
        "times the threshold for `critical`",
    ),
];

struct Limits {
    min_per_hour: f64,
    factor: f64,
    own_hours: u16,
    high: f64,
    critical: f64,
}

impl Limits {
    fn new(v: &Values) -> Limits {
        Limits {
            min_per_hour: v.get("min_per_hour"),
            factor: v.get("factor"),
            own_hours: v.get("own_hours").min(u16::MAX as f64) as u16,
            high: v.get("high_factor"),
            critical: v.get("critical_factor"),
        }
    }
}

pub(crate) fn build(s: &Settings) -> Box<dyn Detector> {
    Box::new(Rate {
        limits: s.per_org(Limits::new),
        accounts: Keyed::default(),
        peers: Keyed::default(),
    })
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
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

/// What a threshold was set by.
enum Basis {
    /// A service's declared `max_rate_per_minute`.
    Declared(u32),
    /// The account's own busiest hour and its peers' 99th percentile hour.
    Learned { own: f64, peer: f64 },
}

pub struct Rate {
    limits: PerOrg<Limits>,
    accounts: Keyed<Account>,
    peers: Keyed<PeerSample>,
}

impl Detector for Rate {
    fn info(&self) -> &'static DetectorInfo {
        &INFO
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
        let lim = self.limits.get(ev.organization);
        // An address many people share is judged per client, and teaches
        // its peers a client's hour, not the whole office's.
        let shared = ev.address.filter(|s| s.clients() > 1);
        let clients = shared.map_or(1, |s| s.clients());
        let acc = self.accounts.touch(ev.actor, now, Account::default);
        let clock_hour = now.0.div_euclid(HOUR) as i32;
        if clock_hour != acc.clock_hour {
            if acc.in_hour > 0 {
                let per_client = acc.in_hour / clients;
                // A completed active hour: learn from it (own peak decays slowly).
                acc.busiest = (acc.busiest * 0.98).max(per_client as f32);
                acc.hours = acc.hours.saturating_add(1);
                let peers = self.peers.touch(ev.peer_group, now, PeerSample::default);
                peers.push(per_client);
            }
            acc.clock_hour = clock_hour;
            acc.in_hour = 0;
        }
        acc.in_hour += n;
        let last_hour = acc.hour.add(now, n, HOUR);
        let last_ten = acc.ten_min.add(now, n, 10 * MINUTE);

        // The basis is written out only for an alert: this runs per read.
        let (observed, threshold, basis) = if let Some(svc) = ev.service {
            let limit = svc.max_rate_per_minute as f64 * 10.0;
            (last_ten, limit, Basis::Declared(svc.max_rate_per_minute))
        } else {
            let last_hour = last_hour / clients as f64;
            if last_hour < lim.min_per_hour {
                return;
            }
            let peer = self
                .peers
                .get(ev.peer_group)
                .map(|p| p.quantile(0.99))
                .unwrap_or(0.0);
            let own = if acc.hours >= lim.own_hours {
                acc.busiest as f64
            } else {
                0.0
            };
            let baseline = own.max(peer);
            (
                last_hour,
                (lim.factor * baseline).max(lim.min_per_hour),
                Basis::Learned { own, peer },
            )
        };
        if observed <= threshold {
            if observed < threshold / 2.0 {
                acc.reported = None;
            }
            return;
        }
        let severity = if observed > lim.critical * threshold {
            Severity::Critical
        } else if observed > lim.high * threshold {
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
        let mut basis = match basis {
            Basis::Declared(per_minute) => format!("its declared maximum of {per_minute}/min"),
            Basis::Learned { own, peer } => format!(
                "its own busiest hour {own:.0} and its peers' 99th percentile hour {peer:.0}"
            ),
        };
        if let (Some(s), None) = (shared, ev.service) {
            basis += &format!(", judged per client: {}", s.describe());
        }
        let window = if ev.service.is_some() {
            "10 min"
        } else {
            "hour"
        };
        out.push(Finding {
            rule: INFO.id,
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

    fn save(&self) -> Result<Vec<u8>, SnapshotError> {
        snapshot::save(&(&self.accounts, &self.peers))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SnapshotError> {
        (self.accounts, self.peers) = snapshot::load(state)?;
        Ok(())
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

#[cfg(test)]
mod parameter_tests {
    use crate::testing::*;
    use vakt_event::time::{DAY, HOUR, SECOND};
    use vakt_event::{AccessEvent, Action, Timestamp};

    const DIR: &str = r#"
[[organization]]
id = "partner-3"
kind = "partner"

[[organization]]
id = "partner-4"
kind = "partner"

[[account]]
name = "p3.shop"
organization = "partner-3"
role = "sales"

[[account]]
name = "p4.shop"
organization = "partner-4"
role = "sales"
"#;

    /// Two weeks of 100 lookups an hour in shop hours, then an hour at 300.
    fn busy_then_triple(h: &mut Harness, user: &str, base: u64) {
        for day in 0..14 {
            for hour in 10..18 {
                for k in 0..100 {
                    let t = t0() + day * DAY + hour * HOUR + k * 30 * SECOND;
                    h.lookup(t, user, "172.20.3.2", base + k as u64, false);
                }
            }
        }
        for k in 0..300 {
            let t = t0() + 15 * DAY + 10 * HOUR + k * 12 * SECOND;
            h.lookup(t, user, "172.20.3.2", base + 1000 + k as u64, false);
        }
    }

    fn rate_actors(alerts: &[vakt_event::Alert]) -> Vec<String> {
        let mut v: Vec<String> = Harness::rule(alerts, "rate")
            .iter()
            .filter_map(|a| a.actor.user.clone())
            .collect();
        v.dedup();
        v
    }

    #[test]
    fn a_busy_hour_at_three_times_the_usual_is_an_alert_only_with_a_lower_factor() {
        let mut h = Harness::new(DIR, None);
        busy_then_triple(&mut h, "p3.shop", 0);
        assert!(rate_actors(&h.finish()).is_empty());

        let tuned = format!("{DIR}\n[detectors.rate]\nfactor = 2.0\n");
        let mut h = Harness::new(&tuned, None);
        busy_then_triple(&mut h, "p3.shop", 0);
        assert_eq!(rate_actors(&h.finish()), ["p3.shop"]);
    }

    #[test]
    fn an_organisations_own_factor_applies_to_its_accounts_only() {
        let tuned = format!("{DIR}\n[detectors.rate.organization.partner-3]\nfactor = 2\n");
        let mut h = Harness::new(&tuned, None);
        busy_then_triple(&mut h, "p3.shop", 0);
        busy_then_triple(&mut h, "p4.shop", 50_000);
        assert_eq!(rate_actors(&h.finish()), ["p3.shop"]);
    }

    /// One web client per address: the address is the actor.
    fn web(h: &mut Harness, t: i64, ip: &str, ua: &str, action: Action, customer: u64) {
        h.push_access(AccessEvent {
            timestamp: Timestamp(t),
            user: ip.into(),
            source_ip: ip.parse().ok(),
            user_agent: Some(ua.into()),
            action,
            customer_ids: vec![format!("C-{customer}")],
            records: 1,
            ..Default::default()
        });
    }

    #[test]
    fn an_office_nat_is_judged_per_client_but_one_client_rotating_agents_is_not() {
        let mut h = Harness::new("", None);
        // 60 people behind one address, each signing in and reading 20
        // customers an hour: 1,200 reads an hour from one address.
        for hour in 0..3i64 {
            for p in 0..60i64 {
                let start = t0() + hour * HOUR + p * 50 * SECOND;
                let ua = format!("Mozilla/5.0 browser {}", p % 6);
                web(&mut h, start, "198.51.100.1", &ua, Action::Login, 0);
                for k in 0..20 {
                    let c = (hour * 10_000 + p * 100 + k) as u64;
                    web(
                        &mut h,
                        start + (k + 1) * 2 * SECOND,
                        "198.51.100.1",
                        &ua,
                        Action::Lookup,
                        c,
                    );
                }
            }
        }
        // One scraper with 1,200 reads an hour and a new agent every read.
        for i in 0..3600i64 {
            let ua = format!("agent-{}", i % 50);
            web(
                &mut h,
                t0() + i * 3 * SECOND,
                "203.0.113.9",
                &ua,
                Action::Lookup,
                i as u64,
            );
        }
        let alerts = h.finish();
        let rate = Harness::rule(&alerts, "rate");
        assert!(
            rate.iter()
                .all(|a| a.actor.user.as_deref() != Some("198.51.100.1")),
            "{rate:?}"
        );
        assert!(rate
            .iter()
            .any(|a| a.actor.user.as_deref() == Some("203.0.113.9")));
    }
}
