//! The engine task: one thread that runs the act pipeline
//! (`vakt_pipeline`: ledger, detect, decide, deliver) continuously over
//! the journal's batches and the followed files' lines.
//!
//! At start it replays the journal through the same pipeline: lines the
//! ledger's progress covers only rebuild the detectors' state; later lines
//! (accepted before a crash but not yet committed) are processed in full.
//! Each batch's progress is committed with its entries, alerts and
//! decisions, so nothing is recorded or raised twice.

use crate::journal;
use crate::metrics::Metrics;
use crate::ServerError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit};
use vakt_event::{Alert, Event, Origin};
use vakt_ledger::decisions::Decision;
use vakt_pipeline::{Outlet, Pipeline};

/// Events between commits while batches keep arriving.
const COMMIT_EVENTS: u64 = 50_000;
/// Longest time between commits while batches keep arriving.
const COMMIT_TIME: Duration = Duration::from_secs(1);

/// What the engine thread shares with the rest of the server.
pub(crate) struct EngineContext {
    /// Set when the engine stops on an error.
    pub(crate) failure: Arc<Failure>,
    /// How far each Kafka partition is committed, for the group.
    pub(crate) durable: Arc<Durable>,
    pub(crate) metrics: Arc<Metrics>,
    /// How often a held Kafka partition's detector state is snapshotted
    /// while its messages keep coming, besides when it leaves this node
    /// and at stop (`snapshot_seconds` in `[kafka]`).
    pub(crate) snapshot_every: Duration,
}

pub(crate) enum Msg {
    /// Events journaled up to `last_line`; the permit holds their room in the queue.
    Batch {
        events: Vec<Event>,
        last_line: u64,
        permit: OwnedSemaphorePermit,
    },
    /// The events of one line of a followed file, or of one Kafka
    /// message (`source` is the path, or the partition). They are
    /// processed together, never split by a commit: a source's progress
    /// says a line is done only once all its events are. The permit holds
    /// their room in the queue.
    Followed {
        source: Arc<str>,
        events: Vec<Event>,
        permit: OwnedSemaphorePermit,
    },
    /// Kafka partitions a rebalance is giving this node: each takes its
    /// detector snapshot when there is one. `start` gets, per source, the
    /// line its snapshot reflects (reading starts after it), or 0 to read
    /// it from its first offset.
    Arrive {
        sources: Vec<Arc<str>>,
        start: std::sync::mpsc::SyncSender<Vec<u64>>,
    },
    /// Kafka partitions a rebalance is taking away: commit what was done
    /// on them, let go of them, then say so on `done` (the group waits,
    /// so the next owner resumes from this node's last batch).
    Release {
        sources: Vec<Arc<str>>,
        done: std::sync::mpsc::SyncSender<()>,
    },
    /// An edited directory, checked: applied before the next event.
    Directory(Arc<vakt_event::Directory>),
    /// A payment page's check (module `pages`): its alerts are raised,
    /// then the check is recorded into the page's inventory.
    Page(Box<vakt_pipeline::pages::PageOutcome>),
    /// Drain what came before, commit, stop.
    Stop,
}

/// What the engine did in this run.
#[derive(Clone, Debug, Default)]
pub struct EngineReport {
    /// Journal lines read again at start, and followed lines the ledger held.
    pub replayed: u64,
    /// Events processed after the replay.
    pub events: u64,
    /// Accesses appended to the ledger.
    pub appended: u64,
    /// Alert lines recorded.
    pub alert_lines: u64,
    /// Decisions made by policies.
    pub decisions: u64,
}

/// Counts alert lines, and suppressed ones, by rule for `/metrics`.
pub(crate) struct AlertCounter(pub(crate) Arc<Metrics>);

impl Outlet for AlertCounter {
    fn name(&self) -> &str {
        "metrics"
    }

    fn alert(&mut self, alert: &Alert, _: &[Decision]) -> std::io::Result<()> {
        let rule = crate::metrics::RuleLabel {
            rule: alert.rule.clone(),
        };
        self.0.alerts.get_or_create(&rule).inc();
        Ok(())
    }

    fn suppressed(&mut self, alert: &Alert, _: &str) {
        let rule = crate::metrics::RuleLabel {
            rule: alert.rule.clone(),
        };
        self.0.suppressed.get_or_create(&rule).inc();
    }
}

/// Set when the engine stops on an error: ingest answers 503 and the
/// server shuts down.
#[derive(Default)]
pub(crate) struct Failure {
    pub(crate) message: Mutex<Option<String>>,
    pub(crate) notify: Notify,
}

