//! `volume_peers`: an account reading many more customers today than it
//! and its peers normally do.
//!
//! For S2 (Tele2: manual lookups at human pace, abnormally many) and S5
//! (an insider reading more and more): slow abuse never trips a rate
//! limit, but a day's volume stands out against the account's own days
//! and against others in the same role.
//!
//! - State: per account, 14 days of daily customer counts (about 70
//!   bytes); per peer group, a bounded sample of its account-days and
//!   today's running total and active accounts.
//! - Thresholds: today's customers above 3x (`factor`) the larger of the
//!   account's own 90th percentile day (once it has 5 days, `own_days`)
//!   and its peers' 95th percentile day, and at least 50 (`min_day`), is
//!   `medium`; 10x (`high_factor`) is `high`. Until the peer group has 20
//!   account-days (`peer_days`) or the account 5 days, it only learns.
//!   When the whole peer group (at least 5 active accounts) is busier today
//!   (a launch day), the threshold rises with the group's mean, up to 5x.
//!   Judged as the day goes, not at its end. Declared services and batch
//!   jobs are not judged. Each threshold is a parameter ([`PARAMS`]), also
//!   per organisation.
//! - Blind spots: in [`INFO`] (`vakt detectors` shows them).

use crate::detector::{actor_of, reference, Detector, DetectorInfo, Finding};
use crate::evidence;
use crate::params::{Param, PerOrg, Settings, Values};
use crate::state::{DailyCounts, Keyed, PeerSample};
use vakt_enrich::snapshot::{self, SnapshotError};
use vakt_enrich::Enriched;
use vakt_event::directory::AccountKind;
use vakt_event::time::DAY;
use vakt_event::{Event, Severity, Timestamp};

pub const INFO: DetectorInfo = DetectorInfo {
    id: "volume_peers",
    title: "an account reading many more customers today than it and its peers normally do",
    incidents: &["S2", "S5"],
    remediation: super::SUSPEND_ACCOUNT,
    blind_spots: "abuse spread across many accounts of one group (it raises the group's own mean); a slow ramp that stays within 3x",
    params: PARAMS,
    per_organization: true,
};

pub const PARAMS: &[Param] = &[
    Param::count(
        "min_day",
        50.0,
        "customers read today below which an account is not judged",
    ),
    Param::number(
        "factor",
        3.0,
        "times the larger of the account's 90th percentile day and its peers' 95th percentile day",
    ),
    Param::number("high_factor", 10.0, "times that baseline for `high`"),
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
    Param::count(
        "launch_accounts",
        5.0,
        "active accounts of a group today before its busier day lifts the threshold",
    ),
    Param::number(
        "launch_lift",
        5.0,
        "most a busy group day (a launch) multiplies the threshold by",
    ),
];

struct Limits {
    min_day: f64,
    factor: f64,
    high: f64,
    own_days: usize,
    peer_days: usize,
    launch_accounts: u32,
    launch_lift: f64,
}

impl Limits {
    fn new(v: &Values) -> Limits {
        Limits {
            min_day: v.get("min_day"),
            factor: v.get("factor"),
            high: v.get("high_factor"),
            own_days: v.get("own_days") as usize,
            peer_days: v.get("peer_days") as usize,
            launch_accounts: v.get("launch_accounts").min(u32::MAX as f64) as u32,
            launch_lift: v.get("launch_lift").max(1.0),
        }
    }
}

