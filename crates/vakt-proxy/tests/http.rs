//! The HTTP proxy against a small real upstream API on loopback: every
//! decision, TOTP step-up, a bot blocked end to end, and both failure modes.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vakt_event::{Directory, Timestamp};
use vakt_ledger::decisions::{Action, Decision, Scope};
use vakt_ledger::store::postgres::Postings;
use vakt_ledger::{DataDir, Ledger};
use vakt_pipeline::{JsonLines, PipelineConfig};
use vakt_proxy::http::{serve_http, HttpProxyConfig};
use vakt_proxy::{EventSink, FailMode, Guard, GuardConfig, SinkConfig};

const DIRECTORY: &str = r#"
[http]
account = "header:X-Account"

[[http.route]]
pattern = "/api/v1/customers/{customer}"
method = "GET"
action = "lookup"
categories = ["name", "phone"]

[[http.route]]
pattern = "/api/v1/search"
action = "search"
categories = ["name"]
response_customers = "/results/*/id"

[[canary]]
customer_id = "C-900001"
label = "planted for the tests"

[[policy]]
rule = "rate"
min_severity = "medium"
action = "block"
ttl = "10m"

[[policy]]
rule = "step_up_failures"
min_severity = "high"
action = "block"
ttl = "10m"
"#;

/// The same API, with accounts from HTTP basic auth.
const BASIC_DIRECTORY: &str = r#"
[http]
account = "remote_user"

[[http.route]]
pattern = "/api/v1/customers/{customer}"
method = "GET"
action = "lookup"
categories = ["name", "phone"]
"#;

/// What the upstream saw.
#[derive(Default)]
struct Seen {
    requests: AtomicU64,
    leaked_totp: AtomicU64,
    forwarded_for: Mutex<Vec<String>>,
    paths: Mutex<Vec<String>>,
}

