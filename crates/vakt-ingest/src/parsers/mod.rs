//! Parsers: one module per input format, each behind [`Parser`], all
//! registered in [`REGISTRY`]. Adding a format is one new module plus one
//! line there.

use std::sync::Arc;
use vakt_event::{Directory, Event, Origin};

pub mod jsonl;
pub mod nginx;
pub mod pgaudit;
pub mod zeek;

/// Turns lines of one input into events.
///
/// A parser sees the lines of one input in order and may keep state
/// across them (a Zeek `#fields` header, a statement continued on the next
/// line). It never panics: a line it cannot read is an `Err` that the
/// caller counts, reports and keeps in the dead-letter file.
pub trait Parser: Send {
    /// Reads one line (without its line break). Lines that carry no event
    /// (headers, comments, log lines of no interest) push nothing.
    fn parse_line(
        &mut self,
        line: &str,
        origin: &Origin,
        out: &mut Vec<Event>,
    ) -> Result<(), ParseError>;

    /// Called at the end of the input, for parsers that hold a pending event.
    fn finish(&mut self, _out: &mut Vec<Event>) -> Result<(), ParseError> {
        Ok(())
    }
}

/// Why a line was rejected, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub fn new(msg: impl Into<String>) -> Self {
        ParseError(msg.into())
    }
}

/// What parsers may consult: the directory's mappings for web and
/// database logs.
#[derive(Clone, Default)]
pub struct ParserContext {
    pub directory: Arc<Directory>,
}

/// One registered format.
pub struct Format {
    /// The name used by `--format`.
    pub name: &'static str,
    pub description: &'static str,
    /// Whether a first non-empty line looks like this format (for `--format auto`).
    pub sniff: fn(&str) -> bool,
    pub build: fn(&ParserContext) -> Box<dyn Parser>,
}

/// Every format vakt reads. Order matters for sniffing: the first match wins.
#[rustfmt::skip]
pub static REGISTRY: &[Format] = &[
    zeek::FORMAT,
    pgaudit::FORMAT,
    nginx::JSON_FORMAT,
    jsonl::FORMAT,
    nginx::FORMAT,
];

/// Looks a format up by its `--format` name.
pub fn format(name: &str) -> Option<&'static Format> {
    REGISTRY.iter().find(|f| f.name == name)
}

/// Picks the format of an input from its first non-empty line.
pub fn sniff(first_line: &str) -> Option<&'static Format> {
    REGISTRY.iter().find(|f| (f.sniff)(first_line))
}

/// The names of all formats, for help and error messages.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|f| f.name).collect()
}
