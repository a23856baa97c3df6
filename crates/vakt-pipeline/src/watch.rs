//! A run over files or stdin: inputs -> parse -> [`Pipeline`], as `vakt
//! watch` does it. [`WatchConfig`] is a plain value: the CLI builds it
//! from its flags, `vakt demo`, the benches and tests build it directly.

use crate::error::io_err;
use crate::outlet::{Delivery, JsonLines};
use crate::pipeline::{Finished, Pipeline, PipelineConfig};
use crate::reload::{self, DirectoryFile, Fingerprint};
use crate::PipelineError;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use vakt_enrich::{Cases, GeoIp};
use vakt_event::{Directory, Event, EventKind};
use vakt_ingest::parsers::{self, Format};
use vakt_ingest::{
    EventStream, FollowControl, Input, InputStats, Merge, ParserContext, Rejects, StreamConfig,
};
use vakt_ledger::{DataDir, Ledger};

/// Says something to the person running vakt (a note, a rejected line).
pub type Notify = Arc<dyn Fn(&str) + Send + Sync>;

/// Everything a watch run needs; paths are read when the run starts.
pub struct WatchConfig {
    /// Directory file (TOML); none: detectors that need it say so.
    pub directory: Option<PathBuf>,
    /// Cases as CSV.
    pub cases: Option<PathBuf>,
    /// MaxMind MMDB files (country, ASN).
    pub geoip: Vec<PathBuf>,
    /// `None`: pick the format from each input's first lines.
    pub format: Option<&'static Format>,
    /// Keep rejected lines here.
    pub dead_letter: Option<PathBuf>,
    /// Keep reading files as they grow (`tail -F`), until stopped.
    pub follow: bool,
    /// With `follow`: stop after this long without new data.
    pub idle_exit: Option<Duration>,
    /// With `follow`: how often the directory file is checked for edits
    /// (module [`crate::reload`]).
    pub directory_poll: Duration,
    /// Longest line accepted, in bytes.
    pub max_line: usize,
    /// Append accesses, alerts and decisions to the ledger in this data directory.
    pub data: Option<DataDir>,
    /// Deliver alerts to these targets, queued in the data directory.
    pub deliver: Option<(vakt_deliver::DeliveryConfig, DataDir)>,
    /// Inputs; empty reads stdin.
    pub inputs: Vec<Input>,
    /// Notes and rejected lines for the person running vakt.
    pub notify: Notify,
    /// Called now and then with the input bytes read so far.
    pub progress: Option<Box<dyn FnMut(u64) + Send>>,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            directory: None,
            cases: None,
            geoip: Vec::new(),
            format: None,
            dead_letter: None,
            follow: false,
            idle_exit: None,
            directory_poll: crate::reload::DEFAULT_POLL,
            max_line: vakt_ingest::lines::DEFAULT_MAX_LINE,
            data: None,
            deliver: None,
            inputs: Vec::new(),
            notify: Arc::new(|_| {}),
            progress: None,
        }
    }
}

impl WatchConfig {
    /// The format named `name`, or `None` for `auto`; the error lists the known ones.
    pub fn format_named(name: &str) -> Result<Option<&'static Format>, PipelineError> {
        match name {
            "auto" => Ok(None),
            name => parsers::format(name).map(Some).ok_or_else(|| {
                PipelineError::Config(format!(
                    "unknown --format `{name}`; use auto or one of: {}",
                    parsers::names().join(", ")
                ))
            }),
        }
    }

    /// The side inputs read into a [`PipelineConfig`]; tells through
    /// `notify` when there is no directory.
    pub fn pipeline_config(&self) -> Result<PipelineConfig, PipelineError> {
        Ok(self.pipeline_config_with_version()?.0)
    }

    /// [`WatchConfig::pipeline_config`], with the version of the directory
    /// file it read (none without one).
    fn pipeline_config_with_version(
        &self,
    ) -> Result<(PipelineConfig, Option<Fingerprint>), PipelineError> {
        let (directory, version) = match &self.directory {
            Some(p) => {
                let l = reload::load(p)?;
                (l.directory, Some(l.fingerprint))
            }
            None => {
                (self.notify)("note: no --directory given; detectors that need organisations, networks or accounts say so below");
                (Arc::new(Directory::default()), None)
            }
        };
        let config = PipelineConfig {
            directory,
            cases: self.cases.as_deref().map(Cases::load).transpose()?,
            geoip: if self.geoip.is_empty() {
                None
            } else {
                Some(GeoIp::open(&self.geoip)?)
            },
        };
        Ok((config, version))
    }
}

