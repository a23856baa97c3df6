//! Exceptions over the API, against a server on 127.0.0.1: one added
//! while serving suppresses the next matching alert (recorded, hidden from
//! the alert list, counted, no decision), and nothing else.

mod common;

use common::{eventually, series, start, Running, Tokens, WAIT};
use serde_json::{json, Value};

const DIRECTORY: &str = r#"
[[canary]]
customer_id = "C-900001"
label = "planted"

[[policy]]
rule = "canary"
min_severity = "critical"
action = "block"
ttl = "1h"
"#;

fn canary_read(user: &str, minute: u32) -> String {
    json!({
        "@timestamp": format!("2026-03-02T08:{minute:02}:00Z"),
        "user.name": user,
        "event.action": "lookup",
        "customer.ids": ["C-900001"],
    })
    .to_string()
}

fn alerts(s: &Running, t: &Tokens, query: &str) -> Vec<Value> {
    let a = s.get(&format!("/v1/alerts{query}"), Some(&t.read));
    assert_eq!(a.status, 200, "{}", a.text);
    a.json().as_array().unwrap().clone()
}

#[test]
fn an_exception_added_while_serving_suppresses_the_next_matching_alert_only() {
    let (s, t) = start(DIRECTORY, |_| {});
    let body =
        json!({"actor": "r17.anna", "rule": "canary", "reason": "a test account", "for": "30d"});
    // A read token may list, not add.
    assert_eq!(
        s.post_json("/v1/exceptions", Some(&t.read), &body).status,
        403
    );
    let a = s.post_json("/v1/exceptions", Some(&t.admin), &body);
    assert_eq!(a.status, 201, "{}", a.text);
    let e = a.json();
    assert_eq!(e["id"], "exc-1");
    assert_eq!(e["created_by"], "token admin");
    assert!(e["until"].is_string(), "{e}");
    assert_eq!(a.header("location"), Some("/v1/exceptions/exc-1"));
    let listed = s.get("/v1/exceptions", Some(&t.read)).json();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let batch = format!(
        "{}\n{}",
        canary_read("r17.anna", 0),
        canary_read("p3.bot", 1)
    );
    assert_eq!(s.post("/v1/events", Some(&t.ingest), &batch).status, 200);
    let suppressed = eventually(WAIT, || {
        let l = alerts(&s, &t, "?suppressed=true");
        (!l.is_empty() && alerts(&s, &t, "").len() == 1).then_some(l)
    })
    .expect("both alerts are recorded");
    assert_eq!(suppressed.len(), 1);
    assert_eq!(suppressed[0]["user.name"], "r17.anna");
    assert_eq!(suppressed[0]["vakt.suppressed_by"], "exc-1");
    let shown = alerts(&s, &t, "");
    assert_eq!(shown[0]["user.name"], "p3.bot");
    assert!(shown[0].get("vakt.suppressed_by").is_none());
    // Only the other account is blocked.
    let decisions = s.get("/v1/decisions", Some(&t.read)).json();
    let values: Vec<&Value> = decisions
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["value"])
        .collect();
    assert_eq!(values, [&json!("p3.bot")]);
    let metrics = s.get("/metrics", Some(&t.read)).text;
    assert_eq!(
        series(&metrics, "vakt_alerts_suppressed_total{rule=\"canary\"}"),
        Some(1.0)
    );
    assert_eq!(
        series(&metrics, "vakt_alerts_total{rule=\"canary\"}"),
        Some(1.0)
    );

    // Revoked: kept in the full list, gone from the list in force.
    assert_eq!(s.delete("/v1/exceptions/exc-1", Some(&t.read)).status, 403);
    assert_eq!(s.delete("/v1/exceptions/exc-1", Some(&t.admin)).status, 204);
    assert_eq!(s.delete("/v1/exceptions/exc-9", Some(&t.admin)).status, 404);
    assert!(s
        .get("/v1/exceptions", Some(&t.read))
        .json()
        .as_array()
        .unwrap()
        .is_empty());
    let all = s.get("/v1/exceptions?all=true", Some(&t.read)).json();
    assert_eq!(all[0]["revoked_by"], "token admin");
    s.stop();
}

#[test]
fn bad_exceptions_are_refused_with_what_to_fix() {
    let (s, t) = start(DIRECTORY, |_| {});
    for (body, says) in [
        (
            json!({"reason": "r"}),
            "at least one of actor, rule or destination",
        ),
        (json!({"actor": "a", "reason": " "}), "`reason` is empty"),
        (
            json!({"rule": "rat", "reason": "r"}),
            "is not a rule; use one of",
        ),
        (
            json!({"actor": "a", "until": "2020-01-01T00:00:00Z", "reason": "r"}),
            "is not in the future",
        ),
        (
            json!({"actor": "a", "for": "soon", "reason": "r"}),
            "not a duration",
        ),
        (
            json!({"from_alert": "no-such", "reason": "r"}),
            "no recorded alert no-such",
        ),
        (
            json!({"actor": "a", "reason": "r", "scope": "x"}),
            "unknown field",
        ),
    ] {
        let a = s.post_json("/v1/exceptions", Some(&t.admin), &body);
        assert_eq!(a.status, 400, "{body}: {}", a.text);
        assert!(a.error().contains(says), "{body}: {}", a.error());
    }
    assert!(s
        .get("/v1/exceptions?all=true", Some(&t.read))
        .json()
        .as_array()
        .unwrap()
        .is_empty());
    s.stop();
}
