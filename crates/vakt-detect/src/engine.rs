//! The engine: enrich each event once, show it to every detector, merge
//! findings into incidents, and forget idle state in event time.

use crate::detector::{Detector, Finding};
use crate::incidents::Incidents;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use vakt_enrich::snapshot::{self, SnapshotError};
use vakt_enrich::Enricher;
use vakt_event::time::{DAY, HOUR};
use vakt_event::{Alert, Directory, DirectoryError, Event, EventKind, Timestamp};

/// How long a key may stay idle before its state is forgotten. Longer than
/// the longest baseline (14 days) plus a holiday.
pub const IDLE_HORIZON: i64 = 35 * DAY;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct EngineStats {
    pub access: u64,
    pub flow: u64,
    /// Events older than the latest seen by more than the tolerated lateness.
    pub late: u64,
}

/// Bumped when what a snapshot holds changes shape: an older one is then
/// refused and the stream read again.
const SNAPSHOT_VERSION: u32 = 1;

/// An engine's state as [`Engine::snapshot`] writes it.
#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    detectors: Vec<SavedDetector>,
    #[serde(with = "serde_bytes")]
    enricher: Vec<u8>,
    #[serde(with = "serde_bytes")]
    incidents: Vec<u8>,
    watermark: Timestamp,
    next_sweep: Timestamp,
    stats: EngineStats,
}

#[derive(Serialize, Deserialize)]
struct SavedDetector {
    rule: String,
    /// Its parameters when saved ([`crate::params::Settings::fingerprint`]).
    values: String,
    #[serde(with = "serde_bytes")]
    state: Vec<u8>,
}

pub struct Engine {
    enricher: Enricher,
    detectors: Vec<Box<dyn Detector>>,
    incidents: Incidents,
    findings: Vec<Finding>,
    watermark: Timestamp,
    next_sweep: Timestamp,
    stats: EngineStats,
}

impl Engine {
    pub fn new(enricher: Enricher, detectors: Vec<Box<dyn Detector>>) -> Engine {
        Engine {
            enricher,
            detectors,
            incidents: Incidents::default(),
            findings: Vec::new(),
            watermark: Timestamp(i64::MIN),
            next_sweep: Timestamp(i64::MIN),
            stats: EngineStats::default(),
        }
    }

    /// An engine with the same directory, side inputs and detector
    /// parameters that has seen no event: state of its own for one stream
    /// (a Kafka partition, which may move to another node and back).
    pub fn fresh(&self) -> Result<Engine, DirectoryError> {
        let detectors = crate::detectors::build(self.enricher.directory())?;
        Ok(Engine::new(self.enricher.fresh(), detectors))
    }

    /// Everything this engine learned from its events (enricher ids,
    /// every detector's state, open incidents, the watermark), so another
    /// process can take the stream on from the same point
    /// ([`Engine::restore`]). The directory, cases and GeoIP are not in
    /// it: they are the run's configuration.
    pub fn snapshot(&self) -> Result<Vec<u8>, SnapshotError> {
        let settings = self.settings()?;
        let mut detectors = Vec::with_capacity(self.detectors.len());
        for d in &self.detectors {
            let values = settings
                .iter()
                .find(|s| s.info.id == d.id())
                .map(|s| s.fingerprint())
                .unwrap_or_default();
            detectors.push(SavedDetector {
                rule: d.id().to_owned(),
                values,
                state: d.save()?,
            });
        }
        snapshot::save(&Saved {
            version: SNAPSHOT_VERSION,
            detectors,
            enricher: self.enricher.save()?,
            incidents: self.incidents.save()?,
            watermark: self.watermark,
            next_sweep: self.next_sweep,
            stats: self.stats.clone(),
        })
        .map(snapshot::seal)
    }

