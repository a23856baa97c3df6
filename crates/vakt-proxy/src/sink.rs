//! Where a proxy's access events go: the act pipeline `vakt watch` and
//! `vakt serve` run too (`vakt_pipeline`: ledger, detect, decide,
//! deliver), whose policies turn alerts into decisions the guard then
//! enforces.
//!
//! The pipeline runs in its own thread behind a bounded queue, which it
//! drains in batches (napping a millisecond between drains while events
//! flow, so a request never pays for waking it). When the
//! queue is full (the engine is slow, or the ledger is busy) or the engine
//! is gone, events go to a spool file in the data directory (`spool/`),
//! which the engine drains when it catches up and at the next start; the
//! ledger's unique (source, line) makes a replay exactly-once. An access
//! the ledger refuses goes back to the spool untouched (the pipeline
//! writes the ledger before detecting). `FailMode` says what the proxy
//! does with a request meanwhile: `Open` passes it, `Closed` refuses it.
//! Either way its access event is kept.
//!
//! A proxy's own findings (a step-up lockout) are raised as alerts through
//! the same pipeline ([`EventSink::raise`]), on a queue of their own of
//! [`ALERT_QUEUE`]; they are rare (one per lockout), and should that queue
//! be full, the caller logs the alert line rather than wait.

use crate::{io_err, ProxyError, Result};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use vakt_event::{AccessEvent, Alert, Event, Origin};
use vakt_ingest::parsers::{self, ParserContext};
use vakt_ledger::{DataDir, Ledger};
use vakt_pipeline::{Outlet, Pipeline, PipelineConfig, PipelineError};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// Pass requests while the engine is behind; their events are spooled.
    Open,
    /// Refuse requests while the engine is behind.
    Closed,
}

impl std::str::FromStr for FailMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "open" => Ok(FailMode::Open),
            "closed" => Ok(FailMode::Closed),
            _ => Err(format!("fail mode `{s}` is neither `open` nor `closed`")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SinkConfig {
    /// Events held in memory between the proxy and the engine.
    pub queue: usize,
    pub fail_mode: FailMode,
    /// Names this proxy's events in the ledger (`http-proxy`, `pg-proxy`).
    pub source: String,
}

/// Counters for the summary and for tests.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub submitted: AtomicU64,
    pub spooled: AtomicU64,
    pub replayed: AtomicU64,
    pub recorded: AtomicU64,
    pub alerts: AtomicU64,
    pub decisions: AtomicU64,
}

/// Alerts waiting for the engine; see the module doc.
pub const ALERT_QUEUE: usize = 1024;

/// How long the engine naps between drains while events flow: the most an
/// event waits before it is recorded and detected.
const NAP: Duration = Duration::from_millis(1);

/// Without an event for this long, the engine commits the open batch and
/// parks on its queues.
const QUIET: Duration = Duration::from_millis(200);

pub struct EventSink {
    tx: Option<Sender<AccessEvent>>,
    alerts: Option<Sender<Alert>>,
    config: SinkConfig,
    source: Arc<str>,
    seq: AtomicU64,
    spool: Arc<Spool>,
    stats: Arc<SinkStats>,
    engine: Option<JoinHandle<Result<()>>>,
    engine_down: Arc<AtomicBool>,
}

