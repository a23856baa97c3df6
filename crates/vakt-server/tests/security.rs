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
