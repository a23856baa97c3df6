//! Finding 18 of a security review: every console user could do
//! everything. Users are viewers, analysts or admins now, and the server
//! refuses what a role may not do, whatever the page shows. Real HTTP
//! against a server on 127.0.0.1: sign in with the form, read the CSRF
//! token from the page, post the forms a browser would.

mod common;

use common::{eventually, start, Running, Tokens, WAIT};
use serde_json::{json, Value};
use vakt_ledger::users::ConsoleRole;
use vakt_ledger::Ledger;

const PASSWORD: &str = "correct horse battery";

/// A canary to raise an alert with; no policy, so the only decisions are
/// the tests' own.
const DIRECTORY: &str = r#"
[[canary]]
customer_id = "C-900001"
label = "planted"
"#;

/// A browser without redirects, so the sign-in's cookie is seen.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(WAIT))
        .build()
        .into()
}

/// A signed-in person: their cookie and the session's CSRF token.
struct Person<'a> {
    server: &'a Running,
    agent: ureq::Agent,
    cookie: String,
    csrf: String,
}

fn add(server: &Running, name: &str, role: ConsoleRole) {
    let mut l = Ledger::open(&server.data).unwrap();
    l.add_user_as(name, PASSWORD, role).unwrap();
    l.close().unwrap();
}

fn sign_in<'a>(server: &'a Running, name: &str) -> Person<'a> {
    let agent = agent();
    let r = agent
        .post(format!("{}/login", server.url))
        .content_type("application/x-www-form-urlencoded")
        .send(format!(
            "user={name}&password={}&next=%2F",
            PASSWORD.replace(' ', "+")
        ))
        .unwrap();
    assert_eq!(r.status(), 303, "{name} signs in");
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let mut p = Person {
        server,
        agent,
        cookie,
        csrf: String::new(),
    };
    let (status, page) = p.get("/decisions");
    assert_eq!(status, 200, "{page}");
    p.csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("every signed-in page carries the CSRF token")
        .to_owned();
    p
}

impl Person<'_> {
    fn get(&self, path: &str) -> (u16, String) {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.server.url))
            .header("cookie", &self.cookie)
            .call()
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    }

    /// Posts a form with the session's CSRF token; the status and body.
    fn post(&self, path: &str, form: &str) -> (u16, String) {
        let mut r = self
            .agent
            .post(format!("{}{path}", self.server.url))
            .header("cookie", &self.cookie)
            .content_type("application/x-www-form-urlencoded")
            .send(format!("{form}&csrf={}", self.csrf))
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    }
}

/// The decisions in force, by the API.
fn decisions(s: &Running, t: &Tokens) -> Vec<Value> {
    let a = s.get("/v1/decisions", Some(&t.read));
    assert_eq!(a.status, 200, "{}", a.text);
    a.json().as_array().unwrap().clone()
}

fn decision(s: &Running, t: &Tokens, id: &str) -> Option<Value> {
    decisions(s, t).into_iter().find(|d| d["id"] == id)
}

