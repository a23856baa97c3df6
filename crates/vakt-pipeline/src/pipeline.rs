//! [`Pipeline`]: ledger write, detect, decide, deliver, in that order (the
//! crate doc says why).

use crate::outlet::Outlet;
use crate::PipelineError;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use vakt_detect::detectors;
use vakt_detect::Engine;
use vakt_enrich::{Cases, Enricher, GeoIp};
use vakt_event::exception::suppressing;
use vakt_event::{Alert, Directory, Event, Timestamp};
use vakt_ledger::decisions::{self, Decision};
use vakt_ledger::Ledger;

/// What the engine is built from: the side inputs of a run. A plain
/// value, so front ends, benches and tests build it the same way.
#[derive(Default)]
pub struct PipelineConfig {
    /// Organisations, networks, accounts, canaries, and the `[[policy]]`
    /// entries that turn alerts into decisions.
    pub directory: Arc<Directory>,
    /// Business context (cases), for `no_business_context`.
    pub cases: Option<Cases>,
    /// Country and ASN databases for flows' destinations.
    pub geoip: Option<GeoIp>,
}

/// What a pipeline did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PipelineReport {
    /// Events processed in full.
    pub events: u64,
    /// Events that only rebuilt detector state (the ledger had them).
    pub replayed: u64,
    /// Movable sources whose detector state came from a snapshot.
    pub restored: u64,
    /// Detector snapshots taken, and their bytes in all.
    pub snapshots: u64,
    pub snapshot_bytes: u64,
    /// Accesses appended to the ledger.
    pub appended: u64,
    /// Alert lines raised.
    pub alert_lines: u64,
    /// Decisions the policies made.
    pub decisions: u64,
    /// Alert lines an exception suppressed (recorded, not decided or
    /// delivered), per rule; they are counted in `alert_lines` too.
    pub suppressed: BTreeMap<String, u64>,
    /// The first error of each outlet that failed, by outlet name. An
    /// outlet's failure does not stop the pipeline.
    pub outlet_errors: Vec<(String, String)>,
}

/// How an event went through [`Pipeline::process`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Processed {
    /// Recorded, detected, decided and delivered.
    New,
    /// Already in the ledger: it rebuilt detector state only.
    Replayed,
}

/// The act step: owns the engine, the ledger, the policies and the
/// outlets. See the crate doc for the order and the replay story.
pub struct Pipeline {
    engine: Engine,
    /// Sources with detector state of their own (see
    /// [`Pipeline::resume_movable`]), each with its engine.
    movable: HashMap<Arc<str>, Engine>,
    ledger: Option<Ledger>,
    directory: Arc<Directory>,
    outlets: Vec<Box<dyn Outlet>>,
    report: PipelineReport,
    /// Per source read in line order, the last line the ledger held in
    /// full when the source was resumed.
    replay_until: HashMap<Arc<str>, u64>,
    alerts: Vec<Alert>,
}

impl Pipeline {
    /// A pipeline over `ledger` (none: detect and deliver only). Detector
    /// parameters are checked here, so a bad one stops the start.
    pub fn new(config: PipelineConfig, ledger: Option<Ledger>) -> Result<Pipeline, PipelineError> {
        let directory = config.directory;
        let detectors = detectors::build(&directory)?;
        let enricher = Enricher::new(directory.clone(), config.cases, config.geoip);
        Ok(Pipeline {
            engine: Engine::new(enricher, detectors),
            movable: HashMap::new(),
            ledger,
            directory,
            outlets: Vec::new(),
            report: PipelineReport::default(),
            replay_until: HashMap::new(),
            alerts: Vec::new(),
        })
    }

    /// Adds an outlet; every alert line goes to each, in the order added.
    pub fn with_outlet(mut self, outlet: impl Outlet + 'static) -> Pipeline {
        self.outlets.push(Box::new(outlet));
        self
    }

