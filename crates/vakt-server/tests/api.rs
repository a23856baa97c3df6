//! The serve API over real HTTP on 127.0.0.1: tokens and roles, ingest
//! with good and bad lines, alerts from a pushed batch through every read
//! route and the report draft, the metrics, and CSP reports.

mod common;

use common::{eventually, series, start, Answer, Req, Running, Tokens, WAIT};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use vakt_ledger::tokens::Role;
use vakt_ledger::Ledger;

const JOURNAL: &str = vakt_server::JOURNAL_FILE;

/// An event time on 2 March 2026, as sent.
fn t(h: u32, m: u32, s: u32) -> String {
    format!("2026-03-02T{h:02}:{m:02}:{s:02}Z")
}

/// The same time as the server writes it back.
fn at(h: u32, m: u32, s: u32) -> String {
    format!("2026-03-02T{h:02}:{m:02}:{s:02}.000Z")
}

fn failed_login(when: &str, user: &str, ip: &str) -> String {
    json!({
        "@timestamp": when,
        "user.name": user,
        "source.ip": ip,
        "event.action": "login",
        "event.outcome": "failure",
    })
    .to_string()
}

fn read(when: &str, user: &str, action: &str, customers: &[String]) -> String {
    json!({
        "@timestamp": when,
        "user.name": user,
        "source.ip": "198.51.100.7",
        "event.action": action,
        "customer.ids": customers,
        "data.categories": ["name", "phone"],
    })
    .to_string()
}

fn customers(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("C-{i}")).collect()
}

fn journal_lines(s: &Running) -> Vec<Value> {
    std::fs::read_to_string(s.data.path.join(JOURNAL))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn metrics(s: &Running, tokens: &Tokens) -> String {
    let a = s.get("/metrics", Some(&tokens.read));
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        a.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text; version=1.0.0")),
        "{:?}",
        a.headers
    );
    a.text
}

fn metric(s: &Running, tokens: &Tokens, name: &str) -> Option<f64> {
    series(&metrics(s, tokens), name)
}

/// The `id`s of a JSON array of alerts, in order.
fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------- roles

const READS: [&str; 7] = [
    "/v1/decisions",
    "/v1/alerts",
    "/v1/alerts/none",
    "/v1/incidents",
    "/v1/scope?account=nobody",
    "/v1/canaries",
    "/v1/exposure",
];

fn event_line() -> String {
    read(&t(8, 0, 0), "u1", "lookup", &customers(1..3))
}

fn new_decision() -> Value {
    json!({"scope": "account", "value": "r17.anna", "action": "block", "ttl": "10m", "reason": "under review"})
}

/// A 403 that names the token's role.
fn assert_forbidden(a: &Answer, role: &str, what: &str) {
    assert_eq!(a.status, 403, "{what} with a {role} token: {}", a.text);
    assert!(
        a.error().contains(&format!("has the role {role}")),
        "{what}: {}",
        a.text
    );
}

#[test]
fn without_a_known_token_every_closed_route_answers_401_with_www_authenticate() {
    let (s, _) = start("", |_| {});
    let closed: Vec<(&str, &str)> = READS
        .iter()
        .map(|p| ("GET", *p))
        .chain([
            ("POST", "/v1/events"),
            ("POST", "/v1/decisions"),
            ("DELETE", "/v1/decisions/some-id"),
            ("POST", "/v1/reports/some-alert"),
        ])
        .collect();
    let unknown = format!("vakt_{}", "0".repeat(64));
    for (method, path) in closed {
        for (header, says) in [
            (None, "no token"),
            (
                Some("Basic dXNlcjpwdw==".to_owned()),
                "must be `Bearer <token>`",
            ),
            (Some(format!("Bearer {unknown}")), "not known"),
        ] {
            let a = s.send(Req {
                method,
                path,
                token: None,
                content_type: None,
                body: (method == "POST").then(|| b"{}".to_vec()),
                authorization: header.as_deref(),
            });
            assert_eq!(a.status, 401, "{method} {path} {header:?}: {}", a.text);
            assert_eq!(
                a.header("www-authenticate"),
                Some("Bearer realm=\"vakt\""),
                "{method} {path}"
            );
            assert!(a.error().contains(says), "{method} {path}: {}", a.text);
        }
    }
    // The open routes answer without one.
    assert_eq!(s.get("/healthz", None).json(), json!({"status": "ok"}));
    // Nothing was journaled by the refused posts.
    assert!(journal_lines(&s).is_empty());
    s.stop();
}