/// What a run did, for the summary and for callers such as `vakt demo`.
pub struct WatchReport {
    pub inputs: Vec<InputStats>,
    pub rejected: u64,
    pub events: Vec<(&'static str, u64)>,
    /// Events the ledger already held: they rebuilt detector state only.
    pub replayed: u64,
    pub incidents: Vec<(&'static str, u64)>,
    pub alert_lines: u64,
    /// Alert lines exceptions suppressed, per rule.
    pub suppressed: Vec<(String, u64)>,
    pub elapsed: Duration,
    pub actors: usize,
    pub detector_keys: usize,
    /// Accesses appended to the ledger, and lines it already held.
    pub ledger: Option<(u64, u64)>,
    /// Alerts still queued for delivery at the end (they go out at the next run).
    pub undelivered_bytes: u64,
}

impl WatchReport {
    pub fn total_events(&self) -> u64 {
        self.events.iter().map(|(_, n)| n).sum()
    }

    pub fn events_per_second(&self) -> f64 {
        self.total_events() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs the inputs through the pipeline, writing alert lines to `out`.
pub fn watch(
    mut config: WatchConfig,
    out: Box<dyn Write + Send>,
) -> Result<WatchReport, PipelineError> {
    let (pipeline_config, version) = config.pipeline_config_with_version()?;
    let directory = pipeline_config.directory.clone();
    let ledger = match &config.data {
        Some(dir) => {
            if !dir.exists() {
                (config.notify)(&format!(
                    "note: creating the data directory {} (ledger and signing key)",
                    dir.path.display()
                ));
            }
            Some(Ledger::open(dir)?)
        }
        None => None,
    };
    let deliverer = match &config.deliver {
        Some((c, dir)) => Some(Arc::new(vakt_deliver::Deliverer::start(&dir.path, c)?)),
        None => None,
    };
    let mut pipeline = Pipeline::new(pipeline_config, ledger)?.with_outlet(JsonLines::new(
        "alert output",
        out,
        config.follow,
    ));
    if let Some(d) = &deliverer {
        pipeline = pipeline.with_outlet(Delivery(d.clone()));
    }
    for (id, note) in pipeline.missing_inputs() {
        (config.notify)(&format!("note: {id}: {note}"));
    }
    let stream_config = StreamConfig {
        format: config.format,
        context: ParserContext { directory },
        max_line: config.max_line,
        lateness: vakt_detect::LATENESS,
    };
    let notify = config.notify.clone();
    let rejects = Mutex::new(
        Rejects::new(config.dead_letter.as_deref(), Box::new(move |m| notify(m)))
            .map_err(io_err("cannot open the dead-letter file"))?,
    );
    let inputs = if config.inputs.is_empty() {
        vec![Input::Stdin]
    } else {
        std::mem::take(&mut config.inputs)
    };

    let started = Instant::now();
    let input_stats = if config.follow {
        let directory_file = match (&config.directory, version) {
            (Some(p), Some(v)) => Some(DirectoryFile::new(p.clone(), v)),
            _ => None,
        };
        follow_inputs(
            &inputs,
            stream_config,
            &config,
            directory_file,
            &rejects,
            &mut pipeline,
        )?
    } else {
        let mut streams = Vec::new();
        for i in &inputs {
            streams.push(
                EventStream::open(i, stream_config.clone())
                    .map_err(io_err(format!("cannot open input {}", i.name())))?,
            );
        }
        read_then_process(
            Merge::new(streams),
            &rejects,
            &mut pipeline,
            &mut config.progress,
        )?
    };
    let Finished {
        report,
        engine,
        ledger_counts,
    } = pipeline.finish(true)?;
    let elapsed = started.elapsed();
    let undelivered_bytes = match deliverer.map(Arc::try_unwrap) {
        Some(Ok(d)) => d.shutdown(Duration::from_secs(10)),
        _ => 0,
    };
    if let Some((outlet, e)) = report.outlet_errors.first() {
        return Err(PipelineError::Config(format!(
            "cannot write alerts to {outlet}: {e}"
        )));
    }
    let mut rejects = rejects.into_inner().unwrap_or_else(|p| p.into_inner());
    rejects
        .flush()
        .map_err(io_err("cannot write the dead-letter file"))?;
    let (detector_keys, actors) = engine.tracked();
    Ok(WatchReport {
        inputs: input_stats,
        rejected: rejects.count(),
        events: [EventKind::Access, EventKind::Flow]
            .into_iter()
            .map(|k| (k.as_str(), engine.events(k)))
            .filter(|(_, n)| *n > 0)
            .collect(),
        replayed: report.replayed,
        incidents: engine
            .incidents_by_rule()
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect(),
        alert_lines: report.alert_lines,
        suppressed: report.suppressed.into_iter().collect(),
        elapsed,
        actors,
        detector_keys,
        ledger: ledger_counts,
        undelivered_bytes,
    })
}

/// Events read and parsed at a time, handed to the pipeline's thread.
const READ_BATCH: usize = 1024;

/// Reads and parses on a thread of its own while this one runs the
/// pipeline: parsing is about a third of a run, and the two only meet at a
/// queue of batches (in input order). A read error ends the run once the
/// events before it are processed.
fn read_then_process(
    mut merge: Merge,
    rejects: &Mutex<Rejects>,
    pipeline: &mut Pipeline,
    progress: &mut Option<Box<dyn FnMut(u64) + Send>>,
) -> Result<Vec<InputStats>, PipelineError> {
    let (tx, rx) = mpsc::sync_channel::<(Vec<Event>, u64)>(8);
    std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("vakt-read".into())
            .spawn_scoped(scope, move || -> io::Result<Vec<InputStats>> {
                let mut batch = Vec::with_capacity(READ_BATCH);
                let bytes = |m: &Merge| m.stats().iter().map(|s| s.bytes).sum::<u64>();
                while let Some(ev) = merge.next_event(rejects)? {
                    batch.push(ev);
                    if batch.len() == READ_BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(READ_BATCH));
                        if tx.send((full, bytes(&merge))).is_err() {
                            return Ok(merge.stats());
                        }
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.send((batch, bytes(&merge)));
                }
                Ok(merge.stats())
            })
            .map_err(io_err("cannot start the input thread"))?;
        let mut processed = Ok(());
        let mut n = 0u64;
        'batches: for (batch, bytes) in rx.iter() {
            for ev in &batch {
                if let Err(e) = pipeline.process(ev) {
                    processed = Err(e);
                    break 'batches;
                }
            }
            n += batch.len() as u64;
            if n.is_multiple_of(64 * READ_BATCH as u64) {
                if let Some(p) = progress.as_mut() {
                    p(bytes);
                }
            }
        }
        // Unblocks the reader (its sends fail) when the pipeline stopped.
        drop(rx);
        let read = reader
            .join()
            .map_err(|_| PipelineError::Config("the input thread failed".into()))?;
        processed?;
        read.map_err(io_err("cannot read the input"))
    })
}

