//! `vakt exceptions`: analysts' false positives as suppressions. Alerts an
//! exception in force matches are recorded and counted but neither
//! enforced nor delivered; `vakt watch --data` and `vakt serve` read them
//! at each alert.

use crate::cmd::ledger::DataArgs;
use anyhow::Result;
use std::process::ExitCode;
use vakt_event::{Exception, Timestamp};
use vakt_ledger::audit::Audit;
use vakt_ledger::Ledger;
use vakt_pipeline::ExceptionRequest;

#[derive(clap::Subcommand, Clone, Debug)]
pub enum ExceptionsCommand {
    /// Exceptions in force now (or --all, also ended and revoked ones).
    List {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        all: bool,
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Suppress alerts matching an actor, a rule, a destination, or any combination.
    Add {
        #[command(flatten)]
        data: DataArgs,
        /// Why these alerts are false positives.
        #[arg(long)]
        reason: String,
        /// A user name, host name or address.
        #[arg(long)]
        actor: Option<String>,
        /// A rule id, e.g. rate (`vakt detectors` lists them).
        #[arg(long)]
        rule: Option<String>,
        /// A flow destination, address or domain.
        #[arg(long)]
        destination: Option<String>,
        /// In force until this time (RFC 3339).
        #[arg(long, conflicts_with = "for_")]
        until: Option<String>,
        /// In force for this long: 12h, 30d.
        #[arg(long = "for", id = "for_")]
        for_: Option<String>,
        /// Take the actor and rule from this recorded alert.
        #[arg(long)]
        from_alert: Option<String>,
    },
    /// Revoke an exception; it stays listed with --all.
    Delete {
        #[command(flatten)]
        data: DataArgs,
        id: String,
    },
}

fn print(e: &Exception) {
    let scope = [
        e.actor.as_deref().map(|a| format!("actor {a}")),
        e.rule.as_deref().map(|r| format!("rule {r}")),
        e.destination.as_deref().map(|d| format!("destination {d}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    let state = match (e.revoked_at, e.until) {
        (Some(t), _) => format!("revoked {t} by {}", e.revoked_by.as_deref().unwrap_or("?")),
        (None, Some(u)) => format!("until {u}"),
        (None, None) => "until revoked".into(),
    };
    println!(
        "  {:<8} {scope}; {state}; by {} at {} ({})",
        e.id, e.created_by, e.created_at, e.reason
    );
}

pub fn run(cmd: ExceptionsCommand) -> Result<ExitCode> {
    match cmd {
        ExceptionsCommand::List { data, all, format } => {
            let l = Ledger::open_read(&data.dir())?;
            let list = l.exceptions((!all).then(Timestamp::now))?;
            if format == "json" {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{} exception(s){}",
                    list.len(),
                    if all { "" } else { " in force" }
                );
                list.iter().for_each(print);
            }
            Ok(ExitCode::SUCCESS)
        }
        ExceptionsCommand::Add {
            data,
            reason,
            actor,
            rule,
            destination,
            until,
            for_,
            from_alert,
        } => {
            let dir = data.dir();
            let mut l = crate::cmd::open_to_change(&dir)?;
            let request = ExceptionRequest {
                actor,
                rule,
                destination,
                until,
                for_,
                from_alert,
                reason,
            };
            let who = crate::cmd::who();
            let e = request.make(&l, &who.name).map_err(anyhow::Error::msg)?;
            let e = l.audited(&who, |l| {
                let e = l.add_exception(&e)?;
                let audit = Audit::exception("exception.add", &e);
                Ok((e, Some(audit)))
            })?;
            l.close()?;
            println!("{}", e.id);
            Ok(ExitCode::SUCCESS)
        }
        ExceptionsCommand::Delete { data, id } => {
            let mut l = crate::cmd::open_to_change(&data.dir())?;
            let who = crate::cmd::who();
            let found = l.audited(&who, |l| {
                let e = l.revoke_exception(&id, &who.name)?;
                let audit = e.as_ref().map(|e| Audit::exception("exception.revoke", e));
                Ok((e, audit))
            })?;
            l.close()?;
            if found.is_some() {
                println!("revoked {id}");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("vakt: no exception {id}; `vakt exceptions list --all` shows them");
                Ok(ExitCode::from(1))
            }
        }
    }
}
