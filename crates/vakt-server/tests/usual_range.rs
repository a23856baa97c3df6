//! The actor's usual range around an alert is one figure: the API's
//! `activity.baseline` and the console's band and sentence agree.

mod common;

use common::{eventually, start, WAIT};
use serde_json::json;
use vakt_ledger::Ledger;

const DIRECTORY: &str = r#"
[[organization]]
id = "reseller-17"
kind = "reseller"

[[account]]
name = "r17.anna"
organization = "reseller-17"
role = "sales"

[[canary]]
customer_id = "C-900001"
label = "planted 2026-02"
"#;

fn lookup(when: &str, customer: &str) -> String {
    json!({
        "@timestamp": when,
        "user.name": "r17.anna",
        "source.ip": "198.51.100.7",
        "event.action": "lookup",
        "customer.ids": [customer],
        "data.categories": ["name"],
    })
    .to_string()
}

/// An attribute of the first element that has it, from an HTML page.
fn attribute(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(page[at..].split('"').next()?.to_owned())
}

#[test]
fn the_api_and_the_console_give_one_usual_range_for_an_alert() {
    let (s, tokens) = start(DIRECTORY, |_| {});
    // Active hours 6, 5, 2 and 1 days before the canary read on 2 March
    // at 08:00, with 2, 3, 5 and 8 lookups: two of them outside the
    // three days the console charts, and an even count, where ranking
    // rules differ.
    let mut lines = Vec::new();
    for (day, n) in [(24, 2), (25, 3), (28, 5), (1, 8)] {
        let month = if day == 1 { 3 } else { 2 };
        for i in 0..n {
            lines.push(lookup(
                &format!("2026-{month:02}-{day:02}T10:{i:02}:00Z"),
                &format!("C-{day}{i}"),
            ));
        }
    }
    lines.push(lookup("2026-03-02T08:00:00Z", "C-900001"));
    let a = s.post("/v1/events", Some(&tokens.ingest), &lines.join("\n"));
    assert_eq!(a.status, 200, "{}", a.text);
    let id = eventually(WAIT, || {
        let v = s.get("/v1/alerts?rule=canary", Some(&tokens.read)).json();
        v.as_array()?.first()?["id"].as_str().map(str::to_owned)
    })
    .expect("the canary read is an alert");

    let v = s
        .get(&format!("/v1/alerts/{id}"), Some(&tokens.read))
        .json();
    let api = &v["activity"]["baseline"];
    assert_eq!(
        api,
        &json!({"active_hours": 4, "median": 5, "p90": 8}),
        "{v:#}"
    );

    // The console, signed in.
    Ledger::open_read(&s.data)
        .unwrap()
        .add_user("ops", "correct horse battery")
        .unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(WAIT))
        .build()
        .into();
    let signed_in = agent
        .post(format!("{}/login", s.url))
        .content_type("application/x-www-form-urlencoded")
        .send("user=ops&password=correct+horse+battery&next=%2F")
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = agent
        .get(format!("{}/alerts/{id}", s.url))
        .header("Cookie", &cookie)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let band = &page[page.find("class=\"band\"").expect("a band is drawn")..];
    let number = |name| attribute(band, name).and_then(|n| n.parse::<u64>().ok());
    assert_eq!(
        (number("data-median"), number("data-p90")),
        (api["median"].as_u64(), api["p90"].as_u64()),
        "{band:.300}"
    );
    assert!(
        page.contains("usual active hour, 5 to 8 accesses (median to 90th percentile of its 4 active hour(s) in the 7 days before the alert)"),
        "{page}"
    );
    // The chart still shows three days before the alert to two after.
    assert_eq!(
        attribute(&page, "data-points").as_deref(),
        Some("121"),
        "{page}"
    );
    s.stop();
}
