//! Alert delivery: every alert line reaches every configured receiver at
//! least once, in order, even when a receiver is down for a while.
//!
//! Alerts are appended to a queue file in the data directory
//! (`deliver/queue.jsonl`, fsynced) before delivery. One thread per target
//! reads from its own cursor (`deliver/NAME.cursor`), sends, and only then
//! moves the cursor; a failed send is retried with exponential backoff
//! (0.2 s doubling to `max_backoff`). A crash between send and cursor
//! write repeats one alert, never loses one; what is pending at shutdown
//! is sent at the next start.
//!
//! Targets (`--deliver FILE`, TOML, see [`config`]): `webhook` (the alert
//! as JSON), `slack` (an incoming-webhook message), `syslog` over UDP or
//! TCP as RFC 5424 or CEF lines (see [`format`]); one module each in
//! [`targets`].
//!
//! Blind spot: the queue file grows with every alert until all targets
//! have sent everything, when it is emptied at the next start; alerts are
//! few (one line per incident change), so this stays small.

pub mod config;
pub mod format;
mod queue;
pub mod targets;

pub use config::{DeliveryConfig, TargetConfig};
pub use targets::Target;

use queue::Queue;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use vakt_event::{Alert, Severity};

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("{path}:{line}:{column}: {message}")]
    Config {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("delivery target `{name}`: {message}")]
    Target { name: String, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, DeliverError>;

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DeliverError {
    let context = context.into();
    move |source| DeliverError::Io { context, source }
}

/// Per-target counters.
#[derive(Debug, Default)]
pub struct TargetStats {
    pub name: String,
    pub delivered: AtomicU64,
    pub failures: AtomicU64,
    pub skipped: AtomicU64,
}

struct Shared {
    queue: Queue,
    stop: AtomicBool,
    wake: (Mutex<u64>, Condvar),
}

/// Delivers alerts to every target in the background.
pub struct Deliverer {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    stats: Vec<Arc<TargetStats>>,
}

impl Deliverer {
    /// Opens the queue under `data_dir/deliver` and starts one thread per target.
    pub fn start(data_dir: &Path, config: &DeliveryConfig) -> Result<Deliverer> {
        let names: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
        let queue = Queue::open(&data_dir.join("deliver"), &names)?;
        let shared = Arc::new(Shared {
            queue,
            stop: AtomicBool::new(false),
            wake: (Mutex::new(0), Condvar::new()),
        });
        let mut threads = Vec::new();
        let mut stats = Vec::new();
        let mut built = Vec::new();
        for t in &config.targets {
            let target = t.build().map_err(|message| DeliverError::Target {
                name: t.name.clone(),
                message,
            })?;
            built.push((target, t.min_severity));
        }
        for (target, min_severity) in built {
            let st = Arc::new(TargetStats {
                name: target.name().to_owned(),
                ..Default::default()
            });
            stats.push(st.clone());
            let shared = shared.clone();
            let max_backoff = config.max_backoff;
            threads.push(
                std::thread::Builder::new()
                    .name(format!("vakt-deliver-{}", target.name()))
                    .spawn(move || run_target(&shared, target, min_severity, &st, max_backoff))
                    .map_err(io_err("cannot start a delivery thread"))?,
            );
        }
        Ok(Deliverer {
            shared,
            threads,
            stats,
        })
    }

    /// Queues an alert for every target; durable when this returns.
    pub fn enqueue(&self, alert: &Alert) -> Result<()> {
        self.shared.queue.append(&alert.to_json_line())?;
        let (m, c) = &self.shared.wake;
        *m.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        c.notify_all();
        Ok(())
    }

    pub fn stats(&self) -> &[Arc<TargetStats>] {
        &self.stats
    }

    /// Alerts queued but not yet delivered, summed over targets.
    pub fn pending(&self) -> u64 {
        self.shared.queue.pending()
    }

    /// Waits up to `grace` for pending alerts to go out, then stops; what
    /// is still pending stays queued for the next start. Returns the
    /// undelivered bytes.
    pub fn shutdown(mut self, grace: Duration) -> u64 {
        let deadline = std::time::Instant::now() + grace;
        while self.pending() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop_threads();
        self.pending()
    }

    fn stop_threads(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.1.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Deliverer {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

fn run_target(
    shared: &Shared,
    mut target: Box<dyn Target>,
    min_severity: Severity,
    stats: &TargetStats,
    max_backoff: Duration,
) {
    let mut backoff = Duration::from_millis(200);
    while !shared.stop.load(Ordering::Relaxed) {
        let next = match shared.queue.next(target.name()) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!("delivery to {}: {e}", target.name());
                wait(shared, max_backoff);
                continue;
            }
        };
        let Some((line, end)) = next else {
            wait(shared, Duration::from_millis(500));
            continue;
        };
        let alert: Option<Alert> = serde_json::from_str(&line).ok();
        let wanted = alert.as_ref().is_some_and(|a| a.severity >= min_severity);
        if wanted {
            let alert = alert.expect("checked above");
            if let Err(e) = target.send(&alert) {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "delivery to {} failed, retrying in {:?}: {e}",
                    target.name(),
                    backoff
                );
                wait(shared, backoff);
                backoff = (backoff * 2).min(max_backoff);
                continue;
            }
            stats.delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.skipped.fetch_add(1, Ordering::Relaxed);
        }
        backoff = Duration::from_millis(200);
        if let Err(e) = shared.queue.advance(target.name(), end) {
            tracing::error!("delivery to {}: cannot move the cursor: {e}", target.name());
        }
    }
}

fn wait(shared: &Shared, d: Duration) {
    let (m, c) = &shared.wake;
    let g = m.lock().unwrap_or_else(|p| p.into_inner());
    if !shared.stop.load(Ordering::Relaxed) {
        let _ = c.wait_timeout(g, d);
    }
}
