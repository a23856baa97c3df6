//! `vakt bench serve`: `vakt serve` measured from outside, over HTTP, as
//! its clients see it. `bench watch` and `bench ledger` time the engine and
//! the ledger in-process; this adds what the API costs on top (HTTP,
//! tokens, JSON, the synced journal, the queue), in two parts:
//!
//! - Ingest: generated events POSTed to `/v1/events` in batches from a
//!   few concurrent connections, honouring 429 and `Retry-After`. Two
//!   rates: accepted (answered 200, so journaled and synced) and end to
//!   end (until the engine has detected and committed every event to the
//!   ledger). They differ by what the queue between them holds.
//! - Reads: latency of `GET /v1/alerts` and `GET /v1/scope` over a ledger
//!   of millions of accesses (built once; `--reuse` keeps it), one request
//!   at a time, so each figure is one request's own time.
//!
//! The server runs as a child process (this executable, `vakt serve`), so
//! the figures include HTTP, authentication and JSON as deployed. Client
//! and server share the machine's cores.

use super::{append_generated, generate, mib};
use crate::fmt::thousands;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use vakt_event::stats::quantile;
use vakt_event::{Actor, Alert, AlertStatus, Severity, Timestamp};
use vakt_ledger::alert_query::AlertQuery;
use vakt_ledger::tokens::Role;
use vakt_ledger::{DataDir, Ledger};
use vakt_server::child::Child;

#[derive(clap::Args, Clone, Debug)]
pub struct ServeBenchArgs {
    /// Events to POST to /v1/events (0 skips the ingest part).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Events per POST.
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Concurrent client connections posting events.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Accesses in the ledger the reads are measured on (0 skips the read part).
    #[arg(long, default_value_t = 10_000_000)]
    pub ledger_events: u64,
    /// Distinct accounts in the generated events.
    #[arg(long, default_value_t = 10_000)]
    pub accounts: u32,
    /// Alerts recorded in the ledger for the reads, five per account.
    #[arg(long, default_value_t = 500)]
    pub alerts: u32,
    /// Sequential requests per read route.
    #[arg(long, default_value_t = 1_000)]
    pub requests: u32,
    /// Keep the read ledger of an earlier run in DIR when it holds
    /// --ledger-events accesses, instead of building it again.
    #[arg(long)]
    pub reuse: bool,
    /// Working directory: generated input, the ingest data directory and the read ledger.
    #[arg(long, default_value = "/tmp/vakt-bench-serve", value_name = "DIR")]
    pub dir: PathBuf,
}

/// Longest wait for the server to start or stop, and for the engine to
/// make progress while it catches up.
const WAIT: Duration = Duration::from_secs(120);

pub fn run(args: ServeBenchArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    if args.events > 0 {
        ingest(&args)?;
    }
    if args.ledger_events > 0 {
        reads(&args)?;
    }
    Ok(())
}

/// `vakt serve` (this executable) on a free port of 127.0.0.1, with its
/// base URL; killed if dropped before it is stopped.
pub(super) fn serve(
    data: &Path,
    directory: Option<&Path>,
    extra: &[&str],
) -> Result<(Child, String)> {
    let exe = std::env::current_exe().context("cannot find the vakt executable")?;
    let mut cmd = Command::new(exe);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if let Some(d) = directory {
        cmd.arg("--directory").arg(d);
    }
    cmd.args(extra);
    let mut child = Child::spawn(format!("`vakt serve --data {}`", data.display()), &mut cmd)?;
    let url = child.listening(WAIT)?;
    Ok((child, url))
}

/// One client connection (ureq keeps it alive between requests); every
/// status is an answer, not an error.
pub(super) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(WAIT))
        .build()
        .into()
}

/// Makes a token in the ledger of `data`; an earlier one of that name is replaced.
pub(super) fn token(data: &DataDir, name: &str, role: Role) -> Result<String> {
    let mut l = Ledger::open(data)
        .with_context(|| format!("cannot open the ledger in {}", data.path.display()))?;
    l.revoke_token(name)?;
    let secret = l.create_token(name, role)?;
    l.close()?;
    Ok(secret)
}

