//! Payment-page integrity end to end, in a real headless Chromium: a shop's
//! payment page with a vendor's chat script, served on loopback by the
//! test. The first check records the inventory; benign changes (a script
//! allowed to change, a listed analytics beacon) raise nothing; the chat
//! script turned skimmer is named with its change and its new destination;
//! the suggested CSP, once served, makes the browser report the skimmer's
//! request to `vakt serve`, which also runs the checks on schedule.

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};
use support::{vakt, WAIT};
use vakt_pages::site::{bundle, payment_page, skimmer, Answer, Site, CHAT, PAY};

const CHROMIUM: &str = "/usr/bin/chromium";

/// `vakt ARGS --data DATA`, its browsers' profiles beside DATA (so a test
/// can look for what its own checks left running).
fn run(args: &[&str], data: &Path) -> Output {
    let out = vakt()
        .args(args)
        .arg("--data")
        .arg(data)
        .env("TMPDIR", data.parent().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vakt {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn alerts(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn findings(alerts: &[Value]) -> Vec<String> {
    let mut f: Vec<String> = alerts
        .iter()
        .map(|a| a["evidence"]["finding"].as_str().unwrap_or("?").to_string())
        .collect();
    f.sort();
    f
}

/// No Chromium of a check under `tmp` is left once the check returned.
fn no_browser_left(tmp: &Path) {
    let mark = tmp.to_string_lossy().into_owned();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline);
        assert!(
            !(text.contains("remote-debugging-pipe") && text.contains(&mark)),
            "a page check's browser is still running: {text}"
        );
    }
}

#[test]
fn a_vendor_script_turned_skimmer_is_caught_and_benign_changes_are_not() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!(
            "skipped: needs {CHROMIUM} (apt-get install chromium; ./scripts/test installs it)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // 0: the shop, 1: the chat vendor, 2: analytics, 3: the skimmer's collector.
    let site = Site::start(4).unwrap();
    let (shop, vendor, analytics, collector) = (
        site.origin(0),
        site.origin(1),
        site.origin(2),
        site.origin(3),
    );
    let page = format!("{shop}/pay");
    payment_page(&site);
    let directory = tmp.path().join("directory.toml");
    std::fs::write(
        &directory,
        format!(
            "[[page]]\nurl = \"{page}\"\nevery = \"2s\"\nfill = true\n\n[[page.script]]\nurl = \"{shop}/static/app.js\"\njustification = \"the shop's own bundle, deployed weekly\"\nmay_change = true\n"
        ),
    )
    .unwrap();
    let check = |data: &Path| {
        run(
            &["pages", "check", "--directory", directory.to_str().unwrap()],
            data,
        )
    };

    // The first check is the baseline: recorded, nothing raised.
    let started = Instant::now();
    let first = check(&data);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("inventory recorded (first check)"),
        "{stderr}"
    );
    assert_eq!(alerts(&first), Vec::<Value>::new(), "{stderr}");
    eprintln!("first check, process start to exit: {took:?}; {stderr}");
    no_browser_left(tmp.path());

    // Benign: the bundle allowed to change changes; the listed beacon goes on.
    site.set(
        0,
        "/static/app.js",
        "text/javascript",
        &bundle(2, &analytics),
        &[],
    );
    let benign = check(&data);
    assert_eq!(
        alerts(&benign),
        Vec::<Value>::new(),
        "{}",
        String::from_utf8_lossy(&benign.stderr)
    );

    // The vendor's chat script now copies the card number to another origin.
    site.set(1, "/chat.js", "text/javascript", &skimmer(&collector), &[]);
    let caught = check(&data);
    let raised = alerts(&caught);
    assert_eq!(
        findings(&raised),
        ["canary_sent", "new_destination", "script_changed"],
        "{raised:#?}"
    );
    for a in &raised {
        assert_eq!(a["rule.id"], "page_integrity");
        assert_eq!(
            a["host.name"], "127.0.0.1",
            "the vendor script is responsible: {a}"
        );
    }
    let changed = raised
        .iter()
        .find(|a| a["evidence"]["finding"] == "script_changed")
        .unwrap();
    assert_eq!(changed["evidence"]["script"], format!("{vendor}/chat.js"));
    let change = &changed["evidence"]["change"];
    assert_eq!(change["urls_added"], serde_json::json!([collector]));
    assert!(
        change["excerpt"].as_str().unwrap().contains("cardnumber"),
        "{change}"
    );
    assert_ne!(
        changed["evidence"]["observed"]["sha384"],
        changed["evidence"]["baseline"]["sha384"]
    );
    let dest = raised
        .iter()
        .find(|a| a["evidence"]["finding"] == "new_destination")
        .unwrap();
    assert_eq!(dest["evidence"]["destination"], collector);
    assert_eq!(
        dest["evidence"]["observed"]["initiator"],
        format!("{vendor}/chat.js")
    );
    let canary = raised
        .iter()
        .find(|a| a["evidence"]["finding"] == "canary_sent")
        .unwrap();
    assert_eq!(canary["severity"], "critical");

    // Recorded in the ledger like any alert; the inventory says what is justified.
    let incidents = run(&["incident", "list"], &data);
    assert!(
        String::from_utf8_lossy(&incidents.stdout).contains("page_integrity"),
        "{}",
        String::from_utf8_lossy(&incidents.stdout)
    );
    let md = run(
        &[
            "pages",
            "inventory",
            "--format",
            "markdown",
            "--directory",
            directory.to_str().unwrap(),
        ],
        &data,
    );
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(
        md.contains("the shop's own bundle, deployed weekly"),
        "{md}"
    );
    assert!(md.contains(&format!("{vendor}/chat.js")), "{md}");
    assert!(md.contains("**not justified**"), "{md}");
    assert!(md.contains(&collector), "{md}");
    let csv = run(&["pages", "inventory"], &data);
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert_eq!(
        csv.lines().filter(|l| l.contains("/chat.js")).count(),
        2,
        "both versions of the chat script: {csv}"
    );
    let verify = run(&["ledger", "verify"], &data);
    assert!(verify.status.success());

    // `vakt serve` checks on schedule and takes the suggested CSP's reports.
    let served = tmp.path().join("served");
    run(&["init"], &served);
    let token = String::from_utf8_lossy(
        &run(
            &["token", "create", "--name", "t", "--role", "read"],
            &served,
        )
        .stdout,
    )
    .trim()
    .to_string();
    site.set(1, "/chat.js", "text/javascript", CHAT, &[]);
    let mut serve = vakt();
    serve
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--page-tick",
            "1s",
            "--data",
        ])
        .arg(&served)
        .arg("--directory")
        .arg(&directory)
        .env("RUST_LOG", "vakt_server=info")
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::null());
    let (server, base) = support::start(&mut serve);
    let csp = run(
        &[
            "pages",
            "csp",
            "--page",
            &page,
            "--report-uri",
            &format!("{base}/v1/csp-report"),
        ],
        &data,
    );
    let csp = String::from_utf8_lossy(&csp.stdout);
    let policy = csp
        .lines()
        .find_map(|l| l.strip_prefix("Content-Security-Policy: "))
        .unwrap()
        .to_string();
    assert!(
        policy.ends_with(&format!("report-uri {base}/v1/csp-report")),
        "serve is plain HTTP here, so no report-to: {policy}"
    );
    assert!(
        policy.contains(&format!("connect-src 'self' {analytics} {collector};")),
        "the policy allows what the last check saw: {policy}"
    );
    let scripts: Vec<&str> = policy
        .split(';')
        .find_map(|d| d.trim().strip_prefix("script-src "))
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(
        scripts.len(),
        3,
        "self, the vendor, the inline script's hash: {policy}"
    );
    assert!(scripts.contains(&vendor.as_str()), "{policy}");
    assert!(
        scripts.iter().any(|s| s.starts_with("'sha384-")),
        "{policy}"
    );
    // Serve it without the collector, as a reviewer would after reading
    // the inventory.
    let policy = policy.replace(&format!(" {collector}"), "");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(WAIT))
        .http_status_as_error(false)
        .build()
        .into();
    let page_alerts = |finding: &str| -> usize {
        let text = agent
            .get(&format!("{base}/v1/alerts?rule=page_integrity"))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let list: Value = serde_json::from_str(&text).unwrap();
        list.as_array()
            .unwrap_or_else(|| panic!("{text}"))
            .iter()
            .filter(|a| a["evidence"]["finding"] == finding)
            .count()
    };
    // Serve's first scheduled check is its baseline (the benign chat script).
    let deadline = Instant::now() + Duration::from_secs(60);
    while String::from_utf8_lossy(&run(&["pages", "inventory"], &served).stdout)
        .lines()
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "serve made no check within 60 s");
        std::thread::sleep(Duration::from_millis(250));
    }
    // Then the skimmer comes back, under the suggested policy: serve's
    // next check names it, and the browser reports the blocked request.
    site.set(1, "/chat.js", "text/javascript", &skimmer(&collector), &[]);
    site.set(
        0,
        "/pay",
        "text/html",
        &PAY.replace("CHAT", &vendor),
        &[("Content-Security-Policy", &policy)],
    );
    let journal = served.join("serve-journal.jsonl");
    loop {
        let reported = std::fs::read_to_string(&journal)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("csp.directive") && l.contains(&format!("{collector}/steal")));
        let changed = page_alerts("script_changed");
        if reported && changed == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no CSP report or scheduled alert within 60 s ({reported}, {changed}); journal: {}; serve: {}",
            std::fs::read_to_string(&journal).unwrap_or_default(),
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    no_browser_left(tmp.path());
}

