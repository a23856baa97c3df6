//! `vakt bench pgaudit`: how fast a real pgaudit log is read. A throwaway
//! PostgreSQL cluster with pgaudit (`pgaudit.log = 'read,write'`,
//! parameters logged, stderr and csvlog both on) runs `pgbench -i`, a
//! `pgbench -S` (simple, then a second of extended protocol for `$1` with
//! logged parameters) and a few statements with literal customer keys;
//! its two logs are then parsed with the statement-shape cache and with
//! sqlparser for every statement, side by side, and by `vakt watch`.
//!
//! `--log DIR` takes logs recorded before (`DIR/postgresql.log`,
//! `DIR/postgresql.csv`, `DIR/directory.toml`); `--record-only` records and
//! stops (the test suite keeps its recording for this bench).
//!
//! Needs the PostgreSQL server binaries, pgbench and pgaudit (Debian:
//! `apt-get install postgresql postgresql-contrib postgresql-15-pgaudit`).
//! As root, PostgreSQL runs as `postgres` (or `nobody`).

use crate::fmt::thousands;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;
use vakt_event::{AccessEvent, Directory, Event, Origin};
use vakt_ingest::parsers::pgaudit::PgAudit;
use vakt_ingest::{Parser, ParserContext};

#[derive(clap::Args, Clone, Debug)]
pub struct PgauditBenchArgs {
    /// Read the logs recorded in this directory instead of recording.
    #[arg(long, value_name = "DIR")]
    pub log: Option<PathBuf>,
    /// Where to keep the recorded logs.
    #[arg(long, value_name = "DIR", default_value = "/tmp/vakt-bench/pgaudit")]
    pub keep: PathBuf,
    /// Seconds of `pgbench -S` (simple protocol).
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// pgbench clients.
    #[arg(long, default_value_t = 2)]
    pub clients: u32,
    /// Record the logs and stop.
    #[arg(long)]
    pub record_only: bool,
    /// Runs per figure; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
}

/// The directory the recorded logs are read with.
pub const DIRECTORY: &str = r#"[postgres]
key_columns = ["aid", "customer_id"]

[[postgres.table]]
name = "public.pgbench_accounts"
categories = ["balance"]

[[postgres.table]]
name = "public.customers"
categories = ["name"]
"#;

/// Statements with literal keys, beside pgbench's: lists, quotes, lines,
/// and what only sqlparser reads (comments, dollar quoting, E'').
const STATEMENTS: &[&str] = &[
    "CREATE TABLE customers(customer_id text PRIMARY KEY, name text)",
    "INSERT INTO customers VALUES ('C-1', 'Anna'), ('C-2', 'O''Brien, Erik'), ('C-3', 'Sara')",
    "SELECT name FROM customers WHERE customer_id = 'C-1'",
    "SELECT name FROM customers WHERE customer_id = 'C-2'",
    "SELECT name FROM customers WHERE customer_id IN ('C-1', 'C-2', 'C-3')",
    "SELECT name FROM customers WHERE customer_id IN ('C-3')",
    "SELECT name\n  FROM customers\n WHERE customer_id = 'C-3'\n   AND name <> 'x,\"y\"'",
    "SELECT abalance FROM pgbench_accounts WHERE aid IN (1, 2, 3)",
    "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 7",
    "DELETE FROM customers WHERE customer_id = 'C-9'",
    "SELECT name FROM customers WHERE customer_id = 'C-1' -- a comment",
    "SELECT name FROM customers WHERE customer_id = $$C-2$$",
    "SELECT name FROM customers WHERE customer_id = E'C-3'",
    "SELECT * FROM customers",
    "COPY (SELECT * FROM customers WHERE customer_id = 'C-1') TO STDOUT",
];

