//! Every detector, one file each, registered in [`registry`].

use crate::detector::Detector;

pub mod account_sharing;
pub mod automation;
pub mod bulk_read;
pub mod canary;
pub mod egress;
pub mod enumeration;
pub mod foreign_network;
pub mod login_failures;
pub mod new_category;
pub mod no_business_context;
pub mod rate;
pub mod volume_peers;

/// All detectors, in the order they see each event. Adding a detector is
/// one file in this folder plus one line here.
pub fn registry() -> Vec<Box<dyn Detector>> {
    vec![
        Box::new(canary::Canary::default()),
        Box::new(login_failures::LoginFailures::default()),
        Box::new(rate::Rate::default()),
        Box::new(automation::Automation::default()),
        Box::new(enumeration::Enumeration::default()),
        Box::new(bulk_read::BulkRead::default()),
        Box::new(egress::Egress::default()),
        Box::new(foreign_network::ForeignNetwork::default()),
        Box::new(account_sharing::AccountSharing::default()),
        Box::new(new_category::NewCategory::default()),
        Box::new(volume_peers::VolumePeers::default()),
        Box::new(no_business_context::NoBusinessContext::default()),
    ]
}
