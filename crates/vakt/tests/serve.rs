//! `vakt serve` over real HTTP on 127.0.0.1: tokens and roles, decisions
//! by the API and by the CLI, ingest with good and bad lines, a canary
//! read that ends in a block decision, and a restart that replays the
//! journal without recording anything twice; two nodes on one PostgreSQL
//! store sharing tokens and exceptions; HTTPS with a certificate
//! given on the command line or in the settings file.

mod support;

use serde_json::{json, Value};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{Child, WAIT};

/// A running `vakt serve`, stopped (SIGTERM) or killed when dropped.
struct Serve {
    child: Child,
    url: String,
    agent: ureq::Agent,
}

impl Serve {
    fn start(data: &Path, directory: Option<&Path>) -> Serve {
        Serve::start_with(data, directory, &[], None)
    }

    /// With more arguments, and a certificate (PEM) the client trusts.
    fn start_with(
        data: &Path,
        directory: Option<&Path>,
        extra: &[&str],
        trust: Option<&str>,
    ) -> Serve {
        let mut args: Vec<&OsStr> = Vec::new();
        if let Some(d) = directory {
            args.extend([OsStr::new("--directory"), d.as_os_str()]);
        }
        args.extend(extra.iter().map(OsStr::new));
        let (child, url) = support::serve(data, &args);
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(WAIT));
        if let Some(pem) = trust {
            let cert = ureq::tls::Certificate::from_pem(pem.as_bytes()).unwrap();
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .provider(ureq::tls::TlsProvider::Rustls)
                    .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
                        cert,
                    ])))
                    .build(),
            );
        }
        let agent: ureq::Agent = config.build().into();
        Serve { child, url, agent }
    }

    /// Method, path, token and body; returns the status, the headers we
    /// look at and the body as JSON (Null when empty).
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Answer {
        let url = format!("{}{path}", self.url);
        let auth = token.map(|t| format!("Bearer {t}"));
        let r = match (method, body) {
            ("GET", _) => {
                let mut q = self.agent.get(&url);
                if let Some(a) = &auth {
                    q = q.header("Authorization", a);
                }
                q.call()
            }
            ("DELETE", _) => {
                let mut q = self.agent.delete(&url);
                if let Some(a) = &auth {
                    q = q.header("Authorization", a);
                }
                q.call()
            }
            ("POST", b) => {
                let mut q = self.agent.post(&url);
                if let Some(a) = &auth {
                    q = q.header("Authorization", a);
                }
                q.send(b.unwrap_or(""))
            }
            _ => unreachable!(),
        };
        let mut r = r.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let header = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let www_authenticate = header("www-authenticate");
        let text = r.body_mut().read_to_string().unwrap();
        Answer {
            status: r.status().as_u16(),
            www_authenticate,
            json: if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
            },
        }
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    fn stop(self) {
        self.child.stop(WAIT).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    json: Value,
}