pub fn run(args: PgauditBenchArgs) -> Result<()> {
    let dir = match &args.log {
        Some(d) => d.clone(),
        None => {
            record(&args.keep, args.seconds, args.clients)?;
            args.keep.clone()
        }
    };
    if args.record_only {
        println!("pgaudit logs recorded in {}", dir.display());
        return Ok(());
    }
    let directory = Arc::new(
        Directory::from_toml(
            &std::fs::read_to_string(dir.join("directory.toml"))
                .unwrap_or_else(|_| DIRECTORY.to_owned()),
            "directory.toml",
        )
        .map_err(|e| anyhow!("{e}"))?,
    );
    println!(
        "vakt bench pgaudit: a log written by PostgreSQL + pgaudit under pgbench -S ({}), median of {} runs",
        dir.display(),
        args.runs.max(1)
    );
    println!(
        "  {:<8} {:>9} {:>8}  {:>16}  {:>16}  {:>6}  {:>16}",
        "log", "lines", "audits", "shape cache", "sqlparser each", "ratio", "vakt watch"
    );
    for file in ["postgresql.log", "postgresql.csv"] {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}; record it first", path.display()))?;
        let lines = text.lines().count() as f64;
        let (cached, ev_c) = median(args.runs, || parse(&text, &directory, true))?;
        let (plain, ev_p) = median(args.runs, || parse(&text, &directory, false))?;
        if ev_c != ev_p {
            bail!("{file}: the shape cache read other customers than sqlparser; this is a bug");
        }
        let watch = watch_rate(&dir, &path, lines)?;
        println!(
            "  {:<8} {:>9} {:>8}  {:>10} lines/s  {:>10} lines/s  {:>5.1}x  {:>10} lines/s",
            if file.ends_with(".csv") {
                "csvlog"
            } else {
                "stderr"
            },
            thousands(lines as u64),
            thousands(ev_c.len() as u64),
            thousands((lines / cached) as u64),
            thousands((lines / plain) as u64),
            plain / cached,
            thousands(watch as u64),
        );
    }
    Ok(())
}

/// The median seconds of `runs` runs of `f`, and the accesses it read.
fn median(
    runs: u32,
    mut f: impl FnMut() -> Result<(f64, Vec<AccessEvent>)>,
) -> Result<(f64, Vec<AccessEvent>)> {
    let mut secs = Vec::new();
    let mut events = Vec::new();
    for _ in 0..runs.max(1) {
        let (s, e) = f()?;
        secs.push(s);
        events = e;
    }
    secs.sort_by(f64::total_cmp);
    Ok((secs[secs.len() / 2], events))
}

/// Seconds to parse `text` line by line, and the accesses read.
pub fn parse(
    text: &str,
    directory: &Arc<Directory>,
    shape_cache: bool,
) -> Result<(f64, Vec<AccessEvent>)> {
    let ctx = ParserContext {
        directory: directory.clone(),
    };
    let mut p = PgAudit::with_shape_cache(&ctx, shape_cache);
    let origin = Origin::default();
    // Room for every event up front: the figure is the parser's, not the
    // growing of one vector of all the events of a log.
    let mut out = Vec::with_capacity(text.lines().count());
    let started = Instant::now();
    for line in text.lines() {
        p.parse_line(line, &origin, &mut out)
            .map_err(|e| anyhow!("{e}: {line}"))?;
    }
    p.finish(&mut out).map_err(|e| anyhow!("{e}"))?;
    let secs = started.elapsed().as_secs_f64();
    let events = out
        .into_iter()
        .filter_map(|e| match e {
            Event::Access(a) => Some(a),
            _ => None,
        })
        .collect();
    Ok((secs, events))
}