    /// One note per detector that lacks an input it needs, to say once at start.
    pub fn missing_inputs(&self) -> Vec<(&'static str, String)> {
        self.engine.missing_inputs()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    pub fn ledger(&self) -> Option<&Ledger> {
        self.ledger.as_ref()
    }

    /// The ledger, for metadata written beside the pipeline's own (a
    /// page check's inventory).
    pub fn ledger_mut(&mut self) -> Option<&mut Ledger> {
        self.ledger.as_mut()
    }

    pub fn report(&self) -> &PipelineReport {
        &self.report
    }

    /// Swaps in an edited directory between two events (see
    /// [`Engine::reload`]): the enricher's lookups, the detectors whose
    /// parameters changed, and the policies that make decisions. Returns the
    /// rules whose detectors start afresh; on an error nothing changed.
    pub fn reload(
        &mut self,
        directory: Arc<Directory>,
    ) -> Result<Vec<&'static str>, PipelineError> {
        let rebuilt = self.engine.reload(directory.clone())?;
        // The main engine checked the parameters: the others take them too.
        for engine in self.movable.values_mut() {
            engine.reload(directory.clone())?;
        }
        self.directory = directory;
        Ok(rebuilt)
    }

    /// Runs one event through the act step. On
    /// [`PipelineError::NotRecorded`] nothing happened to the event; on
    /// any other error the pipeline should be stopped.
    pub fn process(&mut self, event: &Event) -> Result<Processed, PipelineError> {
        if self.is_behind_progress(event) {
            self.rebuild(event);
            return Ok(Processed::Replayed);
        }
        if let (Some(ledger), Event::Access(a)) = (self.ledger.as_mut(), event) {
            let organization = self.engine.enricher().organization_of(a);
            match ledger.append_as(a, organization) {
                Ok(true) => self.report.appended += 1,
                Ok(false) => {
                    self.rebuild(event);
                    return Ok(Processed::Replayed);
                }
                Err(e) => return Err(PipelineError::NotRecorded(e)),
            }
        }
        self.report.events += 1;
        let mut alerts = std::mem::take(&mut self.alerts);
        self.engine_of(event)
            .process(event, &mut |a| alerts.push(a));
        let acted = self.act(&mut alerts);
        self.alerts = alerts;
        let decided = acted?;
        if let Some(l) = self.ledger.as_mut() {
            if decided {
                l.commit()?;
            } else {
                l.commit_if_due()?;
            }
        }
        Ok(Processed::New)
    }

    /// Raises an alert found outside the detectors (an enforcement point's
    /// own finding, such as a step-up lockout): recorded, decided by the
    /// policies and delivered as a detector's alert is, and committed at
    /// once so its decisions apply. Returns whether a decision was made.
    pub fn raise(&mut self, alert: Alert) -> Result<bool, PipelineError> {
        let decided = self.act(&mut vec![alert])?;
        self.commit()?;
        Ok(decided)
    }

    /// Shows an event the ledger already holds to the detectors, for their
    /// state only: nothing is recorded, raised or sent.
    pub fn rebuild(&mut self, event: &Event) {
        self.report.replayed += 1;
        self.engine_of(event).process(event, &mut |_| {});
    }

    /// The engine that holds the state of `event`'s source.
    fn engine_of(&mut self, event: &Event) -> &mut Engine {
        if self.movable.is_empty() {
            return &mut self.engine;
        }
        match self.movable.get_mut(&event.origin().source) {
            Some(engine) => engine,
            None => &mut self.engine,
        }
    }

    /// Makes the events of `source` at or before the line its recorded
    /// progress names replays, and returns that line (0 without a ledger or
    /// a record). For sources read in line order; call it once a source is
    /// first seen, before its events. The cut stays where the ledger had it
    /// at that moment, so events of this run that arrive out of line order
    /// are never mistaken for replays.
    pub fn resume(&mut self, source: &Arc<str>) -> Result<u64, PipelineError> {
        if let Some(done) = self.replay_until.get(source) {
            return Ok(*done);
        }
        let done = match self.ledger.as_mut() {
            Some(l) => l.take_source(source)?,
            None => 0,
        };
        self.replay_until.insert(source.clone(), done);
        Ok(done)
    }

