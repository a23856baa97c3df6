//! vakt's sources and parsers: where events come from and how raw lines
//! become [`vakt_event::Event`]s.

pub mod parsers;

pub use parsers::{ParseError, Parser, ParserContext};
