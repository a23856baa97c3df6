//! One check of one page: a fresh headless Chromium loads it (after any
//! sign-in steps), optionally types canary values into its form fields, and
//! the scripts that ran, the requests made and the security headers are
//! recorded as a [`PageSnapshot`].
//!
//! The requests of the page's workers and out-of-process frames count as
//! the page's. Requests that CSP stops before they exist (fetch, XHR,
//! beacons and WebSockets against `connect-src`) reach no network event;
//! Chromium reports them only as CSP issues, which give their URL and the
//! script responsible but no method or body.

use crate::cdp::{self, Browser, CdpError, Event};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha384};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vakt_event::page::{
    CheckFailure, PageSnapshot, RequestSeen, ScriptSeen, ScriptTag, BY_PAGE, SOURCE_LIMIT,
};
use vakt_event::Timestamp;

/// Largest request body kept (enough to find a canary in it).
const BODY_LIMIT: usize = 64 << 10;
/// Requests and scripts recorded per check at most: a hostile page cannot
/// grow a check without bound; what is past them is counted.
const MAX_REQUESTS: usize = 20_000;
const MAX_SCRIPTS: usize = 2_000;
/// Script text kept for change summaries per check at most: 32 MiB (each
/// script's digest is taken all the same).
const MAX_SOURCES: usize = 32 << 20;
/// Request bodies kept per check at most: 16 MiB.
const MAX_BODIES: usize = 16 << 20;
/// How often `Step::WaitFor` looks for its element.
const POLL: Duration = Duration::from_millis(100);

/// How to check a page.
#[derive(Clone)]
pub struct CheckOptions {
    /// The Chromium binary (default: `$VAKT_CHROMIUM`, else `/usr/bin/chromium`).
    pub chromium: PathBuf,
    /// The whole check, browser start included, must finish within this.
    pub timeout: Duration,
    /// How long the network must be quiet (no request in flight) to count
    /// as settled.
    pub settle: Duration,
    /// Cookies (name, value) set for the page's URL before loading it.
    pub cookies: Vec<(String, String)>,
    /// Sign-in steps run before loading the page.
    pub steps: Vec<Step>,
    /// Canary values to type into the page's form fields once it settled.
    pub fill: Option<CanaryFill>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            chromium: std::env::var_os("VAKT_CHROMIUM")
                .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from),
            timeout: Duration::from_secs(15),
            settle: Duration::from_millis(500),
            cookies: Vec::new(),
            steps: Vec::new(),
            fill: None,
        }
    }
}

// Cookie values and typed values are credentials: Debug shows no values.
impl fmt::Debug for CheckOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cookies: Vec<&str> = self.cookies.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("CheckOptions")
            .field("chromium", &self.chromium)
            .field("timeout", &self.timeout)
            .field("settle", &self.settle)
            .field("cookies", &cookies)
            .field("steps", &self.steps)
            .field("fill", &self.fill)
            .finish()
    }
}

/// A sign-in step, run in order before the page is loaded.
#[derive(Clone, PartialEq, Eq)]
pub enum Step {
    /// Load a URL and wait until it settled.
    Goto(String),
    /// Set the value of the element the CSS selector matches.
    Fill { selector: String, value: String },
    /// Click the element the CSS selector matches, then wait until settled.
    Click(String),
    /// Wait until an element matches the CSS selector.
    WaitFor(String),
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Goto(u) => f.debug_tuple("Goto").field(u).finish(),
            Step::Fill { selector, .. } => f
                .debug_struct("Fill")
                .field("selector", selector)
                .finish_non_exhaustive(),
            Step::Click(s) => f.debug_tuple("Click").field(s).finish(),
            Step::WaitFor(s) => f.debug_tuple("WaitFor").field(s).finish(),
        }
    }
}

/// Values typed into a page's form fields, each distinctive enough to be
/// found in a request that carries it off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryFill {
    pub name: String,
    pub email: String,
    pub phone: String,
    /// 16 digits in the `400000` test range, Luhn-valid.
    pub card: String,
    /// For any other text field.
    pub text: String,
}

impl CanaryFill {
    /// Values derived from `seed`; different seeds give different values
    /// (the phone number excepted: its fiction range has 95 numbers).
    pub fn generate(seed: u64) -> CanaryFill {
        let a = mix(seed);
        let b = mix(a ^ 0x5eed_cafe_f00d_d00d);
        let mut card = format!("400000{:09}", b % 1_000_000_000);
        card.push(luhn_digit(&card));
        // A canary customer of vakt's generator: a realistic name, a mail
        // address on a reserved domain, a phone number from a range kept
        // for fiction.
        let person = vakt_canary::generate(&vakt_canary::Options {
            count: 1,
            locale: vakt_canary::Locale::SvSe,
            domain: "example.net",
            id_prefix: "page-",
            phone_prefix: None,
            seed: a,
        })
        .ok()
        .and_then(|mut p| p.pop());
        let (name, email, phone) = match person {
            Some(p) => (
                format!("{} {}", p.first_name, p.last_name),
                p.email,
                p.phone,
            ),
            None => (
                format!("Canary {a:016x}"),
                format!("canary-{a:016x}@example.net"),
                format!("+4670174{:04}", 605 + (b >> 40) % 95),
            ),
        };
        CanaryFill {
            name,
            email,
            phone,
            card,
            text: format!("vakt-canary-{a:016x}"),
        }
    }
}

