//! One client connection: the startup phase, then two pumps, client ->
//! server and server -> client, each reading into one reusable buffer,
//! looking at whole frames and forwarding them in one write per read.
//!
//! The client pump tells the server pump, in order, what each forwarded
//! request will be answered with ([`Expect`]), so the server pump knows
//! which statement a `DataRow` or `CommandComplete` belongs to. A refusal
//! the proxy answers itself travels the same queue ([`Expect::Refusal`]),
//! so it reaches the client after the answers to everything sent before it.

use super::sql::{self, Verb};
use super::wire::{self, Column, Frame};
use super::{io, PgError, PgProxyConfig};
use crate::guard::Verdict;
use crate::{EventSink, FailMode, Guard};
use bytes::{Buf, BytesMut};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::{GssEncRequest, SslRequest};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use vakt_event::{AccessEvent, Action, Outcome};

const READ_CHUNK: usize = 64 * 1024;
/// A buffer grown past this for one large message is given back afterwards.
const KEEP_BUFFER: usize = 1 << 20;
/// Statement texts kept in events.
const STATEMENT_TEXT: usize = 1024;
/// Prepared statements, portals and described statements remembered per connection.
const MAX_NAMED: usize = 10_000;

/// What every connection shares.
pub(crate) struct Shared {
    config: PgProxyConfig,
    guard: Arc<Guard>,
    sink: Arc<EventSink>,
    /// Key column names, lower case, bare (`customers.customer_id` -> `customer_id`).
    keys: HashSet<Vec<u8>>,
    /// Table (lower case) -> categories.
    tables: Vec<(String, Vec<String>)>,
}

impl Shared {
    pub(crate) fn new(config: PgProxyConfig, guard: Arc<Guard>, sink: Arc<EventSink>) -> Shared {
        let keys = config
            .key_columns
            .iter()
            .map(|k| {
                let k = k.to_ascii_lowercase();
                k.rsplit('.').next().unwrap_or(&k).as_bytes().to_vec()
            })
            .collect();
        let tables = config
            .tables
            .iter()
            .map(|t| (t.name.to_ascii_lowercase(), t.categories.clone()))
            .collect();
        Shared {
            config,
            guard,
            sink,
            keys,
            tables,
        }
    }

    fn is_key(&self, name: &[u8]) -> bool {
        !self.keys.is_empty() && self.keys.contains(&name.to_ascii_lowercase())
    }

