//! The ledger through the binary: exactly once after `kill -9`, verify, scope.

mod support;

use std::process::Stdio;
use std::time::Duration;
use support::vakt;

#[test]
fn after_kill_9_at_random_moments_the_ledger_holds_every_access_exactly_once() {
    exactly_once_after_kill_9(None);
}

/// The same with the entries in PostgreSQL (`vakt ledger store`): a kill
/// between PostgreSQL's commit and the data directory's is made good when
/// the ledger is next opened, from the batch's journal in PostgreSQL.
#[test]
fn after_kill_9_the_ledger_in_postgresql_holds_every_access_exactly_once() {
    let pg = vakt_pgtemp::TempCluster::shared().unwrap();
    pg.psql("CREATE DATABASE kill9").unwrap();
    exactly_once_after_kill_9(Some(&pg.url("kill9")));
    // The entries are in PostgreSQL, not beside the data directory.
    let rows = pg
        .psql_in("kill9", "SELECT count(*) FROM vakt.entries")
        .unwrap();
    assert!(rows.trim().parse::<u64>().unwrap() > 30_000, "{rows}");
}

fn exactly_once_after_kill_9(store: Option<&str>) {
    let tmp = tempfile::tempdir().unwrap();
    let sim = tmp.path().join("sim");
    let st = vakt()
        .args([
            "simulate", "--scale", "small", "--days", "14", "--seed", "11", "--out",
        ])
        .arg(&sim)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let input = sim.join("events.jsonl");
    let text = std::fs::read_to_string(&input).unwrap();
    let accesses = text
        .lines()
        .filter(|l| !l.contains(r#""event.kind":"flow""#))
        .count();
    assert!(accesses > 30_000, "{accesses}");
    let data = tmp.path().join("data");
    if let Some(url) = store {
        let out = vakt()
            .args(["ledger", "store", "--data"])
            .arg(&data)
            .arg(url)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            said.contains("now keeps its entries in postgres://postgres:***@"),
            "{said}"
        );
    }
    let watch = |input: &std::path::Path| {
        let mut c = vakt();
        c.args(["watch", "--quiet", "--data"])
            .arg(&data)
            .arg("--directory")
            .arg(sim.join("directory.toml"))
            .arg(input);
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        c
    };
    // Kill it at pseudo-random moments, some before and some after commits.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..6 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut child = watch(&input).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(30 + x % 600));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    let out = watch(&input).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let verify = vakt()
        .args(["ledger", "verify", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{said}");
    let entries: usize = said
        .split_whitespace()
        .nth(3)
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap();
    assert_eq!(entries, accesses, "{said}");

    // A second full run adds nothing.
    let again = watch(&input)
        .arg("--stats-json")
        .arg(tmp.path().join("s.json"))
        .output()
        .unwrap();
    assert!(again.status.success());
    let verify = vakt()
        .args(["ledger", "verify", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&verify.stdout).contains(&format!("{} entries", fmt(accesses))));
}

fn fmt(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn scope_and_verify_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    let mut lines = String::new();
    for i in 0..50 {
        let user = if i % 2 == 0 { "r7.anna" } else { "cc.eva" };
        lines += &format!(
            "{{\"@timestamp\":\"2026-11-02T08:{:02}:00Z\",\"user.name\":\"{user}\",\"source.ip\":\"10.0.0.{}\",\"event.action\":\"lookup\",\"customer.ids\":[\"C-{}\"],\"data.categories\":[\"name\",\"phone\"]}}\n",
            i,
            i % 3 + 1,
            i % 7
        );
    }
    std::fs::write(&input, lines).unwrap();
    let data = tmp.path().join("data");
    let st = vakt()
        .args(["watch", "-q", "--data"])
        .arg(&data)
        .arg(&input)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let list = tmp.path().join("list.csv");
    let out = vakt()
        .args(["scope", "--data"])
        .arg(&data)
        .args(["--account", "r7.anna", "--out"])
        .arg(&list)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("7 distinct customers in 25 accesses"),
        "{said}"
    );
    let csv = std::fs::read_to_string(&list).unwrap();
    assert_eq!(csv.lines().count(), 8);
    assert!(csv.starts_with("customer_id,categories,first_exposure,last_exposure\nC-0,\"name,phone\",2026-11-02T08:00:00.000Z,"), "{csv}");
    let out = vakt()
        .args(["scope", "--data"])
        .arg(&data)
        .args(["--customer", "C-3"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("customer C-3: 7 accesses by 2 accounts"),
        "{said}"
    );
    // Tampering is reported with a non-zero exit.
    let db = data.join("ledger.db");
    let mut bytes = std::fs::read(&db).unwrap();
    let at = bytes.windows(7).position(|w| w == b"r7.anna").unwrap();
    bytes[at] = b'R';
    std::fs::write(&db, bytes).unwrap();
    let v = vakt()
        .args(["ledger", "verify", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(
        v.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&v.stdout)
    );
    assert!(String::from_utf8_lossy(&v.stdout).contains("BROKEN: entry 1 was changed"));
}

#[test]
fn data_without_a_value_means_vakt_data_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    std::fs::write(&input, "{\"@timestamp\":\"2026-11-02T08:00:00Z\",\"user.name\":\"a\",\"event.action\":\"lookup\",\"customer.ids\":[\"C-1\"]}\n").unwrap();
    let data = tmp.path().join("from-env");
    let out = vakt()
        .env("VAKT_DATA", &data)
        .args(["watch", "--data", "--format", "jsonl"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("creating the data directory"));
    assert!(data.join("ledger.db").exists() && data.join("ledger.key").exists());
}

#[test]
fn policies_make_decisions_and_people_add_list_and_lift_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let dir = tmp.path().join("dir.toml");
    std::fs::write(
        &dir,
        "[[canary]]\ncustomer_id = \"C-900001\"\n\n[[policy]]\nrule = \"canary\"\nmin_severity = \"high\"\naction = \"block\"\nttl = \"1h\"\n",
    )
    .unwrap();
    let input = tmp.path().join("in.jsonl");
    std::fs::write(&input, "{\"@timestamp\":\"2026-11-02T08:00:00Z\",\"user.name\":\"p3.bot\",\"event.action\":\"lookup\",\"customer.ids\":[\"C-900001\"]}\n").unwrap();
    let st = vakt()
        .args(["watch", "-q", "--data"])
        .arg(&data)
        .arg("--directory")
        .arg(&dir)
        .arg(&input)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    // Made now from a November event, it is in force from now for an hour.
    let list = |extra: &[&str]| {
        let out = vakt()
            .args(["decisions", "list", "--format", "json", "--data"])
            .arg(&data)
            .args(extra)
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let at = list(&[]);
    assert_eq!(at.as_array().unwrap().len(), 1, "{at}");
    assert_eq!(
        (
            at[0]["value"].as_str(),
            at[0]["action"].as_str(),
            at[0]["scope"].as_str()
        ),
        (Some("p3.bot"), Some("block"), Some("account"))
    );
    assert!(at[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("canary canary-"));
    let created = vakt_event::Timestamp::parse(at[0]["created"].as_str().unwrap()).unwrap();
    let expires = vakt_event::Timestamp::parse(at[0]["expires"].as_str().unwrap()).unwrap();
    assert_eq!(expires.0 - created.0, 3_600_000);
    let later = vakt_event::Timestamp(expires.0 + 60_000).to_rfc3339();
    assert_eq!(list(&["--at", &later]).as_array().unwrap().len(), 0);
    // By hand: add, see it in force now, lift it.
    let out = vakt()
        .args([
            "decisions",
            "add",
            "--scope",
            "ip",
            "--value",
            "203.0.113.9",
            "--action",
            "throttle",
            "--ttl",
            "10m",
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let now = list(&[]);
    assert_eq!(
        now.as_array()
            .unwrap()
            .iter()
            .filter(|d| d["id"] == id.as_str())
            .count(),
        1
    );
    let out = vakt()
        .args(["decisions", "delete", "--data"])
        .arg(&data)
        .arg(&id)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(list(&[])
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["id"] != id.as_str()));
    let again = vakt()
        .args(["decisions", "delete", "--data"])
        .arg(&data)
        .arg(&id)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn decisions_add_keeps_addresses_canonical_and_says_what_to_write_instead() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let add = |scope: &str, value: &str, action: &str, ttl: &str| {
        let out = vakt()
            .args(["decisions", "add", "--scope", scope, "--value", value])
            .args(["--action", action, "--ttl", ttl, "--data"])
            .arg(&data)
            .output()
            .unwrap();
        let text = if out.status.success() {
            out.stdout
        } else {
            out.stderr
        };
        (
            out.status.success(),
            String::from_utf8_lossy(&text).into_owned(),
        )
    };
    let (ok, id) = add("ip", "::ffff:203.0.113.9", "block", "1h");
    assert!(ok && id.starts_with("manual-ip-203.0.113.9-"), "{id}");
    let (ok, id) = add("ip", "2001:db8:0:0:0:0:0:1/32", "block", "1h");
    assert!(ok && id.starts_with("manual-ip-2001:db8::/32-"), "{id}");
    for (args, says) in [
        (
            ["user", "a", "block", "1h"],
            "is not a scope; use account, ip or organization",
        ),
        (
            ["account", "a", "ban", "1h"],
            "is not an action; use throttle, step_up or block",
        ),
        (
            ["ip", "host-1", "block", "1h"],
            "is not an IP address or network",
        ),
        (["account", "a", "block", "400d"], "at most 365 days"),
        (["account", "a\tb", "block", "1h"], "control character"),
    ] {
        let (ok, err) = add(args[0], args[1], args[2], args[3]);
        assert!(!ok && err.contains(says), "{args:?}: {err}");
    }
}

/// Finding 13: a ledger cut back to an earlier checkpoint verified; an
/// anchor kept outside the data directory, checked with a public key kept
/// there too, refuses it.
#[test]
fn finding_13_anchor_and_verify_against_it_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let line = |i: usize| {
        format!(
            "{{\"@timestamp\":\"2026-11-02T08:{i:02}:00Z\",\"user.name\":\"r7.anna\",\"event.action\":\"lookup\",\"customer.ids\":[\"C-{i}\"]}}\n"
        )
    };
    let watch = |data: &std::path::Path, lines: usize| {
        let input = tmp.path().join(format!("in-{lines}.jsonl"));
        std::fs::write(&input, (0..lines).map(line).collect::<String>()).unwrap();
        let st = vakt()
            .args(["watch", "-q", "--data"])
            .arg(data)
            .arg(&input)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    };
    let data = tmp.path().join("data");
    watch(&data, 40);
    let anchors = tmp.path().join("anchors.jsonl");
    for _ in 0..2 {
        let st = vakt()
            .args(["ledger", "anchor", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&anchors)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let written = std::fs::read_to_string(&anchors).unwrap();
    assert_eq!(written.lines().count(), 2, "{written}");
    assert!(written.starts_with("{\"seq\":40,\"hash\":\""), "{written}");
    let printed = vakt()
        .args(["ledger", "anchor", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout),
        written.lines().next().unwrap().to_owned() + "\n"
    );
    // The public key, kept apart from the data directory.
    let public = tmp.path().join("ledger.pub");
    std::fs::copy(data.join("ledger.pub"), &public).unwrap();
    let verify = |data: &std::path::Path, public: &std::path::Path| {
        vakt()
            .args(["ledger", "verify", "--data"])
            .arg(data)
            .arg("--anchor")
            .arg(&anchors)
            .arg("--public-key")
            .arg(public)
            .output()
            .unwrap()
    };
    let v = verify(&data, &public);
    let said = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success() && said.contains("intact"), "{said}");

    // The same key's ledger cut back to entry 25 (as if the last entries
    // and their checkpoints were deleted).
    let cut = tmp.path().join("cut");
    std::fs::create_dir(&cut).unwrap();
    for f in ["ledger.key", "ledger.pub"] {
        std::fs::copy(data.join(f), cut.join(f)).unwrap();
    }
    watch(&cut, 25);
    let plain = vakt()
        .args(["ledger", "verify", "--data"])
        .arg(&cut)
        .status()
        .unwrap();
    assert!(plain.success(), "alone, the cut ledger is consistent");
    let v = verify(&cut, &public);
    let said = String::from_utf8_lossy(&v.stdout);
    assert_eq!(v.status.code(), Some(1), "{said}");
    assert!(
        said.contains("BROKEN: the ledger ends at entry 25, but a checkpoint anchored outside it vouches for entry 40"),
        "{said}"
    );

    // Another key: the anchors are not its.
    let other = tmp.path().join("other");
    assert!(vakt()
        .arg("init")
        .arg("--data")
        .arg(&other)
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success());
    let v = verify(&data, &other.join("ledger.pub"));
    let said = String::from_utf8_lossy(&v.stdout);
    assert_eq!(v.status.code(), Some(1), "{said}");
    assert!(said.contains("not by the given public key"), "{said}");

    // An anchor without a key to check it with is refused.
    let v = vakt()
        .args(["ledger", "verify", "--data"])
        .arg(&data)
        .arg("--anchor")
        .arg(&anchors)
        .output()
        .unwrap();
    assert!(!v.status.success());
    assert!(String::from_utf8_lossy(&v.stderr).contains("--public-key"));
}
