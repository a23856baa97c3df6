//! `vakt watch`: inputs -> parse -> enrich -> detect -> alerts on stdout.

use crate::fmt::{peak_rss, rss, thousands};
use anyhow::{bail, Context, Result};
use std::cell::RefCell;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use vakt_detect::detectors::registry;
use vakt_detect::Engine;
use vakt_enrich::{Cases, Enricher, GeoIp};
use vakt_event::{Alert, Directory, Event, EventKind};
use vakt_ingest::parsers;
use vakt_ingest::{
    EventStream, FollowControl, Input, InputStats, Merge, ParserContext, Rejects, StreamConfig,
};
use vakt_ledger::{DataDir, Ledger};

#[derive(clap::Args, Clone, Debug)]
pub struct WatchArgs {
    /// Directory file (TOML): organisations, networks, accounts, services, canaries.
    #[arg(long, short = 'd', value_name = "FILE")]
    pub directory: Option<PathBuf>,
    /// Cases (business context) as CSV: case_id,customer_id,account,opened,closed.
    #[arg(long, value_name = "FILE")]
    pub cases: Option<PathBuf>,
    /// MaxMind MMDB files (country and/or ASN) for IP enrichment; repeatable.
    #[arg(long, value_name = "FILE")]
    pub geoip: Vec<PathBuf>,
    /// Input format; `auto` picks it from each input's first lines.
    #[arg(long, short = 'f', default_value = "auto", value_name = "FORMAT")]
    pub format: String,
    /// Keep rejected lines here (JSON lines with source, line, error, raw).
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,
    /// Write alerts to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Keep reading files as they grow, like `tail -F` (rotation included); Ctrl-C ends.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: stop after this many seconds without new data.
    #[arg(long, value_name = "SECONDS", requires = "follow")]
    pub idle_exit: Option<f64>,
    /// Longest line accepted, in bytes; longer lines are rejected.
    #[arg(long, default_value_t = vakt_ingest::lines::DEFAULT_MAX_LINE, value_name = "BYTES")]
    pub max_line: usize,
    /// Append every access and alert to the ledger in this data directory
    /// (default when given without a value: $VAKT_DATA, else ./vakt-data).
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "-")]
    pub data: Option<PathBuf>,
    /// Deliver alerts to the webhooks and syslog receivers of this file
    /// (TOML, `[[target]]`), at least once through a queue in the data directory.
    #[arg(long, value_name = "FILE")]
    pub deliver: Option<PathBuf>,
    /// Also write the run summary as JSON to this file (for scripts and benchmarks).
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// No summary on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Input files (`.gz` too); none or `-` reads stdin.
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,
}

