//! `vakt bench pages`: what one payment-page check costs, beside a plain
//! headless load of the same page by the same Chromium (`--dump-dom`, the
//! least a browser-based check can do): wall time per check, the browser's
//! memory during it, what is left running after it, and whether vakt's own
//! memory grows with the checks.

use crate::fmt::thousands;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;
use vakt_event::Directory;
use vakt_ledger::{DataDir, Ledger};
use vakt_pages::site::{payment_page, Site};

#[derive(clap::Args, Clone, Debug)]
pub struct PagesBenchArgs {
    /// Checks to run (and plain loads to compare them with).
    #[arg(long, default_value_t = 10)]
    pub checks: usize,
    /// The Chromium binary (default: $VAKT_CHROMIUM, else /usr/bin/chromium).
    #[arg(long, value_name = "PATH")]
    pub chromium: Option<PathBuf>,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Chromium processes of page checks still running (their profile is a
/// `vakt-chromium-` directory).
fn browsers_left() -> usize {
    vakt_pages::cdp::processes_with("vakt-chromium-").len()
}

pub fn run(args: PagesBenchArgs) -> Result<()> {
    let chromium = args
        .chromium
        .clone()
        .unwrap_or_else(|| vakt_pages::CheckOptions::default().chromium);
    if !chromium.exists() {
        bail!(
            "no Chromium at {}; install it (apt-get install chromium) or give --chromium",
            chromium.display()
        );
    }
    let checks = args.checks.max(1);
    let site = Site::start(3).context("cannot serve the test page on loopback")?;
    payment_page(&site);
    let url = format!("{}/pay", site.origin(0));
    let directory = Directory::from_toml(
        &format!("[[page]]\nurl = \"{url}\"\nfill = true\n"),
        "bench",
    )?;
    let entry = &directory.pages[0];
    let tmp = tempfile::tempdir()?;
    let dir = DataDir {
        path: tmp.path().join("data"),
    };
    let mut ledger = Ledger::open(&dir)?;
    println!("a payment page on loopback (3 scripts, a beacon, canary values typed), {checks} checks, one at a time");

    let rss_before = crate::fmt::rss();
    let (mut walls, mut peaks) = (Vec::new(), Vec::new());
    let mut left = 0;
    for _ in 0..checks {
        let started = Instant::now();
        let o = vakt_pipeline::pages::check_page(entry, &ledger, Some(&chromium))?;
        vakt_pipeline::pages::record(&mut ledger, &o)?;
        ledger.commit()?;
        walls.push(started.elapsed().as_secs_f64());
        if o.seen.is_none() {
            bail!(
                "the check failed: {:?}",
                o.alerts.first().map(|a| &a.message)
            );
        }
        peaks.push(o.browser_peak_rss as f64);
        left = left.max(browsers_left());
    }
    let rss_after = crate::fmt::rss();
    ledger.close()?;

    let mut plain = Vec::new();
    for _ in 0..checks {
        let profile = tempfile::tempdir()?;
        let started = Instant::now();
        let mut plain_load = Command::new(&chromium);
        // As the checks do: the sandbox stays on but for root.
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            plain_load.arg("--no-sandbox");
        }
        let status = plain_load
            .args([
                "--headless=new",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(&url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("cannot run Chromium")?;
        if !status.success() {
            bail!("chromium --dump-dom {url} failed: {status}");
        }
        plain.push(started.elapsed().as_secs_f64());
    }
    for v in [&mut walls, &mut peaks, &mut plain] {
        v.sort_by(f64::total_cmp);
    }
    let (w50, p50) = (quantile(&walls, 0.5), quantile(&plain, 0.5));
    println!(
        "{:<44} {:>8} {:>8} {:>8}",
        "wall time per page, seconds", "p50", "p95", "max"
    );
    println!(
        "{:<44} {:>8.2} {:>8.2} {:>8.2}",
        "vakt check (load, fill, compare, record)",
        w50,
        quantile(&walls, 0.95),
        quantile(&walls, 1.0)
    );
    println!(
        "{:<44} {:>8.2} {:>8.2} {:>8.2}",
        "chromium --headless --dump-dom (plain load)",
        p50,
        quantile(&plain, 0.95),
        quantile(&plain, 1.0)
    );
    println!(
        "vakt check / plain load at p50: {:.2}x",
        w50 / p50.max(1e-9)
    );
    println!(
        "browser memory during a check (PSS of its processes): p50 {} MiB, max {} MiB",
        thousands(quantile(&peaks, 0.5) as u64 >> 20),
        thousands(quantile(&peaks, 1.0) as u64 >> 20)
    );
    println!("browser processes left after a check: {left} (most seen after any one)");
    println!(
        "vakt's own resident memory: {} MiB before the checks, {} MiB after",
        rss_before >> 20,
        rss_after >> 20
    );
    Ok(())
}
