//! Framing and the few decoders the proxy needs.
//!
//! A frame is a type byte and a big-endian `i32` length that counts itself
//! but not the type byte; the startup packet has no type byte. Frames are
//! cut out of a reusable read buffer and forwarded as they came: nothing
//! here re-encodes a client's or the server's message.
//!
//! Lengths are checked before anything is read for them or room is made:
//! [`next_frame`] refuses a length over the caller's cap from the 5-byte
//! header alone (for a client, [`MAX_AUTH_MESSAGE`] before login and
//! `max_message` after; for the server, PostgreSQL's own 1 GiB), and
//! [`startup_len`] a startup packet over PostgreSQL's 10,000 bytes.
//!
//! Decoding uses `pgwire`'s message types where its decoder is safe on any
//! input (it reads C strings with bounds checks): `Startup`. `pgwire`
//! 0.42's decoders for `Parse`, `Bind`, `RowDescription`, `ErrorResponse`,
//! `ReadyForQuery` and `DataRow` read integers without checking that the
//! bytes are there, and would panic on a truncated message, so those fields
//! are read here with [`Reader`], which never reads past a frame; so are
//! `Query` and `CommandComplete`, which come once per statement and whose
//! text is borrowed, not copied. Replies the proxy makes itself (`N` to an
//! SSL or GSS request, `ErrorResponse`, `ReadyForQuery`) are encoded with
//! `pgwire`.

use super::PgError;
use bytes::BytesMut;
use pgwire::messages::response::{ErrorResponse, ReadyForQuery, TransactionStatus};
use pgwire::messages::startup::Startup;
use pgwire::messages::{DecodeContext, Message};

/// PostgreSQL's own limit for a message (`PQ_LARGE_MESSAGE_LIMIT`); the
/// cap on the server's messages.
pub const MAX_MESSAGE: usize = 0x3fff_ffff;
/// Startup, SSL, GSS and cancel packets are short (PostgreSQL's `MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP: usize = 10_000;
/// The cap on a client's message before login: a password, SASL or GSS
/// message, whose body PostgreSQL caps at 65,535 bytes
/// (`PG_MAX_AUTH_TOKEN_LENGTH`), plus the length field itself.
pub const MAX_AUTH_MESSAGE: usize = 65_535 + 4;

/// One complete typed frame: its type byte, its body, and its total length.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub ty: u8,
    pub body: &'a [u8],
    pub len: usize,
}

/// The typed frame at the start of `buf`, if complete, and the bytes the
/// frame takes (once its header is in; 5 before). `Err` for an impossible
/// length, and for a length field over `max` as soon as the 5-byte header
/// is in, so a caller never waits for (or makes room for) more.
pub fn next_frame(buf: &[u8], max: usize) -> Result<(Option<Frame<'_>>, usize), PgError> {
    if buf.len() < 5 {
        return Ok((None, 5));
    }
    let ty = buf[0];
    let n = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if n < 4 {
        return Err(PgError::Malformed(format!(
            "message `{}` says it is {n} bytes long",
            printable(ty)
        )));
    }
    if n as usize > max.min(MAX_MESSAGE) {
        return Err(PgError::TooLarge {
            ty: printable(ty),
            len: n as usize,
            max: max.min(MAX_MESSAGE),
        });
    }
    let len = 1 + n as usize;
    if buf.len() < len {
        return Ok((None, len));
    }
    Ok((
        Some(Frame {
            ty,
            body: &buf[5..len],
            len,
        }),
        len,
    ))
}

/// The length of a startup-phase packet (no type byte) once its first four
/// bytes are in, checked against PostgreSQL's limits.
pub fn startup_len(head: [u8; 4]) -> Result<usize, PgError> {
    let n = i32::from_be_bytes(head);
    if !(8..=MAX_STARTUP as i32).contains(&n) {
        return Err(PgError::Malformed(format!(
            "not a PostgreSQL startup packet (length {n}); is the client speaking TLS directly? vakt's proxy takes plain connections only"
        )));
    }
    Ok(n as usize)
}

