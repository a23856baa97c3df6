//! `foreign_network`: an account reading customers from an address outside
//! its organisation's declared networks.
//!
//! For S1 and S2 (Telenor, Tele2): reseller and partner accounts were used
//! from addresses that did not belong to the reseller. Credentials travel;
//! the shop's network does not.
//!
//! - State: per account, distinct customers read from outside (a sparse
//!   HyperLogLog, created only for accounts that go outside), the first
//!   such read and what was reported.
//! - Thresholds: the first customer read from outside is `low`; 20
//!   distinct customers (`medium_customers`) is `medium`, 200 `high`,
//!   2,000 `critical`. An address inside another organisation's networks
//!   is reported the same way, naming that organisation. Logins and other
//!   actions without customers are left to `account_sharing`. Each
//!   threshold is a parameter ([`PARAMS`]).
//! - Blind spots: in [`INFO`] (`vakt detectors` shows them).

use crate::detector::{actor_of, reference, Detector, DetectorInfo, Finding};
use crate::evidence;
use crate::params::{Param, Settings, Values};
use crate::state::{Distinct, Keyed};
use vakt_enrich::{Enriched, Enricher, NetworkMatch};
use vakt_event::{Event, Severity, Timestamp};

pub const INFO: DetectorInfo = DetectorInfo {
    id: "foreign_network",
    title: "an account reading customers from an address outside its organisation's declared networks",
    incidents: &["S1", "S2"],
    remediation: super::REISSUE_ACCOUNT,
    blind_spots: "needs `networks` on the organisation; an attacker inside the shop's network (or its VPN) looks local",
    params: PARAMS,
    per_organization: false,
};

pub const PARAMS: &[Param] = &[
    Param::count(
        "medium_customers",
        20.0,
        "distinct customers read from outside for `medium`",
    ),
    Param::count(
        "high_customers",
        200.0,
        "distinct customers read from outside for `high`",
    ),
    Param::count(
        "critical_customers",
        2_000.0,
        "distinct customers read from outside for `critical`",
    ),
];

struct Limits {
    medium: u64,
    high: u64,
    critical: u64,
}

impl Limits {
    fn new(v: &Values) -> Limits {
        Limits {
            medium: v.get("medium_customers") as u64,
            high: v.get("high_customers") as u64,
            critical: v.get("critical_customers") as u64,
        }
    }
}

pub(crate) fn build(s: &Settings) -> Box<dyn Detector> {
    Box::new(ForeignNetwork {
        limits: Limits::new(&s.global),
        accounts: Keyed::default(),
    })
}

struct Outside {
    customers: Box<Distinct>,
    since: Timestamp,
    reads: u32,
    reported: Option<Severity>,
    /// Customers at the last report: the figures are refreshed each time they double.
    reported_customers: u64,
}

pub struct ForeignNetwork {
    limits: Limits,
    accounts: Keyed<Outside>,
}

impl Detector for ForeignNetwork {
    fn info(&self) -> &'static DetectorInfo {
        &INFO
    }

    fn missing(&self, enricher: &Enricher) -> Option<String> {
        (!enricher.has_networks()).then(|| "no organisation declares `networks` in the directory; cannot tell foreign addresses".into())
    }

    fn observe(&mut self, ev: &Enriched, out: &mut Vec<Finding>) {
        let Event::Access(a) = ev.event else { return };
        if !ev.network.is_foreign() || a.customer_ids.is_empty() && a.records == 0 {
            return;
        }
        let now = a.timestamp;
        let o = self.accounts.touch(ev.actor, now, || Outside {
            customers: Box::new(Distinct::new()),
            since: now,
            reads: 0,
            reported: None,
            reported_customers: 0,
        });
        for c in &a.customer_ids {
            o.customers.insert(c.as_str());
        }
        o.reads += 1;
        let n = (o.customers.estimate() as u64).max(a.records.min(1_000_000));
        let severity = match n {
            n if n >= self.limits.critical => Severity::Critical,
            n if n >= self.limits.high => Severity::High,
            n if n >= self.limits.medium => Severity::Medium,
            _ => Severity::Low,
        };
        if o.reported.is_some_and(|r| r >= severity) && n < 2 * o.reported_customers {
            return;
        }
        o.reported = Some(severity.max(o.reported.unwrap_or(severity)));
        o.reported_customers = n;
        let org = ev.organization.unwrap_or("its organisation");
        let whose = match ev.network {
            NetworkMatch::OtherOrganization(other) => format!("inside {other}'s networks"),
            _ => "in no network the directory declares".into(),
        };
        out.push(Finding {
            rule: INFO.id,
            key: a.user.clone(),
            actor: actor_of(ev),
            organization: ev.organization.map(str::to_owned),
            severity,
            at: now,
            first_seen: o.since,
            message: format!(
                "{} read {n} customer{} from {}, outside {org}'s networks ({whose})",
                a.user,
                if n == 1 { "" } else { "s" },
                a.source_ip.map(|i| i.to_string()).unwrap_or_default(),
            ),
            evidence: evidence! {
                "observed_customers_from_outside" => n,
                "observed_reads_from_outside" => o.reads,
                "baseline_customers_from_outside" => 0,
                "source_ip" => a.source_ip.map(|i| i.to_string()),
                "network" => whose,
                "country" => ev.geo.as_ref().and_then(|g| g.country.clone()),
                "event" => reference(ev),
            },
            customers: n,
        });
    }

    fn evict(&mut self, horizon: Timestamp) {
        self.accounts.evict(horizon);
    }

    fn tracked_keys(&self) -> usize {
        self.accounts.len()
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use vakt_event::time::SECOND;
    use vakt_event::Severity;

    pub const DIR: &str = r#"
[[organization]]
id = "reseller-7"
kind = "reseller"
networks = ["172.16.7.0/28"]

[[organization]]
id = "reseller-8"
kind = "reseller"
networks = ["172.16.8.0/28"]

[[account]]
name = "r7.anna"
organization = "reseller-7"
role = "sales"
"#;

    #[test]
    fn reading_customers_from_outside_the_shop_escalates_with_volume() {
        let mut h = Harness::new(DIR, None);
        for i in 0..300u64 {
            h.lookup(
                t0() + i as i64 * 60 * SECOND,
                "r7.anna",
                "185.12.1.9",
                i,
                false,
            );
        }
        let alerts = h.finish();
        let f = Harness::rule(&alerts, "foreign_network");
        assert!(f.iter().all(|a| a.id == f[0].id));
        let medium = f
            .iter()
            .find(|a| a.severity == Severity::Medium)
            .expect("medium");
        assert!(
            medium.timestamp.0 - t0() < 30 * 60 * SECOND,
            "medium after 20 customers at one a minute"
        );
        assert!(f.iter().any(|a| a.severity == Severity::High));
        assert!(
            medium.message.contains("outside reseller-7's networks"),
            "{}",
            medium.message
        );
    }

    #[test]
    fn the_shop_network_and_logins_are_fine_and_another_shop_is_named() {
        let mut h = Harness::new(DIR, None);
        for i in 0..500u64 {
            h.lookup(
                t0() + i as i64 * 60 * SECOND,
                "r7.anna",
                "172.16.7.3",
                i,
                false,
            );
        }
        assert!(Harness::rule(&h.alerts, "foreign_network").is_empty());
        h.lookup(t0() + 600 * 60 * SECOND, "r7.anna", "172.16.8.3", 9, false);
        let alerts = h.finish();
        let f = Harness::rule(&alerts, "foreign_network");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Low);
        assert!(f[0].message.contains("inside reseller-8's networks"));
    }
}
