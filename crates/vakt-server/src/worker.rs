//! The engine task: one thread that runs continuously, like `vakt watch
//! --data`: enrich and detect, append accesses to the ledger, record
//! alerts and turn them into decisions with the directory's policies.
//!
//! At start it replays the journal: lines the ledger already covers only
//! rebuild the detectors' state; later lines (accepted before a crash but
//! not yet committed) are processed in full. The ledger's unique (source,
//! line) keeps each access once.

use crate::journal;
use crate::metrics::Metrics;
use crate::ServerError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit};
use vakt_deliver::Deliverer;
use vakt_detect::detectors::registry;
use vakt_detect::Engine;
use vakt_enrich::Enricher;
use vakt_event::directory::Policy;
use vakt_event::{Alert, Directory, Event, Origin};
use vakt_ledger::{Ledger, LedgerError};

/// Events between commits while batches keep arriving.
const COMMIT_EVENTS: u64 = 50_000;
/// Longest time between commits while batches keep arriving.
const COMMIT_TIME: Duration = Duration::from_secs(1);

pub(crate) enum Msg {
    /// Events journaled up to `last_line`; the permit holds their room in the queue.
    Batch {
        events: Vec<Event>,
        last_line: u64,
        permit: OwnedSemaphorePermit,
    },
    /// One event of a followed file (`source` is its path); the permit
    /// holds its room in the queue.
    Followed {
        source: Arc<str>,
        event: Box<Event>,
        permit: OwnedSemaphorePermit,
    },
    /// Drain what came before, commit, stop.
    Stop,
}

/// What the engine did in this run.
#[derive(Clone, Debug, Default)]
pub struct EngineReport {
    /// Journal lines read again at start.
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
    engine: Engine,
    ledger: Ledger,
    directory: Arc<Directory>,
    source: Arc<str>,
    report: EngineReport,
    since_commit: u64,
    out: Outlets,
    /// Per followed file, the last line the ledger held at start.
    followed_done: HashMap<Arc<str>, u64>,
}

/// Where an alert goes besides the ledger: the counters and delivery.
pub(crate) struct Outlets {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) deliverer: Option<Arc<Deliverer>>,
}

pub(crate) fn spawn(
    ledger: Ledger,
    directory: Arc<Directory>,
    journal_path: std::path::PathBuf,
    journal_lines: u64,
    rx: mpsc::UnboundedReceiver<Msg>,
    failure: Arc<Failure>,
    out: Outlets,
) -> std::io::Result<std::thread::JoinHandle<Result<EngineReport, ServerError>>> {
    std::thread::Builder::new()
        .name("vakt-engine".into())
        .spawn(move || {
            let r = run(ledger, directory, &journal_path, journal_lines, rx, out);
            if let Err(e) = &r {
                failure.set(e.to_string());
            }
            r
        })
}

fn run(
    ledger: Ledger,
    directory: Arc<Directory>,
    journal_path: &std::path::Path,
    journal_lines: u64,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    out: Outlets,
) -> Result<EngineReport, ServerError> {
    let engine = Engine::new(Enricher::new(directory.clone(), None, None), registry());
    let mut w = Worker {
        engine,
        ledger,
        directory,
        source: Arc::from(journal::FILE_NAME),
        report: EngineReport::default(),
        since_commit: 0,
        out,
        followed_done: HashMap::new(),
    };
    w.replay(journal_path, journal_lines)?;
    let mut stop = false;
    while !stop {
        match rx.blocking_recv() {
            None | Some(Msg::Stop) => break,
            Some(Msg::Batch {
                events,
                last_line,
                permit,
            }) => w.batch(events, last_line, permit)?,
            Some(Msg::Followed {
                source,
                event,
                permit,
            }) => w.followed(source, event, permit)?,
        }
        // Take what else is waiting, then commit once for all of it.
        let started = Instant::now();
        while w.since_commit < COMMIT_EVENTS && started.elapsed() < COMMIT_TIME {
            match rx.try_recv() {
                Ok(Msg::Batch {
                    events,
                    last_line,
                    permit,
                }) => w.batch(events, last_line, permit)?,
                Ok(Msg::Followed {
                    source,
                    event,
                    permit,
                }) => w.followed(source, event, permit)?,
                Ok(Msg::Stop) => {
                    stop = true;
                    break;
                }
                Err(_) => break,
            }
        }
        w.commit()?;
    }
    w.finish()
}

