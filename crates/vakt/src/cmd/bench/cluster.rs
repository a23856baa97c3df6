//! `vakt bench cluster`: events/s end to end when `vakt serve` nodes read
//! one Kafka topic as a consumer group, with 1, 2, 3... nodes, beside
//! `vakt watch --data` on the same events as a file.
//!
//! The events are produced once, keyed by organisation (the partition key
//! `docs/SCALE.md` designs), to a topic of `--partitions` partitions on the
//! brokers given, or on a tansu broker (a Kafka-protocol broker, `cargo
//! install tansu --locked --features dynostore,postgres`) started here on
//! loopback with its memory engine. Not on librdkafka's mock cluster: a
//! consumer reading a topic of many batched messages from it was seen to
//! miss about a third of them (its offsets run on past the messages it
//! hands out), which a benchmark would take for speed.
//! Then for each node count a new group of that many `vakt serve` child
//! processes reads the topic from its start. The clock runs from their
//! start (group join included) until every partition's last message is
//! committed to a ledger; "steady" runs from the first commit (the
//! ledger commits every 50,000 accesses or every second).
//!
//! Each node keeps its own embedded ledger, or with `--store postgres` its
//! entries in one PostgreSQL database (`--postgres`, or a throwaway
//! cluster started here with `fsync` on), a chain per node; `vakt watch
//! --data` is then also timed on that store.

use super::generate;
use super::serve::{agent, get, serve};
use super::watch::watch_once;
use crate::fmt::thousands;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vakt_ledger::store::postgres::Postings;
use vakt_ledger::{DataDir, Ledger};
use vakt_server::child::Child;

#[derive(clap::Args, Clone, Debug)]
pub struct ClusterBenchArgs {
    /// Access events produced to the topic.
    #[arg(long, default_value_t = 500_000)]
    pub events: u64,
    /// Distinct accounts in the generated events (ten per organisation).
    #[arg(long, default_value_t = 10_000)]
    pub accounts: u32,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Node counts to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub nodes: Vec<usize>,
    /// Kafka brokers (`host:port,...`); without, a tansu broker is
    /// started on loopback for the run (VAKT_TANSU, cargo's bin folder or PATH).
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: Option<String>,
    /// Where the nodes keep their entries: embedded (each its own data
    /// directory) or postgres (one database, a chain per node).
    #[arg(long, default_value = "embedded", value_parser = ["embedded", "postgres"])]
    pub store: String,
    /// The PostgreSQL database for `--store postgres`; by default a
    /// throwaway cluster is started for the run. Its `vakt` schema is
    /// dropped before each run: every run starts from an empty store.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// Working directory: generated input and the nodes' data directories.
    #[arg(long, default_value = "/tmp/vakt-bench-cluster", value_name = "DIR")]
    pub dir: PathBuf,
}

/// Longest wait for a node to start, or for the nodes to commit anything more.
const WAIT: Duration = Duration::from_secs(120);

struct Measured {
    nodes: usize,
    total: Duration,
    steady: Duration,
    /// Accesses in all nodes' ledgers: more than the events when a
    /// partition moved between nodes as they joined.
    recorded: u64,
    taken: Taken,
}

