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
//! - An organisation that moved: when `moved_accounts` or more of an
//!   organisation's accounts, and at least half of those active that day,
//!   read from the same undeclared /24 (/48), the organisation has most
//!   likely moved before the directory did. Its accounts' findings from
//!   that network stay `low` and say so, and one `low` finding names the
//!   organisation and the network to add. Stolen accounts used by an
//!   outsider are a minority of the organisation's active accounts, whose
//!   staff go on working from the declared network.
//! - State for that: per organisation and day, a HyperLogLog of its active
//!   accounts; per organisation and outside network, one of the accounts
//!   seen there (at most 16,384 of each, least recently used forgotten).
//! - Blind spots: in [`INFO`] (`vakt detectors` shows them).

use crate::detector::{actor_of, reference, Detector, DetectorInfo, Finding, Network};
use crate::evidence;
use crate::params::{Param, Settings, Values};
use crate::state::{lru, Distinct, Keyed, Lru};
use std::fmt::Write as _;
use vakt_enrich::snapshot::{self, LruState, SnapshotError};
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
    Param::count(
        "moved_accounts",
        3.0,
        "accounts of one organisation (and half of its active ones) reading from one undeclared network that mean the organisation moved",
    ),
];

struct Limits {
    medium: u64,
    high: u64,
    critical: u64,
    moved_accounts: usize,
}

impl Limits {
    fn new(v: &Values) -> Limits {
        Limits {
            medium: v.get("medium_customers") as u64,
            high: v.get("high_customers") as u64,
            critical: v.get("critical_customers") as u64,
            moved_accounts: v.get("moved_accounts").min(1e9) as usize,
        }
    }
}

pub(crate) fn build(s: &Settings) -> Box<dyn Detector> {
    Box::new(ForeignNetwork {
        limits: Limits::new(&s.global),
        accounts: Keyed::default(),
        active: lru(ORGANISATION_TABLES),
        moves: lru(ORGANISATION_TABLES),
        network: String::new(),
    })
}

/// Organisations (and organisation-network pairs) tracked for moves.
const ORGANISATION_TABLES: usize = 16_384;

/// Accounts seen on one day.
#[derive(serde::Serialize, serde::Deserialize)]
struct Day {
    day: i64,
    accounts: Distinct,
}

impl Day {
    fn new(day: i64) -> Day {
        Day {
            day,
            accounts: Distinct::new(),
        }
    }

    /// Adds `account` on `day`, starting afresh on a new day.
    fn add(&mut self, day: i64, account: &str) -> usize {
        if day != self.day {
            *self = Day::new(day);
        }
        self.accounts.insert(account);
        self.accounts.estimate()
    }
}

fn hash64(parts: &[&str]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    parts.hash(&mut h);
    h.finish()
}

#[derive(serde::Serialize, serde::Deserialize)]
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
    /// Per organisation: its accounts active today.
    active: Lru<u64, Day>,
    /// Per organisation and outside network: its accounts seen there today.
    moves: Lru<u64, (Day, bool)>,
    /// The network of the event at hand, written here rather than
    /// allocated per event.
    network: String,
}