pub fn printable(ty: u8) -> char {
    if ty.is_ascii_graphic() {
        ty as char
    } else {
        '?'
    }
}

/// A cursor over one frame's body that never reads past it.
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, at: 0 }
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.buf.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    pub fn u8(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }

    pub fn i16(&mut self) -> Option<i16> {
        let b = self.bytes(2)?;
        Some(i16::from_be_bytes([b[0], b[1]]))
    }

    pub fn i32(&mut self) -> Option<i32> {
        let b = self.bytes(4)?;
        Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A NUL-terminated string, without its NUL.
    pub fn cstr(&mut self) -> Option<&'a [u8]> {
        let rest = self.buf.get(self.at..)?;
        let n = rest.iter().position(|&b| b == 0)?;
        self.at += n + 1;
        Some(&rest[..n])
    }

    /// A field of a `DataRow` or a `Bind` parameter: `None` length -1 (NULL).
    pub fn value(&mut self) -> Option<Option<&'a [u8]>> {
        let n = self.i32()?;
        if n < 0 {
            return Some(None);
        }
        self.bytes(n as usize).map(Some)
    }
}

fn malformed(what: &str) -> PgError {
    PgError::Malformed(format!("a malformed {what} message"))
}

fn text(b: &[u8]) -> String {
    lossy(b).into_owned()
}

/// `b` as text, borrowed when it is valid UTF-8 (std's check, which is
/// quick on ASCII); invalid bytes become U+FFFD.
pub(super) fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}

/// The startup packet's parameters (`user`, `database`, ...); `packet` is
/// the whole packet, length included.
pub fn startup(packet: &[u8]) -> Result<Startup, PgError> {
    if packet.len() < 9 || packet.len() > MAX_STARTUP {
        return Err(malformed("startup"));
    }
    let mut b = BytesMut::from(packet);
    match Startup::decode(&mut b, &DecodeContext::default()) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(malformed("startup")),
        Err(e) => Err(PgError::Malformed(format!(
            "an unsupported startup packet: {e}"
        ))),
    }
}

/// The SQL of a simple `Query`, borrowed when it is valid UTF-8 (a query
/// may be as long as the message cap: no copy on the hot path).
pub fn query(body: &[u8]) -> Result<std::borrow::Cow<'_, str>, PgError> {
    let sql = Reader::new(body).cstr().ok_or_else(|| malformed("Query"))?;
    Ok(lossy(sql))
}

/// A `CommandComplete` tag, e.g. `SELECT 3`, `INSERT 0 1`, `COPY 5`,
/// borrowed from the frame (one comes per statement).
pub fn command_tag(body: &[u8]) -> Result<std::borrow::Cow<'_, str>, PgError> {
    let tag = Reader::new(body)
        .cstr()
        .ok_or_else(|| malformed("CommandComplete"))?;
    Ok(lossy(tag))
}

/// `Parse`: the statement's name and its SQL.
pub fn parse(body: &[u8]) -> Result<(String, String), PgError> {
    let mut r = Reader::new(body);
    let name = r.cstr().ok_or_else(|| malformed("Parse"))?;
    let sql = r.cstr().ok_or_else(|| malformed("Parse"))?;
    let n = r.i16().ok_or_else(|| malformed("Parse"))?;
    if n < 0 || r.bytes(n as usize * 4).is_none() {
        return Err(malformed("Parse"));
    }
    Ok((text(name), text(sql)))
}

/// `Bind`: the portal, the statement, and the result columns' format codes.
pub struct Bind {
    pub portal: String,
    pub statement: String,
    pub result_formats: Vec<i16>,
}

