//! The simulator: deterministic, labelled truthfully, with its benign look-alikes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use vakt_event::time::{DAY, HOUR};
use vakt_event::{Action, Directory, Event, Origin};
use vakt_ingest::parsers::jsonl::parse_event;
use vakt_sim::{simulate, Labels, Scale, Scenario, SimConfig};

fn small(seed: u64, out: &Path) -> Labels {
    let cfg = SimConfig {
        scale: Scale::Small,
        seed,
        days: 21,
        ..SimConfig::default()
    };
    simulate(&cfg, out, |_| {}).unwrap().labels.unwrap()
}

fn events(dir: &Path) -> Vec<Event> {
    let origin = Origin::new("events.jsonl".into(), 0);
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| parse_event(l, &origin).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    small(5, a.path());
    small(5, b.path());
    small(6, c.path());
    for f in ["events.jsonl", "directory.toml", "cases.csv", "labels.json"] {
        let x = std::fs::read(a.path().join(f)).unwrap();
        assert_eq!(
            x,
            std::fs::read(b.path().join(f)).unwrap(),
            "{f} differs for one seed"
        );
    }
    assert_ne!(
        std::fs::read(a.path().join("events.jsonl")).unwrap(),
        std::fs::read(c.path().join("events.jsonl")).unwrap()
    );
}

#[test]
fn events_are_ordered_and_valid_and_the_directory_parses() {
    let d = tempfile::tempdir().unwrap();
    small(1, d.path());
    let evs = events(d.path());
    assert!(evs.len() > 50_000, "{}", evs.len());
    assert!(evs.windows(2).all(|w| w[0].timestamp() <= w[1].timestamp()));
    let text = std::fs::read_to_string(d.path().join("directory.toml")).unwrap();
    let dir = Directory::from_toml(&text, "directory.toml").unwrap();
    assert!(!dir.canaries.is_empty() && !dir.services.is_empty() && !dir.egress_allow.is_empty());
    let cases = std::fs::read_to_string(d.path().join("cases.csv")).unwrap();
    assert!(cases.lines().count() > 1000);
}

#[test]
fn labels_match_the_events() {
    let d = tempfile::tempdir().unwrap();
    let labels = small(2, d.path());
    assert_eq!(
        labels.scenarios.iter().map(|s| s.id).collect::<Vec<_>>(),
        Scenario::ALL.to_vec()
    );
    let evs = events(d.path());
    for s in &labels.scenarios {
        assert!(s.start <= s.end && s.events > 0, "{s:?}");
        assert_eq!(
            s.customers == 0,
            matches!(s.id, Scenario::S4 | Scenario::S4b),
            "only the laptops touch no customers: {s:?}"
        );
        let ips: HashSet<&str> = s.actors.ips.iter().map(String::as_str).collect();
        // Events from the incident's own addresses are exactly its events, within its window.
        let from_ips: Vec<&Event> = evs
            .iter()
            .filter(|e| match e {
                Event::Access(a) => {
                    s.actors.users.contains(&a.user)
                        && a.source_ip
                            .is_some_and(|ip| ips.contains(ip.to_string().as_str()))
                }
                Event::Flow(_) => false,
            })
            .collect();
        if matches!(s.id, Scenario::S1 | Scenario::S2 | Scenario::S3) {
            assert_eq!(from_ips.len() as u64, s.events, "{:?}", s.id);
            assert!(from_ips
                .iter()
                .all(|e| e.timestamp() >= s.start && e.timestamp() <= s.end));
            let customers: HashSet<&String> = from_ips
                .iter()
                .flat_map(|e| {
                    if let Event::Access(a) = e {
                        a.customer_ids.iter()
                    } else {
                        [].iter()
                    }
                })
                .collect();
            if s.id != Scenario::S3 {
                assert_eq!(customers.len() as u64, s.customers, "{:?}", s.id);
            }
        }
        let actor_events = evs
            .iter()
            .filter(|e| match e {
                Event::Access(a) => s.actors.users.contains(&a.user),
                Event::Flow(f) => s.actors.hosts.contains(&f.host),
            })
            .filter(|e| e.timestamp() >= s.start && e.timestamp() <= s.end)
            .count() as u64;
        assert!(
            actor_events >= s.events,
            "{:?}: {actor_events} < {}",
            s.id,
            s.events
        );
    }
    assert!(labels.benign.actors > 50 && labels.benign.actor_days > labels.benign.actors);
}