/// splitmix64's finaliser: a bijection, so distinct seeds stay distinct.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The check digit that makes `digits` followed by it Luhn-valid.
fn luhn_digit(digits: &str) -> char {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 0 {
                let twice = d * 2;
                if twice > 9 {
                    twice - 9
                } else {
                    twice
                }
            } else {
                d
            }
        })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// Loads `url` in a fresh headless Chromium and records what it ran and
/// sent. The browser and its profile are gone when this returns.
pub fn check(url: &str, opts: &CheckOptions) -> Result<PageSnapshot, CheckFailure> {
    let checked_at = Timestamp::now();
    let started = Instant::now();
    let mut browser =
        Browser::launch(&opts.chromium).map_err(|e| CheckFailure::Browser(e.to_string()))?;
    let sampler = Sampler::start(browser.marker().to_owned());
    // A timeout too large for the clock means no timeout worth the name.
    let deadline = started
        .checked_add(opts.timeout)
        .unwrap_or(started + Duration::from_secs(365 * 86_400));
    let result =
        Session::open(&mut browser, deadline, opts).and_then(|mut session| session.run(url, opts));
    let peak = sampler.finish();
    drop(browser);
    let mut snapshot = result?;
    snapshot.checked_at = checked_at;
    snapshot.took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    snapshot.browser_peak_rss = peak;
    Ok(snapshot)
}

/// Samples the resident memory of the browser's processes together.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    marker: String,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    fn start(marker: String) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (s, p, m) = (stop.clone(), peak.clone(), marker.clone());
        let thread = std::thread::Builder::new()
            .name("vakt-rss".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    p.fetch_max(browser_rss(&m), Ordering::Relaxed);
                    std::thread::park_timeout(Duration::from_millis(100));
                }
            })
            .ok();
        Sampler {
            stop,
            peak,
            marker,
            thread,
        }
    }

    /// Stops sampling (after one last sample) and gives the peak.
    fn finish(mut self) -> u64 {
        self.stop();
        self.peak
            .fetch_max(browser_rss(&self.marker), Ordering::Relaxed);
        self.peak.load(Ordering::Relaxed)
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

// Also on a panic's unwinding: the thread must not sample forever.
impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop();
    }
}

fn browser_rss(marker: &str) -> u64 {
    cdp::processes_with(marker)
        .into_iter()
        .filter_map(resident_bytes)
        .sum()
}

/// Resident memory of a process in bytes, if it still exists: its
/// proportional share (`Pss`), so that pages the browser's processes share
/// count once in their sum (summing `VmRSS` counts Chromium's code in every
/// process, about twice the real total); `VmRSS` where `Pss` is not shown.
fn resident_bytes(pid: u32) -> Option<u64> {
    let kib = |file: &str, key: &str| -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
        let line = text.lines().find(|l| l.starts_with(key))?;
        line[key.len()..].split_whitespace().next()?.parse().ok()
    };
    let kib = kib("smaps_rollup", "Pss:").or_else(|| kib("status", "VmRSS:"))?;
    Some(kib * 1024)
}

/// An external script seen on the network, waiting for its body.
struct PendingScript {
    /// The session that saw it (the page's, a worker's or a frame's).
    session: String,
    url: String,
    loaded_by: String,
    status: Option<u16>,
}

/// The page being checked and what was seen of it so far.
struct Session<'a> {
    browser: &'a mut Browser,
    session: String,
    /// Sessions of the page's workers and out-of-process frames, whose
    /// requests are the page's too; true for a worker.
    children: HashMap<String, bool>,
    frame: String,
    deadline: Instant,
    timeout_secs: u64,
    settle: Duration,
    /// Set when the page itself is navigated to: sign-in steps are not
    /// part of what is recorded.
    recording: bool,
    load_fired: bool,
    main_loading: bool,
    inflight: HashSet<String>,
    last_activity: Instant,
    page_url: String,
    main_request: Option<String>,
    main_status: Option<u16>,
    main_headers: Value,
    requests: Vec<RequestSeen>,
    /// Requests and scripts past the caps.
    dropped: u64,
    /// Script text kept so far.
    source_bytes: usize,
    /// Request bodies kept so far.
    body_bytes: usize,
    request_index: HashMap<String, usize>,
    /// Entries of `requests` made from a CSP issue rather than the network.
    from_issues: HashSet<usize>,
    script_order: Vec<String>,
    pending_scripts: HashMap<String, PendingScript>,
    scripts: HashMap<String, ScriptSeen>,
}

