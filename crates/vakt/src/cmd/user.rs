//! `vakt user`: people who sign in to the web console of `vakt serve`.
//! Passwords are read from stdin or the terminal and stored only as
//! argon2 hashes. Each user has a role (viewer, analyst, admin); a new
//! one is a viewer unless `--role` says otherwise.

use crate::cmd::ledger::DataArgs;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use vakt_ledger::audit::Audit;
use vakt_ledger::users::ConsoleRole;
use vakt_ledger::Ledger;

/// What each role may do in the console, for `--help`.
const ROLES: &str = "viewer: reads alerts, scope counts, decisions, canaries, exposure; \
analyst: also the scope's customers, report drafts, adding and extending decisions; \
admin: also lifting decisions";

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
        /// What the user may do in the console. The default is the least,
        /// viewer: give more only to those who need it.
        #[arg(long, default_value = "viewer", value_parser = ["viewer", "analyst", "admin"], long_help = format!("What the user may do in the console; the default is the least, viewer: give more only to those who need it.\n{ROLES}"))]
        role: String,
    },
    /// The users, their roles and when they were added (never their
    /// passwords).
    List {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Change a user's role; their open sessions have it at their next
    /// request.
    Role {
        #[command(flatten)]
        data: DataArgs,
        name: String,
        #[arg(value_parser = ["viewer", "analyst", "admin"], long_help = ROLES)]
        role: String,
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
            role,
        } => {
            let role: ConsoleRole = role.parse()?;
            let password = read_password(password_stdin)?;
            let dir = data.dir();
            let mut l = crate::cmd::open_to_change(&dir)?;
            l.audited(&crate::cmd::who(), |l| {
                l.add_user_as(&name, &password, role)?;
                let audit = Audit::new("user.add", &name)
                    .details(serde_json::json!({ "role": role.as_str() }));
                Ok(((), Some(audit)))
            })?;
            l.close()?;
            eprintln!("vakt user: added {name} ({role}); sign in at the address vakt serve prints");
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
                    println!("  {:<24} {:<8} added {}", u.name, u.role, u.created);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Role { data, name, role } => {
            let role: ConsoleRole = role.parse()?;
            let mut l = crate::cmd::open_to_change(&data.dir())?;
            let found = l.audited(&crate::cmd::who(), |l| {
                let found = l.set_user_role(&name, role)?;
                let audit = Audit::new("user.role", &name)
                    .details(serde_json::json!({ "role": role.as_str() }));
                Ok((found, found.then_some(audit)))
            })?;
            l.close()?;
            if found {
                println!("{name} is now {role}");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("vakt: no user {name}; `vakt user list` shows them");
                Ok(ExitCode::from(1))
            }
        }
        UserCommand::Delete { data, name } => {
            let mut l = crate::cmd::open_to_change(&data.dir())?;
            let found = l.audited(&crate::cmd::who(), |l| {
                let found = l.delete_user(&name)?;
                Ok((found, found.then(|| Audit::new("user.delete", &name))))
            })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: UserCommand,
    }

    fn parse(args: &[&str]) -> Result<UserCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("user").chain(args.iter().copied())).map(|c| c.cmd)
    }

    fn role_of_add(args: &[&str]) -> String {
        match parse(args).unwrap() {
            UserCommand::Add { role, .. } => role,
            c => panic!("not an add: {c:?}"),
        }
    }

    /// Finding 18: every console user could do everything.
    #[test]
    fn finding_18_a_new_user_is_a_viewer_unless_role_says_otherwise() {
        assert_eq!(role_of_add(&["add", "anna"]), "viewer");
        assert_eq!(
            role_of_add(&["add", "anna", "--role", "analyst"]),
            "analyst"
        );
        assert_eq!(role_of_add(&["add", "anna", "--role", "admin"]), "admin");
        let e = parse(&["add", "anna", "--role", "root"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("viewer, analyst, admin"), "{e}");
    }

    #[test]
    fn finding_18_user_role_changes_a_role_and_list_shows_it() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let dir = vakt_ledger::DataDir { path: data.clone() };
        let mut l = Ledger::open(&dir).unwrap();
        l.add_user("anna", "correct horse").unwrap();
        l.close().unwrap();
        let data = data.to_str().unwrap();
        let code = run(parse(&["role", "anna", "admin", "--data", data]).unwrap()).unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        let roles: Vec<_> = Ledger::open_read(&dir)
            .unwrap()
            .list_users()
            .unwrap()
            .into_iter()
            .map(|u| (u.name, u.role))
            .collect();
        assert_eq!(roles, [("anna".to_owned(), ConsoleRole::Admin)]);
        let code = run(parse(&["role", "nobody", "admin", "--data", data]).unwrap()).unwrap();
        assert_eq!(code, ExitCode::from(1));
        assert!(parse(&["role", "anna", "root", "--data", data]).is_err());
    }
}