#[test]
fn each_role_reaches_its_routes_and_gets_403_on_the_others() {
    let (s, tokens) = start("", |_| {});
    let Tokens {
        ingest,
        read,
        analyst,
        admin,
    } = &tokens;

    // ingest: events only.
    let a = s.post("/v1/events", Some(ingest), &event_line());
    assert_eq!(
        (a.status, &a.json()["accepted"]),
        (200, &json!(1)),
        "{}",
        a.text
    );
    for p in READS {
        assert_forbidden(&s.get(p, Some(ingest)), "ingest", p);
    }
    assert_forbidden(
        &s.post_json("/v1/decisions", Some(ingest), &new_decision()),
        "ingest",
        "POST /v1/decisions",
    );
    assert_forbidden(
        &s.delete("/v1/decisions/x", Some(ingest)),
        "ingest",
        "DELETE",
    );
    assert_forbidden(
        &s.post("/v1/reports/x", Some(ingest), ""),
        "ingest",
        "POST /v1/reports",
    );

    // read: every read, no change and no events.
    for token in [read, analyst, admin] {
        for p in READS {
            let a = s.get(p, Some(token));
            let expected = if p == "/v1/alerts/none" { 404 } else { 200 };
            assert_eq!(a.status, expected, "GET {p}: {}", a.text);
            assert!(a.json().is_array() || a.json().is_object(), "GET {p}");
        }
    }
    assert_forbidden(
        &s.post_json("/v1/decisions", Some(read), &new_decision()),
        "read",
        "POST /v1/decisions",
    );
    assert_eq!(
        s.get("/v1/decisions?all=true", Some(read)).json(),
        json!([])
    );
    assert_forbidden(&s.delete("/v1/decisions/x", Some(read)), "read", "DELETE");
    assert_forbidden(&s.post("/v1/reports/x", Some(read), ""), "read", "report");
    // analyst: incidents, not decisions.
    assert_forbidden(
        &s.post_json("/v1/decisions", Some(analyst), &new_decision()),
        "analyst",
        "POST /v1/decisions",
    );
    assert_forbidden(
        &s.post("/v1/events", Some(read), &event_line()),
        "read",
        "POST /v1/events",
    );

    // admin: decisions and reports as well; events stay the ingest role's.
    let a = s.post_json("/v1/decisions", Some(admin), &new_decision());
    assert_eq!(a.status, 201, "{}", a.text);
    let d = a.json();
    let id = d["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("manual-account-r17.anna-"), "{id}");
    assert_eq!(
        (&d["scope"], &d["value"], &d["action"], &d["reason"]),
        (
            &json!("account"),
            &json!("r17.anna"),
            &json!("block"),
            &json!("under review")
        )
    );
    assert_eq!(
        a.header("location"),
        Some(format!("/v1/decisions/{id}").as_str())
    );
    // In force now, seen by a read token.
    assert_eq!(
        ids(&s.get("/v1/decisions", Some(read)).json()),
        [id.as_str()]
    );
    let a = s.delete(&format!("/v1/decisions/{id}"), Some(read));
    assert_forbidden(&a, "read", "DELETE");
    let a = s.delete(&format!("/v1/decisions/{id}"), Some(admin));
    assert_eq!((a.status, a.text.as_str()), (204, ""));
    assert_eq!(
        s.get("/v1/decisions?all=true", Some(read)).json(),
        json!([])
    );
    let a = s.delete(&format!("/v1/decisions/{id}"), Some(admin));
    assert_eq!(a.status, 404, "{}", a.text);
    assert!(
        a.error().starts_with(&format!("no decision {id}")),
        "{}",
        a.text
    );
    let a = s.post("/v1/reports/none", Some(admin), "");
    assert_eq!(a.status, 404, "{}", a.text);
    assert!(a.error().starts_with("no alert none"), "{}", a.text);
    assert_forbidden(
        &s.post("/v1/events", Some(admin), &event_line()),
        "admin",
        "POST /v1/events",
    );
    // Only the ingest token's one line went in.
    assert_eq!(journal_lines(&s).len(), 1);
    s.stop();
}

#[test]
fn revoked_tokens_answer_401_and_the_others_keep_working() {
    let (s, tokens) = start("", |_| {});
    let can = |role: Role| match role {
        Role::Ingest => s.post("/v1/events", Some(tokens.of(role)), &event_line()),
        _ => s.get("/v1/alerts", Some(tokens.of(role))),
    };
    for r in Role::ALL {
        assert_eq!(can(r).status, 200, "{r} before any revocation");
    }
    let mut revoked = Vec::new();
    for r in [Role::Read, Role::Admin, Role::Ingest] {
        s.revoke(r.as_str());
        revoked.push(r);
        for other in Role::ALL {
            let a = can(other);
            if revoked.contains(&other) {
                assert_eq!(a.status, 401, "{other} revoked: {}", a.text);
                assert!(a.error().contains("not known"), "{}", a.text);
                assert!(a.header("www-authenticate").is_some());
            } else {
                assert_eq!(a.status, 200, "{other} not revoked: {}", a.text);
            }
        }
    }
    s.stop();
}

#[test]
fn a_decision_can_be_lifted_at_its_location_whatever_its_value() {
    let (s, tokens) = start("", |_| {});
    let admin = Some(tokens.admin.as_str());
    for value in ["CORP\\åsa lind/ops", "r17.anna", "2001:db8::7"] {
        let scope = if value.contains("::") {
            "ip"
        } else {
            "account"
        };
        let a = s.post_json(
            "/v1/decisions",
            admin,
            &json!({"scope": scope, "value": value, "action": "throttle", "ttl": "1h"}),
        );
        assert_eq!(a.status, 201, "{value}: {}", a.text);
        let d = a.json();
        assert_eq!(d["value"], value);
        assert_eq!(d["reason"], "added over the API by token admin");
        let location = a
            .header("location")
            .unwrap_or_else(|| panic!("{value}: no Location in {:?}", a.headers))
            .to_owned();
        let listed = s.get("/v1/decisions", admin).json();
        assert_eq!(ids(&listed), [d["id"].as_str().unwrap().to_owned()]);
        let a = s.delete(&location, admin);
        assert_eq!(a.status, 204, "{value}: DELETE {location}: {}", a.text);
        assert_eq!(s.get("/v1/decisions?all=true", admin).json(), json!([]));
    }
    // Bodies that are not a decision say what to write.
    for (body, says) in [
        (
            json!({"scope": "user", "value": "a", "action": "block", "ttl": "1h"}),
            "is not a scope",
        ),
        (
            json!({"scope": "account", "value": "a", "action": "ban", "ttl": "1h"}),
            "is not an action",
        ),
        (
            json!({"scope": "account", "value": " ", "action": "block", "ttl": "1h"}),
            "`value` is empty",
        ),
        (
            json!({"scope": "ip", "value": "host-1", "action": "block", "ttl": "1h"}),
            "is not an IP address",
        ),
        (
            json!({"scope": "account", "value": "a", "action": "block", "ttl": "soon"}),
            "is not a duration",
        ),
        (
            json!({"scope": "account", "value": "a", "action": "block", "ttl": "400d"}),
            "at most 365 days",
        ),
        (
            json!({"scope": "account", "value": "a\u{1b}[2J", "action": "block", "ttl": "1h"}),
            "control character",
        ),
        (
            json!({"scope": "account", "value": "a", "action": "block", "ttl": "1h", "until": "x"}),
            "must be a JSON object",
        ),
    ] {
        let a = s.post_json("/v1/decisions", admin, &body);
        assert_eq!(a.status, 400, "{body}: {}", a.text);
        assert!(a.error().contains(says), "{body}: {}", a.text);
    }
    assert_eq!(s.get("/v1/decisions?all=true", admin).json(), json!([]));
    // Addresses are kept in the form enforcement compares.
    for (given, kept) in [
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("198.51.100.9/24", "198.51.100.0/24"),
    ] {
        let a = s.post_json(
            "/v1/decisions",
            admin,
            &json!({"scope": "ip", "value": given, "action": "block", "ttl": "1h"}),
        );
        assert_eq!(
            (a.status, a.json()["value"].clone()),
            (201, json!(kept)),
            "{given}: {}",
            a.text
        );
    }
    s.stop();
}

// ---------------------------------------------------------------- ingest

#[test]
fn a_batch_keeps_its_good_lines_and_names_the_bad_ones_by_line_number() {
    let (s, tokens) = start("", |_| {});
    let ingest = Some(tokens.ingest.as_str());
    let mut body = Vec::new();
    for line in [
        read(&t(8, 0, 0), "u1", "lookup", &customers(1..3)), // 1
        "not json".to_owned(),                               // 2
        String::new(),                                       // 3: blank, skipped
        read(&t(8, 0, 5), "u2", "lookup", &customers(3..4)), // 4
        json!({"@timestamp": t(8, 0, 6), "event.action": "lookup"}).to_string(), // 5: no user
        json!({"@timestamp": "yesterday", "user.name": "u3", "event.action": "lookup"}).to_string(), // 6
        json!({"@timestamp": t(8, 0, 7), "event.kind": "flow", "host.name": "lt-1", "destination.ip": "203.0.113.9", "source.bytes": 4096}).to_string(), // 7
    ] {
        body.extend_from_slice(line.as_bytes());
        body.push(b'\n');
    }
    body.extend_from_slice(b"{\"user.name\": \"\xff\xfe\"}\r\n"); // 8: not UTF-8
    body.extend_from_slice(read(&t(8, 0, 9), "u1", "lookup", &customers(9..10)).as_bytes()); // 9, no final newline
    let a = s.send(Req {
        method: "POST",
        path: "/v1/events",
        token: ingest,
        content_type: Some("application/x-ndjson"),
        body: Some(body),
        authorization: None,
    });
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(v["accepted"], 4, "{v}");
    assert!(v.get("error").is_none(), "{v}");
    let rejected = v["rejected"].as_array().unwrap();
    let lines: Vec<u64> = rejected
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [2, 5, 6, 8], "{v}");
    for r in rejected {
        assert!(!r["error"].as_str().unwrap().is_empty(), "{r}");
    }
    assert!(
        rejected[3]["error"].as_str().unwrap().contains("UTF-8"),
        "{v}"
    );

    // The good lines, in order, are the journal; their accesses reach the ledger.
    let journal = journal_lines(&s);
    let users: Vec<&str> = journal
        .iter()
        .map(|e| e["user.name"].as_str().or(e["host.name"].as_str()).unwrap())
        .collect();
    assert_eq!(users, ["u1", "u2", "lt-1", "u1"]);
    let read_token = Some(tokens.read.as_str());
    let scope = eventually(WAIT, || {
        let v = s.get("/v1/scope?account=u1", read_token).json();
        (v["customers"].as_array().unwrap().len() == 3).then_some(v)
    })
    .expect("u1's accesses reach the ledger");
    let got: Vec<&str> = scope["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["C-1", "C-2", "C-9"]);
    assert_eq!(scope["accesses"], 2);
    // Journal line numbers are the ledger's lines.
    let c3 = s.get("/v1/scope?customer=C-3", read_token).json();
    let acc = c3["accesses"].as_array().unwrap();
    assert_eq!(acc.len(), 1, "{c3}");
    assert_eq!(
        (&acc[0]["account"], &acc[0]["source"], &acc[0]["line"]),
        (&json!("u2"), &json!(JOURNAL), &json!(2))
    );
    let none = s.get("/v1/scope?account=u3", read_token).json();
    assert_eq!(none["accesses"], 0, "the bad line of u3 was not kept");

    // A batch of only bad lines: 400, nothing kept.
    let a = s.post("/v1/events", ingest, "{\n\n[1]\n");
    assert_eq!(a.status, 400, "{}", a.text);
    let v = a.json();
    assert_eq!(v["accepted"], 0);
    assert_eq!(
        v["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["line"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 3]
    );
    assert!(v["error"].as_str().unwrap().contains("no line"), "{v}");
    assert_eq!(journal_lines(&s).len(), 4);
    // An empty body is fine and keeps nothing.
    let a = s.post("/v1/events", ingest, "");
    assert_eq!(a.json(), json!({"accepted": 0, "rejected": []}));
    assert_eq!(metric(&s, &tokens, "vakt_events_received_total"), Some(4.0));
    assert_eq!(metric(&s, &tokens, "vakt_events_rejected_total"), Some(6.0));
    let report = s.stop();
    assert_eq!((report.events, report.appended), (4, 3));
}

// ---------------------------------------------------------------- alerts

const DIRECTORY: &str = r#"
[notification]
regimes = ["gdpr", "telecom"]

[[organization]]
id = "reseller-17"
kind = "reseller"
regimes = ["nis2"]

[[organization]]
id = "partner-3"
kind = "partner"

[[account]]
name = "r17.anna"
organization = "reseller-17"
role = "sales"

[[account]]
name = "p3.bot"
organization = "partner-3"
role = "sales"

[[canary]]
customer_id = "C-900001"
label = "planted 2026-02"

[[policy]]
rule = "canary"
min_severity = "critical"
action = "block"
ttl = "1h"
"#;

/// Events of one day, pushed in one batch: r17.anna fails 25 logins at
/// 07:30, reads C-100..C-109 at 07:45 and C-110..C-129 with the canary at
/// 08:00; p3.bot fails 25 logins at 10:00; c.carl reads C-200 and the
/// canary at 12:00. Two bad lines sit in between.
fn batch() -> (String, Vec<u64>) {
    let mut lines = Vec::new();
    for i in 0..25 {
        lines.push(failed_login(&t(7, 30, i), "r17.anna", "198.51.100.7"));
    }
    lines.push(read(
        &t(7, 45, 0),
        "r17.anna",
        "lookup",
        &customers(100..110),
    ));
    lines.push("{\"@timestamp\": ".to_owned());
    let mut with_canary = customers(110..130);
    with_canary.push("C-900001".into());
    lines.push(read(&t(8, 0, 0), "r17.anna", "search", &with_canary));
    for i in 0..25 {
        lines.push(failed_login(&t(10, 0, i), "p3.bot", "203.0.113.50"));
    }
    lines.push(json!({"user.name": "c.carl", "event.action": "lookup"}).to_string());
    lines.push(read(
        &t(12, 0, 0),
        "c.carl",
        "lookup",
        &["C-200".into(), "C-900001".into()],
    ));
    (lines.join("\n"), vec![27, 54])
}

/// The four alerts of [`batch`].
struct Alerts {
    anna_logins: String,
    anna_canary: String,
    bot_logins: String,
    carl_canary: String,
}

/// A server with [`DIRECTORY`], the batch pushed, and its four alerts listed.
fn scenario(tweak: impl FnOnce(&mut vakt_server::Config)) -> (Running, Tokens, Alerts) {
    let (s, tokens) = start(DIRECTORY, tweak);
    let (body, bad) = batch();
    let a = s.post("/v1/events", Some(&tokens.ingest), &body);
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(v["accepted"], 53, "{v}");
    let lines: Vec<u64> = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, bad);
    let list = eventually(WAIT, || {
        let v = s.get("/v1/alerts", Some(&tokens.read)).json();
        (v.as_array().unwrap().len() >= 4).then_some(v)
    })
    .expect("the batch's alerts are listed");
    let list = list.as_array().unwrap();
    let find = |rule: &str, user: &str| {
        let found: Vec<&Value> = list
            .iter()
            .filter(|a| a["rule.id"] == rule && a["user.name"] == user)
            .collect();
        assert_eq!(found.len(), 1, "{rule} for {user} in {list:#?}");
        found[0]["id"].as_str().unwrap().to_owned()
    };
    let alerts = Alerts {
        anna_logins: find("login_failures", "r17.anna"),
        anna_canary: find("canary", "r17.anna"),
        bot_logins: find("login_failures", "p3.bot"),
        carl_canary: find("canary", "c.carl"),
    };
    assert_eq!(list.len(), 4, "exactly the four expected alerts: {list:#?}");
    (s, tokens, alerts)
}

#[test]
fn alerts_are_filtered_by_rule_severity_actor_organization_and_time() {
    let (s, tokens, al) = scenario(|_| {});
    let list = |q: &str| -> Vec<String> {
        let a = s.get(&format!("/v1/alerts{q}"), Some(&tokens.read));
        assert_eq!(a.status, 200, "{q}: {}", a.text);
        ids(&a.json())
    };
    let (al_, ac, bl, cc) = (
        al.anna_logins.as_str(),
        al.anna_canary.as_str(),
        al.bot_logins.as_str(),
        al.carl_canary.as_str(),
    );
    // Most recently active first.
    assert_eq!(list(""), [cc, bl, ac, al_]);
    assert_eq!(list("?rule=canary"), [cc, ac]);
    assert_eq!(list("?rule=login_failures"), [bl, al_]);
    assert_eq!(list("?rule=rate"), Vec::<String>::new());
    assert_eq!(list("?severity=critical"), [cc, ac]);
    assert_eq!(list("?severity=high"), [cc, ac]);
    assert_eq!(list("?severity=medium"), [cc, bl, ac, al_]);
    assert_eq!(list("?actor=r17.anna"), [ac, al_]);
    assert_eq!(list("?actor=p3.bot"), [bl]);
    assert_eq!(list("?actor=nobody"), Vec::<String>::new());
    assert_eq!(list("?organization=reseller-17"), [ac, al_]);
    assert_eq!(list("?organization=partner-3"), [bl]);
    assert_eq!(list("?rule=canary&actor=r17.anna"), [ac]);
    assert_eq!(
        list("?rule=login_failures&severity=critical"),
        Vec::<String>::new()
    );
    // since: active at or after; until: began at or before.
    assert_eq!(list(&format!("?since={}", t(9, 0, 0))), [cc, bl]);
    assert_eq!(list(&format!("?until={}", t(9, 0, 0))), [ac, al_]);
    assert_eq!(
        list(&format!("?since={}&until={}", t(9, 0, 0), t(11, 0, 0))),
        [bl]
    );
    // anna's logins ran from 07:30:00 to 07:30:19.
    assert_eq!(list(&format!("?since={}", t(7, 30, 19))), [cc, bl, ac, al_]);
    assert_eq!(list(&format!("?since={}", t(7, 30, 20))), [cc, bl, ac]);
    assert_eq!(list(&format!("?until={}", t(7, 30, 0))), [al_]);
    assert_eq!(
        list(&format!("?until={}", t(7, 29, 59))),
        Vec::<String>::new()
    );
    assert_eq!(list("?until=2026-03-02"), Vec::<String>::new());
    assert_eq!(list("?since=2026-03-03"), Vec::<String>::new());
    // The latest line of each: canary alerts are critical and name the canary.
    let all = s.get("/v1/alerts", Some(&tokens.read)).json();
    for a in all.as_array().unwrap() {
        let expected = if a["rule.id"] == "canary" {
            "critical"
        } else {
            "medium"
        };
        assert_eq!(a["severity"], expected, "{a}");
    }
    // Bad filters are 400s that say what to write.
    for (q, says) in [
        ("?severity=loud", "use low, medium, high or critical"),
        ("?since=yesterday", "is not a time"),
        ("?limit=0", "from 1 to 10000"),
        ("?cursor=nonsense", "is not a cursor"),
        ("?sort=asc", "unknown query parameter `sort`"),
    ] {
        let a = s.get(&format!("/v1/alerts{q}"), Some(&tokens.read));
        assert_eq!(a.status, 400, "{q}: {}", a.text);
        assert!(a.error().contains(says), "{q}: {}", a.text);
    }
    s.stop();
}

#[test]
fn alert_pages_follow_the_cursor_without_overlap() {
    let (s, tokens, al) = scenario(|_| {});
    let read = Some(tokens.read.as_str());
    let all = ids(&s.get("/v1/alerts", read).json());
    assert_eq!(all.len(), 4);
    for limit in [1, 2, 3] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for page in 0.. {
            assert!(page <= 4, "limit {limit}: more pages than alerts");
            let q = match &cursor {
                None => format!("/v1/alerts?limit={limit}"),
                Some(c) => format!("/v1/alerts?limit={limit}&cursor={c}"),
            };
            let a = s.get(&q, read);
            assert_eq!(a.status, 200, "{q}: {}", a.text);
            let got = ids(&a.json());
            assert!(got.len() <= limit && !got.is_empty(), "{q}: {got:?}");
            for id in &got {
                assert!(!seen.contains(id), "{id} on two pages (limit {limit})");
            }
            seen.extend(got);
            cursor = a.header("vakt-next-cursor").map(str::to_owned);
            match &cursor {
                Some(c) => {
                    // The Link header carries the same cursor and the limit.
                    let link = a.header("link").expect("a Link with the cursor");
                    assert!(
                        link.starts_with("</v1/alerts?limit=")
                            && link.ends_with(">; rel=\"next\"")
                            && link.contains(&format!("limit={limit}&")),
                        "{link}"
                    );
                    assert!(seen.len() < all.len(), "a cursor after the last alert");
                    assert!(!c.is_empty());
                }
                None => {
                    assert!(a.header("link").is_none());
                    break;
                }
            }
        }
        assert_eq!(seen, all, "limit {limit}: the pages make the whole list");
    }
    // The Link keeps the filters: follow it as it is.
    let a = s.get("/v1/alerts?severity=critical&limit=1", read);
    assert_eq!(ids(&a.json()), [al.carl_canary.as_str()]);
    let link = a.header("link").unwrap();
    let next = link
        .strip_prefix('<')
        .and_then(|l| l.split_once('>'))
        .unwrap()
        .0
        .to_owned();
    assert!(next.contains("severity=critical"), "{next}");
    let a = s.get(&next, read);
    assert_eq!(ids(&a.json()), [al.anna_canary.as_str()]);
    assert!(a.header("vakt-next-cursor").is_none(), "{:?}", a.headers);
    // offset skips within a page.
    assert_eq!(
        ids(&s.get("/v1/alerts?limit=2&offset=1", read).json()),
        all[1..3]
    );
    s.stop();
}

