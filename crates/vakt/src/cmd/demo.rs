//! `vakt demo`: a month of a mid-size operator with every incident,
//! watched with the embedded defaults; shows what a security engineer
//! wants to see first.

use crate::fmt::thousands;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::PathBuf;
use vakt_event::{Alert, Severity};
use vakt_ingest::Input;
use vakt_pipeline::watch::{watch, WatchConfig, WatchReport};
use vakt_sim::eval::{evaluate, read_alerts};
use vakt_sim::{Scale, Scenario, SimConfig};

#[derive(clap::Args, Clone, Debug)]
pub struct DemoArgs {
    /// Where to leave the files (events, directory, cases, labels, alerts).
    #[arg(long, default_value = "vakt-demo", value_name = "DIR")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    #[arg(long, default_value_t = 30)]
    pub days: u32,
}

/// What one simulated month gave: the simulation, the watch run, the alerts and their evaluation.
pub struct Month {
    pub sim: vakt_sim::SimSummary,
    pub sim_secs: f64,
    pub report: WatchReport,
    pub alerts: Vec<Alert>,
    pub eval: vakt_sim::Evaluation,
}

/// Simulates a month into `dir`, watches it with the embedded defaults, evaluates.
pub fn simulate_and_watch(dir: &std::path::Path, seed: u64, days: u32) -> Result<Month> {
    let cfg = SimConfig {
        days,
        seed,
        scale: Scale::Medium,
        scenarios: Scenario::ALL.to_vec(),
        ..SimConfig::default()
    };
    let t0 = std::time::Instant::now();
    let sim = crate::cmd::simulate::simulate(&cfg, dir)?;
    let sim_secs = t0.elapsed().as_secs_f64();

    let alerts_path = dir.join("alerts.jsonl");
    let watch_config = WatchConfig {
        directory: Some(dir.join("directory.toml")),
        cases: Some(dir.join("cases.csv")),
        format: WatchConfig::format_named("jsonl")?,
        dead_letter: Some(dir.join("rejected.jsonl")),
        inputs: vec![Input::File(dir.join("events.jsonl"))],
        ..WatchConfig::default()
    };
    let out = std::io::BufWriter::new(
        std::fs::File::create(&alerts_path)
            .with_context(|| format!("cannot create {}", alerts_path.display()))?,
    );
    let report = watch(watch_config, Box::new(out))?;
    let alerts = read_alerts(&alerts_path)?;
    let labels = crate::cmd::eval::load_labels(&dir.join("labels.json"))?;
    let eval = evaluate(&labels, &alerts);
    Ok(Month {
        sim,
        sim_secs,
        report,
        alerts,
        eval,
    })
}

pub fn run(args: DemoArgs) -> Result<()> {
    let dir = &args.out;
    let Month {
        sim,
        sim_secs,
        report,
        alerts,
        eval,
    } = simulate_and_watch(dir, args.seed, args.days)?;
    println!(
        "vakt demo: {} days of a mid-size operator, {} events (simulated in {:.1} s, watched at {} events/s), seed {}",
        args.days,
        thousands(sim.events),
        sim_secs,
        thousands(report.events_per_second() as u64),
        args.seed
    );
    println!();
    println!("Incidents found, most severe first (medium and above):");
    print_incidents(&alerts);
    println!();
    println!("Detection against the injected incidents:");
    print!("{}", eval.render_table());
    println!();
    println!("Files are in {}/ ; next:", dir.display());
    println!(
        "  vakt eval --labels {0}/labels.json {0}/alerts.jsonl",
        dir.display()
    );
    println!(
        "  vakt watch --directory {0}/directory.toml --cases {0}/cases.csv {0}/events.jsonl",
        dir.display()
    );
    Ok(())
}

/// One row per actor: the alerts about it merged, most severe and earliest first.
fn print_incidents(alerts: &[Alert]) {
    struct Row<'a> {
        severity: Severity,
        first_seen: vakt_event::Timestamp,
        detected: Option<vakt_event::Timestamp>,
        customers: u64,
        rules: std::collections::BTreeSet<&'a str>,
        worst: &'a Alert,
    }
    let mut rows: HashMap<String, Row> = HashMap::new();
    for a in alerts.iter().filter(|a| a.severity >= Severity::Medium) {
        let r = rows.entry(a.actor.label()).or_insert(Row {
            severity: a.severity,
            first_seen: a.first_seen,
            detected: None,
            customers: 0,
            rules: Default::default(),
            worst: a,
        });
        r.first_seen = r.first_seen.min(a.first_seen);
        r.detected = Some(r.detected.map_or(a.timestamp, |d| d.min(a.timestamp)));
        r.customers = r.customers.max(a.customers);
        r.rules.insert(&a.rule);
        if a.severity > r.severity || (a.severity == r.severity && a.customers > r.worst.customers)
        {
            r.severity = a.severity;
            r.worst = a;
        }
    }
    let mut rows: Vec<(String, Row)> = rows.into_iter().collect();
    rows.sort_by(|(a_label, a), (b_label, b)| {
        b.severity
            .cmp(&a.severity)
            .then(a.first_seen.cmp(&b.first_seen))
            .then(a_label.cmp(b_label))
    });
    let short = |t: vakt_event::Timestamp| t.to_rfc3339()[..16].replace('T', " ");
    println!(
        "  {:<9} {:<16} {:<17} {:<17} {:>9}  rules, and why",
        "severity", "actor", "first seen", "detected", "customers"
    );
    for (label, r) in &rows {
        let mut why = r.worst.message.clone();
        if why.chars().count() > 110 {
            why = why.chars().take(107).collect::<String>() + "...";
        }
        println!(
            "  {:<9} {:<16} {:<17} {:<17} {:>9}  {}",
            r.severity.as_str(),
            label,
            short(r.first_seen),
            r.detected.map(short).unwrap_or_default(),
            thousands(r.customers),
            r.rules.iter().copied().collect::<Vec<_>>().join(", ")
        );
        println!(
            "  {:<9} {:<16} {:<17} {:<17} {:>9}  {}",
            "", "", "", "", "", why
        );
    }
    if rows.is_empty() {
        println!("  (none)");
    }
}