    /// Takes the state [`Engine::snapshot`] saved, in place of this
    /// engine's; all of it or, on an error, none. A detector whose
    /// parameters differ from those it was saved under (the directory was
    /// edited) starts afresh, as a reload would make it: those rules are
    /// returned.
    pub fn restore(&mut self, state: &[u8]) -> Result<Vec<&'static str>, SnapshotError> {
        let saved: Saved = snapshot::load(snapshot::unseal(state)?)?;
        if saved.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Mismatch(format!(
                "written in format {}, this engine reads {SNAPSHOT_VERSION}",
                saved.version
            )));
        }
        let settings = self.settings()?;
        let mut detectors = Vec::with_capacity(settings.len());
        let mut afresh = Vec::new();
        for s in &settings {
            let Some(mut d) = crate::detectors::build_one(s) else {
                continue;
            };
            match saved.detectors.iter().find(|x| x.rule == d.id()) {
                Some(x) if x.values == s.fingerprint() => d.restore(&x.state)?,
                _ => afresh.push(d.id()),
            }
            detectors.push(d);
        }
        let mut enricher = self.enricher.fresh();
        enricher.restore(&saved.enricher)?;
        let rules: Vec<&'static str> = detectors.iter().map(|d| d.id()).collect();
        self.incidents = Incidents::restore(&saved.incidents, &rules)?;
        self.detectors = detectors;
        self.enricher = enricher;
        self.watermark = saved.watermark;
        self.next_sweep = saved.next_sweep;
        self.stats = saved.stats;
        Ok(afresh)
    }

    fn settings(&self) -> Result<Vec<crate::params::Settings>, SnapshotError> {
        // The directory passed this check when the engine was built.
        crate::detectors::settings(self.enricher.directory())
            .map_err(|e| SnapshotError::Mismatch(e.to_string()))
    }

    /// One note per detector that lacks an input it needs.
    pub fn missing_inputs(&self) -> Vec<(&'static str, String)> {
        self.detectors
            .iter()
            .filter_map(|d| d.missing(&self.enricher).map(|m| (d.id(), m)))
            .collect()
    }

    pub fn detector_ids(&self) -> Vec<&'static str> {
        self.detectors.iter().map(|d| d.id()).collect()
    }

    pub fn process(&mut self, event: &Event, emit: &mut dyn FnMut(Alert)) {
        let ts = event.timestamp();
        match event {
            Event::Access(_) => self.stats.access += 1,
            Event::Flow(_) => self.stats.flow += 1,
        }
        if ts > self.watermark {
            self.watermark = ts;
        } else if self.watermark.0 - ts.0 > crate::LATENESS {
            self.stats.late += 1;
        }
        let ids = self.enricher.prepare(event);
        let enriched = self.enricher.enrich(event, ids);
        for d in &mut self.detectors {
            d.observe(&enriched, &mut self.findings);
        }
        for f in self.findings.drain(..) {
            self.incidents.merge(f, emit);
        }
        if self.watermark >= self.next_sweep {
            self.sweep(emit);
        }
    }

    fn sweep(&mut self, emit: &mut dyn FnMut(Alert)) {
        if self.next_sweep.0 != i64::MIN {
            let horizon = Timestamp(self.watermark.0 - IDLE_HORIZON);
            for d in &mut self.detectors {
                d.evict(horizon);
            }
            self.incidents.sweep(self.watermark, emit);
        }
        self.next_sweep = Timestamp(self.watermark.0 + HOUR);
    }

    /// Swaps in an edited directory between two events. Its detector
    /// parameters are checked first; on an error nothing changes. A
    /// detector whose `[detectors.RULE]` values are the same as under the
    /// current directory keeps its state (actor ids survive, see
    /// [`Enricher::reload`]); one whose values changed is rebuilt and starts
    /// afresh. Returns the rules rebuilt. Assumes the detectors were built
    /// with [`crate::detectors::build`] from the current directory.
    pub fn reload(
        &mut self,
        directory: Arc<Directory>,
    ) -> Result<Vec<&'static str>, DirectoryError> {
        let new = crate::detectors::settings(&directory)?;
        // The running directory passed the same check when it was loaded.
        let old = crate::detectors::settings(self.enricher.directory()).ok();
        let mut rebuilt = Vec::new();
        for d in &mut self.detectors {
            let id = d.id();
            let Some(s) = new.iter().find(|s| s.info.id == id) else {
                continue;
            };
            let same = old
                .as_ref()
                .and_then(|o| o.iter().find(|o| o.info.id == id))
                .is_some_and(|o| o.same_values(s));
            if same {
                continue;
            }
            if let Some(fresh) = crate::detectors::build_one(s) {
                *d = fresh;
                rebuilt.push(id);
            }
        }
        self.enricher.reload(directory);
        Ok(rebuilt)
    }

    /// Ends the input: closes every open incident with its final figures.
    pub fn finish(&mut self, emit: &mut dyn FnMut(Alert)) {
        self.incidents.finish(emit);
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    pub fn events(&self, kind: EventKind) -> u64 {
        match kind {
            EventKind::Access => self.stats.access,
            EventKind::Flow => self.stats.flow,
        }
    }

    /// Incidents opened per rule.
    pub fn incidents_by_rule(&self) -> &BTreeMap<&'static str, u64> {
        &self.incidents.opened
    }

    /// Keys held by all detectors, and distinct actors seen.
    pub fn tracked(&self) -> (usize, usize) {
        (
            self.detectors.iter().map(|d| d.tracked_keys()).sum(),
            self.enricher.actors_seen(),
        )
    }

    pub fn enricher(&self) -> &Enricher {
        &self.enricher
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use std::sync::Arc;
    use vakt_event::{AccessEvent, Action, Directory, Outcome, Timestamp};

    fn failed_logins(h: &mut Harness, from_s: i64, n: i64, user: &str) {
        for i in from_s..from_s + n {
            h.push_access(AccessEvent {
                timestamp: Timestamp(ts("2026-11-02T13:20:00Z").0 + i * 1000),
                user: user.into(),
                action: Action::Login,
                outcome: Outcome::Failure,
                ..Default::default()
            });
        }
    }

    fn directory(text: &str) -> Arc<Directory> {
        Arc::new(Directory::from_toml(text, "d.toml").unwrap())
    }

    fn logins_alerts(h: &Harness) -> usize {
        Harness::rule(&h.alerts, "login_failures").len()
    }

    const TWENTY: &str = "[detectors.login_failures]\nmin_failures = 20\n";

    #[test]
    fn a_detector_whose_parameters_stay_keeps_its_state_across_a_reload() {
        let mut h = Harness::new(TWENTY, None);
        failed_logins(&mut h, 0, 12, "bot");
        assert_eq!(logins_alerts(&h), 0);
        let edited = format!("{TWENTY}\n[detectors.bulk_read]\nfactor = 20\n");
        let rebuilt = h.engine.reload(directory(&edited)).unwrap();
        assert_eq!(rebuilt, ["bulk_read"]);
        // 12 before and 8 after the reload make the 20 the threshold asks for.
        failed_logins(&mut h, 12, 8, "bot");
        assert_eq!(logins_alerts(&h), 1);
    }

    #[test]
    fn a_changed_threshold_applies_from_the_next_event_with_fresh_state() {
        let mut h = Harness::new(TWENTY, None);
        failed_logins(&mut h, 0, 12, "bot");
        let rebuilt = h
            .engine
            .reload(directory("[detectors.login_failures]\nmin_failures = 5\n"))
            .unwrap();
        assert_eq!(rebuilt, ["login_failures"]);
        let logins = h
            .engine
            .detectors
            .iter()
            .find(|d| d.id() == "login_failures");
        assert_eq!(logins.unwrap().tracked_keys(), 0, "state starts afresh");
        failed_logins(&mut h, 100, 4, "other");
        assert_eq!(logins_alerts(&h), 0);
        failed_logins(&mut h, 104, 1, "other");
        assert_eq!(logins_alerts(&h), 1, "5 failures now make an alert");
    }

    #[test]
    fn a_bad_parameter_is_refused_with_its_line_and_changes_nothing() {
        let mut h = Harness::new(TWENTY, None);
        let e = h
            .engine
            .reload(directory(
                "[[canary]]\ncustomer_id = \"C-1\"\n\n[detectors.login_failures]\nmin_failure = 5\n",
            ))
            .unwrap_err();
        assert_eq!((e.path.as_str(), e.line), ("d.toml", 5), "{e}");
        assert!(e.message.contains("min_failures"), "{e}");
        assert!(!h.engine.enricher().has_canaries());
        failed_logins(&mut h, 0, 20, "bot");
        assert_eq!(logins_alerts(&h), 1);
    }
}