async fn upstream(
    req: Request<hyper::body::Incoming>,
    seen: Arc<Seen>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    seen.requests.fetch_add(1, Ordering::Relaxed);
    if req.headers().contains_key("x-vakt-totp") {
        seen.leaked_totp.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(v) = req.headers().get("x-forwarded-for") {
        seen.forwarded_for
            .lock()
            .unwrap()
            .push(v.to_str().unwrap().to_owned());
    }
    let path = req.uri().path().to_owned();
    seen.paths.lock().unwrap().push(path.clone());
    let body = if let Some(id) = path.strip_prefix("/api/v1/customers/") {
        format!(r#"{{"id":"{id}","name":"Customer {id}","phone":"+46700000000"}}"#)
    } else if path == "/api/v1/search" {
        r#"{"total":3,"results":[{"id":"C-101"},{"id":"C-102"},{"id":"C-103"}]}"#.to_owned()
    } else {
        return Ok(Response::builder()
            .status(404)
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap());
    };
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap())
}

struct Fixture {
    _tmp: tempfile::TempDir,
    /// The chain of a data directory whose entries are in PostgreSQL.
    chain: Option<i32>,
    data: DataDir,
    proxy: SocketAddr,
    seen: Arc<Seen>,
    sink: Option<Arc<EventSink>>,
    guard: Arc<Guard>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Fixture {
    fn start(fail_mode: FailMode, queue: usize) -> Fixture {
        Fixture::start_with(DIRECTORY, fail_mode, queue, |_| {})
    }

    /// A proxy over `directory`, its configuration changed by `tweak`.
    fn start_with(
        directory: &str,
        fail_mode: FailMode,
        queue: usize,
        tweak: impl FnOnce(&mut HttpProxyConfig),
    ) -> Fixture {
        Fixture::start_on(directory, fail_mode, queue, tweak, None)
    }

    /// [`Fixture::start_with`]; with `store`, the data directory keeps its
    /// entries in that PostgreSQL database and the guard re-reads
    /// decisions on its timer only every 30 s.
    fn start_on(
        directory: &str,
        fail_mode: FailMode,
        queue: usize,
        tweak: impl FnOnce(&mut HttpProxyConfig),
        store: Option<&str>,
    ) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir {
            path: tmp.path().join("data"),
        };
        let chain = store.map(|url| {
            vakt_ledger::ledger::use_postgres(&data, url, Postings::Btree)
                .unwrap()
                .chain
        });
        let directory = Arc::new(Directory::from_toml(directory, "test.toml").unwrap());
        let alerts = std::fs::File::create(tmp.path().join("alerts.jsonl")).unwrap();
        let sink = Arc::new(
            EventSink::start(
                &data,
                PipelineConfig {
                    directory: directory.clone(),
                    ..Default::default()
                },
                vec![Box::new(JsonLines::new("alerts", alerts, true))],
                SinkConfig {
                    queue,
                    fail_mode,
                    source: "http-proxy".into(),
                },
            )
            .unwrap(),
        );
        let guard = Guard::start(
            data.clone(),
            &directory,
            GuardConfig {
                throttle_per_minute: 2,
                refresh: match store {
                    Some(_) => Duration::from_secs(30),
                    None => Duration::from_millis(100),
                },
                contact: "soc@example.net".into(),
                ..Default::default()
            },
        )
        .unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let seen = Arc::new(Seen::default());
        let (proxy, stop, served) = runtime.block_on(async {
            let up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let up_addr = up.local_addr().unwrap();
            let seen2 = seen.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((s, _)) = up.accept().await else {
                        return;
                    };
                    let seen = seen2.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |r| upstream(r, seen.clone()));
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(s), svc)
                            .await;
                    });
                }
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let proxy = listener.local_addr().unwrap();
            let mut config =
                HttpProxyConfig::new(&format!("http://{up_addr}"), directory.http.as_ref())
                    .unwrap();
            tweak(&mut config);
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let served = tokio::spawn(serve_http(
                listener,
                config,
                guard.clone(),
                sink.clone(),
                async {
                    let _ = rx.await;
                },
            ));
            (proxy, tx, served)
        });
        Fixture {
            _tmp: tmp,
            chain,
            data,
            proxy,
            seen,
            sink: Some(sink),
            guard,
            stop: Some(stop),
            runtime: Some(runtime),
            served: Some(served),
        }
    }

    fn get(
        &self,
        account: &str,
        path: &str,
        extra: &[(&str, &str)],
    ) -> (u16, serde_json::Value, Option<String>) {
        let mut headers = vec![("X-Account", account)];
        headers.extend_from_slice(extra);
        self.request(path, &headers)
    }

    /// A GET with exactly these headers; the status, the JSON body, and
    /// `Retry-After` or else `WWW-Authenticate`.
    fn request(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value, Option<String>) {
        let mut req = ureq::get(format!("http://{}{path}", self.proxy))
            .config()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build();
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = req.call().unwrap_or_else(|e| panic!("request failed: {e}"));
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (retry, auth) = (header("retry-after"), header("www-authenticate"));
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
        (status, body, retry.or(auth))
    }

    fn decide(&self, account: &str, action: Action) {
        let mut l = Ledger::open(&self.data).unwrap();
        let t = vakt_event::Timestamp::now();
        let d = Decision::new(
            format!("manual-{account}-{action}"),
            Scope::Account,
            account,
            action,
            "by hand in a test".into(),
            Timestamp(t.0 - 1),
            600_001,
        );
        l.put_decision(&d.unwrap()).unwrap();
        l.close().unwrap();
        // The guard re-reads every 100 ms.
        let start = Instant::now();
        while !self.guard.active().iter().any(|d| d.value == account) {
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "decision not picked up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `head` as written (a request line and headers, no body) on a
    /// connection of its own; returns the status of the answer.
    fn raw(&self, head: &str) -> u16 {
        let mut s = std::net::TcpStream::connect(self.proxy).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        answer
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
    }

    /// Stops the proxy, drains the engine; returns the ledger to read.
    fn finish(mut self) -> (Ledger, Fixture) {
        let _ = self.stop.take().unwrap().send(());
        let rt = self.runtime.take().unwrap();
        rt.block_on(self.served.take().unwrap()).unwrap().unwrap();
        drop(rt);
        Arc::try_unwrap(self.sink.take().unwrap())
            .ok()
            .expect("sink still shared")
            .shutdown()
            .unwrap();
        (Ledger::open_read(&self.data).unwrap(), self)
    }
}

impl Fixture {
    /// The alert lines written so far (all of them once finished).
    fn alerts(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self._tmp.path().join("alerts.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn basic(user_and_password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(user_and_password)
}

fn scope(l: &Ledger, account: &str) -> (u64, Vec<String>) {
    let s = l
        .scope_account(account, Timestamp(0), Timestamp(i64::MAX), None)
        .unwrap();
    (
        s.accesses,
        s.customers.into_iter().map(|c| c.customer).collect(),
    )
}

#[test]
fn lookups_and_searches_pass_and_their_customers_reach_the_ledger() {
    let f = Fixture::start(FailMode::Open, 1024);
    let (status, body, _) = f.get("p3.anna", "/api/v1/customers/C-7", &[]);
    assert_eq!((status, body["name"].as_str()), (200, Some("Customer C-7")));
    let (status, body, _) = f.get("p3.anna", "/api/v1/search?q=svensson", &[]);
    assert_eq!((status, body["total"].as_u64()), (200, Some(3)));
    assert_eq!(f.get("p3.anna", "/nowhere", &[]).0, 404);
    assert_eq!(f.seen.requests.load(Ordering::Relaxed), 3);
    assert!(f
        .seen
        .forwarded_for
        .lock()
        .unwrap()
        .iter()
        .all(|v| v == "127.0.0.1"));
    let (l, _f) = f.finish();
    let (accesses, customers) = scope(&l, "p3.anna");
    assert_eq!(accesses, 3);
    assert_eq!(customers, ["C-101", "C-102", "C-103", "C-7"]);
}

#[test]
fn an_upstream_that_is_down_gets_502_naming_it_and_the_attempt_is_recorded() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let f = Fixture::start_with(DIRECTORY, FailMode::Open, 1024, |c| {
        c.upstream = format!("http://{dead}").parse().unwrap();
    });
    for _ in 0..3 {
        let (status, body, _) = f.get("p3.anna", "/api/v1/customers/C-7", &[]);
        assert_eq!(status, 502);
        assert_eq!(body["error"], "upstream_unreachable");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(&dead.to_string()), "{message}");
    }
    let (l, _f) = f.finish();
    // Refused by the upstream's absence: recorded, no customer exposed.
    assert_eq!(scope(&l, "p3.anna"), (3, vec![]));
}

#[test]
fn a_blocked_account_gets_403_saying_why_while_others_pass() {
    let f = Fixture::start(FailMode::Open, 1024);
    f.decide("p3.bot", Action::Block);
    let (status, body, _) = f.get("p3.bot", "/api/v1/customers/C-1", &[]);
    assert_eq!(status, 403);
    assert_eq!(body["error"], "blocked");
    assert_eq!(body["contact"], "soc@example.net");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("by hand in a test"),
        "{body}"
    );
    assert_eq!(f.get("p3.anna", "/api/v1/customers/C-1", &[]).0, 200);
    assert_eq!(
        f.seen.requests.load(Ordering::Relaxed),
        1,
        "the blocked request reached the upstream"
    );
    let (l, _f) = f.finish();
    // The refused attempt is recorded, with no customer exposed.
    assert_eq!(scope(&l, "p3.bot"), (1, vec![]));
}