impl EventSink {
    /// Starts the engine thread; every alert goes to each of `outlets`.
    pub fn start(
        data: &DataDir,
        pipeline: PipelineConfig,
        outlets: Vec<Box<dyn Outlet>>,
        config: SinkConfig,
    ) -> Result<EventSink> {
        let mut ledger = Ledger::open(data)?;
        ledger.commit()?;
        let mut pipeline = Pipeline::new(pipeline, Some(ledger))?;
        for o in outlets {
            pipeline = pipeline.with_outlet(o);
        }
        let spool = Arc::new(Spool::open(&data.path.join("spool"), &config.source)?);
        let (tx, rx) = crossbeam_channel::bounded(config.queue.max(1));
        let (alerts, alerts_rx) = crossbeam_channel::bounded(ALERT_QUEUE);
        let stats = Arc::new(SinkStats::default());
        let engine_down = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            pipeline,
            spool: spool.clone(),
            stats: stats.clone(),
        };
        let down = engine_down.clone();
        let engine = std::thread::Builder::new()
            .name("vakt-engine".into())
            .spawn(move || {
                let r = worker.run(rx, alerts_rx);
                down.store(true, Ordering::Relaxed);
                if let Err(e) = &r {
                    tracing::error!("the engine stopped: {e}");
                }
                r
            })
            .map_err(io_err("cannot start the engine thread"))?;
        // Sources are unique per start, so line numbers never collide in the ledger.
        let source: Arc<str> =
            format!("{}@{}", config.source, vakt_event::Timestamp::now().0).into();
        Ok(EventSink {
            tx: Some(tx),
            alerts: Some(alerts),
            config,
            source,
            seq: AtomicU64::new(0),
            spool,
            stats,
            engine: Some(engine),
            engine_down,
        })
    }

    pub fn stats(&self) -> &SinkStats {
        &self.stats
    }

    pub fn fail_mode(&self) -> FailMode {
        self.config.fail_mode
    }

    /// Whether the engine is keeping up; in `Closed` mode a proxy refuses
    /// requests while it is not.
    pub fn keeping_up(&self) -> bool {
        !self.engine_down.load(Ordering::Relaxed) && self.tx.as_ref().is_some_and(|t| !t.is_full())
    }

    /// Hands an access event to the engine, or to the spool when the engine
    /// is behind. Returns whether it was spooled. Never drops it: if even
    /// the spool cannot be written, the error says so.
    pub fn submit(&self, mut ev: AccessEvent) -> Result<bool> {
        let line = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        ev.origin = Origin::new(self.source.clone(), line);
        self.stats.submitted.fetch_add(1, Ordering::Relaxed);
        let Some(tx) = &self.tx else {
            return self.spool_event(&ev);
        };
        match tx.try_send(ev) {
            Ok(()) => Ok(false),
            Err(TrySendError::Full(ev)) | Err(TrySendError::Disconnected(ev)) => {
                self.spool_event(&ev)
            }
        }
    }

    /// Hands an alert of the proxy's own to the engine, which records it,
    /// applies the policies and delivers it as it does detectors' alerts.
    /// Does not wait: when the alert queue is full or the engine is gone,
    /// the error says so and the caller should log the alert line.
    pub fn raise(&self, alert: Alert) -> Result<()> {
        let id = alert.id.clone();
        self.alerts
            .as_ref()
            .ok_or_else(|| ProxyError::AlertNotQueued(id.clone()))?
            .try_send(alert)
            .map_err(|_| ProxyError::AlertNotQueued(id))
    }

    fn spool_event(&self, ev: &AccessEvent) -> Result<bool> {
        self.spool.push(ev)?;
        self.stats.spooled.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Drains the queue and the spool, commits the ledger, stops the engine.
    pub fn shutdown(mut self) -> Result<()> {
        drop(self.tx.take());
        drop(self.alerts.take());
        match self.engine.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(ProxyError::Config("the engine thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for EventSink {
    fn drop(&mut self) {
        drop(self.tx.take());
        drop(self.alerts.take());
        if let Some(h) = self.engine.take() {
            let _ = h.join();
        }
    }
}

struct Worker {
    pipeline: Pipeline,
    spool: Arc<Spool>,
    stats: Arc<SinkStats>,
}

impl Worker {
    fn run(mut self, rx: Receiver<AccessEvent>, alerts: Receiver<Alert>) -> Result<()> {
        // Whatever an earlier run left behind comes first.
        self.drain_spool()?;
        let mut last_event = std::time::Instant::now();
        let mut last_commit = last_event;
        'run: loop {
            // Everything queued, in one go: while traffic flows this thread
            // naps between drains instead of parking on the queue, so a
            // proxy's submit never has to wake it (a futex call and two
            // context switches per request, more than the engine's work).
            let mut took = 0;
            loop {
                match rx.try_recv() {
                    Ok(ev) => {
                        self.handle(ev)?;
                        took += 1;
                    }
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => break 'run,
                }
            }
            for a in alerts.try_iter() {
                self.raise(a)?;
                took += 1;
            }
            if took > 0 {
                last_event = std::time::Instant::now();
                continue;
            }
            if last_event.elapsed() < QUIET {
                // A trickle of events is never quiet: commit it within
                // about a second all the same.
                if last_commit.elapsed() >= vakt_ledger::ledger::BATCH_TIME {
                    self.pipeline.commit()?;
                    last_commit = std::time::Instant::now();
                }
                std::thread::sleep(NAP);
                continue;
            }
            // Quiet: commit what is open, then park until the next event.
            self.pipeline.commit()?;
            last_commit = std::time::Instant::now();
            if rx.is_empty() {
                self.drain_spool()?;
            }
            crossbeam_channel::select! {
                recv(rx) -> ev => match ev {
                    Ok(ev) => self.handle(ev)?,
                    Err(_) => break,
                },
                recv(alerts) -> a => match a {
                    Ok(a) => self.raise(a)?,
                    Err(_) => break,
                },
                default(QUIET) => continue,
            }
            last_event = std::time::Instant::now();
        }
        // Both queues close together at shutdown: take what is left of each.
        for ev in rx.try_iter() {
            self.handle(ev)?;
        }
        for a in alerts.try_iter() {
            self.raise(a)?;
        }
        self.drain_spool()?;
        let finished = self.pipeline.finish(true)?;
        for (outlet, e) in &finished.report.outlet_errors {
            tracing::warn!("alerts could not all be written to {outlet}: {e}");
        }
        Ok(())
    }

    /// An access the ledger could not take goes back to the spool,
    /// undetected, and is handled whole when replayed.
    fn handle(&mut self, ev: AccessEvent) -> Result<()> {
        let counts = |r: &vakt_pipeline::PipelineReport| (r.appended, r.alert_lines, r.decisions);
        let before = counts(self.pipeline.report());
        let ev = Event::Access(ev);
        match self.pipeline.process(&ev) {
            Ok(_) => {}
            Err(PipelineError::NotRecorded(e)) => {
                tracing::warn!("ledger busy, spooling: {e}");
                if let Event::Access(a) = &ev {
                    self.spool.push(a)?;
                }
                self.stats.spooled.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        let after = counts(self.pipeline.report());
        let add = |c: &AtomicU64, n: u64| c.fetch_add(n, Ordering::Relaxed);
        add(&self.stats.recorded, after.0 - before.0);
        add(&self.stats.alerts, after.1 - before.1);
        add(&self.stats.decisions, after.2 - before.2);
        Ok(())
    }

    fn raise(&mut self, alert: Alert) -> Result<()> {
        let decisions = self.pipeline.report().decisions;
        self.pipeline.raise(alert)?;
        let made = self.pipeline.report().decisions - decisions;
        self.stats.alerts.fetch_add(1, Ordering::Relaxed);
        self.stats.decisions.fetch_add(made, Ordering::Relaxed);
        Ok(())
    }

    fn drain_spool(&mut self) -> Result<()> {
        for ev in self.spool.take()? {
            self.stats.replayed.fetch_add(1, Ordering::Relaxed);
            self.handle(ev)?;
        }
        Ok(())
    }
}

/// Spooled events, one per line: `source<TAB>line<TAB>event JSON`, in
/// `spool/NAME.ndjson`; one spool per proxy kind and data directory.
struct Spool {
    dir: PathBuf,
    name: String,
    path: PathBuf,
    file: Mutex<Option<File>>,
    pending: AtomicBool,
}

impl Spool {
    fn open(dir: &Path, name: &str) -> Result<Spool> {
        std::fs::create_dir_all(dir)
            .map_err(io_err(format!("cannot create the spool {}", dir.display())))?;
        let path = dir.join(format!("{name}.ndjson"));
        let pending = std::fs::read_dir(dir)
            .map_err(io_err(format!("cannot read the spool {}", dir.display())))?
            .flatten()
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{name}."))
                    && e.metadata().is_ok_and(|m| m.len() > 0)
            });
        Ok(Spool {
            dir: dir.to_owned(),
            name: name.to_owned(),
            path,
            file: Mutex::new(None),
            pending: AtomicBool::new(pending),
        })
    }

    fn push(&self, ev: &AccessEvent) -> Result<()> {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let mut options = OpenOptions::new();
            options.create(true).append(true);
            // Spooled accesses name accounts and customers.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            *guard = Some(options.open(&self.path).map_err(io_err(format!(
                "cannot open the spool {}",
                self.path.display()
            )))?);
        }
        let line = format!(
            "{}\t{}\t{}\n",
            ev.origin.source,
            ev.origin.line,
            Event::Access(ev.clone()).to_json_line()
        );
        let f = guard.as_mut().expect("opened above");
        f.write_all(line.as_bytes())
            .and_then(|()| f.flush())
            .map_err(io_err(format!(
                "cannot write the spool {}",
                self.path.display()
            )))?;
        self.pending.store(true, Ordering::Release);
        Ok(())
    }

    /// Takes every spooled event (this proxy's and earlier runs').
    fn take(&self) -> Result<Vec<AccessEvent>> {
        if !self.pending.swap(false, Ordering::AcqRel) {
            return Ok(Vec::new());
        }
        let mut files = Vec::new();
        {
            // Move our file aside under the lock so pushes start a new one.
            let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
            *guard = None;
            let entries = std::fs::read_dir(&self.dir).map_err(io_err(format!(
                "cannot read the spool {}",
                self.dir.display()
            )))?;
            let own = format!("{}.", self.name);
            for e in entries.flatten() {
                let p = e.path();
                if !e.file_name().to_string_lossy().starts_with(&own) {
                    continue; // another proxy's spool
                }
                if p.extension().is_some_and(|x| x == "ndjson") {
                    let taken =
                        p.with_extension(format!("taken-{}", vakt_event::Timestamp::now().0));
                    std::fs::rename(&p, &taken)
                        .map_err(io_err(format!("cannot take {}", p.display())))?;
                    files.push(taken);
                } else if p.to_string_lossy().contains(".taken-") {
                    files.push(p);
                }
            }
        }
        let mut events = Vec::new();
        let mut parser = parsers::format("jsonl")
            .map(|f| (f.build)(&ParserContext::default()))
            .ok_or_else(|| ProxyError::Config("the jsonl parser is missing".into()))?;
        for f in &files {
            let file = File::open(f).map_err(io_err(format!("cannot read {}", f.display())))?;
            for (n, line) in BufReader::new(file).lines().enumerate() {
                let line = line.map_err(io_err(format!("cannot read {}", f.display())))?;
                let mut parts = line.splitn(3, '\t');
                let (Some(source), Some(seq), Some(json)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    tracing::warn!("{}:{}: not a spool line, skipped", f.display(), n + 1);
                    continue;
                };
                let origin = Origin::new(source.into(), seq.parse().unwrap_or(0));
                let mut out = Vec::new();
                match parser.parse_line(json, &origin, &mut out) {
                    Ok(()) => events.extend(out.into_iter().filter_map(|e| match e {
                        Event::Access(a) => Some(a),
                        Event::Flow(_) => None,
                    })),
                    Err(e) => tracing::warn!("{}:{}: {e}", f.display(), n + 1),
                }
            }
        }
        // Removed only once read: a crash before this replays them (exactly-once by the ledger).
        for f in &files {
            let _ = std::fs::remove_file(f);
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(i: u64) -> AccessEvent {
        let line = format!(
            r#"{{"@timestamp":"2026-11-02T08:00:{:02}Z","event.kind":"access","event.action":"lookup","user.name":"p3.anna","customer.ids":["C-{i}"],"records":1}}"#,
            i % 60
        );
        match parsers::jsonl::parse_event(&line, &Origin::new("test".into(), i)).unwrap() {
            Event::Access(a) => a,
            other => panic!("not an access: {other:?}"),
        }
    }

    #[test]
    fn a_trickle_of_events_is_committed_within_about_a_second() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir {
            path: tmp.path().join("data"),
        };
        let sink = EventSink::start(
            &data,
            PipelineConfig::default(),
            Vec::new(),
            SinkConfig {
                queue: 1024,
                fail_mode: FailMode::Open,
                source: "test-proxy".into(),
            },
        )
        .unwrap();
        // One event every 20 ms: never quiet for long, and far fewer than
        // a batch, so only the clock can commit them.
        for i in 0..100 {
            sink.submit(access(i)).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        let committed = Ledger::open_read(&data).unwrap().len();
        assert!(
            committed >= 20,
            "{committed} of 100 accesses committed after 2 s"
        );
        sink.shutdown().unwrap();
        assert_eq!(Ledger::open_read(&data).unwrap().len(), 100);
    }
}