fn vakt(args: &[&str], data: &Path) -> String {
    let out = support::vakt()
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vakt {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn token(data: &Path, name: &str, role: &str) -> String {
    vakt(&["token", "create", "--name", name, "--role", role], data)
        .trim()
        .to_owned()
}

/// An access line at the current time, so decisions made from it are in force now.
fn access(user: &str, customers: &[&str]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    json!({
        "@timestamp": vakt_event::Timestamp(now).to_string(),
        "user.name": user,
        "source.ip": "198.51.100.7",
        "event.action": "lookup",
        "customer.ids": customers,
        "data.categories": ["name", "phone"],
    })
    .to_string()
}

/// Polls until `f` holds, for at most `limit`.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A directory file planting canary C-900001, with a policy blocking
/// whoever reads it.
fn canary_directory(dir: &Path) -> PathBuf {
    let directory = dir.join("directory.toml");
    std::fs::write(
        &directory,
        "[[canary]]\ncustomer_id = \"C-900001\"\nlabel = \"planted\"\ncontact = [\"+46700000001\"]\n\n\
         [[policy]]\nrule = \"canary\"\nmin_severity = \"low\"\naction = \"block\"\nttl = \"1h\"\n",
    )
    .unwrap();
    directory
}

fn data_dir(tmp: &tempfile::TempDir) -> PathBuf {
    tmp.path().join("data")
}

#[test]
fn requests_without_a_valid_token_get_401_and_the_wrong_role_403() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(&tmp);
    let (ingest, read) = (
        token(&data, "proxy", "ingest"),
        token(&data, "dash", "read"),
    );
    let s = Serve::start(&data, None);

    let a = s.call("GET", "/healthz", None, None);
    assert_eq!((a.status, &a.json), (200, &json!({"status": "ok"})));

    let a = s.call("GET", "/v1/decisions", None, None);
    assert_eq!(a.status, 401);
    assert!(a
        .www_authenticate
        .as_deref()
        .unwrap_or("")
        .starts_with("Bearer"));
    assert!(
        a.json["error"].as_str().unwrap().contains("Bearer"),
        "{a:?}"
    );
    let a = s.call("POST", "/v1/events", Some("vakt_not-a-token"), Some("{}"));
    assert_eq!(a.status, 401);
    assert!(a.json["error"].as_str().unwrap().contains("not known"));

    let body = r#"{"scope":"account","value":"x","action":"block","ttl":"10m"}"#;
    let a = s.call("POST", "/v1/decisions", Some(&ingest), Some(body));
    assert_eq!(a.status, 403, "{a:?}");
    assert!(a.json["error"].as_str().unwrap().contains("admin"));
    let a = s.call("POST", "/v1/decisions", Some(&read), Some(body));
    assert_eq!(a.status, 403, "{a:?}");
    let a = s.call("POST", "/v1/events", Some(&read), Some(&access("a", &[])));
    assert_eq!(a.status, 403, "{a:?}");
    assert!(a.json["error"].as_str().unwrap().contains("ingest"));
    let a = s.call("GET", "/v1/decisions", Some(&ingest), None);
    assert_eq!(a.status, 403, "{a:?}");

    let a = s.call("GET", "/v1/decisions", Some(&read), None);
    assert_eq!((a.status, &a.json), (200, &json!([])));
    s.stop();

    // A revoked token stops working.
    vakt(&["token", "revoke", "dash"], &data);
    let s = Serve::start(&data, None);
    assert_eq!(
        s.call("GET", "/v1/decisions", Some(&read), None).status,
        401
    );
    s.stop();
}

#[test]
fn an_admin_adds_lists_and_lifts_a_decision() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(&tmp);
    let admin = token(&data, "ops", "admin");
    let s = Serve::start(&data, None);

    for (body, says) in [
        (
            r#"{"scope":"user","value":"x","action":"block","ttl":"10m"}"#,
            "account, ip or organization",
        ),
        (
            r#"{"scope":"account","value":"x","action":"ban","ttl":"10m"}"#,
            "throttle, step_up or block",
        ),
        (
            r#"{"scope":"account","value":"x","action":"block","ttl":"ten"}"#,
            "90s, 10m, 1h or 7d",
        ),
        (r#"{"scope":"account","value":"x","action":"block"}"#, "ttl"),
        ("not json", "JSON object"),
    ] {
        let a = s.call("POST", "/v1/decisions", Some(&admin), Some(body));
        assert_eq!(a.status, 400, "{body}: {a:?}");
        let e = a.json["error"].as_str().unwrap();
        assert!(e.contains(says), "{body}: {e}");
    }

    let a = s.call(
        "POST",
        "/v1/decisions",
        Some(&admin),
        Some(r#"{"scope":"account","value":"r016.elin","action":"block","ttl":"10m","reason":"ticket 7"}"#),
    );
    assert_eq!(a.status, 201, "{a:?}");
    let d = a.json;
    assert_eq!(
        (&d["scope"], &d["value"], &d["action"], &d["reason"]),
        (
            &json!("account"),
            &json!("r016.elin"),
            &json!("block"),
            &json!("ticket 7")
        )
    );
    let id = d["id"].as_str().unwrap().to_owned();

    let listed = s.call("GET", "/v1/decisions", Some(&admin), None).json;
    assert_eq!(listed, json!([d]));
    let a = s.call("DELETE", &format!("/v1/decisions/{id}"), Some(&admin), None);
    assert_eq!((a.status, a.json), (204, Value::Null));
    let a = s.call("DELETE", &format!("/v1/decisions/{id}"), Some(&admin), None);
    assert_eq!(a.status, 404);
    assert!(a.json["error"].as_str().unwrap().contains(&id));
    assert_eq!(
        s.call("GET", "/v1/decisions?all=true", Some(&admin), None)
            .json,
        json!([])
    );
    s.stop();
}

#[test]
fn a_decision_added_with_the_cli_shows_in_the_api_within_a_second() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(&tmp);
    let read = token(&data, "dash", "read");
    let s = Serve::start(&data, None);
    let id = vakt(
        &[
            "decisions",
            "add",
            "--scope",
            "ip",
            "--value",
            "203.0.113.9",
            "--action",
            "throttle",
            "--ttl",
            "1h",
        ],
        &data,
    )
    .trim()
    .to_owned();
    let seen = eventually(Duration::from_secs(1), || {
        s.call("GET", "/v1/decisions", Some(&read), None).json[0]["id"] == json!(id)
    });
    assert!(seen, "decision {id} not listed within a second");
    s.stop();
}

#[test]
fn a_batch_keeps_its_good_lines_names_its_bad_ones_and_lands_in_the_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(&tmp);
    let ingest = token(&data, "proxy", "ingest");
    let s = Serve::start(&data, None);
    let batch = [
        access("cc.anna", &["C-1", "C-2"]),
        "{\"user.name\": \"cc.anna\"".to_owned(),
        access("cc.anna", &["C-3"]),
        r#"{"@timestamp":"2026-11-02T08:00:00Z","event.action":"lookup"}"#.to_owned(),
        String::new(),
        access("cc.bert", &["C-1"]),
    ]
    .join("\n");
    let a = s.call("POST", "/v1/events", Some(&ingest), Some(&batch));
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json["accepted"], 3);
    let rejected = a.json["rejected"].as_array().unwrap();
    let lines: Vec<_> = rejected
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [2, 4]);
    assert!(
        rejected[1]["error"].as_str().unwrap().contains("user.name"),
        "{rejected:?}"
    );

    // A batch with nothing good is refused as a whole.
    let a = s.call("POST", "/v1/events", Some(&ingest), Some("nope\n{}"));
    assert_eq!((a.status, &a.json["accepted"]), (400, &json!(0)));
    assert_eq!(a.json["rejected"].as_array().unwrap().len(), 2);

    // The good lines reach the ledger while the server runs.
    let scope = |account: &str| -> Value {
        serde_json::from_str(&vakt(
            &["scope", "--format", "json", "--account", account],
            &data,
        ))
        .unwrap()
    };
    assert!(
        eventually(Duration::from_secs(5), || scope("cc.anna")["accesses"] == 2),
        "the accepted lines did not reach the ledger"
    );
    s.stop();
    let anna = scope("cc.anna");
    let customers: Vec<_> = anna["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer"].clone())
        .collect();
    assert_eq!(customers, [json!("C-1"), json!("C-2"), json!("C-3")]);
    assert_eq!(scope("cc.bert")["accesses"], 1);
    assert!(vakt(&["ledger", "verify"], &data).contains("intact"));
}

