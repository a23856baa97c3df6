pub mod bench;
pub mod canary;
pub mod demo;
pub mod detection;
pub mod eval;
pub mod ledger;
pub mod simulate;
pub mod watch;