/// Two nodes on one PostgreSQL store: a block decided on node A (its own
/// data directory and chain) is enforced by the proxy of node B within a
/// second, and lifted there as fast. B's guard re-reads on a timer only
/// every 30 s, so only the announcement (LISTEN/NOTIFY) can carry it.
#[test]
fn a_block_decided_on_one_node_is_enforced_by_another_nodes_proxy_within_a_second() {
    let pg = vakt_pgtemp::TempCluster::shared().unwrap();
    pg.psql("CREATE DATABASE nodes").unwrap();
    let url = pg.url("nodes");
    let b = Fixture::start_on(DIRECTORY, FailMode::Open, 1024, |_| {}, Some(&url));
    let node_a = tempfile::tempdir().unwrap();
    let a = DataDir {
        path: node_a.path().join("data"),
    };
    let sa = vakt_ledger::ledger::use_postgres(&a, &url, Postings::Btree).unwrap();
    assert_ne!(
        Some(sa.chain),
        b.chain,
        "each node writes a chain of its own"
    );
    assert_eq!(b.get("p3.bot", "/api/v1/customers/C-1", &[]).0, 200);
    // Let B's guard start listening before A decides.
    std::thread::sleep(Duration::from_millis(300));
    let mut on_a = Ledger::open(&a).unwrap();
    let d = Decision::new(
        "node-a-block".into(),
        Scope::Account,
        "p3.bot",
        Action::Block,
        "decided on node A".into(),
        Timestamp::now(),
        600_000,
    )
    .unwrap();
    let start = Instant::now();
    on_a.put_decision(&d).unwrap();
    on_a.commit().unwrap();
    let blocked_after = loop {
        let (status, body, _) = b.get("p3.bot", "/api/v1/customers/C-1", &[]);
        if status == 403 {
            assert!(
                body["message"]
                    .as_str()
                    .unwrap()
                    .contains("decided on node A"),
                "{body}"
            );
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "node B's proxy still passes p3.bot {:?} after node A blocked it",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    eprintln!("blocked on node B {blocked_after:?} after node A decided");
    assert_eq!(b.get("p3.anna", "/api/v1/customers/C-1", &[]).0, 200);
    // Node B lists node A's decision; its own data directory does not hold it.
    let on_b = Ledger::open_read(&b.data).unwrap();
    assert_eq!(on_b.decisions(None).unwrap(), vec![d.clone()]);
    // Lifted on A: passes on B as fast.
    let start = Instant::now();
    assert!(on_a.delete_decision("node-a-block").unwrap());
    on_a.close().unwrap();
    while b.get("p3.bot", "/api/v1/customers/C-1", &[]).0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "still blocked after the lift"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_throttled_account_gets_its_allowance_then_429_with_retry_after() {
    let f = Fixture::start(FailMode::Open, 1024);
    f.decide("p3.busy", Action::Throttle);
    assert_eq!(f.get("p3.busy", "/api/v1/customers/C-1", &[]).0, 200);
    assert_eq!(f.get("p3.busy", "/api/v1/customers/C-2", &[]).0, 200);
    let (status, body, retry) = f.get("p3.busy", "/api/v1/customers/C-3", &[]);
    assert_eq!((status, body["error"].as_str()), (429, Some("throttled")));
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=30).contains(&retry), "retry after {retry}");
    assert_eq!(f.get("p3.anna", "/api/v1/customers/C-3", &[]).0, 200);
}

#[test]
fn step_up_asks_for_a_totp_code_and_a_correct_one_lets_the_account_through() {
    let f = Fixture::start(FailMode::Open, 1024);
    let secret = vakt_proxy::guard::new_totp_secret();
    let mut l = Ledger::open(&f.data).unwrap();
    l.set_totp_secret("p3.erik", &secret, vakt_event::Timestamp::now())
        .unwrap();
    l.close().unwrap();
    f.decide("p3.erik", Action::StepUp);
    let (status, body, challenge) = f.get("p3.erik", "/api/v1/customers/C-1", &[]);
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("step_up_required"))
    );
    assert!(challenge.unwrap().starts_with("TOTP"));
    let code = vakt_proxy::guard::totp_code(&secret).unwrap();
    let wrong = format!(
        "{:06}",
        (code.parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    let (status, body, _) = f.get(
        "p3.erik",
        "/api/v1/customers/C-1",
        &[("X-Vakt-TOTP", &wrong)],
    );
    assert_eq!(status, 401);
    assert!(body["message"].as_str().unwrap().contains("wrong"));
    assert_eq!(f.seen.requests.load(Ordering::Relaxed), 0);
    assert_eq!(
        f.get(
            "p3.erik",
            "/api/v1/customers/C-1",
            &[("X-Vakt-TOTP", &code)]
        )
        .0,
        200
    );
    // Satisfied for a while: no code needed for the next request.
    assert_eq!(f.get("p3.erik", "/api/v1/customers/C-2", &[]).0, 200);
    assert_eq!(
        f.seen.leaked_totp.load(Ordering::Relaxed),
        0,
        "the code reached the upstream"
    );
    // Another account under step-up is not satisfied by erik's code.
    f.decide("p3.olle", Action::StepUp);
    assert_eq!(
        f.get(
            "p3.olle",
            "/api/v1/customers/C-1",
            &[("X-Vakt-TOTP", &code)]
        )
        .0,
        401
    );
}

#[test]
fn a_bot_hammering_through_one_account_is_blocked_within_seconds_while_a_person_keeps_working() {
    let f = Fixture::start(FailMode::Open, 1024);
    let start = Instant::now();
    let mut blocked_at = None;
    for i in 0..2_000u32 {
        let (status, _, _) = f.get(
            "p3.bot",
            &format!("/api/v1/customers/C-{}", 100_000 + i),
            &[],
        );
        if status == 403 {
            blocked_at = Some((i, start.elapsed()));
            break;
        }
        assert_eq!(status, 200);
        if i % 10 == 0 {
            assert_eq!(
                f.get("p3.anna", &format!("/api/v1/customers/C-{}", i / 10), &[])
                    .0,
                200
            );
        }
    }
    let (n, took) = blocked_at.expect("the bot was never blocked");
    assert!(
        took < Duration::from_secs(10),
        "blocked only after {took:?}"
    );
    assert!(n < 1_000, "blocked only after {n} lookups");
    for i in 0..5 {
        assert_eq!(
            f.get("p3.anna", &format!("/api/v1/customers/C-{i}"), &[]).0,
            200
        );
        assert_eq!(
            f.get("p3.bot", &format!("/api/v1/customers/C-{i}"), &[]).0,
            403
        );
    }
    let (l, _f) = f.finish();
    let decisions = l.decisions(None).unwrap();
    assert!(
        decisions.iter().any(|d| d.value == "p3.bot"
            && d.action == Action::Block
            && d.reason.starts_with("rate ")),
        "{decisions:?}"
    );
    assert!(!decisions.iter().any(|d| d.value == "p3.anna"));
    eprintln!("bot blocked after {n} lookups in {took:?}");
}

/// Holds the ledger's write lock, as a slow or stuck engine would.
fn lock_ledger(data: &DataDir) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(data.path.join("ledger.db")).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.execute_batch("BEGIN EXCLUSIVE").unwrap();
    c
}

