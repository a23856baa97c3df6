//! Log files named in the settings file (`follow = [...]`), read as
//! `tail -F` does (rotation and truncation included) by one thread each
//! and fed to the engine beside what arrives over HTTP.
//!
//! Each file is its own ledger source (its path, and the line number),
//! so an access is recorded once however often the file is read. At
//! start a file is read from its beginning: lines the ledger already
//! holds only rebuild the detectors' state (no alert is raised twice),
//! later lines are processed in full. Malformed lines are counted in
//! `/metrics`, named on stderr with their line number and kept in
//! `follow-rejects.jsonl` in the data directory.
//!
//! Known gap: line numbers start again in a file that replaced a
//! rotated one; a restart of the server then takes the new file's first
//! lines for ones already recorded under the same path.

use crate::metrics::Metrics;
use crate::worker::Msg;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore, TryAcquireError};
use vakt_ingest::{EventStream, FollowControl, Rejects, StreamConfig};

/// Name of the dead-letter file for malformed lines of followed files.
pub const REJECTS_FILE: &str = "follow-rejects.jsonl";

/// The follower threads; dropping them does not stop them, [`Followers::stop`] does.
pub(crate) struct Followers {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Followers {
    pub(crate) fn start(
        paths: &[PathBuf],
        data: &Path,
        tx: mpsc::UnboundedSender<Msg>,
        queue: Arc<Semaphore>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Followers> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        if paths.is_empty() {
            return Ok(Followers { stop, threads });
        }
        // Appended to: a restart must not lose the lines rejected before it.
        let rejects = Arc::new(Mutex::new(Rejects::appending(
            &data.join(REJECTS_FILE),
            Box::new(|m| tracing::warn!("{m}")),
        )?));
        for path in paths {
            let control = FollowControl {
                stop: stop.clone(),
                ..Default::default()
            };
            // Events go out as they are read: a followed log is not re-sorted.
            let config = StreamConfig {
                lateness: 0,
                ..Default::default()
            };
            let mut stream = EventStream::follow(path, config, control).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot follow {}: {e}; check the follow list in the settings file",
                        path.display()
                    ),
                )
            })?;
            let (tx, queue, metrics, rejects, stop) = (
                tx.clone(),
                queue.clone(),
                metrics.clone(),
                rejects.clone(),
                stop.clone(),
            );
            let source: Arc<str> = Arc::from(path.display().to_string());
            let thread = std::thread::Builder::new()
                .name("vakt-follow".into())
                .spawn(move || {
                    let mut rejected = 0;
                    loop {
                        let ev = match stream.next_event(&rejects) {
                            Ok(Some(ev)) => ev,
                            Ok(None) => break,
                            Err(e) => {
                                tracing::error!("following {source} stopped: {e}");
                                break;
                            }
                        };
                        let now_rejected = stream.stats().rejected;
                        metrics.events_rejected.inc_by(now_rejected - rejected);
                        rejected = now_rejected;
                        // Wait for room in the engine's queue rather than drop.
                        let Some(permit) = wait_for_room(&queue, 1, 1, &stop) else {
                            break;
                        };
                        metrics.events_received.inc();
                        let msg = Msg::Followed {
                            source: source.clone(),
                            events: vec![ev],
                            permit,
                        };
                        if tx.send(msg).is_err() {
                            break;
                        }
                    }
                })?;
            threads.push(thread);
        }
        Ok(Followers { stop, threads })
    }

    /// Stops reading; what was read is already with the engine.
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Waits for room for `events` in the engine's queue, which holds
/// `capacity` (a line or message larger than the queue takes all of it,
/// alone); `None` once `stop` is set. Readers wait rather than drop.
pub(crate) fn wait_for_room(
    queue: &Arc<Semaphore>,
    capacity: usize,
    events: usize,
    stop: &AtomicBool,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let wanted = u32::try_from(events.clamp(1, capacity.max(1))).unwrap_or(u32::MAX);
    loop {
        match queue.clone().try_acquire_many_owned(wanted) {
            Ok(p) => return Some(p),
            Err(TryAcquireError::NoPermits) if !stop.load(Ordering::Relaxed) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(_) => return None,
        }
    }
}
