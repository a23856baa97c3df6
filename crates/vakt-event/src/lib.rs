//! vakt's data model and interchange formats: access and flow events,
//! alerts, decisions and the directory, as documented in EVENTS.md.
//!
//! Everything downstream (ingest, enrichment, detection, the binary)
//! depends on this crate and nothing here depends on them.

pub mod addr;
pub mod alert;
pub mod decision;
pub mod directory;
pub mod event;
pub mod exception;
pub mod notification;
pub mod page;
pub mod routes;
pub mod stats;
pub mod time;
pub mod tuning;

pub use alert::{Actor, Alert, AlertStatus, Severity};
// `decision::Action` is not re-exported here: `Action` is an event's action.
pub use decision::{Decision, DecisionError, Scope};
pub use directory::{AccountKind, Directory, DirectoryError};
pub use event::{
    AccessEvent, Action, CategorySet, Event, EventKind, FlowEvent, HttpMethod, Origin, Outcome,
};
pub use exception::{Exception, ExceptionError, NewException};
pub use time::Timestamp;
