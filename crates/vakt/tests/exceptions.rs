//! `vakt exceptions` through the binary: add from an alert, see `vakt
//! watch` suppress the next matching alert, list, revoke.

mod support;

use std::path::Path;
use std::process::{Output, Stdio};
use support::{canary_read, vakt, watch_into as watch};

const DIRECTORY: &str = "[[canary]]\ncustomer_id = \"C-900001\"\n\n[[policy]]\nrule = \"canary\"\nmin_severity = \"high\"\naction = \"block\"\nttl = \"1h\"\n";

fn exceptions(tmp: &Path, args: &[&str]) -> Output {
    vakt()
        .arg("exceptions")
        .args(args)
        .arg("--data")
        .arg(tmp.join("data"))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn listed(tmp: &Path, all: bool) -> Vec<serde_json::Value> {
    let mut args = vec!["list", "--format", "json"];
    if all {
        args.push("--all");
    }
    let out = exceptions(tmp, &args);
    assert!(out.status.success());
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn exceptions_are_added_from_an_alert_applied_by_watch_listed_and_revoked() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    std::fs::write(tmp.join("dir.toml"), DIRECTORY).unwrap();
    let first = watch(tmp, "a.jsonl", &canary_read("p3.bot"));
    let alert: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&first.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let alert_id = alert["id"].as_str().unwrap();

    // Bad input says what to fix and adds nothing.
    let out = exceptions(tmp, &["add", "--reason", "r"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least one of actor, rule or destination"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = exceptions(tmp, &["add", "--reason", "r", "--rule", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a rule"));

    let out = exceptions(
        tmp,
        &[
            "add",
            "--reason",
            "load test account",
            "--for",
            "30d",
            "--from-alert",
            alert_id,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "exc-1");
    let now = listed(tmp, false);
    assert_eq!(now.len(), 1);
    assert_eq!(
        (&now[0]["actor"], &now[0]["rule"]),
        (&"p3.bot".into(), &"canary".into())
    );

    // The next run suppresses p3.bot's canary alert, not another account's.
    let second = watch(
        tmp,
        "b.jsonl",
        &format!("{}{}", canary_read("p3.bot"), canary_read("r17.anna")),
    );
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("r17.anna"), "{stdout}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("suppressed by exceptions: 1 alert lines: canary 1"),
        "{stderr}"
    );

    let out = exceptions(tmp, &["delete", "exc-1"]);
    assert!(out.status.success());
    assert!(listed(tmp, false).is_empty());
    let all = listed(tmp, true);
    assert!(all[0]["revoked_at"].is_string(), "{all:?}");
    assert_eq!(exceptions(tmp, &["delete", "exc-7"]).status.code(), Some(1));

    let verify = vakt()
        .args(["ledger", "verify", "--data"])
        .arg(tmp.join("data"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