impl Failure {
    pub(crate) fn get(&self) -> Option<String> {
        self.message.lock().ok().and_then(|m| m.clone())
    }

    fn set(&self, m: String) {
        if let Ok(mut g) = self.message.lock() {
            g.get_or_insert(m);
        }
        self.notify.notify_one();
    }
}

struct Worker {
    pipeline: Pipeline,
    /// The journal's name in the ledger.
    source: Arc<str>,
    /// Journal lines read at start.
    journal_replayed: u64,
    /// Events processed, and events replayed, when the journal's replay ended.
    events_at_start: u64,
    replayed_at_start: u64,
    since_commit: u64,
    /// Followed files and Kafka partitions processed since the last
    /// commit, and how far: their progress is written once per commit,
    /// not once per event.
    progressed: HashMap<Arc<str>, u64>,
    /// How far each Kafka partition is committed to the ledger, for the
    /// consumer to commit to its group (module `kafka`).
    durable: Arc<Durable>,
    /// Per Kafka partition held: the last line its engine saw, and the
    /// line and time of its last snapshot.
    partitions: HashMap<Arc<str>, Held>,
    metrics: Arc<Metrics>,
    snapshot_every: Duration,
}

/// A Kafka partition this node holds.
struct Held {
    seen: u64,
    snapshot_line: u64,
    snapshot_at: Instant,
}

/// How far each Kafka partition is in the ledger, as committed.
pub(crate) type Durable = Mutex<HashMap<Arc<str>, u64>>;

pub(crate) fn spawn(
    pipeline: Pipeline,
    journal_path: std::path::PathBuf,
    journal_lines: u64,
    rx: mpsc::UnboundedReceiver<Msg>,
    context: EngineContext,
) -> std::io::Result<std::thread::JoinHandle<Result<EngineReport, ServerError>>> {
    std::thread::Builder::new()
        .name("vakt-engine".into())
        .spawn(move || {
            let failure = context.failure.clone();
            let r = run(pipeline, &journal_path, journal_lines, rx, context);
            if let Err(e) = &r {
                failure.set(e.to_string());
            }
            r
        })
}

fn run(
    pipeline: Pipeline,
    journal_path: &std::path::Path,
    journal_lines: u64,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    context: EngineContext,
) -> Result<EngineReport, ServerError> {
    let mut w = Worker::new(pipeline, context);
    w.replay(journal_path, journal_lines)?;
    let mut stop = false;
    while !stop {
        match rx.blocking_recv() {
            None | Some(Msg::Stop) => break,
            Some(msg) => w.handle(msg)?,
        }
        // Take what else is waiting, then commit once for all of it.
        let started = Instant::now();
        while w.since_commit < COMMIT_EVENTS && started.elapsed() < COMMIT_TIME {
            match rx.try_recv() {
                Ok(Msg::Stop) => {
                    stop = true;
                    break;
                }
                Ok(msg) => w.handle(msg)?,
                Err(_) => break,
            }
        }
        w.commit()?;
    }
    w.finish()
}

impl Worker {
    fn new(pipeline: Pipeline, context: EngineContext) -> Worker {
        Worker {
            pipeline,
            source: Arc::from(journal::FILE_NAME),
            journal_replayed: 0,
            events_at_start: 0,
            replayed_at_start: 0,
            since_commit: 0,
            progressed: HashMap::new(),
            durable: context.durable,
            partitions: HashMap::new(),
            metrics: context.metrics,
            snapshot_every: context.snapshot_every,
        }
    }

    fn replay(&mut self, path: &std::path::Path, lines: u64) -> Result<(), ServerError> {
        if lines == 0 {
            return Ok(());
        }
        let source = self.source.clone();
        let done = self.pipeline.resume(&source)?;
        let mut pending = Vec::new();
        journal::read(path, lines, &mut |k, text| {
            let ev = match vakt_ingest::parsers::jsonl::parse_event(
                text,
                &Origin::new(source.clone(), k),
            ) {
                Ok(ev) => ev,
                Err(e) => {
                    // Only lines that parsed are journaled; a change by hand is skipped, not fatal.
                    tracing::warn!("{} line {k}: {e}; skipped", path.display());
                    return Ok(());
                }
            };
            self.journal_replayed += 1;
            pending.push(ev);
            if pending.len() >= 4096 {
                let evs = std::mem::take(&mut pending);
                self.process(evs, &source, k)?;
            }
            Ok(())
        })?;
        self.process(pending, &source, lines)?;
        self.commit()?;
        // Replayed events are not counted as new ones.
        self.events_at_start = self.pipeline.report().events;
        self.replayed_at_start = self.pipeline.report().replayed;
        if lines > done {
            tracing::warn!(
                "replayed {} journal lines, {} of them not yet in the ledger",
                lines,
                lines - done
            );
        }
        Ok(())
    }