    /// [`Pipeline::resume`] for a source that may move to another node and
    /// back (a Kafka partition), and that is read again from its start
    /// when it arrives: its events get a detection engine of their own,
    /// so the lines the ledger holds rebuild its state (accounts' history,
    /// open incidents and their ids) exactly once, and
    /// [`Pipeline::release`] drops that state with the source. The first
    /// call after a release starts afresh.
    pub fn resume_movable(&mut self, source: &Arc<str>) -> Result<u64, PipelineError> {
        if !self.movable.contains_key(source) {
            let engine = self.engine.fresh()?;
            self.movable.insert(source.clone(), engine);
        }
        self.resume(source)
    }

    /// [`Pipeline::resume_movable`] for a source arriving at this node,
    /// from its snapshot when the ledger holds one it can use
    /// ([`vakt_ledger::snapshots`]): the source's engine takes that state,
    /// and the returned line is the snapshot's, after which reading
    /// starts (0: no usable snapshot, read the source from its start).
    /// A snapshot past the source's recorded progress, one that does not
    /// decode, or one from another version is said on stderr and left
    /// unused.
    pub fn arrive_movable(&mut self, source: &Arc<str>) -> Result<u64, PipelineError> {
        self.movable.remove(source);
        self.replay_until.remove(source);
        let done = self.resume_movable(source)?;
        let snapshot = match self.ledger.as_mut() {
            Some(l) => l.snapshot(source)?,
            None => None,
        };
        let Some(snapshot) = snapshot else {
            return Ok(0);
        };
        if snapshot.line > done {
            tracing::warn!(
                "{source}: its detector snapshot is at line {} but the ledger holds it only to line {done}; reading it from its start",
                snapshot.line
            );
            return Ok(0);
        }
        let Some(engine) = self.movable.get_mut(source) else {
            return Ok(0);
        };
        match engine.restore(&snapshot.state) {
            Ok(afresh) => {
                if !afresh.is_empty() {
                    tracing::warn!(
                        "{source}: {} start afresh from line {}: their parameters changed since the snapshot",
                        afresh.join(", "),
                        snapshot.line
                    );
                }
                self.report.restored += 1;
                Ok(snapshot.line)
            }
            Err(e) => {
                tracing::warn!("{source}: {e}; reading it from its start");
                Ok(0)
            }
        }
    }