pub fn run(args: ClusterBenchArgs) -> Result<()> {
    if args.partitions < 1 {
        bail!("--partitions must be at least 1");
    }
    if args.events == 0 {
        bail!("--events must be at least 1");
    }
    if args.nodes.is_empty() || args.nodes.contains(&0) {
        bail!("--nodes lists node counts of at least 1, e.g. --nodes 1,2,3");
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let (input, directory) = generate(&args.dir, args.events, args.accounts)?;
    // The median of three: these machines are shared.
    // Kept alive until the end, as the broker below.
    let _pg;
    let store = match (args.store.as_str(), &args.postgres) {
        ("postgres", Some(url)) => Some(url.clone()),
        ("postgres", None) => {
            let c = vakt_pgtemp::TempCluster::start(&vakt_pgtemp::Options {
                settings: vec![("fsync".into(), "on".into())],
                ..Default::default()
            })
            .context("starting PostgreSQL for --store postgres")?;
            c.psql("CREATE DATABASE vakt_bench_cluster")?;
            let url = c.url("vakt_bench_cluster");
            _pg = c;
            Some(url)
        }
        _ => None,
    };
    let data = args.dir.join("watch-data");
    let median = |store: Option<&str>| -> Result<f64> {
        let mut watched = (0..3)
            .map(|_| {
                watch_once(&args.dir, &input, Some(&directory), Some(&data), store)
                    .map(|r| r.events_per_second)
            })
            .collect::<Result<Vec<f64>>>()?;
        watched.sort_by(f64::total_cmp);
        Ok(watched[1])
    };
    let embedded = median(None)?;
    let baseline = match &store {
        Some(url) => median(Some(url))?,
        None => embedded,
    };

    let topic = format!("vakt-bench-{}", std::process::id());
    // Kept alive until the end: a broker started here stops with it.
    let _broker;
    let brokers = match &args.brokers {
        Some(b) => b.clone(),
        None => {
            let (child, address) = tansu(&args.dir)?;
            _broker = child;
            address
        }
    };
    create_topic(&brokers, &topic, args.partitions)?;
    let events = produce(&brokers, &topic, &input)?;
    let mut runs = Vec::new();
    for &n in &args.nodes {
        runs.push(measure(
            &args,
            &brokers,
            &topic,
            &directory,
            n,
            events,
            store.as_deref(),
        )?);
    }

    println!(
        "vakt bench cluster: {} JSON-line access events on a {}-partition topic keyed by organisation ({}), {}",
        thousands(events),
        args.partitions,
        if args.brokers.is_some() { brokers.as_str() } else { "tansu, memory engine" },
        if store.is_some() {
            "the entries of every node in one PostgreSQL database, a chain each"
        } else {
            "each node with its own embedded ledger"
        }
    );
    println!(
        "  vakt watch --data, the same events as a file: {} events/s (median of 3)",
        thousands(embedded as u64)
    );
    if store.is_some() {
        println!(
            "  vakt watch --data with the entries in PostgreSQL: {} events/s (median of 3; {:.2} of the embedded ledger); the ratios below are of this",
            thousands(baseline as u64),
            baseline / embedded
        );
    }
    let one = runs.first().map(|r| r.steady.as_secs_f64()).unwrap_or(1.0);
    for r in &runs {
        let total = events as f64 / r.total.as_secs_f64();
        let steady = events as f64 / r.steady.as_secs_f64();
        println!(
            "  {} node{}: {:>9} events/s with the group join ({:.1} s), {:>9} steady = {:.2} of watch, {:.2} of {} node(s); {} messages taken, {} accesses recorded, {} offsets skipped by the broker",
            r.nodes,
            if r.nodes == 1 { " " } else { "s" },
            thousands(total as u64),
            r.total.as_secs_f64(),
            thousands(steady as u64),
            steady / baseline,
            one / r.steady.as_secs_f64(),
            args.nodes[0],
            thousands(r.taken.messages),
            thousands(r.recorded),
            thousands(r.taken.skipped),
        );
    }
    if args.brokers.is_none() && runs.iter().any(|r| r.taken.skipped > 0) {
        println!("  (tansu 0.6 answers a fetch from an offset inside a batch of messages with the batches after it: a node resuming a partition there loses the batch's rest; a Kafka broker does not)");
    }
    Ok(())
}

/// A tansu broker on a free loopback port, stopped when the child is dropped.
fn tansu(dir: &Path) -> Result<(Child, String)> {
    let exe = std::env::var_os("VAKT_TANSU")
        .map(PathBuf::from)
        .or_else(|| {
            let home = std::env::var_os("CARGO_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
            Some(home.join("bin/tansu")).filter(|p| p.exists())
        })
        .unwrap_or_else(|| PathBuf::from("tansu"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let mut cmd = Command::new(&exe);
    cmd.args([
        "broker",
        "--listener-url",
        &url,
        "--advertised-listener-url",
        &url,
    ])
    .args(["--storage-engine", "memory://tansu/", "--silent"])
    .current_dir(dir)
    .stdin(Stdio::null())
    .stdout(Stdio::null());
    let mut child = Child::spawn("tansu", &mut cmd).map_err(|e| {
        anyhow::anyhow!(
            "{e}; give a Kafka broker with --brokers HOST:PORT, or install tansu with `cargo install tansu --locked --features dynostore,postgres` (or name it in VAKT_TANSU)"
        )
    })?;
    let address = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&address).is_err() {
        child.check()?;
        if Instant::now() > deadline {
            bail!("tansu did not listen on {address}: {}", child.stderr());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((child, address))
}

fn create_topic(brokers: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .with_context(|| format!("cannot reach the brokers at {brokers}"))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(admin.create_topics([&new], &options))
        .with_context(|| format!("cannot create topic {topic} at {brokers}"))?;
    for r in results {
        if let Err((name, code)) = r {
            bail!("cannot create topic {name} at {brokers}: {code}");
        }
    }
    Ok(())
}

/// Produces each line of `input` as one message keyed by its account's
/// organisation; returns how many.
fn produce(brokers: &str, topic: &str, input: &Path) -> Result<u64> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .with_context(|| format!("cannot reach the brokers at {brokers}"))?;
    let file = std::fs::File::open(input)?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(spinner("{spinner} producing {pos} messages ({per_sec})"));
    let mut n = 0u64;
    for line in std::io::BufReader::with_capacity(1 << 20, file).lines() {
        let line = line?;
        let key = organisation(&line);
        let mut record = BaseRecord::to(topic).key(&key).payload(&line);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, r))
                    if e.rdkafka_error_code()
                        == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                {
                    producer.poll(Duration::from_millis(10));
                    record = r;
                }
                Err((e, _)) => bail!("producing to {topic}: {e}"),
            }
        }
        n += 1;
        if n.is_multiple_of(10_000) {
            bar.set_position(n);
            producer.poll(Duration::ZERO);
        }
    }
    producer
        .flush(WAIT)
        .with_context(|| format!("flushing to {topic}"))?;
    bar.finish_and_clear();
    Ok(n)
}

