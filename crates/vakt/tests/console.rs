//! The web console of `vakt serve`, against the real binary on 127.0.0.1
//! with a data directory made by `vakt watch --data` and a user made by
//! `vakt user add --password-stdin`: plain HTTP for sign-in, redirects and
//! CSRF, and headless Chromium (through chromedriver and WebDriver) for
//! the pages a person uses.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{free_port, vakt, Child, WAIT};

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
        "[[canary]]\ncustomer_id = \"C-900001\"\nlabel = \"test canary\"\n",
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
    let mut add = vakt()
        .args([
            "user",
            "add",
            USER,
            "--role",
            "admin",
            "--password-stdin",
            "--data",
        ])
        .arg(&data)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(add.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains(PASSWORD));
    data
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
    let r = post_form(
        &a,
        &format!("{url}/login"),
        None,
        &format!("user={USER}&password={PASSWORD}"),
    );
    assert_eq!(r.status().as_u16(), 303);
    let cookie = header(&r, "set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
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

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

fn shots() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn shot(c: &fantoccini::Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots().join(name), png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_reads_an_alert_and_adds_and_lifts_a_decision_in_chromium() {
    use fantoccini::Locator;
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        eprintln!("skipped: needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver; ./scripts/test installs them)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = prepare(tmp.path());
    let (_serve, url) = serve(tmp.path(), &data);
    let port = free_port();
    let _driver = Child::spawn(
        "chromedriver",
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null()),
    )
    .unwrap();
    let webdriver = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + WAIT;
    let status = agent();
    while status.get(&format!("{webdriver}/status")).call().is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not start within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let profile = tmp.path().join("chromium-profile");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let c = tokio::time::timeout(
        Duration::from_secs(60),
        fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&webdriver),
    )
    .await
    .expect("a Chromium session within 60 s")
    .expect("chromedriver makes a session");
    let run = async {
        let wait = |c: &fantoccini::Client, css: &'static str| {
            let c = c.clone();
            async move {
                c.wait()
                    .at_most(WAIT)
                    .for_element(Locator::Css(css))
                    .await
                    .unwrap_or_else(|e| panic!("{css}: {e}"))
            }
        };
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
