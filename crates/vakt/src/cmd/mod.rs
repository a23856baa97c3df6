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
/// Opens the data directory's ledger for a change made by itself (a
/// token, a user, an exception, a decision), beside a `vakt serve` that
/// may be appending to it: each change commits in a sealed transaction of
/// its own (and, on a shared PostgreSQL store, needs no hold on the
/// node's chain). A data directory without a ledger gets one first.
pub fn open_to_change(dir: &vakt_ledger::DataDir) -> anyhow::Result<vakt_ledger::Ledger> {
    use anyhow::Context;
    let open = || format!("cannot open the ledger in {}", dir.path.display());
    if !dir.db_path().exists() {
        vakt_ledger::Ledger::open(dir)
            .and_then(|l| l.close())
            .with_context(open)?;
    }
    vakt_ledger::Ledger::open_read(dir).with_context(open)
}

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
