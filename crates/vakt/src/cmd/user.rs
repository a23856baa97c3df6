//! `vakt user`: people who sign in to the web console of `vakt serve`.
//! Passwords are read from stdin or the terminal and stored only as
//! argon2 hashes.

use crate::cmd::ledger::DataArgs;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use vakt_ledger::Ledger;

#[derive(clap::Subcommand, Clone, Debug)]
pub enum UserCommand {
    /// Add a user; the password is asked twice on a terminal, or read
    /// from the first line of stdin with --password-stdin.
    Add {
        #[command(flatten)]
        data: DataArgs,
        /// The name to sign in with.
        name: String,
        /// Read the password from the first line of stdin (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
    /// The users and when they were added (never their passwords).
    List {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Delete a user: they can no longer sign in.
    Delete {
        #[command(flatten)]
        data: DataArgs,
        name: String,
    },
}

fn read_password(from_stdin: bool) -> Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        let p = line.trim_end_matches(['\r', '\n']).to_owned();
        if p.is_empty() {
            bail!("no password on stdin; write it as the first line");
        }
        return Ok(p);
    }
    let first = rpassword::prompt_password("password: ").context("cannot read the password")?;
    let again = rpassword::prompt_password("again: ").context("cannot read the password")?;
    if first != again {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

pub fn run(cmd: UserCommand) -> Result<ExitCode> {
    match cmd {
        UserCommand::Add {
            data,
            name,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            let dir = data.dir();
            let mut l = Ledger::open(&dir)
                .with_context(|| format!("cannot open the ledger in {}", dir.path.display()))?;
            l.add_user(&name, &password)?;
            l.close()?;
            eprintln!("vakt user: added {name}; sign in at the address vakt serve prints");
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::List { data, format } => {
            let l = Ledger::open_read(&data.dir())?;
            let list = l.list_users()?;
            if format == "json" {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("{} user(s)", list.len());
                for u in &list {
                    println!("  {:<24} added {}", u.name, u.created);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Delete { data, name } => {
            let mut l = Ledger::open(&data.dir())?;
            let found = l.delete_user(&name)?;
            l.close()?;
            if found {
                println!("deleted {name}");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("vakt: no user {name}; `vakt user list` shows them");
                Ok(ExitCode::from(1))
            }
        }
    }
}