impl<'a> Session<'a> {
    fn open(
        browser: &'a mut Browser,
        deadline: Instant,
        opts: &CheckOptions,
    ) -> Result<Session<'a>, CheckFailure> {
        let started = |e: CdpError| CheckFailure::Browser(format!("starting the page: {e}"));
        let target = browser
            .send(
                "Target.createTarget",
                json!({ "url": "about:blank" }),
                None,
                deadline,
            )
            .map_err(started)?;
        let frame = str_of(&target, "targetId").to_owned();
        let attached = browser
            .send(
                "Target.attachToTarget",
                json!({ "targetId": frame, "flatten": true }),
                None,
                deadline,
            )
            .map_err(started)?;
        let session = str_of(&attached, "sessionId").to_owned();
        if frame.is_empty() || session.is_empty() {
            return Err(CheckFailure::Browser(
                "Chromium gave no target or session for a new page".into(),
            ));
        }
        Ok(Session {
            browser,
            session,
            children: HashMap::new(),
            frame,
            deadline,
            timeout_secs: u64::try_from(opts.timeout.as_millis().div_ceil(1000))
                .unwrap_or(u64::MAX),
            settle: opts.settle,
            recording: false,
            load_fired: false,
            main_loading: false,
            inflight: HashSet::new(),
            last_activity: Instant::now(),
            page_url: String::new(),
            main_request: None,
            main_status: None,
            main_headers: Value::Null,
            requests: Vec::new(),
            dropped: 0,
            source_bytes: 0,
            body_bytes: 0,
            request_index: HashMap::new(),
            from_issues: HashSet::new(),
            script_order: Vec::new(),
            pending_scripts: HashMap::new(),
            scripts: HashMap::new(),
        })
    }

    fn run(&mut self, url: &str, opts: &CheckOptions) -> Result<PageSnapshot, CheckFailure> {
        // Runtime needs no enabling for evaluation in an isolated world, and
        // enabled it would only add the page's console messages.
        self.cmd("Page.enable", json!({}))?;
        let main = self.session.clone();
        self.watch(&main, true)?;
        for (name, value) in &opts.cookies {
            self.cmd(
                "Network.setCookie",
                json!({ "name": name, "value": value, "url": url }),
            )
            .map_err(|e| CheckFailure::Browser(format!("setting cookie {name}: {e}")))?;
        }
        for step in &opts.steps {
            self.step(step)?;
        }
        self.drain()?;
        self.recording = true;
        self.navigate(url)?;
        self.wait(true)?;
        if let Some(status) = self.main_status.filter(|s| *s >= 400) {
            return Err(CheckFailure::Status(status));
        }
        let mut canaries = Vec::new();
        if let Some(fill) = &opts.fill {
            let used = self.eval(&fill_expression(fill))?;
            canaries = strings(&used);
            self.last_activity = Instant::now();
            self.wait(false)?;
        }
        let dom = self.eval(DOM_EXPRESSION)?;
        Ok(self.snapshot(url, &dom, canaries))
    }

    /// Makes a session report its requests, and attach (paused at start,
    /// so that no request is missed) to the workers and out-of-process
    /// frames it starts. A child (`!main`) may refuse a domain it lacks, or
    /// be gone already: that is no failure.
    fn watch(&mut self, session: &str, main: bool) -> Result<(), CheckFailure> {
        let commands = [
            // Requests that CSP stops before they exist (fetch, beacons and
            // WebSockets against connect-src) show only as Audits issues.
            ("Audits.enable", json!({})),
            (
                "Network.enable",
                json!({ "maxTotalBufferSize": 64 << 20, "maxResourceBufferSize": 16 << 20 }),
            ),
            (
                "Target.setAutoAttach",
                json!({ "autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true }),
            ),
        ];
        for (method, params) in commands {
            match self.cmd_on(session, method, params) {
                Err(CheckFailure::Browser(_)) if !main => {}
                Err(e) => return Err(e),
                Ok(_) => {}
            }
        }
        if !main {
            let resumed = self.cmd_on(session, "Runtime.runIfWaitingForDebugger", json!({}));
            if let Err(e @ CheckFailure::Timeout(_)) = resumed {
                return Err(e);
            }
        }
        Ok(())
    }

    fn attached(&mut self, p: &Value) -> Result<(), CheckFailure> {
        let child = str_of(p, "sessionId").to_owned();
        if child.is_empty() {
            return Ok(());
        }
        let worker = str_of(&p["targetInfo"], "type").ends_with("worker");
        self.children.insert(child.clone(), worker);
        self.watch(&child, false)
    }

    fn step(&mut self, step: &Step) -> Result<(), CheckFailure> {
        match step {
            Step::Goto(u) => {
                self.navigate(u)?;
                self.wait(true)
            }
            Step::Fill { selector, value } => {
                let expr = format!(
                    "(() => {{ const el = document.querySelector({}); if (!el) return false; {SET_VALUE} set(el, {}); return true; }})()",
                    json!(selector),
                    json!(value)
                );
                self.expect_element(&expr, "fill", selector)
            }
            Step::Click(selector) => {
                let expr = format!(
                    "(() => {{ const el = document.querySelector({}); if (!el) return false; el.click(); return true; }})()",
                    json!(selector)
                );
                self.expect_element(&expr, "click", selector)?;
                self.last_activity = Instant::now();
                self.wait(false)
            }
            Step::WaitFor(selector) => {
                let expr = format!("document.querySelector({}) !== null", json!(selector));
                loop {
                    if self.eval(&expr)? == Value::Bool(true) {
                        return Ok(());
                    }
                    if Instant::now() + POLL >= self.deadline {
                        return Err(self.timeout());
                    }
                    self.pump_until(Instant::now() + POLL)?;
                }
            }
        }
    }

    fn expect_element(
        &mut self,
        expr: &str,
        what: &str,
        selector: &str,
    ) -> Result<(), CheckFailure> {
        if self.eval(expr)? == Value::Bool(true) {
            return Ok(());
        }
        Err(CheckFailure::Browser(format!(
            "sign-in step `{what} {selector}`: no element matches; add a WaitFor step before it if the page builds it late"
        )))
    }

    fn navigate(&mut self, url: &str) -> Result<(), CheckFailure> {
        self.load_fired = false;
        let answer = self.cmd("Page.navigate", json!({ "url": url }))?;
        self.drain()?;
        let error = str_of(&answer, "errorText");
        if let Some(status) = self.main_status.filter(|s| *s >= 400) {
            return Err(CheckFailure::Status(status));
        }
        if !error.is_empty() {
            return Err(CheckFailure::Unreachable(error.to_owned()));
        }
        Ok(())
    }

    /// Waits until the page settled: loaded (when `load`), the main frame
    /// not loading, and no request in flight for `settle`.
    fn wait(&mut self, load: bool) -> Result<(), CheckFailure> {
        loop {
            self.drain()?;
            let now = Instant::now();
            let quiet_at = self
                .last_activity
                .checked_add(self.settle)
                .unwrap_or(self.deadline);
            let ready =
                (!load || self.load_fired) && !self.main_loading && self.inflight.is_empty();
            if ready && now >= quiet_at {
                return Ok(());
            }
            if now >= self.deadline {
                return Err(self.timeout());
            }
            let until = if ready {
                quiet_at.min(self.deadline)
            } else {
                self.deadline
            };
            if let Some(e) = self.browser.next_event(until).map_err(browser_failed)? {
                self.handle(e)?;
            }
        }
    }

    /// Handles events until `until`, or until the deadline if events keep
    /// coming faster than they are handled.
    fn pump_until(&mut self, until: Instant) -> Result<(), CheckFailure> {
        while let Some(e) = self.browser.next_event(until).map_err(browser_failed)? {
            self.handle(e)?;
            if Instant::now() >= self.deadline {
                return Err(self.timeout());
            }
        }
        Ok(())
    }

    /// Handles the events already received.
    fn drain(&mut self) -> Result<(), CheckFailure> {
        self.pump_until(Instant::now())
    }

    fn timeout(&self) -> CheckFailure {
        CheckFailure::Timeout(self.timeout_secs)
    }

    fn cmd(&mut self, method: &str, params: Value) -> Result<Value, CheckFailure> {
        let session = self.session.clone();
        self.cmd_on(&session, method, params)
    }

    fn cmd_on(
        &mut self,
        session: &str,
        method: &str,
        params: Value,
    ) -> Result<Value, CheckFailure> {
        match self
            .browser
            .send(method, params, Some(session), self.deadline)
        {
            Ok(v) => Ok(v),
            Err(CdpError::Timeout { .. }) => Err(self.timeout()),
            Err(e) => Err(browser_failed(e)),
        }
    }

    /// Evaluates `expression` in an isolated world of the main frame: it
    /// sees the page's DOM but none of the page's JavaScript, so a page
    /// cannot hide from it by overriding built-ins.
    fn eval(&mut self, expression: &str) -> Result<Value, CheckFailure> {
        let world = self.cmd(
            "Page.createIsolatedWorld",
            json!({ "frameId": self.frame, "worldName": "vakt" }),
        )?;
        let mut answer = self.cmd(
            "Runtime.evaluate",
            json!({
                "expression": expression,
                "contextId": world["executionContextId"],
                "returnByValue": true,
            }),
        )?;
        if let Some(ex) = answer.get("exceptionDetails") {
            let text = ex["exception"]["description"]
                .as_str()
                .or(ex["text"].as_str())
                .unwrap_or("an exception");
            return Err(CheckFailure::Browser(format!(
                "evaluating in the page failed: {text}"
            )));
        }
        Ok(answer["result"]["value"].take())
    }

    fn handle(&mut self, e: Event) -> Result<(), CheckFailure> {
        let Some(session) = e
            .session_id
            .filter(|s| *s == self.session || self.children.contains_key(s))
        else {
            if e.method == "Target.detachedFromTarget"
                && e.params["sessionId"].as_str() == Some(self.session.as_str())
            {
                return Err(CheckFailure::Browser("the page was closed".into()));
            }
            return Ok(());
        };
        let p = &e.params;
        let main = session == self.session;
        match e.method.as_str() {
            "Target.attachedToTarget" => self.attached(p)?,
            "Target.detachedFromTarget" => {
                self.children.remove(str_of(p, "sessionId"));
            }
            "Network.requestWillBeSent" => self.request(p, &session)?,
            "Network.responseReceived" => {
                let id = str_of(p, "requestId");
                let status = p["response"]["status"].as_f64().map(|s| s as u16);
                if self.main_request.as_deref() == Some(id) {
                    self.main_status = status;
                    self.main_headers = p["response"]["headers"].clone();
                } else if let Some(s) = self.pending_scripts.get_mut(id) {
                    s.url = str_of(&p["response"], "url").to_owned();
                    s.status = status;
                }
            }
            "Network.loadingFinished" => {
                let id = str_of(p, "requestId").to_owned();
                self.finished(&id);
                if let Some(s) = self.pending_scripts.remove(&id) {
                    self.script_body(&id, s, &session)?;
                }
            }
            "Network.loadingFailed" => {
                let id = str_of(p, "requestId").to_owned();
                self.finished(&id);
                self.pending_scripts.remove(&id);
                if let Some(&i) = self.request_index.get(&id) {
                    let reason = str_of(p, "blockedReason");
                    let error = str_of(p, "errorText");
                    self.requests[i].blocked = if !reason.is_empty() {
                        Some(reason.to_owned())
                    } else if error.contains("ERR_BLOCKED_BY_CSP") {
                        Some("csp".to_owned())
                    } else {
                        None
                    };
                }
            }
            "Network.webSocketCreated" if self.recording => {
                let initiator = initiator_of(&p["initiator"], &self.page_url);
                let _ = self.record(RequestSeen {
                    url: str_of(p, "url").to_owned(),
                    method: "GET".into(),
                    kind: "websocket".into(),
                    initiator,
                    body: None,
                    blocked: None,
                });
            }
            "Audits.issueAdded" if self.recording => self.csp_issue(p),
            // Page events of the main session only: a frame's own session
            // has a load of its own.
            "Page.loadEventFired" if main => self.load_fired = true,
            "Page.frameStartedLoading" if main && str_of(p, "frameId") == self.frame => {
                self.main_loading = true;
                self.last_activity = Instant::now();
            }
            "Page.frameStoppedLoading" if main && str_of(p, "frameId") == self.frame => {
                self.main_loading = false;
                self.last_activity = Instant::now();
            }
            "Page.frameNavigated" if main && str_of(&p["frame"], "id") == self.frame => {
                self.page_url = str_of(&p["frame"], "url").to_owned();
            }
            "Inspector.targetCrashed" if main => {
                return Err(CheckFailure::Browser("the page's renderer crashed".into()))
            }
            _ => {}
        }
        Ok(())
    }

    fn finished(&mut self, id: &str) {
        if self.inflight.remove(id) {
            self.last_activity = Instant::now();
        }
    }

    fn request(&mut self, p: &Value, session: &str) -> Result<(), CheckFailure> {
        let id = str_of(p, "requestId").to_owned();
        let cdp_type = p["type"].as_str().unwrap_or("Other");
        // Long-lived streams never finish; they do not keep a page busy.
        if !matches!(cdp_type, "EventSource" | "WebSocket") {
            self.inflight.insert(id.clone());
        }
        self.last_activity = Instant::now();
        if !self.recording || cdp_type == "Preflight" {
            return Ok(());
        }
        if self.main_request.is_none()
            && cdp_type == "Document"
            && str_of(p, "frameId") == self.frame
        {
            self.main_request = Some(id);
            return Ok(());
        }
        if self.main_request.as_deref() == Some(id.as_str()) {
            return Ok(()); // a redirect of the page itself
        }
        let req = &p["request"];
        let method = str_of(req, "method").to_owned();
        let url = str_of(req, "url").to_owned();
        // A worker's own code is not the page's, though Chromium gives the
        // worker's script as its "document".
        let document_url = match self.children.get(session) {
            Some(true) => "",
            _ => str_of(p, "documentURL"),
        };
        let initiator = initiator_of(&p["initiator"], document_url);
        let mut body = req["postData"].as_str().map(str::to_owned).or_else(|| {
            let entries = req["postDataEntries"].as_array()?;
            let mut bytes = Vec::new();
            for e in entries {
                bytes.extend(STANDARD.decode(e["bytes"].as_str()?).ok()?);
            }
            Some(String::from_utf8_lossy(&bytes).into_owned())
        });
        if body.is_none() && req["hasPostData"].as_bool() == Some(true) {
            // Not every body comes with the event; one the browser no
            // longer has is left out.
            body = self
                .cmd_on(
                    session,
                    "Network.getRequestPostData",
                    json!({ "requestId": id }),
                )
                .ok()
                .and_then(|v| v["postData"].as_str().map(str::to_owned));
        }
        if cdp_type == "Script" && !self.pending_scripts.contains_key(&id) {
            if self.script_order.len() >= MAX_SCRIPTS {
                self.dropped += 1;
            } else {
                self.script_order.push(id.clone());
                self.pending_scripts.insert(
                    id.clone(),
                    PendingScript {
                        session: session.to_owned(),
                        url: url.clone(),
                        loaded_by: initiator.clone(),
                        status: None,
                    },
                );
            }
        }
        let kept = self.record(RequestSeen {
            url,
            kind: kind_of(cdp_type, &method).to_owned(),
            method,
            initiator,
            body: body.map(|b| cap(b, BODY_LIMIT)),
            blocked: None,
        });
        if let Some(i) = kept {
            self.request_index.insert(id, i);
        }
        Ok(())
    }

    /// Records a request CSP blocked, from the issue Chromium raised. For
    /// fetch, XHR, beacons and WebSockets this is all Chromium tells: it
    /// stops them before they reach the network, so method and body are
    /// unknown, and connect-src does not say which of them it was.
    fn csp_issue(&mut self, p: &Value) {
        let d = &p["issue"]["details"]["contentSecurityPolicyIssueDetails"];
        let url = str_of(d, "blockedURL");
        if str_of(d, "contentSecurityPolicyViolationType") != "kURLViolation"
            || d["isReportOnly"].as_bool() != Some(false)
            || url.is_empty()
        {
            return;
        }
        let (kind, method) = match str_of(d, "violatedDirective") {
            "connect-src" if url.starts_with("ws:") || url.starts_with("wss:") => {
                ("websocket", "GET")
            }
            "connect-src" => ("fetch", ""),
            "img-src" => ("image", "GET"),
            "script-src" | "script-src-elem" => ("script", "GET"),
            "style-src" | "style-src-elem" => ("stylesheet", "GET"),
            "font-src" => ("font", "GET"),
            "frame-src" | "child-src" => ("document", "GET"),
            "form-action" => ("form", ""),
            _ => ("other", ""),
        };
        let source = str_of(&d["sourceCodeLocation"], "url");
        let initiator =
            if source.is_empty() || without_fragment(source) == without_fragment(&self.page_url) {
                BY_PAGE.to_owned()
            } else {
                source.to_owned()
            };
        let kept = self.record(RequestSeen {
            url: url.to_owned(),
            method: method.to_owned(),
            kind: kind.to_owned(),
            initiator,
            body: None,
            blocked: Some("csp".to_owned()),
        });
        if let Some(i) = kept {
            self.from_issues.insert(i);
        }
    }

    /// The requests seen, without the CSP issues that duplicate a blocked
    /// request the network reported too (images, scripts, frames).
    /// Keeps a request, within the caps; its index, or none when it was
    /// past them (and counted). Bodies past [`MAX_BODIES`] in all are
    /// left out of the request, which is kept.
    fn record(&mut self, mut r: RequestSeen) -> Option<usize> {
        if self.requests.len() >= MAX_REQUESTS {
            self.dropped += 1;
            return None;
        }
        if let Some(b) = &r.body {
            if self.body_bytes + b.len() > MAX_BODIES {
                r.body = None;
            } else {
                self.body_bytes += b.len();
            }
        }
        self.requests.push(r);
        Some(self.requests.len() - 1)
    }

    fn take_requests(&mut self) -> Vec<RequestSeen> {
        let mut on_network: HashMap<String, usize> = HashMap::new();
        for (i, r) in self.requests.iter().enumerate() {
            if !self.from_issues.contains(&i) && r.blocked.as_deref() == Some("csp") {
                *on_network.entry(r.url.clone()).or_default() += 1;
            }
        }
        let from_issues = std::mem::take(&mut self.from_issues);
        std::mem::take(&mut self.requests)
            .into_iter()
            .enumerate()
            .filter(|(i, r)| {
                if !from_issues.contains(i) {
                    return true;
                }
                match on_network.get_mut(&r.url) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        false
                    }
                    _ => true,
                }
            })
            .map(|(_, r)| r)
            .collect()
    }

    /// Records an external script that loaded, with the digest of its body.
    fn script_body(
        &mut self,
        id: &str,
        s: PendingScript,
        finished_on: &str,
    ) -> Result<(), CheckFailure> {
        // A script answered with an error status does not run.
        if !s.status.is_some_and(|st| (1..400).contains(&st)) {
            return Ok(());
        }
        // A worker's script is requested by the page but loaded by the
        // worker: its body is with the session that saw it finish.
        let params = json!({ "requestId": id });
        let answer = match self.cmd_on(finished_on, "Network.getResponseBody", params.clone()) {
            Err(CheckFailure::Browser(_)) if finished_on != s.session => {
                self.cmd_on(&s.session, "Network.getResponseBody", params)
            }
            other => other,
        }
        .map_err(|e| match e {
            CheckFailure::Browser(m) => {
                CheckFailure::Browser(format!("reading script {}: {m}", s.url))
            }
            other => other,
        })?;
        let text = str_of(&answer, "body");
        let bytes = if answer["base64Encoded"].as_bool() == Some(true) {
            STANDARD.decode(text).map_err(|e| {
                CheckFailure::Browser(format!("script {} came as bad base64: {e}", s.url))
            })?
        } else {
            text.as_bytes().to_vec()
        };
        let mut seen = script_seen(s.url, false, &bytes, s.loaded_by);
        if let Some(text) = &seen.source {
            if self.source_bytes + text.len() > MAX_SOURCES {
                seen.source = None;
            } else {
                self.source_bytes += text.len();
            }
        }
        self.scripts.insert(id.to_owned(), seen);
        Ok(())
    }

    fn snapshot(&mut self, url: &str, dom: &Value, canaries: Vec<String>) -> PageSnapshot {
        let final_url = dom["href"]
            .as_str()
            .filter(|h| !h.is_empty())
            .unwrap_or(&self.page_url)
            .to_owned();
        let elements = dom["scripts"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let mut external: Vec<Option<ScriptSeen>> = self
            .script_order
            .iter()
            .map(|id| self.scripts.remove(id))
            .collect();
        // Interleave inline scripts with external ones in document order;
        // scripts no element names (inserted and removed, or from other
        // frames) follow in network order.
        let mut scripts = Vec::new();
        let mut script_tags = Vec::new();
        for el in elements {
            let src = el["src"].as_str();
            script_tags.push(ScriptTag {
                src: src.map(str::to_owned),
                integrity: el["integrity"]
                    .as_str()
                    .filter(|i| !i.trim().is_empty())
                    .map(str::to_owned),
            });
            match src {
                None if runs_as_javascript(el["type"].as_str()) => {
                    let text = str_of(el, "text");
                    scripts.push(script_seen(
                        final_url.clone(),
                        true,
                        text.as_bytes(),
                        BY_PAGE.to_owned(),
                    ));
                }
                None => {}
                Some(src) => {
                    if let Some(at) = external
                        .iter()
                        .position(|s| s.as_ref().is_some_and(|s| s.url == src))
                    {
                        scripts.extend(external[..=at].iter_mut().filter_map(Option::take));
                    }
                }
            }
        }
        scripts.extend(external.into_iter().flatten());
        let mut seen = HashSet::new();
        scripts.retain(|s| seen.insert((s.url.clone(), s.sha384.clone())));
        PageSnapshot {
            url: url.to_owned(),
            final_url,
            status: self.main_status,
            checked_at: Timestamp::default(),
            took_ms: 0,
            scripts,
            requests: self.take_requests(),
            script_tags,
            csp: header(&self.main_headers, "content-security-policy"),
            csp_report_only: header(&self.main_headers, "content-security-policy-report-only"),
            canaries,
            browser_peak_rss: 0,
            dropped: self.dropped,
        }
    }
}

