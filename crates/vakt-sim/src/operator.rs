//! The simulated operator's run: hour by hour, the benign day's work and
//! the planned incidents, written in time order, then the labels.

use crate::scenarios::Plans;
use crate::world::World;
use crate::{BenignSummary, Labels, SimConfig, SimError, SimSummary};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use vakt_event::time::HOUR;
use vakt_event::Timestamp;

fn io(path: &Path) -> impl Fn(std::io::Error) -> SimError + '_ {
    move |source| SimError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(crate) fn run(
    cfg: &SimConfig,
    dir: &Path,
    mut progress: impl FnMut(u64),
) -> Result<SimSummary, SimError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let events_path = dir.join("events.jsonl");
    let cases_path = dir.join("cases.csv");
    let mut events = BufWriter::with_capacity(
        1 << 20,
        File::create(&events_path).map_err(io(&events_path))?,
    );
    let mut cases = BufWriter::new(File::create(&cases_path).map_err(io(&cases_path))?);
    writeln!(cases, "case_id,customer_id,account,opened,closed").map_err(io(&cases_path))?;

    let mut world = World::new(cfg.clone(), cases);
    let mut plans = Plans::new(&mut world);
    let dir_path = dir.join("directory.toml");
    std::fs::write(&dir_path, world.directory_toml()).map_err(io(&dir_path))?;

    let hours = cfg.days as i64 * 24;
    for h in 0..hours {
        let hour = world.hour(cfg.start.0 + h * HOUR);
        world.benign_hour(&hour);
        plans.hour(&mut world, &hour);
        world.flush_hour(&mut events).map_err(io(&events_path))?;
        progress(hour.start as u64 + HOUR as u64);
    }
    events.flush().map_err(io(&events_path))?;
    world.cases.flush().map_err(io(&cases_path))?;

    let scenario_labels = plans.labels();
    let scenario_actors: HashSet<&str> = scenario_labels
        .iter()
        .flat_map(|l| l.actors.users.iter().chain(&l.actors.hosts))
        .map(String::as_str)
        .collect();
    let mut benign = BenignSummary::default();
    let days = cfg.days as usize;
    for (i, a) in world.actors.iter().enumerate() {
        if scenario_actors.contains(a.name.as_str()) {
            continue;
        }
        let d = world.active[i * days..(i + 1) * days]
            .iter()
            .filter(|&&x| x)
            .count() as u64;
        if d > 0 {
            benign.actors += 1;
            benign.actor_days += d;
        }
    }
    // Visitors of the web portal who did not sign in: an address a day.
    let scenario_ips: HashSet<&str> = scenario_labels
        .iter()
        .flat_map(|l| l.actors.ips.iter())
        .map(String::as_str)
        .collect();
    let mut visitors: HashSet<std::net::IpAddr> = HashSet::new();
    for day in &world.portal.visitors {
        for ip in day {
            if !scenario_ips.contains(ip.to_string().as_str()) {
                benign.actor_days += 1;
                visitors.insert(*ip);
            }
        }
    }
    benign.actors += visitors.len() as u64;
    let labels = Labels {
        seed: cfg.seed,
        days: cfg.days,
        start: cfg.start,
        end: Timestamp(cfg.start.0 + hours * HOUR),
        scenarios: scenario_labels.clone(),
        benign,
    };
    let labels_path = dir.join("labels.json");
    std::fs::write(
        &labels_path,
        serde_json::to_string_pretty(&labels).expect("labels serialize"),
    )
    .map_err(io(&labels_path))?;
    Ok(SimSummary {
        events: world.access_events + world.flow_events,
        access_events: world.access_events,
        flow_events: world.flow_events,
        cases: world.cases_written,
        labels: Some(labels),
    })
}