    fn handle(&mut self, msg: Msg) -> Result<(), ServerError> {
        match msg {
            Msg::Batch {
                events,
                last_line,
                permit,
            } => {
                let source = self.source.clone();
                self.process(events, &source, last_line)?;
                drop(permit);
            }
            Msg::Followed {
                source,
                events,
                permit,
            } => {
                // Lines the ledger held at start only rebuild state, and
                // do not move the source's progress back. A Kafka
                // partition may move to another node and back: it has
                // state of its own, from its snapshot or its start.
                let movable = vakt_ingest::kafka::parse_source(&source).is_some();
                let done = if movable {
                    self.pipeline.resume_movable(&source)?
                } else {
                    self.pipeline.resume(&source)?
                };
                let mut line = done;
                for event in &events {
                    self.pipeline.process(event)?;
                    line = line.max(event.origin().line);
                }
                self.since_commit += events.len() as u64;
                drop(permit);
                // What the engine has seen is the events' lines, not the
                // progress they are replayed under.
                let seen = events.iter().map(|e| e.origin().line).max();
                if let (true, Some(seen)) = (movable, seen) {
                    // Found on every message but the first: no key clone.
                    match self.partitions.get_mut(&source) {
                        Some(held) => held.seen = held.seen.max(seen),
                        None => {
                            let held = Held {
                                seen,
                                snapshot_line: 0,
                                snapshot_at: Instant::now(),
                            };
                            self.partitions.insert(source.clone(), held);
                        }
                    }
                }
                let at = self.progressed.entry(source).or_insert(done);
                *at = (*at).max(line);
            }
            Msg::Arrive { sources, start } => {
                let mut lines = Vec::with_capacity(sources.len());
                for source in &sources {
                    let line = self.pipeline.arrive_movable(source)?;
                    self.partitions.insert(
                        source.clone(),
                        Held {
                            seen: line,
                            snapshot_line: line,
                            snapshot_at: Instant::now(),
                        },
                    );
                    lines.push(line);
                }
                let _ = start.send(lines);
            }
            Msg::Release { sources, done } => {
                // The next owner takes the state from here, not from the
                // last periodic snapshot.
                for source in &sources {
                    self.snapshot(source)?;
                }
                self.commit()?;
                for source in &sources {
                    self.pipeline.release(source);
                    self.partitions.remove(source);
                }
                let _ = done.send(());
            }
            Msg::Directory(d) => match self.pipeline.reload(d.clone()) {
                // At warn, the default level: the rules that judge events changed.
                Ok(rebuilt) => tracing::warn!("{}", vakt_pipeline::reload::applied(&d, &rebuilt)),
                Err(e) => tracing::warn!("{}", vakt_pipeline::reload::refused(&e)),
            },
            Msg::Page(outcome) => {
                for alert in &outcome.alerts {
                    self.pipeline.raise(alert.clone())?;
                }
                if let Some(l) = self.pipeline.ledger_mut() {
                    vakt_pipeline::pages::record(l, &outcome)?;
                }
            }
            Msg::Stop => {}
        }
        Ok(())
    }

    /// Runs events of one source through the pipeline and records how far
    /// that source is processed, in the same batch.
    fn process(
        &mut self,
        events: Vec<Event>,
        source: &Arc<str>,
        last_line: u64,
    ) -> Result<(), ServerError> {
        for ev in &events {
            self.pipeline.process(ev)?;
        }
        self.since_commit += events.len() as u64;
        if !events.is_empty() {
            self.pipeline.set_progress(source, last_line)?;
        }
        Ok(())
    }