fn browser_failed(e: CdpError) -> CheckFailure {
    CheckFailure::Browser(e.to_string())
}

fn str_of<'v>(v: &'v Value, key: &str) -> &'v str {
    v[key].as_str().unwrap_or("")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn script_seen(url: String, inline: bool, bytes: &[u8], loaded_by: String) -> ScriptSeen {
    let source = std::str::from_utf8(bytes)
        .ok()
        .filter(|s| s.len() <= SOURCE_LIMIT)
        .map(str::to_owned);
    ScriptSeen {
        url,
        inline,
        sha384: sha384(bytes),
        bytes: bytes.len() as u64,
        loaded_by,
        source,
    }
}

/// `sha384-` and the standard base64 of the digest, as SRI and CSP write it.
pub fn sha384(bytes: &[u8]) -> String {
    format!("sha384-{}", STANDARD.encode(Sha384::digest(bytes)))
}

fn cap(mut s: String, limit: usize) -> String {
    if s.len() > limit {
        let mut end = limit;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The kind of a request from its CDP resource type.
fn kind_of(cdp_type: &str, method: &str) -> &'static str {
    match cdp_type {
        "Script" => "script",
        "Fetch" => "fetch",
        "XHR" => "xhr",
        "Ping" => "beacon",
        "Image" => "image",
        "Stylesheet" => "stylesheet",
        "Font" => "font",
        "Document" if method.eq_ignore_ascii_case("POST") => "form",
        "Document" => "document",
        "WebSocket" => "websocket",
        // The browser's own report of a violation, not the page's doing.
        "CSPViolationReport" => "report",
        _ => "other",
    }
}

/// Who made a request: the URL of the innermost script on its stack
/// (async parents included), or the page when the page's own document or
/// one of its inline scripts made it.
fn initiator_of(initiator: &Value, document_url: &str) -> String {
    let mut stack = initiator.get("stack");
    let mut url = None;
    // Parent chains are short; the bound guards against a malformed one.
    for _ in 0..64 {
        let Some(s) = stack else { break };
        let frames = s["callFrames"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        url = frames
            .iter()
            .map(|f| str_of(f, "url"))
            .find(|u| !u.is_empty());
        if url.is_some() {
            break;
        }
        stack = s.get("parent");
    }
    if url.is_none() && str_of(initiator, "type") == "script" {
        url = Some(str_of(initiator, "url")).filter(|u| !u.is_empty());
    }
    match url {
        Some(u) if without_fragment(u) != without_fragment(document_url) => u.to_owned(),
        _ => BY_PAGE.to_owned(),
    }
}

fn without_fragment(url: &str) -> &str {
    url.split('#').next().unwrap_or(url)
}

/// Whether a `<script>` with this `type` attribute runs as JavaScript.
fn runs_as_javascript(ty: Option<&str>) -> bool {
    const JS: &[&str] = &[
        "",
        "module",
        "application/ecmascript",
        "application/javascript",
        "application/x-ecmascript",
        "application/x-javascript",
        "text/ecmascript",
        "text/javascript",
        "text/javascript1.0",
        "text/javascript1.1",
        "text/javascript1.2",
        "text/javascript1.3",
        "text/javascript1.4",
        "text/javascript1.5",
        "text/jscript",
        "text/livescript",
        "text/x-ecmascript",
        "text/x-javascript",
    ];
    let ty = ty.unwrap_or("").trim().to_ascii_lowercase();
    JS.contains(&ty.as_str())
}

/// A response header's values (any case of its name), joined by `, `.
fn header(headers: &Value, name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .as_object()?
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .filter_map(|(_, v)| v.as_str())
        .flat_map(|v| v.split('\n'))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// Reads the settled document's script elements and its URL.
const DOM_EXPRESSION: &str = "({
  href: location.href,
  scripts: Array.from(document.scripts, s => ({
    src: s.hasAttribute('src') ? s.src : null,
    integrity: s.getAttribute('integrity'),
    type: s.getAttribute('type'),
    text: s.hasAttribute('src') ? null : s.text,
  })),
})";

/// Sets a field's value the way typing does: through the native setter (so
/// frameworks that track the value notice) with the events a user's typing
/// fires. Defines `set(el, value)`.
const SET_VALUE: &str = "const set = (el, value) => {
  const proto = el instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
  el.focus();
  el.dispatchEvent(new KeyboardEvent('keydown', { bubbles: true }));
  Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, value);
  el.dispatchEvent(new Event('input', { bubbles: true }));
  el.dispatchEvent(new KeyboardEvent('keyup', { bubbles: true }));
  el.dispatchEvent(new Event('change', { bubbles: true }));
  el.blur();
  el.dispatchEvent(new FocusEvent('blur'));
};";