/// Accesses are appended in memory; the engine sticks at its next commit
/// (when idle for 200 ms), which waits on the lock: one access, then idle.
fn stick_engine(f: &Fixture) {
    assert_eq!(f.get("p3.anna", "/api/v1/customers/C-1000", &[]).0, 200);
    std::thread::sleep(Duration::from_millis(400));
}

#[test]
fn fail_open_passes_while_the_engine_is_stuck_and_loses_no_access() {
    let f = Fixture::start(FailMode::Open, 2);
    assert_eq!(f.get("p3.anna", "/api/v1/customers/C-0", &[]).0, 200);
    std::thread::sleep(Duration::from_millis(400)); // committed, lock free
    let lock = lock_ledger(&f.data);
    stick_engine(&f);
    for i in 1..=20 {
        assert_eq!(
            f.get("p3.anna", &format!("/api/v1/customers/C-{i}"), &[]).0,
            200
        );
    }
    assert!(
        f.sink
            .as_ref()
            .unwrap()
            .stats()
            .spooled
            .load(Ordering::Relaxed)
            > 0,
        "nothing was spooled"
    );
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    let (l, _f) = f.finish();
    let (accesses, customers) = scope(&l, "p3.anna");
    assert_eq!((accesses, customers.len()), (22, 22));
}

