//! `vakt bench soak`: `vakt serve` under a mixed flood from loopback for a
//! bounded time, while one honest client keeps posting events. The flood:
//! oversized bodies, slowloris connections (headers a byte at a time), CSP
//! reports naming ever new origins, requests with made-up tokens, and a
//! sign-in storm with made-up names. It passes when every honest batch was
//! answered 200 and the server's resident memory stayed under
//! `--max-rss-mib`; it prints what each flooder got back, the honest
//! client's latency and the server's peak memory.

use super::serve::{agent, serve, token};
use crate::fmt::thousands;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vakt_event::stats::quantile;
use vakt_ledger::tokens::Role;
use vakt_ledger::DataDir;

#[derive(clap::Args, Clone, Debug)]
pub struct SoakArgs {
    /// How long the flood lasts.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Fail when the server's resident memory goes past this many MiB.
    #[arg(long, default_value_t = 256)]
    pub max_rss_mib: u64,
    /// Slowloris connections held open at once.
    #[arg(long, default_value_t = 200)]
    pub slow_connections: usize,
    #[arg(long, default_value = "/tmp/vakt-bench-soak", value_name = "DIR")]
    pub dir: PathBuf,
}

/// What one kind of flood got back: status (0: the server closed the
/// connection before answering) -> count.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<u16, u64>>);

impl Tally {
    fn add(&self, status: u16) {
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(status)
            .or_default() += 1;
    }

    fn summary(&self) -> String {
        let t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let total: u64 = t.values().sum();
        let parts: Vec<String> = t
            .iter()
            .map(|(s, n)| {
                let s = if *s == 0 {
                    "closed".into()
                } else {
                    s.to_string()
                };
                format!("{s}: {}", thousands(*n))
            })
            .collect();
        format!("{} requests ({})", thousands(total), parts.join(", "))
    }
}

fn status_of(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> u16 {
    match r {
        Ok(mut a) => {
            // Read the answer so the connection can be used again.
            let _ = a.body_mut().with_config().limit(1 << 20).read_to_vec();
            a.status().as_u16()
        }
        Err(_) => 0,
    }
}

/// The resident and peak memory of `pid`, in KiB, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn honest_batch(round: u64) -> String {
    (0..100)
        .map(|i| {
            format!(
                r#"{{"@timestamp":"2026-11-02T08:{:02}:{:02}Z","user.name":"honest-{}","event.action":"lookup","customer.ids":["C-{}"]}}"#,
                (round / 60) % 60,
                round % 60,
                i % 10,
                round * 100 + i
            ) + "\n"
        })
        .collect()
}