#[test]
fn a_canary_read_posted_as_events_ends_in_a_block_decision_over_the_api() {
    canary_read_ends_in_a_block(None);
}

/// The same with the data directory's entries and decisions in
/// PostgreSQL: the server opens the store inside its async runtime, and
/// the API reads decisions from the database.
#[test]
fn with_the_entries_in_postgresql_a_canary_read_ends_in_a_block_over_the_api() {
    let pg = vakt_pgtemp::TempCluster::shared().unwrap();
    pg.psql("CREATE DATABASE served").unwrap();
    canary_read_ends_in_a_block(Some(&pg.url("served")));
    let rows = pg
        .psql_in(
            "served",
            "SELECT (SELECT count(*) FROM vakt.entries) || ' ' || (SELECT string_agg(value || ':' || action, ',') FROM vakt.decisions)",
        )
        .unwrap();
    assert_eq!(rows.trim(), "2 p3.bot:block");
}

fn canary_read_ends_in_a_block(store: Option<&str>) {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(&tmp);
    if let Some(url) = store {
        vakt(&["ledger", "store", url], &data);
    }
    let directory = canary_directory(tmp.path());
    let (ingest, read) = (
        token(&data, "proxy", "ingest"),
        token(&data, "enforcer", "read"),
    );
    let s = Serve::start(&data, Some(&directory));
    let batch = format!(
        "{}\n{}\n",
        access("p3.bot", &["C-17"]),
        access("p3.bot", &["C-18", "C-900001"])
    );
    let a = s.call("POST", "/v1/events", Some(&ingest), Some(&batch));
    assert_eq!((a.status, &a.json["accepted"]), (200, &json!(2)), "{a:?}");

    let mut decisions = Value::Null;
    let found = eventually(Duration::from_secs(10), || {
        decisions = s.call("GET", "/v1/decisions", Some(&read), None).json;
        decisions.as_array().is_some_and(|d| !d.is_empty())
    });
    assert!(found, "no decision within 10 s");
    let d = &decisions[0];
    assert_eq!(
        (&d["scope"], &d["value"], &d["action"]),
        (&json!("account"), &json!("p3.bot"), &json!("block"))
    );
    assert!(d["reason"].as_str().unwrap().starts_with("canary "));

    let alerts = s
        .call(
            "GET",
            "/v1/alerts?rule=canary&severity=critical",
            Some(&read),
            None,
        )
        .json;
    assert_eq!(alerts[0]["rule.id"], "canary");
    assert_eq!(alerts[0]["user.name"], "p3.bot");
    let none = s
        .call("GET", "/v1/alerts?rule=rate", Some(&read), None)
        .json;
    assert_eq!(none, json!([]));
    let a = s.call("GET", "/v1/alerts?severity=severe", Some(&read), None);
    assert_eq!(a.status, 400);
    s.stop();
    assert!(vakt(&["ledger", "verify"], &data).contains("2 entries"));
}

