//! vakt's detectors and the engine that runs them.
//!
//! Data flows `event -> enrich -> every detector -> findings -> incidents
//! -> alerts`. Each detector lives in its own file under `detectors/`,
//! implements [`Detector`], declares its [`DetectorInfo`] (title,
//! remediation, blind spots, parameters), and is registered once in
//! [`detectors::registry`]. [`detectors::build`] builds them with the
//! directory's parameter overrides.

pub mod detector;
pub mod detectors;
pub mod engine;
pub mod incidents;
pub mod params;
pub mod state;

pub use detector::{Detector, DetectorInfo, Finding};
pub use engine::{Engine, EngineStats};

/// Out-of-order input tolerated, in milliseconds of event time: events up
/// to this much older than the newest seen are handled as if on time.
pub const LATENESS: i64 = 5 * vakt_event::time::MINUTE;

#[cfg(test)]
pub(crate) mod testing;
