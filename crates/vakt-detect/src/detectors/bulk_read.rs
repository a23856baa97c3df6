//! `bulk_read`: one request returning far more records than the account
//! ever needs, weighted by how sensitive the data is.
//!
//! For S3 (T-Mobile): a store's value to an attacker grows faster than its
//! record count, so one export of national ids is worth more than many
//! lookups; bulk reads and exports are where breaches become large.
//!
//! - State: per account, the largest read it made (decaying) and how many
//!   reads it was learned from; per peer group, a bounded sample of the
//!   largest reads of its accounts (about 16 bytes per account).
//! - Thresholds: a read of at least 1,000 records (`min_records`) and over
//!   10x (`factor`) the larger of the account's own largest read and its
//!   peers' 99th percentile is `medium`; 10,000 records (`large_records`),
//!   sensitive categories (national id, payment card, password, driver's
//!   licence) or a time outside the account's hours each raise it. A
//!   declared batch job inside its hours and under its `max_records` is
//!   expected; outside either it is judged like any account. An export or
//!   unkeyed search whose size the log cannot tell (pgaudit `COPY ... TO`)
//!   is `medium` unless the account does that routinely (more than 5
//!   times, `routine_exports`). Each threshold is a parameter ([`PARAMS`]).
//! - Blind spots: in [`INFO`] (`vakt detectors` shows them).

use crate::detector::{actor_of, reference, Detector, DetectorInfo, Finding};
use crate::evidence;
use crate::params::{Param, Settings, Values};
use crate::state::{Keyed, PeerSample};
use vakt_enrich::snapshot::{self, SnapshotError};
use vakt_enrich::Enriched;
use vakt_event::directory::AccountKind;
use vakt_event::event::category_weight;
use vakt_event::{Action, Event, Severity, Timestamp};

pub const INFO: DetectorInfo = DetectorInfo {
    id: "bulk_read",
    title: "one request returning far more records than the account ever needs",
    incidents: &["S3"],
    remediation: "revoke bulk export rights; limit exports to declared batch jobs",
    blind_spots: "many small reads (for `rate` and `volume_peers`); a baseline that already includes earlier bulk reads by the same account",
    params: PARAMS,
    per_organization: false,
};

pub const PARAMS: &[Param] = &[
    Param::count(
        "min_records",
        1_000.0,
        "records in one read below which it is not judged",
    ),
    Param::number(
        "factor",
        10.0,
        "times the larger of the account's largest read and its peers' 99th percentile",
    ),
    Param::count(
        "large_records",
        10_000.0,
        "records in one read that raise the severity",
    ),
    Param::count(
        "routine_exports",
        5.0,
        "exports of unknown size after which the account does them routinely",
    ),
];

struct Limits {
    min_records: u64,
    factor: f64,
    large: u64,
    routine_exports: u16,
}

impl Limits {
    fn new(v: &Values) -> Limits {
        Limits {
            min_records: v.get("min_records") as u64,
            factor: v.get("factor"),
            large: v.get("large_records") as u64,
            routine_exports: v.get("routine_exports").min(u16::MAX as f64) as u16,
        }
    }
}

