//! `vakt bench watch`: throughput and memory of `vakt watch`, measured on
//! generated events in a child process so the figures are the watcher's
//! own (single thread, every detector on).

use super::{generate, mib};
use crate::fmt::thousands;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use vakt_ledger::store::postgres::Postings;

#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Events per run.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Distinct accounts in the measured run.
    #[arg(long, default_value_t = 100_000)]
    pub accounts: u32,
    /// Runs per configuration; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Working directory for the generated inputs.
    #[arg(long, default_value = "/tmp/vakt-bench", value_name = "DIR")]
    pub dir: PathBuf,
}

pub(super) struct Run {
    pub(super) events_per_second: f64,
    peak_rss: u64,
    events: u64,
}

pub fn run(args: BenchArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    // Memory per account is the difference between many and few accounts
    // over the same number of events: fixed costs cancel out. With the
    // directory, each account's directory entry is counted too.
    let few = (args.accounts / 100).max(100);
    let median = |accounts: u32, with_directory: bool| -> Result<Run> {
        let (events, directory) = generate(&args.dir, args.events, accounts)?;
        let mut runs = Vec::new();
        for _ in 0..args.runs.max(1) {
            runs.push(watch_once(
                &args.dir,
                &events,
                with_directory.then_some(directory.as_path()),
                None,
                None,
            )?);
        }
        runs.sort_by(|a, b| a.events_per_second.total_cmp(&b.events_per_second));
        Ok(runs.swap_remove(runs.len() / 2))
    };
    let many = args.accounts;
    let (m, f) = (median(many, true)?, median(few, true)?);
    let (m_bare, f_bare) = (median(many, false)?, median(few, false)?);
    println!("vakt bench watch: {} JSON-line access events, one thread, every detector on (median of {} runs)", thousands(m.events), args.runs.max(1));
    let line = |accounts: u32, dir: bool, r: &Run| {
        println!(
            "  {:>9} accounts, {:<17} {:>10} events/s, peak memory {:>7.1} MiB",
            thousands(accounts as u64),
            if dir {
                "with directory:"
            } else {
                "without directory:"
            },
            thousands(r.events_per_second as u64),
            mib(r.peak_rss)
        )
    };
    line(many, true, &m);
    line(few, true, &f);
    line(many, false, &m_bare);
    line(few, false, &f_bare);
    let per = |a: &Run, b: &Run| {
        a.peak_rss.saturating_sub(b.peak_rss) as f64 / (many - few).max(1) as f64
    };
    println!(
        "  peak memory per tracked account: {:.0} bytes of detector and enrichment state, {:.0} bytes with its directory entry",
        per(&m_bare, &f_bare),
        per(&m, &f)
    );
    Ok(())
}

/// One `vakt watch` of `events` in a child process, with the directory
/// and a fresh ledger in `data` when given.
pub(super) fn watch_once(
    dir: &Path,
    events: &Path,
    directory: Option<&Path>,
    data: Option<&Path>,
    store: Option<&str>,
) -> Result<Run> {
    let stats = dir.join("stats.json");
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["watch", "--quiet", "--format", "jsonl"]);
    if let Some(d) = directory {
        cmd.arg("--directory").arg(d);
    }
    if let Some(d) = data {
        let _ = std::fs::remove_dir_all(d);
        if let Some(url) = store {
            // Each run on an empty store, as each on a new data directory.
            vakt_ledger::store::postgres::reset(url)?;
            let dir = vakt_ledger::DataDir { path: d.to_owned() };
            vakt_ledger::ledger::use_postgres(&dir, url, Postings::Btree)?;
        }
        cmd.arg("--data").arg(d);
    }
    let status = cmd
        .arg("--stats-json")
        .arg(&stats)
        .arg(events)
        .stdout(Stdio::null())
        .status()
        .context("cannot start `vakt watch`")?;
    if !status.success() {
        bail!("`vakt watch` failed on {}", events.display());
    }
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats)?)?;
    Ok(Run {
        events_per_second: s["events_per_second"].as_f64().unwrap_or(0.0),
        peak_rss: s["peak_rss_bytes"].as_u64().unwrap_or(0),
        events: s["events"].as_u64().unwrap_or(0),
    })
}
