//! `vakt bench store`: the ledger's entry engines side by side on the same
//! generated accesses: append rate, bytes per access on disk, and scope
//! look-up times, the figures the choice of engine rests on.
//!
//! The workload is `vakt bench ledger`'s, generated straight into interned
//! entries so only the engine is timed: accounts drawn uniformly, one
//! customer per access from a population of 2 million with a few heavy
//! readers (the cube of a uniform draw), a case id on nine accesses in ten,
//! a flush every 50,000 accesses as the ledger commits.
//!
//! The PostgreSQL engines (`pg-btree`, `pg-gin`) write to `--postgres`,
//! whose `vakt` schema is dropped first, or to a throwaway cluster the
//! bench starts on loopback (with `fsync` on, as the segments engine
//! syncs at each flush); each design gets a database of its own there.

use super::mib;
use crate::fmt::thousands;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, RngCore, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::Instant;
use vakt_ledger::store::postgres::{self, PgStore, Postings};
use vakt_ledger::store::{segments::Segments, sqlite::SqliteStore, EntryStore, StoredEntry};

#[derive(clap::Args, Clone, Debug)]
pub struct StoreBenchArgs {
    /// Accesses to append.
    #[arg(long, default_value_t = 2_000_000)]
    pub events: u64,
    /// Distinct accounts.
    #[arg(long, default_value_t = 10_000)]
    pub accounts: u32,
    /// Engines to compare, in order: segments, sqlite, pg-btree, pg-gin.
    #[arg(long, value_delimiter = ',', default_value = "segments,sqlite")]
    pub engines: Vec<String>,
    /// A PostgreSQL database for the pg-* engines; its `vakt` schema is
    /// dropped. By default the bench starts a throwaway cluster.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    #[arg(long, default_value = "/tmp/vakt-bench-store", value_name = "DIR")]
    pub dir: PathBuf,
}

/// Customers in the generated population.
const CUSTOMERS: f64 = 2_000_000.0;
/// Accesses per flush, as the ledger commits.
const FLUSH: u64 = 50_000;
/// Look-ups timed per kind.
const LOOKUPS: usize = 200;

/// A seeded stream, so every engine sees the same accesses.
type Stream = rand_chacha::ChaCha8Rng;

fn customer(s: &mut Stream) -> u64 {
    (CUSTOMERS * s.gen::<f64>().powi(3)) as u64
}

fn generated(seq: u64, accounts: u32, s: &mut Stream) -> StoredEntry {
    let account = s.next_u64() % accounts.max(1) as u64;
    let org = account / 50;
    StoredEntry {
        seq,
        // 100M accesses over a day: about a millisecond apart.
        t: 1_793_577_600_000 + (seq as i64 * 864) / 1000,
        account: account + 10,
        org: org + 1,
        action: 1,
        categories: 2,
        source: 3,
        ip: format!("10.{}.{}.{}", (org >> 8) as u8, org as u8, 2 + account % 50),
        records: 1,
        case_id: if s.next_u64() % 10 < 9 {
            format!("K-{:07}", s.next_u64() % 5_000_000)
        } else {
            String::new()
        },
        line: seq as i64,
        customers: vec![format!("C-{:07}", customer(s))],
        link: s.next_u64().to_le_bytes(),
    }
}

/// Where the PostgreSQL engines write: the user's database, or a cluster
/// started for the bench.
enum Pg {
    Given(String),
    Started(vakt_pgtemp::TempCluster),
}

impl Pg {
    fn start() -> Result<Pg> {
        let opts = vakt_pgtemp::Options {
            settings: vec![("fsync".into(), "on".into())],
            ..Default::default()
        };
        Ok(Pg::Started(vakt_pgtemp::TempCluster::start(&opts)?))
    }

    /// A database for `design`, empty.
    fn database(&self, design: Postings) -> Result<String> {
        let url = match self {
            Pg::Given(url) => url.clone(),
            Pg::Started(c) => {
                let db = format!("vakt_bench_{}", design.name());
                c.psql(&format!("DROP DATABASE IF EXISTS {db}"))?;
                c.psql(&format!("CREATE DATABASE {db}"))?;
                c.url(&db)
            }
        };
        postgres::reset(&url)?;
        Ok(url)
    }
}

fn open(engine: &str, dir: &Path, pg: Option<&Pg>) -> Result<Box<dyn EntryStore>> {
    std::fs::create_dir_all(dir)?;
    Ok(match engine {
        "segments" => Box::new(Segments::open(dir, None)?),
        "sqlite" => Box::new(SqliteStore::open(&dir.join("entries.db"))?),
        _ => match (engine.strip_prefix("pg-").and_then(Postings::parse), pg) {
            (Some(design), Some(pg)) => {
                Box::new(PgStore::open(&pg.database(design)?, 0, design, None)?)
            }
            _ => bail!("no engine {engine:?}: give segments, sqlite, pg-btree or pg-gin"),
        },
    })
}