pub fn bind(body: &[u8]) -> Result<Bind, PgError> {
    let bad = || malformed("Bind");
    let mut r = Reader::new(body);
    let portal = text(r.cstr().ok_or_else(bad)?);
    let statement = text(r.cstr().ok_or_else(bad)?);
    let nf = r.i16().ok_or_else(bad)?;
    if nf < 0 || r.bytes(nf as usize * 2).is_none() {
        return Err(bad());
    }
    let np = r.i16().ok_or_else(bad)?;
    if np < 0 {
        return Err(bad());
    }
    for _ in 0..np {
        r.value().ok_or_else(bad)?;
    }
    let nr = r.i16().ok_or_else(bad)?;
    if nr < 0 {
        return Err(bad());
    }
    // The bytes first, so the count never sizes an allocation on its own.
    let raw = r.bytes(nr as usize * 2).ok_or_else(bad)?;
    let result_formats = raw
        .chunks_exact(2)
        .map(|c| i16::from_be_bytes([c[0], c[1]]))
        .collect();
    Ok(Bind {
        portal,
        statement,
        result_formats,
    })
}

/// `Describe`, `Close`: the target (`S` statement, `P` portal) and its name.
pub fn target(body: &[u8], what: &str) -> Result<(u8, String), PgError> {
    let mut r = Reader::new(body);
    let t = r.u8().ok_or_else(|| malformed(what))?;
    let name = r.cstr().ok_or_else(|| malformed(what))?;
    if t != b'S' && t != b'P' {
        return Err(malformed(what));
    }
    Ok((t, text(name)))
}

/// `Execute`: the portal's name.
pub fn execute(body: &[u8]) -> Result<String, PgError> {
    let mut r = Reader::new(body);
    let name = r.cstr().ok_or_else(|| malformed("Execute"))?;
    r.i32().ok_or_else(|| malformed("Execute"))?;
    Ok(text(name))
}

/// One column of a `RowDescription`, as far as the proxy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub index: u16,
    pub type_oid: u32,
    pub format: i16,
}

/// The columns of a `RowDescription` whose names pass `is_key`.
pub fn row_description(
    body: &[u8],
    mut is_key: impl FnMut(&[u8]) -> bool,
) -> Result<Vec<Column>, PgError> {
    let bad = || malformed("RowDescription");
    let mut r = Reader::new(body);
    let n = r.i16().ok_or_else(bad)?;
    if n < 0 {
        return Err(bad());
    }
    let mut keys = Vec::new();
    for i in 0..n as u16 {
        let name = r.cstr().ok_or_else(bad)?;
        let _table = r.i32().ok_or_else(bad)?;
        let _attnum = r.i16().ok_or_else(bad)?;
        let type_oid = r.i32().ok_or_else(bad)? as u32;
        let _size = r.i16().ok_or_else(bad)?;
        let _modifier = r.i32().ok_or_else(bad)?;
        let format = r.i16().ok_or_else(bad)?;
        if is_key(name) {
            keys.push(Column {
                index: i,
                type_oid,
                format,
            });
        }
    }
    Ok(keys)
}

/// Calls `found` with each key column's value in a `DataRow` (not for
/// NULLs). Reads no further than the last key column.
pub fn data_row(
    body: &[u8],
    keys: &[Column],
    mut found: impl FnMut(&Column, &[u8]),
) -> Result<(), PgError> {
    let Some(last) = keys.last() else {
        return Ok(());
    };
    let bad = || malformed("DataRow");
    let mut r = Reader::new(body);
    let n = r.i16().ok_or_else(bad)?;
    let mut next = keys.iter().peekable();
    for i in 0..(n.max(0) as u16).min(last.index.saturating_add(1)) {
        let v = r.value().ok_or_else(bad)?;
        if let Some(k) = next.next_if(|k| k.index == i) {
            if let Some(v) = v {
                found(k, v);
            }
        }
    }
    Ok(())
}

/// The SQLSTATE of an `ErrorResponse` (field `C`).
pub fn error_code(body: &[u8]) -> Result<Option<String>, PgError> {
    let mut r = Reader::new(body);
    loop {
        let code = r.u8().ok_or_else(|| malformed("ErrorResponse"))?;
        if code == 0 {
            return Ok(None);
        }
        let value = r.cstr().ok_or_else(|| malformed("ErrorResponse"))?;
        if code == b'C' {
            return Ok(Some(text(value)));
        }
    }
}

