//! The server pump: reads answers, forwards them, follows the queue of
//! what each forwarded request is answered with, feeds each statement's
//! answer to its record and submits the access when it ends, and answers
//! the proxy's own refusals in their turn.

use super::gate::{refusal_bytes, Refusal};
use super::pump::{make_room, write, Announced, Expect, MAX_NAMED, READ_CHUNK};
use super::record::{self, Acc, Stmt};
use super::session::Ctx;
use super::wire::{self, Column, Frame};
use super::{io, PgError};
use bytes::{Buf, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use vakt_event::{Action, Outcome};

pub(super) struct Backend {
    ctx: Arc<Ctx>,
    announced: Arc<Announced>,
    queue: VecDeque<Expect>,
    /// Reused to take what was announced.
    taken: Vec<Expect>,
    /// The statement of the current simple query being answered.
    simple_at: usize,
    acc: Acc,
    /// Statement name -> its key columns (format codes come from `Bind`).
    described: HashMap<String, Arc<[Column]>>,
    status: u8,
    ready_once: bool,
    /// A `FATAL` error the client pump asked for, to write at once.
    fatal: Option<Refusal>,
}

impl Backend {
    pub(super) fn new(ctx: Arc<Ctx>, announced: Arc<Announced>) -> Backend {
        Backend {
            ctx,
            announced,
            queue: VecDeque::new(),
            taken: Vec::new(),
            simple_at: 0,
            acc: Acc::default(),
            described: HashMap::new(),
            status: b'I',
            ready_once: false,
            fatal: None,
        }
    }

    pub(super) async fn pump(
        &mut self,
        mut up: OwnedReadHalf,
        mut client: OwnedWriteHalf,
    ) -> Result<(), PgError> {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let mut want = 0;
        loop {
            make_room(&mut buf, want);
            tokio::select! {
                biased;
                () = self.announced.due() => {
                    self.take_expected();
                    self.answer_fatal(&mut client).await?;
                    self.answer_own(&mut client).await?;
                },
                r = up.read_buf(&mut buf) => {
                    let n = r.map_err(io("reading from PostgreSQL"))?;
                    if n == 0 {
                        return Ok(());
                    }
                    self.take_expected();
                    self.answer_fatal(&mut client).await?;
                    let (mut pos, mut from) = (0, 0);
                    loop {
                        let (frame, len) = wire::next_frame(&buf[pos..], wire::MAX_MESSAGE)?;
                        let Some(frame) = frame else {
                            want = len;
                            break;
                        };
                        self.on_frame(frame)?;
                        pos += frame.len;
                        if matches!(self.queue.front(), Some(Expect::Error(_) | Expect::Ready)) {
                            write(&mut client, &buf[from..pos]).await?;
                            from = pos;
                            self.answer_own(&mut client).await?;
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
        let mut taken = std::mem::take(&mut self.taken);
        self.announced.take(&mut taken);
        for e in taken.drain(..) {
            match e {
                // Answered at once, not in its turn.
                Expect::Fatal(r) => self.fatal = Some(r),
                e => self.queue.push_back(e),
            }
        }
        self.taken = taken;
    }

    /// A `FATAL` error from the client pump goes out at once, between whole
    /// messages, and ends the connection.
    async fn answer_fatal(&mut self, client: &mut OwnedWriteHalf) -> Result<(), PgError> {
        let Some(r) = self.fatal.take() else {
            return Ok(());
        };
        write(client, &refusal_bytes(&r, "FATAL")).await?;
        let _ = client.shutdown().await;
        Err(PgError::Fatal(r.message))
    }

    /// Answers what the proxy answers itself at the head of the queue
    /// (everything before it is answered).
    async fn answer_own(&mut self, client: &mut OwnedWriteHalf) -> Result<(), PgError> {
        let mut out = BytesMut::new();
        loop {
            match self.queue.front() {
                Some(Expect::Error(r)) => out.extend_from_slice(&refusal_bytes(r, "ERROR")),
                Some(Expect::Ready) => wire::ready_for_query(self.status, &mut out),
                _ => break,
            }
            self.queue.pop_front();
        }
        write(client, &out).await
    }

    /// Looks at one server message.
    fn on_frame(&mut self, f: Frame<'_>) -> Result<(), PgError> {
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
                    _ => self.acc.describe(keys),
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
            b'2' => {
                if let Some(Expect::Bind) = self.queue.front() {
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
                // PostgreSQL sends it once, at login.
                let _ = self.ctx.session.set(pid.to_string());
            }
            b'Z' => {
                self.status = wire::ready_status(f.body)?;
                if !self.ready_once {
                    // Before this reaches the client, so its next message is let through.
                    self.ctx.logged_in.store(true, Ordering::Release);
                    self.ready_once = true;
                }
                if self.queue.iter().any(|e| matches!(e, Expect::Sync)) {
                    while let Some(e) = self.queue.pop_front() {
                        if matches!(e, Expect::Sync) {
                            break;
                        }
                    }
                }
                self.simple_at = 0;
                self.acc.reset();
            }
            _ => {}
        }
        Ok(())
    }

    fn remember(&mut self, name: String, keys: Arc<[Column]>) {
        if self.described.len() >= MAX_NAMED && !self.described.contains_key(&name) {
            self.described.clear();
        }
        self.described.insert(name, keys);
    }

    fn data_row(&mut self, body: &[u8]) -> Result<(), PgError> {
        if !self.acc.keys_known {
            // Rows of a statement described earlier, in the portal's formats.
            let mut keys = Vec::new();
            if let Some(Expect::Execute {
                statement, formats, ..
            }) = self.queue.front()
            {
                if let Some(cols) = self.described.get(statement) {
                    keys.extend(cols.iter().map(|c| Column {
                        format: match formats.len() {
                            0 => 0,
                            1 => formats[0],
                            _ => formats.get(c.index as usize).copied().unwrap_or(0),
                        },
                        ..*c
                    }));
                }
            }
            self.acc.describe(keys);
        }
        self.acc
            .data_row(body, self.ctx.shared.config.max_customer_ids)
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
        let (capped, kept) = (self.acc.ids_capped, self.acc.ids.len());
        let Some(access) = record::record(stmt, tag, outcome, &mut self.acc) else {
            return;
        };
        if capped {
            tracing::warn!(
                "pg proxy: a statement by {} returned more than {kept} distinct customers; the ledger keeps the first {kept}",
                self.ctx.user,
            );
        }
        self.ctx.submit(stmt, access);
    }

    fn error(&mut self, body: &[u8]) -> Result<(), PgError> {
        let code = wire::error_code(body)?;
        if !self.ready_once {
            // Before the first ReadyForQuery: authentication or startup failed.
            if code.as_deref().is_some_and(|c| c.starts_with("28")) {
                self.ctx
                    .submit(None, record::Access::bare(Action::Login, Outcome::Failure));
            }
            return Ok(());
        }
        // The statement under way failed; PostgreSQL skips the rest up to Sync.
        let failed = self
            .queue
            .iter()
            .take_while(|e| !matches!(e, Expect::Sync | Expect::Ready))
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
            .is_some_and(|e| !matches!(e, Expect::Sync | Expect::Ready))
        {
            self.queue.pop_front();
        }
        self.acc.reset();
        Ok(())
    }
}
