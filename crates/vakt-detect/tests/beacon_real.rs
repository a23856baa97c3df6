//! The `beacon` rule on a real, labelled capture: NjRAT calling its command
//! server (CTU-Malware-Capture-Botnet-230-1, tests/data/SOURCE.md), read
//! by the real Zeek parser and run through the engine with every detector.
//! The thresholds are the defaults: nothing here is tuned to this capture.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::sync::{Arc, Mutex};
use vakt_detect::{detectors, Engine};
use vakt_enrich::Enricher;
use vakt_event::{Alert, Directory};
use vakt_ingest::{EventStream, Rejects, StreamConfig};

const FILE: &str = "ctu-botnet-230-1-njrat.conn.log.labeled";

/// (originator, responder) -> labels of its flows, from the label columns.
fn labels(text: &str) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut cols: Vec<&str> = Vec::new();
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(f) = line.strip_prefix("#fields\t") {
            cols = f.split('\t').collect();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let v: Vec<&str> = line.split('\t').collect();
        let at = |name: &str| v[cols.iter().position(|c| *c == name).expect(name)];
        out.entry((at("id.orig_h").into(), at("id.resp_h").into()))
            .or_default()
            .insert(format!("{}/{}", at("label"), at("detailedlabel")));
    }
    out
}

fn run(text: &str) -> Vec<Alert> {
    let dir = Arc::new(Directory::default());
    let detectors = detectors::build(&dir).unwrap();
    let mut engine = Engine::new(Enricher::new(dir, None, None), detectors);
    let mut s = EventStream::from_reader(
        FILE,
        Box::new(Cursor::new(text.as_bytes().to_vec())),
        StreamConfig::default(),
    );
    let rejects = Mutex::new(Rejects::new(None, Box::new(|_| {})).unwrap());
    let mut alerts = Vec::new();
    while let Some(e) = s.next_event(&rejects).unwrap() {
        engine.process(&e, &mut |a| alerts.push(a));
    }
    engine.finish(&mut |a| alerts.push(a));
    assert_eq!(s.stats().format, Some("zeek"));
    assert_eq!(rejects.lock().unwrap().count(), 0, "every line parses");
    alerts
}

#[test]
fn njrat_calling_its_command_server_is_a_beacon_and_no_other_pair_is() {
    let text = std::fs::read_to_string(format!("{}/tests/data/{FILE}", env!("CARGO_MANIFEST_DIR")))
        .unwrap();
    let labels = labels(&text);
    let c2 = ("192.168.1.115".to_string(), "41.108.179.197".to_string());
    assert!(labels[&c2].contains("Malicious/CC"));
    let alerts = run(&text);
    let beacons: BTreeSet<(String, String)> = alerts
        .iter()
        .filter(|a| a.rule == "beacon")
        .map(|a| {
            let host = a.actor.host.clone().unwrap();
            let dest = a.evidence["destination"].as_str().unwrap();
            let ip = dest.rsplit_once(':').map_or(dest, |(ip, _)| ip);
            (host, ip.to_string())
        })
        .collect();
    assert!(beacons.contains(&c2), "{alerts:#?}");
    for pair in &beacons {
        let l = &labels[pair];
        assert!(
            l.iter().all(|l| l.starts_with("Malicious")),
            "{pair:?} labelled {l:?} was alerted as a beacon"
        );
    }
    let first = alerts
        .iter()
        .filter(|a| a.rule == "beacon")
        .min_by_key(|a| a.timestamp)
        .unwrap();
    // The trojan called every ~11.5 s with no bytes; it is found once the
    // pattern covers the default 30 minutes.
    let median = first.evidence["observed_median_interval_s"]
        .as_f64()
        .unwrap();
    assert!((9.0..15.0).contains(&median), "{first:#?}");
    assert_eq!(first.evidence["observed_median_bytes"], 0);
}
