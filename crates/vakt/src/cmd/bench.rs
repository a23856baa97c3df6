//! `vakt bench`: throughput and memory of `vakt watch`, measured on
//! generated events in a child process so the figures are the watcher's
//! own (single thread, every detector on).

use crate::fmt::thousands;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(clap::Subcommand, Clone, Debug)]
pub enum Bench {
    /// Throughput and memory of `vakt watch` on generated JSON lines.
    Watch(BenchArgs),
    /// Detection quality over several simulated months (seeds).
    Detection(crate::cmd::detection::DetectionArgs),
    /// Ledger append rate, scope query time and disk bytes per event.
    Ledger(LedgerBenchArgs),
    /// `vakt serve` over HTTP: ingest rate, and read latency over a big ledger.
    Serve(crate::cmd::bench_serve::ServeBenchArgs),
}

#[derive(clap::Args, Clone, Debug)]
pub struct LedgerBenchArgs {
    /// Accesses to append.
    #[arg(long, default_value_t = 2_000_000)]
    pub events: u64,
    /// Distinct accounts.
    #[arg(long, default_value_t = 10_000)]
    pub accounts: u32,
    #[arg(long, default_value = "/tmp/vakt-bench-ledger", value_name = "DIR")]
    pub dir: PathBuf,
}

/// Accesses parsed and appended at a time: generation streams into the
/// ledger, so memory stays bounded whatever the number of accesses.
const CHUNK: usize = 65_536;

/// What [`append_generated`] did.
pub(crate) struct Appended {
    pub(crate) events: u64,
    /// Seconds in the ledger (open, append, commits, close), without
    /// generating and parsing the events.
    pub(crate) append_secs: f64,
}

/// Appends `events` generated accesses (`vakt_sim::bench_events` with
/// `seed`) for `accounts` accounts to the ledger in `dir`, with a progress
/// bar.
pub(crate) fn append_generated(
    dir: &vakt_ledger::DataDir,
    events: u64,
    accounts: u32,
    seed: u64,
) -> Result<Appended> {
    let bar = ProgressBar::new(events);
    bar.set_style(
        ProgressStyle::with_template("appending {bar:30} {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let t = std::time::Instant::now();
    let ledger = vakt_ledger::Ledger::open(dir)
        .with_context(|| format!("cannot open the ledger in {}", dir.path.display()))?;
    let mut sink = ChunkSink {
        ledger,
        origin: vakt_event::Origin::new("bench.jsonl".into(), 0),
        partial: Vec::new(),
        chunk: Vec::with_capacity(CHUNK),
        lines: 0,
        appended: 0,
        spent: t.elapsed(),
        bar: &bar,
        error: None,
    };
    let generated = vakt_sim::bench_events(events, accounts, seed, &mut sink);
    if let Some(e) = sink.error.take() {
        return Err(e);
    }
    generated.context("cannot generate the bench events")?;
    sink.append_chunk()?;
    let t = std::time::Instant::now();
    sink.ledger.close()?;
    bar.finish_and_clear();
    Ok(Appended {
        events: sink.appended,
        append_secs: (sink.spent + t.elapsed()).as_secs_f64(),
    })
}

/// Takes generated JSON lines as they are written and appends them to
/// the ledger a chunk at a time.
struct ChunkSink<'a> {
    ledger: vakt_ledger::Ledger,
    origin: vakt_event::Origin,
    /// The line being written, until its line break.
    partial: Vec<u8>,
    chunk: Vec<vakt_event::AccessEvent>,
    lines: u64,
    appended: u64,
    spent: std::time::Duration,
    bar: &'a ProgressBar,
    /// The cause when a write fails (io::Error would lose the context).
    error: Option<anyhow::Error>,
}

impl ChunkSink<'_> {
    fn line(&mut self) -> Result<()> {
        let text = std::str::from_utf8(&self.partial).context("a generated line is not UTF-8")?;
        if !text.is_empty() {
            self.lines += 1;
            if let vakt_event::Event::Access(mut a) =
                vakt_ingest::parsers::jsonl::parse_event(text, &self.origin)
                    .with_context(|| format!("generated line {}", self.lines))?
            {
                a.origin.line = self.lines;
                self.chunk.push(a);
            }
        }
        self.partial.clear();
        if self.chunk.len() >= CHUNK {
            self.append_chunk()?;
        }
        Ok(())
    }

    fn append_chunk(&mut self) -> Result<()> {
        let t = std::time::Instant::now();
        for e in self.chunk.drain(..) {
            self.ledger.append(&e)?;
            self.appended += 1;
        }
        self.spent += t.elapsed();
        self.bar.set_position(self.appended);
        Ok(())
    }
}

impl std::io::Write for ChunkSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while let Some(p) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..p]);
            rest = &rest[p + 1..];
            if let Err(e) = self.line() {
                let io = std::io::Error::other(format!("{e:#}"));
                self.error = Some(e);
                return Err(io);
            }
        }
        self.partial.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Appends generated accesses to a fresh ledger, then times scope queries.
