//! On a shared PostgreSQL store, keeps this node's exceptions, incident
//! states, API tokens and console users in step with every other node's
//! (`vakt_ledger::shared_records`): whenever a change is announced on
//! `vakt_records`, and every second should an announcement be missed (a
//! lost connection). The engine's own ledger applies them at each commit
//! too; this thread is for a node that takes no events for a while.

use crate::http::lock;
use crate::State;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use vakt_ledger::{DataDir, Ledger};

/// The longest a missed announcement delays a change.
const EVERY: Duration = Duration::from_secs(1);

pub(crate) struct SharedRows {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl SharedRows {
    /// Starts keeping `state`'s ledgers in step, when `data` is on a
    /// shared store; `None` otherwise.
    pub(crate) fn start(state: Arc<State>, data: &DataDir) -> vakt_ledger::Result<Option<Self>> {
        // A connection of its own to listen on, so no handler waits for it.
        let listener = Ledger::open_read(data)?;
        if !listener.is_on_shared_store() {
            return Ok(None);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("vakt-shared-rows".into())
            .spawn(move || {
                let mut failing = false;
                while !stopping.load(Ordering::Relaxed) {
                    let step = listener
                        .wait_for_shared_rows(EVERY)
                        .and_then(|_| lock(&state.writer).sync_shared());
                    match step {
                        Ok(_) if failing => {
                            tracing::info!("the shared store answers again; this node's exceptions, incidents, tokens and users are in step");
                            failing = false;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if !failing {
                                tracing::warn!("exceptions, incidents, tokens and users of other nodes not applied: {e}; retrying every second");
                            }
                            failing = true;
                            std::thread::sleep(EVERY);
                        }
                    }
                }
            })
            .map_err(|e| {
                vakt_ledger::LedgerError::Invalid(format!(
                    "cannot start the thread that keeps shared rows in step: {e}"
                ))
            })?;
        Ok(Some(SharedRows { stop, thread }))
    }

    /// Stops within a second.
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}
