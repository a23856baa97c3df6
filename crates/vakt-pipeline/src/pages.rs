//! Payment-page checks in the act step: each `[[page]]` is loaded in a
//! fresh headless browser ([`vakt_pages::check`]), compared with what the
//! ledger knows of it ([`vakt_pages::compare`]), recorded into its
//! inventory, and its findings returned as `page_integrity` (or
//! `page_check_failed`) alerts for [`crate::Pipeline::raise`], so they are
//! recorded, decided and delivered like any other.

use std::path::PathBuf;
use std::time::Duration;
use vakt_event::page::{CheckFailure, PageEntry, PageSnapshot};
use vakt_event::{Alert, Timestamp};
use vakt_ledger::Ledger;
use vakt_pages::{CanaryFill, CheckOptions, Step};

/// What one page's check did.
#[derive(Debug)]
pub struct PageOutcome {
    pub page: String,
    /// Wall time of the check, browser start to exit (0 when it did not run).
    pub took_ms: u64,
    /// Largest resident memory of the browser during the check, in bytes.
    pub browser_peak_rss: u64,
    /// Scripts and requests seen; none when the check failed.
    pub seen: Option<(usize, usize)>,
    /// Whether this was the page's first check (its baseline).
    pub baseline: bool,
    /// Requests and scripts past the check's caps, not recorded.
    pub dropped: u64,
    pub alerts: Vec<Alert>,
    /// What to record into the inventory: none for a failed check, or one
    /// that landed on another origin.
    pub snapshot: Option<PageSnapshot>,
}

/// A `[[page]]` setting that cannot be used as it stands.
#[derive(Debug, thiserror::Error)]
#[error("page {page}: {message}")]
pub struct PageSettingError {
    pub page: String,
    pub message: String,
}

fn secret(
    page: &str,
    value: &Option<String>,
    env: &Option<String>,
) -> Result<String, PageSettingError> {
    match (value, env) {
        (Some(v), _) => Ok(v.clone()),
        (None, Some(name)) => std::env::var(name).map_err(|_| PageSettingError {
            page: page.into(),
            message: format!("the environment variable {name} is not set; export it before starting vakt, or give the value in the directory"),
        }),
        (None, None) => Ok(String::new()),
    }
}

/// The browser settings of a page: its timeout, cookies and sign-in steps
/// (values read from the environment where the entry says `value_env`), and
/// fresh canary values when it has `fill = true`. Fails when a variable is
/// missing, so `vakt serve` can say so at start.
pub fn options_for(
    entry: &PageEntry,
    chromium: Option<&PathBuf>,
    seed: u64,
) -> Result<CheckOptions, PageSettingError> {
    let page = entry.url.get_ref();
    let mut o = CheckOptions::default();
    if let Some(c) = chromium {
        o.chromium = c.clone();
    }
    o.timeout = Duration::from_millis(entry.timeout_ms.max(1) as u64);
    for c in &entry.cookies {
        o.cookies
            .push((c.name.clone(), secret(page, &c.value, &c.value_env)?));
    }
    for s in &entry.steps {
        o.steps.push(if let Some(url) = &s.goto {
            Step::Goto(url.clone())
        } else if let Some(selector) = &s.fill {
            Step::Fill {
                selector: selector.clone(),
                value: secret(page, &s.value, &s.value_env)?,
            }
        } else if let Some(selector) = &s.click {
            Step::Click(selector.clone())
        } else {
            Step::WaitFor(s.wait_for.clone().unwrap_or_default())
        });
    }
    if entry.fill {
        o.fill = Some(CanaryFill::generate(seed));
    }
    Ok(o)
}

/// A seed for a check's canary values: the page and the time, so each
/// check types values never typed before.
fn seed(page: &str, at: Timestamp) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ at.0 as u64;
    for b in page.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Loads one page in a fresh browser; a setting that cannot be used (a
/// variable missing from the environment) is a failed check.
pub fn browse(entry: &PageEntry, chromium: Option<&PathBuf>) -> Result<PageSnapshot, CheckFailure> {
    let page = entry.url.get_ref();
    let options = options_for(entry, chromium, seed(page, Timestamp::now()))
        .map_err(|e| CheckFailure::Browser(e.message))?;
    vakt_pages::check(page, &options)
}

/// Reads a check of `entry`'s page against `ledger`'s inventory of it; the
/// alerts are returned, to be raised before [`record`] stores the check, so
/// a crash between the two raises them again (under the same ids) rather
/// than never.
pub fn assess(
    entry: &PageEntry,
    ledger: &Ledger,
    result: Result<PageSnapshot, CheckFailure>,
) -> Result<PageOutcome, vakt_ledger::LedgerError> {
    let page = entry.url.get_ref().clone();
    let mut outcome = PageOutcome {
        page: page.clone(),
        took_ms: 0,
        browser_peak_rss: 0,
        seen: None,
        baseline: false,
        dropped: 0,
        alerts: Vec::new(),
        snapshot: None,
    };
    let snap = match result {
        Ok(s) => s,
        Err(failure) => {
            outcome.alerts.push(vakt_pages::compare::failure_alert(
                &page,
                &failure,
                Timestamp::now(),
            ));
            return Ok(outcome);
        }
    };
    outcome.took_ms = snap.took_ms;
    outcome.browser_peak_rss = snap.browser_peak_rss;
    outcome.seen = Some((snap.scripts.len(), snap.requests.len()));
    outcome.dropped = snap.dropped;
    let at = snap.checked_at;
    if let Some(moved) = vakt_pages::compare::moved_alert(&page, &snap.final_url, at) {
        outcome.alerts.push(moved);
        return Ok(outcome);
    }
    let inventory = ledger.page_inventory(&page)?;
    outcome.baseline = inventory.last.is_none();
    let body = |sha: &str| ledger.script_body(sha).ok().flatten();
    let findings = vakt_pages::compare::compare(entry, &inventory, &snap, &body);
    outcome.alerts = findings
        .iter()
        .map(|f| vakt_pages::compare::to_alert(&page, f, at))
        .collect();
    outcome.snapshot = Some(snap);
    Ok(outcome)
}

/// [`browse`] then [`assess`].
pub fn check_page(
    entry: &PageEntry,
    ledger: &Ledger,
    chromium: Option<&PathBuf>,
) -> Result<PageOutcome, vakt_ledger::LedgerError> {
    assess(entry, ledger, browse(entry, chromium))
}

/// Records a checked page into its inventory (nothing for a failed check).
pub fn record(ledger: &mut Ledger, outcome: &PageOutcome) -> Result<(), vakt_ledger::LedgerError> {
    match &outcome.snapshot {
        Some(snap) => ledger.record_page_check(&outcome.page, snap),
        None => Ok(()),
    }
}

/// Whether a page last checked (or tried) at `last` is due at `now`.
pub fn due(entry: &PageEntry, last: Option<Timestamp>, now: Timestamp) -> bool {
    last.is_none_or(|l| now.0.saturating_sub(l.0) >= entry.every_ms)
}