#[test]
fn pages_that_fail_time_out_or_move_raise_alerts_of_their_own() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("skipped: needs {CHROMIUM}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let site = Site::start(2).unwrap();
    let (shop, other) = (site.origin(0), site.origin(1));
    let answer = |status: u16, headers: Vec<(String, String)>, delay: u64| Answer {
        status,
        content_type: "text/html".into(),
        body: "<p>oops</p>".into(),
        headers,
        delay: Duration::from_secs(delay),
    };
    site.answer(0, "/broken", answer(500, Vec::new(), 0));
    site.answer(
        0,
        "/moved",
        answer(302, vec![("Location".into(), format!("{other}/pay"))], 0),
    );
    site.answer(0, "/hangs", answer(200, Vec::new(), 30));
    site.set(1, "/pay", "text/html", "<p>elsewhere</p>", &[]);
    let closed = support::free_port();
    let directory = tmp.path().join("directory.toml");
    std::fs::write(
        &directory,
        format!(
            "[[page]]\nurl = \"{shop}/broken\"\n\n[[page]]\nurl = \"{shop}/moved\"\n\n[[page]]\nurl = \"{shop}/hangs\"\ntimeout = \"3s\"\n\n[[page]]\nurl = \"http://127.0.0.1:{closed}/pay\"\ntimeout = \"5s\"\n"
        ),
    )
    .unwrap();
    let out = run(
        &["pages", "check", "--directory", directory.to_str().unwrap()],
        &data,
    );
    let raised = alerts(&out);
    let mut failures: Vec<String> = raised
        .iter()
        .map(|a| {
            assert_eq!(a["rule.id"], "page_check_failed", "{a}");
            a["evidence"]["failure"].as_str().unwrap().to_string()
        })
        .collect();
    failures.sort();
    assert_eq!(
        failures,
        ["moved", "status", "timeout", "unreachable"],
        "{raised:#?}"
    );
    let timeout = raised
        .iter()
        .find(|a| a["evidence"]["failure"] == "timeout")
        .unwrap();
    assert!(
        timeout["message"].as_str().unwrap().contains("within 3 s"),
        "{timeout}"
    );
    let moved = raised
        .iter()
        .find(|a| a["evidence"]["failure"] == "moved")
        .unwrap();
    assert_eq!(
        moved["evidence"]["observed"]["final_url"],
        format!("{other}/pay")
    );
    let status = raised
        .iter()
        .find(|a| a["evidence"]["failure"] == "status")
        .unwrap();
    assert!(
        status["message"].as_str().unwrap().contains("HTTP 500"),
        "{status}"
    );
    // Nothing of a failed check went into the inventory.
    let csv = run(&["pages", "inventory"], &data);
    assert_eq!(String::from_utf8_lossy(&csv.stdout).lines().count(), 1);
}

#[test]
fn a_missing_browser_or_page_stops_the_check_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let directory = tmp.path().join("directory.toml");
    std::fs::write(&directory, "[[page]]\nurl = \"http://127.0.0.1:9/pay\"\n").unwrap();
    let out = vakt()
        .args([
            "pages",
            "check",
            "--chromium",
            "/nonexistent/chromium",
            "--directory",
        ])
        .arg(&directory)
        .arg("--data")
        .current_dir(tmp.path())
        .env_remove("VAKT_DATA")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no Chromium at /nonexistent/chromium; install it"),
        "{err}"
    );
    let out = vakt()
        .args([
            "pages",
            "check",
            "--page",
            "http://127.0.0.1:9/other",
            "--directory",
        ])
        .arg(&directory)
        .arg("--data")
        .current_dir(tmp.path())
        .env_remove("VAKT_DATA")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("has no [[page]] with url = \"http://127.0.0.1:9/other\""),
        "{err}"
    );
    // A bare --data is the default data directory.
    let out = vakt()
        .args(["init", "--data"])
        .current_dir(tmp.path())
        .env_remove("VAKT_DATA")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tmp.path().join("vakt-data").join("ledger.key").exists());
}
