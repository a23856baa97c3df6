//! Every detector, one file each, registered in [`ALL`]: what it is
//! ([`DetectorInfo`]) and how it is built from its [`Settings`].

use crate::detector::{Detector, DetectorInfo};
use crate::params::{self, Settings};
use vakt_event::{Directory, DirectoryError};

pub mod account_sharing;
pub mod automation;
pub mod beacon;
pub mod bulk_read;
pub mod canary;
pub mod distributed_scraping;
pub mod egress;
pub mod enumeration;
pub mod foreign_network;
pub mod login_failures;
pub mod new_category;
pub mod no_business_context;
pub mod rate;
pub mod volume_peers;
pub mod web_behaviour;

type Build = fn(&Settings) -> Box<dyn Detector>;

/// All detectors, in the order they see each event. Adding a detector is
/// one file in this folder plus one line here.
static ALL: [(&DetectorInfo, Build); 15] = [
    (&canary::INFO, canary::build),
    (&login_failures::INFO, login_failures::build),
    (&rate::INFO, rate::build),
    (&automation::INFO, automation::build),
    (&web_behaviour::INFO, web_behaviour::build),
    (&distributed_scraping::INFO, distributed_scraping::build),
    (&enumeration::INFO, enumeration::build),
    (&bulk_read::INFO, bulk_read::build),
    (&egress::INFO, egress::build),
    (&beacon::INFO, beacon::build),
    (&foreign_network::INFO, foreign_network::build),
    (&account_sharing::INFO, account_sharing::build),
    (&new_category::INFO, new_category::build),
    (&volume_peers::INFO, volume_peers::build),
    (&no_business_context::INFO, no_business_context::build),
];

/// Remediations shared by several rules.
const CONTAIN_ACCOUNT: &str =
    "block or throttle the account and require step-up authentication; rotate its credentials";
const REISSUE_ACCOUNT: &str = "close or re-issue the account, bind it to a personal e-ID, restrict it to the organisation's networks";
const SUSPEND_ACCOUNT: &str =
    "suspend the account pending investigation; require a case for every customer read";

/// What every detector is, in registry order.
pub fn infos() -> Vec<&'static DetectorInfo> {
    ALL.iter().map(|(i, _)| *i).collect()
}

/// The detector behind a rule id, if any.
pub fn info(rule: &str) -> Option<&'static DetectorInfo> {
    ALL.iter().map(|(i, _)| *i).find(|i| i.id == rule)
}

/// What to do when a rule fires, for reports.
pub fn remediation(rule: &str) -> Option<&'static str> {
    info(rule).map(|i| i.remediation)
}

/// All detectors with their default parameters.
pub fn registry() -> Vec<Box<dyn Detector>> {
    ALL.iter()
        .map(|(info, build)| build(&Settings::defaults(info)))
        .collect()
}

/// Every detector's parameters: defaults with the directory's
/// `[detectors.RULE]` overrides, checked; a mistake names its file:line
/// and the valid names.
pub fn settings(directory: &Directory) -> Result<Vec<Settings>, DirectoryError> {
    params::settings(&infos(), directory)
}

/// One detector, built afresh with `settings` (a reload that changed its
/// parameters); `None` for a rule this registry does not hold.
pub fn build_one(settings: &Settings) -> Option<Box<dyn Detector>> {
    ALL.iter()
        .find(|(info, _)| info.id == settings.info.id)
        .map(|(_, build)| build(settings))
}

/// All detectors with the directory's parameters: [`registry`] when the
/// directory sets none. Call it at start, so a bad parameter stops the run
/// before any event is read.
pub fn build(directory: &Directory) -> Result<Vec<Box<dyn Detector>>, DirectoryError> {
    Ok(settings(directory)?
        .iter()
        .zip(ALL.iter())
        .map(|(s, (_, build))| build(s))
        .collect())
}
