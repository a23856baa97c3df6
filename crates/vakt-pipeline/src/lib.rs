//! The act step of vakt: what happens to an event once it is parsed.
//!
//! Every source feeds one [`Pipeline`]: `vakt watch` over files, the HTTP
//! and PostgreSQL proxies, and `vakt serve` (its journal and its followed
//! files). The pipeline owns the engine (enrich, detect), the ledger, the
//! directory's policies and the alert outlets, and runs the same steps in
//! the same order for all of them:
//!
//! 1. **Ledger write.** An access is appended to the ledger's open batch
//!    under the organisation the directory names. If the ledger refuses it,
//!    [`Pipeline::process`] returns [`PipelineError::NotRecorded`] and
//!    nothing else has happened: no detector saw it, so the caller may keep
//!    the event (the proxies spool it) and hand it over again whole.
//! 2. **Detect.** The engine enriches the event and shows it to every
//!    detector; findings become alert lines (one incident, one id).
//! 3. **Suppress.** An alert line an exception in force matches (an
//!    analyst's false positive: this actor, rule or destination) is
//!    recorded with the exception's id and counted, and stops here.
//! 4. **Decide.** Each alert line and the decisions the `[[policy]]`
//!    entries make of it go into the same open batch as the access that
//!    raised it. A batch that holds a decision is committed at once, so
//!    enforcement points see it within their refresh.
//! 5. **Deliver.** The alert goes to every [`Outlet`] (JSON lines, the
//!    delivery queue, counters), after the ledger has it.
//!
//! Batches are committed when due (50,000 entries or one second) and when
//! the caller says so; a checkpoint signs each one.
//!
//! # Replay and exactly once
//!
//! An event the ledger already holds is a replay: it rebuilds detector
//! state and does nothing else (no ledger write, no alert, no decision, no
//! delivery). Two facts tell a replay:
//! - an access whose (source, line) is already in the ledger (it keeps
//!   the lines of each source it holds): this covers every source, in any
//!   order;
//! - an event at or before the line its source's progress names, which
//!   sources read in line order (the server's journal, followed files)
//!   record after each batch ([`Pipeline::set_progress`]) and read back at
//!   start ([`Pipeline::resume`]): this covers flows too, which the ledger
//!   does not keep.
//!
//! Because an access and the alerts and decisions it led to are committed
//! together, a process killed at any moment and restarted on the same input
//! records every access, alert and decision exactly once. Outlets get each
//! alert at least once: one raised after the last commit is raised, and
//! sent, again.
//!
//! Why a crate of its own: it sits downstream of detection, the ledger and
//! delivery, and upstream of every front end (the CLI, the proxies, the
//! server), which must not depend on each other.

mod error;
mod exceptions;
mod outlet;
pub mod pages;
mod pipeline;
pub mod reload;
pub mod watch;

pub use error::PipelineError;
pub use exceptions::{incident_exceptions, rule_ids, ExceptionRequest};
pub use outlet::{Delivery, JsonLines, Outlet};
pub use pipeline::{Finished, Pipeline, PipelineConfig, PipelineReport, Processed};
