//! `account_sharing`: one account used from several networks at once.
//!
//! For S2 (Tele2): two personal reseller accounts were used by outsiders
//! while the shop kept using them too; the same account alternated
//! between the shop's network and addresses elsewhere.
//!
//! - State: per account, the last four networks (/24 for IPv4, /48 for
//!   IPv6) it was seen from with their last time, and a count of switches
//!   between networks within the last hour (about 64 bytes).
//! - Thresholds: 6 switches (`medium_switches`) between two or more
//!   networks within an hour (back and forth, not a single move from
//!   office to home) is `medium`; 30 (`high_switches`) is `high`. Declared
//!   services are not judged. Each threshold is a parameter ([`PARAMS`]).
//! - Blind spots: in [`INFO`] (`vakt detectors` shows them).

use crate::detector::{actor_of, reference, Detector, DetectorInfo, Finding};
use crate::evidence;
use crate::params::{Param, Settings, Values};
use crate::state::Keyed;
use std::net::IpAddr;
use vakt_enrich::snapshot::{self, SnapshotError};
use vakt_enrich::Enriched;
use vakt_event::directory::AccountKind;
use vakt_event::time::HOUR;
use vakt_event::{Event, Severity, Timestamp};

const SLOTS: usize = 4;

pub const INFO: DetectorInfo = DetectorInfo {
    id: "account_sharing",
    title: "one account used from several networks at once",
    incidents: &["S2"],
    remediation: super::REISSUE_ACCOUNT,
    blind_spots: "sharing in turns (one user by day, another by night) and sharing inside one network; a mobile user hopping carriers can look like sharing, which is why one switch is not enough",
    params: PARAMS,
    per_organization: false,
};

pub const PARAMS: &[Param] = &[
    Param::count(
        "medium_switches",
        6.0,
        "switches between networks within an hour for `medium`",
    ),
    Param::count(
        "high_switches",
        30.0,
        "switches between networks within an hour for `high`",
    ),
];

struct Limits {
    medium: u32,
    high: u32,
}

impl Limits {
    fn new(v: &Values) -> Limits {
        let n = |name| v.get(name).min(u32::MAX as f64) as u32;
        Limits {
            medium: n("medium_switches"),
            high: n("high_switches"),
        }
    }
}

pub(crate) fn build(s: &Settings) -> Box<dyn Detector> {
    Box::new(AccountSharing {
        limits: Limits::new(&s.global),
        accounts: Keyed::default(),
    })
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Seen {
    nets: [(u64, i64); SLOTS],
    current: u64,
    switches: u32,
    window_start: Timestamp,
    reported: Option<Severity>,
}

fn network(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v) => (u32::from(v) >> 8) as u64 | 1 << 40,
        IpAddr::V6(v) => (u128::from(v) >> 80) as u64 | 1 << 63,
    }
}

fn show(net: u64) -> String {
    if net >> 63 == 1 {
        format!("{:x}::/48", net & ((1 << 48) - 1))
    } else {
        let v = (net & 0xff_ffff) as u32;
        format!("{}.{}.{}.0/24", v >> 16, (v >> 8) & 0xff, v & 0xff)
    }
}

pub struct AccountSharing {
    limits: Limits,
    accounts: Keyed<Seen>,
}

impl Detector for AccountSharing {
    fn info(&self) -> &'static DetectorInfo {
        &INFO
    }

    fn observe(&mut self, ev: &Enriched, out: &mut Vec<Finding>) {
        let Event::Access(a) = ev.event else { return };
        let Some(ip) = a.source_ip else { return };
        if ev.kind() == AccountKind::Service {
            return;
        }
        let now = a.timestamp;
        let lim = &self.limits;
        let net = network(ip);
        let s = self.accounts.touch(ev.actor, now, Seen::default);
        match s.nets.iter_mut().find(|(n, _)| *n == net) {
            Some(slot) => slot.1 = now.0,
            None => {
                let oldest = s
                    .nets
                    .iter_mut()
                    .min_by_key(|(_, t)| *t)
                    .expect("slots are not empty");
                *oldest = (net, now.0);
            }
        }
        if s.current == net {
            return;
        }
        let first = s.current == 0;
        s.current = net;
        if first {
            return;
        }
        if now.0 - s.window_start.0 > HOUR {
            // A quiet hour ends the incident as far as this detector is concerned.
            if s.switches < lim.medium {
                s.reported = None;
            }
            s.window_start = now;
            s.switches = 0;
        }
        s.switches += 1;
        let severity = match s.switches {
            n if n >= lim.high => Severity::High,
            n if n >= lim.medium => Severity::Medium,
            _ => return,
        };
        if s.reported.is_some_and(|r| r >= severity) {
            return;
        }
        s.reported = Some(severity);
        let recent: Vec<String> = s
            .nets
            .iter()
            .filter(|(n, t)| *n != 0 && now.0 - t <= HOUR)
            .map(|(n, _)| show(*n))
            .collect();
        out.push(Finding {
            rule: INFO.id,
            key: a.user.clone(),
            actor: actor_of(ev),
            organization: ev.organization.map(str::to_owned),
            severity,
            at: now,
            first_seen: s.window_start,
            message: format!(
                "{} switched {} times within an hour between {} networks ({}); one person does not move back and forth like that",
                a.user,
                s.switches,
                recent.len(),
                recent.join(", ")
            ),
            evidence: evidence! {
                "observed_switches_1h" => s.switches,
                "threshold_switches_1h" => lim.medium,
                "networks" => recent,
                "source_ip" => ip.to_string(),
                "event" => reference(ev),
            },
            customers: 0,
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
    use vakt_event::time::{HOUR, SECOND};

    #[test]
    fn the_shop_and_an_outsider_using_one_account_at_once_is_caught() {
        let mut h = Harness::new("", None);
        for i in 0..120u64 {
            let t = t0() + 9 * HOUR + i as i64 * 45 * SECOND;
            let ip = if i % 3 == 0 {
                "185.12.1.9"
            } else {
                "172.16.7.3"
            };
            h.lookup(t, "r7.anna", ip, i, false);
        }
        let alerts = h.finish();
        let s = Harness::rule(&alerts, "account_sharing");
        assert!(!s.is_empty());
        assert!(s.iter().all(|a| a.id == s[0].id));
        assert!(s[0].message.contains("185.12.1.0/24"), "{}", s[0].message);
        assert!(s[0].timestamp.0 - (t0() + 9 * HOUR) < HOUR);
    }

    #[test]
    fn moving_from_office_to_home_once_is_not_sharing() {
        let mut h = Harness::new("", None);
        for i in 0..200u64 {
            let ip = if i < 100 { "10.50.0.2" } else { "81.2.69.160" };
            h.lookup(t0() + i as i64 * 60 * SECOND, "cc.eva", ip, i, true);
        }
        assert!(Harness::rule(&h.finish(), "account_sharing").is_empty());
    }
}
