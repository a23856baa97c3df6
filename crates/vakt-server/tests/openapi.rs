//! docs/openapi.yaml against the server: the same routes as
//! `vakt_server::routes()`, each really served, with the security, roles
//! and query parameters the document states.

mod common;

use common::{start, Answer, Req, Running, Tokens};
use serde_json::Value;
use std::collections::BTreeSet;
use vakt_ledger::tokens::Role;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

/// One operation of the document.
struct Op<'a> {
    method: String,
    path: String,
    op: &'a Value,
}

fn operations(doc: &Value) -> Vec<Op<'_>> {
    let paths = doc["paths"].as_object().expect("the document has `paths`");
    let mut out = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().unwrap();
        for (key, op) in item {
            assert!(
                METHODS.contains(&key.as_str()) || key == "parameters" || key == "summary",
                "{path}: `{key}` is not an operation"
            );
            if METHODS.contains(&key.as_str()) {
                out.push(Op {
                    method: key.to_ascii_uppercase(),
                    path: path.clone(),
                    op,
                });
            }
        }
    }
    out
}

/// Follows a local `$ref`, if the value is one.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = r
                .strip_prefix('#')
                .and_then(|p| doc.pointer(p))
                .unwrap_or_else(|| panic!("`$ref: {r}` points nowhere"));
            resolve(doc, target)
        }
        None => v,
    }
}

fn parameters<'a>(doc: &'a Value, op: &'a Value, place: &str) -> Vec<&'a Value> {
    op["parameters"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| resolve(doc, p))
                .filter(|p| p["in"] == place)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the operation needs no token (`security: []`); otherwise it
/// must name the bearer scheme, itself or through the document's default.
fn is_open(doc: &Value, op: &Value) -> bool {
    let security = op.get("security").unwrap_or(&doc["security"]);
    let list = security.as_array().expect("`security` is a list");
    if list.is_empty() {
        return true;
    }
    assert!(
        list.iter().all(|s| s.get("bearerToken").is_some()),
        "unknown security {security}"
    );
    false
}

/// The role a description names: "Role `read`".
fn role(op: &Value) -> Option<Role> {
    let d = op["description"].as_str().unwrap_or("");
    let name = d.split("Role `").nth(1)?.split('`').next()?;
    Some(Role::parse(name).unwrap_or_else(|| panic!("unknown role `{name}` in {d}")))
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A concrete path: each `{param}` becomes an id no ledger has.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some((before, after)) = rest.split_once('{') {
        let (name, after) = after.split_once('}').unwrap();
        out.push_str(before);
        out.push_str(&format!("no-such-{name}"));
        rest = after;
    }
    out.push_str(rest);
    out
}

fn call(s: &Running, method: &str, path: &str, token: Option<&str>) -> Answer {
    s.send(Req {
        method,
        path,
        token,
        content_type: None,
        body: (method == "POST" || method == "PUT").then(Vec::new),
        authorization: None,
    })
}

#[test]
fn the_document_lists_exactly_the_routes_of_routes() {
    let doc = document();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "openapi: {}",
        doc["openapi"]
    );
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|o| (o.method, o.path))
        .collect();
    let served: BTreeSet<(String, String)> = vakt_server::routes()
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        served.len(),
        vakt_server::routes().len(),
        "routes() lists a route twice"
    );
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes() but not docs/openapi.yaml: {missing:?}; docs/openapi.yaml but not routes(): {extra:?}"
    );
}

