//! Whole byte streams through the decoders, as each pump meets them: the
//! entry points of the `pg_frontend` and `pg_backend` fuzz targets and of
//! the property tests below. Any input must give a count or an error,
//! never a panic, and nothing is held for an announced length.

use super::wire::{self, Column};
use super::{sql, PgError, DEFAULT_MAX_MESSAGE, DEFAULT_MAX_QUERY_STATEMENTS};

/// Key columns kept from one `RowDescription`, as a bound on the test harness.
const MAX_KEYS: usize = 64;

/// Decodes `bytes` as a client's stream: a startup packet when the input
/// starts with one, then typed messages, each decoded as the client pump
/// decodes it (SQL scanned with the default statement cap), until the
/// bytes run out. The messages decoded; `Err` for a frame the pump would
/// refuse (an impossible length or one over the default cap).
pub fn decode_frontend(bytes: &[u8]) -> Result<usize, PgError> {
    let mut rest = bytes;
    if let Some(head) = bytes.first_chunk::<4>() {
        if let Ok(len) = wire::startup_len(*head) {
            if let Some(packet) = bytes.get(..len) {
                let _ = wire::startup(packet);
                rest = &bytes[len..];
            }
        }
    }
    let mut n = 0;
    while let (Some(f), len) = wire::next_frame(rest, DEFAULT_MAX_MESSAGE)? {
        match f.ty {
            b'Q' => {
                if let Ok(q) = wire::query(f.body) {
                    let _ = sql::scan_at_most(&q, DEFAULT_MAX_QUERY_STATEMENTS);
                }
            }
            b'P' => {
                if let Ok((_, q)) = wire::parse(f.body) {
                    let _ = sql::scan_at_most(&q, DEFAULT_MAX_QUERY_STATEMENTS);
                }
            }
            b'B' => {
                let _ = wire::bind(f.body);
            }
            b'D' => {
                let _ = wire::target(f.body, "Describe");
            }
            b'C' => {
                let _ = wire::target(f.body, "Close");
            }
            b'E' => {
                let _ = wire::execute(f.body);
            }
            _ => {}
        }
        n += 1;
        rest = &rest[len..];
    }
    Ok(n)
}

/// Decodes `bytes` as a server's stream of typed messages, each decoded
/// as the server pump decodes it: every column of a `RowDescription`
/// counts as a key column (at most 64), and the `DataRow`s after it are
/// read for them. The messages decoded; `Err` for an impossible length.
pub fn decode_backend(bytes: &[u8]) -> Result<usize, PgError> {
    let mut rest = bytes;
    let mut keys: Vec<Column> = Vec::new();
    let mut n = 0;
    while let (Some(f), len) = wire::next_frame(rest, wire::MAX_MESSAGE)? {
        match f.ty {
            b'T' => {
                let mut seen = 0;
                if let Ok(k) = wire::row_description(f.body, |_| {
                    seen += 1;
                    seen <= MAX_KEYS
                }) {
                    keys = k;
                }
            }
            b'D' => {
                let _ = wire::data_row(f.body, &keys, |k, v| {
                    let _ = wire::key_text(k, v);
                });
            }
            b'C' => {
                let _ = wire::command_tag(f.body);
            }
            b'E' | b'N' => {
                let _ = wire::error_code(f.body);
            }
            b'Z' => {
                let _ = wire::ready_status(f.body);
            }
            b'K' => {
                let _ = wire::backend_pid(f.body);
            }
            _ => {}
        }
        n += 1;
        rest = &rest[len..];
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::pg::wire::tests::frame;

    /// Well-framed messages of the types the pumps decode, with any body:
    /// the near-misses that reach the decoders, not only the framing.
    fn framed(types: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            (
                proptest::sample::select(types),
                proptest::collection::vec(any::<u8>(), 0..48),
            ),
            0..8,
        )
        .prop_map(|ms| ms.iter().flat_map(|(t, b)| frame(*t, b)).collect())
    }

    #[test]
    fn a_stream_is_decoded_message_by_message() {
        let mut s = frame(b'Q', b"SELECT 1; SELECT 2\0");
        s.extend(frame(b'S', b""));
        assert_eq!(decode_frontend(&s).unwrap(), 2);
        let mut s = frame(b'Z', b"I");
        s.extend(frame(b'C', b"SELECT 1\0"));
        assert_eq!(decode_backend(&s).unwrap(), 2);
        // Only a header announcing more than the cap: refused, nothing waited for.
        let mut s = vec![b'Q'];
        s.extend_from_slice(&(DEFAULT_MAX_MESSAGE as i32 + 1).to_be_bytes());
        assert!(matches!(decode_frontend(&s), Err(PgError::TooLarge { .. })));
    }

    proptest! {
        #[test]
        fn no_bytes_panic_the_frontend_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_frontend(&bytes);
        }

        #[test]
        fn no_bytes_panic_the_backend_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_backend(&bytes);
        }

        #[test]
        fn no_message_body_panics_the_frontend_decoders(s in framed(b"QPBDCESHXpdcf")) {
            prop_assert!(decode_frontend(&s).is_ok());
        }

        #[test]
        fn no_message_body_panics_the_backend_decoders(s in framed(b"TDCENZKIsnHGd123")) {
            prop_assert!(decode_backend(&s).is_ok());
        }

        #[test]
        fn no_startup_packet_panics_the_decoder(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut packet = ((body.len() + 8) as i32).to_be_bytes().to_vec();
            packet.extend_from_slice(&196608i32.to_be_bytes());
            packet.extend_from_slice(&body);
            let _ = decode_frontend(&packet);
        }
    }
}
