//! vakt's sources and parsers: where events come from and how raw lines
//! become [`vakt_event::Event`]s, in event-time order.
//!
//! `source` (files, stdin, gzip, follow) -> `lines` (bounded line reader)
//! -> `parsers` (one module per format) -> `stream` (reorder, merge).
//! Lines that cannot be read go to `rejects`. `csp` reads browsers' CSP
//! reports, which arrive as HTTP bodies rather than lines. `kafka` (feature
//! `kafka`) reads the same formats from a Kafka consumer group.

pub mod csp;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod lines;
pub mod parsers;
pub mod rejects;
pub mod source;
pub mod stream;

pub use parsers::{ParseError, Parser, ParserContext};
pub use rejects::Rejects;
pub use source::{FollowControl, Input};
pub use stream::{EventStream, InputStats, Merge, StreamConfig};
