//! vakt's data model and interchange formats: access and flow events,
//! alerts, and the directory, as documented in EVENTS.md.
//!
//! Everything downstream (ingest, enrichment, detection, the binary)
//! depends on this crate and nothing here depends on them.

pub mod alert;
pub mod directory;
pub mod event;
pub mod routes;
pub mod time;
pub mod tuning;

pub use alert::{Actor, Alert, AlertStatus, Severity};
pub use directory::{AccountKind, Directory, DirectoryError};
pub use event::{AccessEvent, Action, CategorySet, Event, EventKind, FlowEvent, Origin, Outcome};
pub use time::Timestamp;
