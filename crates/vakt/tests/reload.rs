//! An edited directory file picked up by a running `vakt watch --follow`
//! and `vakt serve`: the real binary on real files and loopback HTTP.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{vakt, WAIT};

const DIR: &str = r#"[[organization]]
id = "reseller-17"
kind = "reseller"
networks = ["198.51.100.0/28"]

[[account]]
name = "r17.anna"
organization = "reseller-17"
role = "sales"
"#;

/// The planted record declared after the start.
const CANARY: &str = "\n[[canary]]\ncustomer_id = \"C-900002\"\n";

/// A read of the planted record at `minute`, and one of another customer
/// past the tolerated lateness, so the first is processed now rather than
/// held for reordering until the end.
fn read(log: &Path, minute: u32) {
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    for (m, customer) in [(minute, "C-900002"), (minute + 6, "C-1")] {
        writeln!(
            f,
            r#"{{"@timestamp":"2026-11-02T08:{m:02}:00Z","user.name":"r17.anna","source.ip":"198.51.100.3","event.action":"lookup","customer.ids":["{customer}"]}}"#
        )
        .unwrap();
    }
}

/// Waits until stderr holds `count` lines containing `what`.
fn wait_for(stderr: &Mutex<Vec<String>>, what: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let found: Vec<String> = stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(what))
            .cloned()
            .collect();
        if found.len() >= count {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no `{what}` on stderr: {:?}",
            stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_good_edit_applies_to_the_next_event_and_bad_ones_are_refused_with_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dir.toml");
    let log = tmp.path().join("access.jsonl");
    std::fs::write(&dir, DIR).unwrap();
    std::fs::write(&log, "").unwrap();
    let mut child = vakt()
        .args(["watch", "--follow", "--format", "jsonl", "--idle-exit", "6"])
        .args(["--directory-poll", "1s"])
        .arg("--directory")
        .arg(&dir)
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let collected = lines.clone();
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines() {
            collected.lock().unwrap().push(l.unwrap());
        }
    });

    // The notes on missing inputs come once the directory is loaded.
    wait_for(&lines, "note:", 1);
    // Before any edit the record is nobody's canary.
    read(&log, 0);

    // A syntax error, with the canary in it: refused, the canary stays unknown.
    let broken = format!("{DIR}{CANARY}\n[[canary]\n");
    let broken_line = broken.lines().count();
    std::fs::write(&dir, &broken).unwrap();
    let refused = wait_for(&lines, "directory edit refused", 1);
    assert!(
        refused[0].contains(&format!("dir.toml:{broken_line}:")),
        "{refused:?}"
    );
    read(&log, 10);

    // An unknown detector parameter: refused with its line and what to write.
    let unknown = format!("{DIR}{CANARY}\n[detectors.rate]\nfactor_x = 3\n");
    let unknown_line = unknown.lines().count();
    std::fs::write(&dir, &unknown).unwrap();
    let refused = wait_for(&lines, "directory edit refused", 2);
    assert!(
        refused[1].contains(&format!("dir.toml:{unknown_line}:"))
            && refused[1].contains("no parameter `factor_x`"),
        "{refused:?}"
    );
    read(&log, 20);
    // Time for the follower to hand the read over before the good edit.
    std::thread::sleep(Duration::from_secs(1));

    // The good edit: the next read of the record is a canary alert.
    std::fs::write(&dir, format!("{DIR}{CANARY}")).unwrap();
    let applied = wait_for(&lines, "directory reloaded", 1);
    assert!(
        applied[0].contains(
            "directory reloaded: 1 accounts, 1 organisations, 0 changes in detector parameters"
        ),
        "{applied:?}"
    );
    read(&log, 30);

    let out = child.wait_with_output().unwrap();
    reader.join().unwrap();
    let stderr = lines.lock().unwrap().join("\n");
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("8 events (access 8)"), "{stderr}");
    let alerts: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|a: &serde_json::Value| a["rule.id"] == "canary")
        .collect();
    assert!(!alerts.is_empty());
    for a in &alerts {
        assert_eq!(a["first_seen"], "2026-11-02T08:30:00.000Z", "{alerts:?}");
    }
}

fn token(data: &Path, role: &str) -> String {
    let out = vakt()
        .args(["token", "create", "--name", role, "--role", role, "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The server's stderr so far, kept across looks.
fn log_until(child: &support::Child, seen: &mut String, what: &str) {
    let deadline = Instant::now() + WAIT;
    while !seen.contains(what) {
        assert!(Instant::now() < deadline, "no `{what}` in: {seen}");
        std::thread::sleep(Duration::from_millis(50));
        seen.push_str(&child.stderr());
        seen.push_str("; ");
    }
}

#[test]
fn serve_refuses_a_bad_edit_and_judges_with_a_good_one_and_counts_both() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let dir = tmp.path().join("dir.toml");
    std::fs::write(&dir, DIR).unwrap();
    let (ingest, read) = (token(&data, "ingest"), token(&data, "read"));
    let (child, url) = support::serve(
        &data,
        &[
            "--directory".as_ref(),
            dir.as_os_str(),
            "--directory-poll".as_ref(),
            "1s".as_ref(),
            "--open-metrics".as_ref(),
        ],
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(WAIT))
        .build()
        .into();
    let post = |user: &str| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let line = serde_json::json!({
            "@timestamp": vakt_event::Timestamp(now).to_string(),
            "user.name": user,
            "event.action": "lookup",
            "customer.ids": ["C-900002"],
        });
        let r = agent
            .post(format!("{url}/v1/events"))
            .header("authorization", format!("Bearer {ingest}"))
            .send(line.to_string())
            .unwrap();
        assert_eq!(r.status(), 200);
    };
    let get = |path: &str| -> String {
        agent
            .get(format!("{url}{path}"))
            .header("authorization", format!("Bearer {read}"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    let policy = "\n[[policy]]\nrule = \"canary\"\nmin_severity = \"low\"\naction = \"block\"\nttl = \"1h\"\n";
    let mut seen = String::new();

    let broken = format!("{DIR}{CANARY}{policy}\n[[canary]\n");
    std::fs::write(&dir, &broken).unwrap();
    log_until(&child, &mut seen, "directory edit refused");
    assert!(
        seen.contains(&format!("dir.toml:{}:", broken.lines().count())),
        "{seen}"
    );
    post("p3.before");
    // Time for the engine to judge it before the good edit is seen.
    std::thread::sleep(Duration::from_millis(500));

    std::fs::write(&dir, format!("{DIR}{CANARY}{policy}")).unwrap();
    log_until(
        &child,
        &mut seen,
        "directory reloaded: 1 accounts, 1 organisations",
    );
    post("p3.after");
    let deadline = Instant::now() + WAIT;
    let decisions = loop {
        let d: serde_json::Value = serde_json::from_str(&get("/v1/decisions")).unwrap();
        if d.as_array().is_some_and(|d| !d.is_empty()) {
            break d;
        }
        assert!(Instant::now() < deadline, "no decision from the new policy");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(decisions.as_array().unwrap().len(), 1, "{decisions}");
    assert_eq!(decisions[0]["value"], "p3.after");
    let metrics = get("/metrics");
    assert!(
        metrics.contains("\nvakt_directory_reloads_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nvakt_directory_reload_failures_total 1\n"),
        "{metrics}"
    );
    child.stop(WAIT).unwrap();
}