/// A decision on `value` made with the admin token; its id.
fn decide(s: &Running, t: &Tokens, value: &str, action: &str) -> String {
    let a = s.post_json(
        "/v1/decisions",
        Some(&t.admin),
        &json!({"scope": "account", "value": value, "action": action, "ttl": "1h"}),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    a.json()["id"].as_str().unwrap().to_owned()
}

fn block(s: &Running, t: &Tokens, value: &str) -> String {
    decide(s, t, value, "block")
}

/// A refusal that says which role it takes and how to get it.
fn assert_refused(answer: (u16, String), needs: &str, what: &str) {
    let (status, page) = answer;
    assert_eq!(status, 403, "{what}: {page}");
    assert!(
        page.contains(&format!("needs the {needs} role")) && page.contains("vakt user role"),
        "{what}: {page}"
    );
}

const ADD: &str = "scope=account&value=r9.mallory&action=throttle&ttl=1h&reason=test";
const ADD_BLOCK: &str = "scope=account&value=r9.mallory&action=block&ttl=1h&reason=test";

#[test]
fn finding_18_a_viewer_cannot_add_extend_or_lift_decisions() {
    let (s, t) = start(DIRECTORY, |_| {});
    add(&s, "vera", ConsoleRole::Viewer);
    let id = block(&s, &t, "r17.anna");
    let before = decision(&s, &t, &id).unwrap();
    let vera = sign_in(&s, "vera");

    // Posting the forms is refused, and nothing changes.
    assert_refused(vera.post("/decisions", ADD), "analyst", "add");
    assert_refused(
        vera.post(&format!("/decisions/{id}/extend"), "ttl=1h"),
        "analyst",
        "extend",
    );
    assert_refused(
        vera.post(&format!("/decisions/{id}/lift"), ""),
        "admin",
        "lift",
    );
    let after = decisions(&s, &t);
    assert_eq!(after, [before], "a viewer changed the decisions");

    // The page lists decisions but offers no form to change them.
    let (status, page) = vera.get("/decisions");
    assert_eq!(status, 200);
    assert!(page.contains("r17.anna"), "{page}");
    for form in ["id=\"add-decision\"", "/extend\"", "/lift\""] {
        assert!(!page.contains(form), "a viewer is shown {form}: {page}");
    }
    // Signing out is no change to enforcement: a viewer may.
    assert_eq!(vera.post("/logout", "").0, 303);
    s.stop();
}

#[test]
fn finding_18_an_analyst_cannot_lift_a_decision_nor_block() {
    let (s, t) = start(DIRECTORY, |_| {});
    add(&s, "ana", ConsoleRole::Analyst);
    add(&s, "ada", ConsoleRole::Admin);
    let id = decide(&s, &t, "r17.anna", "throttle");
    let blocked = block(&s, &t, "p3.bot");
    let ana = sign_in(&s, "ana");

    // Adding and extending throttles, shown and done.
    let (_, page) = ana.get("/decisions");
    assert!(page.contains("id=\"add-decision\""), "{page}");
    assert!(
        !page.contains("<option value=\"block\">"),
        "an analyst is offered block: {page}"
    );
    assert!(
        page.contains(&format!("/decisions/{id}/extend\"")),
        "{page}"
    );
    assert!(
        !page.contains(&format!("/decisions/{blocked}/extend\"")),
        "{page}"
    );
    assert_eq!(ana.post("/decisions", ADD).0, 303);
    assert!(
        decisions(&s, &t).iter().any(|d| d["value"] == "r9.mallory"),
        "the analyst's decision is in force"
    );
    let before = decision(&s, &t, &id).unwrap()["expires"].clone();
    assert_eq!(
        ana.post(&format!("/decisions/{id}/extend"), "ttl=2h").0,
        303
    );
    let extended = decision(&s, &t, &id).unwrap()["expires"].clone();
    assert_ne!(before, extended, "extended");

    // Blocks are an admin's: adding or extending one is refused.
    let count = decisions(&s, &t).len();
    assert_refused(ana.post("/decisions", ADD_BLOCK), "admin", "block");
    let before = decision(&s, &t, &blocked).unwrap()["expires"].clone();
    assert_refused(
        ana.post(&format!("/decisions/{blocked}/extend"), "ttl=2h"),
        "admin",
        "extend a block",
    );
    assert_eq!(decisions(&s, &t).len(), count);
    assert_eq!(decision(&s, &t, &blocked).unwrap()["expires"], before);
    // The API says the same to an analyst token.
    let a = s.post_json(
        "/v1/decisions",
        Some(&t.analyst),
        &json!({"scope": "account", "value": "x", "action": "block", "ttl": "1h"}),
    );
    assert_eq!(a.status, 403, "{}", a.text);
    assert!(
        a.error().contains("blocking needs an admin token"),
        "{}",
        a.text
    );

    // Lifting is refused, and the decision stays.
    assert_refused(
        ana.post(&format!("/decisions/{id}/lift"), ""),
        "admin",
        "lift",
    );
    assert!(decision(&s, &t, &id).is_some(), "an analyst lifted {id}");
    let (_, page) = ana.get("/decisions");
    assert!(
        !page.contains("/lift\""),
        "an analyst is shown Lift: {page}"
    );

    // An admin blocks, and is offered Lift and may use it.
    let ada = sign_in(&s, "ada");
    assert_eq!(ada.post("/decisions", ADD_BLOCK).0, 303);
    let (_, page) = ada.get("/decisions");
    assert!(page.contains(&format!("/decisions/{id}/lift\"")), "{page}");
    assert_eq!(ada.post(&format!("/decisions/{id}/lift"), "").0, 303);
    assert!(decision(&s, &t, &id).is_none(), "the admin lifted {id}");
    s.stop();
}

/// A canary alert over C-200 and the canary; its id.
fn canary_alert(s: &Running, t: &Tokens) -> String {
    let event = json!({
        "@timestamp": "2026-03-02T12:00:00Z",
        "user.name": "c.carl",
        "source.ip": "198.51.100.7",
        "event.action": "lookup",
        "customer.ids": ["C-200", "C-900001"],
        "data.categories": ["name", "phone"],
    });
    let a = s.post("/v1/events", Some(&t.ingest), &event.to_string());
    assert_eq!(a.status, 200, "{}", a.text);
    eventually(WAIT, || {
        let v = s.get("/v1/alerts", Some(&t.read)).json();
        v.as_array()?.first()?["id"].as_str().map(str::to_owned)
    })
    .expect("the canary read is an alert")
}

#[test]
fn finding_18_a_viewer_sees_scope_counts_but_not_customers_or_report_drafts() {
    let (s, t) = start(DIRECTORY, |_| {});
    add(&s, "vera", ConsoleRole::Viewer);
    add(&s, "ana", ConsoleRole::Analyst);
    let alert = canary_alert(&s, &t);
    let vera = sign_in(&s, "vera");

    assert_refused(
        vera.get(&format!("/alerts/{alert}/report")),
        "analyst",
        "report",
    );
    let (status, page) = vera.get(&format!("/alerts/{alert}/scope"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("2 distinct customer(s)"), "{page}");
    assert!(
        !page.contains("C-200"),
        "a viewer sees the customers: {page}"
    );
    assert!(!page.contains("/report\""), "a viewer is offered the draft");
    assert_refused(
        vera.get(&format!("/alerts/{alert}/notice?locale=sv")),
        "analyst",
        "notice",
    );
    assert_refused(
        vera.get(&format!("/alerts/{alert}/recipients.csv")),
        "analyst",
        "recipients",
    );

    let ana = sign_in(&s, "ana");
    let (_, page) = ana.get(&format!("/alerts/{alert}/scope"));
    assert!(page.contains("C-200"), "{page}");
    assert!(
        page.contains(&format!("/alerts/{alert}/report\"")),
        "{page}"
    );
    let (status, page) = ana.get(&format!("/alerts/{alert}/report"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"report\""), "{page}");
    assert!(page.contains("/notice?locale=sv\""), "{page}");
    let (status, page) = ana.get(&format!("/alerts/{alert}/notice?locale=de"));
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Ihr Name") && page.contains("lang=\"de\""),
        "{page}"
    );
    let (status, csv) = ana.get(&format!("/alerts/{alert}/recipients.csv"));
    assert_eq!(status, 200);
    assert!(
        csv.starts_with("customer_id,categories,first_exposure,last_exposure\n"),
        "{csv}"
    );
    assert!(csv.contains("\nC-200,\"name,phone\","), "{csv}");
    s.stop();
}