pub fn ledger(args: LedgerBenchArgs) -> Result<()> {
    use vakt_ledger::{DataDir, Ledger};
    let _ = std::fs::remove_dir_all(&args.dir);
    let dir = DataDir {
        path: args.dir.clone(),
    };
    let appended = append_generated(&dir, args.events, args.accounts, 3)?;
    let append_secs = appended.append_secs;
    let disk: u64 = std::fs::read_dir(&args.dir)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let l = Ledger::open_read(&dir)?;
    let mut times = Vec::new();
    let mut customers = 0;
    for k in 0..21u32 {
        let account = format!("acct{:06}", (k * 7919) % args.accounts);
        let t = std::time::Instant::now();
        let s = l.scope_account(
            &account,
            vakt_event::Timestamp(i64::MIN),
            vakt_event::Timestamp(i64::MAX),
            None,
        )?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        customers += s.customers.len();
    }
    times.sort_by(f64::total_cmp);
    let t = std::time::Instant::now();
    let who = l.scope_customer("C-0000001")?;
    let customer_ms = t.elapsed().as_secs_f64() * 1000.0;
    let n = appended.events as f64;
    println!(
        "vakt bench ledger: {} accesses, {} accounts, BLAKE3 chain and signed checkpoints",
        thousands(appended.events),
        thousands(args.accounts as u64)
    );
    println!(
        "  append: {:.1} s = {} accesses/s (one thread, SQLite in WAL mode)",
        append_secs,
        thousands((n / append_secs) as u64)
    );
    println!(
        "  disk: {:.1} MiB = {:.0} bytes per access (entries, customer index, account index)",
        mib(disk),
        disk as f64 / n
    );
    println!(
        "  scope --account: median {:.1} ms, max {:.1} ms over 21 accounts ({} customers each on average)",
        times[10],
        times[20],
        customers / 21
    );
    println!(
        "  scope --customer: {:.1} ms ({} accesses to the most read customer)",
        customer_ms,
        who.len()
    );
    Ok(())
}

pub fn dispatch(b: Bench) -> Result<()> {
    match b {
        Bench::Watch(a) => run(a),
        Bench::Detection(a) => crate::cmd::detection::run(a),
        Bench::Ledger(a) => ledger(a),
        Bench::Serve(a) => crate::cmd::bench_serve::run(a),
    }
}

#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Events per run.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Distinct accounts in the measured run.
    #[arg(long, default_value_t = 100_000)]
    pub accounts: u32,
    /// Runs per configuration; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Working directory for the generated inputs.
    #[arg(long, default_value = "/tmp/vakt-bench", value_name = "DIR")]
    pub dir: PathBuf,
}

struct Run {
    events_per_second: f64,
    peak_rss: u64,
    events: u64,
}

pub fn run(args: BenchArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    // Memory per account is the difference between many and few accounts
    // over the same number of events: fixed costs cancel out. With the
    // directory, each account's directory entry is counted too.
    let few = (args.accounts / 100).max(100);
    let median = |accounts: u32, with_directory: bool| -> Result<Run> {
        let (events, directory) = generate(&args.dir, args.events, accounts)?;
        let mut runs = Vec::new();
        for _ in 0..args.runs.max(1) {
            runs.push(watch_once(
                &args.dir,
                &events,
                with_directory.then_some(directory.as_path()),
            )?);
        }
        runs.sort_by(|a, b| a.events_per_second.total_cmp(&b.events_per_second));
        Ok(runs.swap_remove(runs.len() / 2))
    };
    let many = args.accounts;
    let (m, f) = (median(many, true)?, median(few, true)?);
    let (m_bare, f_bare) = (median(many, false)?, median(few, false)?);
    println!("vakt bench watch: {} JSON-line access events, one thread, every detector on (median of {} runs)", thousands(m.events), args.runs.max(1));
    let line = |accounts: u32, dir: bool, r: &Run| {
        println!(
            "  {:>9} accounts, {:<17} {:>10} events/s, peak memory {:>7.1} MiB",
            thousands(accounts as u64),
            if dir {
                "with directory:"
            } else {
                "without directory:"
            },
            thousands(r.events_per_second as u64),
            mib(r.peak_rss)
        )
    };
    line(many, true, &m);
    line(few, true, &f);
    line(many, false, &m_bare);
    line(few, false, &f_bare);
    let per = |a: &Run, b: &Run| {
        a.peak_rss.saturating_sub(b.peak_rss) as f64 / (many - few).max(1) as f64
    };
    println!(
        "  peak memory per tracked account: {:.0} bytes of detector and enrichment state, {:.0} bytes with its directory entry",
        per(&m_bare, &f_bare),
        per(&m, &f)
    );
    Ok(())
}

pub(crate) fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Writes (once) the events file and the directory for `accounts`.
pub(crate) fn generate(dir: &Path, events: u64, accounts: u32) -> Result<(PathBuf, PathBuf)> {
    let path = dir.join(format!("bench-{events}-{accounts}.jsonl"));
    let directory = dir.join(format!("bench-{accounts}.toml"));
    std::fs::write(&directory, vakt_sim::bench_directory(accounts))?;
    if !path.exists() {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(format!(
            "generating {} events for {} accounts",
            thousands(events),
            thousands(accounts as u64)
        ));
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        let tmp = path.with_extension("tmp");
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        vakt_sim::bench_events(events, accounts, 1, &mut w)?;
        std::io::Write::flush(&mut w)?;
        drop(w);
        std::fs::rename(&tmp, &path)?;
        bar.finish_and_clear();
    }
    Ok((path, directory))
}

fn watch_once(dir: &Path, events: &Path, directory: Option<&Path>) -> Result<Run> {
    let stats = dir.join("stats.json");
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["watch", "--quiet", "--format", "jsonl"]);
    if let Some(d) = directory {
        cmd.arg("--directory").arg(d);
    }
    let status = cmd
        .arg("--stats-json")
        .arg(&stats)
        .arg(events)
        .stdout(Stdio::null())
        .status()
        .context("cannot start `vakt watch`")?;
    if !status.success() {
        bail!("`vakt watch` failed on {}", events.display());
    }
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats)?)?;
    Ok(Run {
        events_per_second: s["events_per_second"].as_f64().unwrap_or(0.0),
        peak_rss: s["peak_rss_bytes"].as_u64().unwrap_or(0),
        events: s["events"].as_u64().unwrap_or(0),
    })
}