#[test]
fn a_restart_replays_the_journal_and_records_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(&tmp);
    let ingest = token(&data, "proxy", "ingest");
    let s = Serve::start(&data, None);
    let a = s.call(
        "POST",
        "/v1/events",
        Some(&ingest),
        Some(&access("svc.a", &["C-1"])),
    );
    assert_eq!(a.json["accepted"], 1);
    s.stop();
    let s = Serve::start(&data, None);
    let a = s.call(
        "POST",
        "/v1/events",
        Some(&ingest),
        Some(&access("svc.a", &["C-2"])),
    );
    assert_eq!(a.json["accepted"], 1);
    s.stop();
    let scope: Value = serde_json::from_str(&vakt(
        &["scope", "--format", "json", "--account", "svc.a"],
        &data,
    ))
    .unwrap();
    assert_eq!(scope["accesses"], 2);
    let journal = std::fs::read_to_string(data.join("serve-journal.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 2);
}

/// A self-signed certificate for 127.0.0.1, written as cert.pem and key.pem.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf, String) {
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.key_pair.serialize_pem()).unwrap();
    (cert, key, c.cert.pem())
}

#[test]
fn with_a_certificate_it_serves_https_only_and_ingests_over_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(&tmp);
    let ingest = token(&data, "collector", "ingest");
    let read = token(&data, "analyst", "read");
    let (cert, key, pem) = self_signed(tmp.path());
    let s = Serve::start_with(
        &data,
        None,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        Some(&pem),
    );
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    assert_eq!(s.call("GET", "/healthz", None, None).status, 200);
    let a = s.call(
        "POST",
        "/v1/events",
        Some(&ingest),
        Some(&access("tls-user", &["C-1", "C-2"])),
    );
    assert_eq!((a.status, &a.json["accepted"]), (200, &json!(1)), "{a:?}");
    assert!(eventually(WAIT, || {
        let a = s.call("GET", "/v1/scope?account=tls-user", Some(&read), None);
        a.status == 200 && a.json.to_string().contains("C-2")
    }));

    // Plain HTTP on the same port is refused, not answered in clear text.
    let plain = s.url.replacen("https://", "http://", 1);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    assert!(agent.get(format!("{plain}/healthz")).call().is_err());
    // A client that does not trust the certificate gets no answer either.
    let untrusting: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::Rustls)
                .build(),
        )
        .build()
        .into();
    assert!(untrusting.get(format!("{}/healthz", s.url)).call().is_err());
    s.stop();
}

