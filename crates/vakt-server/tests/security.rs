//! Regression tests for the findings of the security review that live in
//! `vakt serve` (see SECURITY.md), each named after its finding, over real
//! HTTP on 127.0.0.1.

mod common;

use common::{start, Req, WAIT};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use vakt_server::ConnectionLimits;

/// Reads until the server closes the connection or `wait` passes; returns
/// what was read and whether it was closed.
fn read_until_closed(s: &mut TcpStream, wait: Duration) -> (String, bool) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&got).into_owned(), true)
            }
            Err(_) => {}
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), false)
}

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// Finding 9: a client sending half a request kept its connection (and a
/// task) for ever.
#[test]
fn finding_9_half_sent_request_is_closed_after_the_header_timeout() {
    let (server, _tokens) = start("", |c| {
        c.limits = ConnectionLimits {
            header_timeout: Duration::from_secs(1),
            ..ConnectionLimits::default()
        }
    });
    let mut s = TcpStream::connect(addr(&server.url)).unwrap();
    s.write_all(b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(8));
    assert!(closed, "the half-sent request was still open after 8 s");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A connection that never sends anything is closed too.
    let mut idle = TcpStream::connect(addr(&server.url)).unwrap();
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(8));
    assert!(closed, "the silent connection was still open after 8 s");
}

/// Finding 9: connections past the cap are not served until one ends, so
/// slow clients cannot take every socket and task.
#[test]
fn finding_9_connections_past_the_cap_wait_for_a_free_slot() {
    let header_timeout = Duration::from_secs(2);
    let (server, _tokens) = start("", |c| {
        c.limits = ConnectionLimits {
            max_connections: 2,
            header_timeout,
            ..ConnectionLimits::default()
        }
    });
    let slow: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(addr(&server.url)).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let mut third = TcpStream::connect(addr(&server.url)).unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (answer, _) = read_until_closed(&mut third, WAIT);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let waited = started.elapsed();
    assert!(
        waited >= header_timeout - Duration::from_millis(800),
        "answered after {waited:?}, while two connections held both slots"
    );
    drop(slow);
    // With the slots free again, a request is answered at once.
    let started = Instant::now();
    let ok = server.send(Req {
        method: "GET",
        path: "/healthz",
        token: None,
        content_type: None,
        body: None,
        authorization: None,
    });
    assert_eq!(ok.status, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// Finding 17: `/metrics` told anyone how many alerts each rule raised and
/// how full the queue was; it now needs a read token unless opened.
#[test]
fn finding_17_metrics_need_a_read_token_unless_configured_open() {
    let (server, tokens) = start("", |_| {});
    let get = |token: Option<&str>| {
        server.send(Req {
            method: "GET",
            path: "/metrics",
            token,
            content_type: None,
            body: None,
            authorization: None,
        })
    };
    assert_eq!(get(None).status, 401);
    assert_eq!(get(Some(&tokens.ingest)).status, 403);
    let ok = get(Some(&tokens.read));
    assert_eq!(ok.status, 200);
    assert!(
        ok.text.contains("vakt_events_received_total"),
        "{}",
        ok.text
    );
    server.stop();

    let (open, _) = start("", |c| c.open_metrics = true);
    let a = open.send(Req {
        method: "GET",
        path: "/metrics",
        token: None,
        content_type: None,
        body: None,
        authorization: None,
    });
    assert_eq!(a.status, 200);
    open.stop();
}

fn sign_in(server: &common::Running, form: String) -> common::Answer {
    server.send(Req {
        method: "POST",
        path: "/login",
        token: None,
        content_type: Some("application/x-www-form-urlencoded"),
        body: Some(form.into_bytes()),
        authorization: None,
    })
}

/// Finding 7: the limit was checked before the password and recorded
/// after it, so 100 parallel guesses were all checked.
#[test]
fn finding_7_parallel_sign_in_guesses_are_counted_before_they_are_checked() {
    let (server, _tokens) = start("", |_| {});
    let mut l = vakt_ledger::Ledger::open(&server.data).unwrap();
    l.add_user("anna", "right-password-1").unwrap();
    l.close().unwrap();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let guesses: Vec<_> = (0..40)
            .map(|i| {
                let server = &server;
                s.spawn(move || sign_in(server, format!("user=anna&password=guess-{i}")).status)
            })
            .collect();
        guesses.into_iter().map(|g| g.join().unwrap()).collect()
    });
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + refused, 40, "{statuses:?}");
    assert!(
        checked <= 10,
        "{checked} guesses were checked: {statuses:?}"
    );
    // Locked out now, even with the right password.
    let a = sign_in(&server, "user=anna&password=right-password-1".into());
    assert_eq!(a.status, 429);
    assert!(a.header("retry-after").is_some());
    server.stop();
}

