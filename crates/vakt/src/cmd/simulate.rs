//! `vakt simulate`: a telecom operator's traffic with labelled incidents.

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use vakt_sim::{Scale, Scenario, SimConfig, SimSummary};

#[derive(clap::Args, Clone, Debug)]
pub struct SimulateArgs {
    /// Directory to write events.jsonl, directory.toml, cases.csv and labels.json into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Days of traffic.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// small (~150k events a month), medium (~2M), large (~100M, streamed).
    #[arg(long, default_value = "medium", value_parser = ["small", "medium", "large"])]
    pub scale: String,
    /// Incidents to inject: s1,s2,... or all or none.
    #[arg(long, default_value = "all")]
    pub scenarios: String,
}

pub fn parse_scenarios(s: &str) -> Result<Vec<Scenario>> {
    match s {
        "all" => Ok(Scenario::ALL.to_vec()),
        "none" => Ok(Vec::new()),
        list => list
            .split(',')
            .map(|n| {
                Scenario::parse(n.trim())
                    .with_context(|| format!("unknown scenario `{n}`; use s1 to s6, all or none"))
            })
            .collect(),
    }
}

pub fn config(args: &SimulateArgs) -> Result<SimConfig> {
    let scale = match args.scale.as_str() {
        "small" => Scale::Small,
        "medium" => Scale::Medium,
        "large" => Scale::Large,
        other => bail!("unknown scale `{other}`"),
    };
    if args.days == 0 {
        bail!("--days must be at least 1");
    }
    Ok(SimConfig {
        days: args.days,
        seed: args.seed,
        scale,
        scenarios: parse_scenarios(&args.scenarios)?,
        ..SimConfig::default()
    })
}

/// Runs the simulator with a progress bar on stderr.
pub fn simulate(cfg: &SimConfig, out: &Path) -> Result<SimSummary> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let bar = ProgressBar::new(cfg.days as u64 * 86_400_000);
    bar.set_style(
        ProgressStyle::with_template("simulating {bar:30} {percent:>3}% {msg}, {eta} left")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = cfg.start.0;
    let summary = vakt_sim::simulate(cfg, out, |t| {
        bar.set_position((t as i64 - start).max(0) as u64)
    })
    .with_context(|| format!("simulation into {} failed", out.display()))?;
    bar.finish_and_clear();
    Ok(summary)
}

pub fn run(args: SimulateArgs) -> Result<()> {
    let cfg = config(&args)?;
    let t = std::time::Instant::now();
    let summary = simulate(&cfg, &args.out)?;
    eprintln!(
        "vakt simulate: {} events in {:.1} s into {} (events.jsonl, directory.toml, cases.csv, labels.json)",
        crate::fmt::thousands(summary.events),
        t.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
