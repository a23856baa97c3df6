//! `vakt bench ledger`: ledger append rate, disk bytes per access and
//! scope query time over generated accesses.

use super::mib;
use crate::fmt::thousands;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

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
