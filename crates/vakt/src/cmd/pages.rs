//! `vakt pages`: the payment pages of the directory's `[[page]]` entries.
//! `check` loads each in headless Chromium once and raises what changed
//! (the first check of a page records its inventory and raises nothing);
//! `inventory` writes the PCI DSS 6.4.3 script inventory; `csp` suggests a
//! Content-Security-Policy built from what a page was seen to load.

use crate::cmd::ledger::DataArgs;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use vakt_ledger::Ledger;
use vakt_pipeline::{JsonLines, Pipeline, PipelineConfig};

#[derive(clap::Subcommand, Debug)]
pub enum PagesCommand {
    /// Check the pages once: alerts as JSON lines on stdout, one line per page on stderr.
    Check(CheckArgs),
    /// The script inventory (PCI DSS 6.4.3) as CSV or Markdown.
    Inventory(InventoryArgs),
    /// Suggest a Content-Security-Policy (with SRI hashes) from what a page was seen to load.
    Csp(CspArgs),
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The directory whose `[[page]]` entries name the pages.
    #[arg(long, value_name = "FILE")]
    directory: PathBuf,
    /// Only this page (its `url` in the directory); repeatable.
    #[arg(long, value_name = "URL")]
    page: Vec<String>,
    /// The Chromium binary (default: $VAKT_CHROMIUM, else /usr/bin/chromium).
    #[arg(long, value_name = "PATH")]
    chromium: Option<PathBuf>,
    /// Deliver alerts to the webhooks and syslog receivers of this file (TOML, `[[target]]`).
    #[arg(long, value_name = "FILE")]
    deliver: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct InventoryArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The directory, for each script's justification.
    #[arg(long, value_name = "FILE")]
    directory: Option<PathBuf>,
    #[arg(long, default_value = "csv", value_parser = ["csv", "markdown"])]
    format: String,
    /// Write here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct CspArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The page (its `url` in the directory).
    #[arg(long, value_name = "URL")]
    page: String,
    /// Where browsers report violations: `vakt serve`'s CSP intake.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080/v1/csp-report"
    )]
    report_uri: String,
    /// The directory, to add SRI hashes for the scripts that may not change.
    #[arg(long, value_name = "FILE")]
    directory: Option<PathBuf>,
}

pub fn run(c: PagesCommand) -> Result<ExitCode> {
    match c {
        PagesCommand::Check(a) => check(a),
        PagesCommand::Inventory(a) => inventory(a),
        PagesCommand::Csp(a) => csp(a),
    }
}

/// Opens the ledger beside a running `vakt serve` (pages' inventory and
/// alerts are metadata, not entries), creating the data directory first
/// when there is none.
fn open(data: &DataArgs) -> Result<Ledger> {
    let dir = data.dir();
    if !dir.db_path().exists() {
        Ledger::open(&dir)
            .and_then(|l| l.close())
            .with_context(|| format!("cannot create a ledger in {}", dir.path.display()))?;
    }
    Ledger::open_read(&dir)
        .with_context(|| format!("cannot open the ledger in {}", dir.path.display()))
}

