//! What the two pumps share: the reusable read buffer, the forwarding
//! write, and the queue on which the client pump tells the server pump,
//! in order, what each forwarded request will be answered with
//! ([`Expect`], through [`Announced`]), so the server pump knows which
//! statement a `DataRow` or `CommandComplete` belongs to. A refusal the
//! proxy answers itself travels the same queue ([`Expect::Error`],
//! [`Expect::Ready`]), so it reaches the client after the answers to
//! everything sent before it, and before the answers to anything after.

use super::gate::Refusal;
use super::record::Stmt;
use super::{io, PgError};
use bytes::BytesMut;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;

pub(super) const READ_CHUNK: usize = 64 * 1024;
/// A buffer grown past this for one large message is given back afterwards.
const KEEP_BUFFER: usize = 1 << 20;
/// Prepared statements, portals and described statements remembered per connection.
pub(super) const MAX_NAMED: usize = 10_000;

/// What the server will answer a forwarded request with, in order.
#[derive(Debug)]
pub(super) enum Expect {
    /// A simple query: its statements, each ended by `CommandComplete`.
    Simple(Vec<Arc<Stmt>>),
    /// `ParseComplete` (forget what was described under the name).
    Parse(String),
    /// `BindComplete`.
    Bind,
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
    /// An `ErrorResponse` the proxy answers itself, after everything before it.
    Error(Refusal),
    /// A `ReadyForQuery` the proxy answers itself (with the last
    /// transaction status), for a request that never reached the server.
    Ready,
    /// Written by the proxy at once as a `FATAL` error; the connection ends.
    Fatal(Refusal),
}

/// The queue from the client pump to the server pump of one connection.
///
/// Both pumps are polled by the connection's one task, so nothing here
/// waits or wakes on the hot path: a request's answer only comes after the
/// server read it, and the server pump takes what was announced before it
/// looks at any answer. Only what the proxy answers itself, with no answer
/// from the server to come first ([`Expect::needs_no_server`]), has to
/// reach the server pump at once; the client pump then wakes its own task
/// ([`wake_own_task`]), whose next poll finds it through [`Announced::due`].
/// (A channel woke the task once per request for nothing: a tenth of the
/// proxy's own CPU.)
#[derive(Default)]
pub(super) struct Announced {
    queue: Mutex<Vec<Expect>>,
    due: AtomicBool,
}

impl Announced {
    pub(super) fn push(&self, e: Expect) {
        if e.needs_no_server() {
            self.due.store(true, Ordering::Release);
        }
        self.lock().push(e);
    }

    /// Everything announced so far, in order, onto `into`.
    pub(super) fn take(&self, into: &mut Vec<Expect>) {
        self.due.store(false, Ordering::Release);
        let mut queue = self.lock();
        if !queue.is_empty() {
            into.append(&mut queue);
        }
    }

    /// Ready once something the proxy answers itself was announced.
    pub(super) async fn due(&self) {
        poll_fn(|_| {
            if self.due.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                // The client pump wakes the task when it sets `due`.
                Poll::Pending
            }
        })
        .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Expect>> {
        // A panic cannot leave a `Vec::push` or `drain` half done.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wakes the task polling the current future, so that it is polled again
/// at once (both pumps of a connection are polled by one task).
pub(super) async fn wake_own_task() {
    poll_fn(|cx| {
        cx.waker().wake_by_ref();
        Poll::Ready(())
    })
    .await
}

impl Expect {
    /// Whether the server pump answers it without waiting for the server.
    pub(super) fn needs_no_server(&self) -> bool {
        matches!(self, Expect::Error(_) | Expect::Ready | Expect::Fatal(_))
    }
}

/// Makes room for the next read, and gives back a buffer that grew for
/// one large message (`want`: the bytes the frame being read takes). The
/// buffer grows by a chunk at a time as bytes come, never by the length a
/// frame announces: a peer that announces a large message and sends little
/// costs little.
pub(super) fn make_room(buf: &mut BytesMut, want: usize) {
    if buf.is_empty() && buf.capacity() > KEEP_BUFFER && want <= READ_CHUNK {
        *buf = BytesMut::with_capacity(READ_CHUNK);
    }
    if buf.capacity() - buf.len() < READ_CHUNK / 8 {
        buf.reserve(READ_CHUNK);
    }
}

/// Forwards `bytes` as they came.
pub(super) async fn write(w: &mut OwnedWriteHalf, bytes: &[u8]) -> Result<(), PgError> {
    if bytes.is_empty() {
        return Ok(());
    }
    w.write_all(bytes).await.map_err(io("forwarding"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_6_the_read_buffer_grows_with_bytes_received_not_with_a_claimed_length() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[b'Q', 0, 0x98, 0x96, 0x80]); // says 10 MB
        make_room(&mut buf, 10_000_001);
        assert!(buf.capacity() < 1 << 20, "{} bytes", buf.capacity());
    }
}