#[test]
fn finding_18_a_role_change_applies_at_once() {
    let (s, t) = start(DIRECTORY, |_| {});
    add(&s, "bo", ConsoleRole::Analyst);
    let bo = sign_in(&s, "bo");
    assert_eq!(bo.post("/decisions", ADD).0, 303);
    let id = decisions(&s, &t)[0]["id"].as_str().unwrap().to_owned();

    // Made a viewer while signed in: the same session is refused at once.
    let set = |role| {
        assert!(Ledger::open_read(&s.data)
            .unwrap()
            .set_user_role("bo", role)
            .unwrap());
    };
    set(ConsoleRole::Viewer);
    assert_refused(
        bo.post(&format!("/decisions/{id}/extend"), "ttl=1h"),
        "analyst",
        "extend",
    );
    let (_, page) = bo.get("/decisions");
    assert!(!page.contains("id=\"add-decision\""), "{page}");

    // Made an admin: may lift, without signing in again.
    set(ConsoleRole::Admin);
    assert_eq!(bo.post(&format!("/decisions/{id}/lift"), "").0, 303);
    assert!(decisions(&s, &t).is_empty());
    s.stop();
}

/// The users table as it was before roles, with `name` in it.
fn old_users_table(db: &std::path::Path, name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let other = vakt_ledger::DataDir {
        path: tmp.path().join("data"),
    };
    let mut l = Ledger::open(&other).unwrap();
    l.add_user(name, PASSWORD).unwrap();
    let hash = l.user_hash(name).unwrap().unwrap();
    drop(l);
    rusqlite::Connection::open(db)
        .unwrap()
        .execute_batch(&format!(
            "DROP TABLE IF EXISTS users; \
             CREATE TABLE users(name TEXT PRIMARY KEY, hash TEXT NOT NULL, created INTEGER NOT NULL); \
             INSERT INTO users VALUES ('{name}', '{hash}', 1);"
        ))
        .unwrap();
}

