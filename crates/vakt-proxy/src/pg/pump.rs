//! What the two pumps share: the reusable read buffer, the forwarding
//! write, and the queue on which the client pump tells the server pump,
//! in order, what each forwarded request will be answered with
//! ([`Expect`]), so the server pump knows which statement a `DataRow`
//! or `CommandComplete` belongs to. A refusal the proxy answers itself
//! travels the same queue ([`Expect::Error`], [`Expect::Ready`]), so it
//! reaches the client after the answers to everything sent before it, and
//! before the answers to anything after.

use super::gate::Refusal;
use super::record::Stmt;
use super::{io, PgError};
use bytes::BytesMut;
use std::sync::Arc;
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