pub(crate) fn build(s: &Settings) -> Box<dyn Detector> {
    Box::new(BulkRead {
        limits: Limits::new(&s.global),
        accounts: Keyed::default(),
        peers: Keyed::default(),
    })
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Reads {
    largest: f32,
    reads: u32,
    unsized_bulk: u16,
}

pub struct BulkRead {
    limits: Limits,
    accounts: Keyed<Reads>,
    peers: Keyed<PeerSample>,
}

impl Detector for BulkRead {
    fn info(&self) -> &'static DetectorInfo {
        &INFO
    }

    fn observe(&mut self, ev: &Enriched, out: &mut Vec<Finding>) {
        let Event::Access(a) = ev.event else { return };
        if !a.action.reads_data() {
            return;
        }
        let now = a.timestamp;
        let lim = &self.limits;
        let expected_batch = ev.kind() == AccountKind::Batch
            && ev.in_hours != Some(false)
            && a.records
                <= ev
                    .account
                    .and_then(|acc| acc.max_records)
                    .unwrap_or(u64::MAX);
        // Only a database log can say a statement read without a key; a web
        // search with no result count is just a search.
        let size_unknown = a.records == 0
            && a.customer_ids.is_empty()
            && a.db_statement.is_some()
            && matches!(a.action, Action::Export | Action::Search);
        let peer = self
            .peers
            .get(ev.peer_group)
            .map(|p| p.quantile(0.99))
            .unwrap_or(0.0);
        let acc = self.accounts.touch(ev.actor, now, Reads::default);
        let own = acc.largest as f64;
        let baseline = own.max(peer).max(1.0);
        let records = a.records;
        // Learn after judging, so the read does not excuse itself.
        acc.largest = (acc.largest * 0.999).max(records as f32);
        acc.reads = acc.reads.saturating_add(1);
        if size_unknown {
            acc.unsized_bulk = acc.unsized_bulk.saturating_add(1);
        }
        let routine_unknown = acc.unsized_bulk > lim.routine_exports;
        if records > 0 && records as f64 >= lim.min_records as f64 / 10.0 {
            let p = self.peers.touch(ev.peer_group, now, PeerSample::default);
            p.push(records.min(u32::MAX as u64) as u32);
        }
        if expected_batch {
            return;
        }
        let over = records >= lim.min_records && records as f64 > lim.factor * baseline;
        let report_unknown_size = size_unknown && !routine_unknown;
        if !over && !report_unknown_size {
            return;
        }
        let sensitive: Vec<&str> = a
            .categories
            .iter()
            .filter(|c| category_weight(c) >= 8)
            .map(String::as_str)
            .collect();
        let mut severity = Severity::Medium;
        if records >= lim.large {
            severity = severity.raised();
        }
        if !sensitive.is_empty() {
            severity = severity.raised();
        }
        if ev.in_hours == Some(false) {
            severity = severity.raised();
        }
        let size = if size_unknown {
            "an export of unknown size".to_string()
        } else {
            format!("{records} records")
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
                "{} read {size} in one {} ({}){}{}; its largest read so far was {:.0} and its peers' 99th percentile {:.0}",
                a.user,
                a.action.as_str(),
                a.categories.join(", "),
                if sensitive.is_empty() { String::new() } else { format!(", including {}", sensitive.join(", ")) },
                if ev.in_hours == Some(false) { ", outside its working hours" } else { "" },
                own,
                peer
            ),
            evidence: evidence! {
                "observed_records" => records,
                "baseline_own_largest" => own.round(),
                "baseline_peers_p99" => peer.round(),
                "threshold" => (lim.factor * baseline).max(lim.min_records as f64).round(),
                "sensitive_categories" => sensitive,
                "outside_hours" => ev.in_hours == Some(false),
                "source_ip" => a.source_ip.map(|i| i.to_string()),
                "statement" => a.db_statement.as_deref(),
                "event" => reference(ev),
            },
            customers: records.max(a.customer_ids.len() as u64),
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
    use vakt_event::time::{DAY, HOUR};
    use vakt_event::{AccessEvent, Action, Severity, Timestamp};

    const DIR: &str = r#"
[[organization]]
id = "it"
kind = "employee"
networks = ["10.60.0.0/16"]

[[account]]
name = "dba.lind"
organization = "it"
role = "dba"
hours = "09:00-17:00"
timezone = "Europe/Stockholm"

[[account]]
name = "batch-nightly-export"
organization = "it"
role = "export"
kind = "batch"
hours = "01:00-03:00"
timezone = "Europe/Stockholm"
max_records = 120000
"#;

    fn read(h: &mut Harness, t: i64, user: &str, action: Action, records: u64, cats: &[&str]) {
        h.push_access(AccessEvent {
            timestamp: Timestamp(t),
            user: user.into(),
            source_ip: "10.60.0.20".parse().ok(),
            action,
            records,
            categories: cats.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        });
    }

    #[test]
    fn a_night_export_of_national_ids_is_critical() {
        let mut h = Harness::new(DIR, None);
        for day in 0..10 {
            read(
                &mut h,
                t0() + day * DAY + 10 * HOUR,
                "dba.lind",
                Action::Search,
                3,
                &["name"],
            );
        }
        // 02:30 local (01:30 UTC in November).
        read(
            &mut h,
            t0() + 12 * DAY + HOUR + HOUR / 2,
            "dba.lind",
            Action::Export,
            800_000,
            &["name", "national_id"],
        );
        let alerts = h.finish();
        let b = Harness::rule(&alerts, "bulk_read");
        assert_eq!(b.len(), 1, "{b:#?}");
        assert_eq!(b[0].severity, Severity::Critical);
        assert!(b[0].message.contains("national_id"));
        assert_eq!(b[0].customers, 800_000);
    }

    #[test]
    fn the_declared_nightly_batch_export_is_expected_but_not_by_day_or_above_its_max() {
        let mut h = Harness::new(DIR, None);
        for day in 0..20 {
            // 01:30 local = 00:30 UTC.
            read(
                &mut h,
                t0() + day * DAY + HOUR / 2,
                "batch-nightly-export",
                Action::Export,
                90_000,
                &["name", "address"],
            );
        }
        assert!(Harness::rule(&h.alerts, "bulk_read").is_empty());
        read(
            &mut h,
            t0() + 21 * DAY + 13 * HOUR,
            "batch-nightly-export",
            Action::Export,
            90_000,
            &["name"],
        );
        read(
            &mut h,
            t0() + 22 * DAY + HOUR / 2,
            "batch-nightly-export",
            Action::Export,
            2_000_000,
            &["name"],
        );
        // Outside its window its own history is its baseline: 90k is normal for it, 2M is not.
        let alerts = h.finish();
        assert_eq!(Harness::rule(&alerts, "bulk_read").len(), 1);
    }

    #[test]
    fn a_database_export_of_unknown_size_is_reported_but_not_a_web_search() {
        let mut h = Harness::new(DIR, None);
        read(&mut h, t0() + 9 * HOUR, "dba.lind", Action::Search, 0, &[]);
        assert!(Harness::rule(&h.alerts, "bulk_read").is_empty());
        h.push_access(AccessEvent {
            timestamp: Timestamp(t0() + 10 * HOUR),
            user: "dba.lind".into(),
            action: Action::Export,
            db_statement: Some("COPY customers TO STDOUT".into()),
            ..Default::default()
        });
        assert_eq!(Harness::rule(&h.finish(), "bulk_read").len(), 1);
    }
}
