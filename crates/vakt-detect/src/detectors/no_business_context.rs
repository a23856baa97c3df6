//! `no_business_context`: an account reading customers it has no case for,
//! more than it and its peers normally do.
//!
//! For S5 (Trend Micro): an employee read customer records outside any
//! support case and sold them. Support work is driven by cases; reads
//! without one happen (a caller hangs up, a colleague asks) but rarely.
//!
//! - State: per account, 14 days of daily counts of customers read without
//!   a case (about 70 bytes); per peer group, how often its reads carry a
//!   case, and a bounded sample of its account-days without a case.
//! - Thresholds: only in peer groups where most reads (over 50%,
//!   `case_share`, after 200 reads, `group_min_reads`) carry a case;
//!   today's reads without a case above 2x (`factor`) the larger of the
//!   account's own median day (after 5 days, `own_days`; the median, so
//!   that a ramp does not raise its own bar) and its peers' 95th
//!   percentile, and at least 10 (`min_reads`), is `medium`; 2x that
//!   (`high_factor`) is `high`. Judged as the day goes; until the peer
//!   group has 20 account-days (`peer_days`) or the account 5 days, it only
//!   learns. Each threshold is a parameter ([`PARAMS`]), also per
//!   organisation.
//! - Blind spots: in [`INFO`] (`vakt detectors` shows them).

use crate::detector::{actor_of, reference, Detector, DetectorInfo, Finding};
use crate::evidence;
use crate::params::{Param, PerOrg, Settings, Values};
use crate::state::{DailyCounts, Keyed, PeerSample};
use vakt_enrich::{BusinessContext, Enriched, Enricher};
use vakt_event::directory::AccountKind;
use vakt_event::time::DAY;
use vakt_event::{Event, Severity, Timestamp};

pub const INFO: DetectorInfo = DetectorInfo {
    id: "no_business_context",
    title: "an account reading customers it has no case for, more than it and its peers normally do",
    incidents: &["S5"],
    remediation: super::SUSPEND_ACCOUNT,
    blind_spots: "needs cases (a cases file, or `case.id` on events); an insider who opens a fake case for each read; peer groups that do not work with cases (stores, resellers) are not judged at all",
    params: PARAMS,
    per_organization: true,
};

pub const PARAMS: &[Param] = &[
    Param::count(
        "min_reads",
        10.0,
        "customers read without a case today below which an account is not judged",
    ),
    Param::number(
        "factor",
        2.0,
        "times the larger of the account's median day and its peers' 95th percentile day",
    ),
    Param::number("high_factor", 2.0, "times the threshold for `high`"),
    Param::count(
        "own_days",
        5.0,
        "days before the account's own days count (at most 14 are kept)",
    ),
    Param::count(
        "peer_days",
        20.0,
        "account-days a peer group needs before it serves as a baseline",
    ),
    Param::share(
        "case_share",
        0.5,
        "share of a peer group's reads that must carry a case for it to be judged (more than this)",
    ),
    Param::count(
        "group_min_reads",
        200.0,
        "reads a peer group needs before its case share counts",
    ),
];

struct Limits {
    min_reads: f64,
    factor: f64,
    high: f64,
    own_days: usize,
    peer_days: usize,
    case_share: f64,
    group_min_reads: u64,
}

impl Limits {
    fn new(v: &Values) -> Limits {
        Limits {
            min_reads: v.get("min_reads"),
            factor: v.get("factor"),
            high: v.get("high_factor"),
            own_days: v.get("own_days") as usize,
            peer_days: v.get("peer_days") as usize,
            case_share: v.get("case_share"),
            group_min_reads: v.get("group_min_reads") as u64,
        }
    }
}

pub(crate) fn build(s: &Settings) -> Box<dyn Detector> {
    Box::new(NoBusinessContext {
        limits: s.per_org(Limits::new),
        accounts: Keyed::default(),
        groups: Keyed::default(),
    })
}

#[derive(Default)]
struct Account {
    uncased: DailyCounts,
    day: i32,
    reported_day: i32,
    reported: Option<Severity>,
    first_uncased_today: Timestamp,
}

#[derive(Default)]
struct Group {
    cased: u64,
    reads: u64,
    sample: PeerSample,
}

pub struct NoBusinessContext {
    limits: PerOrg<Limits>,
    accounts: Keyed<Account>,
    groups: Keyed<Group>,
}

