//! `vakt`: breach early warning for customer data.

mod cmd;
mod fmt;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "vakt", version, about = "Breach early warning for customer data", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read access and flow events, write alerts as JSON lines on stdout.
    Watch(cmd::watch::WatchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Watch(args) => cmd::watch::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vakt: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