    /// Keeps the detector state of the movable `source`, as of `line` (the
    /// last line its engine has seen), with the open batch: write it in a
    /// batch that records the source's progress to `line`. An engine that
    /// cannot be saved is said and skipped: the next node reads the
    /// source from its start, or from an earlier snapshot. Returns the
    /// snapshot's bytes (0: none taken).
    pub fn snapshot_movable(&mut self, source: &str, line: u64) -> Result<u64, PipelineError> {
        let (Some(engine), Some(ledger)) = (self.movable.get(source), self.ledger.as_mut()) else {
            return Ok(0);
        };
        let state = match engine.snapshot() {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!("{source}: {e}; no snapshot taken");
                return Ok(0);
            }
        };
        let bytes = state.len() as u64;
        ledger.put_snapshot(source, line, state)?;
        self.report.snapshot_bytes += bytes;
        self.report.snapshots += 1;
        Ok(bytes)
    }

    /// Lets go of `source` (a Kafka partition moved to another node):
    /// the next [`Pipeline::resume`] reads where it was left afresh, and
    /// the detector state its events built is dropped. Its open
    /// incidents are not closed: whichever node reads it next rebuilds
    /// them. Call it after a commit, so this node's work on it is
    /// recorded.
    pub fn release(&mut self, source: &str) {
        self.replay_until.remove(source);
        self.movable.remove(source);
        if let Some(l) = self.ledger.as_mut() {
            l.release_source(source);
        }
    }

    /// Records that `source` is processed up to `line`; committed with the
    /// entries, alerts and decisions of the open batch, and read back by
    /// [`Pipeline::resume`] at the next start.
    pub fn set_progress(&mut self, source: &str, line: u64) -> Result<(), PipelineError> {
        if let Some(l) = self.ledger.as_mut() {
            l.set_progress(source, line)?;
        }
        Ok(())
    }

    fn is_behind_progress(&self, event: &Event) -> bool {
        if self.replay_until.is_empty() {
            return false;
        }
        let origin = event.origin();
        self.replay_until
            .get(&origin.source)
            .is_some_and(|done| origin.line <= *done)
    }

    /// Commits the open batch now (a caller that goes idle, or stops).
    pub fn commit(&mut self) -> Result<(), PipelineError> {
        if let Some(l) = self.ledger.as_mut() {
            l.commit()?;
        }
        Ok(())
    }

    /// Records each alert and its decisions, then hands them to the
    /// outlets. An alert an exception in force matches is recorded with
    /// the exception's id and counted, and goes no further. Returns
    /// whether any decision was made.
    fn act(&mut self, alerts: &mut Vec<Alert>) -> Result<bool, PipelineError> {
        let mut decided = false;
        let now = Timestamp::now();
        // Read at each alert batch (alerts are rare next to events), so an
        // exception added over the API or the CLI applies to the next alert.
        let exceptions = match self.ledger.as_ref() {
            Some(l) if !alerts.is_empty() => l.exceptions(Some(now))?,
            _ => Vec::new(),
        };
        for alert in alerts.drain(..) {
            self.report.alert_lines += 1;
            if let Some(e) = suppressing(&exceptions, &alert, now) {
                *self
                    .report
                    .suppressed
                    .entry(alert.rule.clone())
                    .or_default() += 1;
                if let Some(l) = self.ledger.as_mut() {
                    l.record_alert_as(&alert, Some(&e.id))?;
                }
                for o in &mut self.outlets {
                    o.suppressed(&alert, &e.id);
                }
                continue;
            }
            let made: Vec<Decision> =
                decisions::from_alert(&self.directory.policies, &alert, Timestamp::now());
            self.report.decisions += made.len() as u64;
            decided |= !made.is_empty();
            if let Some(l) = self.ledger.as_mut() {
                l.record_alert(&alert)?;
                for d in &made {
                    l.put_decision(d)?;
                }
            }
            for o in &mut self.outlets {
                if let Err(e) = o.alert(&alert, &made) {
                    tracing::warn!("cannot send alert {} to {}: {e}", alert.id, o.name());
                    note_outlet_error(&mut self.report, o.name(), &e);
                }
            }
        }
        Ok(decided)
    }

    /// Ends the run: with `close_incidents`, the engine's open incidents
    /// give their last lines first (the end of a finite input); without,
    /// they stay open for the next start to rebuild (a server stopping).
    /// Commits and closes the ledger, finishes the outlets.
    pub fn finish(mut self, close_incidents: bool) -> Result<Finished, PipelineError> {
        if close_incidents {
            let mut alerts = Vec::new();
            self.engine.finish(&mut |a| alerts.push(a));
            let mut movable: Vec<_> = std::mem::take(&mut self.movable).into_iter().collect();
            movable.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, mut engine) in movable {
                engine.finish(&mut |a| alerts.push(a));
            }
            self.act(&mut alerts)?;
        }
        let ledger_counts = match self.ledger.take() {
            Some(l) => {
                let counts = l.counts();
                l.close()?;
                Some(counts)
            }
            None => None,
        };
        for o in &mut self.outlets {
            if let Err(e) = o.finish() {
                note_outlet_error(&mut self.report, o.name(), &e);
            }
        }
        Ok(Finished {
            report: self.report,
            engine: self.engine,
            ledger_counts,
        })
    }
}

