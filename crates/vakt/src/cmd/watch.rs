//! `vakt watch`: what the user typed ([`WatchArgs`]) turned into a
//! [`WatchConfig`], run by `vakt_pipeline::watch`, summarised on stderr.

use crate::fmt::{peak_rss, rss, thousands};
use anyhow::{Context, Result};
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use vakt_ingest::Input;
use vakt_ledger::DataDir;
use vakt_pipeline::watch::{watch, WatchConfig, WatchReport};

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
    /// With --follow: how often the --directory file is checked for
    /// edits; a good edit applies to the next event, a bad one is refused
    /// with file:line and the running directory stays.
    #[arg(long, default_value = "5s", value_name = "DURATION",
          value_parser = vakt_pipeline::reload::parse_poll)]
    pub directory_poll: Duration,
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

impl WatchArgs {
    /// The run these flags describe.
    pub fn to_config(&self) -> Result<WatchConfig> {
        let quiet = self.quiet;
        let data = self
            .data
            .as_ref()
            .map(|p| DataDir::resolve((p.as_os_str() != "-").then_some(p.as_path())));
        let deliver = match &self.deliver {
            Some(p) => {
                let config = vakt_deliver::DeliveryConfig::load(p)?;
                let dir = DataDir::resolve(self.data.as_deref().filter(|p| p.as_os_str() != "-"));
                Some((config, dir))
            }
            None => None,
        };
        let total_bytes: u64 = self
            .inputs
            .iter()
            .filter(|i| i.as_str() != "-")
            .filter_map(|i| std::fs::metadata(i).ok())
            .map(|m| m.len())
            .sum();
        let progress = (!quiet && !self.follow && total_bytes > 0 && io::stderr().is_terminal())
            .then(|| crate::progress::bytes_callback(total_bytes, "watching"));
        Ok(WatchConfig {
            directory: self.directory.clone(),
            cases: self.cases.clone(),
            geoip: self.geoip.clone(),
            format: WatchConfig::format_named(&self.format)?,
            dead_letter: self.dead_letter.clone(),
            follow: self.follow,
            idle_exit: self.idle_exit.map(Duration::from_secs_f64),
            directory_poll: self.directory_poll,
            max_line: self.max_line,
            data,
            deliver,
            inputs: self.inputs.iter().map(|s| Input::parse(s)).collect(),
            notify: Arc::new(move |m: &str| {
                if !quiet {
                    eprintln!("vakt: {m}")
                }
            }),
            progress,
        })
    }
}

pub fn run(args: WatchArgs) -> Result<ExitCode> {
    let out: Box<dyn Write + Send> = match &args.output {
        Some(p) => Box::new(io::BufWriter::new(std::fs::File::create(p).with_context(
            || format!("cannot create the output file {}", p.display()),
        )?)),
        None => Box::new(io::BufWriter::new(io::stdout())),
    };
    let report = watch(args.to_config()?, out)?;
    let summary = Summary::of(report);
    if let Some(p) = &args.stats_json {
        std::fs::write(p, serde_json::to_string_pretty(&summary.to_json())?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if !args.quiet {
        summary.print();
    }
    Ok(ExitCode::SUCCESS)
}

/// A run's report with this process's memory figures.
pub struct Summary {
    pub report: WatchReport,
    pub peak_rss: u64,
    /// Resident memory at the end of the run, with all state still held.
    pub end_rss: u64,
}

impl Summary {
    pub fn of(report: WatchReport) -> Summary {
        Summary {
            report,
            peak_rss: peak_rss(),
            end_rss: rss(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let r = &self.report;
        serde_json::json!({
            "events": r.total_events(),
            "events_by_kind": r.events.iter().map(|(k, n)| (k.to_string(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
            "rejected": r.rejected,
            "replayed": r.replayed,
            "incidents_by_rule": r.incidents.iter().map(|(k, n)| (k.to_string(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
            "alert_lines": r.alert_lines,
            "suppressed_by_rule": r.suppressed.iter().map(|(k, n)| (k.clone(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
            "seconds": r.elapsed.as_secs_f64(),
            "events_per_second": r.events_per_second(),
            "actors": r.actors,
            "detector_keys": r.detector_keys,
            "peak_rss_bytes": self.peak_rss,
            "end_rss_bytes": self.end_rss,
            "inputs": r.inputs.iter().map(|i| serde_json::json!({
                "name": i.name, "format": i.format, "lines": i.lines, "events": i.events, "rejected": i.rejected,
            })).collect::<Vec<_>>(),
        })
    }

    pub fn print(&self) {
        let r = &self.report;
        let total = r.total_events();
        let kinds: Vec<String> = r
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
            r.elapsed.as_secs_f64(),
            thousands(r.events_per_second() as u64)
        );
        for i in &r.inputs {
            eprintln!(
                "  input {} ({}): {} lines, {} events, {} rejected",
                i.name,
                i.format.unwrap_or("format unknown"),
                thousands(i.lines),
                thousands(i.events),
                thousands(i.rejected)
            );
        }
        eprintln!("  lines rejected: {}", thousands(r.rejected));
        let n: u64 = r.incidents.iter().map(|(_, n)| n).sum();
        let rules: Vec<String> = r
            .incidents
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        eprintln!(
            "  alerts: {} incidents{}{} ({} alert lines)",
            thousands(n),
            if rules.is_empty() { "" } else { ": " },
            rules.join(", "),
            thousands(r.alert_lines)
        );
        if !r.suppressed.is_empty() {
            let n: u64 = r.suppressed.iter().map(|(_, n)| n).sum();
            let rules: Vec<String> = r
                .suppressed
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            eprintln!(
                "  suppressed by exceptions: {} alert lines: {} (recorded, not delivered; `vakt exceptions list`)",
                thousands(n),
                rules.join(", ")
            );
        }
        if let Some((new, dup)) = r.ledger {
            eprintln!(
                "  ledger: {} accesses appended, {} already recorded",
                thousands(new),
                thousands(dup)
            );
        }
        if r.replayed > 0 {
            eprintln!(
                "  replayed: {} events the ledger already held rebuilt detector state and raised nothing again",
                thousands(r.replayed)
            );
        }
        if r.undelivered_bytes > 0 {
            eprintln!("  delivery: alerts still undelivered after 10 s stay queued in the data directory and go out at the next run");
        }
        eprintln!(
            "  state: {} actors, {} detector keys, peak memory {:.1} MiB",
            thousands(r.actors as u64),
            thousands(r.detector_keys as u64),
            self.peak_rss as f64 / (1024.0 * 1024.0)
        );
    }
}
