//! `vakt bench snapshot`: what a partition's detector snapshot costs and
//! what it saves. A node that takes a Kafka partition either restores the
//! engine from its snapshot or reads the partition from its start; this
//! runs a simulated month (every detector on, the operator's directory
//! and cases) through one engine, then saves and restores that engine,
//! and sets the restore beside the replay it replaces.

use crate::fmt::thousands;
use anyhow::{bail, Context, Result};
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use vakt_detect::{detectors, Engine};
use vakt_enrich::{Cases, Enricher};
use vakt_event::{Directory, Origin};

#[derive(clap::Args, Clone, Debug)]
pub struct SnapshotBenchArgs {
    /// Days of the simulated operator (about 50,000 events a day).
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Working directory for the simulated month.
    #[arg(long, default_value = "/tmp/vakt-bench-snapshot", value_name = "DIR")]
    pub dir: PathBuf,
}

fn engine(directory: &Arc<Directory>, cases: &std::path::Path) -> Result<Engine> {
    let cases = Cases::load(cases).with_context(|| format!("cannot read {}", cases.display()))?;
    Ok(Engine::new(
        Enricher::new(directory.clone(), Some(cases), None),
        detectors::build(directory)?,
    ))
}

pub fn run(args: SnapshotBenchArgs) -> Result<()> {
    let cfg = vakt_sim::SimConfig {
        days: args.days,
        seed: args.seed,
        scale: vakt_sim::Scale::Medium,
        ..Default::default()
    };
    crate::cmd::simulate::simulate(&cfg, &args.dir)?;
    let directory_path = args.dir.join("directory.toml");
    let text = std::fs::read_to_string(&directory_path)
        .with_context(|| format!("cannot read {}", directory_path.display()))?;
    let directory = Arc::new(Directory::from_toml(
        &text,
        &directory_path.to_string_lossy(),
    )?);
    let cases = args.dir.join("cases.csv");

    // Reading the partition from its start: parse and detect every event.
    let events_path = args.dir.join("events.jsonl");
    let file = std::fs::File::open(&events_path)
        .with_context(|| format!("cannot read {}", events_path.display()))?;
    let source: Arc<str> = Arc::from("events.jsonl");
    let mut e = engine(&directory, &cases)?;
    let mut alerts = 0u64;
    let started = Instant::now();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        let origin = Origin::new(source.clone(), i as u64 + 1);
        let event = vakt_ingest::parsers::jsonl::parse_event(&line, &origin)
            .with_context(|| format!("{} line {}", events_path.display(), i + 1))?;
        e.process(&event, &mut |_| alerts += 1);
    }
    let replay = started.elapsed().as_secs_f64();
    let events = e.stats().access + e.stats().flow;
    let (keys, actors) = e.tracked();

    let mut saves = Vec::new();
    let mut state = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        state = e.snapshot()?;
        saves.push(t.elapsed().as_secs_f64());
    }
    let mut restores = Vec::new();
    let mut restored = engine(&directory, &cases)?;
    for _ in 0..3 {
        restored = engine(&directory, &cases)?;
        let t = Instant::now();
        restored.restore(&state)?;
        restores.push(t.elapsed().as_secs_f64());
    }
    if restored.tracked() != (keys, actors) {
        bail!(
            "the restored engine holds {:?} keys and actors, the saved one {:?}",
            restored.tracked(),
            (keys, actors)
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (save, restore) = (median(&mut saves), median(&mut restores));
    println!(
        "vakt bench snapshot: {} simulated days, {} events, every detector on; {} keys held by the detectors, {} actors; {} alert lines",
        args.days,
        thousands(events),
        thousands(keys as u64),
        thousands(actors as u64),
        thousands(alerts)
    );
    println!(
        "  read from the start (parse + detect):  {:>8.3} s  ({} events/s)",
        replay,
        thousands((events as f64 / replay) as u64)
    );
    println!(
        "  snapshot (median of 3):                {:>8.3} s  {} bytes, {:.0} bytes per key",
        save,
        thousands(state.len() as u64),
        state.len() as f64 / keys.max(1) as f64
    );
    println!(
        "  restore (median of 3):                 {:>8.3} s  ({:.0}x faster than reading the start)",
        restore,
        replay / restore.max(1e-9)
    );
    Ok(())
}
