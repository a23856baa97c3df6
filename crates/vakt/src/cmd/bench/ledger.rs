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
    /// CPU seconds the appending thread spent in those: on a shared
    /// machine, what the work costs rather than what the neighbours left.
    pub(crate) append_cpu_secs: f64,
}

/// CPU time of the calling thread so far.
fn thread_cpu() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
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
    let cpu = thread_cpu();
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
        cpu: thread_cpu() - cpu,
        bar: &bar,
        error: None,
    };
    let generated = vakt_sim::bench_events(events, accounts, seed, &mut sink);
    if let Some(e) = sink.error.take() {
        return Err(e);
    }
    generated.context("cannot generate the bench events")?;
    sink.append_chunk()?;
    let (t, cpu) = (std::time::Instant::now(), thread_cpu());
    sink.ledger.close()?;
    bar.finish_and_clear();
    Ok(Appended {
        events: sink.appended,
        append_secs: (sink.spent + t.elapsed()).as_secs_f64(),
        append_cpu_secs: (sink.cpu + (thread_cpu() - cpu)).as_secs_f64(),
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
    cpu: std::time::Duration,
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
        let (t, cpu) = (std::time::Instant::now(), thread_cpu());
        for e in self.chunk.drain(..) {
            self.ledger.append(&e)?;
            self.appended += 1;
        }
        self.spent += t.elapsed();
        self.cpu += thread_cpu() - cpu;
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

/// Appends generated accesses to a fresh ledger, then times scope queries
/// and a full verify.
pub fn ledger(args: LedgerBenchArgs) -> Result<()> {
    use vakt_ledger::{DataDir, Ledger};
    let _ = std::fs::remove_dir_all(&args.dir);
    let dir = DataDir {
        path: args.dir.clone(),
    };
    let appended = append_generated(&dir, args.events, args.accounts, 3)?;
    let append_secs = appended.append_secs;
    let disk = super::dir_bytes(&args.dir);
    let l = Ledger::open_read(&dir)?;
    let timed = |f: &mut dyn FnMut() -> Result<usize>| -> Result<(f64, usize)> {
        let t = std::time::Instant::now();
        let n = f()?;
        Ok((t.elapsed().as_secs_f64() * 1000.0, n))
    };
    let (mut account_ms, mut customers) = (Vec::new(), 0);
    for k in 0..SAMPLES {
        let account = format!("acct{:06}", (k as u64 * 7919) % args.accounts.max(1) as u64);
        let (ms, n) = timed(&mut || {
            Ok(l.scope_account(
                &account,
                vakt_event::Timestamp(i64::MIN),
                vakt_event::Timestamp(i64::MAX),
                None,
            )?
            .customers
            .len())
        })?;
        account_ms.push(ms);
        customers += n;
    }
    let (mut customer_ms, mut reads) = (Vec::new(), 0);
    // The generator's customers: C-0000000 to C-1999999. The most read
    // one, C-0000000, is timed on its own below, not in the sample.
    for k in 1..=SAMPLES {
        let customer = format!("C-{:07}", (k as u64 * 104_729) % 2_000_000);
        let (ms, n) = timed(&mut || Ok(l.scope_customer(&customer)?.len()))?;
        customer_ms.push(ms);
        reads += n;
    }
    let (heaviest_ms, heaviest) = timed(&mut || Ok(l.scope_customer("C-0000000")?.len()))?;
    drop(l);
    let t = std::time::Instant::now();
    let v = vakt_ledger::verify::verify(&dir)?;
    let verify_secs = t.elapsed().as_secs_f64();
    if let Some(p) = &v.problem {
        anyhow::bail!("the bench ledger does not verify: {p}");
    }
    let n = appended.events as f64;
    println!(
        "vakt bench ledger: {} accesses, {} accounts, BLAKE3 chain and signed checkpoints",
        thousands(appended.events),
        thousands(args.accounts as u64)
    );
    println!(
        "  append: {:.1} s = {} accesses/s (one thread, segments engine); {:.1} s of CPU = {} accesses per CPU second",
        append_secs,
        thousands((n / append_secs) as u64),
        appended.append_cpu_secs,
        thousands((n / appended.append_cpu_secs.max(1e-9)) as u64)
    );
    println!(
        "  disk: {:.1} MiB = {:.1} bytes per access (entries, customer and account indexes, names and customer ids)",
        mib(disk),
        disk as f64 / n
    );
    let (a50, a99) = quantiles(&mut account_ms);
    println!(
        "  scope --account: p50 {a50:.1} ms, p99 {a99:.1} ms over {SAMPLES} accounts ({} customers each on average)",
        customers / SAMPLES
    );
    let (c50, c99) = quantiles(&mut customer_ms);
    println!(
        "  scope --customer: p50 {c50:.1} ms, p99 {c99:.1} ms over {SAMPLES} customers ({:.1} accesses each on average); the most read one ({} accesses) {heaviest_ms:.0} ms",
        reads as f64 / SAMPLES as f64,
        thousands(heaviest as u64)
    );
    println!(
        "  verify: {:.1} s = {} entries/s (at most {} names held)",
        verify_secs,
        thousands((v.entries as f64 / verify_secs) as u64),
        thousands(v.names_cached as u64)
    );
    Ok(())
}

/// Scope queries timed per kind.
const SAMPLES: usize = 101;

/// p50 and p99 of `times`.
pub(crate) fn quantiles(times: &mut [f64]) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}
