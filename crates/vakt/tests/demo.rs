//! `vakt demo` end to end: a simulated month, every incident found, no false positives.

mod support;

use support::vakt;

#[test]
fn the_demo_finds_every_incident_without_false_positives_and_leaves_its_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = vakt()
        .args(["demo", "--seed", "3", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Incidents found"), "{stdout}");
    assert!(stdout.contains("detected 9/9"), "{stdout}");
    assert!(
        stdout.contains("false-positive actors (medium+): 0 "),
        "{stdout}"
    );
    for f in [
        "events.jsonl",
        "directory.toml",
        "cases.csv",
        "labels.json",
        "alerts.jsonl",
    ] {
        assert!(tmp.path().join(f).exists(), "{f} missing");
    }
    // The next command of the tour works on what the demo left.
    let eval = vakt()
        .args(["eval", "--format", "json", "--labels"])
        .arg(tmp.path().join("labels.json"))
        .arg(tmp.path().join("alerts.jsonl"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(v["scenarios"].as_array().unwrap().len(), 9);
    assert!(v["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["detected"] == true));
}
