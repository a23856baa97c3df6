//! The client pump: reads requests, takes the guard's verdict per
//! statement (each of a simple query, each `Parse` and `Execute`), forwards
//! or drops them, and tells the server pump what each forwarded request
//! will be answered with.

use super::gate::{gate, gate_prepare, gate_statements, Gate, Refusal};
use super::pump::{make_room, wake_own_task, write, Announced, Expect, MAX_NAMED, READ_CHUNK};
use super::record::Stmt;
use super::session::Ctx;
use super::wire::{self, Frame};
use super::{io, PgError};
use bytes::{Buf, BytesMut};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// How the client pump treats one frame.
enum Fwd {
    Forward,
    Drop,
    /// Dropped, and a `Flush` sent in its place: answers to the batch's
    /// earlier messages come now, as PostgreSQL flushes after an error.
    DropAndFlush,
    Delay(Duration),
}

/// A `Flush` message.
const FLUSH: [u8; 5] = [b'H', 0, 0, 0, 4];

/// How long a connection ended with a `FATAL` error waits for the client to take it.
const FATAL_WAIT: Duration = Duration::from_secs(5);

fn before_login(ty: u8) -> PgError {
    PgError::Malformed(format!(
        "a `{}` message came before login, where only startup and authentication messages may",
        wire::printable(ty)
    ))
}

pub(super) struct Frontend {
    ctx: Arc<Ctx>,
    /// Past the first `ReadyForQuery` (cached from [`Ctx::logged_in`]).
    logged_in: bool,
    announced: Arc<Announced>,
    /// Something the server pump answers without the server was
    /// announced: its task is woken before this pump waits.
    wake: bool,
    prepared: HashMap<String, Arc<Stmt>>,
    /// Portal -> (statement name, result format codes).
    portals: HashMap<String, (String, Arc<[i16]>)>,
    /// The extended-protocol batch under way was refused: the rest up to
    /// `Sync` is discarded.
    batch_refused: bool,
    /// Something of the batch under way was forwarded.
    batch_forwarded: bool,
    /// Statements and portals of a refused batch (never reached the
    /// server), to name what an `Execute` in it would have run.
    dropped_statements: HashMap<String, Arc<Stmt>>,
    dropped_portals: HashMap<String, String>,
    /// Scratch for a statement's shape.
    shape_key: Vec<u8>,
}

impl Frontend {
    pub(super) fn new(ctx: Arc<Ctx>, announced: Arc<Announced>) -> Frontend {
        Frontend {
            ctx,
            logged_in: false,
            announced,
            wake: false,
            prepared: HashMap::new(),
            portals: HashMap::new(),
            shape_key: Vec::new(),
            batch_refused: false,
            batch_forwarded: false,
            dropped_statements: HashMap::new(),
            dropped_portals: HashMap::new(),
        }
    }