#[test]
fn one_alert_has_its_evidence_and_the_accounts_hourly_activity() {
    let (s, tokens, al) = scenario(|_| {});
    let read = Some(tokens.read.as_str());
    let a = s.get(&format!("/v1/alerts/{}", al.anna_canary), read);
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    let alert = &v["alert"];
    assert_eq!(alert["id"], al.anna_canary.as_str());
    assert_eq!(
        (
            &alert["rule.id"],
            &alert["severity"],
            &alert["user.name"],
            &alert["organization.id"]
        ),
        (
            &json!("canary"),
            &json!("critical"),
            &json!("r17.anna"),
            &json!("reseller-17")
        )
    );
    assert_eq!(alert["first_seen"], at(8, 0, 0));
    assert_eq!(alert["customers"], 21);
    assert_eq!(alert["evidence"]["canaries"], json!(["C-900001"]));
    assert_eq!(alert["evidence"]["observed_touches"], 1);
    assert_eq!(alert["evidence"]["baseline_touches"], 0);
    // 7 days before the alert's hour to a day after; 25 logins and a
    // lookup at 07:xx, the canary read at 08:00.
    let act = &v["activity"];
    assert_eq!(act["account"], "r17.anna");
    assert_eq!(act["since"], "2026-02-23T08:00:00.000Z");
    assert_eq!(act["until"], "2026-03-03T08:00:00.000Z");
    assert_eq!(
        act["hours"],
        json!([
            {"hour": at(7, 0, 0), "accesses": 26},
            {"hour": at(8, 0, 0), "accesses": 1},
        ])
    );
    assert_eq!(
        act["baseline"],
        json!({"active_hours": 1, "median": 26, "p90": 26})
    );
    // The bot's alert: its own logins, no hour before them.
    let v = s.get(&format!("/v1/alerts/{}", al.bot_logins), read).json();
    assert_eq!(v["alert"]["first_seen"], at(10, 0, 0));
    assert_eq!(v["alert"]["@timestamp"], at(10, 0, 19));
    assert_eq!(
        v["alert"]["evidence"]["observed_failures_10min"].as_f64(),
        Some(20.0)
    );
    assert_eq!(
        v["activity"]["hours"],
        json!([{"hour": at(10, 0, 0), "accesses": 25}])
    );
    assert_eq!(v["activity"]["baseline"]["active_hours"], 0);
    // Unknown ids and stray parameters.
    let a = s.get("/v1/alerts/canary-000000000000", read);
    assert_eq!(a.status, 404, "{}", a.text);
    assert!(
        a.error()
            .starts_with("no alert canary-000000000000; GET /v1/alerts lists"),
        "{}",
        a.text
    );
    let a = s.get(&format!("/v1/alerts/{}?full=1", al.anna_canary), read);
    assert_eq!(a.status, 400, "{}", a.text);
    s.stop();
}

