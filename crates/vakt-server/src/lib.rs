//! `vakt serve`: vakt's HTTP API and web console.
//!
//! - `POST /v1/events` (role `ingest`): EVENTS.md JSON lines. Good lines
//!   are appended to a journal in the data directory and synced to disk
//!   before the answer; bad lines are answered with their line numbers.
//! - `GET /v1/decisions` (`read`), `POST /v1/decisions` and
//!   `DELETE /v1/decisions/{id}` (`admin`): what enforcement points act on.
//! - `GET /v1/exceptions` (`read`), `POST /v1/exceptions` and
//!   `DELETE /v1/exceptions/{id}` (`admin`): suppressions of false
//!   positives, applied by the engine to the next alert.
//! - `GET /v1/alerts`, `/v1/alerts/{id}`, `/v1/incidents`, `/v1/scope`,
//!   `/v1/canaries`, `/v1/exposure` (`read`): what the ledger recorded;
//!   `POST /v1/reports/{alert_id}` (`admin`): a breach report draft.
//! - `GET /metrics` (`read`, or open with [`Config::open_metrics`]).
//! - `GET /healthz` and `POST /v1/csp-report`: no token needed.
//!
//! [`routes`] lists them all; docs/openapi.yaml documents each.
//!
//! Plain HTTP, or HTTPS with rustls when [`Config::tls`] names a
//! certificate and key.
//!
//! One engine thread runs the detectors on what was journaled, appends
//! accesses to the ledger and makes decisions from alerts with the
//! directory's `[[policy]]` entries, as `vakt watch --data` does. A
//! bounded queue sits between the handlers and that thread: when it is
//! full, ingest answers 429 with `Retry-After` instead of dropping.
//! Log files in [`Config::follow`] feed the same thread (module `follow`),
//! and so do Kafka topics in [`Config::kafka`] (module `kafka`);
//! the console (module `console`) is pages for people over the same state.

mod alerts;
mod api;
mod audit;
mod auth;
pub mod child;
mod clocks;
mod connections;
mod console;
mod csp;
mod decisions;
mod exceptions;
mod follow;
mod http;
mod incidents;
mod ingest;
mod journal;
mod kafka;
mod listen;
mod metrics;
mod pages;
mod reload;
mod shared_rows;
mod views;
mod worker;

pub use api::routes;
pub use connections::{
    ConnectionLimits, DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_REQUEST_TIMEOUT,
};
pub use csp::CspLimits;

pub use follow::REJECTS_FILE as FOLLOW_REJECTS_FILE;
pub use journal::FILE_NAME as JOURNAL_FILE;
pub use kafka::REJECTS_FILE as KAFKA_REJECTS_FILE;
pub use listen::{tls_config, ClientAddr, Incoming, TlsFiles};
pub use vakt_ingest::kafka::KafkaConfig;
pub use worker::EngineReport;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, Semaphore};
use vakt_event::Directory;
use vakt_ledger::{DataDir, Ledger, LedgerError};