/// Keeps the first error of each outlet for the report.
fn note_outlet_error(report: &mut PipelineReport, outlet: &str, e: &std::io::Error) {
    if !report.outlet_errors.iter().any(|(n, _)| n == outlet) {
        report
            .outlet_errors
            .push((outlet.to_owned(), e.to_string()));
    }
}

/// A finished pipeline: its report, and the engine for its figures.
pub struct Finished {
    pub report: PipelineReport,
    pub engine: Engine,
    /// Accesses appended and lines already recorded, when a ledger was kept.
    pub ledger_counts: Option<(u64, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use vakt_ledger::DataDir;

    const DIRECTORY: &str = r#"
[[organization]]
id = "partner-3"
networks = ["192.0.2.0/24"]

[[account]]
name = "p3.anna"
organization = "partner-3"
role = "sales"

[[canary]]
customer_id = "C-900001"
label = "planted"

[[policy]]
rule = "canary"
min_severity = "critical"
action = "block"
ttl = "1h"
"#;

    /// Records what reached it, for the tests.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<(String, usize)>>>);

    impl Outlet for Seen {
        fn name(&self) -> &str {
            "seen"
        }
        fn alert(&mut self, a: &Alert, d: &[Decision]) -> std::io::Result<()> {
            self.0.lock().unwrap().push((a.rule.clone(), d.len()));
            Ok(())
        }
    }

    fn read(source: &str, line: u64, minute: u32, customer: &str) -> Event {
        let json = format!(
            r#"{{"@timestamp":"2026-11-02T08:{minute:02}:00Z","event.kind":"access","event.action":"lookup","user.name":"p3.anna","source.ip":"192.0.2.10","customer.ids":["{customer}"],"records":1}}"#
        );
        vakt_ingest::parsers::jsonl::parse_event(
            &json,
            &vakt_event::Origin::new(source.into(), line),
        )
        .unwrap()
    }

    fn pipeline(data: &DataDir, seen: &Seen) -> Pipeline {
        let config = PipelineConfig {
            directory: Arc::new(Directory::from_toml(DIRECTORY, "d.toml").unwrap()),
            ..Default::default()
        };
        Pipeline::new(config, Some(Ledger::open(data).unwrap()))
            .unwrap()
            .with_outlet(seen.clone())
    }

    #[test]
    fn a_canary_read_is_recorded_alerted_decided_and_delivered_once() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir {
            path: tmp.path().join("data"),
        };
        let seen = Seen::default();
        let mut p = pipeline(&data, &seen);
        assert_eq!(
            p.process(&read("a.jsonl", 1, 0, "C-1")).unwrap(),
            Processed::New
        );
        assert_eq!(
            p.process(&read("a.jsonl", 2, 1, "C-900001")).unwrap(),
            Processed::New
        );
        // The decision was committed at once: another reader sees it now.
        let reader = Ledger::open_read(&data).unwrap();
        let decisions = reader.decisions(None).unwrap();
        assert_eq!(decisions.len(), 1, "{decisions:?}");
        assert_eq!(
            seen.0.lock().unwrap().as_slice(),
            &[("canary".to_string(), 1)]
        );
        let done = p.finish(true).unwrap();
        assert_eq!((done.report.appended, done.report.decisions), (2, 1));

        // The same input again: every access is a replay, nothing is raised again.
        let again = Seen::default();
        let mut p = pipeline(&data, &again);
        for (line, minute, c) in [(1, 0, "C-1"), (2, 1, "C-900001")] {
            assert_eq!(
                p.process(&read("a.jsonl", line, minute, c)).unwrap(),
                Processed::Replayed
            );
        }
        let done = p.finish(true).unwrap();
        assert_eq!((done.report.appended, done.report.replayed), (0, 2));
        assert!(again.0.lock().unwrap().is_empty());
    }