#[test]
fn incidents_group_an_actors_alerts() {
    let (s, tokens, al) = scenario(|_| {});
    let get = |q: &str| {
        let a = s.get(&format!("/v1/incidents{q}"), Some(&tokens.read));
        assert_eq!(a.status, 200, "{q}: {}", a.text);
        a.json()
    };
    let all = get("");
    let actors: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors, ["c.carl", "p3.bot", "r17.anna"]);
    let anna = &all[2];
    assert_eq!(anna["id"], format!("r17.anna/{}", al.anna_logins));
    assert_eq!(
        strings(&anna["alerts"]),
        [al.anna_logins.as_str(), al.anna_canary.as_str()]
    );
    assert_eq!(anna["rules"], json!(["canary", "login_failures"]));
    assert_eq!(anna["severity"], "critical");
    assert_eq!(anna["account"], "r17.anna");
    assert_eq!(anna["organization"], "reseller-17");
    assert_eq!(anna["customers"], 21);
    assert_eq!(
        (&anna["first"], &anna["last"]),
        (&json!(at(7, 30, 0)), &json!(at(8, 0, 0)))
    );
    assert_eq!(strings(&all[1]["alerts"]), [al.bot_logins.as_str()]);
    assert_eq!(all[1]["severity"], "medium");
    assert_eq!(strings(&all[0]["alerts"]), [al.carl_canary.as_str()]);
    assert_eq!(all[0]["organization"], Value::Null);
    // Filters.
    assert_eq!(get("?actor=r17.anna").as_array().unwrap().len(), 1);
    assert_eq!(get("?actor=r17.anna")[0]["id"], anna["id"]);
    let later = get(&format!("?since={}", t(9, 0, 0)));
    assert_eq!(later.as_array().unwrap().len(), 2);
    assert_eq!(later[1]["actor"], "p3.bot");
    let early = get(&format!("?until={}", t(7, 40, 0)));
    assert_eq!(early.as_array().unwrap().len(), 1);
    assert_eq!(early[0]["actor"], "r17.anna");
    let one = get("?limit=1");
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["actor"], "c.carl");
    s.stop();
}

/// An analyst acknowledges, assigns, notes and closes an incident through
/// the API; each step is in its history with who, how and from where, a
/// read token may look but not change, and the ledger still verifies.
#[test]
fn analysts_work_an_incident_and_every_change_is_in_its_history() {
    let (s, tokens, al) = scenario(|_| {});
    let id = format!("r17.anna/{}", al.anna_logins);
    let path = format!("/v1/incidents/{}", id.replace('/', "%2F"));
    let a = s.get(&path, Some(&tokens.read));
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(
        (
            &v["incident"]["id"],
            &v["incident"]["status"],
            &v["incident"]["owner"]
        ),
        (&json!(id), &json!("new"), &Value::Null)
    );
    assert_eq!(v["history"], json!([]));
    // Any alert of the incident names it too.
    let by_alert = s.get(
        &format!("/v1/incidents/{}", al.anna_canary),
        Some(&tokens.read),
    );
    assert_eq!(by_alert.json()["incident"]["id"], json!(id));

    let ack = json!({"status": "acknowledged", "owner": "ana"});
    assert_forbidden(
        &s.patch_json(&path, Some(&tokens.read), &ack),
        "read",
        "PATCH",
    );
    assert_eq!(s.patch_json(&path, None, &ack).status, 401);
    let a = s.patch_json(&path, Some(&tokens.analyst), &ack);
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(v["incident"]["status"], "acknowledged");
    assert_eq!(v["incident"]["owner"], "ana");
    assert_eq!(v["incident"]["updated_by"], "token analyst");
    let h = &v["history"][0];
    assert_eq!(
        (&h["action"], &h["who"], &h["via"], &h["source"]),
        (
            &json!("incident.update"),
            &json!("token analyst"),
            &json!("api"),
            &json!("127.0.0.1")
        )
    );
    assert_eq!(
        h["details"]["changes"]["status"],
        json!(["new", "acknowledged"])
    );
    assert_eq!(h["details"]["changes"]["owner"], json!([null, "ana"]));

    let a = s.patch_json(
        &path,
        Some(&tokens.analyst),
        &json!({"note": "asked the reseller"}),
    );
    assert_eq!(
        a.json()["history"][1]["details"]["note"],
        "asked the reseller"
    );
    for (body, says) in [
        (json!({"status": "resolved"}), "needs a classification"),
        (
            json!({"classification": "false_positive"}),
            "needs a reason",
        ),
        (json!({"status": "closed"}), "unknown variant"),
        (json!({"owner": "ana", "colour": "red"}), "unknown field"),
        (json!({}), "nothing to change"),
        (json!({"note": "\u{1b}[2J"}), "control characters"),
        (
            json!({"classification": "true_positive", "reason": "r", "exception": {}}),
            "goes with classifying the incident as false_positive",
        ),
        (
            json!({"classification": "false_positive", "reason": "r", "exception": {"for": "soon"}}),
            "not a duration",
        ),
    ] {
        let a = s.patch_json(&path, Some(&tokens.analyst), &body);
        assert_eq!(a.status, 400, "{body}: {}", a.text);
        assert!(a.error().contains(says), "{body}: {}", a.text);
    }
    let close = json!({"status": "resolved", "classification": "false_positive", "reason": "the reseller's nightly sync", "exception": {"for": "30d"}});
    let a = s.patch_json(&path, Some(&tokens.admin), &close);
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(
        (
            &v["incident"]["status"],
            &v["incident"]["classification"],
            &v["incident"]["reason"]
        ),
        (
            &json!("resolved"),
            &json!("false_positive"),
            &json!("the reseller's nightly sync")
        )
    );
    assert_eq!(v["history"].as_array().unwrap().len(), 3);
    assert_eq!(v["history"][2]["reason"], "the reseller's nightly sync");
    assert_eq!(v["history"][2]["who"], "token admin");
    // Closing as a false positive suppressed the actor for each of its rules.
    let made = strings(&v["history"][2]["details"]["exceptions"]);
    assert_eq!(made.len(), 2, "{v}");
    let excs = s.get("/v1/exceptions", Some(&tokens.read)).json();
    let mut pairs: Vec<(String, String)> = excs
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["reason"], "the reseller's nightly sync");
            assert!(made.contains(&e["id"].as_str().unwrap().to_owned()));
            (
                e["actor"].as_str().unwrap().into(),
                e["rule"].as_str().unwrap().into(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [
            ("r17.anna".to_owned(), "canary".to_owned()),
            ("r17.anna".to_owned(), "login_failures".to_owned())
        ]
    );

    // The list shows and filters by the workflow.
    let list = |q: &str| s.get(&format!("/v1/incidents{q}"), Some(&tokens.read));
    let resolved = list("?status=resolved").json();
    assert_eq!(resolved.as_array().unwrap().len(), 1);
    assert_eq!(resolved[0]["id"], json!(id));
    let open = list("?status=new,acknowledged,contained").json();
    assert_eq!(open.as_array().unwrap().len(), 2);
    assert!(open
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "new"));
    assert_eq!(list("?owner=ana").json().as_array().unwrap().len(), 1);
    assert_eq!(
        list("?owner=").json().as_array().unwrap().len(),
        2,
        "unassigned"
    );
    assert_eq!(list("?status=closed").status, 400);
    let a = s.patch_json(
        "/v1/incidents/nobody%2Fnothing",
        Some(&tokens.analyst),
        &ack,
    );
    assert_eq!(a.status, 404, "{}", a.text);
    let report = vakt_ledger::verify::verify(&s.data).unwrap();
    assert_eq!(report.problem, None, "{report:?}");
    s.stop();
}