/// Types the canary values into the visible fields; gives the values used.
fn fill_expression(fill: &CanaryFill) -> String {
    let values = json!({
        "name": fill.name, "email": fill.email, "phone": fill.phone,
        "card": fill.card, "text": fill.text,
    });
    format!(
        "((v) => {{
  {SET_VALUE}
  const skip = ['hidden', 'submit', 'button', 'reset', 'image', 'checkbox', 'radio', 'file',
    'range', 'color', 'date', 'datetime-local', 'month', 'week', 'time'];
  const used = [];
  for (const el of document.querySelectorAll('input, textarea')) {{
    const type = (el.getAttribute('type') || 'text').toLowerCase();
    if (el instanceof HTMLInputElement && skip.includes(type)) continue;
    if (el.disabled || el.readOnly) continue;
    const box = el.getBoundingClientRect(), style = getComputedStyle(el);
    if (box.width === 0 || box.height === 0 || style.visibility === 'hidden' || style.display === 'none') continue;
    const hint = [el.getAttribute('autocomplete'), el.name, el.id, type].join(' ').toLowerCase();
    let value;
    if (/cc-name|holder|name.?on.?card|card.?name/.test(hint)) value = v.name;
    else if (/cc-csc|cc-exp|cvc|cvv|csc|expir/.test(hint)) value = v.text;
    else if (/cc-number|card|ccnum/.test(hint)) value = v.card;
    else if (/email/.test(hint)) value = v.email;
    else if (/\\btel|phone|mobile/.test(hint)) value = v.phone;
    else if (/name/.test(hint)) value = v.name;
    else if (type === 'number') continue;
    else value = v.text;
    set(el, value);
    if (!used.includes(value)) used.push(value);
  }}
  return used;
}})({values})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canaries_are_distinct_and_cards_luhn_valid() {
        let a = CanaryFill::generate(1);
        let b = CanaryFill::generate(2);
        assert_ne!(a.card, b.card);
        assert_ne!(a.email, b.email);
        assert_ne!(a.text, b.text);
        assert_ne!(a.name, b.name);
        assert_eq!(a, CanaryFill::generate(1));
        for seed in 0..200 {
            let c = CanaryFill::generate(seed);
            assert_eq!(c.card.len(), 16);
            assert!(c.card.starts_with("400000"));
            assert!(luhn_valid(&c.card), "{}", c.card);
            // A canary customer of vakt's generator: reserved domain,
            // a Swedish number from a range kept for fiction.
            assert!(c.email.ends_with("@example.net"), "{}", c.email);
            assert!(c.text.starts_with("vakt-canary-"));
            assert!(c.phone.starts_with("+46"), "{}", c.phone);
            assert!(c.name.contains(' ') && c.name.len() >= 6, "{}", c.name);
        }
        assert!(luhn_valid("4111111111111111"));
    }

    fn luhn_valid(n: &str) -> bool {
        luhn_digit(&n[..n.len() - 1]) == n.chars().last().unwrap()
    }

    #[test]
    fn initiators() {
        let page = "https://shop.example/pay";
        let parser = json!({ "type": "parser", "url": page });
        assert_eq!(initiator_of(&parser, page), BY_PAGE);
        let nested = json!({ "type": "script", "stack": {
            "callFrames": [{ "url": "" }],
            "parent": { "callFrames": [{ "url": "https://cdn.example/a.js" }] },
        }});
        assert_eq!(initiator_of(&nested, page), "https://cdn.example/a.js");
        let inline = json!({ "type": "script", "stack": { "callFrames": [{ "url": page }] } });
        assert_eq!(initiator_of(&inline, &format!("{page}#x")), BY_PAGE);
        assert_eq!(initiator_of(&json!({ "type": "other" }), page), BY_PAGE);
    }

    #[test]
    fn kinds_headers_and_digests() {
        assert_eq!(kind_of("Ping", "POST"), "beacon");
        assert_eq!(kind_of("Document", "POST"), "form");
        assert_eq!(kind_of("Document", "GET"), "document");
        assert_eq!(kind_of("Manifest", "GET"), "other");
        let h = json!({ "Content-Security-Policy": "a\nb", "x": "y" });
        assert_eq!(
            header(&h, "content-security-policy").as_deref(),
            Some("a, b")
        );
        assert_eq!(header(&h, "content-security-policy-report-only"), None);
        // The SRI digest of the empty string.
        assert_eq!(
            sha384(b""),
            "sha384-OLBgp1GsljhM2TJ+sbHjaiH9txEUvgdDTAzHv2P24donTt6/529l+9Ua0vFImLlb"
        );
        assert!(runs_as_javascript(None) && runs_as_javascript(Some(" Module ")));
        assert!(!runs_as_javascript(Some("application/ld+json")));
        assert_eq!(cap("ååå".into(), 3), "å");
    }
}