/// Finding 7: a 1 MB user name grew memory to 2.4 GB; forms are capped and
/// names that cannot be a user's are not remembered or hashed.
#[test]
fn finding_7_oversized_sign_in_forms_are_refused() {
    let (server, _tokens) = start("", |_| {});
    // A 1 MiB form is refused on its announced length, before a byte of it
    // is read (sending it whole would race the server closing on us).
    let mut s = TcpStream::connect(addr(&server.url)).unwrap();
    s.write_all(
        b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1048576\r\n\r\nuser=aaaa",
    )
    .unwrap();
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let long_name = format!("user={}&password=wrong-password", "a".repeat(65));
    assert_eq!(sign_in(&server, long_name).status, 401);
    let long_password = format!("user=anna&password={}", "p".repeat(2000));
    assert_eq!(sign_in(&server, long_password).status, 401);
    server.stop();
}

fn csp(server: &common::Running, reports: serde_json::Value) -> common::Answer {
    server.send(Req {
        method: "POST",
        path: "/v1/csp-report",
        token: None,
        content_type: Some("application/reports+json"),
        body: Some(reports.to_string().into_bytes()),
        authorization: None,
    })
}

fn report(document: &str) -> serde_json::Value {
    serde_json::json!({"type": "csp-violation", "url": document, "body": {
        "documentURL": document,
        "blockedURL": "https://collect.evil.example/c",
        "effectiveDirective": "connect-src",
    }})
}

/// Finding 8: the limit was per document origin, which the sender writes
/// in the report: rotating origins was never limited.
#[test]
fn finding_8_csp_reports_are_limited_per_client_address_whatever_origin_they_name() {
    let (server, _) = start("", |c| {
        c.csp.per_address_per_minute = 3;
        c.csp.hosts = vec!["shop.example".into()];
    });
    for port in 1..=3 {
        let a = csp(
            &server,
            serde_json::json!([report(&format!("https://shop.example:{port}/"))]),
        );
        assert_eq!(a.status, 200, "{}", a.text);
    }
    let a = csp(
        &server,
        serde_json::json!([report("https://shop.example:4/")]),
    );
    assert_eq!(
        a.status, 429,
        "a fourth origin from the same address: {}",
        a.text
    );
    server.stop();

    // And all senders together have a cap of their own.
    let (server, _) = start("", |c| {
        c.csp.per_address_per_minute = 100;
        c.csp.global_per_minute = 2;
        c.csp.hosts = vec!["shop.example".into()];
    });
    let statuses: Vec<u16> = (0..3)
        .map(|_| {
            csp(
                &server,
                serde_json::json!([report("https://shop.example/")]),
            )
            .status
        })
        .collect();
    assert_eq!(statuses, [200, 200, 429]);
    server.stop();
}

/// Finding 8: only the first report of a body was counted.
#[test]
fn finding_8_every_report_of_a_body_counts() {
    let (server, _) = start("", |c| {
        c.csp.per_address_per_minute = 3;
        c.csp.hosts = vec!["shop.example".into()];
    });
    let five: Vec<_> = (0..5)
        .map(|i| report(&format!("https://shop.example/{i}")))
        .collect();
    let a = csp(&server, serde_json::Value::Array(five));
    assert_eq!(a.status, 429, "{}", a.text);
    let journal = std::fs::read_to_string(server.data.path.join(vakt_server::JOURNAL_FILE))
        .unwrap_or_default();
    assert_eq!(journal.lines().count(), 0, "nothing of the body was taken");
    server.stop();
}

/// Finding 8: any document host was taken and kept for ever in the
/// detectors' state; only configured hosts are taken now.
#[test]
fn finding_8_reports_from_unconfigured_document_hosts_are_not_taken() {
    let (server, _) = start(
        "[[egress_allow]]\nhost = \"blog.example\"\ndestinations = [\"198.51.100.0/28\"]\n",
        |c| c.csp.hosts = vec!["shop.example".into()],
    );
    let a = csp(
        &server,
        serde_json::json!([
            report("https://shop.example/"),
            report("https://blog.example/"),
            report("https://random-7731.example/"),
        ]),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json(), serde_json::json!({"accepted": 2, "ignored": 1}));
    let journal =
        std::fs::read_to_string(server.data.path.join(vakt_server::JOURNAL_FILE)).unwrap();
    assert!(!journal.contains("random-7731"), "{journal}");
    server.stop();
}