impl ForeignNetwork {
    /// Notes the account as active for its organisation and, when it reads
    /// from an undeclared network, there; returns the accounts seen there
    /// and active today when the organisation looks moved.
    fn moved(
        &mut self,
        ev: &Enriched,
        a: &vakt_event::AccessEvent,
    ) -> Option<(String, usize, usize, bool)> {
        let org = ev.organization?;
        let day = a.timestamp.0.div_euclid(vakt_event::time::DAY);
        let active = self
            .active
            .get_or_insert_mut(hash64(&[org]), || Day::new(day))
            .add(day, &a.user);
        if ev.network != NetworkMatch::Unlisted {
            return None;
        }
        self.network.clear();
        let _ = write!(self.network, "{}", Network(a.source_ip?));
        let key = hash64(&[org, &self.network]);
        let (there, first) = {
            let m = self.moves.get_or_insert_mut(key, || (Day::new(day), false));
            let there = m.0.add(day, &a.user);
            let first = !m.1;
            (there, first)
        };
        let moved = there >= self.limits.moved_accounts && there * 2 >= active;
        if !moved {
            return None;
        }
        if let Some(m) = self.moves.get_mut(&key) {
            m.1 = true;
        }
        Some((self.network.clone(), there, active, first))
    }
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
        let moved = if ev.network.is_foreign() || ev.network == NetworkMatch::Own {
            self.moved(ev, a)
        } else {
            None
        };
        if !ev.network.is_foreign() || a.customer_ids.is_empty() && a.records == 0 {
            return;
        }
        let now = a.timestamp;
        let org = ev.organization.unwrap_or("its organisation");
        if let Some((net, there, active, true)) = &moved {
            out.push(Finding {
                rule: INFO.id,
                key: format!("{org} moved to {net}"),
                actor: vakt_event::Actor {
                    user: Some(format!("organisation {org}")),
                    host: None,
                    ip: None,
                },
                organization: ev.organization.map(str::to_owned),
                severity: Severity::Low,
                at: now,
                first_seen: now,
                message: format!(
                    "{there} of {org}'s {active} accounts active today read from {net}, which the directory does not give {org}: if the organisation moved, add {net} to its networks"
                ),
                evidence: evidence! {
                    "network" => net,
                    "observed_accounts_there" => there,
                    "observed_active_accounts" => active,
                    "threshold_accounts" => self.limits.moved_accounts,
                    "event" => reference(ev),
                },
                customers: 0,
            });
        }
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
            // The whole organisation is there: it moved, this account did not stray.
            _ if moved.is_some() => Severity::Low,
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
        let whose = match (&ev.network, &moved) {
            (NetworkMatch::OtherOrganization(other), _) => format!("inside {other}'s networks"),
            (_, Some((net, there, _, _))) => format!(
                "in {net}, where {there} of {org}'s accounts work today: the organisation probably moved"
            ),
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

    fn save(&self) -> Result<Vec<u8>, SnapshotError> {
        snapshot::save(&(
            &self.accounts,
            snapshot::LruRef(&self.active),
            snapshot::LruRef(&self.moves),
        ))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SnapshotError> {
        type Moves = LruState<u64, (Day, bool)>;
        let (accounts, active, moves): (_, LruState<u64, Day>, Moves) = snapshot::load(state)?;
        self.accounts = accounts;
        active.restore_into(&mut self.active);
        moves.restore_into(&mut self.moves);
        Ok(())
    }

    fn tracked_keys(&self) -> usize {
        self.accounts.len() + self.active.len() + self.moves.len()
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

    #[test]
    fn an_organisation_that_moved_is_one_low_notice_but_stolen_accounts_are_not_a_move() {
        let dir = format!(
            "{DIR}{}",
            (0..6)
                .map(|i| format!("\n[[account]]\nname = \"r7.s{i}\"\norganization = \"reseller-7\"\nrole = \"sales\"\n"))
                .collect::<String>()
        );
        // The shop moved overnight: all six accounts read from a new network.
        let mut h = Harness::new(&dir, None);
        for i in 0..600u64 {
            let user = format!("r7.s{}", i % 6);
            let ip = format!("185.40.2.{}", 10 + i % 6);
            h.lookup(t0() + i as i64 * 30 * SECOND, &user, &ip, i, false);
        }
        let alerts = h.finish();
        let f = Harness::rule(&alerts, "foreign_network");
        assert!(f.iter().all(|a| a.severity == Severity::Low), "{f:#?}");
        let notice: Vec<_> = f
            .iter()
            .filter(|a| a.message.contains("if the organisation moved"))
            .collect();
        assert_eq!(notice.len(), 1, "{f:#?}");
        assert!(notice[0].message.contains("185.40.2.0/24"));

        // Two of six accounts used by an outsider while the shop works as usual.
        let mut h = Harness::new(&dir, None);
        for i in 0..600u64 {
            let k = i % 6;
            let user = format!("r7.s{k}");
            let ip = if k < 2 {
                "185.40.2.10".to_string()
            } else {
                format!("172.16.7.{}", 2 + k)
            };
            h.lookup(t0() + i as i64 * 30 * SECOND, &user, &ip, i, false);
        }
        let alerts = h.finish();
        let f = Harness::rule(&alerts, "foreign_network");
        assert!(f.iter().any(|a| a.severity >= Severity::Medium), "{f:#?}");
        assert!(f.iter().all(|a| !a.message.contains("moved")), "{f:#?}");
    }
}
