//! `vakt watch` end to end: the real binary on real files.

mod support;

use std::io::Write;
use std::process::Stdio;
use support::vakt;

const DIR: &str = r#"
[[organization]]
id = "reseller-17"
kind = "reseller"
networks = ["198.51.100.0/28"]

[[account]]
name = "r17.anna"
organization = "reseller-17"
role = "sales"

[[canary]]
customer_id = "C-900001"
"#;

fn access(ts: &str, customer: &str) -> String {
    format!(
        r#"{{"@timestamp":"{ts}","user.name":"r17.anna","source.ip":"198.51.100.3","event.action":"lookup","customer.ids":["{customer}"]}}"#
    )
}

#[test]
fn bad_lines_are_counted_located_and_kept_while_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dir.toml");
    std::fs::write(&dir, DIR).unwrap();
    let input = tmp.path().join("events.jsonl");
    let lines = [
        access("2026-11-02T08:00:00Z", "C-1"),
        "{\"@timestamp\": 12".into(),
        String::from_utf8_lossy(&[0xff, 0xfe, 0x00, 0x7b]).into_owned(),
        access("2026-11-02T08:01:00Z", "C-900001"),
        r#"{"@timestamp":"2026-11-02T08:02:00Z","event.action":"lookup"}"#.into(),
    ];
    std::fs::write(&input, lines.join("\n")).unwrap();
    let dead = tmp.path().join("dead.jsonl");
    let out = vakt()
        .args(["watch", "--directory"])
        .arg(&dir)
        .arg("--dead-letter")
        .arg(&dead)
        .arg(&input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("events.jsonl:2: rejected"), "{stderr}");
    assert!(
        stderr.contains("events.jsonl:5: rejected: `user.name` is missing"),
        "{stderr}"
    );
    assert!(stderr.contains("lines rejected: 3"), "{stderr}");
    let kept: Vec<serde_json::Value> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        kept.iter()
            .map(|v| v["line"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [2, 3, 5]
    );
    assert_eq!(kept[0]["raw"], "{\"@timestamp\": 12");
    let alerts = String::from_utf8_lossy(&out.stdout);
    assert!(alerts.contains(r#""rule.id":"canary""#), "{alerts}");
}

#[test]
fn a_bad_directory_stops_at_start_with_file_line_and_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dir.toml");
    std::fs::write(&dir, DIR.replace("role = \"sales\"", "role = sales")).unwrap();
    let out = vakt()
        .args(["watch", "--directory"])
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dir.toml:10:8:"), "{stderr}");
}

#[test]
fn stdin_and_gzip_inputs_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let gz = tmp.path().join("events.jsonl.gz");
    let mut enc = flate2_writer(&gz);
    writeln!(enc, "{}", access("2026-11-02T08:00:00Z", "C-1")).unwrap();
    drop(enc);
    let out = vakt().arg("watch").arg(&gz).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 events (access 1)"));

    let mut child = vakt()
        .args(["watch", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..3 {
        writeln!(
            stdin,
            "{}",
            access(&format!("2026-11-02T08:0{i}:00Z"), "C-1")
        )
        .unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 events (access 3)"));
}

#[test]
fn follow_reads_appended_and_rotated_files_until_idle() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("access.jsonl");
    let dir = tmp.path().join("dir.toml");
    std::fs::write(&dir, DIR).unwrap();
    std::fs::write(&log, format!("{}\n", access("2026-11-02T08:00:00Z", "C-1"))).unwrap();
    let child = vakt()
        .args(["watch", "--follow", "--idle-exit", "1.5", "--directory"])
        .arg(&dir)
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(f, "{}", access("2026-11-02T08:01:00Z", "C-2")).unwrap();
    drop(f);
    std::thread::sleep(std::time::Duration::from_millis(400));
    std::fs::rename(&log, tmp.path().join("access.jsonl.1")).unwrap();
    std::fs::write(
        &log,
        format!("{}\n", access("2026-11-02T08:02:00Z", "C-900001")),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3 events (access 3)"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("canary"));
}

fn flate2_writer(p: &std::path::Path) -> impl Write {
    flate2::write::GzEncoder::new(
        std::fs::File::create(p).unwrap(),
        flate2::Compression::fast(),
    )
}

#[test]
fn alerts_reach_a_webhook_given_with_deliver() {
    use std::io::{BufRead, BufReader, Read};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("directory.toml");
    std::fs::write(&dir, DIR).unwrap();
    let events = tmp.path().join("events.jsonl");
    std::fs::write(&events, access("2026-11-02T09:00:00Z", "C-900001") + "\n").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut len = 0;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap() <= 2 {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        s.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
            .unwrap();
        String::from_utf8(body).unwrap()
    });
    let deliver = tmp.path().join("deliver.toml");
    std::fs::write(&deliver, format!("[[target]]\nname = \"soc\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/vakt\"\nmin_severity = \"high\"\n")).unwrap();
    let out = vakt()
        .args(["watch", "-q", "--directory"])
        .arg(&dir)
        .arg("--deliver")
        .arg(&deliver)
        .arg("--data")
        .arg(tmp.path().join("data"))
        .arg(&events)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = server.join().unwrap();
    assert!(body.contains(r#""rule.id":"canary""#), "{body}");
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[[target]]\nname = \"x\"\nkind = \"syslog\"\n").unwrap();
    let out = vakt()
        .args(["watch", "-q", "--deliver"])
        .arg(&bad)
        .arg(&events)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:1:") && err.contains("udp://HOST:PORT"),
        "{err}"
    );
}
