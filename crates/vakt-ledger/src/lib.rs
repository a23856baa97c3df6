//! vakt's access ledger: an append-only record of who read which customer,
//! when, from where and which data, that nobody can quietly edit, and the
//! scope queries a breach notification needs.
//!
//! Entries live in an entry store ([`store`]: the segments engine, built
//! for append and scope); everything else (names, checkpoints, alerts,
//! decisions, tokens, users) in SQLite (embedded, transactional, readable
//! with standard tools years later). Each entry is chained to the previous
//! one with BLAKE3, and every commit is sealed by a checkpoint signed with
//! the data directory's Ed25519 key. Exactly-once ingest comes from the
//! lines of each source the ledger holds, committed in the same SQLite
//! transaction as the store's commit point ([`store`] says how a kill
//! between the two is undone).

pub mod actions;
pub mod activity;
pub mod alert_query;
pub mod alerts;
pub mod anchor;
pub mod audit;
pub mod decisions;
mod encode;
pub mod exceptions;
pub mod exposure;
pub mod hourly;
pub mod incident_workflow;
pub mod incidents;
mod journal;
pub mod keys;
pub mod ledger;
mod lines;
pub mod migrate;
pub mod notice;
pub mod pages;
pub mod report;
pub mod scope;
pub mod sessions;
pub mod shared;
mod shared_alerts;
mod shared_names;
pub mod shared_records;
pub mod snapshots;
pub mod store;
pub mod tokens;
pub mod totp;
pub mod users;
pub mod verify;

pub use keys::DataDir;
pub use ledger::Ledger;
pub use scope::{AccountScope, CustomerAccess, CustomerExposure};
pub use verify::{Problem, VerifyReport};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger database {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Key { path: PathBuf, message: String },
    /// A file of the entry store does not read back as written.
    #[error("{path}: {what}; the ledger's entry store is damaged: run `vakt ledger verify` and restore the data directory from a backup")]
    Damaged { path: PathBuf, what: String },
    #[error("PostgreSQL store, {what}: {source}")]
    Postgres {
        what: String,
        source: postgres::Error,
    },
    /// A shared source (a Kafka partition) was moved on by another node
    /// since this one took it: this node's batch was not committed.
    #[error("{source_name} was recorded up to line {found} by another node since this one took it at line {claimed}; this node's last batch was not committed and it must stop: start it again and it resumes from the shared store")]
    Fenced {
        source_name: String,
        claimed: u64,
        found: u64,
    },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, LedgerError>;
