//! The PostgreSQL wire-protocol proxy: `vakt proxy pg`.
//!
//! It sits between database clients (applications, `psql`, BI tools) and
//! PostgreSQL, one task per client connection and one upstream connection
//! per client (no pooling). Every message is forwarded as the bytes that
//! came, in both directions; the proxy frames messages (type byte and
//! length) and decodes only what it needs:
//!
//! * from the client: the startup packet (`user` is the account,
//!   `application_name` the user agent), `Query`, and the extended
//!   protocol's `Parse` (statement text by name), `Bind` (portal ->
//!   statement, result formats), `Describe`, `Execute`, `Close` and `Sync`;
//! * from the server: `BackendKeyData` (the backend pid is the session id),
//!   `RowDescription` and `DataRow` (only the key columns' values),
//!   `CommandComplete` (the command and its row count), `ErrorResponse`
//!   (failures), `ReadyForQuery` (transaction status, end of a request),
//!   `CopyInResponse`/`CopyOutResponse`/`CopyData` (COPY direction, rows).
//!
//! Per statement that reads or changes rows it submits one access event to
//! the [`EventSink`]: the PostgreSQL user, the client's address, the
//! action (`SELECT`/`FETCH` -> `lookup`, or `search` when more than one row
//! came back; `COPY ... TO` -> `export`; `INSERT`/`UPDATE`/`MERGE`/`COPY
//! ... FROM` -> `update`; `DELETE` -> `delete`), the outcome, the distinct
//! customer ids found in the result's key columns (`[postgres]
//! key_columns`; text format, and in binary format int2/int4/int8, text
//! types and uuid), the rows returned or changed (from `CommandComplete`),
//! the categories of the `[[postgres.table]]` entries the statement names
//! (a light scan of the SQL, see `sql.rs`), the statement (cut to 1 KiB)
//! and the backend pid. Statements that name no table and return no key
//! column (`SELECT 1`, `SET`, `BEGIN`, DDL) are not recorded. Failed logins
//! (SQLSTATE class 28) are recorded as failed `login` events. At most
//! [`PgProxyConfig::max_customer_ids`] distinct ids are kept per statement
//! (100,000 by default); the row count still counts every row.
//!
//! Enforcement: the [`Guard`]'s verdict for (user, client address) is taken
//! at the startup packet, for each statement of a simple `Query`, at each
//! function call, and at each `Parse` and each `Execute` of the extended
//! protocol, however long its batch has been open (a client that never
//! sends `Sync` is checked all the same). `Block`, and `StepUp` (a second
//! factor cannot be asked for on this protocol), refuse: the client gets
//! an `ErrorResponse` with SQLSTATE `42501` saying why, until when and
//! whom to contact. A refused simple query is not forwarded and is
//! answered with `ReadyForQuery` (the last transaction status). In an
//! extended batch the refused message and everything after it up to
//! `Sync` are discarded, as PostgreSQL discards after an error: answers to
//! the batch's earlier messages come first (the proxy sends the server a
//! `Flush` for them), then the error; the `Sync` goes to the server when
//! part of the batch reached it, else the proxy answers `ReadyForQuery`.
//! The statements the server already ran in that batch are not undone: in
//! an implicit transaction the `Sync` commits them, where PostgreSQL's own
//! error would have rolled them back. Refused executions are recorded as
//! failed accesses. At startup the refusal is a `FATAL`. `Throttle` holds
//! a statement back for the guard's wait, capped at
//! [`PgProxyConfig::throttle_delay`]; it counts statements, not requests:
//! each statement of a simple query and each `Execute` takes one
//! allowance, and a query's waits add up. A `Parse` is never held back
//! and spends no allowance (a statement prepared and run once counts once). When
//! the sink fails closed and the engine is behind, requests are refused
//! with `57P03` and recorded as failures.
//!
//! Bounds: nothing is read or held for a client on the strength of a
//! length it announced. The startup packet may be 10,000 bytes (as in
//! PostgreSQL). Until the server's first `ReadyForQuery` the client may
//! send only password, SASL and GSS messages (type `p`) and `Terminate`,
//! each at most 65,539 bytes (PostgreSQL's 65,535-byte cap on an
//! authentication message, plus the length field); any other message
//! ends the connection with a `FATAL` error (`08P01`) as soon as its type
//! byte arrives, so an unauthenticated client costs at most a read buffer.
//! After login a message may be [`PgProxyConfig::max_message`] bytes (64
//! MiB by default; the proxy holds each message whole, so this bounds what
//! one connection can make it hold); a longer one ends the connection with
//! a `FATAL` error (`54000`) once its header is in. Read buffers grow with
//! the bytes that come, never with an announced length. A simple query
//! may hold [`PgProxyConfig::max_query_statements`] statements (10,000 by
//! default); one with more is refused with `54000` and the session goes
//! on. The server's messages are capped at PostgreSQL's own 1 GiB.
//!
//! `SSLRequest` and `GSSENCRequest` are answered `N`: clients with
//! `sslmode=prefer` (the default) carry on in plain text; `require` fails.
//! Authentication (SCRAM-SHA-256, md5, password, trust) passes through
//! untouched since bytes are forwarded, so the proxy never sees a password
//! hash it could use. A `CancelRequest` on a new connection is forwarded to
//! the upstream as it is: `BackendKeyData` reaches the client unchanged and
//! each client has its own backend, so its keys are the server's own.
//!
//! Cost: each request and each answer crosses the proxy, so a round trip
//! takes two more socket writes and reads and two more wake-ups. The hot
//! path reads into one reusable buffer per direction, forwards every
//! whole message of a read in one write, sets `TCP_NODELAY` on both
//! sockets, and allocates per row only for a new key column value; per
//! statement it takes the statement's shape (its text with numbers
//! replaced, one pass over the bytes) and scans the SQL only for a shape
//! not seen before (each word classified once, borrowed from the read
//! buffer), remembers the categories of each list of tables, and builds
//! one event. The two pumps of a connection share one task and a queue
//! that wakes nobody on the hot path (`pump::Announced`). Measured with
//! `INSTRUCTIONS=1 bench/pg-proxy.sh` on 2 shared vCPUs running pgbench,
//! PostgreSQL and the proxy together: system time per `pgbench -S`
//! transaction on par with PgBouncer's (loopback TCP), and about 17,000
//! user-space instructions per transaction (event, detection, the
//! hash-chained ledger, tokio's I/O) against PgBouncer's 3,300 to 3,700.
//!
//! Limits and blind spots: no TLS on either side yet (put the proxy next to
//! the database, or on a loopback or private network); no pooling; customer
//! ids come only from result columns named like a key column (an alias,
//! `SELECT customer_id AS id`, or a key inside an expression hides them;
//! so does running a prepared statement never described on the
//! connection, since only `Describe` names an extended query's columns),
//! and not from COPY data, whose row count is recorded but not the
//! customers; the tables a statement touches through views, functions or
//! dynamic SQL are not seen; a multi-statement simple query is split at
//! top-level semicolons and each `CommandComplete` is matched to the next
//! statement. Replication connections pass through unrecorded.