struct Figures {
    append_per_s: f64,
    bytes_per_access: f64,
    account: (f64, f64),
    customer: (f64, f64),
    heaviest_ms: f64,
    heaviest_reads: usize,
}

fn run_engine(engine: &str, args: &StoreBenchArgs, pg: Option<&Pg>) -> Result<Figures> {
    let dir = args.dir.join(engine);
    let _ = std::fs::remove_dir_all(&dir);
    let mut store = open(engine, &dir, pg)?;
    let bar = ProgressBar::new(args.events);
    bar.set_style(
        ProgressStyle::with_template(&format!("{engine:>8} {{bar:30}} {{pos}}/{{len}}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut stream = Stream::seed_from_u64(7);
    let mut entry_time = std::time::Duration::ZERO;
    let mut batch = Vec::with_capacity(FLUSH as usize);
    let mut seq = 0;
    while seq < args.events {
        batch.clear();
        let n = FLUSH.min(args.events - seq);
        for _ in 0..n {
            seq += 1;
            batch.push(generated(seq, args.accounts, &mut stream));
        }
        let t = Instant::now();
        for e in batch.drain(..) {
            store.push(e)?;
        }
        store.flush()?;
        entry_time += t.elapsed();
        bar.set_position(seq);
    }
    bar.finish_and_clear();
    let disk = match pg {
        Some(_) if engine.starts_with("pg-") => store.disk_bytes()?,
        _ => super::dir_bytes(&dir),
    };
    let mut probe = Stream::seed_from_u64(11);
    let mut account_ms = Vec::with_capacity(LOOKUPS);
    for _ in 0..LOOKUPS {
        let a = probe.next_u64() % args.accounts.max(1) as u64 + 10;
        let t = Instant::now();
        let mut n = 0u64;
        store.account(a, i64::MIN, i64::MAX, &mut |_| {
            n += 1;
            Ok(())
        })?;
        account_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut customer_ms = Vec::with_capacity(LOOKUPS);
    for _ in 0..LOOKUPS {
        let c = format!("C-{:07}", probe.next_u64() % CUSTOMERS as u64);
        let t = Instant::now();
        store.customer(&c, &mut |_| Ok(()))?;
        customer_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let t = Instant::now();
    let mut heaviest_reads = 0;
    store.customer("C-0000000", &mut |_| {
        heaviest_reads += 1;
        Ok(())
    })?;
    let heaviest_ms = t.elapsed().as_secs_f64() * 1000.0;
    Ok(Figures {
        append_per_s: args.events as f64 / entry_time.as_secs_f64(),
        bytes_per_access: disk as f64 / args.events.max(1) as f64,
        account: super::ledger::quantiles(&mut account_ms),
        customer: super::ledger::quantiles(&mut customer_ms),
        heaviest_ms,
        heaviest_reads,
    })
    .inspect(|_| println!("  {engine}: {:.1} MiB on disk", mib(disk)))
}

pub fn run(args: StoreBenchArgs) -> Result<()> {
    println!(
        "vakt bench store: {} accesses, {} accounts, 2,000,000 customers, a flush every {}",
        thousands(args.events),
        thousands(args.accounts as u64),
        thousands(FLUSH)
    );
    let pg = match &args.postgres {
        Some(url) => Some(Pg::Given(url.clone())),
        None if args.engines.iter().any(|e| e.starts_with("pg-")) => {
            Some(Pg::start().context("starting PostgreSQL for the pg-* engines")?)
        }
        None => None,
    };
    let mut all = Vec::new();
    for engine in &args.engines {
        let f =
            run_engine(engine, &args, pg.as_ref()).with_context(|| format!("engine {engine}"))?;
        all.push((engine.clone(), f));
    }
    println!(
        "  {:<10} {:>14} {:>12} {:>22} {:>22} {:>18}",
        "engine",
        "append/s",
        "bytes/access",
        "account p50/p99 ms",
        "customer p50/p99 ms",
        "heaviest customer"
    );
    for (engine, f) in &all {
        println!(
            "  {:<10} {:>14} {:>12.1} {:>22} {:>22} {:>18}",
            engine,
            thousands(f.append_per_s as u64),
            f.bytes_per_access,
            format!("{:.2} / {:.2}", f.account.0, f.account.1),
            format!("{:.2} / {:.2}", f.customer.0, f.customer.1),
            format!(
                "{:.0} ms, {} reads",
                f.heaviest_ms,
                thousands(f.heaviest_reads as u64)
            ),
        );
    }
    if let [(a, fa), (b, fb), ..] = &all[..] {
        println!(
            "  {a} / {b}: append {:.1}x, disk {:.2}x",
            fa.append_per_s / fb.append_per_s,
            fa.bytes_per_access / fb.bytes_per_access
        );
    }
    Ok(())
}
