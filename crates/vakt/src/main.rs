//! `vakt`: breach early warning for customer data.

mod cmd;
mod fmt;
mod progress;

use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;

/// mimalloc rather than the system allocator: the proxies and the pipeline
/// allocate an event's strings on one thread and free them on another,
/// which glibc's allocator serves through locked arena bins; mimalloc's
/// per-thread heaps take such frees on a list of their own. Measured with
/// `INSTRUCTIONS=1 bench/pg-proxy.sh` (see the README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "vakt",
    version,
    about = "Breach early warning for customer data",
    long_about = None,
    after_help = "Diagnostics (a webhook that fails, a proxy that cannot accept) are logged to stderr. \
RUST_LOG sets what is logged, e.g. RUST_LOG=info or RUST_LOG=vakt_deliver=debug; the default is warn."
)]
struct Cli {
    /// How diagnostics on stderr are written: `text` for people, `json` (one object a line) for a log collector.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Sends the libraries' `tracing` events to stderr, filtered by `RUST_LOG`
/// (default `warn`). Command summaries are printed by the commands
/// themselves and do not go through here.
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(&v).unwrap_or_else(|e| {
            eprintln!("vakt: RUST_LOG={v:?} is not a log filter ({e}); logging warnings. Write e.g. RUST_LOG=info or RUST_LOG=vakt_deliver=debug");
            EnvFilter::new("warn")
        }),
        _ => EnvFilter::new("warn"),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Read access and flow events, write alerts as JSON lines on stdout.
    Watch(cmd::watch::WatchArgs),
    /// Simulate a month of a mid-size operator with every incident, watch it, show what was found.
    Demo(cmd::demo::DemoArgs),
    /// Write a telecom operator's traffic with labelled incidents (events, directory, cases, labels).
    Simulate(cmd::simulate::SimulateArgs),
    /// Every detector: title, incidents, parameters (with a directory's values), remediation, blind spots.
    Detectors(cmd::detectors::DetectorsArgs),
    /// Score alerts against a simulation's labels: detected, time to detect, false positives.
    Eval(cmd::eval::EvalArgs),
    /// Create a data directory with its signing key.
    Init(cmd::ledger::DataArgs),
    /// The access ledger: `verify` it, `anchor` its newest checkpoint elsewhere.
    #[command(subcommand)]
    Ledger(cmd::ledger::LedgerCommand),
    /// Which customers an account read, or who read a customer, from the ledger.
    Scope(cmd::ledger::ScopeArgs),
    /// Decisions (throttle, step_up, block) from policies or by hand: list, add, delete.
    #[command(subcommand)]
    Decisions(cmd::ledger::DecisionsCommand),
    /// Exceptions (false positives) that suppress matching alerts: list, add, delete.
    #[command(subcommand)]
    Exceptions(cmd::exceptions::ExceptionsCommand),
    /// Incidents: list, show, ack, contain, assign, close (with a classification), note.
    #[command(subcommand)]
    Incident(cmd::incident::IncidentCommand),
    /// The audit trail: who changed what (incidents, decisions, exceptions, tokens, users), when, from where, why.
    Audit(cmd::audit::AuditArgs),
    /// Payment pages (`[[page]]`): `check` their scripts and destinations, `inventory`, `csp`.
    #[command(subcommand)]
    Pages(cmd::pages::PagesCommand),
    /// HTTP API: POST /v1/events, GET/POST/DELETE /v1/decisions, GET /v1/alerts.
    Serve(cmd::serve::ServeArgs),
    /// API tokens for `vakt serve`: create (prints the secret once), list, revoke.
    #[command(subcommand)]
    Token(cmd::token::TokenCommand),
    /// Web console users for `vakt serve`: add (password from stdin), list, role, delete.
    #[command(subcommand)]
    User(cmd::user::UserCommand),
    /// Accounts and organisations ranked by what they reached and what it is worth.
    Exposure(cmd::ledger::ExposureArgs),
    /// Draft the breach notification (GDPR Art. 33) for an alert.
    Report(cmd::ledger::ReportArgs),
    /// Inline enforcement: `http` (reverse proxy for a lookup API), `pg` (PostgreSQL proxy).
    #[command(subcommand)]
    Proxy(cmd::proxy::ProxyCommand),
    /// Accounts: `enroll-totp` for step-up authentication at the proxies.
    #[command(subcommand)]
    Account(cmd::proxy::AccountCommand),
    /// Canary customers: `new` generates fake customers to plant.
    #[command(subcommand)]
    Canary(cmd::canary::CanaryCommand),
    /// Measure: `watch` (events/s, memory per account), `detection` (over seeds),
    /// `ledger` (append rate, scope and verify time), `store` (entry engines side by side),
    /// `serve` (HTTP ingest, API latency), `pgaudit` (a real audit log), and more.
    #[command(subcommand)]
    Bench(cmd::bench::Bench),
}

fn main() -> ExitCode {
    // Like other Unix tools, stop quietly when the reader of our output goes
    // away (`vakt ... | head`) instead of failing on a broken pipe.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let result = match cli.command {
        Command::Watch(args) => cmd::watch::run(args),
        Command::Init(args) => cmd::ledger::init(args),
        Command::Ledger(c) => cmd::ledger::ledger(c),
        Command::Scope(args) => cmd::ledger::scope(args),
        Command::Decisions(c) => cmd::ledger::decisions(c),
        Command::Exceptions(c) => cmd::exceptions::run(c),
        Command::Incident(c) => cmd::incident::run(c),
        Command::Audit(args) => cmd::audit::run(args),
        Command::Pages(c) => cmd::pages::run(c),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Token(c) => cmd::token::run(c),
        Command::User(c) => cmd::user::run(c),
        Command::Exposure(args) => cmd::ledger::exposure(args),
        Command::Report(args) => cmd::ledger::report(args),
        Command::Proxy(c) => cmd::proxy::proxy(c),
        Command::Account(c) => cmd::proxy::account(c),
        Command::Canary(c) => cmd::canary::run(c).map(|()| ExitCode::SUCCESS),
        Command::Demo(args) => cmd::demo::run(args).map(|()| ExitCode::SUCCESS),
        Command::Simulate(args) => cmd::simulate::run(args).map(|()| ExitCode::SUCCESS),
        Command::Eval(args) => cmd::eval::run(args).map(|()| ExitCode::SUCCESS),
        Command::Detectors(args) => cmd::detectors::run(args).map(|()| ExitCode::SUCCESS),
        Command::Bench(b) => cmd::bench::dispatch(b).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vakt: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