mod backend;
mod conn;
mod decode;
mod frontend;
mod gate;
mod pump;
mod record;
mod session;
mod sql;
mod startup;
mod wire;

use crate::{EventSink, Guard};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use vakt_event::Directory;

pub use decode::{decode_backend, decode_frontend};
pub use sql::{scan, Scanned, Verb};
pub use wire::MAX_MESSAGE;

/// Why a connection ended early, or the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: std::io::Error,
    },
    #[error("cannot connect to PostgreSQL at {upstream}: {reason}")]
    Upstream { upstream: String, reason: String },
    #[error("{0}")]
    Malformed(String),
    #[error("a `{ty}` message of {len} bytes is over the limit of {max} bytes")]
    TooLarge { ty: char, len: usize, max: usize },
    /// The proxy ended the connection with a `FATAL` error saying this.
    #[error("{0}")]
    Fatal(String),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> PgError {
    move |source| PgError::Io { context, source }
}

/// A `[[postgres.table]]` entry: a table and the data categories it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgTable {
    /// `table` or `schema.table`, matched case-insensitively.
    pub name: String,
    pub categories: Vec<String>,
}

/// [`PgProxyConfig::max_message`] by default: 64 MiB. PostgreSQL takes up
/// to 1 GiB, but the proxy holds each message whole, so 1 GiB would let
/// every connection cost 1 GiB; 64 MiB passes any query text and all but
/// the largest `bytea` parameters, and is one setting away from 1 GiB.
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;
/// [`PgProxyConfig::max_query_statements`] by default.
pub const DEFAULT_MAX_QUERY_STATEMENTS: usize = 10_000;

