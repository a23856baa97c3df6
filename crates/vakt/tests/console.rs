//! The web console of `vakt serve`, against the real binary on 127.0.0.1
//! with a data directory made by `vakt watch --data` and a user made by
//! `vakt user add --password-stdin`: plain HTTP for sign-in, redirects and
//! CSRF, and headless Chromium (through chromedriver and WebDriver) for
//! the pages a person uses.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::browser::{shot, wait};
use support::{vakt, Child, WAIT};

const USER: &str = "anna";
const PASSWORD: &str = "hunter22-pass";

/// Four working days of one partner account, then a read of a canary.
fn prepare(tmp: &Path) -> PathBuf {
    let mut lines = String::new();
    let mut n = 0;
    for day in 1..=4 {
        for hour in 8..17 {
            for k in 0..(3 + hour % 3) {
                n += 1;
                lines += &format!(
                    "{{\"@timestamp\":\"2026-11-{day:02}T{hour:02}:{:02}:00Z\",\"user.name\":\"p3.bot\",\"source.ip\":\"10.0.0.5\",\"event.action\":\"lookup\",\"customer.ids\":[\"C-{n}\"],\"data.categories\":[\"name\",\"phone\"]}}\n",
                    k * 7
                );
            }
        }
    }
    lines += "{\"@timestamp\":\"2026-11-05T09:30:00Z\",\"user.name\":\"p3.bot\",\"source.ip\":\"10.0.0.5\",\"event.action\":\"lookup\",\"customer.ids\":[\"C-900001\"],\"data.categories\":[\"name\",\"phone\"]}\n";
    std::fs::write(tmp.join("in.jsonl"), lines).unwrap();
    std::fs::write(
        tmp.join("dir.toml"),
        "[notification]\nregimes = [\"gdpr\", \"telecom\"]\n\n[[canary]]\ncustomer_id = \"C-900001\"\nlabel = \"test canary\"\n",
    )
    .unwrap();
    let data = tmp.join("data");
    let st = vakt()
        .args(["watch", "-q", "--data"])
        .arg(&data)
        .arg("--directory")
        .arg(tmp.join("dir.toml"))
        .arg(tmp.join("in.jsonl"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    add_user(&data, USER, "admin");
    data
}

/// A console user with [`PASSWORD`] and `role`.
fn add_user(data: &Path, name: &str, role: &str) {
    let mut add = vakt()
        .args([
            "user",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
            "--data",
        ])
        .arg(data)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(add.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains(PASSWORD));
}

/// `vakt serve` on a free port; returns the process and its base URL.
fn serve(tmp: &Path, data: &Path) -> (Child, String) {
    let directory = tmp.join("dir.toml");
    support::serve(data, &["--directory".as_ref(), directory.as_os_str()])
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(WAIT))
        .build()
        .into()
}

fn header(r: &ureq::http::Response<ureq::Body>, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn post_form(
    a: &ureq::Agent,
    url: &str,
    cookie: Option<&str>,
    body: &str,
) -> ureq::http::Response<ureq::Body> {
    let mut q = a
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        q = q.header("cookie", c);
    }
    q.send(body).unwrap()
}

/// Signs `user` in with [`PASSWORD`]; the session cookie (`name=value`).
fn session_cookie(a: &ureq::Agent, url: &str, user: &str) -> String {
    let r = post_form(
        a,
        &format!("{url}/login"),
        None,
        &format!("user={user}&password={PASSWORD}&next=%2F"),
    );
    assert_eq!(r.status().as_u16(), 303, "{user} signs in");
    header(&r, "set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn get_page(a: &ureq::Agent, url: &str, cookie: &str) -> (u16, String) {
    let mut r = a.get(url).header("cookie", cookie).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

#[test]
fn sign_in_failure_redirects_and_csrf_refusal_over_plain_http() {
    let tmp = tempfile::tempdir().unwrap();
    let data = prepare(tmp.path());
    let (_serve, url) = serve(tmp.path(), &data);
    let a = agent();
    // Not signed in: every page sends to the sign-in form.
    for path in ["/", "/decisions", "/canaries", "/exposure"] {
        let r = a.get(&format!("{url}{path}")).call().unwrap();
        assert_eq!(r.status().as_u16(), 303, "{path}");
        assert!(header(&r, "location").starts_with("/login"), "{path}");
    }
    // The JSON API is untouched: no token, 401.
    let r = a.get(&format!("{url}/v1/alerts")).call().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // A wrong password: 401, no session.
    let mut r = post_form(
        &a,
        &format!("{url}/login"),
        None,
        &format!("user={USER}&password=wrong-password&next=%2F"),
    );
    assert_eq!(r.status().as_u16(), 401);
    assert!(header(&r, "set-cookie").is_empty());
    assert!(r
        .body_mut()
        .read_to_string()
        .unwrap()
        .contains("Wrong name or password"));
    let r = post_form(
        &a,
        &format!("{url}/login"),
        None,
        &format!("user=nobody&password={PASSWORD}"),
    );
    assert_eq!(r.status().as_u16(), 401);
    // The right one: a session cookie, HttpOnly and SameSite=Strict.
    let r = post_form(
        &a,
        &format!("{url}/login"),
        None,
        &format!("user={USER}&password={PASSWORD}&next=%2Fdecisions"),
    );
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(header(&r, "location"), "/decisions");
    let set = header(&r, "set-cookie");
    assert!(set.starts_with("vakt_session="), "{set}");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"));
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    let (status, page) = get_page(&a, &format!("{url}/decisions"), &cookie);
    assert_eq!(status, 200);
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    // A change without the CSRF token, or with a wrong one: 403, nothing done.
    let add = "scope=account&value=r9.mallory&action=block&ttl=1h";
    for body in [add.to_owned(), format!("{add}&csrf=0000{}", &csrf[4..])] {
        let r = post_form(&a, &format!("{url}/decisions"), Some(&cookie), &body);
        assert_eq!(r.status().as_u16(), 403, "{body}");
    }
    let r = post_form(&a, &format!("{url}/logout"), Some(&cookie), "");
    assert_eq!(r.status().as_u16(), 403);
    let (_, page) = get_page(&a, &format!("{url}/decisions"), &cookie);
    assert!(!page.contains("r9.mallory"));
    // With it: done.
    let r = post_form(
        &a,
        &format!("{url}/decisions"),
        Some(&cookie),
        &format!("{add}&csrf={csrf}"),
    );
    assert_eq!(r.status().as_u16(), 303);
    let (_, page) = get_page(&a, &format!("{url}/decisions"), &cookie);
    assert!(page.contains("r9.mallory"));
    // A value that is not an address comes back with what to write instead.
    let r = post_form(
        &a,
        &format!("{url}/decisions"),
        Some(&cookie),
        &format!("scope=ip&value=host-1&action=block&ttl=1h&csrf={csrf}"),
    );
    assert_eq!(r.status().as_u16(), 303);
    let (_, page) = get_page(&a, &format!("{url}{}", header(&r, "location")), &cookie);
    assert!(
        page.contains("is not an IP address or network; write e.g. 198.51.100.7"),
        "{page}"
    );
    assert!(!page.contains("<td class=\"value\">host-1"));
    // Signing out ends the session.
    let r = post_form(
        &a,
        &format!("{url}/logout"),
        Some(&cookie),
        &format!("csrf={csrf}"),
    );
    assert_eq!(r.status().as_u16(), 303);
    let r = a
        .get(&format!("{url}/"))
        .header("cookie", &cookie)
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
}

#[test]
fn a_session_survives_a_restart_and_guessing_is_stopped_after_ten_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let data = prepare(tmp.path());
    let a = agent();
    let (serve1, url) = serve(tmp.path(), &data);
    let cookie = session_cookie(&a, &url, USER);
    drop(serve1);

    // Same data directory, new process: still signed in.
    let (_serve2, url) = serve(tmp.path(), &data);
    let (status, page) = get_page(&a, &format!("{url}/decisions"), &cookie);
    assert_eq!(status, 200, "{page}");
    // A made-up session id is not.
    let forged = format!("vakt_session={}", "ab".repeat(32));
    let r = a
        .get(&format!("{url}/decisions"))
        .header("cookie", &forged)
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);

    // Ten wrong passwords, then even the right one waits.
    for i in 0..10 {
        let r = post_form(
            &a,
            &format!("{url}/login"),
            None,
            &format!("user={USER}&password=guess-{i}"),
        );
        assert_eq!(r.status().as_u16(), 401, "guess {i}");
    }
    let mut r = post_form(
        &a,
        &format!("{url}/login"),
        None,
        &format!("user={USER}&password={PASSWORD}"),
    );
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = header(&r, "retry-after").parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    assert!(header(&r, "set-cookie").is_empty());
    assert!(r
        .body_mut()
        .read_to_string()
        .unwrap()
        .contains("Too many failed sign-ins"));
    // The session made before is untouched.
    let (status, _) = get_page(&a, &format!("{url}/decisions"), &cookie);
    assert_eq!(status, 200);

    // Deleting the user signs them out at once.
    let out = vakt()
        .args(["user", "delete", USER, "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = a
        .get(&format!("{url}/decisions"))
        .header("cookie", &cookie)
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_reads_an_alert_and_adds_and_lifts_a_decision_in_chromium() {
    use fantoccini::Locator;
    let tmp = tempfile::tempdir().unwrap();
    let Some(browser) = support::browser::start(tmp.path()).await else {
        return;
    };
    let c = browser.client.clone();
    let data = prepare(tmp.path());
    let (_serve, url) = serve(tmp.path(), &data);
    let run = async {
        // Not signed in: the sign-in form.
        c.goto(&format!("{url}/")).await.unwrap();
        wait(&c, "#user").await.send_keys(USER).await.unwrap();
        c.find(Locator::Css("#password"))
            .await
            .unwrap()
            .send_keys(PASSWORD)
            .await
            .unwrap();
        shot(&c, "01-login.png").await;
        c.find(Locator::Css("#signin"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // The alert list, with the canary alert.
        let link = wait(&c, "a.alert-link[href^='/alerts/canary-']").await;
        shot(&c, "02-alerts.png").await;
        link.click().await.unwrap();
        // The alert page: evidence and the timeline drawn with points.
        let chart = wait(&c, "#timeline").await;
        let points: usize = chart
            .attr("data-points")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        assert!(points > 24, "{points} hours on the timeline");
        let bars = c
            .find_all(Locator::Css("#timeline rect.bar"))
            .await
            .unwrap();
        assert_eq!(bars.len(), points);
        assert!(!c
            .find_all(Locator::Css("#timeline .band"))
            .await
            .unwrap()
            .is_empty());
        assert!(!c
            .find_all(Locator::Css("#timeline line.alert"))
            .await
            .unwrap()
            .is_empty());
        let evidence = c
            .find(Locator::Css("#evidence"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(evidence.contains("touches"), "{evidence}");
        shot(&c, "03-alert.png").await;
        // The scope and the draft report.
        c.find(Locator::Css("#scope-link"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let scope = wait(&c, "#scope").await.text().await.unwrap();
        assert!(scope.contains("C-900001"), "{scope}");
        shot(&c, "04-scope.png").await;
        c.find(Locator::Css("#draft"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let report = wait(&c, "#report").await.text().await.unwrap();
        assert!(report.contains("p3.bot"), "{report}");
        shot(&c, "05-report.png").await;
        // Decisions: add one, see it, lift it.
        c.goto(&format!("{url}/decisions")).await.unwrap();
        wait(&c, "#d-value")
            .await
            .send_keys("r9.mallory")
            .await
            .unwrap();
        c.find(Locator::Css("#d-action"))
            .await
            .unwrap()
            .select_by_value("block")
            .await
            .unwrap();
        c.find(Locator::Css("#d-reason"))
            .await
            .unwrap()
            .send_keys("browser test")
            .await
            .unwrap();
        c.find(Locator::Css("#d-add"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let row = wait(&c, "#decisions tr[data-id^='manual-account-r9.mallory-']").await;
        let text = row.text().await.unwrap();
        assert!(
            text.contains("block") && text.contains("browser test (anna)"),
            "{text}"
        );
        shot(&c, "06-decision-added.png").await;
        row.find(Locator::Css("button.lift"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait(&c, "#add-decision").await;
        let deadline = Instant::now() + WAIT;
        while !c
            .find_all(Locator::Css(
                "#decisions tr[data-id^='manual-account-r9.mallory-']",
            ))
            .await
            .unwrap()
            .is_empty()
        {
            assert!(
                Instant::now() < deadline,
                "the lifted decision is still listed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        shot(&c, "07-decision-lifted.png").await;
        // Canaries: read, and by whom.
        c.goto(&format!("{url}/canaries")).await.unwrap();
        let canaries = wait(&c, "#canaries").await.text().await.unwrap();
        assert!(
            canaries.contains("C-900001") && canaries.contains("p3.bot"),
            "{canaries}"
        );
        shot(&c, "08-canaries.png").await;
    };
    let outcome = tokio::time::timeout(Duration::from_secs(120), run).await;
    let _ = c.close().await;
    outcome.expect("the browser steps finish within 120 s");
}

/// The value of `<input ... name="NAME" value="...">` on a page.
fn input_value(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} field"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// An analyst acknowledges, assigns, notes and closes an incident as a
/// false positive with an exception in Chromium; a viewer sees no form
/// and is refused when posting one anyway; the next run of the same
/// traffic raises nothing for that actor, and the ledger verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_works_an_incident_in_chromium_and_a_viewer_cannot() {
    use fantoccini::Locator;
    use support::browser::{click, fill, sign_in};
    let tmp = tempfile::tempdir().unwrap();
    let Some(browser) = support::browser::start(tmp.path()).await else {
        return;
    };
    let c = browser.client.clone();
    let data = prepare(tmp.path());
    add_user(&data, "ana", "analyst");
    add_user(&data, "vic", "viewer");
    let (serve_process, url) = serve(tmp.path(), &data);
    let run = async {
        sign_in(&c, &url, "ana", PASSWORD).await;
        c.goto(&format!("{url}/incidents")).await.unwrap();
        let row = wait(&c, "#incidents tr[data-id^='p3.bot/canary-']").await;
        let id = row.attr("data-id").await.unwrap().unwrap();
        assert_eq!(
            row.find(Locator::Css("td.status"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            "new"
        );
        shot(&c, "11-incidents.png").await;
        row.find(Locator::Css("a.incident-link"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait(&c, "#work").await;
        let status = || async {
            c.find(Locator::Css("#status"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        };
        // Acknowledge and take it.
        c.find(Locator::Css("#w-status"))
            .await
            .unwrap()
            .select_by_value("acknowledged")
            .await
            .unwrap();
        fill(&c, "#w-owner", "ana").await;
        click(&c, "#w-save").await;
        wait(&c, "#history td.who").await;
        assert_eq!(status().await, "acknowledged");
        assert_eq!(
            c.find(Locator::Css("#owner"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            "ana"
        );
        // A note.
        fill(&c, "#w-note", "called the partner's operations desk").await;
        click(&c, "#w-save").await;
        wait(&c, "#history tr:nth-child(3)").await;
        // Resolving without a classification is refused with a reason.
        c.find(Locator::Css("#w-status"))
            .await
            .unwrap()
            .select_by_value("resolved")
            .await
            .unwrap();
        click(&c, "#w-save").await;
        let error = wait(&c, "#form-error").await.text().await.unwrap();
        assert!(error.contains("needs a classification"), "{error}");
        assert_eq!(status().await, "acknowledged");
        // Closed as a false positive, with an exception for 30 days.
        c.find(Locator::Css("#w-status"))
            .await
            .unwrap()
            .select_by_value("resolved")
            .await
            .unwrap();
        c.find(Locator::Css("#w-classification"))
            .await
            .unwrap()
            .select_by_value("false_positive")
            .await
            .unwrap();
        fill(&c, "#w-reason", "a load test of the partner's bot").await;
        click(&c, "#w-except").await;
        fill(&c, "#w-except-for", "30d").await;
        click(&c, "#w-save").await;
        wait(&c, "#classification").await;
        assert_eq!(status().await, "resolved");
        let history = c
            .find(Locator::Css("#history"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(history.contains("exceptions exc-1"), "{history}");
        assert!(
            history.contains("called the partner's operations desk"),
            "{history}"
        );
        assert_eq!(
            c.find_all(Locator::Css("#history td.who"))
                .await
                .unwrap()
                .len(),
            3
        );
        shot(&c, "12-incident-closed.png").await;
        // A breach the company learned of 30.5 hours ago: GDPR's 72 hours
        // have 41.5 left, the telecom rule's 24 are 6.5 overdue.
        let aware = vakt_event::Timestamp(vakt_event::Timestamp::now().0 - (30 * 60 + 30) * 60_000);
        fill(&c, "#b-aware-at", &aware.to_string()).await;
        fill(&c, "#b-aware-reason", "the partner's report").await;
        click(&c, "#b-mark").await;
        let gdpr = wait(&c, "#clocks tr[data-step='gdpr.art33'] td.left")
            .await
            .text()
            .await
            .unwrap();
        assert!(gdpr.starts_with("41 h 2"), "{gdpr}");
        let telecom = c
            .find(Locator::Css(
                "#clocks tr[data-step='telecom.authority'] td.left",
            ))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(telecom.starts_with("overdue by 6 h 3"), "{telecom}");
        // The telecom authority notified now, late, with the reason.
        c.find(Locator::Css("#b-notified"))
            .await
            .unwrap()
            .select_by_value("telecom.authority")
            .await
            .unwrap();
        fill(&c, "#b-delay", "the partner's report came a day late").await;
        click(&c, "#b-record").await;
        wait(&c, "#delay-reason").await;
        let telecom = c
            .find(Locator::Css(
                "#clocks tr[data-step='telecom.authority'] td.left",
            ))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            telecom.starts_with("made ") && telecom.ends_with(", late"),
            "{telecom}"
        );
        shot(&c, "12-incident.png").await;
        // The overview shows the running clock; its search finds who read the canary.
        c.goto(&format!("{url}/overview")).await.unwrap();
        let clocks = wait(&c, "#overview-clocks").await.text().await.unwrap();
        assert!(
            clocks.contains("GDPR Art. 33") && clocks.contains(&id),
            "{clocks}"
        );
        wait(&c, "#alerts-chart rect").await;
        shot(&c, "10-overview.png").await;
        fill(&c, "#q", "C-900001").await;
        click(&c, "#search").await;
        let reads = wait(&c, "#customer-reads").await.text().await.unwrap();
        assert!(reads.contains("p3.bot"), "{reads}");
        c.goto(&format!("{url}/incidents/{}", id.replace('/', "%2F")))
            .await
            .unwrap();
        wait(&c, "#work").await;
        // Resolved incidents leave the default list.
        c.goto(&format!("{url}/incidents")).await.unwrap();
        let open = wait(&c, "#incidents").await.text().await.unwrap();
        assert!(!open.contains(&id), "{open}");
        c.goto(&format!("{url}/incidents?status=resolved"))
            .await
            .unwrap();
        wait(&c, "#incidents tr[data-id]").await;
        // A viewer, in the same browser: the incident without a form.
        click(&c, "header form button").await;
        sign_in(&c, &url, "vic", PASSWORD).await;
        c.goto(&format!("{url}/incidents/{}", id.replace('/', "%2F")))
            .await
            .unwrap();
        wait(&c, "#work-withheld").await;
        for form in ["#work", "#notified", "#mark-breach", "button"] {
            let found = c
                .find_all(Locator::Css(&format!("main {form}")))
                .await
                .unwrap();
            assert!(found.is_empty(), "a viewer is offered {form}");
        }
        assert!(!c
            .find(Locator::Css("nav"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("Audit"));
        id
    };
    let id = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser steps finish within 120 s");
    let _ = c.close().await;

    // The viewer: no form, and a form posted anyway is refused.
    let a = agent();
    let cookie = session_cookie(&a, &url, "vic");
    let page_url = format!("{url}/incidents/{}", id.replace('/', "%2F"));
    let (code, page) = get_page(&a, &page_url, &cookie);
    assert_eq!(code, 200);
    assert!(
        page.contains("id=\"work-withheld\"") && !page.contains("id=\"work\""),
        "{page}"
    );
    let csrf = input_value(&page, "csrf");
    let r = post_form(
        &a,
        &page_url,
        Some(&cookie),
        &format!("csrf={csrf}&status=new&owner="),
    );
    assert_eq!(r.status().as_u16(), 403);
    let (_, page) = get_page(&a, &page_url, &cookie);
    assert!(page.contains("<td id=\"status\">resolved</td>"), "{page}");
    drop(serve_process);

    // The same traffic again: p3.bot's canary read is suppressed.
    let again = tmp.path().join("again.jsonl");
    std::fs::copy(tmp.path().join("in.jsonl"), &again).unwrap();
    let out = vakt()
        .args(["watch", "--data"])
        .arg(&data)
        .arg("--directory")
        .arg(tmp.path().join("dir.toml"))
        .arg(&again)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("\"rule.id\":\"canary\""), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("suppressed by exceptions"), "{stderr}");
    let verify = vakt()
        .args(["ledger", "verify", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
