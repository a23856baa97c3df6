//! `new_category`: an account reading a kind of data it never read before,
//! or a declared service reading outside its declared purpose.
//!
//! For S6 (Ticketmaster): a vendor's component with access to customer
//! data started capturing payment data and passwords. Accounts, and
//! vendors above all, read a stable set of data categories; a new one,
//! especially a sensitive one, is a change of purpose.
//!
//! - State: per account, the categories it has read (a 32-bit set), when
//!   it was first seen, and what was reported (16 bytes).
//! - Thresholds: a declared `[[service]]` with `categories` reading any
//!   other category is `high` at once (`critical` for payment card,
//!   password, national id or driver's licence). Other accounts learn for
//!   their first 3 days (`learn_days`, a parameter); after that a new
//!   sensitive category is `high` and any other new category `low`.
//! - Blind spots: in [`INFO`] (`vakt detectors` shows them).

use crate::detector::{actor_of, reference, Detector, DetectorInfo, Finding};
use crate::evidence;
use crate::params::{Param, Settings};
use crate::state::Keyed;
use vakt_enrich::snapshot::{self, SnapshotError};
use vakt_enrich::Enriched;
use vakt_event::event::category_weight;
use vakt_event::time::DAY;
use vakt_event::{CategorySet, Event, Severity, Timestamp};

pub const INFO: DetectorInfo = DetectorInfo {
    id: "new_category",
    title: "an account reading a kind of data it never read before, or outside a service's declared purpose",
    incidents: &["S6"],
    remediation: "remove the categories outside the integration's purpose from what it can read; review the vendor's code",
    blind_spots: "events without `data.categories`; an account whose first days already include the abuse; new categories read once and legitimately (they stay `low`)",
    params: PARAMS,
    per_organization: false,
};

pub const PARAMS: &[Param] = &[Param::count(
    "learn_days",
    3.0,
    "days an account (not a declared service) only learns what it reads",
)];

pub(crate) fn build(s: &Settings) -> Box<dyn Detector> {
    Box::new(NewCategory {
        // Past ten years learning never ends; the cap keeps the product in range.
        learn: s.global.get("learn_days").min(3660.0) as i64 * DAY,
        accounts: Keyed::default(),
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Known {
    seen: CategorySet,
    first: Timestamp,
    reported: CategorySet,
}

pub struct NewCategory {
    learn: i64,
    accounts: Keyed<Known>,
}

impl Detector for NewCategory {
    fn info(&self) -> &'static DetectorInfo {
        &INFO
    }

    fn observe(&mut self, ev: &Enriched, out: &mut Vec<Finding>) {
        let Event::Access(a) = ev.event else { return };
        if a.categories.is_empty() {
            return;
        }
        let now = a.timestamp;
        let cats = CategorySet::from_names(&a.categories);
        let k = self.accounts.touch(ev.actor, now, || Known {
            seen: CategorySet::default(),
            first: now,
            reported: CategorySet::default(),
        });
        let declared = ev
            .service
            .filter(|s| !s.categories.is_empty())
            .map(|s| CategorySet::from_names(&s.categories));
        let (new, basis) = match declared {
            Some(d) => (cats.minus(d), "its declared purpose"),
            None => {
                let learning = now.0 - k.first.0 < self.learn;
                let new = cats.minus(k.seen);
                k.seen = k.seen.union(cats);
                if learning {
                    return;
                }
                (new, "what it read before")
            }
        };
        let new = new.minus(k.reported);
        if new.is_empty() {
            return;
        }
        k.reported = k.reported.union(new);
        let names: Vec<&str> = a
            .categories
            .iter()
            .map(String::as_str)
            .filter(|c| CategorySet::bit(c) & new.0 != 0)
            .collect();
        let sensitive = names.iter().any(|c| category_weight(c) >= 8);
        let severity = match (declared.is_some(), sensitive) {
            (true, true) => Severity::Critical,
            (true, false) | (false, true) => Severity::High,
            (false, false) => Severity::Low,
        };
        let expected: Vec<String> = match (declared, ev.service) {
            (Some(_), Some(s)) => s.categories.clone(),
            _ => k
                .seen
                .minus(new)
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
        };
        out.push(Finding {
            rule: INFO.id,
            key: a.user.clone(),
            actor: actor_of(ev),
            organization: ev.organization.map(str::to_owned),
            severity,
            at: now,
            first_seen: now,
            message: format!(
                "{} read {} for the first time, outside {basis} ({})",
                a.user,
                names.join(", "),
                expected.join(", ")
            ),
            evidence: evidence! {
                "observed_categories" => a.categories,
                "new_categories" => names,
                "baseline_categories" => expected,
                "declared" => declared.is_some(),
                "event" => reference(ev),
            },
            customers: a.customer_ids.len() as u64,
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
    use vakt_event::time::{DAY, HOUR};
    use vakt_event::{AccessEvent, Severity, Timestamp};

    const DIR: &str = r#"
[[organization]]
id = "chatvendor"
kind = "vendor"

[[service]]
name = "svc-chatvendor"
organization = "chatvendor"
max_rate_per_minute = 10
categories = ["name", "email"]
"#;

    fn read(h: &mut Harness, t: i64, user: &str, cats: &[&str]) {
        h.push_access(AccessEvent {
            timestamp: Timestamp(t),
            user: user.into(),
            customer_ids: vec!["C-1".into()],
            records: 1,
            categories: cats.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        });
    }

    #[test]
    fn a_vendor_reading_payment_data_outside_its_purpose_is_critical_at_once() {
        let mut h = Harness::new(DIR, None);
        for i in 0..100 {
            read(
                &mut h,
                t0() + i * HOUR,
                "svc-chatvendor",
                &["name", "email"],
            );
        }
        assert!(Harness::rule(&h.alerts, "new_category").is_empty());
        read(
            &mut h,
            t0() + 101 * HOUR,
            "svc-chatvendor",
            &["name", "payment_card", "password"],
        );
        read(
            &mut h,
            t0() + 102 * HOUR,
            "svc-chatvendor",
            &["payment_card"],
        );
        let alerts = h.finish();
        let n = Harness::rule(&alerts, "new_category");
        assert_eq!(n[0].severity, Severity::Critical);
        assert!(n.iter().all(|a| a.id == n[0].id));
        assert!(
            n[0].message.contains("payment_card, password"),
            "{}",
            n[0].message
        );
    }

    #[test]
    fn a_new_hire_learns_and_steady_accounts_stay_quiet() {
        let mut h = Harness::new(DIR, None);
        // A new hire reads more categories over the first days: learning.
        read(&mut h, t0(), "cc.new", &["name"]);
        read(&mut h, t0() + DAY, "cc.new", &["name", "phone", "address"]);
        for d in 3..20 {
            read(&mut h, t0() + d * DAY, "cc.new", &["name", "phone"]);
            read(&mut h, t0() + d * DAY, "svc-chatvendor", &["email"]);
        }
        assert!(Harness::rule(&h.alerts, "new_category").is_empty());
        // After learning, a new sensitive category is high.
        read(&mut h, t0() + 21 * DAY, "cc.new", &["national_id"]);
        let alerts = h.finish();
        let n = Harness::rule(&alerts, "new_category");
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].severity, Severity::High);
    }
}