#[test]
fn fail_closed_refuses_while_the_engine_is_stuck_and_recovers_after() {
    let f = Fixture::start(FailMode::Closed, 2);
    assert_eq!(f.get("p3.anna", "/api/v1/customers/C-0", &[]).0, 200);
    std::thread::sleep(Duration::from_millis(400));
    let lock = lock_ledger(&f.data);
    stick_engine(&f);
    let mut refused = 0;
    for i in 1..=20 {
        let (status, body, _) = f.get("p3.anna", &format!("/api/v1/customers/C-{i}"), &[]);
        if status == 503 {
            assert_eq!(body["error"], "audit_unavailable");
            refused += 1;
        } else {
            assert_eq!(status, 200);
        }
    }
    assert!(refused >= 15, "only {refused} of 20 refused while stuck");
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    let start = Instant::now();
    while f.get("p3.anna", "/api/v1/customers/C-99", &[]).0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(10), "never recovered");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (l, _f) = f.finish();
    // Every attempt is recorded, refused ones without customers.
    let (accesses, _) = scope(&l, "p3.anna");
    assert!(accesses >= 22, "{accesses} accesses recorded");
}

#[test]
fn finding_2_lower_case_basic_scheme_is_still_blocked() {
    let f = Fixture::start_with(BASIC_DIRECTORY, FailMode::Open, 1024, |_| {});
    f.decide("p3.bot", Action::Block);
    let credentials = basic("p3.bot:secret");
    // RFC 9110: the scheme is case-insensitive, and spaces may be repeated.
    for auth in [
        format!("Basic {credentials}"),
        format!("basic {credentials}"),
        format!("BASIC {credentials}"),
        format!("bAsIc    {credentials}"),
    ] {
        let (status, body, _) = f.request("/api/v1/customers/C-1", &[("Authorization", &auth)]);
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("blocked")),
            "{auth}"
        );
    }
    assert_eq!(f.seen.requests.load(Ordering::Relaxed), 0);
    let anna = format!("basic {}", basic("p3.anna:pw"));
    assert_eq!(
        f.request("/api/v1/customers/C-2", &[("Authorization", &anna)])
            .0,
        200
    );
    let (l, _f) = f.finish();
    assert_eq!(scope(&l, "p3.bot"), (4, vec![]));
    assert_eq!(scope(&l, "p3.anna"), (1, vec!["C-2".to_string()]));
    assert_eq!(scope(&l, "127.0.0.1").0, 0, "recorded under the address");
}

