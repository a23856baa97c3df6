//! `vakt bench`: figures anyone can rerun. One file per bench: `watch`
//! (throughput and memory of `vakt watch`), `ledger` (append rate, disk,
//! scope time), `store` (the entry engines side by side), `serve` (`vakt serve` over HTTP), `parse` (parsing cost
//! as hostile records grow), `soak` (`vakt serve` under a flood), `cluster` (serve nodes
//! reading Kafka), `snapshot` (a partition's detector state moved);
//! `detection` lives with
//! the simulator's evaluation in `cmd/detection.rs`.

mod cluster;
mod ledger;
mod pages;
mod parse;
mod pgaudit;
mod serve;
mod snapshot;
mod soak;
mod store;
mod watch;

pub(crate) use ledger::append_generated;

use crate::fmt::thousands;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand, Clone, Debug)]
pub enum Bench {
    /// Throughput and memory of `vakt watch` on generated JSON lines.
    Watch(watch::BenchArgs),
    /// Detection quality over several simulated months (seeds).
    Detection(crate::cmd::detection::DetectionArgs),
    /// Ledger append rate, scope query time and disk bytes per event.
    Ledger(ledger::LedgerBenchArgs),
    /// The ledger's entry engines side by side: append rate, disk, scope times.
    Store(store::StoreBenchArgs),
    /// `vakt serve` over HTTP: ingest rate, and read latency over a big ledger.
    Serve(serve::ServeBenchArgs),
    /// Parsing cost per line as a hostile csvlog record grows (must stay flat).
    Parse(parse::ParseBenchArgs),
    /// Lines/s reading a real pgaudit log (stderr and csvlog), shape cache vs sqlparser each.
    Pgaudit(pgaudit::PgauditBenchArgs),
    /// `vakt serve` under a mixed flood: honest ingest keeps being answered, memory stays capped.
    Soak(soak::SoakArgs),
    /// A partition's detector snapshot: its size, save and restore time, beside reading the partition from its start.
    Snapshot(snapshot::SnapshotBenchArgs),
    /// `vakt serve` nodes reading one Kafka topic as a group: events/s with 1, 2, 3 nodes.
    Cluster(cluster::ClusterBenchArgs),
    /// A payment-page check in headless Chromium: wall time and browser memory, beside a plain load.
    Pages(pages::PagesBenchArgs),
}

pub fn dispatch(b: Bench) -> Result<()> {
    match b {
        Bench::Watch(a) => watch::run(a),
        Bench::Detection(a) => crate::cmd::detection::run(a),
        Bench::Ledger(a) => ledger::ledger(a),
        Bench::Store(a) => store::run(a),
        Bench::Serve(a) => serve::run(a),
        Bench::Parse(a) => parse::run(a),
        Bench::Pgaudit(a) => pgaudit::run(a),
        Bench::Soak(a) => soak::run(a),
        Bench::Pages(a) => pages::run(a),
        Bench::Cluster(a) => cluster::run(a),
        Bench::Snapshot(a) => snapshot::run(a),
    }
}

/// Bytes of the files under `dir`, subdirectories included.
pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match e.metadata() {
            Ok(m) if m.is_dir() => total += dir_bytes(&e.path()),
            Ok(m) => total += m.len(),
            Err(_) => {}
        }
    }
    total
}

pub(crate) fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Writes (once) the events file and the directory for `accounts`.
pub(crate) fn generate(dir: &Path, events: u64, accounts: u32) -> Result<(PathBuf, PathBuf)> {
    let path = dir.join(format!("bench-{events}-{accounts}.jsonl"));
    let directory = dir.join(format!("bench-{accounts}.toml"));
    std::fs::write(&directory, vakt_sim::bench_directory(accounts))?;
    if !path.exists() {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(format!(
            "generating {} events for {} accounts",
            thousands(events),
            thousands(accounts as u64)
        ));
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        let tmp = path.with_extension("tmp");
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        vakt_sim::bench_events(events, accounts, 1, &mut w)?;
        std::io::Write::flush(&mut w)?;
        drop(w);
        std::fs::rename(&tmp, &path)?;
        bar.finish_and_clear();
    }
    Ok((path, directory))
}
