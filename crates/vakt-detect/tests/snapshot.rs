//! An engine's snapshot carries a stream on: the simulated month (every
//! incident S1 to S6 among benign traffic) cut in three, each part run
//! by an engine restored from the previous one's snapshot, raises the
//! same alert lines, in the same order, as one engine reading it whole.

use std::collections::BTreeSet;
use std::sync::Arc;
use vakt_detect::{detectors, Engine};
use vakt_enrich::{Cases, Enricher};
use vakt_event::{Alert, Directory, Event, Origin};

struct Month {
    directory: Arc<Directory>,
    cases: std::path::PathBuf,
    events: Vec<Event>,
    _dir: tempfile::TempDir,
}

fn month() -> Month {
    let dir = tempfile::tempdir().unwrap();
    let config = vakt_sim::SimConfig {
        scale: vakt_sim::Scale::Small,
        ..Default::default()
    };
    vakt_sim::simulate(&config, dir.path(), |_| {}).unwrap();
    let text = std::fs::read_to_string(dir.path().join("directory.toml")).unwrap();
    let directory = Arc::new(Directory::from_toml(&text, "directory.toml").unwrap());
    let cases = dir.path().join("cases.csv");
    let source: Arc<str> = Arc::from("events.jsonl");
    let events = std::fs::read_to_string(dir.path().join("events.jsonl"))
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            vakt_ingest::parsers::jsonl::parse_event(l, &Origin::new(source.clone(), i as u64 + 1))
                .unwrap()
        })
        .collect();
    Month {
        directory,
        cases,
        events,
        _dir: dir,
    }
}

fn engine(m: &Month, directory: Arc<Directory>) -> Engine {
    let detectors = detectors::build(&directory).unwrap();
    Engine::new(
        Enricher::new(directory, Some(Cases::load(&m.cases).unwrap()), None),
        detectors,
    )
}

fn lines(alerts: &[Alert]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| serde_json::to_string(a).unwrap())
        .collect()
}

fn run(engine: &mut Engine, events: &[Event], alerts: &mut Vec<Alert>) {
    for e in events {
        engine.process(e, &mut |a| alerts.push(a));
    }
}

#[test]
fn a_stream_cut_in_three_and_carried_by_snapshots_raises_what_one_engine_raises() {
    let m = month();
    let n = m.events.len();
    let cuts = [0, n / 3, 2 * n / 3, n];

    let mut whole = Vec::new();
    let mut one = engine(&m, m.directory.clone());
    run(&mut one, &m.events, &mut whole);
    one.finish(&mut |a| whole.push(a));
    let rules: BTreeSet<&str> = whole.iter().map(|a| a.rule.as_str()).collect();
    assert!(
        rules.len() >= 8,
        "the month should exercise most detectors: {rules:?}"
    );

    let mut carried = Vec::new();
    let mut snapshot: Option<Vec<u8>> = None;
    let mut kept_keys = Vec::new();
    for part in cuts.windows(2) {
        let mut e = engine(&m, m.directory.clone());
        if let Some(s) = &snapshot {
            assert_eq!(e.restore(s).unwrap(), Vec::<&str>::new());
            kept_keys.push(e.tracked());
        }
        run(&mut e, &m.events[part[0]..part[1]], &mut carried);
        if part[1] == n {
            e.finish(&mut |a| carried.push(a));
        } else {
            let s = e.snapshot().unwrap();
            kept_keys.push(e.tracked());
            snapshot = Some(s);
        }
    }
    // Keys held before each snapshot are held after its restore.
    assert_eq!(kept_keys[0], kept_keys[1]);
    assert_eq!(kept_keys[2], kept_keys[3]);
    assert!(kept_keys[0].0 > 1000, "{kept_keys:?}");
    assert_eq!(lines(&carried), lines(&whole));

    // Without the snapshot the same cut raises something else: what the
    // comparison above rests on.
    let mut cold = Vec::new();
    let mut first = engine(&m, m.directory.clone());
    run(&mut first, &m.events[..cuts[1]], &mut cold);
    let mut second = engine(&m, m.directory.clone());
    run(&mut second, &m.events[cuts[1]..], &mut cold);
    second.finish(&mut |a| cold.push(a));
    assert_ne!(lines(&cold), lines(&whole));
}

#[test]
fn a_detector_whose_thresholds_changed_starts_afresh_and_the_rest_carry_on() {
    let m = month();
    let half = m.events.len() / 2;
    let mut e = engine(&m, m.directory.clone());
    run(&mut e, &m.events[..half], &mut Vec::new());
    let s = e.snapshot().unwrap();
    let (keys, actors) = e.tracked();

    let edited = format!(
        "{}\n[detectors.rate]\nfactor = 9\n",
        std::fs::read_to_string(m._dir.path().join("directory.toml")).unwrap()
    );
    let edited = Arc::new(Directory::from_toml(&edited, "directory.toml").unwrap());
    let mut other = engine(&m, edited);
    assert_eq!(other.restore(&s).unwrap(), vec!["rate"]);
    let (other_keys, other_actors) = other.tracked();
    assert_eq!(other_actors, actors);
    assert!(
        other_keys < keys,
        "rate's keys are gone: {other_keys} of {keys}"
    );
    assert!(other_keys > 0);
}

#[test]
fn a_damaged_snapshot_is_refused_and_changes_nothing() {
    let m = month();
    let mut e = engine(&m, m.directory.clone());
    run(&mut e, &m.events[..20_000], &mut Vec::new());
    let s = e.snapshot().unwrap();
    let mut other = engine(&m, m.directory.clone());
    let tenth = m.events.len() / 10;
    run(&mut other, &m.events[..tenth], &mut Vec::new());
    let before = other.tracked();
    for cut in [0, 1, s.len() / 2, s.len() - 1] {
        let e = other.restore(&s[..cut]).unwrap_err();
        assert!(e.to_string().contains("cannot decode"), "{e}");
        assert_eq!(other.tracked(), before, "a failed restore changes nothing");
    }
    let mut flipped = s.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    assert!(other.restore(&flipped).is_err());
    assert_eq!(other.tracked(), before);
    assert_ne!(e.tracked(), before);
    other.restore(&s).unwrap();
    assert_eq!(other.tracked(), e.tracked());
}
