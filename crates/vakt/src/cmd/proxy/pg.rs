//! `vakt proxy pg`: the PostgreSQL wire-protocol proxy in front of the customer database.

use super::EnforceArgs;
use anyhow::Result;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use vakt_proxy::pg::{serve_pg, PgProxyConfig, MAX_MESSAGE};

#[derive(clap::Args, Clone, Debug)]
pub struct PgArgs {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:6432", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// PostgreSQL behind the proxy, as HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub upstream: String,
    /// Longest a throttled statement is held back, in seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub throttle_delay: f64,
    /// Longest message a logged-in client may send, in bytes; a longer one
    /// ends its connection. The proxy holds each message whole, so this is
    /// what one connection can make it hold. PostgreSQL's own limit,
    /// 1073741823, is the most. Before login the cap is PostgreSQL's
    /// 64 KiB for an authentication message.
    #[arg(long, default_value_t = vakt_proxy::pg::DEFAULT_MAX_MESSAGE, value_name = "BYTES")]
    pub max_message: usize,
    /// Most statements one simple query may hold; more are refused (SQLSTATE 54000).
    #[arg(long, default_value_t = vakt_proxy::pg::DEFAULT_MAX_QUERY_STATEMENTS, value_name = "STATEMENTS")]
    pub max_query_statements: usize,
    #[command(flatten)]
    pub enforce: EnforceArgs,
}

pub fn run(args: PgArgs) -> Result<ExitCode> {
    if !args.upstream.contains(':') {
        anyhow::bail!(
            "--upstream `{}` lacks a port; write HOST:PORT, e.g. 127.0.0.1:5432",
            args.upstream
        );
    }
    if !(1024..=MAX_MESSAGE).contains(&args.max_message) {
        anyhow::bail!(
            "--max-message {} is out of range; give 1024 to {MAX_MESSAGE} bytes (PostgreSQL's own limit)",
            args.max_message
        );
    }
    if args.max_query_statements == 0 {
        anyhow::bail!("--max-query-statements 0 would refuse every query; give 1 or more");
    }
    let e = args.enforce.start("pg-proxy")?;
    let mut config =
        PgProxyConfig::new(args.listen, args.upstream.clone()).with_directory(&e.directory);
    config.throttle_delay = Duration::from_secs_f64(args.throttle_delay.max(0.0));
    config.max_message = args.max_message;
    config.max_query_statements = args.max_query_statements;
    if config.key_columns.is_empty() {
        eprintln!("vakt: note: the directory names no [postgres] key_columns; statements are recorded without customer ids");
    }
    e.serve(
        "pg",
        args.enforce.threads,
        args.listen,
        &args.upstream,
        args.enforce.fail_mode,
        |listener, stop, guard, sink| serve_pg(listener, config, guard, sink, stop),
    )
}