/// Largest request body accepted on `POST /v1/events` by default: 16 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 16 << 20;
/// Events that may wait for the engine by default.
pub const DEFAULT_QUEUE_EVENTS: usize = 262_144;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Pipeline(#[from] vakt_pipeline::PipelineError),
    #[error("journal {path}: {source}; check the data directory's disk and permissions")]
    Journal {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot listen on {addr}: {source}; choose another --listen address or stop what uses it"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the engine stopped: {0}; restart vakt serve, the journal is replayed")]
    Engine(String),
    #[error("alert delivery: {0}")]
    Deliver(#[from] vakt_deliver::DeliverError),
    #[error("TLS: {path}: {message}")]
    Tls { path: PathBuf, message: String },
    // Transparent: the message is the I/O error's own, said once.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What the server needs.
pub struct Config {
    pub data: DataDir,
    /// Organisations, accounts, canaries and `[[policy]]` entries.
    pub directory: Arc<Directory>,
    /// The file `directory` was read from, checked for edits every
    /// `directory_poll` (module `reload`); none: the directory is fixed.
    pub directory_file: Option<vakt_pipeline::reload::DirectoryFile>,
    pub directory_poll: std::time::Duration,
    /// Largest `POST /v1/events` body, in bytes.
    pub body_limit: usize,
    /// Events that may wait for the engine; past it ingest answers 429.
    pub queue_events: usize,
    /// Where alerts are delivered (`--deliver FILE`); none: only the ledger.
    pub deliver: Option<vakt_deliver::DeliveryConfig>,
    /// How long a stop waits for pending alerts to be delivered.
    pub delivery_grace: std::time::Duration,
    /// What `POST /v1/csp-report` takes, and how much of it.
    pub csp: CspLimits,
    /// Serve HTTPS with this certificate and key; none: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Log files to follow (`tail -F`), each its own ledger source.
    pub follow: Vec<PathBuf>,
    /// Kafka topics to read as a member of a consumer group.
    pub kafka: Option<KafkaConfig>,
    /// Connections at once, and how long a request may take to arrive.
    pub limits: ConnectionLimits,
    /// `GET /metrics` without a token (for a scraper on a trusted network).
    pub open_metrics: bool,
    /// How often the notification clocks of breaches are checked for
    /// warnings (module `clocks`).
    pub clock_every: std::time::Duration,
    /// How often the `[[page]]` entries are looked at for checks that are
    /// due (module `pages`); none (the default): pages are not checked.
    pub page_tick: Option<std::time::Duration>,
    /// The Chromium binary for page checks (default: $VAKT_CHROMIUM, else
    /// /usr/bin/chromium).
    pub chromium: Option<PathBuf>,
}

impl Config {
    pub fn new(data: DataDir, directory: impl Into<Arc<Directory>>) -> Config {
        Config {
            data,
            directory: directory.into(),
            directory_file: None,
            directory_poll: vakt_pipeline::reload::DEFAULT_POLL,
            body_limit: DEFAULT_BODY_LIMIT,
            queue_events: DEFAULT_QUEUE_EVENTS,
            deliver: None,
            delivery_grace: std::time::Duration::from_secs(5),
            csp: CspLimits::default(),
            tls: None,
            follow: Vec::new(),
            kafka: None,
            limits: ConnectionLimits::default(),
            open_metrics: false,
            clock_every: std::time::Duration::from_secs(60),
            page_tick: None,
            chromium: None,
        }
    }
}

/// Shared by the handlers.
pub(crate) struct State {
    /// Token look-ups and reads (autocommit; WAL lets them run beside the engine's writes).
    pub(crate) reader: Mutex<Ledger>,
    /// Decisions added or lifted over the API.
    pub(crate) writer: Mutex<Ledger>,
    /// The journal and the way to the engine, taken together so the
    /// engine sees batches in journal order.
    pub(crate) ingest: Mutex<Ingest>,
    pub(crate) queue: Arc<Semaphore>,
    pub(crate) queue_events: usize,
    pub(crate) body_limit: usize,
    pub(crate) failure: Arc<worker::Failure>,
    /// Swapped when the directory file is edited (module `reload`).
    pub(crate) directory: std::sync::RwLock<Arc<Directory>>,
    pub(crate) metrics: Arc<metrics::Metrics>,
    pub(crate) deliverer: Option<Arc<vakt_deliver::Deliverer>>,
    pub(crate) csp: csp::Intake,
    /// CSP events waiting for the engine: their own queue, so reports
    /// cannot fill the one `POST /v1/events` uses.
    pub(crate) csp_queue: Arc<Semaphore>,
    /// Served over TLS: the console's cookies are marked Secure.
    pub(crate) https: bool,
    pub(crate) open_metrics: bool,
}

pub(crate) struct Ingest {
    pub(crate) journal: journal::Journal,
    pub(crate) tx: mpsc::UnboundedSender<worker::Msg>,
}

/// A server with its engine running; [`Server::serve`] answers requests.
pub struct Server {
    state: Arc<State>,
    tx: mpsc::UnboundedSender<worker::Msg>,
    engine: std::thread::JoinHandle<Result<EngineReport, ServerError>>,
    deliverer: Option<Arc<vakt_deliver::Deliverer>>,
    delivery_grace: std::time::Duration,
    tls: Option<Arc<rustls::ServerConfig>>,
    followers: follow::Followers,
    kafka: Option<kafka::KafkaReader>,
    reloader: Option<reload::Reloader>,
    /// Other nodes' changes to exceptions, incidents, tokens and users,
    /// applied here (on a shared store).
    shared_rows: Option<shared_rows::SharedRows>,
    limits: ConnectionLimits,
    clock_every: std::time::Duration,
    page_tick: Option<std::time::Duration>,
    chromium: Option<PathBuf>,
}

impl State {
    /// The directory in force.
    pub(crate) fn directory(&self) -> Arc<Directory> {
        self.directory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Server {
    /// Opens the ledger and the journal in the data directory (creating
    /// them when missing) and starts the engine, which first replays the
    /// journal.
    pub fn open(config: Config) -> Result<Server, ServerError> {
        // A bad certificate stops the start before anything else is opened.
        let tls = config.tls.as_ref().map(tls_config).transpose()?;
        let ledger = Ledger::open(&config.data)?;
        let reader = Ledger::open_read(&config.data)?;
        let writer = Ledger::open_read(&config.data)?;
        let journal = journal::Journal::open(&config.data.path.join(journal::FILE_NAME))?;
        let deliverer = match &config.deliver {
            Some(d) => Some(Arc::new(vakt_deliver::Deliverer::start(
                &config.data.path,
                d,
            )?)),
            None => None,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let failure = Arc::new(worker::Failure::default());
        let durable = Arc::new(worker::Durable::default());
        let directory = config.directory.clone();
        let metrics = Arc::new(metrics::Metrics::default());
        let mut pipeline = vakt_pipeline::Pipeline::new(
            vakt_pipeline::PipelineConfig {
                directory: directory.clone(),
                ..Default::default()
            },
            Some(ledger),
        )?
        .with_outlet(worker::AlertCounter(metrics.clone()));
        if let Some(d) = &deliverer {
            pipeline = pipeline.with_outlet(vakt_pipeline::Delivery(d.clone()));
        }
        let engine = worker::spawn(
            pipeline,
            journal.path.clone(),
            journal.lines,
            rx,
            worker::EngineContext {
                failure: failure.clone(),
                durable: durable.clone(),
                metrics: metrics.clone(),
                snapshot_every: std::time::Duration::from_secs(
                    config
                        .kafka
                        .as_ref()
                        .map_or(vakt_ingest::kafka::SNAPSHOT_SECONDS, |k| k.snapshot_seconds),
                ),
            },
        )?;
        let queue_events = config.queue_events.clamp(1, Semaphore::MAX_PERMITS);
        let queue = Arc::new(Semaphore::new(queue_events));
        metrics.register_runtime(metrics::Runtime {
            queue: queue.clone(),
            queue_events,
            deliverer: deliverer.clone(),
        });
        let followers = follow::Followers::start(
            &config.follow,
            &config.data.path,
            tx.clone(),
            queue.clone(),
            metrics.clone(),
        );
        let followers = match followers {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.send(worker::Msg::Stop);
                let _ = engine.join();
                return Err(e.into());
            }
        };
        let kafka = config.kafka.as_ref().map(|k| {
            kafka::KafkaReader::start(
                k,
                directory.clone(),
                &config.data.path,
                kafka::Engine {
                    tx: tx.clone(),
                    queue: queue.clone(),
                    capacity: queue_events,
                },
                metrics.clone(),
                durable,
            )
        });
        let kafka = match kafka.transpose() {
            Ok(k) => k,
            Err(e) => {
                followers.stop();
                let _ = tx.send(worker::Msg::Stop);
                let _ = engine.join();
                return Err(e.into());
            }
        };
        let csp = csp::Intake::new(&config.csp, &directory);
        let state = Arc::new(State {
            reader: Mutex::new(reader),
            writer: Mutex::new(writer),
            ingest: Mutex::new(Ingest {
                journal,
                tx: tx.clone(),
            }),
            queue,
            queue_events,
            body_limit: config.body_limit,
            failure,
            directory: std::sync::RwLock::new(directory),
            metrics,
            deliverer: deliverer.clone(),
            csp,
            csp_queue: Arc::new(Semaphore::new(csp::QUEUE_EVENTS)),
            https: tls.is_some(),
            open_metrics: config.open_metrics,
        });
        let reloader = match config.directory_file {
            Some(file) => Some(reload::Reloader::start(
                file,
                config.directory_poll,
                state.clone(),
                tx.clone(),
            )?),
            None => None,
        };
        let shared_rows = shared_rows::SharedRows::start(state.clone(), &config.data)?;
        Ok(Server {
            state,
            reloader,
            shared_rows,
            tx,
            engine,
            deliverer,
            delivery_grace: config.delivery_grace,
            tls,
            followers,
            kafka,
            limits: config.limits,
            clock_every: config.clock_every,
            page_tick: config.page_tick,
            chromium: config.chromium,
        })
    }

    /// The routes, for serving or for tests.
    pub fn router(&self) -> axum::Router {
        api::router(self.state.clone())
            .merge(console::routes(self.state.clone()))
            .layer(axum::middleware::from_fn_with_state(
                self.state.metrics.clone(),
                metrics::track,
            ))
    }

    /// Serves on `listener` (HTTPS when the config has a certificate)
    /// until `shutdown` completes (or the engine fails), then lets the
    /// engine drain the queue and commit.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<EngineReport, ServerError> {
        let failure = self.state.failure.clone();
        let stop = async move {
            tokio::select! {
                () = shutdown => {}
                () = failure.notify.notified() => {}
            }
        };
        let incoming = match &self.tls {
            Some(config) => Incoming::tls(listener, config.clone())?,
            None => Incoming::plain(listener)?,
        };
        let clocks_done = Arc::new(tokio::sync::Notify::new());
        let done = clocks_done.clone();
        let clocks = tokio::spawn(clocks::run(
            self.state.clone(),
            self.clock_every,
            async move { done.notified().await },
        ));
        let pages = self.page_tick.map(|tick| {
            let done = clocks_done.clone();
            tokio::spawn(pages::run(
                self.state.clone(),
                tick,
                self.chromium.clone(),
                async move { done.notified().await },
            ))
        });
        connections::serve(incoming, self.router(), self.limits, stop).await;
        clocks_done.notify_waiters();
        clocks_done.notify_one();
        let _ = clocks.await;
        if let Some(p) = pages {
            p.abort();
            let _ = p.await;
        }
        self.stop().await
    }

    /// Lets the engine finish what was accepted, commit, and stop.
    pub async fn stop(self) -> Result<EngineReport, ServerError> {
        let Server {
            state,
            tx,
            engine,
            deliverer,
            delivery_grace,
            tls: _,
            followers,
            kafka,
            reloader,
            shared_rows,
            limits: _,
            clock_every: _,
            page_tick: _,
            chromium: _,
        } = self;
        if let Some(r) = reloader {
            let _ = tokio::task::spawn_blocking(move || r.stop()).await;
        }
        if let Some(r) = shared_rows {
            let _ = tokio::task::spawn_blocking(move || r.stop()).await;
        }
        // What the followers read is sent before Stop, so it is processed too.
        let _ = tokio::task::spawn_blocking(move || followers.stop()).await;
        if let Some(k) = kafka {
            let _ = tokio::task::spawn_blocking(move || k.stop()).await;
        }
        let _ = tx.send(worker::Msg::Stop);
        drop(tx);
        drop(state);
        let report = match tokio::task::spawn_blocking(move || engine.join()).await {
            Ok(Ok(r)) => r,
            _ => Err(ServerError::Engine("the engine thread panicked".into())),
        };
        if let Some(d) = deliverer {
            // Give what is pending a moment to go out; the rest stays queued
            // on disk and is sent at the next start.
            let _ = tokio::task::spawn_blocking(move || {
                let deadline = std::time::Instant::now() + delivery_grace;
                while d.pending() > 0 && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                let left = d.pending();
                if left > 0 {
                    tracing::warn!(
                        "{left} bytes of alerts not yet delivered; they are sent at the next start"
                    );
                }
                drop(d);
            })
            .await;
        }
        report
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Runs the server on its own runtime until Ctrl-C or SIGTERM; calls
/// `listening` with the bound address (useful with port 0).
pub fn run(
    config: Config,
    listen: SocketAddr,
    listening: impl FnOnce(SocketAddr),
) -> Result<EngineReport, ServerError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let server = Server::open(config)?;
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(source) => {
                let _ = server.stop().await;
                return Err(ServerError::Bind {
                    addr: listen,
                    source,
                });
            }
        };
        listening(listener.local_addr()?);
        server.serve(listener, shutdown_signal()).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    fn line(user: &str) -> String {
        format!(
            r#"{{"@timestamp":"2026-11-02T08:00:00Z","user.name":"{user}","event.action":"lookup","customer.ids":["C-1"]}}"#
        )
    }

    async fn post(
        server: &Server,
        token: &str,
        body: String,
    ) -> (StatusCode, Option<String>, serde_json::Value) {
        let r = server
            .router()
            .oneshot(
                Request::post("/v1/events")
                    .header("authorization", format!("Bearer {token}"))
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = r.status();
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, retry, serde_json::from_slice(&bytes).unwrap())
    }

    fn server(tmp: &tempfile::TempDir, queue_events: usize, body_limit: usize) -> (Server, String) {
        let data = DataDir {
            path: tmp.path().join("data"),
        };
        let mut l = Ledger::open(&data).unwrap();
        let token = l
            .create_token("proxy", vakt_ledger::tokens::Role::Ingest)
            .unwrap();
        l.close().unwrap();
        let mut config = Config::new(data, Directory::default());
        config.queue_events = queue_events;
        config.body_limit = body_limit;
        (Server::open(config).unwrap(), token)
    }

    #[tokio::test]
    async fn a_full_queue_answers_429_with_retry_after_and_journals_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let (server, token) = server(&tmp, 3, 1 << 20);
        // Hold the queue's room, as a slow engine would.
        let held = server
            .state
            .queue
            .clone()
            .try_acquire_many_owned(2)
            .unwrap();
        let (status, retry, body) =
            post(&server, &token, format!("{}\n{}", line("a"), line("b"))).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry.as_deref(), Some("1"));
        assert!(body["error"].as_str().unwrap().contains("queue is full"));
        assert_eq!(lock_journal_lines(&server), 0);
        // One event still fits.
        let (status, _, body) = post(&server, &token, line("a")).await;
        assert_eq!(
            (status, &body["accepted"]),
            (StatusCode::OK, &serde_json::json!(1))
        );
        assert_eq!(lock_journal_lines(&server), 1);
        // More events in one batch than the queue can ever hold.
        drop(held);
        let big = (0..4).map(|_| line("a")).collect::<Vec<_>>().join("\n");
        let (status, _, body) = post(&server, &token, big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(body["error"].as_str().unwrap().contains("smaller batches"));
        server.stop().await.unwrap();
    }

    fn lock_journal_lines(server: &Server) -> u64 {
        server.state.ingest.lock().unwrap().journal.lines
    }

    #[tokio::test]
    async fn a_body_over_the_limit_answers_413_in_json() {
        let tmp = tempfile::tempdir().unwrap();
        let (server, token) = server(&tmp, 100, 200);
        let body = format!("{}\n{}", line("a"), line("b"));
        assert!(body.len() > 200);
        let (status, _, answer) = post(&server, &token, body).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(answer["error"].as_str().unwrap().contains("over 200 bytes"));
        assert_eq!(lock_journal_lines(&server), 0);
        let report = server.stop().await.unwrap();
        assert_eq!(report.events, 0);
    }

    #[tokio::test]
    async fn stopping_drains_what_was_accepted_into_the_ledger() {
        let tmp = tempfile::tempdir().unwrap();
        let (server, token) = server(&tmp, 1000, 1 << 20);
        let batch = (0..50)
            .map(|i| line(&format!("u{i}")))
            .collect::<Vec<_>>()
            .join("\n");
        let (status, _, _) = post(&server, &token, batch).await;
        assert_eq!(status, StatusCode::OK);
        let report = server.stop().await.unwrap();
        assert_eq!((report.events, report.appended), (50, 50));
        let l = Ledger::open_read(&DataDir {
            path: tmp.path().join("data"),
        })
        .unwrap();
        assert_eq!(l.len(), 50);
        assert_eq!(l.progress(JOURNAL_FILE).unwrap(), 50);
    }
}
