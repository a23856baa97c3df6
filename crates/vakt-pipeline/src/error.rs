//! What can go wrong in the act step.

use vakt_ledger::LedgerError;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The ledger refused an access before anything else happened to it:
    /// the caller still holds the whole event and may hand it over again.
    #[error("the ledger did not take the access: {0}")]
    NotRecorded(#[source] LedgerError),
    /// The ledger failed after the access was taken (recording an alert or
    /// a decision, committing).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Directory(#[from] vakt_event::directory::DirectoryError),
    #[error(transparent)]
    Cases(#[from] vakt_enrich::cases::CasesError),
    #[error(transparent)]
    GeoIp(#[from] vakt_enrich::geoip::GeoIpError),
    #[error(transparent)]
    Deliver(#[from] vakt_deliver::DeliverError),
    /// A setting the caller gave that cannot work; the message says what to do.
    #[error("{0}")]
    Config(String),
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PipelineError {
    let context = context.into();
    move |source| PipelineError::Io { context, source }
}