#[derive(Clone, Debug)]
pub struct PgProxyConfig {
    /// Where the proxy listens (used by [`run_pg`]; [`serve_pg`] takes a
    /// bound listener).
    pub listen: SocketAddr,
    /// PostgreSQL, as `HOST:PORT`.
    pub upstream: String,
    /// The longest a throttled request is held back (the guard's wait,
    /// capped at this).
    pub throttle_delay: Duration,
    /// Result columns whose values are customer ids (`[postgres] key_columns`).
    pub key_columns: Vec<String>,
    /// Tables and their data categories (`[[postgres.table]]`).
    pub tables: Vec<PgTable>,
    /// Distinct customer ids kept per statement.
    pub max_customer_ids: usize,
    /// How long to wait for PostgreSQL to accept a connection.
    pub connect_timeout: Duration,
    /// How long a new client may take to send its startup packet.
    pub startup_timeout: Duration,
    /// After shutdown, how long open connections may go on before they are cut.
    pub shutdown_grace: Duration,
    /// The longest message a logged-in client may send, in bytes (the
    /// length field, which counts itself but not the type byte). The proxy
    /// holds a whole message in memory to look at it, so this is what one
    /// connection can make it hold; a longer message ends the connection
    /// with a `FATAL` error (SQLSTATE `54000`). At most PostgreSQL's own
    /// limit of 1 GiB.
    pub max_message: usize,
    /// The most statements one simple `Query` may hold; a query with more is
    /// refused with SQLSTATE `54000` and the session goes on. Each statement
    /// is scanned and recorded, and counted by a throttle.
    pub max_query_statements: usize,
}

impl PgProxyConfig {
    /// Defaults: throttle waits capped at 5 s, 100,000 customer ids per
    /// statement, 10 s to connect upstream, 30 s for a startup packet, 30 s
    /// of grace at shutdown, messages up to 64 MiB, 10,000 statements per
    /// simple query; no key columns or tables.
    pub fn new(listen: SocketAddr, upstream: impl Into<String>) -> Self {
        PgProxyConfig {
            listen,
            upstream: upstream.into(),
            throttle_delay: Duration::from_secs(5),
            key_columns: Vec::new(),
            tables: Vec::new(),
            max_customer_ids: 100_000,
            connect_timeout: Duration::from_secs(10),
            startup_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            max_message: DEFAULT_MAX_MESSAGE,
            max_query_statements: DEFAULT_MAX_QUERY_STATEMENTS,
        }
    }

    /// Takes `key_columns` and the tables' categories from the directory's
    /// `[postgres]` section.
    pub fn with_directory(mut self, directory: &Directory) -> Self {
        if let Some(pg) = &directory.postgres {
            self.key_columns = pg.key_columns.clone();
            self.tables = pg
                .tables
                .iter()
                .map(|t| PgTable {
                    name: t.name.clone(),
                    categories: t.categories.clone(),
                })
                .collect();
        }
        self
    }
}

/// Binds `config.listen` and runs [`serve_pg`].
pub async fn run_pg(
    config: PgProxyConfig,
    guard: Arc<Guard>,
    sink: Arc<EventSink>,
    shutdown: impl Future<Output = ()>,
) -> crate::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(crate::io_err(format!("cannot listen on {}", config.listen)))?;
    serve_pg(listener, config, guard, sink, shutdown).await
}

/// Serves PostgreSQL clients on `listener`, forwarding each to
/// `config.upstream`, until `shutdown` completes. Then it stops accepting,
/// lets open connections go on for `config.shutdown_grace`, cuts the rest,
/// and returns once every connection task has ended, so the caller's
/// `Arc<EventSink>` is its own again (`Arc::try_unwrap(sink)` then
/// `EventSink::shutdown` drains the queue into the ledger).
///
/// ```no_run
/// # async fn f(guard: std::sync::Arc<vakt_proxy::Guard>, sink: vakt_proxy::EventSink, directory: &vakt_event::Directory) -> vakt_proxy::Result<()> {
/// use vakt_proxy::pg::{serve_pg, PgProxyConfig};
/// let listen = "127.0.0.1:6432".parse().unwrap();
/// let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
/// let config = PgProxyConfig::new(listen, "127.0.0.1:5432").with_directory(directory);
/// let sink = std::sync::Arc::new(sink);
/// serve_pg(listener, config, guard, sink.clone(), async {
///     let _ = tokio::signal::ctrl_c().await;
/// })
/// .await?;
/// if let Ok(sink) = std::sync::Arc::try_unwrap(sink) {
///     sink.shutdown()?;
/// }
/// # Ok(()) }
/// ```
pub async fn serve_pg(
    listener: TcpListener,
    config: PgProxyConfig,
    guard: Arc<Guard>,
    sink: Arc<EventSink>,
    shutdown: impl Future<Output = ()>,
) -> crate::Result<()> {
    let grace = config.shutdown_grace;
    let shared = Arc::new(session::Shared::new(config, guard, sink));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((socket, peer)) => {
                    tasks.spawn(conn::connection(socket, peer, shared.clone()));
                }
                Err(e) => {
                    // Out of descriptors and the like: wait a little, keep serving.
                    tracing::warn!("pg proxy: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    if !tasks.is_empty() {
        tracing::info!(
            "pg proxy: stopped accepting; {} connection(s) may finish within {:?}",
            tasks.len(),
            grace
        );
    }
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => {
                tasks.abort_all();
                break;
            }
            r = tasks.join_next() => if r.is_none() { break },
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}