/// Records an alert and the decisions the policies make of it.
fn act(
    out: &Outlets,
    ledger: &mut Ledger,
    policies: &[Policy],
    report: &mut EngineReport,
    error: &mut Option<LedgerError>,
    a: Alert,
) {
    report.alert_lines += 1;
    *out.metrics
        .alerts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(a.rule.clone())
        .or_default() += 1;
    if let Some(d) = &out.deliverer {
        if let Err(e) = d.enqueue(&a) {
            eprintln!("vakt serve: cannot queue alert {} for delivery: {e}", a.id);
        }
    }
    let decisions = vakt_ledger::decisions::from_alert(policies, &a);
    report.decisions += decisions.len() as u64;
    let r = ledger
        .record_alert(&a)
        .and_then(|()| decisions.iter().try_for_each(|d| ledger.put_decision(d)));
    if let Err(e) = r {
        error.get_or_insert(e);
    }
}

impl Worker {
    fn replay(&mut self, path: &std::path::Path, lines: u64) -> Result<(), ServerError> {
        if lines == 0 {
            return Ok(());
        }
        let done = self.ledger.progress(&self.source)?;
        let source = self.source.clone();
        let mut pending = Vec::new();
        journal::read(path, lines, &mut |k, text| {
            let ev = match vakt_ingest::parsers::jsonl::parse_event(
                text,
                &Origin::new(source.clone(), k),
            ) {
                Ok(ev) => ev,
                Err(e) => {
                    // Only lines that parsed are journaled; a change by hand is skipped, not fatal.
                    eprintln!("vakt serve: {} line {k}: {e}; skipped", path.display());
                    return Ok(());
                }
            };
            self.report.replayed += 1;
            if k <= done {
                // Already in the ledger with its alerts and decisions: rebuild state only.
                self.engine.process(&ev, &mut |_| {});
                return Ok(());
            }
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
        self.report.events = 0;
        if lines > done {
            eprintln!(
                "vakt serve: replayed {} journal lines, {} of them not yet in the ledger",
                lines,
                lines - done
            );
        }
        Ok(())
    }

    fn batch(
        &mut self,
        events: Vec<Event>,
        last_line: u64,
        permit: OwnedSemaphorePermit,
    ) -> Result<(), ServerError> {
        let source = self.source.clone();
        self.process(events, &source, last_line)?;
        drop(permit);
        Ok(())
    }

    /// An event of a followed file: lines the ledger held at start only
    /// rebuild state, as in the journal's replay.
    fn followed(
        &mut self,
        source: Arc<str>,
        event: Box<Event>,
        permit: OwnedSemaphorePermit,
    ) -> Result<(), ServerError> {
        let done = match self.followed_done.get(&source) {
            Some(d) => *d,
            None => {
                let d = self.ledger.progress(&source)?;
                self.followed_done.insert(source.clone(), d);
                d
            }
        };
        let line = event.origin().line;
        if line <= done {
            self.engine.process(&event, &mut |_| {});
            self.report.replayed += 1;
        } else {
            self.process(vec![*event], &source, line)?;
        }
        drop(permit);
        Ok(())
    }

    /// Detection first, then the ledger: an access is recorded once seen.
    fn process(
        &mut self,
        events: Vec<Event>,
        source: &str,
        last_line: u64,
    ) -> Result<(), ServerError> {
        let mut error = None;
        let Worker {
            engine,
            ledger,
            directory,
            report,
            out,
            ..
        } = self;
        for ev in &events {
            engine.process(ev, &mut |a| {
                act(out, ledger, &directory.policies, report, &mut error, a)
            });
            if let Some(e) = error.take() {
                return Err(e.into());
            }
            report.events += 1;
            if let Event::Access(a) = ev {
                if ledger.append_as(a, engine.enricher().organization_of(a))? {
                    report.appended += 1;
                }
            }
        }
        self.since_commit += events.len() as u64;
        if !events.is_empty() {
            self.ledger.set_progress(source, last_line)?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), ServerError> {
        self.ledger.commit()?;
        self.since_commit = 0;
        Ok(())
    }

    /// Commits and closes the ledger. Open incidents stay open: a stop
    /// of the server is not the end of the stream, and the replay at the
    /// next start rebuilds them.
    fn finish(self) -> Result<EngineReport, ServerError> {
        self.ledger.close()?;
        Ok(self.report)
    }
}
