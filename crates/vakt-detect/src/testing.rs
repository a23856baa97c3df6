//! Helpers for detector tests: build events tersely, run them through the
//! real engine with a directory, collect the alerts.

use crate::detectors::build;
use crate::engine::Engine;
use std::sync::Arc;
use vakt_enrich::{Cases, Enricher};
use vakt_event::{AccessEvent, Action, Alert, Directory, Event, FlowEvent, Origin, Timestamp};

pub struct Harness {
    pub engine: Engine,
    pub alerts: Vec<Alert>,
    line: u64,
}

pub fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).expect("test timestamp")
}

impl Harness {
    pub fn new(directory: &str, cases: Option<&str>) -> Harness {
        let dir = Directory::from_toml(directory, "test.toml").expect("test directory");
        let cases =
            cases.map(|c| Cases::from_reader(c.as_bytes(), "cases.csv").expect("test cases"));
        let detectors = build(&dir).expect("test parameters");
        let engine = Engine::new(Enricher::new(Arc::new(dir), cases, None), detectors);
        Harness {
            engine,
            alerts: Vec::new(),
            line: 0,
        }
    }

    pub fn origin(&mut self) -> Origin {
        self.line += 1;
        Origin::new("test".into(), self.line)
    }

    /// A successful access with the given customers.
    pub fn access(&mut self, at: &str, user: &str, action: &str, customers: &[&str]) {
        let ev = AccessEvent {
            timestamp: ts(at),
            user: user.into(),
            action: Action::parse(action),
            customer_ids: customers.iter().map(|c| c.to_string()).collect(),
            records: customers.len() as u64,
            origin: self.origin(),
            ..Default::default()
        };
        self.push(Event::Access(ev));
    }

    /// Any access event, with the harness's origin filled in.
    pub fn push_access(&mut self, mut ev: AccessEvent) {
        ev.origin = self.origin();
        self.push(Event::Access(ev));
    }

    pub fn push_flow(&mut self, mut ev: FlowEvent) {
        ev.origin = self.origin();
        self.push(Event::Flow(ev));
    }

    pub fn push(&mut self, ev: Event) {
        let alerts = &mut self.alerts;
        self.engine.process(&ev, &mut |a| alerts.push(a));
    }

    pub fn finish(mut self) -> Vec<Alert> {
        let alerts = &mut self.alerts;
        self.engine.finish(&mut |a| alerts.push(a));
        self.alerts
    }

    /// Alerts of one rule.
    pub fn rule<'a>(alerts: &'a [Alert], rule: &str) -> Vec<&'a Alert> {
        alerts.iter().filter(|a| a.rule == rule).collect()
    }
}

/// Milliseconds from `2026-11-02T00:00:00Z` (a Monday).
pub fn t0() -> i64 {
    ts("2026-11-02T00:00:00Z").0
}

impl Harness {
    /// A lookup of one customer at `t` ms, from `ip`, with or without a case.
    pub fn lookup(&mut self, t: i64, user: &str, ip: &str, customer: u64, case: bool) {
        self.push_access(AccessEvent {
            timestamp: Timestamp(t),
            user: user.into(),
            source_ip: ip.parse().ok(),
            action: Action::Lookup,
            customer_ids: vec![format!("C-{customer:07}")],
            records: 1,
            categories: vec!["name".into(), "phone".into()],
            case_id: case.then(|| format!("K-{customer}")),
            ..Default::default()
        });
    }
}