#[test]
fn finding_2_unreadable_account_is_refused() {
    let f = Fixture::start_with(BASIC_DIRECTORY, FailMode::Open, 1024, |_| {});
    let two = [
        ("Authorization", "Basic cDMuYm90OnNlY3JldA=="),
        ("Authorization", "Basic cDMuYW5uYTpwdw=="),
    ];
    for (why, headers) in [
        ("no credentials", &[][..]),
        (
            "another scheme",
            &[("Authorization", "Digest username=\"p3.bot\"")][..],
        ),
        ("not base64", &[("Authorization", "Basic %%%")][..]),
        ("an empty user", &[("Authorization", "Basic OnB3")][..]),
        ("two accounts", &two[..]),
    ] {
        let (status, body, challenge) = f.request("/api/v1/customers/C-1", headers);
        assert_eq!(status, 401, "{why}: {body}");
        assert_eq!(body["error"], "account_unreadable", "{why}");
        assert!(
            body["message"].as_str().unwrap().contains("basic"),
            "{why}: {body}"
        );
        assert!(challenge.unwrap().starts_with("Basic"), "{why}");
    }
    assert_eq!(f.seen.requests.load(Ordering::Relaxed), 0);
    drop(f);

    // Header mode: a request without the header is refused too.
    let f = Fixture::start(FailMode::Open, 1024);
    let (status, body, _) = f.request("/api/v1/customers/C-1", &[]);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("account_unreadable"))
    );
    assert!(
        body["message"].as_str().unwrap().contains("x-account"),
        "{body}"
    );
    assert_eq!(f.seen.requests.load(Ordering::Relaxed), 0);
    let (l, _f) = f.finish();
    // The refused attempt is recorded under the address.
    assert_eq!(scope(&l, "127.0.0.1"), (1, vec![]));
}

