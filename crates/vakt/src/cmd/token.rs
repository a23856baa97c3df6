//! `vakt token`: API tokens for `vakt serve`. The secret is printed once
//! at creation; the ledger keeps only its hash.

use crate::cmd::ledger::DataArgs;
use anyhow::{bail, Result};
use std::process::ExitCode;
use vakt_ledger::audit::Audit;
use vakt_ledger::tokens::Role;
use vakt_ledger::Ledger;

#[derive(clap::Subcommand, Clone, Debug)]
pub enum TokenCommand {
    /// Make a token and print its secret (shown this once).
    Create {
        #[command(flatten)]
        data: DataArgs,
        /// A name to list and revoke it by, e.g. proxy-1.
        #[arg(long)]
        name: String,
        /// ingest (post events), read (decisions and alerts), analyst (read, and work incidents), admin (analyst, and add or lift decisions).
        #[arg(long, value_parser = ["ingest", "read", "analyst", "admin"])]
        role: String,
    },
    /// The tokens: name, role, when made (never their secrets).
    List {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Revoke a token by name: it stops working at once.
    Revoke {
        #[command(flatten)]
        data: DataArgs,
        name: String,
    },
}

pub fn run(cmd: TokenCommand) -> Result<ExitCode> {
    match cmd {
        TokenCommand::Create { data, name, role } => {
            let Some(role) = Role::parse(&role) else {
                bail!("--role `{role}` is not a role; use ingest, read, analyst or admin");
            };
            let dir = data.dir();
            let mut l = crate::cmd::open_to_change(&dir)?;
            let secret = l.audited(&crate::cmd::who(), |l| {
                let secret = l.create_token(&name, role)?;
                let audit = Audit::new("token.create", &name)
                    .details(serde_json::json!({ "role": role.as_str() }));
                Ok((secret, Some(audit)))
            })?;
            l.close()?;
            eprintln!(
                "vakt token: created {name} ({role}); the secret below is shown this once, keep it in a secret store"
            );
            println!("{secret}");
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::List { data, format } => {
            let l = Ledger::open_read(&data.dir())?;
            let list = l.list_tokens()?;
            if format == "json" {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("{} token(s)", list.len());
                for t in &list {
                    println!("  {:<24} {:<7} created {}", t.name, t.role, t.created);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Revoke { data, name } => {
            let mut l = crate::cmd::open_to_change(&data.dir())?;
            let found = l.audited(&crate::cmd::who(), |l| {
                let found = l.revoke_token(&name)?;
                Ok((found, found.then(|| Audit::new("token.revoke", &name))))
            })?;
            l.close()?;
            if found {
                println!("revoked {name}");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("vakt: no token {name}; `vakt token list` shows them");
                Ok(ExitCode::from(1))
            }
        }
    }
}