#[test]
fn the_document_is_consistent_in_itself() {
    let doc = document();
    let scheme = &doc["components"]["securitySchemes"]["bearerToken"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"]),
        (&Value::from("http"), &Value::from("bearer"))
    );
    // Every reference resolves.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 20, "{} references", all.len());
    for r in all {
        assert!(
            r.strip_prefix('#').and_then(|p| doc.pointer(p)).is_some(),
            "`$ref: {r}` points nowhere"
        );
    }
    for o in operations(&doc) {
        let at = format!("{} {}", o.method, o.path);
        // The path's parameters are declared, required, and no others.
        let in_path: BTreeSet<&str> = o
            .path
            .split('{')
            .skip(1)
            .map(|s| s.split('}').next().unwrap())
            .collect();
        let declared: BTreeSet<&str> = parameters(&doc, o.op, "path")
            .iter()
            .map(|p| {
                assert_eq!(p["required"], true, "{at}: path parameters are required");
                p["name"].as_str().unwrap()
            })
            .collect();
        assert_eq!(in_path, declared, "{at}: path parameters");
        // An answer for success, and the error answers of its security.
        let responses = o.op["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|k| k.starts_with('2')),
            "{at}: no 2xx answer"
        );
        if is_open(&doc, o.op) {
            assert!(role(o.op).is_none(), "{at}: no token, yet a role");
            assert!(!responses.contains_key("401"), "{at}: no token, yet 401");
        } else {
            assert!(role(o.op).is_some(), "{at}: the description names no role");
            for code in ["401", "403"] {
                assert!(responses.contains_key(code), "{at}: no {code} answer");
            }
        }
        // Every query parameter has an example, used against the server below.
        for p in parameters(&doc, o.op, "query") {
            assert!(
                p.get("example").is_some(),
                "{at}: query parameter {} has no example",
                p["name"]
            );
        }
    }
}

fn served() -> (Running, Tokens) {
    start("", |_| {})
}

#[test]
fn every_route_is_served_with_the_documented_security_and_roles() {
    let doc = document();
    let (s, tokens) = served();
    // What the checks below tell apart: the router's own 404 and 405.
    assert!(call(&s, "GET", "/v1/no-such-route", Some(&tokens.admin)).is_fallback());
    assert_eq!(
        call(&s, "PUT", "/v1/alerts", Some(&tokens.admin)).status,
        405
    );
    let ops = operations(&doc);
    assert_eq!(ops.len(), vakt_server::routes().len());
    for o in &ops {
        let at = format!("{} {}", o.method, o.path);
        let path = concrete(&o.path);
        let a = call(&s, &o.method, &path, Some(&tokens.admin));
        assert!(
            !a.is_fallback() && a.status != 405,
            "{at}: not served ({} {})",
            a.status,
            a.text
        );
        assert!(a.status < 500, "{at}: {} {}", a.status, a.text);
        if a.status == 404 {
            assert!(
                a.error().starts_with("no "),
                "{at}: a 404 says what is missing: {}",
                a.text
            );
        }
        let anonymous = call(&s, &o.method, &path, None);
        if is_open(&doc, o.op) {
            assert_ne!(anonymous.status, 401, "{at} is documented open");
            continue;
        }
        assert_eq!(
            anonymous.status, 401,
            "{at} is documented to need a token: {}",
            anonymous.text
        );
        assert!(
            anonymous
                .header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "{at}: {:?}",
            anonymous.headers
        );
        let needed = role(o.op).unwrap();
        for r in Role::ALL {
            let a = call(&s, &o.method, &path, Some(tokens.of(r)));
            assert_eq!(
                a.status == 403,
                !r.allows(needed),
                "{at} documented for role {needed}, token of role {r}: {} {}",
                a.status,
                a.text
            );
        }
    }
    s.stop();
}

#[test]
fn documented_query_parameters_are_taken_and_others_refused() {
    let doc = document();
    let (s, tokens) = served();
    let admin = Some(tokens.admin.as_str());
    let mut tried = 0;
    for o in operations(&doc) {
        let at = format!("{} {}", o.method, o.path);
        let path = concrete(&o.path);
        for p in parameters(&doc, o.op, "query") {
            let name = p["name"].as_str().unwrap();
            let value = match &p["example"] {
                Value::String(v) => v.clone(),
                v => v.to_string(),
            };
            let a = call(
                &s,
                &o.method,
                &format!("{path}?{name}={}", encode(&value)),
                admin,
            );
            assert!(
                !a.error().contains("unknown query parameter")
                    && !a.error().contains(&format!("`{name}=")),
                "{at}: documented `{name}={value}` refused: {} {}",
                a.status,
                a.text
            );
            tried += 1;
        }
        // The API's GET routes refuse what they do not take.
        if o.method == "GET" && !is_open(&doc, o.op) {
            let a = call(&s, "GET", &format!("{path}?undocumented=1"), admin);
            assert_eq!(a.status, 400, "{at}: {}", a.text);
            assert!(
                a.error().contains("unknown query parameter `undocumented`"),
                "{at}: {}",
                a.text
            );
        }
    }
    assert!(tried >= 20, "{tried} query parameters");
    s.stop();
}
