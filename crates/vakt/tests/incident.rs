//! `vakt incident` through the binary: an incident found by `vakt watch`
//! is acknowledged, assigned, noted and closed as a false positive with
//! an exception; the same traffic then raises nothing, the history names
//! who did what, and the ledger verifies.

mod support;

use std::path::Path;
use std::process::{Output, Stdio};
use support::{canary_read, vakt, watch_into as watch};

const DIRECTORY: &str = "[[canary]]\ncustomer_id = \"C-900001\"\n";

fn incident(tmp: &Path, args: &[&str]) -> Output {
    vakt()
        .arg("incident")
        .args(args)
        .arg("--data")
        .arg(tmp.join("data"))
        .env("USER", "ana")
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).unwrap()
}

#[test]
fn an_incident_is_worked_from_the_command_line_and_closed_with_an_exception() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    std::fs::write(tmp.join("dir.toml"), DIRECTORY).unwrap();
    let first = watch(
        tmp,
        "a.jsonl",
        &format!("{}{}", canary_read("p3.bot"), canary_read("r17.anna")),
    );
    assert_eq!(String::from_utf8_lossy(&first.stdout).lines().count(), 2);

    let open = json(&incident(tmp, &["list", "--format", "json"]));
    assert_eq!(open.as_array().unwrap().len(), 2);
    let bot = open
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["actor"] == "p3.bot")
        .unwrap();
    let id = bot["id"].as_str().unwrap().to_owned();
    let alert = bot["alerts"][0].as_str().unwrap().to_owned();
    assert_eq!(bot["status"], "new");

    // By the incident's id, or by its alert's.
    assert!(ok(&incident(tmp, &["ack", &alert])).contains("acknowledged"));
    ok(&incident(tmp, &["assign", &id, "ana", "--note", "mine"]));
    ok(&incident(
        tmp,
        &["note", &id, "the bot belongs to the load-test team"],
    ));
    let refused = incident(tmp, &["close", &id, "--as", "maybe", "--reason", "r"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("use true_positive"));
    let refused = incident(
        tmp,
        &[
            "close",
            &id,
            "--as",
            "true_positive",
            "--reason",
            "r",
            "--except",
        ],
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("false_positive"));
    let closed = ok(&incident(
        tmp,
        &[
            "close",
            &id,
            "--as",
            "false_positive",
            "--reason",
            "load test",
            "--except",
            "--for",
            "30d",
        ],
    ));
    assert!(closed.contains("exception exc-1 added"), "{closed}");

    // Only r17.anna's incident is still open; p3.bot's history says who did what.
    let text = ok(&incident(tmp, &["list"]));
    assert!(text.starts_with("1 incident(s) not resolved"), "{text}");
    assert!(
        text.contains("r17.anna") && !text.contains("p3.bot"),
        "{text}"
    );
    let shown = json(&incident(tmp, &["show", &id, "--format", "json"]));
    assert_eq!(shown["incident"]["status"], "resolved");
    assert_eq!(shown["incident"]["classification"], "false_positive");
    assert_eq!(shown["incident"]["owner"], "ana");
    let history = shown["history"].as_array().unwrap();
    let actions: Vec<&str> = history
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "incident.update",
            "incident.update",
            "incident.note",
            "incident.update"
        ]
    );
    assert!(history
        .iter()
        .all(|r| r["who"] == "cli:ana" && r["via"] == "cli"));
    assert_eq!(history[1]["details"]["note"], "mine");
    let text = ok(&incident(tmp, &["show", &id]));
    assert!(
        text.contains("cli:ana via cli") && text.contains("status \"new\" -> \"acknowledged\""),
        "{text}"
    );

    // The same traffic again raises nothing for p3.bot.
    let again = watch(
        tmp,
        "b.jsonl",
        &format!("{}{}", canary_read("p3.bot"), canary_read("r17.anna")).replace("08:00", "09:00"),
    );
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(!stdout.contains("p3.bot"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("suppressed by exceptions"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let missing = incident(tmp, &["ack", "nobody/nothing"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no incident nobody/nothing"));
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

/// Tokens and users made and removed at the command line, and incident
/// changes, are in `vakt audit`, under the person running the command.
#[test]
fn vakt_audit_lists_what_people_did_at_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let run = |args: &[&str]| {
        let out = vakt()
            .args(args)
            .arg("--data")
            .arg(&data)
            .env("USER", "olle")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["init"]);
    run(&["token", "create", "--name", "collector", "--role", "ingest"]);
    run(&["token", "revoke", "collector"]);
    run(&[
        "decisions",
        "add",
        "--scope",
        "account",
        "--value",
        "r9.mallory",
        "--action",
        "block",
        "--ttl",
        "1h",
        "--reason",
        "by hand",
    ]);
    let records: serde_json::Value =
        serde_json::from_str(&run(&["audit", "--format", "json"])).unwrap();
    let got: Vec<(&str, &str)> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["subject"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got[..2],
        [("token.create", "collector"), ("token.revoke", "collector")]
    );
    assert_eq!(got[2].0, "decision.add");
    assert!(records
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["who"] == "cli:olle" && r["via"] == "cli"));
    let text = run(&["audit", "--action", "token"]);
    assert!(text.starts_with("2 record(s)"), "{text}");
    assert!(
        text.contains("cli:olle via cli") && text.contains("token.revoke collector"),
        "{text}"
    );
}