impl Detector for NoBusinessContext {
    fn info(&self) -> &'static DetectorInfo {
        &INFO
    }

    fn missing(&self, enricher: &Enricher) -> Option<String> {
        (!enricher.has_cases()).then(|| {
            "no --cases file; only events that carry `case.id` show business context".into()
        })
    }

    fn observe(&mut self, ev: &Enriched, out: &mut Vec<Finding>) {
        let Event::Access(a) = ev.event else { return };
        if ev.kind() != AccountKind::Human || !a.action.reads_data() || a.customer_ids.is_empty() {
            return;
        }
        let now = a.timestamp;
        let uncased = match ev.context {
            BusinessContext::CaseOnEvent | BusinessContext::CaseFile => 0,
            BusinessContext::Without(n) => n,
            BusinessContext::Unknown => a.customer_ids.len() as u32,
        };
        let lim = self.limits.get(ev.organization);
        let group = self.groups.touch(ev.peer_group, now, Group::default);
        group.reads += 1;
        if uncased == 0 {
            group.cased += 1;
        }
        let acc = self.accounts.touch(ev.actor, now, Account::default);
        let day = now.0.div_euclid(DAY) as i32;
        if day != acc.day {
            if acc.day != 0 {
                group.sample.push(acc.uncased.today());
            }
            acc.day = day;
        }
        acc.uncased.add(now, uncased, true);
        if uncased == 0 {
            return;
        }
        let today = acc.uncased.today();
        if today == uncased {
            acc.first_uncased_today = now;
        }
        let works_with_cases = group.reads >= lim.group_min_reads
            && group.cased as f64 / group.reads as f64 > lim.case_share;
        if !works_with_cases || (today as f64) < lim.min_reads {
            return;
        }
        if group.sample.len() < lim.peer_days && acc.uncased.days() < lim.own_days {
            // Nothing to compare with yet: learn first.
            return;
        }
        let peer = group.sample.quantile(0.95);
        let own = if acc.uncased.days() >= lim.own_days {
            acc.uncased.quantile(0.5)
        } else {
            0.0
        };
        let threshold = (lim.factor * own.max(peer)).max(lim.min_reads);
        if today as f64 <= threshold {
            return;
        }
        let severity = if today as f64 > lim.high * threshold {
            Severity::High
        } else {
            Severity::Medium
        };
        if acc.reported_day == day && acc.reported.is_some_and(|r| r >= severity) {
            return;
        }
        acc.reported_day = day;
        acc.reported = Some(severity);
        let share = group.cased as f64 / group.reads as f64;
        out.push(Finding {
            rule: INFO.id,
            key: a.user.clone(),
            actor: actor_of(ev),
            organization: ev.organization.map(str::to_owned),
            severity,
            at: now,
            first_seen: acc.first_uncased_today,
            message: format!(
                "{} has read {today} customers without a case today; its median day has {own:.0}, its peers' busy day {peer:.0}, and {:.0}% of its group's reads have a case",
                a.user,
                share * 100.0
            ),
            evidence: evidence! {
                "observed_without_case_today" => today,
                "baseline_own_median" => own,
                "baseline_peers_p95" => peer,
                "threshold" => threshold.round(),
                "group_case_share" => (share * 1000.0).round() / 1000.0,
                "event" => reference(ev),
            },
            customers: today as u64,
        });
    }

    fn evict(&mut self, horizon: Timestamp) {
        self.accounts.evict(horizon);
        self.groups.evict(horizon);
    }

    fn tracked_keys(&self) -> usize {
        self.accounts.len() + self.groups.len()
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use vakt_event::time::{DAY, HOUR, MINUTE};
    use vakt_event::Severity;

    fn directory(agents: usize) -> String {
        let mut d = "[[organization]]\nid = \"callcenter\"\nkind = \"employee\"\n".to_string();
        for i in 0..agents {
            d += &format!("\n[[account]]\nname = \"cc.{i}\"\norganization = \"callcenter\"\nrole = \"support\"\n");
        }
        d
    }

    /// A support day: 60 lookups, one in 25 without a case.
    fn support_day(h: &mut Harness, user: &str, day: i64) {
        for k in 0..60 {
            h.lookup(
                t0() + day * DAY + 8 * HOUR + k * 9 * MINUTE,
                user,
                "10.50.0.2",
                (day * 100 + k) as u64,
                k % 25 != 0,
            );
        }
    }

    #[test]
    fn an_insider_ramping_up_reads_without_cases_is_caught_on_the_second_day() {
        let mut h = Harness::new(&directory(8), None);
        for day in 0..10 {
            for i in 0..8 {
                support_day(&mut h, &format!("cc.{i}"), day);
            }
        }
        // Day 10: 12 extra reads without a case; day 11: 20; day 12: 35.
        for (d, extra) in [(10i64, 12i64), (11, 20), (12, 35)] {
            support_day(&mut h, "cc.3", d);
            for k in 0..extra {
                h.lookup(
                    t0() + d * DAY + 9 * HOUR + k * 13 * MINUTE,
                    "cc.3",
                    "10.50.0.2",
                    700_000 + (d * 100 + k) as u64,
                    false,
                );
            }
        }
        let alerts = h.finish();
        let n = Harness::rule(&alerts, "no_business_context");
        assert!(!n.is_empty());
        assert!(
            n[0].timestamp.0 < t0() + 12 * DAY,
            "detected {}",
            n[0].timestamp
        );
        assert!(n.iter().all(|a| a.actor.user.as_deref() == Some("cc.3")));
        assert!(n.iter().all(|a| a.severity <= Severity::High));
    }

    #[test]
    fn ordinary_reads_without_a_case_and_groups_without_cases_are_fine() {
        let mut d = directory(8);
        d += "\n[[organization]]\nid = \"store-1\"\nkind = \"employee\"\n\n[[account]]\nname = \"st1.anna\"\norganization = \"store-1\"\nrole = \"store\"\n";
        let mut h = Harness::new(&d, None);
        for day in 0..15 {
            for i in 0..8 {
                support_day(&mut h, &format!("cc.{i}"), day);
            }
            // Stores never use cases: 40 lookups a day.
            for k in 0..40 {
                h.lookup(
                    t0() + day * DAY + 9 * HOUR + k * 10 * MINUTE,
                    "st1.anna",
                    "10.1.1.2",
                    (day * 100 + k) as u64,
                    false,
                );
            }
        }
        assert!(Harness::rule(&h.finish(), "no_business_context").is_empty());
    }
}