#[test]
fn finding_18_existing_users_keep_admin_after_upgrade() {
    // The table is made before the server opens the data directory.
    let (s, t) = start(DIRECTORY, |c| old_users_table(&c.data.db_path(), "old"));
    let id = block(&s, &t, "r17.anna");
    let old = sign_in(&s, "old");
    let (_, page) = old.get("/decisions");
    assert!(page.contains(&format!("/decisions/{id}/lift\"")), "{page}");
    assert_eq!(old.post("/decisions", ADD).0, 303);
    assert_eq!(old.post(&format!("/decisions/{id}/lift"), "").0, 303);
    assert!(decision(&s, &t, &id).is_none(), "the old user lifted {id}");
    let users: Vec<_> = Ledger::open_read(&s.data)
        .unwrap()
        .list_users()
        .unwrap()
        .into_iter()
        .map(|u| (u.name, u.role))
        .collect();
    assert_eq!(users, [("old".to_owned(), ConsoleRole::Admin)]);
    s.stop();
}

/// The exceptions, also revoked ones, by the API.
fn exceptions(s: &Running, t: &Tokens) -> Vec<Value> {
    let a = s.get("/v1/exceptions?all=true", Some(&t.read));
    assert_eq!(a.status, 200, "{}", a.text);
    a.json().as_array().unwrap().clone()
}

#[test]
fn a_viewer_cannot_add_or_revoke_exceptions_and_an_analyst_can() {
    let (s, t) = start(DIRECTORY, |_| {});
    add(&s, "vera", ConsoleRole::Viewer);
    add(&s, "ana", ConsoleRole::Analyst);
    let alert = canary_alert(&s, &t);
    let vera = sign_in(&s, "vera");
    assert_refused(
        vera.post("/exceptions", "actor=c.carl&reason=test"),
        "analyst",
        "add exception",
    );
    assert_refused(
        vera.post("/exceptions", &format!("from_alert={alert}&reason=test")),
        "analyst",
        "mark false positive",
    );
    let (_, page) = vera.get(&format!("/alerts/{alert}"));
    assert!(!page.contains("id=\"false-positive\""), "{page}");
    assert!(exceptions(&s, &t).is_empty());

    // The alert's form makes an exception for its actor and rule.
    let ana = sign_in(&s, "ana");
    let (_, page) = ana.get(&format!("/alerts/{alert}"));
    assert!(page.contains("id=\"false-positive\""), "{page}");
    let (status, _) = ana.post(
        "/exceptions",
        &format!("from_alert={alert}&reason=known+tester&for=7d"),
    );
    assert_eq!(status, 303);
    let list = exceptions(&s, &t);
    assert_eq!(list.len(), 1);
    assert_eq!(
        (&list[0]["actor"], &list[0]["rule"], &list[0]["created_by"]),
        (&json!("c.carl"), &json!("canary"), &json!("ana"))
    );
    let (_, page) = ana.get("/exceptions");
    assert!(page.contains("known tester"), "{page}");

    // Bad input goes back to the form and adds nothing.
    let (status, _) = ana.post("/exceptions", "reason=no+scope");
    assert_eq!(status, 303);
    assert_eq!(exceptions(&s, &t).len(), 1);

    // Revoking: refused to a viewer, done for an analyst.
    assert_refused(
        vera.post("/exceptions/exc-1/revoke", ""),
        "analyst",
        "revoke",
    );
    assert!(exceptions(&s, &t)[0].get("revoked_at").is_none());
    assert_eq!(ana.post("/exceptions/exc-1/revoke", "").0, 303);
    assert_eq!(exceptions(&s, &t)[0]["revoked_by"], "ana");
    s.stop();
}