    /// Snapshots `source`'s detector state into the open batch, unless
    /// the last snapshot already holds every line its engine saw. Call it
    /// before a commit that records the source's progress that far.
    fn snapshot(&mut self, source: &Arc<str>) -> Result<(), ServerError> {
        let Some(held) = self.partitions.get_mut(source) else {
            return Ok(());
        };
        if held.seen <= held.snapshot_line {
            return Ok(());
        }
        let bytes = self.pipeline.snapshot_movable(source, held.seen)?;
        held.snapshot_line = held.seen;
        held.snapshot_at = Instant::now();
        if bytes > 0 {
            self.metrics.snapshots.inc();
            self.metrics.snapshot_bytes.inc_by(bytes);
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), ServerError> {
        let due: Vec<Arc<str>> = self
            .partitions
            .iter()
            .filter(|(_, h)| h.snapshot_at.elapsed() >= self.snapshot_every)
            .map(|(s, _)| s.clone())
            .collect();
        for source in &due {
            self.snapshot(source)?;
        }
        for (source, line) in &self.progressed {
            self.pipeline.set_progress(source, *line)?;
        }
        self.pipeline.commit()?;
        self.since_commit = 0;
        if !self.progressed.is_empty() {
            let mut durable = self.durable.lock().unwrap_or_else(|p| p.into_inner());
            durable.extend(
                self.progressed
                    .drain()
                    .filter(|(s, _)| s.starts_with("kafka:")),
            );
        }
        Ok(())
    }

    /// Commits and closes the ledger. Open incidents stay open: a stop
    /// of the server is not the end of the stream, and the replay at the
    /// next start rebuilds them.
    fn finish(mut self) -> Result<EngineReport, ServerError> {
        // The state of every partition held, for whichever node takes it next.
        let held: Vec<Arc<str>> = self.partitions.keys().cloned().collect();
        for source in &held {
            self.snapshot(source)?;
        }
        let finished = self.pipeline.finish(false)?;
        let r = finished.report;
        Ok(EngineReport {
            replayed: self.journal_replayed + r.replayed.saturating_sub(self.replayed_at_start),
            events: r.events.saturating_sub(self.events_at_start),
            appended: r.appended,
            alert_lines: r.alert_lines,
            decisions: r.decisions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::Semaphore;
    use vakt_ledger::{DataDir, Ledger};

    fn failed_login(source: &Arc<str>, line: u64) -> Event {
        let json = format!(
            r#"{{"@timestamp":"2026-11-02T08:00:{line:02}Z","event.action":"login","event.outcome":"failure","user.name":"k.guess"}}"#
        );
        vakt_ingest::parsers::jsonl::parse_event(&json, &Origin::new(source.clone(), line)).unwrap()
    }

    fn worker(data: &DataDir) -> Worker {
        let pipeline =
            Pipeline::new(Default::default(), Some(Ledger::open(data).unwrap())).unwrap();
        let context = EngineContext {
            failure: Default::default(),
            durable: Default::default(),
            metrics: Default::default(),
            snapshot_every: Duration::from_secs(3600),
        };
        Worker::new(pipeline, context)
    }

    fn arrive(w: &mut Worker, source: &Arc<str>) -> u64 {
        let (start, lines) = std::sync::mpsc::sync_channel(1);
        w.handle(Msg::Arrive {
            sources: vec![source.clone()],
            start,
        })
        .unwrap();
        lines.recv().unwrap()[0]
    }

    fn message(w: &mut Worker, source: &Arc<str>, line: u64) {
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        w.handle(Msg::Followed {
            source: source.clone(),
            events: vec![failed_login(source, line)],
            permit,
        })
        .unwrap();
    }

    fn release(w: &mut Worker, source: &Arc<str>) {
        let (done, released) = std::sync::mpsc::sync_channel(1);
        w.handle(Msg::Release {
            sources: vec![source.clone()],
            done,
        })
        .unwrap();
        released.recv().unwrap();
    }

    #[test]
    fn a_snapshot_names_the_last_line_its_engine_saw_not_the_progress_it_replays_under() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir {
            path: tmp.path().join("data"),
        };
        let partition: Arc<str> = "kafka:access:0".into();
        let mut w = worker(&data);
        assert_eq!(arrive(&mut w, &partition), 0);
        for line in 1..=5 {
            message(&mut w, &partition, line);
        }
        release(&mut w, &partition);
        assert_eq!(
            arrive(&mut w, &partition),
            5,
            "the hand-off left a snapshot"
        );
        for line in 6..=8 {
            message(&mut w, &partition, line);
        }
        w.commit().unwrap();
        // Killed: lines 6 to 8 are recorded, the last snapshot is at 5.
        drop(w);

        let mut w = worker(&data);
        assert_eq!(arrive(&mut w, &partition), 5);
        // Lines 6 and 7 come back as replays under the progress of 8,
        // then the partition leaves again.
        for line in 6..=7 {
            message(&mut w, &partition, line);
        }
        release(&mut w, &partition);
        let ledger = w.pipeline.ledger_mut().unwrap();
        assert_eq!(ledger.snapshot(&partition).unwrap().unwrap().line, 7);
        assert_eq!(ledger.progress(&partition).unwrap(), 8);
    }
}
