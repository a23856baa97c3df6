//! `vakt serve`: the HTTP API (ingest, decisions, alerts) over the data
//! directory's ledger, until Ctrl-C or SIGTERM.

use crate::cmd::ledger::DataArgs;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use vakt_event::Directory;

#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Directory file (TOML): organisations, accounts, canaries, and the
    /// `[[policy]]` entries that turn alerts into decisions.
    #[arg(long, short = 'd', value_name = "FILE")]
    pub directory: Option<PathBuf>,
    /// Address and port to listen on; port 0 picks a free one (printed at start).
    #[arg(long, default_value = "127.0.0.1:8480", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Largest POST /v1/events body, in bytes.
    #[arg(long, default_value_t = vakt_server::DEFAULT_BODY_LIMIT, value_name = "BYTES")]
    pub max_body: usize,
    /// Events that may wait for the engine; past it, ingest answers 429.
    #[arg(long, default_value_t = vakt_server::DEFAULT_QUEUE_EVENTS, value_name = "EVENTS")]
    pub queue: usize,
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let directory = match &args.directory {
        Some(p) => Directory::load(p)?,
        None => {
            eprintln!("vakt: note: no --directory given; no canaries, networks or [[policy]] entries, so alerts make no decisions");
            Directory::default()
        }
    };
    let dir = args.data.dir();
    if !dir.exists() {
        eprintln!(
            "vakt: note: creating the data directory {} (ledger and signing key)",
            dir.path.display()
        );
    }
    let mut config = vakt_server::Config::new(dir.clone(), directory);
    config.body_limit = args.max_body;
    config.queue_events = args.queue;
    let report = vakt_server::run(config, args.listen, |addr| {
        eprintln!(
            "vakt serve: listening on http://{addr} (data {}); Ctrl-C stops",
            dir.path.display()
        );
    })
    .with_context(|| format!("vakt serve on {}", args.listen))?;
    eprintln!(
        "vakt serve: stopped; {} journal lines replayed, {} events processed, {} accesses appended to the ledger, {} alert lines, {} decisions made",
        report.replayed, report.events, report.appended, report.alert_lines, report.decisions
    );
    Ok(ExitCode::SUCCESS)
}