pub(crate) fn build(s: &Settings) -> Box<dyn Detector> {
    Box::new(VolumePeers {
        limits: s.per_org(Limits::new),
        accounts: Keyed::default(),
        groups: Keyed::default(),
    })
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Account {
    days: DailyCounts,
    reported_day: i32,
    reported: Option<Severity>,
    day_start: Timestamp,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Group {
    sample: PeerSample,
    day: i32,
    today_total: u64,
    today_active: u32,
}

pub struct VolumePeers {
    limits: PerOrg<Limits>,
    accounts: Keyed<Account>,
    groups: Keyed<Group>,
}

impl Detector for VolumePeers {
    fn info(&self) -> &'static DetectorInfo {
        &INFO
    }

    fn observe(&mut self, ev: &Enriched, out: &mut Vec<Finding>) {
        let Event::Access(a) = ev.event else { return };
        if ev.kind() != AccountKind::Human || !a.action.reads_data() || a.customer_ids.is_empty() {
            return;
        }
        let now = a.timestamp;
        let day = now.0.div_euclid(DAY) as i32;
        let n = a.customer_ids.len() as u32;
        let lim = self.limits.get(ev.organization);
        let acc = self.accounts.touch(ev.actor, now, Account::default);
        let group = self.groups.touch(ev.peer_group, now, Group::default);
        if group.day != day {
            group.day = day;
            group.today_total = 0;
            group.today_active = 0;
        }
        let before = acc.days.today();
        let old_day = acc.day_start.0.div_euclid(DAY) as i32;
        if old_day != day || acc.day_start.0 == 0 {
            if before > 0 && acc.day_start.0 != 0 {
                group.sample.push(before);
            }
            acc.day_start = now;
        }
        acc.days.add(now, n, false);
        let today = acc.days.today();
        if today == n {
            group.today_active += 1;
        }
        group.today_total += n as u64;
        if (today as f64) < lim.min_day {
            return;
        }
        if group.sample.len() < lim.peer_days && acc.days.days() < lim.own_days {
            // Nothing to compare with yet: learn first.
            return;
        }
        let peer = group.sample.quantile(0.95);
        let own = if acc.days.days() >= lim.own_days {
            acc.days.quantile(0.9)
        } else {
            0.0
        };
        let hist_mean = if group.sample.is_empty() {
            0.0
        } else {
            group.sample.quantile(0.5).max(1.0)
        };
        let today_mean = group.today_total as f64 / group.today_active.max(1) as f64;
        // Only a clearly busier group (a launch day) lifts the bar.
        let day_factor = if group.today_active >= lim.launch_accounts && hist_mean > 0.0 {
            (today_mean / hist_mean).clamp(1.0, lim.launch_lift)
        } else {
            1.0
        };
        let baseline = own.max(peer);
        let threshold = (lim.factor * baseline * day_factor).max(lim.min_day);
        if today as f64 <= threshold {
            return;
        }
        let severity = if today as f64 > lim.high / lim.factor * threshold {
            Severity::High
        } else {
            Severity::Medium
        };
        if acc.reported_day == day && acc.reported.is_some_and(|r| r >= severity) {
            return;
        }
        acc.reported_day = day;
        acc.reported = Some(severity);
        out.push(Finding {
            rule: INFO.id,
            key: a.user.clone(),
            actor: actor_of(ev),
            organization: ev.organization.map(str::to_owned),
            severity,
            at: now,
            first_seen: acc.day_start,
            message: format!(
                "{} has read {today} customers today, {:.1}x the threshold of {:.0}: its own usual day is {own:.0}, its peers' busy day {peer:.0}",
                a.user,
                today as f64 / threshold,
                threshold
            ),
            evidence: evidence! {
                "observed_today" => today,
                "baseline_own_p90" => own,
                "baseline_peers_p95" => peer,
                "own_days" => acc.days.days(),
                "peer_day_factor" => (day_factor * 100.0).round() / 100.0,
                "threshold" => threshold.round(),
                "event" => reference(ev),
            },
            customers: today as u64,
        });
    }

    fn evict(&mut self, horizon: Timestamp) {
        self.accounts.evict(horizon);
        self.groups.evict(horizon);
    }

    fn save(&self) -> Result<Vec<u8>, SnapshotError> {
        snapshot::save(&(&self.accounts, &self.groups))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SnapshotError> {
        (self.accounts, self.groups) = snapshot::load(state)?;
        Ok(())
    }

    fn tracked_keys(&self) -> usize {
        self.accounts.len() + self.groups.len()
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use vakt_event::time::{DAY, HOUR, MINUTE};

    const DIR: &str = r#"
[[organization]]
id = "reseller-7"
kind = "reseller"
"#;

    fn shop_day(h: &mut Harness, user: &str, day: i64, n: i64) {
        for k in 0..n {
            h.lookup(
                t0() + day * DAY + 10 * HOUR + k * (8 * HOUR / n),
                user,
                "172.16.7.3",
                (day * 1000 + k) as u64,
                false,
            );
        }
    }

    fn accounts() -> Vec<String> {
        (0..10).map(|i| format!("r{i}.shop")).collect()
    }

    fn directory() -> String {
        let mut d = DIR.to_string();
        for a in accounts() {
            d += &format!(
                "\n[[account]]\nname = \"{a}\"\norganization = \"reseller-7\"\nrole = \"sales\"\n"
            );
        }
        d
    }

    #[test]
    fn hundreds_of_lookups_at_human_pace_stand_out_within_hours() {
        let mut h = Harness::new(&directory(), None);
        for day in 0..10 {
            for (i, a) in accounts().iter().enumerate() {
                shop_day(&mut h, a, day, 20 + i as i64 * 2);
            }
        }
        // One account now reads a customer a minute all day.
        let start = t0() + 10 * DAY + 9 * HOUR;
        for k in 0..400 {
            h.lookup(
                start + k * MINUTE,
                "r3.shop",
                "185.1.2.3",
                900_000 + k as u64,
                false,
            );
        }
        let alerts = h.finish();
        let v = Harness::rule(&alerts, "volume_peers");
        assert!(!v.is_empty());
        assert!(v.iter().all(|a| a.id == v[0].id));
        assert!(v[0].timestamp.0 - start < 3 * HOUR, "{}", v[0].timestamp);
    }

    #[test]
    fn a_launch_day_and_a_new_hire_are_not_alerts() {
        let mut d = directory();
        d += "\n[[account]]\nname = \"r99.new\"\norganization = \"reseller-7\"\nrole = \"sales\"\n";
        let mut h = Harness::new(&d, None);
        for day in 0..10 {
            for (i, a) in accounts().iter().enumerate() {
                let n = 30 + i as i64 * 2;
                // Day 8 is the launch: everyone triples.
                shop_day(&mut h, a, day, if day == 8 { 3 * n } else { n });
            }
        }
        shop_day(&mut h, "r99.new", 9, 45);
        assert!(Harness::rule(&h.finish(), "volume_peers").is_empty());
    }
}
