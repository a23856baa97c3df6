//! `canary`: an account touched a planted fake customer.
//!
//! For every incident (S1 to S6): canaries are customers that exist only
//! in the database and the directory; no business process ever reads one,
//! so any read is a high-confidence signal that someone is enumerating,
//! exporting or browsing outside any purpose.
//!
//! - State: per account, the number of canary touches and the first time
//!   (a few bytes per account that ever touched one).
//! - Thresholds: none; the first touch is `critical`.
//! - Blind spots: in [`INFO`] (`vakt detectors` shows them).

use crate::detector::{actor_of, reference, Detector, DetectorInfo, Finding};
use crate::evidence;
use crate::params::Settings;
use crate::state::Keyed;
use vakt_enrich::snapshot::{self, SnapshotError};
use vakt_enrich::{Enriched, Enricher};
use vakt_event::{Event, Severity, Timestamp};

pub const INFO: DetectorInfo = DetectorInfo {
    id: "canary",
    title: "an account touched a planted fake customer",
    incidents: &["S1", "S2", "S3", "S4", "S5", "S6"],
    remediation: "treat the account as compromised; block it and review all its reads",
    blind_spots: "only customer ids named in the event count, so a bulk export whose rows are not listed (a pgaudit `COPY` without row data) is caught by `bulk_read`, not here; needs `[[canary]]` entries",
    params: &[],
    per_organization: false,
};

pub(crate) fn build(_: &Settings) -> Box<dyn Detector> {
    Box::new(Canary::default())
}

#[derive(Default)]
pub struct Canary {
    touched: Keyed<(Timestamp, u32)>,
}

impl Detector for Canary {
    fn info(&self) -> &'static DetectorInfo {
        &INFO
    }

    fn missing(&self, enricher: &Enricher) -> Option<String> {
        (!enricher.has_canaries())
            .then(|| "no [[canary]] entries in the directory; plant canaries to enable it".into())
    }

    fn observe(&mut self, ev: &Enriched, out: &mut Vec<Finding>) {
        if ev.canaries.is_empty() {
            return;
        }
        let Event::Access(a) = ev.event else { return };
        let (first, count) = self
            .touched
            .touch(ev.actor, a.timestamp, || (a.timestamp, 0));
        *count += ev.canaries.len() as u32;
        out.push(Finding {
            rule: INFO.id,
            key: a.user.clone(),
            actor: actor_of(ev),
            organization: ev.organization.map(str::to_owned),
            severity: Severity::Critical,
            at: a.timestamp,
            first_seen: *first,
            message: format!(
                "{} read canary customer {} ({} canary touch{} so far); no legitimate process reads canaries",
                a.user,
                ev.canaries.join(", "),
                count,
                if *count == 1 { "" } else { "es" }
            ),
            evidence: evidence! {
                "canaries" => ev.canaries,
                "observed_touches" => *count,
                "baseline_touches" => 0,
                "action" => a.action.as_str(),
                "event" => reference(ev),
            },
            customers: a.customer_ids.len() as u64,
        });
    }

    fn evict(&mut self, horizon: Timestamp) {
        self.touched.evict(horizon);
    }

    fn save(&self) -> Result<Vec<u8>, SnapshotError> {
        snapshot::save(&self.touched)
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SnapshotError> {
        self.touched = snapshot::load(state)?;
        Ok(())
    }

    fn tracked_keys(&self) -> usize {
        self.touched.len()
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;

    const DIR: &str = r#"
[[canary]]
customer_id = "C-900001"
label = "planted 2026-11"
"#;

    #[test]
    fn reading_a_canary_is_critical_and_one_incident() {
        let mut h = Harness::new(DIR, None);
        h.access("2026-11-02T08:00:00Z", "r17.anna", "lookup", &["C-1"]);
        h.access("2026-11-02T08:01:00Z", "r17.anna", "lookup", &["C-900001"]);
        h.access(
            "2026-11-02T08:02:00Z",
            "r17.anna",
            "search",
            &["C-2", "C-900001"],
        );
        let alerts = h.finish();
        let canary: Vec<_> = alerts.iter().filter(|a| a.rule == "canary").collect();
        assert_eq!(canary.len(), 2, "{canary:#?}"); // new + final update
        assert_eq!(canary[0].severity, vakt_event::Severity::Critical);
        assert_eq!(canary[0].id, canary[1].id);
        assert!(
            canary[1].message.contains("2 canary touches"),
            "{}",
            canary[1].message
        );
    }

    #[test]
    fn ordinary_customers_are_not_canaries() {
        let mut h = Harness::new(DIR, None);
        for i in 0..500 {
            h.access(
                &format!("2026-11-02T08:{:02}:{:02}Z", i / 60, i % 60),
                "r17.anna",
                "lookup",
                &[&format!("C-{i}")],
            );
        }
        assert!(h.finish().iter().all(|a| a.rule != "canary"));
    }
}