#[test]
fn tls_files_come_from_the_settings_file_and_a_bad_key_stops_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(&tmp);
    let (_, _, pem) = self_signed(tmp.path());
    let settings = tmp.path().join("serve.toml");
    // Relative paths are taken from the settings file's folder.
    std::fs::write(
        &settings,
        "tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n",
    )
    .unwrap();
    let s = Serve::start_with(
        &data,
        None,
        &["--config", settings.to_str().unwrap()],
        Some(&pem),
    );
    assert!(s.url.starts_with("https://"), "{}", s.url);
    assert_eq!(s.call("GET", "/healthz", None, None).status, 200);
    s.stop();

    // A key that is not a key: refused at start, naming the file.
    std::fs::write(tmp.path().join("key.pem"), "not a key\n").unwrap();
    let out = support::vakt()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&settings)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("key.pem") && err.contains("PRIVATE KEY"),
        "{err}"
    );

    // Only one of the two: refused with the line to fix.
    std::fs::write(
        &settings,
        "listen = \"127.0.0.1:0\"\ntls_cert = \"cert.pem\"\n",
    )
    .unwrap();
    let out = support::vakt()
        .args(["serve", "--config"])
        .arg(&settings)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("serve.toml:2:") && err.contains("go together"),
        "{err}"
    );
}

#[test]
fn a_log_file_named_in_the_settings_is_followed_once_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(&tmp);
    let read = token(&data, "analyst", "read");
    let log = tmp.path().join("app.jsonl");
    std::fs::write(
        &log,
        format!(
            "{}\nthis is not an event\n{}\n",
            access("f.ola", &["C-10", "C-11"]),
            access("f.ola", &["C-12"])
        ),
    )
    .unwrap();
    let settings = tmp.path().join("serve.toml");
    std::fs::write(&settings, "follow = [\"app.jsonl\"]\n").unwrap();
    let scope = |s: &Serve| -> Vec<String> {
        let a = s.call("GET", "/v1/scope?account=f.ola", Some(&read), None);
        assert_eq!(a.status, 200, "{a:?}");
        let mut ids: Vec<String> = a.json["customers"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|c| c["customer"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    };
    let s = Serve::start_with(&data, None, &["--config", settings.to_str().unwrap()], None);
    assert!(
        eventually(WAIT, || scope(&s) == ["C-10", "C-11", "C-12"]),
        "{:?}",
        scope(&s)
    );
    // Lines written while it runs are picked up too.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    use std::io::Write;
    writeln!(f, "{}", access("f.ola", &["C-13"])).unwrap();
    drop(f);
    assert!(eventually(WAIT, || scope(&s).len() == 4), "{:?}", scope(&s));
    let metrics = s
        .agent
        .get(format!("{}/metrics", s.url))
        .header("Authorization", format!("Bearer {read}"))
        .call();
    let text = metrics.unwrap().body_mut().read_to_string().unwrap();
    assert!(text.contains("vakt_events_rejected_total 1"), "{text}");
    s.stop();
    let dead = std::fs::read_to_string(data.join(vakt_server::FOLLOW_REJECTS_FILE)).unwrap();
    assert!(
        dead.contains("\"line\":2") && dead.contains("this is not an event"),
        "{dead}"
    );

    // A restart reads the file again but records nothing twice.
    let recorded = || {
        vakt_ledger::Ledger::open_read(&vakt_ledger::DataDir { path: data.clone() })
            .unwrap()
            .len()
    };
    assert_eq!(recorded(), 3);
    let s = Serve::start_with(&data, None, &["--config", settings.to_str().unwrap()], None);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| writeln!(f, "{}", access("f.ola", &["C-14"])))
        .unwrap();
    assert!(eventually(WAIT, || scope(&s).len() == 5), "{:?}", scope(&s));
    s.stop();
    assert_eq!(recorded(), 4);
}