/// The partition key: the organisation of the generated account
/// (`"user":"acctNNNNNN"`, ten accounts per organisation).
fn organisation(line: &str) -> String {
    let account = line
        .split("\"acct")
        .nth(1)
        .and_then(|r| r.get(..6))
        .and_then(|d| d.parse::<u32>().ok())
        .unwrap_or(0);
    format!("org{}", account / vakt_sim::bench::PER_ORG)
}

fn measure(
    args: &ClusterBenchArgs,
    brokers: &str,
    topic: &str,
    directory: &Path,
    nodes: usize,
    events: u64,
    store: Option<&str>,
) -> Result<Measured> {
    let group = format!("{topic}-{nodes}");
    // A run of its own: the store's offsets of an earlier run would say
    // every message is recorded already, and the nodes would record none.
    if let Some(url) = store {
        vakt_ledger::store::postgres::reset(url)?;
    }
    // tansu 0.6 holds a fetch for its longest wait even when messages are
    // waiting (librdkafka's default is 500 ms), which a Kafka broker does
    // not: without this the figures would be tansu's.
    let options = if args.brokers.is_none() {
        "\n[kafka.options]\n\"fetch.wait.max.ms\" = \"10\"\n"
    } else {
        ""
    };
    let mut dirs = Vec::new();
    for i in 0..nodes {
        let d = args.dir.join(format!("node-{nodes}-{i}"));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d)?;
        let settings = d.join("serve.toml");
        std::fs::write(
            &settings,
            format!(
                "[kafka]\nbrokers = \"{brokers}\"\ngroup = \"{group}\"\n\n[[kafka.topic]]\nname = \"{topic}\"\nformat = \"jsonl\"\n{options}"
            ),
        )?;
        if let Some(url) = store {
            let data = DataDir {
                path: d.join("data"),
            };
            vakt_ledger::ledger::use_postgres(&data, url, Postings::Btree)?;
        }
        dirs.push(d);
    }
    let started = Instant::now();
    let mut children: Vec<Child> = Vec::new();
    let mut urls = Vec::new();
    for d in &dirs {
        let settings = d.join("serve.toml");
        let settings = settings.to_string_lossy();
        let (child, url) = serve(
            &d.join("data"),
            Some(directory),
            &["--config", settings.as_ref(), "--open-metrics"],
        )?;
        children.push(child);
        urls.push(url);
    }
    let http = agent();
    let bar = ProgressBar::new(events);
    bar.set_style(spinner(&format!(
        "{nodes} node(s) {{bar:30}} {{pos}}/{{len}} events committed ({{per_sec}})"
    )));
    let sources: Vec<String> = (0..args.partitions)
        .map(|p| format!("kafka:{topic}:{p}"))
        .collect();
    let (mut done, mut moved, mut first) = (0, Instant::now(), None);
    let mut ledgers: Vec<Option<Ledger>> = dirs.iter().map(|_| None).collect();
    let mut recorded = 0;
    while done < events {
        std::thread::sleep(Duration::from_millis(20));
        if first.is_none() && taken(&http, &urls)?.messages > 0 {
            first = Some(Instant::now());
        }
        // A partition's committed messages: the most any node's ledger holds.
        let mut most = vec![0u64; sources.len()];
        recorded = 0;
        for (d, ledger) in dirs.iter().zip(&mut ledgers) {
            let data = DataDir {
                path: d.join("data"),
            };
            if ledger.is_none() && data.db_path().exists() {
                *ledger = Some(Ledger::open_read(&data)?);
            }
            let Some(ledger) = ledger else { continue };
            for (m, s) in most.iter_mut().zip(&sources) {
                *m = (*m).max(ledger.progress(s)?);
            }
            recorded += ledger.len().max(0) as u64;
        }
        let now: u64 = most.iter().sum();
        if now > done {
            (done, moved) = (now, Instant::now());
            bar.set_position(done);
        } else if moved.elapsed() > WAIT {
            bail!("the nodes committed nothing for {WAIT:?}, at {done} of {events} events");
        }
        for c in &mut children {
            c.check()?;
        }
    }
    let total = started.elapsed();
    let steady = first.map(|f| f.elapsed()).unwrap_or(total);
    bar.finish_and_clear();
    let seen = taken(&http, &urls)?;
    for c in children {
        c.stop(WAIT)?;
    }
    Ok(Measured {
        nodes,
        total,
        steady,
        recorded,
        taken: seen,
    })
}

/// What all nodes' `/metrics` say.
#[derive(Default)]
struct Taken {
    messages: u64,
    events: u64,
    /// Offsets the broker went past without a message.
    skipped: u64,
}

/// Kafka messages taken, events received and offsets skipped by all nodes.
fn taken(http: &ureq::Agent, urls: &[String]) -> Result<Taken> {
    let mut t = Taken::default();
    for url in urls {
        let body = get(http, url, "", "/metrics")?;
        let text = String::from_utf8_lossy(&body);
        let value = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
                .unwrap_or(0.0) as u64
        };
        t.messages += value("vakt_kafka_messages_total");
        t.events += value("vakt_events_received_total");
        t.skipped += value("vakt_kafka_skipped_total");
    }
    Ok(t)
}

fn spinner(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}