/// Lines per second of `vakt watch --format pgaudit` on `log`.
fn watch_rate(dir: &Path, log: &Path, lines: f64) -> Result<f64> {
    let stats =
        std::env::temp_dir().join(format!("vakt-bench-pgaudit-{}.json", std::process::id()));
    let directory =
        std::env::temp_dir().join(format!("vakt-bench-pgaudit-{}.toml", std::process::id()));
    let toml = std::fs::read_to_string(dir.join("directory.toml"))
        .unwrap_or_else(|_| DIRECTORY.to_owned());
    std::fs::write(&directory, toml)?;
    let status = Command::new(std::env::current_exe()?)
        .args(["watch", "--quiet", "--format", "pgaudit", "--directory"])
        .arg(&directory)
        .arg("--stats-json")
        .arg(&stats)
        .arg(log)
        .stdout(Stdio::null())
        .status()
        .context("cannot start `vakt watch`")?;
    if !status.success() {
        bail!("`vakt watch` failed on {}", log.display());
    }
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats)?)?;
    let _ = std::fs::remove_file(&stats);
    let _ = std::fs::remove_file(&directory);
    let (events, eps) = (
        s["events"].as_f64().unwrap_or(0.0),
        s["events_per_second"].as_f64().unwrap_or(0.0),
    );
    if events == 0.0 || eps == 0.0 {
        bail!("`vakt watch` read no events from {}", log.display());
    }
    Ok(lines / (events / eps))
}

// ------------------------------------------------------------ the recording

/// A client tool next to the server, else on PATH.
fn tool(bin: &Path, name: &str) -> PathBuf {
    let p = bin.join(name);
    if p.exists() {
        p
    } else {
        PathBuf::from(name)
    }
}

/// Records `postgresql.log`, `postgresql.csv` and `directory.toml` in `keep`.
pub fn record(keep: &Path, seconds: u32, clients: u32) -> Result<()> {
    let bin = vakt_pgtemp::server_bin().ok_or(vakt_pgtemp::Error::NoServer)?;
    let lib = bin.with_file_name("lib");
    if !lib.join("pgaudit.so").exists() {
        bail!(
            "pgaudit is not installed in {}; install it (apt-get install postgresql-15-pgaudit, for the version there)",
            lib.display()
        );
    }
    let settings = [
        ("shared_preload_libraries", "pgaudit"),
        ("pgaudit.log", "read,write"),
        ("pgaudit.log_parameter", "on"),
        ("pgaudit.log_relation", "on"),
        ("log_destination", "stderr,csvlog"),
        ("logging_collector", "on"),
        ("log_directory", "logs"),
        ("log_filename", "postgresql.log"),
        ("log_rotation_age", "0"),
        ("log_rotation_size", "0"),
        ("log_line_prefix", "%m [%p] %q%u@%d %h "),
        ("log_timezone", "UTC"),
    ];
    let mut cluster = vakt_pgtemp::TempCluster::start(&vakt_pgtemp::Options {
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    })
    .context("cannot start PostgreSQL with pgaudit")?;
    let logs = cluster.dir().join("data").join("logs");
    let psql = |sql: &str| cluster.psql(sql);
    let port_s = cluster.port().to_string();
    {
        let pgbench = |args: &[&str]| -> Result<()> {
            let out = Command::new(tool(&bin, "pgbench"))
                .env("PGPASSWORD", vakt_pgtemp::PASSWORD)
                .args(["-h", "127.0.0.1", "-p", &port_s, "-U", "postgres"])
                .args(args)
                .arg("postgres")
                .output()
                .context("cannot run pgbench; install postgresql-contrib")?;
            if !out.status.success() {
                bail!(
                    "pgbench {args:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Ok(())
        };
        pgbench(&["-i", "-q", "-s", "1"])?;
        let (secs, clients) = (seconds.max(1).to_string(), clients.max(1).to_string());
        pgbench(&["-S", "-n", "-T", &secs, "-c", &clients, "-j", &clients])?;
        pgbench(&["-S", "-n", "-M", "extended", "-T", "1"])?;
        for sql in STATEMENTS {
            psql(sql)?;
        }
    }
    std::fs::create_dir_all(keep).with_context(|| format!("cannot create {}", keep.display()))?;
    // Stopped first, so the logging collector has written every line.
    cluster.stop();
    for f in ["postgresql.log", "postgresql.csv"] {
        std::fs::copy(logs.join(f), keep.join(f))
            .with_context(|| format!("PostgreSQL wrote no {f}"))?;
    }
    drop(cluster);
    std::fs::write(keep.join("directory.toml"), DIRECTORY)?;
    Ok(())
}
