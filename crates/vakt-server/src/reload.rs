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
                            state.metrics.directory_reloads.inc();
                            set_version(&state.metrics, &l.fingerprint);
                        }
                        Poll::Refused(e) => {
                            state.metrics.directory_reload_failures.inc();
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
    metrics.directory_version(&version.hash, now);
}

#[cfg(test)]
mod tests {
    use crate::{Config, Server};
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    use vakt_ledger::DataDir;

    async fn metrics(server: &Server) -> String {
        let r = server
            .router()
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    async fn until(server: &Server, line: &str) -> String {
        for _ in 0..200 {
            let m = metrics(server).await;
            if m.lines().any(|l| l == line) {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no `{line}` in {}", metrics(server).await);
    }

    /// Saves as an editor does, by renaming a finished file over the old
    /// one: written in place, a loaded machine could pause between the
    /// truncation and the write for longer than the reload's settle time,
    /// and the poll would rightly take the empty file.
    fn save(path: &std::path::Path, text: &str) -> std::io::Result<()> {
        let next = path.with_extension("toml.new");
        std::fs::write(&next, text)?;
        std::fs::rename(&next, path)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn edits_are_counted_and_a_good_one_reaches_what_the_handlers_read() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("directory.toml");
        std::fs::write(&path, "[[canary]]\ncustomer_id = \"C-1\"\n").unwrap();
        let loaded = vakt_pipeline::reload::load(&path).unwrap();
        let mut config = Config::new(
            DataDir {
                path: tmp.path().join("data"),
            },
            loaded.directory,
        );
        config.open_metrics = true;
        config.directory_poll = std::time::Duration::from_millis(100);
        config.directory_file = Some(vakt_pipeline::reload::DirectoryFile::new(
            path.clone(),
            loaded.fingerprint.clone(),
        ));
        let server = Server::open(config).unwrap();
        let m = metrics(&server).await;
        assert!(m.contains(&format!(
            "vakt_directory_loaded_timestamp_seconds{{blake3=\"{}\"}}",
            loaded.fingerprint.hash
        )));

        save(
            &path,
            "[[canary]]\ncustomer_id = \"C-2\"\n[detectors.canary]\nx = 1\n",
        )
        .unwrap();
        until(&server, "vakt_directory_reload_failures_total 1").await;
        assert_eq!(server.state.directory().canaries[0].customer_id, "C-1");
        assert!(!server.state.csp.takes("shop.example"));

        save(
            &path,
            "[[canary]]\ncustomer_id = \"C-2\"\n\n[[egress_allow]]\nhost = \"shop.example\"\ndestinations = [\"203.0.113.0/24\"]\n",
        )
        .unwrap();
        let m = until(&server, "vakt_directory_reloads_total 1").await;
        assert!(
            !m.contains(&loaded.fingerprint.hash),
            "the version in force changed"
        );
        assert_eq!(server.state.directory().canaries[0].customer_id, "C-2");
        assert!(server.state.csp.takes("shop.example"));
        server.stop().await.unwrap();
    }
}
