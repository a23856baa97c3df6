//! `vakt detectors`: every rule with its title, incidents, parameters
//! (defaults, and the values a directory sets), remediation and blind spots.

use anyhow::Result;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use vakt_detect::params::{Kind, Settings};
use vakt_event::Directory;

#[derive(clap::Args, Clone, Debug)]
pub struct DetectorsArgs {
    /// Directory file (TOML): show the parameter values its `[detectors.RULE]`
    /// tables set, after checking them.
    #[arg(long, value_name = "FILE")]
    pub directory: Option<PathBuf>,
    /// text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

pub fn run(args: DetectorsArgs) -> Result<()> {
    let directory = match &args.directory {
        Some(p) => Some(Directory::load(p)?),
        None => None,
    };
    let all =
        vakt_detect::detectors::settings(directory.as_ref().unwrap_or(&Directory::default()))?;
    if args.format == "json" {
        let list: Vec<Value> = all
            .iter()
            .map(|s| to_json(s, directory.is_some()))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        print!("{}", render(&all, directory.is_some()));
    }
    Ok(())
}

/// A parameter value as its kind reads: counts without a decimal point.
fn number(kind: Kind, v: f64) -> Value {
    match kind {
        Kind::Count => json!(v as u64),
        Kind::Number | Kind::Share => json!(v),
    }
}

fn to_json(s: &Settings, effective: bool) -> Value {
    let info = s.info;
    let params: Vec<Value> = s
        .global
        .iter()
        .enumerate()
        .map(|(i, (p, v))| {
            let mut o = Map::new();
            o.insert("name".into(), json!(p.name));
            o.insert("default".into(), number(p.kind, p.default));
            if effective {
                o.insert("value".into(), number(p.kind, v));
                let orgs: Map<String, Value> = s
                    .organizations
                    .iter()
                    .filter_map(|(org, vals)| {
                        let (_, ov) = vals.iter().nth(i)?;
                        (ov != v).then(|| (org.clone(), number(p.kind, ov)))
                    })
                    .collect();
                if !orgs.is_empty() {
                    o.insert("organizations".into(), Value::Object(orgs));
                }
            }
            o.insert("takes".into(), json!(p.kind.as_str()));
            o.insert("meaning".into(), json!(p.meaning));
            Value::Object(o)
        })
        .collect();
    json!({
        "id": info.id,
        "title": info.title,
        "incidents": info.incidents,
        "parameters": params,
        "per_organization": info.per_organization,
        "remediation": info.remediation,
        "blind_spots": info.blind_spots,
    })
}

fn render(all: &[Settings], effective: bool) -> String {
    let mut out = String::new();
    for s in all {
        let info = s.info;
        out += &format!(
            "{} ({}): {}\n",
            info.id,
            info.incidents.join(", "),
            info.title
        );
        if info.params.is_empty() {
            out += "  parameters: none\n";
        } else {
            out += &format!(
                "  parameters{}:\n",
                if info.per_organization {
                    " (also per organisation)"
                } else {
                    ""
                }
            );
            let width = info.params.iter().map(|p| p.name.len()).max().unwrap_or(0);
            for (i, (p, v)) in s.global.iter().enumerate() {
                let value = if effective && v != p.default {
                    format!("{v} (default {})", p.default)
                } else {
                    format!("{}", p.default)
                };
                out += &format!("    {:width$}  {value:>9}  {}\n", p.name, p.meaning);
                for (org, vals) in &s.organizations {
                    if let Some((_, ov)) = vals.iter().nth(i).filter(|(_, ov)| *ov != v) {
                        out += &format!("    {:width$}  {ov:>9}  for organisation {org}\n", "");
                    }
                }
            }
        }
        out += &format!("  when it fires: {}\n", info.remediation);
        out += &format!("  blind spots: {}\n\n", info.blind_spots);
    }
    out += "Set parameters in the directory: [detectors.RULE] name = value, or\n[detectors.RULE.organization.ID] for one organisation (docs/EVENTS.md section 4).\n";
    out
}
