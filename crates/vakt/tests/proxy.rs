//! `vakt proxy http` as a user runs it: a decision typed with `vakt
//! decisions add` in another shell reaches the running proxy within a
//! second, `vakt account enroll-totp` enrols step-up, and Ctrl-C drains
//! every access into the ledger.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};
use support::vakt;

/// A one-thread upstream answering every request with a customer record.
fn upstream() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().take(200) {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let id = line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_owned();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) <= 2 {
                    break;
                }
            }
            let body = format!(r#"{{"id":"{id}"}}"#);
            let _ = write!(s, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        }
    });
    port
}

fn get(port: u16, account: &str, path: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nx-account: {account}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_decision_typed_in_another_shell_reaches_the_running_proxy_within_a_second() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let dir = tmp.path().join("directory.toml");
    std::fs::write(&dir, "[http]\naccount = \"header:X-Account\"\n\n[[http.route]]\npattern = \"/api/v1/customers/{customer}\"\n").unwrap();
    let up = upstream();
    let (mut proxy, address) = support::start(
        vakt()
            .args([
                "proxy",
                "http",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                &format!("http://127.0.0.1:{up}"),
            ])
            .arg("--directory")
            .arg(&dir)
            .arg("--data")
            .arg(&data)
            .arg("--alerts")
            .arg(tmp.path().join("alerts.jsonl")),
    );
    let port: u16 = address
        .strip_prefix("127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {address:?}"));

    assert_eq!(get(port, "p3.bot", "/api/v1/customers/C-1"), 200);
    let out = vakt()
        .args([
            "decisions",
            "add",
            "--scope",
            "account",
            "--value",
            "p3.bot",
            "--action",
            "block",
            "--ttl",
            "10m",
        ])
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added = Instant::now();
    while get(port, "p3.bot", "/api/v1/customers/C-2") != 403 {
        assert!(
            added.elapsed() < Duration::from_secs(1),
            "the block did not arrive within a second"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(port, "p3.bot", "/api/v1/customers/C-9"), 403);
    assert_eq!(get(port, "p3.anna", "/api/v1/customers/C-3"), 200);

    // Step-up with an enrolled account: the secret is printed once.
    let out = vakt()
        .args(["account", "enroll-totp", "p3.anna"])
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("otpauth://totp/"), "{text}");

    // SIGINT: stop, drain, commit; then the ledger holds every access.
    proxy
        .signal_and_wait(libc::SIGINT, Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("the proxy did not stop on SIGINT: {e}"));
    let rest = proxy.stderr_to_end();
    assert!(rest.contains("accesses"), "{rest}");
    let out = vakt()
        .args(["scope", "--account", "p3.anna", "--format", "json"])
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let scope = String::from_utf8_lossy(&out.stdout);
    assert!(scope.contains("C-3"), "{scope}");
    let out = vakt()
        .args(["scope", "--account", "p3.bot", "--format", "json"])
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let scope = String::from_utf8_lossy(&out.stdout);
    assert!(
        scope.contains("C-1") && !scope.contains("C-9"),
        "a refused lookup counted as exposure: {scope}"
    );
}
