//! `vakt bench detection`: detection quality over several simulated
//! months, one per seed: time to detect per scenario and false positives.

use crate::cmd::demo::simulate_and_watch;
use anyhow::{bail, Result};
use std::path::PathBuf;
use vakt_event::time::human_duration;

#[derive(clap::Args, Clone, Debug)]
pub struct DetectionArgs {
    /// Seeds, comma-separated: one simulated month each.
    #[arg(long, default_value = "1,2,3,4,5", value_delimiter = ',')]
    pub seeds: Vec<u64>,
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Working directory (one subdirectory per seed).
    #[arg(long, default_value = "/tmp/vakt-detection", value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn run(args: DetectionArgs) -> Result<()> {
    if args.seeds.is_empty() {
        bail!("give at least one seed");
    }
    let mut months = Vec::new();
    for &seed in &args.seeds {
        let m = simulate_and_watch(&args.dir.join(format!("seed-{seed}")), seed, args.days)?;
        months.push((seed, m));
    }
    println!("vakt bench detection: {} simulated months of a mid-size operator, every scenario, time to detect (event time)", months.len());
    print!("  {:<4}", "");
    for (seed, _) in &months {
        print!(" {:>10}", format!("seed {seed}"));
    }
    println!();
    for (i, r) in months[0].1.eval.scenarios.iter().enumerate() {
        print!("  {:<4}", r.id.id());
        for (_, m) in &months {
            let cell = match m.eval.scenarios.get(i) {
                Some(s) if s.detected => {
                    s.time_to_detect_ms.map(human_duration).unwrap_or_default()
                }
                Some(_) => "MISSED".into(),
                None => "-".into(),
            };
            print!(" {cell:>10}");
        }
        println!();
    }
    let (mut fp, mut days, mut missed) = (0usize, 0u64, 0usize);
    for (_, m) in &months {
        fp += m.eval.false_positive_actors.len();
        days += m.eval.benign_actor_days;
        missed += m.eval.scenarios.iter().filter(|s| !s.detected).count();
    }
    print!("  {:<4}", "FP");
    for (_, m) in &months {
        print!(" {:>10}", m.eval.false_positive_actors.len());
    }
    println!("   (benign actors with a medium+ alert)");
    println!(
        "  missed: {missed}; false-positive actors: {fp} over {days} benign actor-days = {:.2} per 1,000 actor-days",
        fp as f64 * 1000.0 / days.max(1) as f64
    );
    Ok(())
}