fn check(a: CheckArgs) -> Result<ExitCode> {
    let loaded = vakt_pipeline::reload::load(&a.directory)?;
    let directory = loaded.directory;
    for wanted in &a.page {
        if !directory.pages.iter().any(|p| p.url.get_ref() == wanted) {
            bail!(
                "{} has no [[page]] with url = \"{wanted}\"; add one or fix the URL",
                a.directory.display()
            );
        }
    }
    let pages: Vec<_> = directory
        .pages
        .iter()
        .filter(|p| a.page.is_empty() || a.page.contains(p.url.get_ref()))
        .collect();
    if pages.is_empty() {
        bail!(
            "{} has no [[page]] entries; add one with the payment page's url",
            a.directory.display()
        );
    }
    for p in &pages {
        vakt_pipeline::pages::options_for(p, a.chromium.as_ref(), 0)?;
    }
    let chromium = vakt_pipeline::pages::options_for(pages[0], a.chromium.as_ref(), 0)?.chromium;
    if !chromium.exists() {
        bail!("no Chromium at {}; install it (apt-get install chromium), or give its path with --chromium or VAKT_CHROMIUM", chromium.display());
    }
    let mut pipeline = Pipeline::new(
        PipelineConfig {
            directory: directory.clone(),
            cases: None,
            geoip: None,
        },
        Some(open(&a.data)?),
    )?
    .with_outlet(JsonLines::new("stdout", std::io::stdout(), true));
    let deliverer = match &a.deliver {
        Some(p) => Some(std::sync::Arc::new(vakt_deliver::Deliverer::start(
            &a.data.dir().path,
            &vakt_deliver::DeliveryConfig::load(p)?,
        )?)),
        None => None,
    };
    if let Some(d) = &deliverer {
        pipeline = pipeline.with_outlet(vakt_pipeline::Delivery(d.clone()));
    }
    let mut raised = 0;
    for p in &pages {
        let ledger = pipeline.ledger().context("the pipeline has a ledger")?;
        let o = vakt_pipeline::pages::check_page(p, ledger, a.chromium.as_ref())?;
        let state =
            match o.seen {
                None => "not checked".to_string(),
                Some((scripts, requests)) => {
                    format!(
                "{scripts} script(s), {requests} request(s) in {:.1} s, browser peak {} MiB{}",
                o.took_ms as f64 / 1000.0,
                o.browser_peak_rss >> 20,
                if o.baseline { "; inventory recorded (first check)" } else { "" }
            )
                }
            };
        eprintln!("{}: {state}; {} alert(s)", o.page, o.alerts.len());
        for alert in &o.alerts {
            raised += 1;
            pipeline.raise(alert.clone())?;
        }
        if let Some(l) = pipeline.ledger_mut() {
            vakt_pipeline::pages::record(l, &o)?;
        }
    }
    pipeline.finish(false)?;
    if let Some(d) = deliverer.and_then(|d| std::sync::Arc::try_unwrap(d).ok()) {
        // What is not out within the grace goes out at the next start.
        d.shutdown(std::time::Duration::from_secs(10));
    }
    eprintln!("{} page(s) checked, {raised} alert(s)", pages.len());
    Ok(ExitCode::SUCCESS)
}

fn inventory(a: InventoryArgs) -> Result<ExitCode> {
    let directory = match &a.directory {
        Some(p) => vakt_event::Directory::load(p)?,
        None => vakt_event::Directory::default(),
    };
    let ledger = Ledger::open_read(&a.data.dir())
        .with_context(|| format!("cannot open the ledger in {}", a.data.dir().path.display()))?;
    let scripts = ledger.page_scripts()?;
    let rows = vakt_pages::inventory::rows(&scripts, &directory.pages);
    let text = if a.format == "markdown" {
        vakt_pages::inventory::to_markdown(&rows, &ledger.page_destinations()?)
    } else {
        vakt_pages::inventory::to_csv(&rows)?
    };
    match &a.out {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    if scripts.is_empty() {
        eprintln!("note: no page was checked yet; run `vakt pages check --directory FILE` first");
    }
    Ok(ExitCode::SUCCESS)
}

fn csp(a: CspArgs) -> Result<ExitCode> {
    let ledger = Ledger::open_read(&a.data.dir())
        .with_context(|| format!("cannot open the ledger in {}", a.data.dir().path.display()))?;
    let inv = ledger.page_inventory(&a.page)?;
    if inv.last.is_none() {
        bail!(
            "{} was never checked; run `vakt pages check --page {}` first",
            a.page,
            a.page
        );
    }
    let policy = vakt_pages::csp::suggest(
        &inv,
        &vakt_pages::csp::Suggestion {
            page: &a.page,
            report_uri: &a.report_uri,
        },
    );
    println!("Content-Security-Policy: {policy}");
    if vakt_pages::csp::uses_reporting_api(&a.report_uri) {
        println!(
            "Reporting-Endpoints: {}",
            vakt_pages::csp::reporting_endpoints(&a.report_uri)
        );
    } else {
        eprintln!("note: {} is plain HTTP, so the policy reports with report-uri only: browsers send Reporting API (report-to) reports to HTTPS endpoints alone; serve vakt with --tls-cert and --tls-key to add it", a.report_uri);
    }
    let directory = match &a.directory {
        Some(p) => Some(vakt_event::Directory::load(p)?),
        None => None,
    };
    let entry = directory
        .as_ref()
        .and_then(|d| d.pages.iter().find(|p| p.url.get_ref() == &a.page));
    let checked = inv.last.as_ref().map(|l| l.checked_at);
    let mut tags = Vec::new();
    for s in inv
        .scripts
        .iter()
        .filter(|s| !s.inline && Some(s.last_seen) >= checked)
    {
        if entry
            .and_then(|e| e.expected(&s.url, false))
            .is_some_and(|x| x.may_change)
        {
            continue;
        }
        tags.push(format!(
            "<script src=\"{}\" integrity=\"{}\" crossorigin=\"anonymous\"></script>",
            s.url, s.sha384
        ));
    }
    if !tags.is_empty() {
        println!("\n# Scripts that may not change, with their SRI hashes:");
        for t in tags {
            println!("{t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