fn spinner(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn ingest(args: &ServeBenchArgs) -> Result<()> {
    let batch = args.batch.max(1);
    let (input, directory) = generate(&args.dir, args.events, args.accounts)?;
    let data = DataDir {
        path: args.dir.join("ingest"),
    };
    // A fresh journal and ledger: the journal's line count is then what was accepted.
    if data.path.exists() {
        std::fs::remove_dir_all(&data.path)
            .with_context(|| format!("cannot remove {}", data.path.display()))?;
    }
    let secret = token(&data, "bench-ingest", Role::Ingest)?;
    let read_token = token(&data, "bench-read", Role::Read)?;
    let (mut server, base) = serve(&data.path, Some(&directory), &[])?;
    let url = format!("{base}/v1/events");
    let auth = format!("Bearer {secret}");
    let accepted = AtomicU64::new(0);
    let throttled = AtomicU64::new(0);
    let bar = ProgressBar::new(args.events);
    bar.set_style(spinner(
        "posting {bar:30} {pos}/{len} events accepted ({per_sec})",
    ));
    // Bodies are read from the generated file as the clients go; a few
    // wait per client, so reading never holds them up.
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(args.clients.max(1) * 2);
    let rx = Arc::new(Mutex::new(rx));
    let started = Instant::now();
    let (read, posted) = std::thread::scope(|s| {
        let reader = s.spawn(|| read_batches(&input, batch, tx));
        let clients: Vec<_> = (0..args.clients.max(1))
            .map(|_| {
                let rx = rx.clone();
                let (url, auth, accepted, throttled, bar) =
                    (&url, &auth, &accepted, &throttled, &bar);
                s.spawn(move || post_batches(url, auth, &rx, accepted, throttled, bar))
            })
            .collect();
        // Only the clients hold the receiver: should they all fail, the reader stops too.
        drop(rx);
        let posted = clients.into_iter().try_for_each(|c| {
            c.join()
                .unwrap_or_else(|_| bail!("a client thread panicked"))
        });
        let read = reader
            .join()
            .unwrap_or_else(|_| bail!("the reader thread panicked"));
        (read, posted)
    });
    posted?;
    let lines = read?;
    let accept_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let accepted = accepted.into_inner();
    if accepted != lines {
        bail!("{accepted} events accepted of {lines} posted");
    }
    // The ledger's progress mark for the journal is committed with the
    // accesses, alerts and decisions of those lines: when it reaches the
    // last line, everything is in the ledger.
    let wait = ProgressBar::new(accepted);
    wait.set_style(spinner(
        "engine {bar:30} {pos}/{len} events committed to the ledger",
    ));
    let ledger = Ledger::open_read(&data)?;
    let (mut done, mut moved) = (0, Instant::now());
    while done < accepted {
        std::thread::sleep(Duration::from_millis(20));
        let now = ledger.progress(vakt_server::JOURNAL_FILE)?;
        if now > done {
            (done, moved) = (now, Instant::now());
            wait.set_position(done);
        } else if moved.elapsed() > WAIT {
            bail!(
                "the engine committed nothing for {WAIT:?}, at {done} of {accepted} events: {}",
                server.stderr()
            );
        }
        server.check()?;
    }
    let total_secs = started.elapsed().as_secs_f64();
    wait.finish_and_clear();
    drop(ledger);
    let alerts = alert_lines(&base, &read_token)?;
    server.stop(WAIT)?;
    let journal = std::fs::metadata(data.path.join(vakt_server::JOURNAL_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    let n = accepted as f64;
    println!(
        "vakt bench serve, ingest: {} JSON-line access events ({} accounts, with directory), POST /v1/events in batches of {} from {} connections",
        thousands(accepted),
        thousands(args.accounts as u64),
        thousands(batch as u64),
        args.clients.max(1)
    );
    println!(
        "  accepted (200: journaled and synced): {:.1} s = {} events/s; {} answers 429 (queue full), each retried after its Retry-After",
        accept_secs,
        thousands((n / accept_secs) as u64),
        thousands(throttled.into_inner())
    );
    println!(
        "  end to end (detected and committed to the ledger): {:.1} s = {} events/s; {} alert lines",
        total_secs,
        thousands((n / total_secs) as u64),
        thousands(alerts)
    );
    println!(
        "  journal: {:.1} MiB = {:.0} bytes per event",
        mib(journal),
        journal as f64 / n
    );
    Ok(())
}

/// Sends the generated file's lines to the clients, `batch` lines per
/// body; returns how many lines were sent.
fn read_batches(input: &Path, batch: usize, tx: mpsc::SyncSender<Vec<u8>>) -> Result<u64> {
    let file =
        std::fs::File::open(input).with_context(|| format!("cannot read {}", input.display()))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let (mut body, mut in_body, mut lines) = (Vec::new(), 0, 0u64);
    loop {
        let n = r
            .read_until(b'\n', &mut body)
            .with_context(|| format!("cannot read {}", input.display()))?;
        if n > 0 {
            in_body += 1;
            lines += 1;
        }
        if (n == 0 && in_body > 0) || in_body == batch {
            if tx.send(std::mem::take(&mut body)).is_err() {
                // The clients stopped; they say why.
                return Ok(lines);
            }
            in_body = 0;
        }
        if n == 0 {
            return Ok(lines);
        }
    }
}

/// One client: POSTs bodies until there are none left. A 429 accepted
/// nothing, so the same body is sent again after `Retry-After` seconds.
fn post_batches(
    url: &str,
    auth: &str,
    rx: &Mutex<mpsc::Receiver<Vec<u8>>>,
    accepted: &AtomicU64,
    throttled: &AtomicU64,
    bar: &ProgressBar,
) -> Result<()> {
    let agent = agent();
    loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(body) = next else {
            return Ok(());
        };
        loop {
            let mut r = agent
                .post(url)
                .header("Authorization", auth)
                .send(&body[..])
                .with_context(|| format!("POST {url}"))?;
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            let text = r
                .body_mut()
                .read_to_string()
                .with_context(|| format!("POST {url}: reading the answer"))?;
            match status {
                200 => {
                    let v: serde_json::Value = serde_json::from_str(&text)
                        .with_context(|| format!("POST {url} answered 200 with {text}"))?;
                    if v["rejected"].as_array().is_some_and(|r| !r.is_empty()) {
                        bail!("POST {url} rejected generated lines: {text}");
                    }
                    let n = v["accepted"].as_u64().unwrap_or(0);
                    accepted.fetch_add(n, Ordering::Relaxed);
                    bar.inc(n);
                    break;
                }
                429 => {
                    throttled.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_secs(retry.unwrap_or(1)));
                }
                _ => bail!("POST {url} answered {status}: {text}"),
            }
        }
    }
}

/// Alert lines the engine recorded, from `GET /metrics`.
fn alert_lines(base: &str, read_token: &str) -> Result<u64> {
    let text = agent()
        .get(format!("{base}/metrics"))
        .header("Authorization", format!("Bearer {read_token}"))
        .call()
        .context("GET /metrics")?
        .body_mut()
        .read_to_string()
        .context("GET /metrics: reading the answer")?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("vakt_alerts_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum())
}

/// `n` alerts, five per account, spread over the day the generated events cover.
fn bench_alerts(n: u32, accounts: u32) -> Result<Vec<Alert>> {
    const RULES: [&str; 5] = [
        "bulk_read",
        "enumeration",
        "no_business_context",
        "new_category",
        "automation",
    ];
    let day = Timestamp::parse("2026-11-02T00:00:00Z")
        .map_err(|e| anyhow::anyhow!("the bench date: {e}"))?
        .0;
    let step = 86_400_000 / n.max(1) as i64;
    Ok((0..n)
        .map(|k| {
            let account = alert_account(k, n, accounts);
            let first_seen = Timestamp(day + k as i64 * step);
            let rule = RULES[k as usize % RULES.len()];
            Alert {
                id: format!("bench-{rule}-{account}-{k}"),
                timestamp: Timestamp(first_seen.0 + 600_000),
                rule: rule.to_owned(),
                severity: [Severity::Medium, Severity::High, Severity::Critical][k as usize % 3],
                actor: Actor::user(&account),
                organization: None,
                first_seen,
                message: format!("{account} read more customers than usual (bench alert {k})"),
                evidence: serde_json::Map::new(),
                customers: 100 + k as u64,
                status: AlertStatus::New,
                updates: 0,
            }
        })
        .collect())
}

/// The account of alert `k` of `n`: `n / 5` accounts spread over all of them.
fn alert_account(k: u32, n: u32, accounts: u32) -> String {
    let actors = (n / 5).max(1);
    let a = (k % actors) as u64 * 7919 % accounts.max(1) as u64;
    format!("acct{a:06}")
}

fn reads(args: &ServeBenchArgs) -> Result<()> {
    let data = DataDir {
        path: args.dir.join("ledger"),
    };
    let have = if args.reuse && data.db_path().exists() {
        Ledger::open_read(&data)?.len() as u64
    } else {
        0
    };
    if have == args.ledger_events {
        println!(
            "vakt bench serve: reusing the ledger in {} ({} accesses)",
            data.path.display(),
            thousands(have)
        );
    } else {
        if args.reuse {
            println!(
                "vakt bench serve: no ledger of {} accesses in {} to reuse; building it",
                thousands(args.ledger_events),
                data.path.display()
            );
        }
        if data.path.exists() {
            std::fs::remove_dir_all(&data.path)
                .with_context(|| format!("cannot remove {}", data.path.display()))?;
        }
        let b = append_generated(&data, args.ledger_events, args.accounts, 3)?;
        println!(
            "vakt bench serve: built the ledger: {} accesses in {:.1} s = {} accesses/s",
            thousands(b.events),
            b.append_secs,
            thousands((b.events as f64 / b.append_secs) as u64)
        );
    }
    let secret = {
        // Alerts are kept by id, so recording them again on a reused ledger changes nothing.
        let mut l = Ledger::open(&data)?;
        for a in bench_alerts(args.alerts, args.accounts)? {
            l.record_alert(&a)?;
        }
        l.close()?;
        token(&data, "bench-read", Role::Read)?
    };
    let (size, alerts) = {
        let l = Ledger::open_read(&data)?;
        let all = l.alert_page(&AlertQuery {
            limit: 1_000_000,
            ..Default::default()
        })?;
        (l.len() as u64, all.lines.len())
    };
    let (server, base) = serve(&data.path, None, &[])?;
    let agent = agent();
    let auth = format!("Bearer {secret}");
    let n = args.requests.max(1);
    // The most read customer's answer is thousands of accesses; fewer
    // requests keep the run short.
    let hot = (n / 20).max(5);
    // Label, requests, what the answer lists, and the path of request i.
    type PathOf<'a> = Box<dyn Fn(u32) -> String + 'a>;
    let routes: Vec<(&str, u32, &str, PathOf)> = vec![
        (
            "GET /v1/alerts (first page of 100)",
            n,
            "alerts",
            Box::new(|_| "/v1/alerts".into()),
        ),
        (
            "GET /v1/alerts?actor= (one account's)",
            n,
            "alerts",
            Box::new(|i| {
                format!(
                    "/v1/alerts?actor={}",
                    alert_account(i, args.alerts, args.accounts)
                )
            }),
        ),
        (
            "GET /v1/scope?account= (all time)",
            n,
            "accesses",
            Box::new(|i| {
                format!(
                    "/v1/scope?account=acct{:06}",
                    (i as u64 * 7919) % args.accounts.max(1) as u64
                )
            }),
        ),
        (
            // Generated customers are skewed (C-0000000 most read); ids from
            // 1,000 to 200,000 are read now and then, as most customers are.
            "GET /v1/scope?customer= (one customer)",
            n,
            "accesses",
            Box::new(|i| {
                format!(
                    "/v1/scope?customer=C-{:07}",
                    1_000 + (i as u64 * 7919) % 199_000
                )
            }),
        ),
        (
            "GET /v1/scope?customer=C-0000001 (a hot one)",
            hot,
            "accesses",
            Box::new(|_| "/v1/scope?customer=C-0000001".into()),
        ),
    ];
    let mut rows = Vec::new();
    let bar = ProgressBar::new(routes.iter().map(|r| r.1 as u64).sum());
    bar.set_style(spinner("reading {bar:30} {pos}/{len} requests"));
    for (label, count, noun, path) in &routes {
        // One request first, not counted: the first one also opens the connection.
        get(&agent, &base, &auth, &path(0))?;
        let (mut ms, mut bytes, mut listed) = (Vec::with_capacity(*count as usize), 0, 0);
        for i in 0..*count {
            let t = Instant::now();
            let body = get(&agent, &base, &auth, &path(i))?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            bytes += body.len() as u64;
            listed += listed_items(&body);
            bar.inc(1);
        }
        ms.sort_by(f64::total_cmp);
        let per = |v: u64| v as f64 / *count as f64;
        rows.push((label, ms, per(bytes), per(listed), noun));
    }
    bar.finish_and_clear();
    server.stop(WAIT)?;
    println!(
        "vakt bench serve, reads: ledger of {} accesses ({} accounts) and {} alerts, one connection, one request at a time",
        thousands(size),
        thousands(args.accounts as u64),
        thousands(alerts as u64)
    );
    for (label, ms, bytes, listed, noun) in rows {
        println!(
            "  {:<45} p50 {:>7.2} ms, p99 {:>7.2} ms, max {:>7.2} ms  ({} requests; {:.0} {noun}, {:.1} KiB per answer)",
            label,
            quantile(&ms, 0.5),
            quantile(&ms, 0.99),
            ms.last().copied().unwrap_or(0.0),
            thousands(ms.len() as u64),
            listed,
            bytes / 1024.0
        );
    }
    Ok(())
}

/// One GET that must answer 200; returns the answer.
pub(super) fn get(agent: &ureq::Agent, base: &str, auth: &str, path: &str) -> Result<Vec<u8>> {
    let mut r = agent
        .get(format!("{base}{path}"))
        .header("Authorization", auth)
        .call()
        .with_context(|| format!("GET {path}"))?;
    let status = r.status().as_u16();
    let body = r
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .with_context(|| format!("GET {path}: reading the answer"))?;
    if status != 200 {
        bail!(
            "GET {path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(body)
}

/// What an answer lists: the alerts of /v1/alerts, the accesses of
/// /v1/scope (an account's count, a customer's list).
fn listed_items(body: &[u8]) -> u64 {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(a)) => a.len() as u64,
        Ok(v) => match &v["accesses"] {
            serde_json::Value::Array(a) => a.len() as u64,
            n => n.as_u64().unwrap_or(0),
        },
        Err(_) => 0,
    }
}