pub fn run(args: SoakArgs) -> Result<()> {
    let data = DataDir {
        path: args.dir.join("data"),
    };
    if data.path.exists() {
        std::fs::remove_dir_all(&data.path)
            .with_context(|| format!("cannot remove {}", data.path.display()))?;
    }
    let ingest = token(&data, "soak-ingest", Role::Ingest)?;
    let (mut server, base) = serve(&data.path, None, &["--csp-host", "shop.example"])?;
    let pid = server.id();
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let host = base.trim_start_matches("http://").to_owned();
    let (oversized, csp, bad_tokens, sign_ins) = (
        Tally::default(),
        Tally::default(),
        Tally::default(),
        Tally::default(),
    );
    let slow_closed = std::sync::atomic::AtomicU64::new(0);
    let mut honest_latency = Vec::new();
    let mut honest_failed = Vec::new();
    let mut peak_rss = 0u64;
    let running = || !stop.load(Ordering::Relaxed);
    std::thread::scope(|s| {
        // Oversized bodies: 17 MiB where 16 are allowed.
        s.spawn(|| {
            let big = vec![b'x'; 17 << 20];
            let a = agent();
            while running() {
                let r = a
                    .post(format!("{base}/v1/events"))
                    .header("Authorization", format!("Bearer {ingest}"))
                    .send(&big[..]);
                oversized.add(status_of(r));
            }
        });
        // Slowloris: connections that send their headers a byte a second.
        s.spawn(|| {
            let mut conns: Vec<TcpStream> = Vec::new();
            while running() {
                while conns.len() < args.slow_connections {
                    match TcpStream::connect(&host) {
                        Ok(c) => {
                            let _ = c.set_nonblocking(true);
                            let mut c = c;
                            let _ = c.write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n");
                            conns.push(c);
                        }
                        Err(_) => break,
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
                conns.retain_mut(|c| {
                    let mut buf = [0u8; 64];
                    let closed = matches!(c.read(&mut buf), Ok(0)) || c.write_all(b"X").is_err();
                    if closed {
                        slow_closed.fetch_add(1, Ordering::Relaxed);
                    }
                    !closed
                });
            }
        });
        // CSP reports naming a new origin each time.
        s.spawn(|| {
            let a = agent();
            let mut i = 0u64;
            while running() {
                i += 1;
                let body = format!(
                    r#"{{"csp-report":{{"document-uri":"https://shop-{i}.example:{}/","blocked-uri":"https://evil-{i}.example/x"}}}}"#,
                    1 + i % 60000
                );
                let r = a
                    .post(format!("{base}/v1/csp-report"))
                    .header("Content-Type", "application/csp-report")
                    .send(body.as_bytes());
                csp.add(status_of(r));
            }
        });
        // Made-up tokens.
        s.spawn(|| {
            let a = agent();
            let mut i = 0u64;
            while running() {
                i += 1;
                let r = a
                    .get(format!("{base}/v1/alerts"))
                    .header("Authorization", format!("Bearer vakt_guess{i:032x}"))
                    .call();
                bad_tokens.add(status_of(r));
            }
        });
        // A sign-in storm with made-up names and long passwords.
        s.spawn(|| {
            let a = agent();
            let mut i = 0u64;
            while running() {
                i += 1;
                let form = format!("user=guess{i}&password={}", "p".repeat(900));
                let r = a
                    .post(format!("{base}/login"))
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .send(form.as_bytes());
                sign_ins.add(status_of(r));
            }
        });
        // The honest client, and the memory samples.
        let a = agent();
        let mut round = 0u64;
        while Instant::now() < deadline {
            round += 1;
            let started = Instant::now();
            let r = a
                .post(format!("{base}/v1/events"))
                .header("Authorization", format!("Bearer {ingest}"))
                .send(honest_batch(round).as_bytes());
            let status = status_of(r);
            honest_latency.push(started.elapsed().as_secs_f64() * 1000.0);
            if status != 200 {
                honest_failed.push(status);
            }
            peak_rss = peak_rss.max(rss_kib(pid).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(200));
        }
        stop.store(true, Ordering::Relaxed);
    });
    server.check()?;
    let stderr = server.stderr();
    server
        .stop(Duration::from_secs(60))
        .context("vakt serve did not stop cleanly after the flood")?;
    let peak_mib = peak_rss as f64 / 1024.0;
    honest_latency.sort_by(f64::total_cmp);
    println!(
        "vakt serve under a mixed flood for {}s on 127.0.0.1",
        args.seconds
    );
    println!("  oversized bodies (17 MiB): {}", oversized.summary());
    println!(
        "  slowloris: {} connections held, {} closed by the server",
        args.slow_connections,
        thousands(slow_closed.into_inner())
    );
    println!("  CSP from rotating origins: {}", csp.summary());
    println!("  made-up tokens: {}", bad_tokens.summary());
    println!("  sign-in storm: {}", sign_ins.summary());
    println!(
        "  honest ingest: {} batches of 100, {} failed, latency p50 {:.1} ms, p99 {:.1} ms",
        honest_latency.len(),
        honest_failed.len(),
        quantile(&honest_latency, 0.5),
        quantile(&honest_latency, 0.99),
    );
    println!(
        "  server peak resident memory: {peak_mib:.0} MiB (cap {} MiB)",
        args.max_rss_mib
    );
    if !honest_failed.is_empty() {
        bail!(
            "{} honest batches were not accepted (statuses {:?}): {stderr}",
            honest_failed.len(),
            honest_failed
        );
    }
    if peak_mib > args.max_rss_mib as f64 {
        bail!(
            "the server's memory reached {peak_mib:.0} MiB, over the cap of {} MiB",
            args.max_rss_mib
        );
    }
    Ok(())
}