#[test]
fn the_benign_look_alikes_are_there() {
    let d = tempfile::tempdir().unwrap();
    let labels = small(3, d.path());
    let evs = events(d.path());
    let dir = Directory::from_toml(
        &std::fs::read_to_string(d.path().join("directory.toml")).unwrap(),
        "d",
    )
    .unwrap();
    let start = labels.start.0;

    // Declared services stay under their declared rate and categories.
    for svc in &dir.services {
        let name = svc.name.get_ref();
        let mut per_minute: HashMap<i64, u32> = HashMap::new();
        for e in &evs {
            if let Event::Access(a) = e {
                if &a.user == name
                    && labels
                        .scenarios
                        .iter()
                        .all(|s| !s.actors.users.contains(name) || a.timestamp < s.start)
                {
                    *per_minute.entry(a.timestamp.0 / 60_000).or_default() += 1;
                    assert!(
                        a.categories.iter().all(|c| svc.categories.contains(c)),
                        "{name} read {:?}",
                        a.categories
                    );
                }
            }
        }
        assert!(!per_minute.is_empty(), "{name} is silent");
        assert!(
            per_minute.values().all(|&n| n <= svc.max_rate_per_minute),
            "{name} above its declared rate"
        );
    }
    // The batch export runs every night, inside its window, under its maximum.
    let exports: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Access(a) if a.user == "batch-nightly-export" => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(exports.len(), 21);
    assert!(exports
        .iter()
        .all(|a| a.action == Action::Export && a.records >= 50_000 && a.records <= 120_000));
    // The launch day: stores read about three times as much as the same weekday a week apart.
    let mut store_days: BTreeMap<i64, u32> = BTreeMap::new();
    for e in &evs {
        if let Event::Access(a) = e {
            if a.user.starts_with("st") {
                *store_days.entry((a.timestamp.0 - start) / DAY).or_default() += 1;
            }
        }
    }
    let busiest = store_days
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(d, n)| (*d, *n))
        .unwrap();
    let week_before = store_days
        .get(&(busiest.0 - 7))
        .or(store_days.get(&(busiest.0 + 7)))
        .copied()
        .unwrap();
    let ratio = busiest.1 as f64 / week_before as f64;
    assert!((2.3..3.8).contains(&ratio), "launch day ratio {ratio}");
    // New hires: accounts whose first event comes well after the start.
    let mut first: HashMap<&str, i64> = HashMap::new();
    for e in &evs {
        if let Event::Access(a) = e {
            first.entry(&a.user).or_insert(a.timestamp.0);
        }
    }
    assert!(first.values().any(|&t| t - start > 5 * DAY), "no new hire");
    // Support agents read customers of their queue's region; one in twenty
    // cases is a transfer from another region, so some do not.
    let region: HashMap<&str, &str> = dir
        .accounts
        .iter()
        .filter_map(|a| Some((a.name.get_ref().as_str(), a.regions.first()?.as_str())))
        .collect();
    let (mut own, mut other) = (0u32, 0u32);
    for e in &evs {
        if let Event::Access(a) = e {
            if let (Some(r), Some(c)) = (region.get(a.user.as_str()), &a.customer_region) {
                let insider = labels
                    .scenarios
                    .iter()
                    .any(|s| s.actors.users.contains(&a.user));
                if !insider {
                    if c == r {
                        own += 1
                    } else {
                        other += 1
                    }
                }
            }
        }
    }
    let share = other as f64 / (own + other) as f64;
    assert!(
        own > 10_000 && (0.005..0.05).contains(&share),
        "{own} {other}"
    );
    // The backup host sends gigabytes at night to its allowed destination only.
    let backup: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Flow(f) if f.host == "backup-01" => Some(f),
            _ => None,
        })
        .collect();
    assert!(backup
        .iter()
        .all(|f| f.destination_ip.unwrap().to_string() == "203.0.113.10"));
    assert!(backup.iter().map(|f| f.bytes_out).sum::<u64>() > 21 * 2_000_000_000);
    assert!(backup
        .iter()
        .all(|f| (f.timestamp.0 - start) % DAY < 3 * HOUR));
}

