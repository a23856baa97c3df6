//! `vakt incident`: work incidents from the command line, as the console
//! and `PATCH /v1/incidents/{id}` do. Each change is an audit record of
//! the user running the command (`$USER`) on this host, chained with the
//! ledger.

use crate::cmd::ledger::DataArgs;
use anyhow::{bail, Context, Result};
use std::process::ExitCode;
use vakt_event::Timestamp;
use vakt_ledger::incident_workflow::{
    Classification, ExceptionAsk, IncidentChange, IncidentStatus,
};
use vakt_ledger::incidents::Incident;
use vakt_ledger::{Ledger, LedgerError};

#[derive(clap::Subcommand, Clone, Debug)]
pub enum IncidentCommand {
    /// Incidents not yet resolved, most recently active first (--all: every one).
    List {
        #[command(flatten)]
        data: DataArgs,
        /// Every incident, resolved ones too.
        #[arg(long)]
        all: bool,
        /// Only these statuses: new, acknowledged, contained, resolved (comma-separated).
        #[arg(long, value_delimiter = ',')]
        status: Vec<String>,
        /// Only those assigned to this person ("" for the unassigned).
        #[arg(long)]
        owner: Option<String>,
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// One incident: its alerts, status, owner, classification and history.
    Show {
        #[command(flatten)]
        data: DataArgs,
        /// The incident's id (ACTOR/FIRST-ALERT) or any of its alerts' ids.
        id: String,
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Acknowledge: someone is on it.
    Ack {
        #[command(flatten)]
        change: Common,
    },
    /// Contained: the leak is stopped, the work goes on.
    Contain {
        #[command(flatten)]
        change: Common,
    },
    /// Give it an owner ("" unassigns).
    Assign {
        #[command(flatten)]
        change: Common,
        owner: String,
    },
    /// Resolve it with a classification and a reason.
    Close {
        #[command(flatten)]
        change: Common,
        /// true_positive, benign_true_positive or false_positive.
        #[arg(long = "as", value_name = "CLASSIFICATION")]
        classification: String,
        /// Why it is classified so.
        #[arg(long)]
        reason: String,
        /// With false_positive: also suppress the actor for each of the incident's rules.
        #[arg(long)]
        except: bool,
        /// With --except: for this long (30d), instead of until revoked.
        #[arg(long = "for", requires = "except", conflicts_with = "until")]
        for_: Option<String>,
        /// With --except: until this time (RFC 3339).
        #[arg(long, requires = "except")]
        until: Option<String>,
    },
    /// Add a note to its history.
    Note {
        #[command(flatten)]
        change: Common,
        text: String,
    },
}

/// What every change names: the data directory, the incident, a note.
#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    #[command(flatten)]
    data: DataArgs,
    /// The incident's id (ACTOR/FIRST-ALERT) or any of its alerts' ids.
    id: String,
    /// A note recorded with the change.
    #[arg(long)]
    note: Option<String>,
}

fn find(l: &Ledger, id: &str) -> Result<Incident> {
    l.find_incident(id)?.with_context(|| {
        format!("no incident {id} and no alert of that id; `vakt incident list --all` lists them")
    })
}

fn parse_status(s: &str) -> Result<IncidentStatus> {
    IncidentStatus::parse(s).with_context(|| {
        format!("`{s}` is not a status; use new, acknowledged, contained or resolved")
    })
}

pub fn run(cmd: IncidentCommand) -> Result<ExitCode> {
    let (common, change) = match cmd {
        IncidentCommand::List {
            data,
            all,
            status,
            owner,
            format,
        } => return list(&data, all, &status, owner.as_deref(), &format),
        IncidentCommand::Show { data, id, format } => return show(&data, &id, &format),
        IncidentCommand::Ack { change } => (
            change,
            IncidentChange {
                status: Some(IncidentStatus::Acknowledged),
                ..Default::default()
            },
        ),
        IncidentCommand::Contain { change } => (
            change,
            IncidentChange {
                status: Some(IncidentStatus::Contained),
                ..Default::default()
            },
        ),
        IncidentCommand::Assign { change, owner } => (
            change,
            IncidentChange {
                owner: Some(owner),
                ..Default::default()
            },
        ),
        IncidentCommand::Close {
            change,
            classification,
            reason,
            except,
            for_,
            until,
        } => {
            let Some(c) = Classification::parse(&classification) else {
                bail!("--as `{classification}`: use true_positive, benign_true_positive or false_positive");
            };
            (
                change,
                IncidentChange {
                    status: Some(IncidentStatus::Resolved),
                    classification: Some(c),
                    reason: Some(reason),
                    exception: except.then_some(ExceptionAsk { for_, until }),
                    ..Default::default()
                },
            )
        }
        IncidentCommand::Note { change, text } => (
            change,
            IncidentChange {
                note: Some(text),
                ..Default::default()
            },
        ),
    };
    let change = IncidentChange {
        note: change.note.or(common.note),
        ..change
    };
    // The workflow is metadata: written beside a running `vakt serve`
    // as its own changes are, without the entry store's writer lock.
    let dir = common.data.dir();
    let mut l = Ledger::open_read(&dir)
        .with_context(|| format!("cannot open the ledger in {}", dir.path.display()))?;
    let inc = find(&l, &common.id)?;
    let who = crate::cmd::who();
    let exceptions = vakt_pipeline::incident_exceptions(&l, &inc, &change, &who.name)
        .map_err(|e| anyhow::anyhow!("--except: {e}"))?;
    let (workflow, record) =
        match l.update_incident(&inc.id, &inc.workflow, &change, &who, &exceptions) {
            Ok(r) => r,
            Err(LedgerError::Invalid(m)) => bail!("{m}"),
            Err(e) => return Err(e.into()),
        };
    drop(l);
    match record {
        None => println!("{}: nothing changed ({})", inc.id, workflow.status.as_str()),
        Some(r) => {
            println!(
                "{}: {}{} ({})",
                inc.id,
                workflow.status.as_str(),
                workflow
                    .owner
                    .as_deref()
                    .map(|o| format!(", owner {o}"))
                    .unwrap_or_default(),
                r.id
            );
            if let Some(made) = r.details.get("exceptions").and_then(|v| v.as_array()) {
                for e in made {
                    println!("  exception {} added", e.as_str().unwrap_or("?"));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list(
    data: &DataArgs,
    all: bool,
    status: &[String],
    owner: Option<&str>,
    format: &str,
) -> Result<ExitCode> {
    let statuses = status
        .iter()
        .map(|s| parse_status(s))
        .collect::<Result<Vec<_>>>()?;
    let l = Ledger::open_read(&data.dir())?;
    let mut list = l.incidents(Timestamp(i64::MIN), Timestamp(i64::MAX))?;
    list.retain(|i| {
        let s = i.workflow.status;
        (if statuses.is_empty() {
            all || s != IncidentStatus::Resolved
        } else {
            statuses.contains(&s)
        }) && owner.is_none_or(|o| i.workflow.owner.as_deref().unwrap_or("") == o)
    });
    if format == "json" {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} incident(s){}",
        list.len(),
        if all || !statuses.is_empty() {
            ""
        } else {
            " not resolved"
        }
    );
    if !list.is_empty() {
        println!(
            "  {:<12} {:<10} {:<8} {:>9}  {:<24}  ID (rules)",
            "STATUS", "OWNER", "SEVERITY", "CUSTOMERS", "LAST ACTIVE"
        );
    }
    for i in &list {
        println!(
            "  {:<12} {:<10} {:<8} {:>9}  {:<24}  {} ({})",
            i.workflow.status.as_str(),
            i.workflow.owner.as_deref().unwrap_or("-"),
            i.severity.as_str(),
            i.customers,
            i.last.to_string(),
            i.id,
            i.rules.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn show(data: &DataArgs, id: &str, format: &str) -> Result<ExitCode> {
    let l = Ledger::open_read(&data.dir())?;
    let inc = find(&l, id)?;
    let history = l.audit_records(Some(&inc.id), 1_000)?;
    if format == "json" {
        let v = serde_json::json!({ "incident": inc, "history": history });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let w = &inc.workflow;
    println!("incident {}", inc.id);
    println!("  actor          {}", inc.actor);
    if let Some(o) = &inc.organization {
        println!("  organization   {o}");
    }
    println!("  severity       {}", inc.severity.as_str());
    println!("  active         {} to {}", inc.first, inc.last);
    println!(
        "  customers      {} (the most any one alert names)",
        inc.customers
    );
    println!(
        "  rules          {}",
        inc.rules.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    println!("  alerts         {}", inc.alerts.join(", "));
    println!("  status         {}", w.status.as_str());
    println!("  owner          {}", w.owner.as_deref().unwrap_or("-"));
    if let Some(c) = w.classification {
        println!(
            "  classification {} ({})",
            c.as_str(),
            w.reason.as_deref().unwrap_or("")
        );
    }
    println!("history ({})", history.len());
    for r in &history {
        let what = match (r.details.get("changes"), r.details.get("note")) {
            (Some(c), _) => c
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k} {} -> {}", v[0], v[1]))
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default(),
            _ => String::new(),
        };
        let note = r
            .details
            .get("note")
            .and_then(|n| n.as_str())
            .map(|n| format!(" note: {n}"))
            .unwrap_or_default();
        println!(
            "  {} {} via {} from {}: {what}{note}",
            r.at,
            r.who,
            r.via,
            r.source.as_deref().unwrap_or("?")
        );
    }
    Ok(ExitCode::SUCCESS)
}
