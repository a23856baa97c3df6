//! Delivery to real receivers on loopback: a webhook that is down and comes
//! back, a restart with alerts pending, syslog over UDP and TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use vakt_deliver::{Deliverer, DeliveryConfig};
use vakt_event::{Actor, Alert, AlertStatus, Severity, Timestamp};

fn alert(n: u32, severity: Severity) -> Alert {
    Alert {
        id: format!("rate-{n}"),
        timestamp: Timestamp(1_793_000_000_000 + n as i64),
        rule: "rate".into(),
        severity,
        actor: Actor::user("p3.bot"),
        organization: Some("partner-3".into()),
        first_seen: Timestamp(0),
        message: format!("alert {n}"),
        evidence: serde_json::Map::new(),
        customers: n as u64,
        status: AlertStatus::New,
        updates: 0,
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(toml: &str) -> DeliveryConfig {
    let mut c = DeliveryConfig::from_toml(toml, "deliver.toml").unwrap();
    c.max_backoff = Duration::from_millis(200);
    c
}

/// An HTTP receiver answering `statuses` in turn (then 200), sending each
/// body it accepted (2xx) to the channel; stops after `max` requests.
fn receiver(port: u16, statuses: Vec<u16>, max: usize) -> mpsc::Receiver<serde_json::Value> {
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut statuses = statuses.into_iter();
        for s in l.incoming().take(max) {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) <= 2 {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let status = statuses.next().unwrap_or(200);
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            if status < 300 {
                let _ = tx.send(serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null));
            }
        }
    });
    rx
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_webhook_that_is_down_gets_every_alert_in_order_once_it_is_back() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let c = config(&format!("[[target]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/alerts\"\n"));
    let d = Deliverer::start(tmp.path(), &c).unwrap();
    for n in 1..=3 {
        d.enqueue(&alert(n, Severity::High)).unwrap();
    }
    wait_until("a failed attempt", || {
        d.stats()[0].failures.load(Ordering::Relaxed) >= 2
    });
    assert_eq!(d.stats()[0].delivered.load(Ordering::Relaxed), 0);
    // The receiver comes back, first failing once with a 503.
    let rx = receiver(port, vec![503], 10);
    let got: Vec<String> = (0..3)
        .map(|_| {
            rx.recv_timeout(Duration::from_secs(10)).expect("an alert")["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(got, ["rate-1", "rate-2", "rate-3"]);
    wait_until("the cursor to move", || d.pending() == 0);
    d.shutdown(Duration::from_secs(1));
}

#[test]
fn alerts_pending_at_shutdown_go_out_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let toml = format!("[[target]]\nname = \"oncall\"\nkind = \"slack\"\nurl = \"http://127.0.0.1:{port}/hook\"\nmin_severity = \"high\"\n");
    let d = Deliverer::start(tmp.path(), &config(&toml)).unwrap();
    d.enqueue(&alert(1, Severity::Critical)).unwrap();
    d.enqueue(&alert(2, Severity::Low)).unwrap(); // below min_severity: skipped
    d.enqueue(&alert(3, Severity::High)).unwrap();
    d.shutdown(Duration::from_millis(100));
    let rx = receiver(port, vec![], 10);
    let d = Deliverer::start(tmp.path(), &config(&toml)).unwrap();
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let second = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        first["text"].as_str().unwrap().contains("rate-1"),
        "{first}"
    );
    assert!(
        second["text"].as_str().unwrap().contains("rate-3"),
        "{second}"
    );
    wait_until("all sent", || d.pending() == 0);
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "the low alert was sent"
    );
    assert_eq!(d.stats()[0].skipped.load(Ordering::Relaxed), 1);
    d.shutdown(Duration::from_secs(1));
    // Everything delivered: the next start empties the queue.
    let _d = Deliverer::start(tmp.path(), &config(&toml)).unwrap();
    assert_eq!(
        std::fs::metadata(tmp.path().join("deliver/queue.jsonl"))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn syslog_receivers_get_rfc5424_over_udp_and_cef_over_tcp() {
    let tmp = tempfile::tempdir().unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = config(&format!(
        "[[target]]\nname = \"u\"\nkind = \"syslog\"\naddress = \"udp://{}\"\n\n[[target]]\nname = \"t\"\nkind = \"syslog\"\naddress = \"tcp://{}\"\nformat = \"cef\"\n",
        udp.local_addr().unwrap(),
        tcp.local_addr().unwrap()
    ));
    let d = Deliverer::start(tmp.path(), &c).unwrap();
    d.enqueue(&alert(1, Severity::Critical)).unwrap();
    d.enqueue(&alert(2, Severity::Medium)).unwrap();
    let mut buf = [0u8; 4096];
    let n = udp.recv(&mut buf).unwrap();
    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        line.starts_with("<82>1 2026-") && line.contains(" vakt - rate [vakt@32473 id=\"rate-1\""),
        "{line}"
    );
    let (s, _) = tcp.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s);
    let mut frames = Vec::new();
    for _ in 0..2 {
        // Octet counting: "LEN SP MSG".
        let mut len = Vec::new();
        r.read_until(b' ', &mut len).unwrap();
        let len: usize = String::from_utf8_lossy(&len).trim().parse().unwrap();
        let mut msg = vec![0; len];
        r.read_exact(&mut msg).unwrap();
        frames.push(String::from_utf8(msg).unwrap());
    }
    assert!(
        frames[0].starts_with("CEF:0|vakt|vakt|") && frames[0].contains("|rate|alert 1|10|"),
        "{frames:?}"
    );
    assert!(
        frames[1].contains("|alert 2|5|") && frames[1].contains("cs1=rate-2"),
        "{frames:?}"
    );
    wait_until("all sent", || d.pending() == 0);
    d.shutdown(Duration::from_secs(1));
}