/// The transaction status of a `ReadyForQuery`.
pub fn ready_status(body: &[u8]) -> Result<u8, PgError> {
    match body.first() {
        Some(&s @ (b'I' | b'T' | b'E')) => Ok(s),
        _ => Err(malformed("ReadyForQuery")),
    }
}

/// The backend's process id from `BackendKeyData`.
pub fn backend_pid(body: &[u8]) -> Result<i32, PgError> {
    Reader::new(body)
        .i32()
        .ok_or_else(|| malformed("BackendKeyData"))
}

/// A customer id from a key column's value: text as it is; in binary
/// format, int2/int4/int8, text-like types and uuid; other types skipped.
pub fn key_text<'a>(col: &Column, v: &'a [u8]) -> Option<std::borrow::Cow<'a, str>> {
    use std::borrow::Cow;
    if col.format == 0 {
        return Some(lossy(v));
    }
    match (col.type_oid, v.len()) {
        // int2, int4, int8
        (21, 2) => Some(Cow::Owned(i16::from_be_bytes([v[0], v[1]]).to_string())),
        (23, 4) => Some(Cow::Owned(
            i32::from_be_bytes([v[0], v[1], v[2], v[3]]).to_string(),
        )),
        (20, 8) => {
            let mut b = [0u8; 8];
            b.copy_from_slice(v);
            Some(Cow::Owned(i64::from_be_bytes(b).to_string()))
        }
        // text, varchar, bpchar, name
        (25 | 1043 | 1042 | 19, _) => Some(lossy(v)),
        // uuid
        (2950, 16) => {
            let h: String = v.iter().map(|b| format!("{b:02x}")).collect();
            Some(Cow::Owned(format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            )))
        }
        _ => None,
    }
}

/// An `ErrorResponse` the proxy sends itself (`severity` ERROR or FATAL).
pub fn error_response(
    severity: &str,
    code: &str,
    message: &str,
    detail: Option<&str>,
    hint: Option<&str>,
) -> BytesMut {
    let mut fields = vec![
        (b'S', severity.to_owned()),
        (b'V', severity.to_owned()),
        (b'C', code.to_owned()),
        (b'M', message.to_owned()),
    ];
    if let Some(d) = detail {
        fields.push((b'D', d.to_owned()));
    }
    if let Some(h) = hint {
        fields.push((b'H', h.to_owned()));
    }
    let mut out = BytesMut::new();
    // Encoding only fails past pgwire's size limit; the proxy's texts are short.
    if ErrorResponse::new(fields).encode(&mut out).is_err() {
        out.clear();
    }
    out
}

