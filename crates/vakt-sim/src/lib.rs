//! A simulated telecom operator: customer-data accesses and network flows
//! of its stores, call centre, resellers, partners, services, batch jobs,
//! DBAs, hosts and web portal, with the incidents S1 to S6 of PRODUCT.md
//! (and S4b, the beacon before S4's theft; S1b and S1c, S1's bot paced and
//! spread out on the web) injected and labelled, so that detection can be
//! measured and demonstrated.
//!
//! Output is deterministic per seed and streams hour by hour, so memory
//! stays constant whatever the size.

pub mod bench;
mod benign;
pub mod eval;
mod operator;
mod rng;
mod scenarios;
mod web;
mod world;

pub use bench::{bench_directory, bench_events};
pub use eval::{evaluate, Evaluation};

use serde::{Deserialize, Serialize};
use std::path::Path;
use vakt_event::Timestamp;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Scale {
    /// About 150k events a month: tests.
    Small,
    /// About 1.5M events a month: the demo.
    Medium,
    /// About 100M events a month, streamed.
    Large,
}

/// The incidents of PRODUCT.md.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scenario {
    S1,
    S2,
    S3,
    S4,
    S5,
    S6,
    /// A compromised laptop calling its command server (S4's first stage).
    S4b,
    /// S1 paced: a script behind several dealer accounts on the web portal,
    /// at a person's pace, from the shop's own address.
    S1b,
    /// S1 spread out: a scraper rotating addresses of one network over the
    /// portal's order-tracking page, each address under every rate.
    S1c,
}

impl Scenario {
    pub const ALL: [Scenario; 9] = [
        Scenario::S1,
        Scenario::S2,
        Scenario::S3,
        Scenario::S4,
        Scenario::S5,
        Scenario::S6,
        Scenario::S4b,
        Scenario::S1b,
        Scenario::S1c,
    ];

    pub fn parse(s: &str) -> Option<Scenario> {
        Self::ALL
            .into_iter()
            .find(|x| x.id().eq_ignore_ascii_case(s))
    }

    pub fn id(self) -> &'static str {
        match self {
            Scenario::S1 => "S1",
            Scenario::S2 => "S2",
            Scenario::S3 => "S3",
            Scenario::S4 => "S4",
            Scenario::S5 => "S5",
            Scenario::S6 => "S6",
            Scenario::S4b => "S4b",
            Scenario::S1b => "S1b",
            Scenario::S1c => "S1c",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Scenario::S1 => "bot through a partner account from outside networks",
            Scenario::S2 => "two reseller accounts used from other networks at human pace",
            Scenario::S3 => "bulk export at night from a new address",
            Scenario::S4 => "laptop uploading to relays in several countries at night",
            Scenario::S5 => "insider reading customers without a case, blended in",
            Scenario::S6 => "vendor integration reading payment data, new destination",
            Scenario::S4b => "laptop beaconing to a new command server every minute",
            Scenario::S1b => "script behind three dealer accounts at a person's pace",
            Scenario::S1c => "scraper rotating addresses of one network, each under every rate",
        }
    }
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub days: u32,
    pub seed: u64,
    pub scale: Scale,
    pub scenarios: Vec<Scenario>,
    /// Midnight UTC of the first day; the operator works in Europe/Stockholm.
    pub start: Timestamp,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            days: 30,
            seed: 1,
            scale: Scale::Medium,
            scenarios: Scenario::ALL.to_vec(),
            start: Timestamp::parse("2026-11-02T00:00:00Z").expect("constant date"),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelActors {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub ips: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioLabel {
    pub id: Scenario,
    pub title: String,
    pub actors: LabelActors,
    pub start: Timestamp,
    pub end: Timestamp,
    /// Distinct customers the incident's events touched (records, for a bulk export).
    pub customers: u64,
    pub events: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BenignSummary {
    /// Benign accounts and hosts with at least one event.
    pub actors: u64,
    /// Sum over benign actors of the days they were active.
    pub actor_days: u64,
}

/// `labels.json`: what was injected, for `vakt eval`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    pub seed: u64,
    pub days: u32,
    pub start: Timestamp,
    pub end: Timestamp,
    pub scenarios: Vec<ScenarioLabel>,
    pub benign: BenignSummary,
}

#[derive(Clone, Debug, Default)]
pub struct SimSummary {
    pub events: u64,
    pub access_events: u64,
    pub flow_events: u64,
    pub cases: u64,
    pub labels: Option<Labels>,
}

/// Writes `events.jsonl`, `directory.toml`, `cases.csv` and `labels.json`
/// into `out_dir`. `progress` receives the event time reached (ms).
pub fn simulate(
    cfg: &SimConfig,
    out_dir: &Path,
    progress: impl FnMut(u64),
) -> Result<SimSummary, SimError> {
    operator::run(cfg, out_dir, progress)
}