/// Incidents: a viewer reads them but is offered no form and refused
/// when posting one; an analyst's change is recorded under their name and
/// address; a form without its CSRF token changes nothing.
#[test]
fn a_viewer_reads_incidents_and_only_an_analyst_changes_them() {
    let (s, t) = start(DIRECTORY, |_| {});
    add(&s, "vera", ConsoleRole::Viewer);
    add(&s, "ana", ConsoleRole::Analyst);
    let alert = canary_alert(&s, &t);
    let path = format!("/incidents/{alert}");
    let vera = sign_in(&s, "vera");
    let (status, page) = vera.get("/incidents");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&format!("c.carl/{alert}")), "{page}");
    let (status, page) = vera.get(&path);
    assert_eq!(status, 200, "{page}");
    assert!(
        !page.contains("id=\"work\""),
        "a viewer is offered the form"
    );
    assert!(page.contains("id=\"work-withheld\""), "{page}");
    assert_refused(
        vera.post(&path, "status=acknowledged&owner=vera"),
        "analyst",
        "change",
    );

    let ana = sign_in(&s, "ana");
    let (_, page) = ana.get(&path);
    assert!(page.contains("id=\"work\""), "{page}");
    let (status, _) = ana.post(&path, "status=acknowledged&owner=ana&note=on+it");
    assert_eq!(status, 303);
    let v = s
        .get(&format!("/v1/incidents/{alert}"), Some(&t.read))
        .json();
    assert_eq!(v["incident"]["status"], "acknowledged");
    let h = &v["history"][0];
    assert_eq!(
        (&h["who"], &h["via"], &h["source"], &h["details"]["note"]),
        (
            &json!("ana"),
            &json!("console"),
            &json!("127.0.0.1"),
            &json!("on it")
        )
    );
    // Without the CSRF token: refused before anything is done.
    let r = ana
        .agent
        .post(format!("{}{path}", s.url))
        .header("cookie", &ana.cookie)
        .content_type("application/x-www-form-urlencoded")
        .send("status=new&owner=")
        .unwrap();
    assert_eq!(r.status(), 403);
    let v = s
        .get(&format!("/v1/incidents/{alert}"), Some(&t.read))
        .json();
    assert_eq!(v["history"].as_array().unwrap().len(), 1);
    // The audit page: the analyst's sign-in and change, not for viewers.
    assert_refused(vera.get("/audit"), "analyst", "audit");
    assert!(!vera.get("/incidents").1.contains("href=\"/audit\""));
    let (status, page) = ana.get("/audit?who=ana");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("href=\"/audit\""), "{page}");
    let actions: Vec<&str> = page
        .split("<td class=\"action\">")
        .skip(1)
        .map(|p| p.split('<').next().unwrap())
        .collect();
    assert_eq!(actions, ["session.start", "incident.update"], "{page}");
    s.stop();
}