/// A `ReadyForQuery` with the given status byte (`I`, `T` or `E`).
pub fn ready_for_query(status: u8, out: &mut BytesMut) {
    let status = match status {
        b'T' => TransactionStatus::Transaction,
        b'E' => TransactionStatus::Error,
        _ => TransactionStatus::Idle,
    };
    let _ = ReadyForQuery::new(status).encode(out);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A typed message: type byte, length, body.
    pub(crate) fn frame(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![ty];
        v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn frames_are_cut_whole_and_impossible_lengths_refused() {
        let mut buf = frame(b'Q', b"SELECT 1\0");
        buf.extend(frame(b'S', b""));
        let (f, n) = next_frame(&buf, MAX_MESSAGE).unwrap();
        let f = f.unwrap();
        assert_eq!((f.ty, f.body, n), (b'Q', &b"SELECT 1\0"[..], 14));
        assert_eq!(query(f.body).unwrap(), "SELECT 1");
        let (f, _) = next_frame(&buf[14..], MAX_MESSAGE).unwrap();
        assert_eq!(f.unwrap().ty, b'S');
        assert!(next_frame(&buf[..10], MAX_MESSAGE).unwrap().0.is_none());
        assert!(next_frame(&[b'Q', 0, 0, 0, 3], MAX_MESSAGE).is_err());
        assert!(next_frame(&[b'Q', 0xff, 0xff, 0xff, 0xff], MAX_MESSAGE).is_err());
    }

    #[test]
    fn finding_6_a_length_over_the_cap_is_refused_from_the_header_alone() {
        // Only the 5-byte header of a 10 MB Query: refused before any body is read.
        let mut head = vec![b'Q'];
        head.extend_from_slice(&10_000_000i32.to_be_bytes());
        assert!(matches!(
            next_frame(&head, MAX_AUTH_MESSAGE),
            Err(PgError::TooLarge {
                ty: 'Q',
                len: 10_000_000,
                max: MAX_AUTH_MESSAGE
            })
        ));
        // The same header under a cap it fits: wait for the body.
        assert_eq!(next_frame(&head, 64 << 20).unwrap().1, 10_000_001);
    }

    #[test]
    fn key_columns_are_read_from_data_rows_in_text_and_binary() {
        let mut rd = Vec::new();
        rd.extend_from_slice(&2i16.to_be_bytes());
        for (name, oid, fmt) in [("name", 25u32, 0i16), ("customer_id", 23, 1)] {
            rd.extend_from_slice(name.as_bytes());
            rd.push(0);
            rd.extend_from_slice(&0i32.to_be_bytes());
            rd.extend_from_slice(&0i16.to_be_bytes());
            rd.extend_from_slice(&oid.to_be_bytes());
            rd.extend_from_slice(&(-1i16).to_be_bytes());
            rd.extend_from_slice(&(-1i32).to_be_bytes());
            rd.extend_from_slice(&fmt.to_be_bytes());
        }
        let keys = row_description(&rd, |n| n == b"customer_id").unwrap();
        assert_eq!(
            keys,
            vec![Column {
                index: 1,
                type_oid: 23,
                format: 1
            }]
        );
        let mut row = Vec::new();
        row.extend_from_slice(&2i16.to_be_bytes());
        row.extend_from_slice(&3i32.to_be_bytes());
        row.extend_from_slice(b"Ann");
        row.extend_from_slice(&4i32.to_be_bytes());
        row.extend_from_slice(&42i32.to_be_bytes());
        let mut got = Vec::new();
        data_row(&row, &keys, |k, v| {
            got.push(key_text(k, v).unwrap().into_owned())
        })
        .unwrap();
        assert_eq!(got, vec!["42"]);
        // Truncated: an error, not a panic.
        assert!(data_row(&row[..9], &keys, |_, _| {}).is_err());
    }

    #[test]
    fn replies_encode_as_postgres_expects() {
        let e = error_response("ERROR", "42501", "no", None, Some("ask"));
        let (f, _) = next_frame(&e, MAX_MESSAGE).unwrap();
        let f = f.unwrap();
        assert_eq!(f.ty, b'E');
        assert_eq!(error_code(f.body).unwrap().as_deref(), Some("42501"));
        let mut z = BytesMut::new();
        ready_for_query(b'T', &mut z);
        assert_eq!(&z[..], &[b'Z', 0, 0, 0, 5, b'T']);
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics_a_decoder(ty in proptest::prelude::any::<u8>(), body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let keys = [Column { index: 0, type_oid: 23, format: 1 }, Column { index: 3, type_oid: 2950, format: 1 }];
            let _ = query(&body);
            let _ = command_tag(&body);
            let _ = parse(&body);
            let _ = bind(&body);
            let _ = target(&body, "Describe");
            let _ = execute(&body);
            let _ = row_description(&body, |_| true);
            let _ = data_row(&body, &keys, |k, v| { let _ = key_text(k, v); });
            let _ = error_code(&body);
            let _ = ready_status(&body);
            let _ = backend_pid(&body);
            let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
            packet.extend_from_slice(&body);
            let _ = startup(&packet);
            let mut framed = vec![ty];
            framed.extend_from_slice(&body);
            let _ = next_frame(&framed, MAX_MESSAGE);
            let _ = next_frame(&framed, MAX_AUTH_MESSAGE);
        }
    }
}
