//! Line reading with a ceiling, so one huge line cannot exhaust memory.

use std::io::{self, BufRead};

/// Default longest line accepted: 1 MiB.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// One line, or why there is none.
pub enum Line<'a> {
    Text(&'a str),
    /// Longer than the ceiling: skipped up to its end; the first bytes are kept for the report.
    TooLong {
        len: usize,
        head: String,
    },
}

/// Reads `\n`-terminated lines (a trailing `\r` is dropped) into a reused
/// buffer. Invalid UTF-8 is replaced, not rejected: logs are often latin-1
/// in places, and the event is worth more than the accent.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    text: String,
    max: usize,
    /// Lines read so far (1-based number of the last line returned).
    pub line_no: u64,
    /// Bytes read so far.
    pub offset: u64,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::with_capacity(512),
            text: String::new(),
            max,
            line_no: 0,
            offset: 0,
        }
    }

    /// The next line, `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let mut total = 0usize;
        let mut too_long = false;
        loop {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                if total == 0 {
                    return Ok(None);
                }
                break;
            }
            let (take, done) = match memchr(chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            total += take;
            if !too_long {
                if self.buf.len() + take > self.max + 2 {
                    too_long = true;
                    let room = (self.max + 2).saturating_sub(self.buf.len());
                    self.buf.extend_from_slice(&chunk[..room.min(take)]);
                } else {
                    self.buf.extend_from_slice(&chunk[..take]);
                }
            }
            self.inner.consume(take);
            if done {
                break;
            }
        }
        self.line_no += 1;
        self.offset += total as u64;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if too_long || self.buf.len() > self.max {
            let head = String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)]).into_owned();
            return Ok(Some(Line::TooLong { len: total, head }));
        }
        let text = match std::str::from_utf8(&self.buf) {
            Ok(s) => s,
            Err(_) => {
                self.text = String::from_utf8_lossy(&self.buf).into_owned();
                &self.text
            }
        };
        Ok(Some(Line::Text(text)))
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

fn memchr(hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_skipped_whole_and_reading_goes_on() {
        let input = format!(
            "short\r\n{}\nafter\nlast-without-newline",
            "x".repeat(10_000)
        );
        let mut r = LineReader::new(io::BufReader::with_capacity(64, input.as_bytes()), 100);
        assert!(matches!(r.next_line().unwrap(), Some(Line::Text("short"))));
        match r.next_line().unwrap() {
            Some(Line::TooLong { len, head }) => {
                assert_eq!(len, 10_001);
                assert!(head.starts_with("xxx"));
            }
            _ => panic!("expected a too-long line"),
        }
        assert!(matches!(r.next_line().unwrap(), Some(Line::Text("after"))));
        assert!(matches!(
            r.next_line().unwrap(),
            Some(Line::Text("last-without-newline"))
        ));
        assert!(r.next_line().unwrap().is_none());
        assert_eq!(r.line_no, 4);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut r = LineReader::new(&b"caf\xe9\n"[..], 100);
        match r.next_line().unwrap() {
            Some(Line::Text(t)) => assert_eq!(t, "caf\u{fffd}"),
            _ => panic!("expected text"),
        }
    }
}
