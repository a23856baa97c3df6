//! `vakt eval`: detection quality against a simulation's labels.

use anyhow::{Context, Result};
use std::path::PathBuf;
use vakt_sim::eval::{evaluate, read_alerts, Evaluation};
use vakt_sim::Labels;

#[derive(clap::Args, Clone, Debug)]
pub struct EvalArgs {
    /// labels.json written by `vakt simulate`.
    #[arg(long, value_name = "FILE")]
    pub labels: PathBuf,
    /// text (a table) or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// Alerts (JSON lines) written by `vakt watch`.
    #[arg(value_name = "ALERTS")]
    pub alerts: PathBuf,
}

pub fn load_labels(path: &std::path::Path) -> Result<Labels> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a labels file written by `vakt simulate`",
            path.display()
        )
    })
}

pub fn run(args: EvalArgs) -> Result<()> {
    let labels = load_labels(&args.labels)?;
    let alerts = read_alerts(&args.alerts)?;
    let eval: Evaluation = evaluate(&labels, &alerts);
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&eval)?);
    } else {
        print!("{}", eval.render_table());
    }
    Ok(())
}