fn scope_customers(v: &Value) -> BTreeSet<String> {
    v["customers"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|c| c["customer"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn scope_canaries_and_exposure_name_what_was_read() {
    let (s, tokens, _) = scenario(|_| {});
    let get = |q: &str| {
        let a = s.get(q, Some(&tokens.read));
        assert_eq!(a.status, 200, "{q}: {}", a.text);
        a.json()
    };
    // Exactly the customers pushed for r17.anna.
    let scope = get("/v1/scope?account=r17.anna");
    let mut pushed: BTreeSet<String> = customers(100..130).into_iter().collect();
    pushed.insert("C-900001".into());
    assert_eq!(scope_customers(&scope), pushed);
    assert_eq!(scope["account"], "r17.anna");
    assert_eq!(scope["accesses"], 27, "25 logins and 2 reads");
    assert_eq!(scope["source_ips"], json!({"198.51.100.7": 27}));
    assert_eq!(scope["by_category"], json!({"name": 31, "phone": 31}));
    assert_eq!(scope["since"], Value::Null, "no lower bound asked");
    assert_eq!(scope["until"], Value::Null, "no upper bound asked");
    let c = &scope["customers"][0];
    assert_eq!(
        (&c["customer"], &c["first"], &c["reads"]),
        (&json!("C-100"), &json!(at(7, 45, 0)), &json!(1))
    );
    // A window, and a network, narrow it.
    let since = get(&format!("/v1/scope?account=r17.anna&since={}", t(7, 50, 0)));
    let mut later: BTreeSet<String> = customers(110..130).into_iter().collect();
    later.insert("C-900001".into());
    assert_eq!(scope_customers(&since), later);
    assert_eq!(since["since"], at(7, 50, 0));
    let until = get(&format!("/v1/scope?account=r17.anna&until={}", t(7, 50, 0)));
    assert_eq!(
        scope_customers(&until),
        customers(100..110).into_iter().collect()
    );
    assert_eq!(until["accesses"], 26);
    assert!(scope_customers(&get("/v1/scope?account=r17.anna&ip=203.0.113.0/24")).is_empty());
    assert_eq!(
        scope_customers(&get("/v1/scope?account=r17.anna&ip=198.51.100.0/24")),
        pushed
    );
    assert_eq!(
        scope_customers(&get("/v1/scope?account=c.carl")),
        ["C-200".to_owned(), "C-900001".to_owned()].into()
    );
    // Who read the canary.
    let who = get("/v1/scope?customer=C-900001");
    let readers: Vec<(&str, &str)> = who["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["account"].as_str().unwrap(), a["at"].as_str().unwrap()))
        .collect();
    assert_eq!(
        readers,
        [
            ("r17.anna", at(8, 0, 0).as_str()),
            ("c.carl", at(12, 0, 0).as_str())
        ]
    );
    for q in [
        "/v1/scope",
        "/v1/scope?account=r17.anna&customer=C-1",
        "/v1/scope?account=",
        "/v1/scope?account=r17.anna&ip=nonsense",
    ] {
        let a = s.get(q, Some(&tokens.read));
        assert_eq!(a.status, 400, "{q}: {}", a.text);
    }

    // The canary and who read it.
    assert_eq!(
        get("/v1/canaries"),
        json!([{
            "customer_id": "C-900001",
            "label": "planted 2026-02",
            "read": true,
            "reads": 2,
            "first_read": at(8, 0, 0),
            "last_read": at(12, 0, 0),
            "by": ["c.carl", "r17.anna"],
        }])
    );

    // Exposure: r17.anna reached the most, p3.bot no customer.
    let accounts = get("/v1/exposure?kind=account");
    let rank: Vec<(&str, u64)> = accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap(),
                e["customers"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rank, [("r17.anna", 31), ("c.carl", 2), ("p3.bot", 0)]);
    let values: Vec<f64> = accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_f64().unwrap())
        .collect();
    assert!(values[0] > values[1] && values[1] > values[2], "{values:?}");
    let orgs = get("/v1/exposure?kind=organization");
    let names: Vec<&str> = orgs
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["reseller-17", "partner-3"]);
    assert_eq!(get("/v1/exposure?limit=1").as_array().unwrap().len(), 1);
    assert_eq!(get("/v1/exposure").as_array().unwrap().len(), 5);
    // The exponent: value = value per record x customers^m.
    let v1 = get("/v1/exposure?kind=account&m=1")[0]["value"]
        .as_f64()
        .unwrap();
    let v2 = get("/v1/exposure?kind=account&m=2")[0]["value"]
        .as_f64()
        .unwrap();
    assert!((v2 / v1 - 31.0).abs() < 1e-9, "{v1} {v2}");
    for q in ["/v1/exposure?m=4", "/v1/exposure?kind=host"] {
        assert_eq!(s.get(q, Some(&tokens.read)).status, 400, "{q}");
    }
    s.stop();
}

#[test]
fn the_policy_blocks_the_canary_readers() {
    let (s, tokens, al) = scenario(|_| {});
    let ids_values = |v: Value| -> Vec<(String, String, String)> {
        let mut got: Vec<_> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["id"].as_str().unwrap().to_owned(),
                    d["value"].as_str().unwrap().to_owned(),
                    d["action"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        got.sort();
        got
    };
    let mut expected = vec![
        (
            format!("{}-block-account", al.anna_canary),
            "r17.anna".to_owned(),
            "block".to_owned(),
        ),
        (
            format!("{}-block-account", al.carl_canary),
            "c.carl".to_owned(),
            "block".to_owned(),
        ),
    ];
    expected.sort();
    let all = s.get("/v1/decisions?all=true", Some(&tokens.read)).json();
    assert_eq!(ids_values(all.clone()), expected);
    // Made now from events of March: each lives its hour from when it was
    // made, so both are in force now.
    for d in all.as_array().unwrap() {
        let created = vakt_event::Timestamp::parse(d["created"].as_str().unwrap()).unwrap();
        let expires = vakt_event::Timestamp::parse(d["expires"].as_str().unwrap()).unwrap();
        assert_eq!(expires.0 - created.0, 3_600_000, "{d}");
    }
    let now = s.get("/v1/decisions", Some(&tokens.read)).json();
    assert_eq!(ids_values(now), expected);
    s.stop();
}

#[test]
fn a_report_draft_names_the_customers_of_the_alerts_window() {
    let (s, tokens, al) = scenario(|_| {});
    let admin = Some(tokens.admin.as_str());
    let a = s.post(&format!("/v1/reports/{}", al.anna_canary), admin, "");
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(v["alert"], al.anna_canary.as_str());
    let md = v["markdown"].as_str().unwrap();
    // The canary read at 08:00: 20 customers and the canary; the 10 read
    // at 07:45 are outside the alert's window.
    assert!(
        md.contains("Approximate number of data subjects: **21**"),
        "{md}"
    );
    assert!(
        md.contains(&format!("Incident `{}`", al.anna_canary)),
        "{md}"
    );
    assert!(
        md.contains("rule `canary`, severity critical, actor `r17.anna` of `reseller-17`"),
        "{md}"
    );
    assert!(md.contains("treat the account as compromised"), "{md}");
    let html = v["html"].as_str().unwrap();
    assert!(html.contains("<strong>21</strong>"), "{html}");
    // Another alert, another count.
    let v = s
        .post(&format!("/v1/reports/{}", al.carl_canary), admin, "")
        .json();
    assert!(
        v["markdown"]
            .as_str()
            .unwrap()
            .contains("Approximate number of data subjects: **2**"),
        "{v}"
    );
    let a = s.post("/v1/reports/canary-000000000000", admin, "");
    assert_eq!(a.status, 404, "{}", a.text);
    assert!(
        a.error().starts_with("no alert canary-000000000000"),
        "{}",
        a.text
    );
    s.stop();
}

// ---------------------------------------------------------------- metrics

#[test]
fn metrics_count_events_rejections_alerts_and_delivery_failures() {
    // A delivery target nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut deliver = vakt_deliver::DeliveryConfig::from_toml(
        &format!("[[target]]\nname = \"down\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n"),
        "deliver.toml",
    )
    .unwrap();
    deliver.max_backoff = Duration::from_millis(500);
    let (s, tokens) = start(DIRECTORY, |c| {
        c.deliver = Some(deliver);
        c.delivery_grace = Duration::from_millis(100);
    });
    let before = metrics(&s, &tokens);
    for (name, value) in [
        ("vakt_events_received_total", 0.0),
        ("vakt_events_rejected_total", 0.0),
        ("vakt_queue_depth", 0.0),
        ("vakt_delivery_failures_total{target=\"down\"}", 0.0),
        ("vakt_delivery_pending_bytes", 0.0),
    ] {
        assert_eq!(series(&before, name), Some(value), "{name} in {before}");
    }
    assert!(
        before.contains("# TYPE vakt_ingest_seconds histogram"),
        "{before}"
    );
    assert!(before.trim_end().ends_with("# EOF"), "{before}");
    assert!(!before.contains("vakt_alerts_total{"), "{before}");

    let (body, _) = batch();
    let a = s.post("/v1/events", Some(&tokens.ingest), &body);
    assert_eq!(a.status, 200, "{}", a.text);
    let after = eventually(WAIT, || {
        let m = metrics(&s, &tokens);
        let done = series(&m, "vakt_alerts_total{rule=\"canary\"}") == Some(2.0)
            && series(&m, "vakt_queue_depth") == Some(0.0)
            && series(&m, "vakt_delivery_failures_total{target=\"down\"}")
                .is_some_and(|n| n >= 1.0);
        done.then_some(m)
    })
    .unwrap_or_else(|| panic!("the metrics did not move: {}", metrics(&s, &tokens)));
    assert_eq!(series(&after, "vakt_events_received_total"), Some(53.0));
    assert_eq!(series(&after, "vakt_events_rejected_total"), Some(2.0));
    assert!(after.contains("# TYPE vakt_alerts counter"), "{after}");
    // Latency histograms: the one batch's ingest, and each route by its template.
    assert_eq!(series(&after, "vakt_ingest_seconds_count"), Some(1.0));
    assert!(
        series(
            &after,
            "vakt_http_request_seconds_count{method=\"POST\",route=\"/v1/events\"}"
        ) == Some(1.0),
        "{after}"
    );
    assert!(
        series(
            &after,
            "vakt_http_request_seconds_count{method=\"GET\",route=\"/metrics\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{after}"
    );
    // A method of the client's own making is counted as `other`.
    for m in ["FOO1", "FOO2"] {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(s.url.trim_start_matches("http://")).unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        write!(
            c,
            "{m} /v1/alerts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    }
    let m = metrics(&s, &tokens);
    assert!(!m.contains("FOO1"), "{m}");
    assert!(
        m.contains("vakt_http_request_seconds_count{method=\"other\""),
        "{m}"
    );
    assert_eq!(
        series(&after, "vakt_alerts_total{rule=\"login_failures\"}"),
        Some(2.0)
    );
    assert_eq!(
        after
            .lines()
            .filter(|l| l.starts_with("vakt_alerts_total{"))
            .count(),
        2,
        "{after}"
    );
    assert!(
        series(&after, "vakt_delivery_pending_bytes").unwrap() > 0.0,
        "alerts wait for the target: {after}"
    );
    // Nothing in flight is counted twice: a second batch only adds its own.
    let a = s.post(
        "/v1/events",
        Some(&tokens.ingest),
        &format!("{}\nbad", event_line()),
    );
    assert_eq!(a.json()["accepted"], 1);
    assert_eq!(
        metric(&s, &tokens, "vakt_events_received_total"),
        Some(54.0)
    );
    assert_eq!(metric(&s, &tokens, "vakt_events_rejected_total"), Some(3.0));
    s.stop();
}

#[test]
fn the_queue_depth_counts_accepted_events_until_the_engine_has_them() {
    let (s, tokens) = start("", |_| {});
    // Hold the ledger's write lock, as a long commit would: the engine
    // waits (its busy timeout is 5 s), the events wait in the queue.
    let mut blocker = Ledger::open(&s.data).unwrap();
    blocker.create_token("blocker", Role::Read).unwrap();
    let lines: Vec<String> = (0..5)
        .map(|i| read(&t(8, 0, i), "u1", "lookup", &customers(i..i + 1)))
        .collect();
    let a = s.post("/v1/events", Some(&tokens.ingest), &lines.join("\n"));
    assert_eq!(a.json()["accepted"], 5, "{}", a.text);
    let depth = metric(&s, &tokens, "vakt_queue_depth");
    blocker.close().unwrap();
    assert_eq!(depth, Some(5.0), "the batch waits for the engine");
    let drained = eventually(WAIT, || {
        (metric(&s, &tokens, "vakt_queue_depth") == Some(0.0)).then_some(())
    });
    assert!(
        drained.is_some(),
        "the queue drains: {}",
        metrics(&s, &tokens)
    );
    let scope = eventually(WAIT, || {
        let v = s.get("/v1/scope?account=u1", Some(&tokens.read)).json();
        (v["accesses"] == 5).then_some(v)
    });
    assert!(scope.is_some(), "the events reach the ledger");
    assert_eq!(s.get("/healthz", None).json(), json!({"status": "ok"}));
    s.stop();
}

// ---------------------------------------------------------------- CSP

fn csp_report(document: &str, blocked: &str) -> Value {
    json!({"csp-report": {
        "document-uri": document,
        "blocked-uri": blocked,
        "effective-directive": "connect-src",
    }})
}

fn post_csp(s: &Running, content_type: &str, body: Vec<u8>) -> Answer {
    s.send(Req {
        method: "POST",
        path: "/v1/csp-report",
        token: None,
        content_type: Some(content_type),
        body: Some(body),
        authorization: None,
    })
}

#[test]
fn csp_reports_in_both_formats_are_taken_without_a_token() {
    let (s, tokens) = start("", |c| c.csp.hosts = vec!["shop.example".into()]);
    let a = post_csp(
        &s,
        "application/csp-report",
        csp_report(
            "https://shop.example/checkout?step=2",
            "https://collect.evil.example/c?d=1",
        )
        .to_string()
        .into_bytes(),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json(), json!({"accepted": 1, "ignored": 0}));
    let batch = json!([
        {"type": "csp-violation", "url": "https://shop.example/cart", "body": {
            "documentURL": "https://shop.example/cart",
            "blockedURL": "https://cdn.evil.example:8443/x.js",
            "effectiveDirective": "script-src-elem",
        }},
        {"type": "csp-violation", "url": "https://shop.example/cart", "body": {
            "documentURL": "https://shop.example/cart",
            "blockedURL": "inline",
            "effectiveDirective": "script-src-elem",
        }},
        {"type": "deprecation", "url": "https://shop.example/cart", "body": {"id": "x"}},
    ]);
    let a = post_csp(
        &s,
        "application/reports+json",
        batch.to_string().into_bytes(),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json(), json!({"accepted": 1, "ignored": 1}));
    // Journaled as flow events from the page's host to the blocked one.
    let journal = journal_lines(&s);
    let flows: Vec<(&Value, &Value, &Value, &Value)> = journal
        .iter()
        .map(|e| {
            (
                &e["event.kind"],
                &e["host.name"],
                &e["destination.domain"],
                &e["destination.port"],
            )
        })
        .collect();
    assert_eq!(
        flows,
        [
            (
                &json!("flow"),
                &json!("shop.example"),
                &json!("collect.evil.example"),
                &Value::Null
            ),
            (
                &json!("flow"),
                &json!("shop.example"),
                &json!("cdn.evil.example"),
                &json!(8443)
            ),
        ]
    );
    assert_eq!(metric(&s, &tokens, "vakt_events_received_total"), Some(2.0));
    // Not a report type, not JSON, no document: refused, nothing kept.
    let a = post_csp(&s, "text/plain", b"{}".to_vec());
    assert_eq!(a.status, 415, "{}", a.text);
    let a = post_csp(&s, "application/csp-report", b"{\"csp-report\":".to_vec());
    assert_eq!(a.status, 400, "{}", a.text);
    let a = post_csp(
        &s,
        "application/csp-report",
        csp_report("about:blank", "https://x.example/")
            .to_string()
            .into_bytes(),
    );
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(journal_lines(&s).len(), 2);
    s.stop();
}

/// A csp-report body of exactly `len` bytes (padded in the sample field).
fn csp_body_of(len: usize) -> Vec<u8> {
    let mut v = csp_report("https://shop.example/", "https://evil.example/");
    v["csp-report"]["script-sample"] = json!("");
    let base = v.to_string().len();
    assert!(len >= base);
    v["csp-report"]["script-sample"] = json!("a".repeat(len - base));
    let body = v.to_string().into_bytes();
    assert_eq!(body.len(), len);
    body
}

#[test]
fn csp_reports_over_the_size_limit_answer_413() {
    let (s, _) = start("", |c| c.csp.hosts = vec!["shop.example".into()]);
    let limit = 64 << 10;
    let a = post_csp(&s, "application/csp-report", csp_body_of(limit));
    assert_eq!(a.status, 200, "at the limit: {}", a.text);
    let a = post_csp(&s, "application/csp-report", csp_body_of(limit + 1));
    assert_eq!(a.status, 413, "{}", a.text);
    assert!(
        a.error().contains(&format!("over {limit} bytes")),
        "{}",
        a.text
    );
    assert_eq!(journal_lines(&s).len(), 1, "only the report at the limit");
    s.stop();
}

/// Posts `body` in chunks without a Content-Length, on a connection of
/// its own; returns the status and the body of the answer.
fn post_chunked(
    s: &Running,
    path: &str,
    auth: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = s.url.strip_prefix("http://").unwrap();
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.set_write_timeout(Some(WAIT)).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
    );
    if let Some(t) = auth {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    let mut out = req.into_bytes();
    for chunk in body.chunks(4096) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    // The server may answer before it has read everything; that is fine.
    let _ = c.write_all(&out);
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn bodies_over_the_limit_answer_413_also_when_sent_in_chunks() {
    let (s, tokens) = start("", |c| {
        c.body_limit = 2000;
        c.csp.hosts = vec!["shop.example".into()];
    });
    let ingest = Some(tokens.ingest.as_str());
    // Events: under the limit in chunks is fine, over it is 413 and keeps nothing.
    let small: String = (0..3)
        .map(|i| read(&t(8, 0, i), "u1", "lookup", &customers(i..i + 1)) + "\n")
        .collect();
    assert!(small.len() < 2000);
    let (status, body) = post_chunked(
        &s,
        "/v1/events",
        ingest,
        "application/x-ndjson",
        small.as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let big: String = (0..40)
        .map(|i| read(&t(9, 0, i), "u2", "lookup", &customers(i..i + 1)) + "\n")
        .collect();
    assert!(big.len() > 2000);
    let (status, body) = post_chunked(
        &s,
        "/v1/events",
        ingest,
        "application/x-ndjson",
        big.as_bytes(),
    );
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("over 2000 bytes"), "{body}");
    let a = s.post("/v1/events", ingest, &big);
    assert_eq!(a.status, 413, "with a Content-Length: {}", a.text);
    assert_eq!(journal_lines(&s).len(), 3);
    // CSP reports: 64 KiB.
    let (status, body) = post_chunked(
        &s,
        "/v1/csp-report",
        None,
        "application/csp-report",
        &csp_body_of(64 << 10),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_chunked(
        &s,
        "/v1/csp-report",
        None,
        "application/csp-report",
        &csp_body_of((64 << 10) + 1),
    );
    assert_eq!(status, 413, "{body}");
    assert_eq!(journal_lines(&s).len(), 4);
    s.stop();
}

#[test]
fn csp_reports_past_the_per_address_limit_answer_429() {
    let (s, tokens) = start("", |c| {
        c.csp.per_address_per_minute = 3;
        c.csp.hosts = vec!["shop.example".into(), "blog.example".into()];
    });
    let from = |document: &str| {
        post_csp(
            &s,
            "application/csp-report",
            csp_report(document, "https://evil.example/x")
                .to_string()
                .into_bytes(),
        )
    };
    for i in 0..3 {
        let a = from(&format!("https://shop.example/page{i}"));
        assert_eq!(a.status, 200, "report {i}: {}", a.text);
    }
    let a = from("https://blog.example/post");
    assert_eq!(a.status, 429, "{}", a.text);
    let retry: u32 = a
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert!(
        a.error().contains("too many reports from 127.0.0.1;"),
        "{}",
        a.text
    );
    assert_eq!(journal_lines(&s).len(), 3);
    assert_eq!(metric(&s, &tokens, "vakt_events_received_total"), Some(3.0));
    s.stop();
}

/// A webhook receiver on `listener`: answers 200 to every POST and keeps
/// the bodies, until `stop` is set (polled, so the thread always ends).
fn receiver(
    listener: std::net::TcpListener,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (
    std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    std::thread::JoinHandle<()>,
) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::Ordering;
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    listener.set_nonblocking(true).unwrap();
    let thread = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Ok((conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            conn.set_nonblocking(false).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut r = BufReader::new(conn);
            // One request after another on a kept-alive connection.
            loop {
                let mut length = None;
                let mut line = String::new();
                let mut first = true;
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if line == "\r\n" && !first {
                        break;
                    }
                    first = false;
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse::<usize>().ok();
                        }
                    }
                }
                let Some(n) = length else { break };
                let mut body = vec![0; n];
                if r.read_exact(&mut body).is_err() {
                    break;
                }
                if let Ok(v) = serde_json::from_slice(&body) {
                    keep.lock().unwrap().push(v);
                }
                let _ = r
                    .get_mut()
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            }
        }
    });
    (got, thread)
}

#[test]
fn webhook_delivery_survives_a_receiver_that_is_down_and_comes_back() {
    use std::sync::atomic::{AtomicBool, Ordering};
    // The receiver's port, with nobody listening yet.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut deliver = vakt_deliver::DeliveryConfig::from_toml(
        &format!("[[target]]\nname = \"soc\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n"),
        "deliver.toml",
    )
    .unwrap();
    deliver.max_backoff = Duration::from_millis(300);
    let (s, tokens) = start(DIRECTORY, |c| {
        c.deliver = Some(deliver);
        c.delivery_grace = Duration::from_secs(2);
    });
    let (body, _) = batch();
    assert_eq!(
        s.post("/v1/events", Some(&tokens.ingest), &body).status,
        200
    );
    // Down: the alerts are recorded and wait, failures are counted.
    eventually(WAIT, || {
        let m = metrics(&s, &tokens);
        (series(&m, "vakt_delivery_failures_total{target=\"soc\"}").is_some_and(|n| n >= 2.0)
            && series(&m, "vakt_alerts_total{rule=\"canary\"}") == Some(2.0))
        .then_some(())
    })
    .expect("delivery fails while the receiver is down");

    // Back: everything recorded arrives, each alert once.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let (got, thread) = receiver(listener, stop.clone());
    let ids = eventually(WAIT, || {
        let m = metrics(&s, &tokens);
        let ids: BTreeSet<String> = got
            .lock()
            .unwrap()
            .iter()
            .filter_map(|a| a["id"].as_str().map(str::to_owned))
            .collect();
        (series(&m, "vakt_delivery_pending_bytes") == Some(0.0) && ids.len() >= 4).then_some(ids)
    })
    .unwrap_or_else(|| {
        panic!(
            "not delivered: {:?} / {}",
            got.lock().unwrap(),
            metrics(&s, &tokens)
        )
    });
    let alerts = s.get("/v1/alerts", Some(&tokens.read)).json();
    let recorded: BTreeSet<String> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["id"].as_str().map(str::to_owned))
        .collect();
    assert!(recorded.len() >= 4, "{alerts}");
    assert_eq!(ids, recorded);
    stop.store(true, Ordering::Relaxed);
    s.stop();
    thread.join().unwrap();
}

/// Every human action over the API is in the audit trail with the token,
/// the address and the reason; the trail filters by subject, action
/// family and person, and only analysts and admins read it.
#[test]
fn every_change_over_the_api_is_in_the_audit_trail() {
    let (s, tokens, al) = scenario(|_| {});
    let admin = Some(tokens.admin.as_str());
    let a = s.post_json("/v1/decisions", admin, &new_decision());
    assert_eq!(a.status, 201, "{}", a.text);
    let decision = a.json()["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/decisions/{}", decision.replace('/', "%2F"));
    assert_eq!(s.delete(&path, admin).status, 204);
    assert_eq!(
        s.delete(&path, admin).status,
        404,
        "a second lift changes nothing"
    );
    let a = s.post_json(
        "/v1/exceptions",
        admin,
        &json!({"actor": "p3.bot", "rule": "login_failures", "reason": "monitoring probe"}),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    let exception = a.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        s.delete(&format!("/v1/exceptions/{exception}"), admin)
            .status,
        204
    );
    assert_eq!(
        s.post(&format!("/v1/reports/{}", al.anna_canary), admin, "")
            .status,
        200
    );

    let trail = |q: &str| {
        let a = s.get(&format!("/v1/audit{q}"), Some(&tokens.analyst));
        assert_eq!(a.status, 200, "{q}: {}", a.text);
        a.json().as_array().unwrap().clone()
    };
    let all = trail("");
    let actions: Vec<&str> = all.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "decision.add",
            "decision.lift",
            "exception.add",
            "exception.revoke",
            "report.export"
        ]
    );
    for r in &all {
        assert_eq!(
            (&r["who"], &r["via"], &r["source"]),
            (&json!("token admin"), &json!("api"), &json!("127.0.0.1")),
            "{r}"
        );
    }
    assert_eq!(all[0]["subject"], json!(decision));
    assert_eq!(all[0]["reason"], "under review");
    assert_eq!(all[0]["details"]["action"], "block");
    assert_eq!(all[2]["reason"], "monitoring probe");
    assert_eq!(all[4]["subject"], json!(al.anna_canary));
    assert_eq!(trail("?action=decision").len(), 2);
    assert_eq!(trail("?action=decision.lift").len(), 1);
    assert_eq!(trail("?action=decis").len(), 0, "a family is a whole word");
    assert_eq!(trail(&format!("?subject={exception}")).len(), 2);
    assert_eq!(trail("?who=token%20admin&limit=2").len(), 2);
    assert_eq!(trail("?who=ana").len(), 0);
    assert_forbidden(
        &s.get("/v1/audit", Some(&tokens.read)),
        "read",
        "GET /v1/audit",
    );
    let report = vakt_ledger::verify::verify(&s.data).unwrap();
    assert_eq!(report.problem, None, "{report:?}");
    s.stop();
}

