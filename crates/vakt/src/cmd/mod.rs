pub mod audit;
pub mod bench;
pub mod canary;
pub mod demo;
pub mod detection;
pub mod detectors;
pub mod eval;
pub mod exceptions;
pub mod incident;
pub mod ledger;
pub mod pages;
pub mod proxy;
pub mod serve;
pub mod simulate;
pub mod token;
pub mod user;
pub mod watch;

/// The person at the command line (`$USER`) on this host, as the audit
/// trail names them: `cli:NAME`.
pub fn who() -> vakt_ledger::audit::Who {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty());
    vakt_ledger::audit::Who::new(format!("cli:{user}"), "cli", host)
}
