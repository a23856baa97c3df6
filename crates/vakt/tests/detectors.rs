//! `vakt detectors` and detector parameters in the directory, end to end.

use std::process::{Command, Output};

const DIR: &str = r#"
[[organization]]
id = "callcenter"
kind = "employee"

[detectors.rate]
factor = 5.0

[detectors.no_business_context.organization.callcenter]
min_reads = 30
"#;

fn vakt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vakt"))
        .args(args)
        .output()
        .unwrap()
}

fn write(tmp: &tempfile::TempDir, text: &str) -> String {
    let p = tmp.path().join("dir.toml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn the_listing_names_every_rule_with_its_parameters_and_remediation() {
    let out = vakt(&["detectors"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for rule in [
        "canary",
        "login_failures",
        "rate",
        "automation",
        "enumeration",
        "bulk_read",
        "egress",
        "foreign_network",
        "account_sharing",
        "new_category",
        "volume_peers",
        "no_business_context",
    ] {
        assert!(
            text.contains(&format!("\n{rule} (")) || text.starts_with(&format!("{rule} (")),
            "{rule} missing:\n{text}"
        );
    }
    assert!(
        text.contains("rate (S1): an account reading customers far faster"),
        "{text}"
    );
    assert!(text.contains("revoke bulk export rights"), "{text}");
    assert!(text.contains("blind spots: needs cases"), "{text}");
    let factor = text
        .lines()
        .find(|l| l.trim_start().starts_with("factor") && l.contains("busiest hour"))
        .expect("rate's factor");
    assert!(factor.contains(" 4 "), "{factor}");
}

#[test]
fn a_directory_shows_its_values_globally_and_per_organisation_in_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write(&tmp, DIR);
    let out = vakt(&["detectors", "--directory", &dir, "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rule = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    let param = |r: &serde_json::Value, name: &str| {
        r["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    let rate = rule("rate");
    assert_eq!(param(&rate, "factor")["default"], 4.0);
    assert_eq!(param(&rate, "factor")["value"], 5.0);
    assert_eq!(param(&rate, "min_per_hour")["value"], 120);
    assert_eq!(rate["incidents"], serde_json::json!(["S1"]));
    let nbc = rule("no_business_context");
    let min_reads = param(&nbc, "min_reads");
    assert_eq!(min_reads["value"], 10);
    assert_eq!(min_reads["organizations"]["callcenter"], 30);
    assert!(rule("canary")["parameters"].as_array().unwrap().is_empty());
}

#[test]
fn a_bad_parameter_stops_vakt_detectors_with_its_line_and_the_valid_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write(&tmp, &DIR.replace("factor = 5.0", "facter = 5.0"));
    let out = vakt(&["detectors", "--directory", &dir]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("dir.toml:7:1: `rate` has no parameter `facter`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("min_per_hour, factor, own_hours"),
        "{stderr}"
    );
}

#[test]
fn a_bad_parameter_stops_vakt_watch_at_start_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write(&tmp, &DIR.replace("min_reads = 30", "min_reads = 0"));
    let events = tmp.path().join("events.jsonl");
    std::fs::write(&events, "").unwrap();
    let out = vakt(&["watch", "--directory", &dir, &events.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("dir.toml:10:1: `min_reads = 0` does not fit"),
        "{stderr}"
    );
}
