//! Diagnostics of the libraries reach stderr: a webhook that cannot be
//! reached is logged as a warning, as text or as JSON lines, and
//! `RUST_LOG` chooses what is logged.

use std::process::{Command, Output};

const DIR: &str = r#"
[[organization]]
id = "reseller-17"
kind = "reseller"

[[account]]
name = "r17.anna"
organization = "reseller-17"
role = "sales"

[[canary]]
customer_id = "C-900001"
"#;

/// `vakt watch` on one canary read, delivering to a webhook on a closed
/// port of 127.0.0.1: every try fails and is retried until watch gives
/// up waiting (10 s) and leaves the alert queued.
fn watch_with_unreachable_webhook(args: &[&str], rust_log: Option<&str>) -> Output {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("directory.toml");
    std::fs::write(&dir, DIR).unwrap();
    let events = tmp.path().join("events.jsonl");
    std::fs::write(
        &events,
        r#"{"@timestamp":"2026-11-02T09:00:00Z","user.name":"r17.anna","source.ip":"198.51.100.3","event.action":"lookup","customer.ids":["C-900001"]}"#,
    )
    .unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let deliver = tmp.path().join("deliver.toml");
    std::fs::write(
        &deliver,
        format!("[[target]]\nname = \"soc\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/vakt\"\n"),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vakt"));
    cmd.args(args)
        .args(["watch", "-q", "--directory"])
        .arg(&dir)
        .arg("--deliver")
        .arg(&deliver)
        .arg("--data")
        .arg(tmp.path().join("data"))
        .arg(&events)
        .env_remove("RUST_LOG");
    if let Some(l) = rust_log {
        cmd.env("RUST_LOG", l);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

const FAILED: &str = "delivery to soc failed, retrying in";

#[test]
fn a_failing_webhook_is_a_warning_on_stderr_as_text_or_json_and_rust_log_can_hide_it() {
    // Each run waits out watch's 10 s delivery grace: run them side by side.
    let text = std::thread::spawn(|| watch_with_unreachable_webhook(&[], None));
    let json =
        std::thread::spawn(|| watch_with_unreachable_webhook(&["--log-format", "json"], None));
    let quiet = std::thread::spawn(|| watch_with_unreachable_webhook(&[], Some("error")));

    let err = String::from_utf8(text.join().unwrap().stderr).unwrap();
    let line = err
        .lines()
        .find(|l| l.contains(FAILED))
        .unwrap_or_else(|| panic!("no delivery warning in:\n{err}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("127.0.0.1"), "{line}");
    assert!(
        !line.contains('\x1b'),
        "no colour codes off a terminal: {line:?}"
    );

    let err = String::from_utf8(json.join().unwrap().stderr).unwrap();
    let warning: serde_json::Value = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(FAILED))
        })
        .unwrap_or_else(|| panic!("no delivery warning as a JSON line in:\n{err}"));
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert_eq!(warning["target"], "vakt_deliver", "{warning}");

    let err = String::from_utf8(quiet.join().unwrap().stderr).unwrap();
    assert!(!err.contains(FAILED), "RUST_LOG=error still shows:\n{err}");
}
