//! vakt's inline enforcement points: proxies that sit in front of a
//! customer-lookup API (`http`) or the customer database (`pg`), see every
//! access first-hand, including which customers each answer returned, and
//! enforce decisions while an incident is open.
//!
//! A proxy is a source and an actor at once:
//!
//! ```text
//! client -> proxy -- guard (decisions in force: pass, throttle, step up, block)
//!             |  \-> upstream (API or PostgreSQL)
//!             \-> sink -> engine (enrich, detect) -> ledger, alerts, policies -> decisions
//! ```
//!
//! The [`Guard`] reads decisions from the data directory (so one typed with
//! `vakt decisions add` in another shell applies within a second); the
//! [`EventSink`] feeds the same engine `vakt watch` runs, and spools to disk
//! when the engine falls behind, so no access goes unrecorded.

pub mod guard;
pub mod http;
pub mod pg;
pub mod sink;

pub use guard::{Guard, GuardConfig, Verdict};
pub use sink::{EventSink, FailMode, SinkConfig, SinkStats};

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Ledger(#[from] vakt_ledger::LedgerError),
    #[error(transparent)]
    Pipeline(#[from] vakt_pipeline::PipelineError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
    #[error("alert {0} could not be handed to the engine (it is behind or stopped)")]
    AlertNotQueued(String),
}

pub type Result<T> = std::result::Result<T, ProxyError>;

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProxyError {
    let context = context.into();
    move |source| ProxyError::Io { context, source }
}