/// What reaches the pipeline's loop while following.
// Nearly every item is an event: boxing it would allocate once per event.
#[allow(clippy::large_enum_variant)]
enum Item {
    Event(Event),
    /// An edited directory, checked: applied before the next event.
    Directory(Arc<Directory>),
    /// One input ended (idle, Ctrl-C, or an error its thread returns).
    End,
}

/// Follows every input in its own thread; events reach the pipeline in
/// arrival order (each input is in order within the tolerated lateness).
/// With a directory file, another thread polls it and an edit reaches the
/// pipeline between two events. Ctrl-C stops the inputs; what they read is
/// processed.
fn follow_inputs(
    inputs: &[Input],
    config: StreamConfig,
    watch: &WatchConfig,
    directory_file: Option<DirectoryFile>,
    rejects: &Mutex<Rejects>,
    pipeline: &mut Pipeline,
) -> Result<Vec<InputStats>, PipelineError> {
    let control = FollowControl {
        idle_exit: watch.idle_exit,
        ..Default::default()
    };
    let stop = control.stop.clone();
    // A second Ctrl-C while stopping falls through to the default (exit).
    let _ = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed));
    let mut streams = Vec::new();
    for i in inputs {
        let s = match i {
            Input::File(p) => follow_path(p, &config, &control)?,
            Input::Stdin => {
                EventStream::open(i, config.clone()).map_err(io_err("cannot read stdin"))?
            }
        };
        streams.push(s);
    }
    let (tx, rx) = mpsc::sync_channel::<Item>(4096);
    let mut rx = Some(rx);
    let inputs_done = AtomicBool::new(false);
    let notify = &watch.notify;
    std::thread::scope(|scope| -> Result<Vec<InputStats>, PipelineError> {
        let mut handles = Vec::new();
        let n = streams.len();
        for mut s in streams {
            let tx = tx.clone();
            handles.push(scope.spawn(move || -> io::Result<InputStats> {
                let read = (|| {
                    while let Some(ev) = s.next_event(rejects)? {
                        if tx.send(Item::Event(ev)).is_err() {
                            break;
                        }
                    }
                    Ok(s.stats().clone())
                })();
                let _ = tx.send(Item::End);
                read
            }));
        }
        if let Some(mut file) = directory_file {
            let tx = tx.clone();
            let (poll, done) = (watch.directory_poll, &inputs_done);
            scope.spawn(move || loop {
                let next = Instant::now() + poll;
                while Instant::now() < next {
                    if done.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100).min(poll));
                }
                match file.poll() {
                    reload::Poll::Unchanged => {}
                    reload::Poll::Changed(l) => {
                        if tx.send(Item::Directory(l.directory)).is_err() {
                            return;
                        }
                    }
                    reload::Poll::Refused(e) => notify(&reload::refused(&e)),
                }
            });
        }
        drop(tx);
        let mut ended = 0;
        let processed = loop {
            if ended == n {
                break Ok(());
            }
            match rx.as_ref().map(|r| r.recv()) {
                Some(Ok(Item::Event(ev))) => {
                    if let Err(e) = pipeline.process(&ev) {
                        break Err(e);
                    }
                }
                Some(Ok(Item::Directory(d))) => match pipeline.reload(d.clone()) {
                    Ok(rebuilt) => notify(&reload::applied(&d, &rebuilt)),
                    Err(e) => notify(&reload::refused(&e)),
                },
                Some(Ok(Item::End)) => ended += 1,
                _ => break Ok(()),
            }
        };
        // Unblocks the threads (their sends fail) so the scope can end.
        inputs_done.store(true, Ordering::Relaxed);
        drop(rx.take());
        processed?;
        let mut stats = Vec::new();
        for h in handles {
            let s = h
                .join()
                .map_err(|_| PipelineError::Config("an input thread failed".into()))?
                .map_err(io_err("cannot read a followed input"))?;
            stats.push(s);
        }
        Ok(stats)
    })
}

fn follow_path(
    p: &Path,
    config: &StreamConfig,
    control: &FollowControl,
) -> Result<EventStream, PipelineError> {
    EventStream::follow(p, config.clone(), control.clone())
        .map_err(io_err(format!("cannot follow {}", p.display())))
}