    #[test]
    fn after_a_reload_the_new_directorys_policies_make_the_decisions() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir {
            path: tmp.path().join("data"),
        };
        let seen = Seen::default();
        let mut p = pipeline(&data, &seen);
        // The same canary, and no policy: a canary read is alerted, not blocked.
        let edited = DIRECTORY.split("[[policy]]").next().unwrap();
        let rebuilt = p
            .reload(Arc::new(Directory::from_toml(edited, "d.toml").unwrap()))
            .unwrap();
        assert!(rebuilt.is_empty());
        p.process(&read("a.jsonl", 1, 0, "C-900001")).unwrap();
        assert_eq!(
            seen.0.lock().unwrap().as_slice(),
            &[("canary".to_string(), 0)]
        );
        assert!(p.directory().policies.is_empty());
    }

    #[test]
    fn lines_at_or_before_a_resumed_sources_progress_only_rebuild_state() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir {
            path: tmp.path().join("data"),
        };
        let source: Arc<str> = "journal".into();
        let seen = Seen::default();
        let mut p = pipeline(&data, &seen);
        assert_eq!(p.resume(&source).unwrap(), 0);
        p.process(&read("journal", 1, 0, "C-1")).unwrap();
        p.set_progress(&source, 1).unwrap();
        p.finish(false).unwrap();

        let mut p = pipeline(&data, &seen);
        assert_eq!(p.resume(&source).unwrap(), 1);
        assert_eq!(
            p.process(&read("journal", 1, 0, "C-1")).unwrap(),
            Processed::Replayed
        );
        assert_eq!(
            p.process(&read("journal", 3, 1, "C-900001")).unwrap(),
            Processed::New
        );
        // A line that arrives out of order in this run is not mistaken for a replay.
        p.set_progress(&source, 3).unwrap();
        assert_eq!(
            p.process(&read("journal", 2, 1, "C-2")).unwrap(),
            Processed::New
        );
        assert_eq!(seen.0.lock().unwrap().len(), 1);
    }

    #[test]
    fn an_access_the_ledger_refuses_reaches_no_detector() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir {
            path: tmp.path().join("data"),
        };
        let seen = Seen::default();
        let mut p = pipeline(&data, &seen);
        p.commit().unwrap();
        // Another writer holds the database: the append fails.
        let mut other = rusqlite_lock(&data);
        let r = p.process(&read("a.jsonl", 1, 0, "C-900001"));
        assert!(matches!(r, Err(PipelineError::NotRecorded(_))), "{r:?}");
        assert_eq!(p.engine().events(vakt_event::EventKind::Access), 0);
        assert!(seen.0.lock().unwrap().is_empty());
        other.release();
        assert_eq!(
            p.process(&read("a.jsonl", 1, 0, "C-900001")).unwrap(),
            Processed::New
        );
        assert_eq!(seen.0.lock().unwrap().len(), 1);
    }

    /// A failed login of `k.guess` at second `line` of 08:00.
    fn failed_login(source: &str, line: u64) -> Event {
        let json = format!(
            r#"{{"@timestamp":"2026-11-02T08:00:{line:02}Z","event.action":"login","event.outcome":"failure","user.name":"k.guess"}}"#
        );
        vakt_ingest::parsers::jsonl::parse_event(
            &json,
            &vakt_event::Origin::new(source.into(), line),
        )
        .unwrap()
    }

    /// `login_failures` at 5 failures, for the movable-source tests.
    fn five_failures() -> PipelineConfig {
        PipelineConfig {
            directory: Arc::new(
                Directory::from_toml("[detectors.login_failures]\nmin_failures = 5\n", "d.toml")
                    .unwrap(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn a_movable_source_rebuilds_its_own_state_once_each_time_it_arrives() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir {
            path: tmp.path().join("data"),
        };
        let seen = Seen::default();
        let mut p = Pipeline::new(five_failures(), Some(Ledger::open(&data).unwrap()))
            .unwrap()
            .with_outlet(seen.clone());
        let partition: Arc<str> = "kafka:access:0".into();
        let logins = |seen: &Seen| seen.0.lock().unwrap().len();

        assert_eq!(p.resume_movable(&partition).unwrap(), 0);
        for line in 1..=3 {
            p.process(&failed_login(&partition, line)).unwrap();
        }
        // The same account through another source: state of its own.
        for line in 1..=3 {
            p.process(&failed_login("journal", line)).unwrap();
        }
        p.set_progress(&partition, 3).unwrap();
        p.commit().unwrap();
        assert_eq!(logins(&seen), 0, "3 and 3 failures, each under 5");

        // The partition goes to another node and comes back, read from its start.
        p.release(&partition);
        assert_eq!(p.resume_movable(&partition).unwrap(), 3);
        for line in 1..=3 {
            assert_eq!(
                p.process(&failed_login(&partition, line)).unwrap(),
                Processed::Replayed
            );
        }
        p.process(&failed_login(&partition, 4)).unwrap();
        assert_eq!(logins(&seen), 0, "4 failures: the replay counted once");
        p.process(&failed_login(&partition, 5)).unwrap();
        assert_eq!(
            logins(&seen),
            1,
            "the 5th failure, as one reader would see it"
        );
    }

    #[test]
    fn a_movable_source_arrives_with_its_snapshot_and_reads_on_after_it() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir {
            path: tmp.path().join("data"),
        };
        let partition: Arc<str> = "kafka:access:0".into();
        let logins = |seen: &Seen| seen.0.lock().unwrap().len();

        let mut p = Pipeline::new(five_failures(), Some(Ledger::open(&data).unwrap())).unwrap();
        assert_eq!(p.arrive_movable(&partition).unwrap(), 0, "no snapshot yet");
        for line in 1..=3 {
            p.process(&failed_login(&partition, line)).unwrap();
        }
        p.snapshot_movable(&partition, 3).unwrap();
        p.set_progress(&partition, 3).unwrap();
        p.commit().unwrap();
        assert_eq!(p.report().snapshots, 1);
        p.finish(false).unwrap();

        // Another process takes the partition: from the snapshot, it reads
        // line 4 on, and the 5th failure raises the alert one reader would.
        let seen = Seen::default();
        let mut p = Pipeline::new(five_failures(), Some(Ledger::open(&data).unwrap()))
            .unwrap()
            .with_outlet(seen.clone());
        assert_eq!(p.arrive_movable(&partition).unwrap(), 3);
        assert_eq!(p.report().restored, 1);
        p.process(&failed_login(&partition, 4)).unwrap();
        assert_eq!(logins(&seen), 0);
        p.process(&failed_login(&partition, 5)).unwrap();
        assert_eq!(logins(&seen), 1, "3 failures came with the snapshot");

        // A snapshot past what the ledger holds is not used: its lines
        // would be neither recorded nor seen again.
        p.snapshot_movable(&partition, 9).unwrap();
        p.set_progress(&partition, 5).unwrap();
        p.commit().unwrap();
        p.release(&partition);
        assert_eq!(p.arrive_movable(&partition).unwrap(), 0);
        // An earlier snapshot does not replace a later one.
        p.snapshot_movable(&partition, 2).unwrap();
        p.commit().unwrap();
        let kept = p
            .ledger_mut()
            .unwrap()
            .snapshot(&partition)
            .unwrap()
            .unwrap();
        assert_eq!(kept.line, 9);
    }

    fn read_by(user: &str, line: u64, customer: &str) -> Event {
        let json = format!(
            r#"{{"@timestamp":"2026-11-02T08:00:00Z","event.kind":"access","event.action":"lookup","user.name":"{user}","customer.ids":["{customer}"],"records":1}}"#
        );
        vakt_ingest::parsers::jsonl::parse_event(&json, &vakt_event::Origin::new("x".into(), line))
            .unwrap()
    }

    fn exception(actor: &str, rule: &str) -> vakt_event::Exception {
        vakt_event::Exception::new(
            vakt_event::NewException {
                actor: Some(actor.into()),
                rule: Some(rule.into()),
                reason: "a test account".into(),
                ..Default::default()
            },
            "anna",
            Timestamp::now(),
            &crate::rule_ids(),
        )
        .unwrap()
    }

    fn except(data: &DataDir, actor: &str, rule: &str) -> vakt_event::Exception {
        let mut w = Ledger::open_read(data).unwrap();
        w.add_exception(&exception(actor, rule)).unwrap()
    }

    #[test]
    fn an_exception_suppresses_its_actors_alerts_of_its_rule_only() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir {
            path: tmp.path().join("data"),
        };
        let seen = Seen::default();
        let mut p = pipeline(&data, &seen);
        p.commit().unwrap();
        // Added while the pipeline runs: it applies to the next alert.
        let e = except(&data, "p3.tester", "canary");
        p.process(&read_by("p3.tester", 1, "C-900001")).unwrap();
        p.process(&read_by("p3.other", 2, "C-900001")).unwrap();
        p.commit().unwrap();
        assert_eq!(
            seen.0.lock().unwrap().as_slice(),
            &[("canary".to_string(), 1)],
            "only the other account's alert is delivered, with its decision"
        );
        let l = Ledger::open_read(&data).unwrap();
        let decisions = l.decisions(None).unwrap();
        assert_eq!(decisions.len(), 1);
        assert_eq!(decisions[0].value, "p3.other");
        let page = |suppressed| {
            l.alert_page(&vakt_ledger::alert_query::AlertQuery {
                limit: 10,
                suppressed: Some(suppressed),
                ..Default::default()
            })
            .unwrap()
            .lines
        };
        let hidden = page(true);
        assert_eq!(hidden.len(), 1);
        assert!(hidden[0].contains(&format!(r#""vakt.suppressed_by":"{}""#, e.id)));
        assert!(hidden[0].contains(r#""user.name":"p3.tester""#));
        assert_eq!(page(false).len(), 1);
        let done = p.finish(false).unwrap();
        assert_eq!(done.report.alert_lines, 2);
        assert_eq!(
            done.report.suppressed.into_iter().collect::<Vec<_>>(),
            [("canary".to_string(), 1)]
        );
    }

    #[test]
    fn expired_and_revoked_exceptions_no_longer_suppress() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir {
            path: tmp.path().join("data"),
        };
        let seen = Seen::default();
        let mut p = pipeline(&data, &seen);
        p.commit().unwrap();
        let mut w = Ledger::open_read(&data).unwrap();
        let mut ended = exception("p3.old", "canary");
        ended.until = Some(Timestamp(Timestamp::now().0 - 1));
        w.add_exception(&ended).unwrap();
        let revoked = except(&data, "p3.revoked", "canary");
        w.revoke_exception(&revoked.id, "bert").unwrap();
        p.process(&read_by("p3.old", 1, "C-900001")).unwrap();
        p.process(&read_by("p3.revoked", 2, "C-900001")).unwrap();
        assert_eq!(seen.0.lock().unwrap().len(), 2);
        let done = p.finish(false).unwrap();
        assert!(done.report.suppressed.is_empty());
        assert_eq!(done.report.decisions, 2);
    }

    /// Holds the ledger's write lock, as another writer would.
    struct WriteLock(rusqlite::Connection);

    impl WriteLock {
        fn release(&mut self) {
            self.0.execute_batch("COMMIT").unwrap();
        }
    }

    fn rusqlite_lock(data: &DataDir) -> WriteLock {
        let c = rusqlite::Connection::open(data.path.join("ledger.db")).unwrap();
        c.execute_batch("BEGIN EXCLUSIVE").unwrap();
        WriteLock(c)
    }
}