    pub(super) async fn pump(
        &mut self,
        mut rd: OwnedReadHalf,
        mut up: OwnedWriteHalf,
    ) -> Result<(), PgError> {
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
                if !self.logged_in {
                    self.logged_in = self.ctx.logged_in();
                }
                let max = if self.logged_in {
                    self.ctx.shared.config.max_message
                } else {
                    // Refused on its type byte, before its length is even read.
                    match buf.get(pos) {
                        Some(b'p' | b'X') | None => {}
                        Some(&ty) => return self.fatal(before_login(ty)).await,
                    }
                    wire::MAX_AUTH_MESSAGE
                };
                let (frame, len) = match wire::next_frame(&buf[pos..], max) {
                    Ok(f) => f,
                    Err(e) => return self.fatal(e).await,
                };
                let Some(frame) = frame else {
                    want = len;
                    break;
                };
                let fwd = match self.on_frame(frame) {
                    Ok(fwd) => fwd,
                    Err(e) => return self.fatal(e).await,
                };
                // Before anything here can wait.
                self.wake_server_pump().await;
                match fwd {
                    Fwd::Forward => {}
                    Fwd::Drop => {
                        write(&mut up, &buf[from..pos]).await?;
                        from = pos + frame.len;
                    }
                    Fwd::DropAndFlush => {
                        write(&mut up, &buf[from..pos]).await?;
                        write(&mut up, &FLUSH).await?;
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

    fn send(&mut self, e: Expect) {
        self.wake |= e.needs_no_server();
        self.announced.push(e);
    }

    /// Before this pump waits: the server pump takes at once what it
    /// answers without the server (both are polled by one task).
    async fn wake_server_pump(&mut self) {
        if std::mem::take(&mut self.wake) {
            wake_own_task().await;
        }
    }

    /// Ends the connection over `e`: the server pump writes a `FATAL`
    /// error saying why and closes; this side reads no more meanwhile.
    async fn fatal(&mut self, e: PgError) -> Result<(), PgError> {
        let r = match &e {
            PgError::TooLarge { .. } if self.logged_in => Refusal {
                code: "54000",
                message: format!("vakt's proxy refuses {e}"),
                detail: None,
                hint: Some(
                    "send less in one message, or ask the operator to raise `vakt proxy pg --max-message`"
                        .into(),
                ),
            },
            _ => Refusal {
                code: "08P01",
                message: format!("vakt's proxy refuses the connection: {e}"),
                detail: None,
                hint: None,
            },
        };
        self.send(Expect::Fatal(r));
        self.wake_server_pump().await;
        // Bounded: a client that reads nothing cannot hold the connection open.
        tokio::time::sleep(FATAL_WAIT).await;
        Err(e)
    }

    /// Refuses the rest of the extended-protocol batch under way, as
    /// PostgreSQL does after an error: the client gets the error in its
    /// turn, and everything up to `Sync` is discarded.
    fn refuse_batch(&mut self, r: Refusal) {
        self.batch_refused = true;
        self.send(Expect::Error(r));
    }

    fn on_frame(&mut self, f: Frame<'_>) -> Result<Fwd, PgError> {
        if self.batch_refused {
            return Ok(match f.ty {
                b'S' => {
                    self.batch_refused = false;
                    self.dropped_statements.clear();
                    self.dropped_portals.clear();
                    // To the server when part of the batch reached it, so it ends it too.
                    if std::mem::take(&mut self.batch_forwarded) {
                        self.send(Expect::Sync);
                        Fwd::Forward
                    } else {
                        self.send(Expect::Ready);
                        Fwd::Drop
                    }
                }
                b'X' => Fwd::Forward,
                b'P' | b'B' | b'E' => {
                    self.refused(f)?;
                    Fwd::Drop
                }
                // Discarded, as PostgreSQL discards everything up to Sync after an error.
                _ => Fwd::Drop,
            });
        }
        Ok(match f.ty {
            b'Q' => {
                let text = wire::query(f.body)?;
                let max = self.ctx.shared.config.max_query_statements;
                let shared = &self.ctx.shared;
                let Some(stmts) = shared.statements(&text, max, &mut self.shape_key) else {
                    self.send(Expect::Error(Refusal {
                        code: "54000",
                        message: format!(
                            "vakt's proxy refuses a query of more than {max} statements"
                        ),
                        detail: None,
                        hint: Some(
                            "send the statements in several queries, or ask the operator to raise `vakt proxy pg --max-query-statements`"
                                .into(),
                        ),
                    }));
                    self.send(Expect::Ready);
                    return Ok(Fwd::Drop);
                };
                // Each statement asks the guard: a throttle counts statements, not queries.
                match gate_statements(&self.ctx, stmts.len()) {
                    Gate::Refuse(r) => {
                        for s in &stmts {
                            self.ctx.submit_refused(s);
                        }
                        self.send(Expect::Error(r));
                        self.send(Expect::Ready);
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
            b'F' => match gate(&self.ctx) {
                // A function call (fast path): answered with ReadyForQuery too.
                Gate::Refuse(r) => {
                    self.send(Expect::Error(r));
                    self.send(Expect::Ready);
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
            // Every statement prepared and every execution asks the guard,
            // however long the batch has been open.
            b'P' | b'E' => {
                let verdict = if f.ty == b'P' {
                    gate_prepare(&self.ctx)
                } else {
                    gate(&self.ctx)
                };
                match verdict {
                    Gate::Refuse(r) => {
                        self.refuse_batch(r);
                        self.refused(f)?;
                        if self.batch_forwarded {
                            Fwd::DropAndFlush
                        } else {
                            Fwd::Drop
                        }
                    }
                    g => {
                        self.extended(f)?;
                        self.batch_forwarded = true;
                        match g {
                            // Executions are held back; a Parse reads nothing.
                            Gate::Delay(d) if f.ty == b'E' => Fwd::Delay(d),
                            _ => Fwd::Forward,
                        }
                    }
                }
            }
            b'B' | b'D' | b'C' | b'H' => {
                self.extended(f)?;
                self.batch_forwarded = true;
                Fwd::Forward
            }
            b'S' => {
                self.batch_forwarded = false;
                self.send(Expect::Sync);
                Fwd::Forward
            }
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
                let stmt = self.ctx.shared.prepared(&text, &mut self.shape_key);
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
                let stmt = self.ctx.shared.prepared(&text, &mut self.shape_key);
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
                self.send(Expect::Bind);
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
