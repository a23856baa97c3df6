//! The engine: enrich each event once, show it to every detector, merge
//! findings into incidents, and forget idle state in event time.

use crate::detector::{Detector, Finding};
use crate::incidents::Incidents;
use std::collections::BTreeMap;
use vakt_enrich::Enricher;
use vakt_event::time::{DAY, HOUR};
use vakt_event::{Alert, Event, EventKind, Timestamp};

/// How long a key may stay idle before its state is forgotten. Longer than
/// the longest baseline (14 days) plus a holiday.
pub const IDLE_HORIZON: i64 = 35 * DAY;

#[derive(Debug, Default, Clone)]
pub struct EngineStats {
    pub access: u64,
    pub flow: u64,
    /// Events older than the latest seen by more than the tolerated lateness.
    pub late: u64,
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
