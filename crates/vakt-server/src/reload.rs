//! The directory file checked for edits while serving
//! (`vakt_pipeline::reload` says how and why by polling). A good edit goes
//! to the engine thread, which applies it between two events, and to what
//! the handlers read (canaries, CSP page hosts); a bad one is logged with
//! file:line and counted, and the running directory stays in force.

use crate::{metrics::Metrics, worker::Msg, State};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use vakt_pipeline::reload::{self, DirectoryFile, Fingerprint, Poll};

/// The polling thread; [`Reloader::stop`] ends it.
pub(crate) struct Reloader {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Reloader {
    pub(crate) fn start(
        mut file: DirectoryFile,
        every: Duration,
        state: Arc<State>,
        engine: mpsc::UnboundedSender<Msg>,
    ) -> std::io::Result<Reloader> {
        set_version(&state.metrics, file.current());
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("vakt-directory".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    let next = Instant::now() + every;
                    while Instant::now() < next && !stopping.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(100).min(every));
                    }
                    if stopping.load(Ordering::Relaxed) {
                        break;
                    }
                    match file.poll() {
                        Poll::Unchanged => {}
                        Poll::Changed(l) => {
                            if engine.send(Msg::Directory(l.directory.clone())).is_err() {
                                break;
                            }
                            state.csp.set_directory(&l.directory);
                            *state.directory.write().unwrap_or_else(|p| p.into_inner()) =
                                l.directory;
                            state
                                .metrics
                                .directory_reloads
                                .fetch_add(1, Ordering::Relaxed);
                            set_version(&state.metrics, &l.fingerprint);
                        }
                        Poll::Refused(e) => {
                            state
                                .metrics
                                .directory_reload_failures
                                .fetch_add(1, Ordering::Relaxed);
                            tracing::warn!("{}", reload::refused(&e));
                        }
                    }
                }
            })?;
        Ok(Reloader { stop, thread })
    }

    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

fn set_version(metrics: &Metrics, version: &Fingerprint) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    *crate::http::lock(&metrics.directory_version) = Some((version.hash.clone(), now));
}