    /// Categories of the configured tables among `named` (as written in SQL).
    fn categories(&self, named: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in named {
            let bare = n.rsplit('.').next().unwrap_or(n);
            for (t, cats) in &self.tables {
                let t_bare = t.rsplit('.').next().unwrap_or(t);
                let hit =
                    t == n || (!t.contains('.') && t == bare) || (!n.contains('.') && t_bare == n);
                if hit {
                    out.extend(cats.iter().cloned());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn statement(&self, text: &str, s: &sql::Scanned) -> Arc<Stmt> {
        let body = text.get(s.start..s.end).unwrap_or(text).trim();
        Arc::new(Stmt {
            sql: truncate(body, STATEMENT_TEXT).into(),
            verb: s.verb,
            names_table: !s.tables.is_empty(),
            categories: self.categories(&s.tables),
        })
    }

    /// A prepared statement's text as one statement.
    fn prepared(&self, text: &str) -> Arc<Stmt> {
        let scanned = sql::scan(text);
        let mut tables: Vec<String> = scanned.iter().flat_map(|s| s.tables.clone()).collect();
        tables.sort();
        tables.dedup();
        let verb = scanned.first().map_or(Verb::Other, |s| s.verb);
        Arc::new(Stmt {
            sql: truncate(text.trim(), STATEMENT_TEXT).into(),
            verb,
            names_table: !tables.is_empty(),
            categories: self.categories(&tables),
        })
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A statement as the proxy records it.
#[derive(Debug)]
struct Stmt {
    sql: Arc<str>,
    verb: Verb,
    names_table: bool,
    categories: Vec<String>,
}

/// A refusal the proxy answers itself: an `ErrorResponse`, and for a
/// request (not a startup) then `ReadyForQuery`.
#[derive(Clone, Debug)]
struct Refusal {
    code: &'static str,
    message: String,
    detail: Option<String>,
    hint: Option<String>,
}

/// What the server will answer a forwarded request with, in order.
#[derive(Debug)]
enum Expect {
    /// A simple query: its statements, each ended by `CommandComplete`.
    Simple(Vec<Arc<Stmt>>),
    /// `ParseComplete` (forget what was described under the name).
    Parse(String),
    /// `RowDescription` or `NoData`, for a statement (by name) or a portal's statement.
    Describe(Option<String>),
    /// Rows, then `CommandComplete`, `EmptyQueryResponse` or `PortalSuspended`.
    Execute {
        stmt: Option<Arc<Stmt>>,
        statement: String,
        formats: Arc<[i16]>,
    },
    /// `CloseComplete`; `Some` for a statement.
    Close(Option<String>),
    /// `ReadyForQuery`, after `Sync`, a simple query or a function call.
    Sync,
    /// Answered by the proxy, after everything before it.
    Refusal(Refusal),
}

/// The connection's identity, shared by both pumps.
struct Ctx {
    shared: Arc<Shared>,
    peer: SocketAddr,
    user: String,
    application: Option<String>,
    /// Backend pid from `BackendKeyData`; 0 until known.
    pid: AtomicI32,
}

impl Ctx {
    fn ip(&self) -> IpAddr {
        self.peer.ip()
    }

    fn submit(
        &self,
        stmt: Option<&Stmt>,
        action: Action,
        outcome: Outcome,
        customer_ids: Vec<String>,
        records: u64,
    ) {
        let pid = self.pid.load(Ordering::Relaxed);
        let ev = AccessEvent {
            timestamp: vakt_event::Timestamp::now(),
            user: self.user.clone(),
            organization: None,
            source_ip: Some(self.ip()),
            user_agent: self.application.clone(),
            session_id: (pid != 0).then(|| pid.to_string()),
            action,
            outcome,
            customer_ids,
            records,
            categories: stmt.map(|s| s.categories.clone()).unwrap_or_default(),
            db_statement: stmt.map(|s| s.sql.to_string()),
            ..Default::default()
        };
        if let Err(e) = self.shared.sink.submit(ev) {
            tracing::error!(
                "pg proxy: an access by {} could not be recorded: {e}",
                self.user
            );
        }
    }

    /// Records a refused statement as a failed access, when it reads or changes data.
    fn submit_refused(&self, stmt: &Stmt) {
        if let Some(action) = verb_action(stmt.verb) {
            self.submit(Some(stmt), action, Outcome::Failure, Vec::new(), 0);
        }
    }

    /// Pass, hold back, or refuse a request now.
    fn gate(&self) -> Gate {
        let shared = &self.shared;
        let contact = &shared.guard.config().contact;
        if shared.sink.fail_mode() == FailMode::Closed && !shared.sink.keeping_up() {
            return Gate::Refuse(Refusal {
                code: "57P03",
                message:
                    "vakt's audit engine is behind, so requests are refused for now (fail-closed)"
                        .into(),
                detail: None,
                hint: Some(format!(
                    "retry in a moment; if this persists, contact {contact}"
                )),
            });
        }
        match shared.guard.verdict(Some(&self.user), Some(self.ip())) {
            Verdict::Pass => Gate::Pass,
            Verdict::Throttle { wait, .. } => Gate::Delay(wait.min(shared.config.throttle_delay)),
            Verdict::Block(d) => Gate::Refuse(Refusal {
                code: "42501",
                message: format!(
                    "account \"{}\" is blocked by vakt until {}",
                    self.user,
                    d.expires.to_rfc3339()
                ),
                detail: Some(format!("reason: {} (decision {})", d.reason, d.id)),
                hint: Some(format!("contact {contact} if this is a mistake")),
            }),
            Verdict::StepUp(d) => Gate::Refuse(Refusal {
                code: "42501",
                message: format!(
                    "account \"{}\" must confirm a second factor before reading customer data (vakt step-up, until {})",
                    self.user,
                    d.expires.to_rfc3339()
                ),
                detail: Some(format!("reason: {} (decision {})", d.reason, d.id)),
                hint: Some(format!(
                    "the database protocol cannot ask for a code: confirm it in vakt's web console, or contact {contact}"
                )),
            }),
        }
    }
}

enum Gate {
    Pass,
    Delay(Duration),
    Refuse(Refusal),
}

/// The action of a statement that did not complete, by its verb.
fn verb_action(v: Verb) -> Option<Action> {
    match v {
        Verb::Read => Some(Action::Lookup),
        Verb::CopyTo => Some(Action::Export),
        Verb::CopyFrom | Verb::Update => Some(Action::Update),
        Verb::Delete => Some(Action::Delete),
        Verb::Other => None,
    }
}

fn refusal_bytes(r: &Refusal, severity: &str) -> BytesMut {
    wire::error_response(
        severity,
        r.code,
        truncate(&r.message, 2000),
        r.detail.as_deref().map(|d| truncate(d, 2000)),
        r.hint.as_deref().map(|h| truncate(h, 2000)),
    )
}

/// Serves one client until either side closes; errors are logged here.
pub(crate) async fn connection(client: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    match run(client, peer, shared).await {
        Ok(()) => tracing::debug!("pg proxy: {peer} closed"),
        // A client or server going away mid-stream is routine.
        Err(e @ PgError::Io { .. }) => tracing::debug!("pg proxy: connection from {peer}: {e}"),
        Err(e) => tracing::warn!("pg proxy: connection from {peer}: {e}; connection closed"),
    }
}

async fn run(mut client: TcpStream, peer: SocketAddr, shared: Arc<Shared>) -> Result<(), PgError> {
    client
        .set_nodelay(true)
        .map_err(io("setting TCP_NODELAY"))?;
    let startup_timeout = shared.config.startup_timeout;
    let packet = match tokio::time::timeout(startup_timeout, startup_packet(&mut client)).await {
        Ok(r) => r?,
        Err(_) => return Err(PgError::Timeout("the startup packet")),
    };
    let Some(packet) = packet else {
        return Ok(());
    };
    if CancelRequest::is_cancel_request_packet(&packet) {
        return forward_cancel(&packet, &shared).await;
    }
    let startup = wire::startup(&packet)?;
    let Some(user) = startup.parameters.get("user").cloned() else {
        let r = Refusal {
            code: "28000",
            message: "no PostgreSQL user name specified in startup packet".into(),
            detail: None,
            hint: None,
        };
        let _ = client.write_all(&refusal_bytes(&r, "FATAL")).await;
        return Ok(());
    };
    if startup.parameters.contains_key("replication") {
        tracing::debug!("pg proxy: {peer}: a replication connection for {user}; passed through");
    }
    let ctx = Arc::new(Ctx {
        application: startup
            .parameters
            .get("application_name")
            .filter(|a| !a.is_empty())
            .cloned(),
        shared: shared.clone(),
        peer,
        user,
        pid: AtomicI32::new(0),
    });
    match ctx.gate() {
        Gate::Pass => {}
        Gate::Delay(d) => tokio::time::sleep(d).await,
        Gate::Refuse(r) => {
            ctx.submit(None, Action::Login, Outcome::Failure, Vec::new(), 0);
            let _ = client.write_all(&refusal_bytes(&r, "FATAL")).await;
            let _ = client.shutdown().await;
            return Ok(());
        }
    }
    let upstream = match tokio::time::timeout(
        shared.config.connect_timeout,
        TcpStream::connect(shared.config.upstream.as_str()),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(refuse_upstream(&mut client, &shared, e.to_string()).await),
        Err(_) => return Err(refuse_upstream(&mut client, &shared, "timed out".into()).await),
    };
    upstream
        .set_nodelay(true)
        .map_err(io("setting TCP_NODELAY upstream"))?;
    let (client_rd, client_wr) = client.into_split();
    let (up_rd, mut up_wr) = upstream.into_split();
    up_wr
        .write_all(&packet)
        .await
        .map_err(io("writing the startup packet to PostgreSQL"))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let mut front = Frontend {
        ctx: ctx.clone(),
        tx,
        prepared: HashMap::new(),
        portals: HashMap::new(),
        batch: Batch::Fresh,
        dropped_statements: HashMap::new(),
        dropped_portals: HashMap::new(),
    };
    let mut back = Backend::new(ctx.clone(), rx);
    tokio::select! {
        r = front.pump(client_rd, up_wr) => r,
        r = back.pump(up_rd, client_wr) => r,
    }
}

/// Reads the startup packet, answering SSL and GSS encryption requests
/// with `N`. `None` when the client went away.
async fn startup_packet(client: &mut TcpStream) -> Result<Option<Vec<u8>>, PgError> {
    // A client may ask for GSS, then SSL, then start: a few rounds at most.
    for _ in 0..4 {
        let mut head = [0u8; 4];
        match client.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io("reading the startup packet")(e)),
        }
        let len = wire::startup_len(head)?;
        let mut packet = vec![0u8; len];
        packet[..4].copy_from_slice(&head);
        client
            .read_exact(&mut packet[4..])
            .await
            .map_err(io("reading the startup packet"))?;
        if len == 8
            && (SslRequest::is_ssl_request_packet(&packet)
                || GssEncRequest::is_gss_enc_request_packet(&packet))
        {
            client
                .write_all(b"N")
                .await
                .map_err(io("answering an encryption request"))?;
            continue;
        }
        return Ok(Some(packet));
    }
    Err(PgError::Malformed(
        "too many encryption requests before the startup packet".into(),
    ))
}

/// A cancel request goes to the upstream as it came; its keys are the
/// server's own (no pooling, `BackendKeyData` forwarded unchanged).
async fn forward_cancel(packet: &[u8], shared: &Shared) -> Result<(), PgError> {
    let mut up = match tokio::time::timeout(
        shared.config.connect_timeout,
        TcpStream::connect(shared.config.upstream.as_str()),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(PgError::Upstream {
                upstream: shared.config.upstream.clone(),
                reason: e.to_string(),
            })
        }
        Err(_) => return Err(PgError::Timeout("PostgreSQL to accept a cancel request")),
    };
    up.write_all(packet)
        .await
        .map_err(io("forwarding a cancel request"))?;
    // PostgreSQL closes the connection once it has read the request.
    let mut sink = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(5), up.read(&mut sink)).await;
    Ok(())
}

async fn refuse_upstream(client: &mut TcpStream, shared: &Shared, reason: String) -> PgError {
    let r = Refusal {
        code: "08006",
        message: format!(
            "vakt's proxy cannot reach the database at {}",
            shared.config.upstream
        ),
        detail: Some(reason.clone()),
        hint: None,
    };
    let _ = client.write_all(&refusal_bytes(&r, "FATAL")).await;
    PgError::Upstream {
        upstream: shared.config.upstream.clone(),
        reason,
    }
}

/// Makes room for the frame being read (`want` bytes from the buffer's
/// start), and gives back a buffer that grew for one large message.
fn make_room(buf: &mut BytesMut, want: usize) {
    if buf.is_empty() && buf.capacity() > KEEP_BUFFER && want <= READ_CHUNK {
        *buf = BytesMut::with_capacity(READ_CHUNK);
    }
    if want > buf.capacity() {
        buf.reserve(want - buf.len());
    }
    if buf.capacity() - buf.len() < READ_CHUNK / 8 {
        buf.reserve(READ_CHUNK);
    }
}

/// How the client pump treats one frame.
enum Fwd {
    Forward,
    Drop,
    Delay(Duration),
}

/// The verdict for the extended-protocol batch under way.
enum Batch {
    /// No message since the last `Sync`.
    Fresh,
    Pass,
    Refused(Refusal),
}

struct Frontend {
    ctx: Arc<Ctx>,
    tx: mpsc::UnboundedSender<Expect>,
    prepared: HashMap<String, Arc<Stmt>>,
    /// Portal -> (statement name, result format codes).
    portals: HashMap<String, (String, Arc<[i16]>)>,
    batch: Batch,
    /// Statements and portals of a refused batch (never reached the
    /// server), to name what an `Execute` in it would have run.
    dropped_statements: HashMap<String, Arc<Stmt>>,
    dropped_portals: HashMap<String, String>,
}

impl Frontend {
    async fn pump(&mut self, mut rd: OwnedReadHalf, mut up: OwnedWriteHalf) -> Result<(), PgError> {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let mut want = 0;
        loop {
            make_room(&mut buf, want);
            let n = rd
                .read_buf(&mut buf)
                .await
                .map_err(io("reading from the client"))?;
            if n == 0 {
                return Ok(());
            }
            let (mut pos, mut from) = (0, 0);
            loop {
                let (frame, len) = wire::next_frame(&buf[pos..])?;
                let Some(frame) = frame else {
                    want = len;
                    break;
                };
                match self.on_frame(frame)? {
                    Fwd::Forward => {}
                    Fwd::Drop => {
                        write(&mut up, &buf[from..pos]).await?;
                        from = pos + frame.len;
                    }
                    Fwd::Delay(d) => {
                        write(&mut up, &buf[from..pos]).await?;
                        from = pos;
                        tokio::time::sleep(d).await;
                    }
                }
                pos += frame.len;
            }
            write(&mut up, &buf[from..pos]).await?;
            buf.advance(pos);
        }
    }

    fn send(&self, e: Expect) {
        // The server pump only goes away with the connection.
        let _ = self.tx.send(e);
    }

    /// The verdict for the batch this extended-protocol message belongs to.
    fn batch_gate(&mut self) -> Fwd {
        if let Batch::Fresh = self.batch {
            self.batch = match self.ctx.gate() {
                Gate::Pass => Batch::Pass,
                Gate::Delay(d) => {
                    self.batch = Batch::Pass;
                    return Fwd::Delay(d);
                }
                Gate::Refuse(r) => Batch::Refused(r),
            };
        }
        match self.batch {
            Batch::Refused(_) => Fwd::Drop,
            _ => Fwd::Forward,
        }
    }

    fn on_frame(&mut self, f: Frame<'_>) -> Result<Fwd, PgError> {
        Ok(match f.ty {
            b'Q' => {
                let text = wire::query(f.body)?;
                let stmts: Vec<Arc<Stmt>> = sql::scan(&text)
                    .iter()
                    .map(|s| self.ctx.shared.statement(&text, s))
                    .collect();
                match self.ctx.gate() {
                    Gate::Refuse(r) => {
                        for s in &stmts {
                            self.ctx.submit_refused(s);
                        }
                        self.send(Expect::Refusal(r));
                        Fwd::Drop
                    }
                    g => {
                        self.send(Expect::Simple(stmts));
                        self.send(Expect::Sync);
                        match g {
                            Gate::Delay(d) => Fwd::Delay(d),
                            _ => Fwd::Forward,
                        }
                    }
                }
            }
            b'F' => match self.ctx.gate() {
                // A function call (fast path): answered with ReadyForQuery too.
                Gate::Refuse(r) => {
                    self.send(Expect::Refusal(r));
                    Fwd::Drop
                }
                g => {
                    self.send(Expect::Sync);
                    match g {
                        Gate::Delay(d) => Fwd::Delay(d),
                        _ => Fwd::Forward,
                    }
                }
            },
            b'P' | b'B' | b'D' | b'E' | b'C' | b'H' => {
                let fwd = self.batch_gate();
                if matches!(fwd, Fwd::Drop) {
                    self.refused(f)?;
                } else {
                    self.extended(f)?;
                }
                fwd
            }
            b'S' => match std::mem::replace(&mut self.batch, Batch::Fresh) {
                Batch::Refused(r) => {
                    self.dropped_statements.clear();
                    self.dropped_portals.clear();
                    self.send(Expect::Refusal(r));
                    Fwd::Drop
                }
                _ => {
                    self.send(Expect::Sync);
                    Fwd::Forward
                }
            },
            // Terminate, CopyData/CopyDone/CopyFail, password and SASL messages.
            _ => Fwd::Forward,
        })
    }

    /// A message of a refused batch: not forwarded; an `Execute` is
    /// recorded as a failed attempt of the statement it would have run.
    fn refused(&mut self, f: Frame<'_>) -> Result<(), PgError> {
        match f.ty {
            b'P' if self.dropped_statements.len() < MAX_NAMED => {
                let (name, text) = wire::parse(f.body)?;
                let stmt = self.ctx.shared.prepared(&text);
                self.dropped_statements.insert(name, stmt);
            }
            b'B' if self.dropped_portals.len() < MAX_NAMED => {
                let b = wire::bind(f.body)?;
                self.dropped_portals.insert(b.portal, b.statement);
            }
            b'E' => {
                let portal = wire::execute(f.body)?;
                let statement = self
                    .dropped_portals
                    .get(&portal)
                    .or_else(|| self.portals.get(&portal).map(|(s, _)| s));
                let stmt = statement.and_then(|name| {
                    self.dropped_statements
                        .get(name)
                        .or_else(|| self.prepared.get(name))
                });
                if let Some(s) = stmt {
                    self.ctx.submit_refused(s);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn extended(&mut self, f: Frame<'_>) -> Result<(), PgError> {
        match f.ty {
            b'P' => {
                let (name, text) = wire::parse(f.body)?;
                let stmt = self.ctx.shared.prepared(&text);
                if self.prepared.len() >= MAX_NAMED && !self.prepared.contains_key(&name) {
                    self.prepared.clear();
                }
                self.prepared.insert(name.clone(), stmt);
                self.send(Expect::Parse(name));
            }
            b'B' => {
                let b = wire::bind(f.body)?;
                if self.portals.len() >= MAX_NAMED && !self.portals.contains_key(&b.portal) {
                    self.portals.clear();
                }
                self.portals
                    .insert(b.portal, (b.statement, b.result_formats.into()));
            }
            b'D' => {
                let (kind, name) = wire::target(f.body, "Describe")?;
                let statement = if kind == b'S' {
                    Some(name)
                } else {
                    self.portals.get(&name).map(|(s, _)| s.clone())
                };
                self.send(Expect::Describe(statement));
            }
            b'E' => {
                let portal = wire::execute(f.body)?;
                let (statement, formats) = self
                    .portals
                    .get(&portal)
                    .cloned()
                    .unwrap_or_else(|| (String::new(), Arc::from(Vec::new())));
                let stmt = self.prepared.get(&statement).cloned();
                self.send(Expect::Execute {
                    stmt,
                    statement,
                    formats,
                });
            }
            b'C' => {
                let (kind, name) = wire::target(f.body, "Close")?;
                if kind == b'S' {
                    self.prepared.remove(&name);
                    self.send(Expect::Close(Some(name)));
                } else {
                    self.portals.remove(&name);
                    self.send(Expect::Close(None));
                }
            }
            _ => {} // Flush
        }
        Ok(())
    }
}

async fn write(w: &mut OwnedWriteHalf, bytes: &[u8]) -> Result<(), PgError> {
    if bytes.is_empty() {
        return Ok(());
    }
    w.write_all(bytes).await.map_err(io("forwarding"))
}

/// What the current statement's answer has shown so far.
#[derive(Default)]
struct Acc {
    rows: u64,
    ids: HashSet<String>,
    ids_capped: bool,
    copy_out: bool,
    copy_in: bool,
    copy_rows: u64,
    /// Key columns of the rows now coming, once known.
    keys: Vec<Column>,
    keys_known: bool,
}

impl Acc {
    fn reset(&mut self) {
        self.rows = 0;
        self.ids.clear();
        self.ids_capped = false;
        self.copy_out = false;
        self.copy_in = false;
        self.copy_rows = 0;
        self.keys.clear();
        self.keys_known = false;
    }
}

struct Backend {
    ctx: Arc<Ctx>,
    rx: mpsc::UnboundedReceiver<Expect>,
    queue: VecDeque<Expect>,
    /// The statement of the current simple query being answered.
    simple_at: usize,
    acc: Acc,
    /// Statement name -> its key columns (format codes come from `Bind`).
    described: HashMap<String, Arc<[Column]>>,
    status: u8,
    ready_once: bool,
}

impl Backend {
    fn new(ctx: Arc<Ctx>, rx: mpsc::UnboundedReceiver<Expect>) -> Backend {
        Backend {
            ctx,
            rx,
            queue: VecDeque::new(),
            simple_at: 0,
            acc: Acc::default(),
            described: HashMap::new(),
            status: b'I',
            ready_once: false,
        }
    }

    async fn pump(
        &mut self,
        mut up: OwnedReadHalf,
        mut client: OwnedWriteHalf,
    ) -> Result<(), PgError> {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let mut want = 0;
        let mut rx_open = true;
        loop {
            make_room(&mut buf, want);
            tokio::select! {
                biased;
                e = self.rx.recv(), if rx_open => match e {
                    Some(e) => {
                        self.queue.push_back(e);
                        self.take_expected();
                        self.answer_refusals(&mut client).await?;
                    }
                    None => rx_open = false,
                },
                r = up.read_buf(&mut buf) => {
                    let n = r.map_err(io("reading from PostgreSQL"))?;
                    if n == 0 {
                        return Ok(());
                    }
                    self.take_expected();
                    let (mut pos, mut from) = (0, 0);
                    loop {
                        let (frame, len) = wire::next_frame(&buf[pos..])?;
                        let Some(frame) = frame else {
                            want = len;
                            break;
                        };
                        let ready = self.on_frame(frame)?;
                        pos += frame.len;
                        if ready && matches!(self.queue.front(), Some(Expect::Refusal(_))) {
                            write(&mut client, &buf[from..pos]).await?;
                            from = pos;
                            self.answer_refusals(&mut client).await?;
                        }
                    }
                    write(&mut client, &buf[from..pos]).await?;
                    buf.advance(pos);
                }
            }
        }
    }

    /// Everything the client pump has announced so far.
    fn take_expected(&mut self) {
        while let Ok(e) = self.rx.try_recv() {
            self.queue.push_back(e);
        }
    }

    /// Answers the refusals at the head of the queue (all before them is answered).
    async fn answer_refusals(&mut self, client: &mut OwnedWriteHalf) -> Result<(), PgError> {
        while let Some(Expect::Refusal(r)) = self.queue.front() {
            let mut out = refusal_bytes(r, "ERROR");
            wire::ready_for_query(self.status, &mut out);
            self.queue.pop_front();
            write(client, &out).await?;
        }
        Ok(())
    }

    /// Looks at one server message; `true` after a `ReadyForQuery`.
    fn on_frame(&mut self, f: Frame<'_>) -> Result<bool, PgError> {
        match f.ty {
            b'D' => self.data_row(f.body)?,
            b'd' if self.acc.copy_out => self.acc.copy_rows += 1,
            b'T' => {
                let shared = &self.ctx.shared;
                let keys = wire::row_description(f.body, |n| shared.is_key(n))?;
                match self.queue.front() {
                    Some(Expect::Describe(name)) => {
                        if let Some(name) = name.clone() {
                            self.remember(name, keys.into());
                        }
                        self.queue.pop_front();
                    }
                    _ => {
                        self.acc.keys = keys;
                        self.acc.keys_known = true;
                    }
                }
            }
            b'n' => {
                if let Some(Expect::Describe(name)) = self.queue.front() {
                    if let Some(name) = name.clone() {
                        self.remember(name, Arc::from(Vec::new()));
                    }
                    self.queue.pop_front();
                }
            }
            b'1' => {
                if let Some(Expect::Parse(name)) = self.queue.front() {
                    self.described.remove(name);
                    self.queue.pop_front();
                }
            }
            b'3' => {
                if let Some(Expect::Close(name)) = self.queue.front() {
                    if let Some(name) = name {
                        self.described.remove(name);
                    }
                    self.queue.pop_front();
                }
            }
            b'C' => {
                let tag = wire::command_tag(f.body)?;
                self.complete(Some(&tag), Outcome::Success);
            }
            b'I' => {
                // EmptyQueryResponse
                if let Some(Expect::Execute { .. }) = self.queue.front() {
                    self.queue.pop_front();
                }
                self.acc.reset();
            }
            b's' => self.complete(None, Outcome::Success), // PortalSuspended
            b'H' => self.acc.copy_out = true,
            b'G' => self.acc.copy_in = true,
            b'E' => self.error(f.body)?,
            b'K' => {
                let pid = wire::backend_pid(f.body)?;
                self.ctx.pid.store(pid, Ordering::Relaxed);
            }
            b'Z' => {
                self.status = wire::ready_status(f.body)?;
                self.ready_once = true;
                if self.queue.iter().any(|e| matches!(e, Expect::Sync)) {
                    while let Some(e) = self.queue.pop_front() {
                        if matches!(e, Expect::Sync) {
                            break;
                        }
                    }
                }
                self.simple_at = 0;
                self.acc.reset();
                return Ok(true);
            }
            _ => {}
        }
        Ok(false)
    }

    fn remember(&mut self, name: String, keys: Arc<[Column]>) {
        if self.described.len() >= MAX_NAMED && !self.described.contains_key(&name) {
            self.described.clear();
        }
        self.described.insert(name, keys);
    }

    fn data_row(&mut self, body: &[u8]) -> Result<(), PgError> {
        self.acc.rows += 1;
        if !self.acc.keys_known {
            self.acc.keys_known = true;
            self.acc.keys.clear();
            if let Some(Expect::Execute {
                statement, formats, ..
            }) = self.queue.front()
            {
                if let Some(cols) = self.described.get(statement) {
                    self.acc.keys.extend(cols.iter().map(|c| Column {
                        format: match formats.len() {
                            0 => 0,
                            1 => formats[0],
                            _ => formats.get(c.index as usize).copied().unwrap_or(0),
                        },
                        ..*c
                    }));
                }
            }
        }
        if self.acc.keys.is_empty() {
            return Ok(());
        }
        let max = self.ctx.shared.config.max_customer_ids;
        let acc = &mut self.acc;
        wire::data_row(body, &acc.keys, |col, v| {
            let Some(id) = wire::key_text(col, v) else {
                return;
            };
            if acc.ids.contains(id.as_ref()) {
                return;
            }
            if acc.ids.len() >= max {
                acc.ids_capped = true;
                return;
            }
            acc.ids.insert(id.into_owned());
        })
    }

    /// The statement being answered now.
    fn current(&self) -> Option<Arc<Stmt>> {
        match self.queue.front()? {
            Expect::Simple(stmts) => stmts.get(self.simple_at).or(stmts.last()).cloned(),
            Expect::Execute { stmt, .. } => stmt.clone(),
            _ => None,
        }
    }

    /// A statement finished: `tag` from `CommandComplete`, `None` for a
    /// suspended portal or a failure.
    fn complete(&mut self, tag: Option<&str>, outcome: Outcome) {
        let is_exec = matches!(self.queue.front(), Some(Expect::Execute { .. }));
        let is_simple = matches!(self.queue.front(), Some(Expect::Simple(_)));
        if is_exec || is_simple {
            let stmt = self.current();
            self.record(stmt.as_deref(), tag, outcome);
        }
        if is_exec {
            self.queue.pop_front();
        } else if is_simple {
            self.simple_at += 1;
        }
        self.acc.reset();
    }

    fn record(&mut self, stmt: Option<&Stmt>, tag: Option<&str>, outcome: Outcome) {
        let acc = &mut self.acc;
        let mut words = tag.unwrap_or("").split_ascii_whitespace();
        let command = words.next().unwrap_or("");
        let count = words.last().and_then(|n| n.parse::<u64>().ok());
        let verb = stmt.map_or(Verb::Other, |s| s.verb);
        let read_action = |rows: u64| {
            if rows > 1 {
                Action::Search
            } else {
                Action::Lookup
            }
        };
        let (action, records) = match (outcome, command) {
            (Outcome::Failure, _) | (_, "") => {
                // Failed, or a portal suspended after `rows` rows.
                let action = match verb_action(verb) {
                    Some(Action::Lookup) if tag.is_none() && outcome == Outcome::Success => {
                        read_action(acc.rows)
                    }
                    Some(a) => a,
                    None if !acc.ids.is_empty() => read_action(acc.rows),
                    None => return,
                };
                (action, acc.rows.max(acc.copy_rows))
            }
            (_, "SELECT" | "FETCH") => {
                let rows = count.unwrap_or(acc.rows);
                (read_action(rows), rows)
            }
            (_, "COPY") => {
                let rows = count.unwrap_or(acc.copy_rows);
                let export = acc.copy_out || (!acc.copy_in && verb == Verb::CopyTo);
                (
                    if export {
                        Action::Export
                    } else {
                        Action::Update
                    },
                    rows,
                )
            }
            (_, "INSERT" | "UPDATE" | "MERGE") => (Action::Update, count.unwrap_or(0)),
            (_, "DELETE") => (Action::Delete, count.unwrap_or(0)),
            _ if !acc.ids.is_empty() => (read_action(acc.rows), acc.rows),
            _ => return,
        };
        if !stmt.is_some_and(|s| s.names_table) && acc.ids.is_empty() {
            return; // SELECT 1, SELECT now(): no table, no customers
        }
        if acc.ids_capped {
            tracing::warn!(
                "pg proxy: a statement by {} returned more than {} distinct customers; the ledger keeps the first {}",
                self.ctx.user,
                acc.ids.len(),
                acc.ids.len()
            );
        }
        let mut ids: Vec<String> = acc.ids.drain().collect();
        ids.sort_unstable();
        self.ctx.submit(stmt, action, outcome, ids, records);
    }

    fn error(&mut self, body: &[u8]) -> Result<(), PgError> {
        let code = wire::error_code(body)?;
        if !self.ready_once {
            // Before the first ReadyForQuery: authentication or startup failed.
            if code.as_deref().is_some_and(|c| c.starts_with("28")) {
                self.ctx
                    .submit(None, Action::Login, Outcome::Failure, Vec::new(), 0);
            }
            return Ok(());
        }
        // The statement under way failed; PostgreSQL skips the rest up to Sync.
        let failed = self
            .queue
            .iter()
            .take_while(|e| !matches!(e, Expect::Sync | Expect::Refusal(_)))
            .position(|e| matches!(e, Expect::Simple(_) | Expect::Execute { .. }));
        if let Some(i) = failed {
            for _ in 0..i {
                self.queue.pop_front();
            }
            let stmt = self.current();
            self.record(stmt.as_deref(), None, Outcome::Failure);
        }
        while self
            .queue
            .front()
            .is_some_and(|e| !matches!(e, Expect::Sync | Expect::Refusal(_)))
        {
            self.queue.pop_front();
        }
        self.acc.reset();
        Ok(())
    }
}