#[test]
fn finding_4_percent_encoded_canary_read_is_recorded_decoded() {
    let f = Fixture::start(FailMode::Open, 1024);
    let (status, body, _) = f.get("p3.anna", "/api/v1/customers/C-90000%31", &[]);
    assert_eq!((status, body["id"].as_str()), (200, Some("C-900001")));
    // Dot segments and repeated slashes resolve as a web server would.
    let (status, body, _) = f.get("p3.anna", "//api/v1/x/..//customers/./C-7", &[]);
    assert_eq!((status, body["id"].as_str()), (200, Some("C-7")));
    // The upstream is sent the path that was recorded.
    assert_eq!(
        *f.seen.paths.lock().unwrap(),
        ["/api/v1/customers/C-900001", "/api/v1/customers/C-7"]
    );
    let (l, f) = f.finish();
    assert_eq!(
        scope(&l, "p3.anna"),
        (2, vec!["C-7".to_string(), "C-900001".to_string()])
    );
    assert!(
        f.alerts()
            .iter()
            .any(|a| a["rule.id"] == "canary" && a["user.name"] == "p3.anna"),
        "{:?}",
        f.alerts()
    );
}

#[test]
fn finding_4_ambiguous_encodings_are_refused() {
    let f = Fixture::start(FailMode::Open, 1024);
    for path in [
        "/api/v1/customers/C-1%2F..%2FC-900001",
        "/api/v1/customers/C-1%5C",
        "/api/v1/customers/C-1\\x",
        "/api/v1/customers/C-1%00",
        "/api/v1/customers/C-90000%2531",
        "/api/v1/customers/C-%ff",
        "/api/v1/customers/C-%zz",
        "/../api/v1/customers/C-1",
    ] {
        let status = f.raw(&format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nX-Account: p3.anna\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(status, 400, "{path}");
    }
    assert_eq!(
        f.seen.requests.load(Ordering::Relaxed),
        0,
        "{:?}",
        f.seen.paths.lock().unwrap()
    );
}

#[test]
fn with_encoded_paths_refused_only_canonical_paths_pass() {
    let f = Fixture::start_with(DIRECTORY, FailMode::Open, 1024, |c| {
        c.encoded_paths = vakt_event::routes::EncodedPaths::Refuse;
    });
    assert_eq!(f.get("p3.anna", "/api/v1/customers/C-1?q=%31", &[]).0, 200);
    for path in ["/api/v1/customers/C-%31", "/api//v1/customers/C-1"] {
        let (status, body, _) = f.get("p3.anna", path, &[]);
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("ambiguous_path"))
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("/api/v1/customers/C-1"),
            "{body}"
        );
    }
    assert_eq!(f.seen.requests.load(Ordering::Relaxed), 1);
}

