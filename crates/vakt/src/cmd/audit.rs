//! `vakt audit`: the audit trail of human actions, as `GET /v1/audit`
//! and the console's audit page show it.

use crate::cmd::ledger::DataArgs;
use anyhow::{Context, Result};
use std::process::ExitCode;
use vakt_event::Timestamp;
use vakt_ledger::audit::AuditQuery;
use vakt_ledger::Ledger;

#[derive(clap::Args, Clone, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Only records about this incident, decision, exception, token or user.
    #[arg(long)]
    subject: Option<String>,
    /// Only this action (decision.add) or family (decision).
    #[arg(long)]
    action: Option<String>,
    /// Only this person: ana, "token ops", cli:root.
    #[arg(long)]
    who: Option<String>,
    /// Only since this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// At most this many of the newest.
    #[arg(long, default_value_t = 1_000)]
    limit: usize,
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

pub fn run(args: AuditArgs) -> Result<ExitCode> {
    let since = args
        .since
        .as_deref()
        .map(Timestamp::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    let dir = args.data.dir();
    let l = Ledger::open_read(&dir)
        .with_context(|| format!("cannot open the ledger in {}", dir.path.display()))?;
    let records = l.audit_query(&AuditQuery {
        subject: args.subject,
        action: args.action,
        who: args.who,
        since,
        limit: args.limit,
    })?;
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&records)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} record(s)", records.len());
    for r in &records {
        println!(
            "  {} {:<8} {} via {} from {}: {} {}{}",
            r.at,
            r.id,
            r.who,
            r.via,
            r.source.as_deref().unwrap_or("?"),
            r.action,
            r.subject.as_deref().unwrap_or(""),
            r.reason
                .as_deref()
                .map(|why| format!(" ({why})"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