#[test]
fn the_web_portal_has_its_look_alikes_and_its_paced_and_rotating_bots() {
    let d = tempfile::tempdir().unwrap();
    let labels = small(4, d.path());
    let evs = events(d.path());
    let web: Vec<&vakt_event::AccessEvent> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Access(a) if a.http_method.is_some() => Some(a),
            _ => None,
        })
        .collect();
    let label = |id| labels.scenarios.iter().find(|s| s.id == id).unwrap();
    let (s1b, s1c) = (label(Scenario::S1b), label(Scenario::S1c));
    let is_record =
        |a: &vakt_event::AccessEvent| a.action.reads_data() && !a.customer_ids.is_empty();
    let is_asset = |a: &vakt_event::AccessEvent| {
        a.url_path
            .as_deref()
            .is_some_and(|p| p.starts_with("/static/") || p.starts_with("/img/"))
    };

    // Office NATs: a shop's staff sign in from one address.
    let mut signed_in: HashMap<String, HashSet<&str>> = HashMap::new();
    for a in &web {
        if a.action == Action::Login {
            signed_in
                .entry(a.source_ip.unwrap().to_string())
                .or_default()
                .insert(&a.user);
        }
    }
    assert!(
        signed_in.values().any(|users| users.len() >= 4),
        "{signed_in:?}"
    );
    // A carrier NAT: one address opens tracking links for many customers over the month.
    let mut tracked: HashMap<&str, HashSet<&str>> = HashMap::new();
    for a in &web {
        if a.url_path
            .as_deref()
            .is_some_and(|p| p.starts_with("/track"))
            && !s1c.actors.users.contains(&a.user)
        {
            tracked
                .entry(&a.user)
                .or_default()
                .extend(a.customer_ids.iter().map(String::as_str));
        }
    }
    assert!(tracked.values().any(|c| c.len() >= 10));
    // The crawler reads robots.txt and never a record; the probe asks every minute.
    let crawler: Vec<_> = web
        .iter()
        .filter(|a| {
            a.user_agent
                .as_deref()
                .is_some_and(|u| u.contains("Googlebot"))
        })
        .collect();
    assert!(crawler
        .iter()
        .any(|a| a.url_path.as_deref() == Some("/robots.txt")));
    assert!(crawler.len() > 1000 && crawler.iter().all(|a| a.customer_ids.is_empty()));
    let probes = web
        .iter()
        .filter(|a| a.url_path.as_deref() == Some("/health"))
        .count();
    assert!(probes as i64 >= 21 * 24 * 60 - 2, "{probes}");

    // Staff reach records from a page and their browsers load the page's assets;
    // the script behind S1b does neither, at a pace within the staff's.
    let mut per_hour: HashMap<(&str, i64), u32> = HashMap::new();
    let (mut staff_referred, mut staff_records) = (0, 0);
    for a in &web {
        if !a.user.starts_with('d') || !is_record(a) {
            continue;
        }
        *per_hour.entry((&a.user, a.timestamp.0 / HOUR)).or_default() += 1;
        let bot = s1b.actors.users.contains(&a.user)
            && a.timestamp >= s1b.start
            && a.timestamp <= s1b.end;
        if bot {
            assert!(a.referrer.is_none(), "{a:?}");
        } else {
            staff_records += 1;
            staff_referred += a.referrer.is_some() as u32;
        }
    }
    assert!(staff_records > 1000 && staff_referred == staff_records);
    assert!(!web.iter().any(|a| s1b.actors.users.contains(&a.user)
        && a.timestamp >= s1b.start
        && a.timestamp <= s1b.end
        && is_asset(a)));
    let mut staff_hours: Vec<u32> = per_hour
        .iter()
        .filter(|((u, h), _)| {
            !s1b.actors.users.iter().any(|b| b == u)
                || *h * HOUR < s1b.start.0
                || *h * HOUR > s1b.end.0
        })
        .map(|(_, n)| *n)
        .collect();
    let mut bot_hours: Vec<u32> = per_hour
        .iter()
        .filter(|((u, h), _)| {
            s1b.actors.users.iter().any(|b| b == u)
                && *h * HOUR >= s1b.start.0
                && *h * HOUR <= s1b.end.0
        })
        .map(|(_, n)| *n)
        .collect();
    staff_hours.sort_unstable();
    bot_hours.sort_unstable();
    let staff_p95 = staff_hours[staff_hours.len() * 95 / 100];
    let bot_median = bot_hours[bot_hours.len() / 2];
    assert!(
        bot_median <= staff_p95,
        "bot {bot_median}/h, staff p95 {staff_p95}/h"
    );

    // S1c: addresses of one /24, each reading under a page a minute.
    let nets: HashSet<String> = s1c
        .actors
        .ips
        .iter()
        .map(|ip| ip.rsplit_once('.').unwrap().0.to_string())
        .collect();
    assert!(
        nets.len() == 1 && s1c.actors.ips.len() >= 5,
        "{:?}",
        s1c.actors
    );
    let mut scraper_hours: HashMap<(&str, i64), u32> = HashMap::new();
    for a in &web {
        if s1c.actors.users.contains(&a.user) {
            assert!(is_record(a) && a.referrer.is_none());
            *scraper_hours
                .entry((&a.user, a.timestamp.0 / HOUR))
                .or_default() += 1;
        }
    }
    assert!(scraper_hours.values().all(|&n| n < 60), "{scraper_hours:?}");
    assert!(s1c.customers >= 1000, "{}", s1c.customers);
}