#[test]
fn finding_5_step_up_codes_lock_out_and_alert() {
    let f = Fixture::start(FailMode::Open, 1024);
    let secret = vakt_proxy::guard::new_totp_secret();
    let mut l = Ledger::open(&f.data).unwrap();
    l.set_totp_secret("p3.erik", &secret, Timestamp::now())
        .unwrap();
    l.close().unwrap();
    f.decide("p3.erik", Action::StepUp);
    let code = vakt_proxy::guard::totp_code(&secret).unwrap();
    let wrong = format!(
        "{:06}",
        (code.parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    let mut locked_after = None;
    for n in 1..=50 {
        let (status, body, retry) = f.get(
            "p3.erik",
            "/api/v1/customers/C-1",
            &[("X-Vakt-TOTP", &wrong)],
        );
        if status == 429 {
            assert_eq!(body["error"], "step_up_locked", "{body}");
            let retry: u64 = retry.expect("Retry-After").parse().unwrap();
            assert!((60..=900).contains(&retry), "retry after {retry}");
            locked_after = Some(n);
            break;
        }
        assert_eq!(status, 401, "{body}");
    }
    let n = locked_after.expect("50 wrong codes and no lockout");
    assert!(n <= 6, "locked out only after {n} wrong codes");
    // Locked: even the right code is not checked now.
    assert_eq!(
        f.get(
            "p3.erik",
            "/api/v1/customers/C-1",
            &[("X-Vakt-TOTP", &code)]
        )
        .0,
        429
    );
    assert_eq!(f.seen.requests.load(Ordering::Relaxed), 0);
    // Others are not affected.
    assert_eq!(f.get("p3.anna", "/api/v1/customers/C-1", &[]).0, 200);
    let (l, f) = f.finish();
    let alerts = f.alerts();
    let alert = alerts
        .iter()
        .find(|a| a["rule.id"] == "step_up_failures")
        .unwrap_or_else(|| panic!("no step_up_failures alert in {alerts:?}"));
    assert_eq!(alert["user.name"], "p3.erik");
    assert_eq!(alert["source.ip"], "127.0.0.1");
    assert_eq!(alert["severity"], "high");
    // The alert went through the pipeline: recorded, and the policy decided.
    assert!(l
        .decisions(None)
        .unwrap()
        .iter()
        .any(|d| d.value == "p3.erik"
            && d.action == Action::Block
            && d.reason.starts_with("step_up_failures ")));
}

/// Reads until the proxy closes the connection; how long that took.
fn closed_within(s: &mut std::net::TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) if start.elapsed() < limit => continue,
            Ok(_) => return None,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(start.elapsed())
            }
            Err(_) => return None,
        }
    }
}

#[test]
fn finding_9_half_sent_request_is_closed() {
    let f = Fixture::start_with(DIRECTORY, FailMode::Open, 1024, |c| {
        c.header_timeout = Duration::from_millis(300);
    });
    // Headers that never end, and a connection that never says anything.
    let mut half = std::net::TcpStream::connect(f.proxy).unwrap();
    half.write_all(b"GET /api/v1/customers/C-1 HTTP/1.1\r\nHost: x\r\nX-Acc")
        .unwrap();
    let mut silent = std::net::TcpStream::connect(f.proxy).unwrap();
    let mut preface = std::net::TcpStream::connect(f.proxy).unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    for (what, s) in [
        ("half-sent headers", &mut half),
        ("silence", &mut silent),
        ("half an HTTP/2 preface", &mut preface),
    ] {
        let took = closed_within(s, Duration::from_secs(3))
            .unwrap_or_else(|| panic!("{what}: still open after 3 s"));
        assert!(
            took < Duration::from_secs(2),
            "{what}: closed after {took:?}"
        );
    }
    // A client that keeps to the timeout is served as before.
    assert_eq!(f.get("p3.anna", "/api/v1/customers/C-1", &[]).0, 200);
}

#[test]
fn finding_9_connections_over_the_cap_wait_for_a_free_one() {
    let f = Fixture::start_with(DIRECTORY, FailMode::Open, 1024, |c| {
        c.max_connections = 2;
        c.header_timeout = Duration::from_secs(5);
    });
    let idle: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(f.proxy).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut third = std::net::TcpStream::connect(f.proxy).unwrap();
    third
        .write_all(
            b"GET /api/v1/customers/C-1 HTTP/1.1\r\nHost: x\r\nX-Account: p3.anna\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut answer = Vec::new();
    let early = third.read_to_end(&mut answer);
    assert!(
        early.is_err() && answer.is_empty(),
        "a third connection was served past a cap of two: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(f.seen.requests.load(Ordering::Relaxed), 0);
    // One slot frees: the waiting connection is served.
    drop(idle);
    third
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let _ = third.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}