/// Marking an incident a breach starts the clocks of the regimes its
/// organisation falls under; an earlier awareness time needs a reason;
/// a notification made stops its clock; the report draft carries them.
#[test]
fn a_breach_marked_over_the_api_runs_its_organisations_clocks() {
    let (s, tokens, al) = scenario(|_| {});
    let analyst = Some(tokens.analyst.as_str());
    let anna = format!("/v1/incidents/{}", al.anna_canary);
    let bot = format!("/v1/incidents/{}", al.bot_logins);
    let v = s.get(&anna, Some(&tokens.read)).json();
    assert_eq!(
        (&v["incident"]["breach"], &v["incident"]["clocks"]),
        (&Value::Null, &json!([]))
    );
    let a = s.patch_json(&anna, analyst, &json!({"aware_at": "2026-03-02T08:00:00Z"}));
    assert!(
        a.error().contains("mark the incident a breach first"),
        "{}",
        a.text
    );
    let a = s.patch_json(
        &anna,
        analyst,
        &json!({"breach": true, "aware_at": "2020-01-01T00:00:00Z"}),
    );
    assert!(a.error().contains("needs `aware_reason`"), "{}", a.text);
    let a = s.patch_json(
        &anna,
        analyst,
        &json!({"breach": true, "aware_at": "2020-01-01T00:00:00Z", "aware_reason": "the reseller's report of that day"}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let inc = &a.json()["incident"];
    assert_eq!(inc["breach"]["aware_at"], "2020-01-01T00:00:00.000Z");
    // reseller-17 names NIS2 for itself.
    let steps: Vec<&str> = inc["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "nis2.early_warning",
            "nis2.notification",
            "nis2.final_report"
        ]
    );
    assert!(
        inc["clocks"][0]["left_ms"].as_i64().unwrap() < 0,
        "overdue: {inc}"
    );
    let a = s.patch_json(
        &anna,
        analyst,
        &json!({"notified": "nis2.early_warning", "delay_reason": "found late"}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let inc = &a.json()["incident"];
    assert!(inc["clocks"][0]["done"].is_string(), "{inc}");
    assert_eq!(inc["breach"]["delay_reason"], "found late");
    let a = s.patch_json(&anna, analyst, &json!({"notified": "gdpr.art99"}));
    assert!(a.error().contains("not a notification step"), "{}", a.text);
    // partner-3 names none: the company's [notification] regimes.
    let a = s.patch_json(&bot, analyst, &json!({"breach": true}));
    let steps: Vec<String> = a.json()["incident"]["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["step"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(steps, ["gdpr.art33", "telecom.authority"]);
    // The list carries the clocks; the draft states them.
    let list = s
        .get("/v1/incidents?actor=p3.bot", Some(&tokens.read))
        .json();
    assert_eq!(list[0]["clocks"].as_array().unwrap().len(), 2);
    let a = s.post(
        &format!("/v1/reports/{}", al.anna_canary),
        Some(&tokens.admin),
        "",
    );
    let md = a.json()["markdown"].as_str().unwrap().to_owned();
    assert!(md.contains("became aware of the breach at 2020-01-01T00:00:00.000Z (the reseller's report of that day)"), "{md}");
    assert!(md.contains("NIS2 Art. 23: early warning"), "{md}");
    assert!(md.contains("Reasons for the delay: found late"), "{md}");
    s.stop();
}

/// A breach whose GDPR clock is 5/6 gone raises one `notification_deadline`
/// alert (high: past 0.5 and 0.75) with the incident's actor, sent to the
/// alert outlets; it joins the incident without changing its id, and is
/// not raised again at the same level.
#[test]
fn a_running_notification_clock_warns_through_the_alert_outlets() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let (got, thread) = receiver(listener, stop.clone());
    let deliver = vakt_deliver::DeliveryConfig::from_toml(
        &format!("[[target]]\nname = \"soc\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n"),
        "deliver.toml",
    )
    .unwrap();
    let (s, tokens, al) = scenario(|c| {
        c.deliver = Some(deliver);
        c.clock_every = Duration::from_millis(100);
    });
    let bot = format!("/v1/incidents/{}", al.bot_logins);
    let id = s.get(&bot, Some(&tokens.read)).json()["incident"]["id"].clone();
    // partner-3 follows the company's regimes: GDPR (72 h) and telecom (24 h).
    let aware = vakt_event::Timestamp(vakt_event::Timestamp::now().0 - 60 * 3_600_000);
    let a = s.patch_json(
        &bot,
        Some(&tokens.analyst),
        &json!({"breach": true, "aware_at": aware.to_string(), "aware_reason": "found in the logs", "notified": "telecom.authority", "notified_at": aware.to_string()}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let warned = eventually(WAIT, || {
        let v = s
            .get("/v1/alerts?rule=notification_deadline", Some(&tokens.read))
            .json();
        (!v.as_array()?.is_empty()).then_some(v)
    })
    .expect("a warning is raised");
    let list = warned.as_array().unwrap();
    assert_eq!(list.len(), 1, "only GDPR's clock runs: {warned}");
    let w = &list[0];
    assert_eq!(
        (&w["severity"], &w["user.name"]),
        (&json!("high"), &json!("p3.bot"))
    );
    assert_eq!(
        (&w["evidence"]["step"], &w["evidence"]["level"]),
        (&json!("gdpr.art33"), &json!(2))
    );
    assert!(
        w["message"].as_str().unwrap().contains("GDPR Art. 33"),
        "{w}"
    );
    let sent = eventually(WAIT, || {
        let g = got.lock().unwrap();
        g.iter()
            .find(|v| v["rule.id"] == "notification_deadline")
            .cloned()
    })
    .expect("the warning reaches the webhook");
    assert_eq!(sent["id"], w["id"]);
    // It joined the incident, whose id stays.
    let inc = s.get(&bot, Some(&tokens.read)).json()["incident"].clone();
    assert_eq!(inc["id"], id);
    assert!(
        strings(&inc["alerts"]).contains(&w["id"].as_str().unwrap().to_owned()),
        "{inc}"
    );
    // Several checks later: still one line at that level.
    std::thread::sleep(Duration::from_millis(500));
    let again = s
        .get("/v1/alerts?rule=notification_deadline", Some(&tokens.read))
        .json();
    assert_eq!(again[0]["alert.updates"], 0, "{again}");
    // Closing the incident as a false positive makes no exception for the clock's rule.
    let a = s.patch_json(
        &bot,
        Some(&tokens.analyst),
        &json!({"status": "resolved", "classification": "false_positive", "reason": "a drill", "exception": {}}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let rules: Vec<Value> = s
        .get("/v1/exceptions", Some(&tokens.read))
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rule"].clone())
        .collect();
    assert_eq!(rules, [json!("login_failures")]);
    s.stop();
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
}

/// The customers' notice comes in each language, the recipients as CSV;
/// both are admin-only and on record.
#[test]
fn the_customer_notice_is_drafted_per_language_and_the_recipients_listed() {
    let (s, tokens, al) = scenario(|_| {});
    let admin = Some(tokens.admin.as_str());
    let notice = |locale: &str| {
        s.post(
            &format!("/v1/reports/{}/notice?locale={locale}", al.anna_canary),
            admin,
            "",
        )
    };
    for (locale, title, contact) in [
        (
            "sv",
            "# Information om en personuppgiftsincident",
            "dataskyddsombudet",
        ),
        (
            "nb",
            "# Informasjon om brudd på personopplysningssikkerheten",
            "personvernombudet",
        ),
        (
            "de",
            "# Information über eine Verletzung des Schutzes personenbezogener Daten",
            "Datenschutzbeauftragten",
        ),
        (
            "nl",
            "# Informatie over een datalek",
            "functionaris gegevensbescherming",
        ),
        (
            "en",
            "# Information about a personal data breach",
            "data protection officer",
        ),
    ] {
        let a = notice(locale);
        assert_eq!(a.status, 200, "{locale}: {}", a.text);
        let md = a.json()["markdown"].as_str().unwrap().to_owned();
        assert!(
            md.starts_with(title) && md.contains(contact),
            "{locale}:\n{md}"
        );
        assert_eq!(a.json()["locale"], locale);
    }
    assert_eq!(notice("fr").status, 400);
    assert_forbidden(
        &s.post(
            &format!("/v1/reports/{}/notice", al.anna_canary),
            Some(&tokens.analyst),
            "",
        ),
        "analyst",
        "notice",
    );
    let a = s.get(&format!("/v1/reports/{}/recipients", al.anna_canary), admin);
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/csv")));
    let mut lines = a.text.lines();
    assert_eq!(
        lines.next(),
        Some("customer_id,categories,first_exposure,last_exposure")
    );
    assert!(
        a.text.lines().any(|l| l.starts_with("C-900001,")),
        "{}",
        a.text
    );
    let trail = s
        .get("/v1/audit?action=report", Some(&tokens.analyst))
        .json();
    let actions: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.iter().filter(|a| **a == "report.notice").count(), 5);
    assert_eq!(actions.last(), Some(&"report.recipients"));
    s.stop();
}