/// Two nodes on one PostgreSQL store, as behind one address: tokens made
/// on one are accepted by the other, also one made while both run,
/// and an exception added over one node's API suppresses what the other
/// node detects, so it makes no block.
#[test]
fn two_nodes_on_one_store_share_tokens_and_exceptions() {
    let pg = vakt_pgtemp::TempCluster::shared().unwrap();
    pg.psql("DROP DATABASE IF EXISTS pair").unwrap();
    pg.psql("CREATE DATABASE pair").unwrap();
    let url = pg.url("pair");
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    vakt(&["ledger", "store", &url], &a);
    vakt(&["ledger", "store", &url], &b);
    let directory = canary_directory(tmp.path());
    let (admin, ingest) = (token(&a, "admin", "admin"), token(&a, "proxy", "ingest"));
    let sb = Serve::start(&b, Some(&directory));
    let answered = sb.call("GET", "/v1/decisions", Some(&admin), None);
    assert_eq!(answered.status, 200, "{answered:?}");
    let sa = Serve::start(&a, Some(&directory));
    // Made with the CLI on a's data directory while both nodes run.
    let read = token(&a, "reader", "read");
    let taken = eventually(Duration::from_secs(5), || {
        sb.call("GET", "/v1/decisions", Some(&read), None).status == 200
    });
    assert!(taken, "a token made on a was not accepted by b within 5 s");

    let made = sa.call(
        "POST",
        "/v1/exceptions",
        Some(&admin),
        Some(r#"{"actor":"p3.bot","rule":"canary","reason":"a red-team exercise"}"#),
    );
    assert_eq!(made.status, 201, "{made:?}");
    let id = made.json["id"].as_str().unwrap().to_owned();
    let listed = eventually(Duration::from_secs(5), || {
        let l = sb.call("GET", "/v1/exceptions", Some(&admin), None).json;
        l.as_array()
            .is_some_and(|l| l.iter().any(|e| e["id"] == json!(id)))
    });
    assert!(listed, "b does not list a's exception {id} within 5 s");

    let batch = format!("{}\n", access("p3.bot", &["C-18", "C-900001"]));
    let posted = sb.call("POST", "/v1/events", Some(&ingest), Some(&batch));
    assert_eq!(posted.status, 200, "{posted:?}");
    let mut alerts = Value::Null;
    let suppressed = eventually(Duration::from_secs(10), || {
        alerts = sa
            .call(
                "GET",
                "/v1/alerts?rule=canary&suppressed=true",
                Some(&admin),
                None,
            )
            .json;
        alerts.as_array().is_some_and(|a| !a.is_empty())
    });
    assert!(suppressed, "no suppressed canary alert: {alerts}");
    assert_eq!(alerts[0]["vakt.suppressed_by"], json!(id));
    assert_eq!(alerts[0]["user.name"], "p3.bot");
    let decisions = sb.call("GET", "/v1/decisions", Some(&read), None).json;
    assert_eq!(decisions, json!([]), "the exception made no block on b");
    sa.stop();
    sb.stop();
    for d in [&a, &b] {
        assert!(vakt(&["ledger", "verify"], d).contains("entries"));
    }
}