/// What a run did, for the summary and for callers such as `vakt demo`.
pub struct WatchReport {
    pub inputs: Vec<InputStats>,
    pub rejected: u64,
    pub events: Vec<(&'static str, u64)>,
    pub incidents: Vec<(&'static str, u64)>,
    pub alert_lines: u64,
    pub elapsed: Duration,
    pub actors: usize,
    pub detector_keys: usize,
    pub peak_rss: u64,
    /// Resident memory at the end of the run, with all state still held.
    pub end_rss: u64,
    /// Accesses appended to the ledger, and lines it already held.
    pub ledger: Option<(u64, u64)>,
}

impl WatchReport {
    pub fn total_events(&self) -> u64 {
        self.events.iter().map(|(_, n)| n).sum()
    }

    pub fn to_json(&self) -> serde_json::Value {
        let secs = self.elapsed.as_secs_f64();
        serde_json::json!({
            "events": self.total_events(),
            "events_by_kind": self.events.iter().map(|(k, n)| (k.to_string(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
            "rejected": self.rejected,
            "incidents_by_rule": self.incidents.iter().map(|(k, n)| (k.to_string(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
            "alert_lines": self.alert_lines,
            "seconds": secs,
            "events_per_second": self.total_events() as f64 / secs.max(1e-9),
            "actors": self.actors,
            "detector_keys": self.detector_keys,
            "peak_rss_bytes": self.peak_rss,
            "end_rss_bytes": self.end_rss,
            "inputs": self.inputs.iter().map(|i| serde_json::json!({
                "name": i.name, "format": i.format, "lines": i.lines, "events": i.events, "rejected": i.rejected,
            })).collect::<Vec<_>>(),
        })
    }

    pub fn print(&self) {
        let total = self.total_events();
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let kinds: Vec<String> = self
            .events
            .iter()
            .map(|(k, n)| format!("{k} {}", thousands(*n)))
            .collect();
        eprintln!(
            "vakt watch: {} events ({}) in {:.2} s = {} events/s",
            thousands(total),
            if kinds.is_empty() {
                "none".into()
            } else {
                kinds.join(", ")
            },
            secs,
            thousands((total as f64 / secs) as u64)
        );
        for i in &self.inputs {
            eprintln!(
                "  input {} ({}): {} lines, {} events, {} rejected",
                i.name,
                i.format.unwrap_or("format unknown"),
                thousands(i.lines),
                thousands(i.events),
                thousands(i.rejected)
            );
        }
        eprintln!("  lines rejected: {}", thousands(self.rejected));
        let n: u64 = self.incidents.iter().map(|(_, n)| n).sum();
        let rules: Vec<String> = self
            .incidents
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        eprintln!(
            "  alerts: {} incidents{}{} ({} alert lines)",
            thousands(n),
            if rules.is_empty() { "" } else { ": " },
            rules.join(", "),
            thousands(self.alert_lines)
        );
        if let Some((new, dup)) = self.ledger {
            eprintln!(
                "  ledger: {} accesses appended, {} already recorded",
                thousands(new),
                thousands(dup)
            );
        }
        eprintln!(
            "  state: {} actors, {} detector keys, peak memory {:.1} MiB",
            thousands(self.actors as u64),
            thousands(self.detector_keys as u64),
            self.peak_rss as f64 / (1024.0 * 1024.0)
        );
    }
}

pub fn run(args: WatchArgs) -> Result<ExitCode> {
    let quiet = args.quiet;
    let out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(io::BufWriter::new(std::fs::File::create(p).with_context(
            || format!("cannot create the output file {}", p.display()),
        )?)),
        None => Box::new(io::BufWriter::new(io::stdout().lock())),
    };
    let report = watch(&args, out)?;
    if let Some(p) = &args.stats_json {
        std::fs::write(p, serde_json::to_string_pretty(&report.to_json())?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if !quiet {
        report.print();
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds the engine from the command line's side inputs, telling once
/// what each detector lacks.
pub fn build_engine(args: &WatchArgs) -> Result<(Engine, Arc<Directory>)> {
    let directory = match &args.directory {
        Some(p) => Directory::load(p)?,
        None => {
            if !args.quiet {
                eprintln!("vakt: note: no --directory given; detectors that need organisations, networks or accounts say so below");
            }
            Directory::default()
        }
    };
    let directory = Arc::new(directory);
    let cases = match &args.cases {
        Some(p) => Some(Cases::load(p)?),
        None => None,
    };
    let geoip = if args.geoip.is_empty() {
        None
    } else {
        Some(GeoIp::open(&args.geoip)?)
    };
    let engine = Engine::new(Enricher::new(directory.clone(), cases, geoip), registry());
    if !args.quiet {
        for (id, note) in engine.missing_inputs() {
            eprintln!("vakt: note: {id}: {note}");
        }
    }
    Ok((engine, directory))
}

/// Runs the pipeline, writing alert lines to `out`.
pub fn watch(args: &WatchArgs, mut out: Box<dyn Write>) -> Result<WatchReport> {
    let format = match args.format.as_str() {
        "auto" => None,
        name => match parsers::format(name) {
            Some(f) => Some(f),
            None => bail!(
                "unknown --format `{name}`; use auto or one of: {}",
                parsers::names().join(", ")
            ),
        },
    };
    let (mut engine, directory) = build_engine(args)?;
    let config = StreamConfig {
        format,
        context: ParserContext {
            directory: directory.clone(),
        },
        max_line: args.max_line,
        lateness: vakt_detect::LATENESS,
    };
    let quiet = args.quiet;
    let rejects = Mutex::new(Rejects::new(
        args.dead_letter.as_deref(),
        Box::new(move |m| {
            if !quiet {
                eprintln!("vakt: {m}")
            }
        }),
    )?);
    let inputs: Vec<Input> = if args.inputs.is_empty() {
        vec![Input::Stdin]
    } else {
        args.inputs.iter().map(|s| Input::parse(s)).collect()
    };

    let ledger = match &args.data {
        Some(p) => {
            let dir = DataDir::resolve((p.as_os_str() != "-").then_some(p.as_path()));
            if !dir.exists() && !quiet {
                eprintln!(
                    "vakt: note: creating the data directory {} (ledger and signing key)",
                    dir.path.display()
                );
            }
            Some(
                Ledger::open(&dir)
                    .with_context(|| format!("cannot open the ledger in {}", dir.path.display()))?,
            )
        }
        None => None,
    };
    let deliverer = match &args.deliver {
        Some(p) => {
            let config = vakt_deliver::DeliveryConfig::load(p)?;
            let dir = DataDir::resolve(args.data.as_deref().filter(|p| p.as_os_str() != "-"));
            Some(vakt_deliver::Deliverer::start(&dir.path, &config)?)
        }
        None => None,
    };
    let mut deliver_error: Option<vakt_deliver::DeliverError> = None;
    let ledger = RefCell::new(ledger);
    let mut ledger_error: Option<vakt_ledger::LedgerError> = None;

    let started = Instant::now();
    let mut alert_lines = 0u64;
    let mut write_error: Option<io::Error> = None;
    let follow = args.follow;
    let mut emit = |a: Alert| {
        alert_lines += 1;
        if let Some(l) = ledger.borrow_mut().as_mut() {
            // The alert, and the decisions the directory's policies make of it.
            let recorded = l.record_alert(&a).and_then(|()| {
                vakt_ledger::decisions::from_alert(&directory.policies, &a)
                    .iter()
                    .try_for_each(|d| l.put_decision(d))
            });
            if let Err(e) = recorded {
                ledger_error.get_or_insert(e);
            }
        }
        if let Some(d) = &deliverer {
            if let Err(e) = d.enqueue(&a) {
                deliver_error.get_or_insert(e);
            }
        }
        if write_error.is_none() {
            let r = writeln!(out, "{}", a.to_json_line()).and_then(|()| {
                if follow {
                    out.flush()
                } else {
                    Ok(())
                }
            });
            if let Err(e) = r {
                write_error = Some(e);
            }
        }
    };

    // Detection first, then the ledger: an access is recorded once it is seen.
    // The ledger records the organisation the directory names, which wins over the event's.
    let record = |engine: &Engine, ev: &Event| -> Result<()> {
        if let (Some(l), Event::Access(a)) = (ledger.borrow_mut().as_mut(), ev) {
            l.append_as(a, engine.enricher().organization_of(a))
                .context("cannot append to the ledger")?;
        }
        Ok(())
    };
    let input_stats = if args.follow {
        follow_inputs(&inputs, config, args.idle_exit, &rejects, &mut |ev| {
            engine.process(&ev, &mut emit);
            record(&engine, &ev)
        })?
    } else {
        let mut streams = Vec::new();
        for i in &inputs {
            streams.push(
                EventStream::open(i, config.clone())
                    .with_context(|| format!("cannot open input {}", i.name()))?,
            );
        }
        let mut merge = Merge::new(streams);
        while let Some(ev) = merge.next_event(&rejects)? {
            engine.process(&ev, &mut emit);
            record(&engine, &ev)?;
        }
        merge.stats()
    };
    engine.finish(&mut emit);
    if let Some(e) = ledger_error {
        return Err(e).context("cannot record alerts in the ledger");
    }
    if let Some(e) = deliver_error {
        return Err(e).context("cannot queue alerts for delivery");
    }
    if let Some(d) = deliverer {
        if d.shutdown(std::time::Duration::from_secs(10)) > 0 && !quiet {
            eprintln!("vakt: note: alerts still undelivered after 10 s stay queued in the data directory and go out at the next run");
        }
    }
    let ledger_counts = match ledger.into_inner() {
        Some(l) => {
            let counts = l.counts();
            l.close().context("cannot commit the ledger")?;
            Some(counts)
        }
        None => None,
    };
    if let Some(e) = write_error {
        if e.kind() != io::ErrorKind::BrokenPipe {
            return Err(e).context("cannot write alerts");
        }
    }
    out.flush().or_else(|e| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    let elapsed = started.elapsed();
    let mut rejects = rejects.into_inner().unwrap_or_else(|p| p.into_inner());
    rejects
        .flush()
        .context("cannot write the dead-letter file")?;
    let (detector_keys, actors) = engine.tracked();
    Ok(WatchReport {
        inputs: input_stats,
        rejected: rejects.count(),
        events: [EventKind::Access, EventKind::Flow]
            .into_iter()
            .map(|k| (k.as_str(), engine.events(k)))
            .filter(|(_, n)| *n > 0)
            .collect(),
        incidents: engine
            .incidents_by_rule()
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect(),
        alert_lines,
        elapsed,
        actors,
        detector_keys,
        peak_rss: peak_rss(),
        end_rss: rss(),
        ledger: ledger_counts,
    })
}

/// Follows every input in its own thread; events reach the engine in
/// arrival order (each input is in order within the tolerated lateness).
fn follow_inputs(
    inputs: &[Input],
    config: StreamConfig,
    idle_exit: Option<f64>,
    rejects: &Mutex<Rejects>,
    process: &mut dyn FnMut(Event) -> Result<()>,
) -> Result<Vec<InputStats>> {
    let control = FollowControl {
        idle_exit: idle_exit.map(Duration::from_secs_f64),
        ..Default::default()
    };
    let stop = control.stop.clone();
    // A second Ctrl-C while stopping falls through to the default (exit).
    let _ = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed));
    let mut streams = Vec::new();
    for i in inputs {
        let s = match i {
            Input::File(p) => follow_path(p, &config, &control)?,
            Input::Stdin => EventStream::open(i, config.clone())?,
        };
        streams.push(s);
    }
    let (tx, rx) = mpsc::sync_channel::<Event>(4096);
    std::thread::scope(|scope| -> Result<Vec<InputStats>> {
        let mut handles = Vec::new();
        for mut s in streams {
            let tx = tx.clone();
            handles.push(scope.spawn(move || -> io::Result<InputStats> {
                while let Some(ev) = s.next_event(rejects)? {
                    if tx.send(ev).is_err() {
                        break;
                    }
                }
                Ok(s.stats().clone())
            }));
        }
        drop(tx);
        for ev in rx {
            process(ev)?;
        }
        let mut stats = Vec::new();
        for h in handles {
            stats.push(
                h.join()
                    .map_err(|_| anyhow::anyhow!("an input thread failed"))??,
            );
        }
        Ok(stats)
    })
}

fn follow_path(p: &Path, config: &StreamConfig, control: &FollowControl) -> Result<EventStream> {
    EventStream::follow(p, config.clone(), control.clone())
        .with_context(|| format!("cannot follow {}", p.display()))
}