/// The overview counts open incidents by severity and age, draws the
/// alerts per day, and its search finds an alert, an account's incidents
/// and a customer's readers; a viewer may use all of it.
#[test]
fn the_overview_and_search_work_for_a_viewer() {
    let (s, t) = start(DIRECTORY, |_| {});
    add(&s, "vera", ConsoleRole::Viewer);
    let alert = canary_alert(&s, &t);
    let vera = sign_in(&s, "vera");
    let (status, page) = vera.get("/overview");
    assert_eq!(status, 200, "{page}");
    // One critical incident (the canary read), days old: the last column.
    let critical = page
        .split("sev-critical")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(
        critical.contains("/incidents?severity=critical\">1</a>"),
        "{critical}"
    );
    assert!(
        page.contains("id=\"alerts-chart\"") && page.contains("data-total=\"1\""),
        "{page}"
    );
    assert!(page.contains("data-rule=\"canary\""), "{page}");
    assert!(page.contains("id=\"no-clocks\""), "{page}");
    // Search: an alert id goes to the alert.
    let r = vera
        .agent
        .get(format!("{}/search?q={alert}", s.url))
        .header("cookie", &vera.cookie)
        .config()
        .max_redirects(0)
        .build()
        .call()
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], format!("/alerts/{alert}").as_str());
    let (_, page) = vera.get("/search?q=c.carl");
    assert!(
        page.contains("id=\"found-incidents\"") && page.contains(&format!("c.carl/{alert}")),
        "{page}"
    );
    let (_, page) = vera.get("/search?q=C-900001");
    let reads = page
        .split("id=\"customer-reads\"")
        .nth(1)
        .expect("the customer's reads");
    assert!(
        reads.contains("c.carl") && reads.contains("198.51.100.7"),
        "{page}"
    );
    let (_, page) = vera.get("/search?q=nobody");
    assert!(
        page.contains("id=\"no-incidents\"") && page.contains("id=\"no-reads\""),
        "{page}"
    );
    s.stop();
}

#[test]
fn payment_pages_list_their_scripts_and_mark_the_unjustified() {
    let directory = format!(
        "{DIRECTORY}\n[[page]]\nurl = \"https://shop.example/pay\"\n\n[[page.script]]\nurl = \"https://shop.example/app.js\"\njustification = \"our bundle\"\n"
    );
    let (s, t) = start(&directory, |_| {});
    let mut l = Ledger::open(&s.data).unwrap();
    let script = |url: &str, sha: &str| vakt_event::page::ScriptSeen {
        url: url.into(),
        sha384: sha.into(),
        bytes: 10,
        loaded_by: "page".into(),
        ..Default::default()
    };
    l.record_page_check(
        "https://shop.example/pay",
        &vakt_event::page::PageSnapshot {
            url: "https://shop.example/pay".into(),
            final_url: "https://shop.example/pay".into(),
            checked_at: vakt_event::Timestamp::now(),
            scripts: vec![
                script(
                    "https://shop.example/app.js",
                    "sha384-appappappappappappapp",
                ),
                script(
                    "https://chat.vendor.example/w.js",
                    "sha384-chatchatchatchatchat",
                ),
            ],
            csp: Some("script-src 'self'".into()),
            ..Default::default()
        },
    )
    .unwrap();
    l.close().unwrap();
    add(&s, "vera", ConsoleRole::Viewer);
    let vera = sign_in(&s, "vera");
    let (status, page) = vera.get("/pages");
    assert_eq!(status, 200, "{page}");
    let row = |url: &str| {
        page.split("<tr>")
            .find(|r| r.contains(url))
            .unwrap_or_else(|| panic!("no row for {url}: {page}"))
            .to_string()
    };
    assert!(row("https://shop.example/app.js").contains("our bundle"));
    assert!(row("https://chat.vendor.example/w.js").contains("not justified"));
    assert!(
        page.contains("script-src &#39;self&#39;") || page.contains("script-src 'self'"),
        "{page}"
    );
    let api = s.send(common::Req {
        method: "GET",
        path: "/v1/pages",
        token: Some(&t.read),
        content_type: None,
        body: None,
        authorization: None,
    });
    assert_eq!(api.status, 200);
    let pages: Value = serde_json::from_str(&api.text).unwrap();
    assert_eq!(pages[0]["url"], "https://shop.example/pay");
    let justification = |url: &str| {
        pages[0]["scripts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["url"] == url)
            .unwrap()["justification"]
            .clone()
    };
    assert_eq!(justification("https://shop.example/app.js"), "our bundle");
    assert_eq!(
        justification("https://chat.vendor.example/w.js"),
        Value::Null
    );
}
