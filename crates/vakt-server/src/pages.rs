//! Payment-page checks on schedule: every `tick` `vakt serve` looks for
//! the directory's `[[page]]` entries that are due (`every`, hourly by
//! default) and checks them one at a time, each in a fresh headless
//! browser on a blocking thread, so one browser runs at most and the
//! engine never waits for one. The comparison reads the inventory through
//! the reader connection; the alerts and the check go to the engine
//! ([`crate::worker::Msg::Page`]), which raises them through the pipeline
//! (ledger, policies, delivery) and records the check.
//!
//! A page's last check is read back from the ledger at start, so a
//! restart does not check every page at once; a failed check waits for
//! its next turn like a good one.

use crate::http::lock;
use crate::State;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use vakt_event::Timestamp;

/// Checks due pages every `tick` until `stop` resolves.
pub(crate) async fn run(
    state: Arc<State>,
    tick: Duration,
    chromium: Option<PathBuf>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut tried: HashMap<String, Timestamp> = HashMap::new();
    loop {
        let directory = state.directory();
        for entry in &directory.pages {
            let page = entry.url.get_ref().clone();
            let last = match tried.get(&page) {
                Some(t) => Some(*t),
                None => lock(&state.reader)
                    .page_inventory(&page)
                    .ok()
                    .and_then(|inv| inv.last.map(|l| l.checked_at)),
            };
            if !vakt_pipeline::pages::due(entry, last, Timestamp::now()) {
                continue;
            }
            tried.insert(page.clone(), Timestamp::now());
            let (s, d, c) = (state.clone(), directory.clone(), chromium.clone());
            let check = tokio::task::spawn_blocking(move || {
                let Some(entry) = d.pages.iter().find(|p| p.url.get_ref() == &page) else {
                    return Ok(None);
                };
                let result = vakt_pipeline::pages::browse(entry, c.as_ref());
                let outcome = vakt_pipeline::pages::assess(entry, &lock(&s.reader), result)?;
                Ok::<_, vakt_ledger::LedgerError>(Some(outcome))
            });
            let outcome = tokio::select! {
                r = check => r,
                () = &mut stop => return,
            };
            match outcome {
                Ok(Ok(Some(o))) => {
                    tracing::info!(
                        "page {} checked in {} ms: {} alert(s)",
                        o.page,
                        o.took_ms,
                        o.alerts.len()
                    );
                    if o.dropped > 0 {
                        tracing::warn!(
                            "page {}: {} request(s) and script(s) past a check's caps were not recorded",
                            o.page,
                            o.dropped
                        );
                    }
                    let _ = lock(&state.ingest)
                        .tx
                        .send(crate::worker::Msg::Page(Box::new(o)));
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::warn!("page not checked: {e}"),
                Err(e) => tracing::warn!("page not checked: {e}"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = &mut stop => return,
        }
    }
}
