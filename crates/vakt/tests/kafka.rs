//! `vakt serve` reading a Kafka topic as a consumer-group member.
//!
//! Two brokers, each for what it does well:
//! - tansu, a Kafka-protocol broker (`cargo install tansu --locked
//!   --features dynostore,postgres`; `scripts/test` installs it), on its
//!   memory engine on a free port of 127.0.0.1: end to end, every
//!   partition reaches the ledger, a malformed message is kept with its
//!   partition and offset, and a stop and start records nothing twice.
//! - librdkafka's mock cluster (in this process, on loopback) for the
//!   fault: a serve killed with SIGKILL while messages keep coming. Its
//!   group coordinator expires the dead member after the session timeout
//!   as Kafka does; tansu 0.6 was seen to leave a restarted member
//!   without partitions for over a minute after such a kill.

mod support;

use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{free_port, vakt, Proc};

const TOPIC: &str = "access";
const DEAD_LETTERS: &str = "access.rejects";

fn tansu() -> PathBuf {
    if let Some(p) = std::env::var_os("VAKT_TANSU") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    let installed = home.join("bin/tansu");
    if installed.exists() {
        return installed;
    }
    panic!(
        "no tansu broker: install it with `cargo install tansu --locked --features dynostore,postgres` (scripts/test does), or name it in VAKT_TANSU"
    );
}

/// A tansu broker on a free loopback port with one topic of 3 partitions
/// and a dead-letter topic.
fn broker() -> (Proc, String) {
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(tansu())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/", "--silent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting tansu");
    let proc = Proc(child);
    let address = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(
            Instant::now() < deadline,
            "tansu did not listen on {address}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for (topic, partitions) in [(TOPIC, "3"), (DEAD_LETTERS, "1")] {
        let out = Command::new(tansu())
            .args([
                "topic",
                "create",
                topic,
                "--partitions",
                partitions,
                "--broker",
                &url,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tansu topic create {topic}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (proc, address)
}

fn producer(brokers: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

/// Access `i`: user `k.user<i % 40>` reads customer `C-<i>`, a customer of its own.
fn access(i: u32) -> String {
    let (min, sec) = (i / 60 % 60, i % 60);
    format!(
        "{{\"@timestamp\":\"2026-11-02T09:{min:02}:{sec:02}Z\",\"user.name\":\"k.user{}\",\"event.action\":\"lookup\",\"customer.ids\":[\"C-{i}\"]}}",
        i % 40
    )
}

fn produce(p: &BaseProducer, from: u32, to: u32) {
    for i in from..to {
        let key = format!("k.user{}", i % 40);
        let payload = access(i);
        send(p, BaseRecord::to(TOPIC).key(&key).payload(&payload));
    }
    p.flush(Duration::from_secs(20)).expect("flushing to tansu");
}

/// Message `i` of a stream that raises alerts, a quarter of a second of
/// event time apart, keyed by its organisation (the detection domain
/// docs/SCALE.md designs: peer groups are drawn within one): mostly
/// `k.user<i % 40>` reading customer `C-<i>`, but every 4th a failed login
/// of one of four guessers `k.guess<n>` in turn, each failing every 4 s
/// throughout. Each guesser's 20th failure in 10 minutes opens its
/// `login_failures` incident and its 100th (1,600 messages in) escalates
/// it; the incident stays open to the end. A node that took a guesser's
/// partition without its history would open a second incident, with
/// another id.
fn stream_message(i: u32) -> (String, String) {
    let ms = i * 250;
    let t = 8 * 3600 + ms / 1000;
    let at = format!(
        "2026-11-02T{:02}:{:02}:{:02}.{:03}Z",
        t / 3600,
        t / 60 % 60,
        t % 60,
        ms % 1000
    );
    if i % 4 == 1 {
        let n = i / 4 % 4;
        let org = format!("org{}", n % 3);
        let line = format!(
            "{{\"@timestamp\":\"{at}\",\"user.name\":\"k.guess{n}\",\"organization.id\":\"{org}\",\"event.action\":\"login\",\"event.outcome\":\"failure\"}}"
        );
        return (org, line);
    }
    let n = i % 40;
    let org = format!("org{}", n % 3);
    let line = format!(
        "{{\"@timestamp\":\"{at}\",\"user.name\":\"k.user{n}\",\"organization.id\":\"{org}\",\"event.action\":\"lookup\",\"customer.ids\":[\"C-{i}\"]}}"
    );
    (org, line)
}

fn produce_stream(p: &BaseProducer, from: u32, to: u32) {
    for i in from..to {
        let (key, payload) = stream_message(i);
        send(p, BaseRecord::to(TOPIC).key(&key).payload(&payload));
    }
    p.flush(Duration::from_secs(20))
        .expect("flushing the stream");
}

/// Sends one record, waiting for room in the producer's queue.
fn send(p: &BaseProducer, mut record: BaseRecord<'_, String, String>) {
    loop {
        match p.send(record) {
            Ok(()) => break,
            // The local queue is full: let deliveries drain, then retry.
            Err((_, r)) => {
                record = r;
                p.poll(Duration::from_millis(10));
            }
        }
    }
    p.poll(Duration::ZERO);
}

/// Each incident a data directory's ledger lists, as its latest line says.
fn incidents(data: &Path) -> std::collections::BTreeSet<Incident> {
    let ledger = vakt_ledger::Ledger::open_read(&vakt_ledger::DataDir {
        path: data.to_owned(),
    })
    .unwrap();
    let lines = ledger
        .alerts(&vakt_ledger::alerts::AlertFilter {
            limit: 100_000,
            ..Default::default()
        })
        .unwrap();
    lines.iter().map(|l| incident_of(l)).collect()
}

/// An incident as one line of it says: id, rule, actor and severity.
fn incident_of(line: &str) -> Incident {
    let a: vakt_event::Alert = serde_json::from_str(line).unwrap();
    (
        a.id,
        a.rule,
        a.actor.label(),
        a.severity.as_str().to_owned(),
    )
}

type Incident = (String, String, String, String);

fn settings(dir: &Path, brokers: &str) -> PathBuf {
    settings_with(dir, brokers, "")
}

/// With `extra` lines in the `[kafka]` table.
fn settings_with(dir: &Path, brokers: &str, extra: &str) -> PathBuf {
    let path = dir.join("serve.toml");
    std::fs::write(
        &path,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\n{extra}group = \"vakt-test\"\n\n[[kafka.topic]]\nname = \"{TOPIC}\"\nformat = \"jsonl\"\n\n[kafka.options]\n\"session.timeout.ms\" = \"6000\"\n\"statistics.interval.ms\" = \"1000\"\n"
        ),
    )
    .unwrap();
    path
}

fn serve(data: &Path, settings: &Path) -> support::Child {
    serve_at(data, settings).0
}

/// Also its URL; `/metrics` needs no token.
fn serve_at(data: &Path, settings: &Path) -> (support::Child, String) {
    let mut cmd = vakt();
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--open-metrics",
        "--data",
    ])
    .arg(data)
    .arg("--config")
    .arg(settings)
    .stdout(Stdio::null());
    support::start(&mut cmd)
}

fn metrics(url: &str) -> String {
    ureq::get(format!("{url}/metrics"))
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
        .unwrap_or_default()
}

fn recorded(data: &Path) -> i64 {
    vakt_ledger::Ledger::open_read(&vakt_ledger::DataDir {
        path: data.to_owned(),
    })
    .map(|l| l.len())
    .unwrap_or(0)
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_topic_reaches_the_ledger_once_across_a_restart_and_its_bad_messages_are_kept() {
    let (_broker, brokers) = broker();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let settings = settings_with(
        tmp.path(),
        &brokers,
        &format!("dead_letter_topic = \"{DEAD_LETTERS}\"\n"),
    );
    let p = producer(&brokers);

    // Events on every partition, and one message that is no event, before vakt starts.
    produce(&p, 0, 1000);
    p.send(
        BaseRecord::to(TOPIC)
            .key("x")
            .partition(1)
            .payload("this is not an event"),
    )
    .unwrap();
    p.flush(Duration::from_secs(20)).unwrap();

    let (s, url) = serve_at(&data, &settings);
    wait_for("the first accesses", support::WAIT, || {
        recorded(&data) >= 1000
    });
    produce(&p, 1000, 1200);
    wait_for("accesses sent while it runs", support::WAIT, || {
        recorded(&data) >= 1200
    });
    // Every partition caught up, as /metrics says.
    wait_for("no lag on any partition", support::WAIT, || {
        let m = metrics(&url);
        (0..3).all(|p| {
            m.contains(&format!(
                "vakt_kafka_lag{{topic=\"access\",partition=\"{p}\"}} 0\n"
            ))
        })
    });
    let m = metrics(&url);
    assert!(m.contains("vakt_kafka_messages_total 1201\n"), "{m}");
    assert!(m.contains("vakt_events_rejected_total 1\n"), "{m}");
    s.stop(support::WAIT).unwrap();

    // Stopped and started again: it goes on where the ledger ends.
    produce(&p, 1200, 1500);
    let s = serve(&data, &settings);
    wait_for("accesses sent while it was down", support::WAIT, || {
        recorded(&data) >= 1500
    });
    std::thread::sleep(Duration::from_secs(1));
    s.stop(support::WAIT).unwrap();
    assert_eq!(recorded(&data), 1500);
    verify(&data);
    for c in ["C-0", "C-1199", "C-1499"] {
        assert_eq!(accesses_of(&data, c), 1, "{c}");
    }

    let dead = std::fs::read_to_string(data.join(vakt_server::KAFKA_REJECTS_FILE)).unwrap();
    assert_eq!(dead.lines().count(), 1, "{dead}");
    assert!(
        dead.contains("\"source\":\"kafka:access:1\"") && dead.contains("this is not an event"),
        "{dead}"
    );
    // And once in the dead-letter topic, with where it came from.
    let letters = dead_letters(&brokers);
    assert_eq!(letters.len(), 1, "{letters:?}");
    let (payload, headers) = &letters[0];
    assert_eq!(payload, "this is not an event");
    assert_eq!(
        headers.get("vakt.source").map(String::as_str),
        Some("kafka:access:1")
    );
    assert!(headers.contains_key("vakt.offset") && headers.contains_key("vakt.error"));
}

/// The dead-letter topic's messages: payload and headers.
fn dead_letters(brokers: &str) -> Vec<(String, std::collections::HashMap<String, String>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "dead-letter-reader")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    c.subscribe(&[DEAD_LETTERS]).unwrap();
    let mut out = Vec::new();
    // Bounded: the group join, then a quiet second after the last message.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet = None::<Instant>;
    while Instant::now() < deadline && quiet.is_none_or(|q| q.elapsed() < Duration::from_secs(2)) {
        let Some(m) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.unwrap();
        let payload = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push((payload, headers));
        quiet = Some(Instant::now());
    }
    out
}

#[test]
fn a_serve_killed_mid_stream_records_each_message_exactly_once() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let settings = settings(tmp.path(), &brokers);
    let p = producer(&brokers);
    produce(&p, 0, 1000);

    let mut s = serve(&data, &settings);
    wait_for("the first accesses", support::WAIT, || {
        recorded(&data) >= 1000
    });

    // More keep coming while vakt is killed and started again.
    const TOTAL: u32 = 6000;
    let feeder = std::thread::spawn(move || {
        for chunk in (1000..TOTAL).step_by(250) {
            produce(&p, chunk, (chunk + 250).min(TOTAL));
            std::thread::sleep(Duration::from_millis(40));
        }
    });
    wait_for("more accesses", support::WAIT, || recorded(&data) >= 1500);
    s.signal_and_wait(libc::SIGKILL, Duration::from_secs(5))
        .unwrap();
    let at_kill = recorded(&data);
    let s = serve(&data, &settings);
    feeder.join().unwrap();
    assert!(
        at_kill < TOTAL as i64,
        "killed after the stream ended ({at_kill})"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while recorded(&data) < TOTAL as i64 {
        assert!(
            Instant::now() < deadline,
            "{} of {TOTAL} accesses in the ledger ({at_kill} at the kill); serve said: {}",
            recorded(&data),
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nothing more arrives: no access was recorded twice.
    std::thread::sleep(Duration::from_secs(2));
    s.stop(support::WAIT).unwrap();
    assert_eq!(recorded(&data), TOTAL as i64);
    verify(&data);
    for c in ["C-0", "C-1499", "C-5999"] {
        assert_eq!(accesses_of(&data, c), 1, "{c}");
    }
}

/// Nodes of one group on one store: a fresh database on the shared
/// throwaway PostgreSQL, a 6-partition topic on librdkafka's mock
/// cluster, the settings file, and a data directory on the store per node.
struct Group {
    pg: std::sync::Arc<vakt_pgtemp::TempCluster>,
    db: &'static str,
    brokers: String,
    settings: PathBuf,
    data: Vec<PathBuf>,
    tmp: tempfile::TempDir,
    _cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
}

impl Group {
    fn new(db: &'static str, nodes: usize) -> Group {
        let pg = vakt_pgtemp::TempCluster::shared().unwrap();
        pg.psql(&format!("DROP DATABASE IF EXISTS {db}")).unwrap();
        pg.psql(&format!("CREATE DATABASE {db}")).unwrap();
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic(TOPIC, 6, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let tmp = tempfile::tempdir().unwrap();
        let settings = settings(tmp.path(), &brokers);
        let data: Vec<PathBuf> = (0..nodes)
            .map(|i| tmp.path().join(format!("node{i}")))
            .collect();
        for d in &data {
            succeed(
                vakt()
                    .args(["ledger", "store", "--data"])
                    .arg(d)
                    .arg(pg.url(db)),
            );
        }
        Group {
            pg,
            db,
            brokers,
            settings,
            data,
            tmp,
            _cluster: cluster,
        }
    }

    /// The one figure `sql` selects from the store.
    fn count(&self, sql: &str) -> i64 {
        self.pg
            .psql_in(self.db, sql)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn in_store(&self) -> i64 {
        self.count("SELECT count(*) FROM vakt.entries")
    }

    /// Asserts each message (source name and line, across the chains) is
    /// in the store once, and that `total` are.
    fn assert_each_message_once(&self, total: u32) {
        let messages = self
            .pg
            .psql_in(
                self.db,
                "SELECT count(*), count(DISTINCT (n.name, e.line)) FROM vakt.entries e JOIN vakt.names n ON n.chain = e.chain AND n.id = e.source",
            )
            .unwrap();
        assert_eq!(
            messages.trim(),
            format!("{total}|{total}"),
            "messages in the store, distinct"
        );
    }

    /// The incidents one `vakt watch` finds in the first `total` messages
    /// of the stream, in the order produced: its latest line per
    /// incident, as a ledger keeps it.
    fn one_process_incidents(&self, total: u32) -> std::collections::BTreeSet<Incident> {
        let stream = self.tmp.path().join("stream.jsonl");
        let lines: Vec<String> = (0..total).map(|i| stream_message(i).1).collect();
        std::fs::write(&stream, lines.join("\n") + "\n").unwrap();
        let alone = self.tmp.path().join("alone.jsonl");
        succeed(vakt().args(["watch", "-q", "-o"]).arg(&alone).arg(&stream));
        let mut latest = std::collections::BTreeMap::new();
        for line in std::fs::read_to_string(&alone).unwrap().lines() {
            let incident = incident_of(line);
            latest.insert(incident.0.clone(), incident);
        }
        latest.into_values().collect()
    }
}

/// Three nodes in one group, each with its data directory and its chain
/// in one PostgreSQL store: one is killed with SIGKILL mid-stream and
/// started again while messages keep coming. Its partitions move to the
/// others and back; the store holds each produced access once, and the
/// incidents every node lists (all nodes') are those `vakt watch` finds
/// in the same events read by one process.
#[test]
fn three_nodes_on_one_store_record_each_message_once_across_a_kill_9() {
    let group = Group::new("nodes", 3);
    let (pg, settings, data) = (&group.pg, &group.settings, &group.data);
    let in_store = || group.in_store();
    let p = producer(&group.brokers);
    produce_stream(&p, 0, 1000);
    let (mut nodes, mut urls): (Vec<support::Child>, Vec<String>) =
        data.iter().map(|d| serve_at(d, settings)).unzip();
    wait_for("the first accesses", support::WAIT, || in_store() >= 1000);

    const TOTAL: u32 = 6000;
    let feeder = std::thread::spawn(move || {
        // About 400 a second: partitions move mid-stream, while guessers
        // are part way into their incidents.
        for chunk in (1000..TOTAL).step_by(100) {
            produce_stream(&p, chunk, (chunk + 100).min(TOTAL));
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    wait_for("more accesses", support::WAIT, || in_store() >= 2000);
    nodes[1]
        .signal_and_wait(libc::SIGKILL, Duration::from_secs(5))
        .unwrap();
    let at_kill = in_store();
    // Down long enough for the group to give its partitions to the others.
    std::thread::sleep(Duration::from_secs(8));
    (nodes[1], urls[1]) = serve_at(&data[1], settings);
    feeder.join().unwrap();
    assert!(
        at_kill < TOTAL as i64,
        "killed after the stream ended ({at_kill})"
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    while in_store() < TOTAL as i64 {
        assert!(
            Instant::now() < deadline,
            "{} of {TOTAL} accesses in the store ({at_kill} at the kill); the nodes said: {}",
            in_store(),
            nodes
                .iter()
                .map(|n| n.stderr())
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Nothing more arrives: no access was recorded twice.
    std::thread::sleep(Duration::from_secs(3));
    // Partitions moved as nodes joined, died and came back: the nodes
    // running now took some of them from the snapshots their holders
    // left when they gave them up (which partitions carry messages, and
    // which node gets them, varies from run to run).
    let from_snapshot: u64 = urls.iter().map(|u| arrivals(u).0).sum();
    assert!(from_snapshot > 0, "{}", metrics(&urls[0]));
    for n in nodes {
        n.stop(support::WAIT).unwrap();
    }
    assert_eq!(in_store(), TOTAL as i64);
    let twice = pg
        .psql_in(
            "nodes",
            "SELECT count(*) FROM (SELECT c FROM vakt.entries, unnest(customers) c GROUP BY c HAVING count(*) > 1) t",
        )
        .unwrap();
    assert_eq!(twice.trim(), "0", "customers read twice");
    // Each partition that had messages left its detector state at its
    // last line when the nodes stopped, whichever node held it.
    let snapshots = pg
        .psql_in(
            "nodes",
            "SELECT count(*), count(*) FILTER (WHERE s.line = o.line) FROM vakt.snapshots s JOIN vakt.offsets o USING (source)",
        )
        .unwrap();
    let offsets = pg
        .psql_in("nodes", "SELECT count(*) FROM vakt.offsets WHERE line > 0")
        .unwrap();
    let n = offsets.trim();
    assert_eq!(
        snapshots.trim(),
        format!("{n}|{n}"),
        "snapshots at the partitions' last lines"
    );
    group.assert_each_message_once(TOTAL);
    // Any node scopes every node's chain: customers read once each, and
    // an account's accesses wherever they were recorded.
    for d in data {
        for i in [0, 2, 4, 2_998, 5_999] {
            let customer = format!("C-{i}");
            assert_eq!(accesses_of(d, &customer), 1, "{}: {customer}", d.display());
        }
        // k.user0 reads at every 40th message.
        assert_eq!(
            account_accesses(d, "k.user0"),
            TOTAL as u64 / 40,
            "{}",
            d.display()
        );
    }
    let mut by_node = 0;
    for d in data {
        verify(d);
        by_node += recorded(d);
    }
    assert_eq!(by_node, TOTAL as i64, "each data directory holds its chain");

    // One process on the same events, in the order they were produced.
    let expected = group.one_process_incidents(TOTAL);
    let guessers: std::collections::BTreeSet<String> = expected
        .iter()
        .filter(|(_, rule, _, _)| rule == "login_failures")
        .map(|(_, _, actor, _)| actor.clone())
        .collect();
    assert_eq!(guessers.len(), 4, "one incident per guesser: {expected:?}");
    // Any node lists every node's, as one process found them.
    for d in data {
        assert_eq!(
            incidents(d),
            expected,
            "{}: the incidents differ from one process's",
            d.display()
        );
    }
}

/// Partitions this node was assigned since it started: (taken from a
/// snapshot, read from their start).
fn arrivals(url: &str) -> (u64, u64) {
    let m = metrics(url);
    let counter = |name: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}_total ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        counter("vakt_kafka_partitions_from_snapshot"),
        counter("vakt_kafka_partitions_from_start"),
    )
}

#[test]
fn with_cooperative_sticky_only_the_partitions_that_change_hands_move() {
    let group = Group::new("sticky", 2);
    let settings = &group.settings;
    let mut text = std::fs::read_to_string(settings).unwrap();
    text.push_str("\"partition.assignment.strategy\" = \"cooperative-sticky\"\n");
    std::fs::write(settings, text).unwrap();
    let (a, b) = (&group.data[0], &group.data[1]);
    let in_store = || group.in_store();
    const TOTAL: u32 = 2400;
    let p = producer(&group.brokers);
    produce_stream(&p, 0, TOTAL / 2);
    let (node_a, url_a) = serve_at(a, settings);
    wait_for("node A's accesses", support::WAIT, || {
        in_store() >= (TOTAL / 2) as i64
    });
    let (from_snapshot, from_start) = arrivals(&url_a);
    assert_eq!(
        (from_snapshot, from_start),
        (0, 6),
        "A starts with every partition"
    );

    // B joins: it takes half the partitions, each from the snapshot A
    // wrote when it gave it up, and A keeps the rest without reading them
    // again.
    let (node_b, url_b) = serve_at(b, settings);
    wait_for("B's share", support::WAIT, || {
        let (s, f) = arrivals(&url_b);
        s + f == 3
    });
    produce_stream(&p, TOTAL / 2, TOTAL);
    wait_for("every access", support::WAIT, || in_store() >= TOTAL as i64);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(arrivals(&url_a), (0, 6), "A was given no partition again");
    // Which of B's three carry messages varies with the assignor; A read
    // each that does before giving it up, so each came with a snapshot.
    let (b_snapshot, b_start) = arrivals(&url_b);
    assert_eq!(b_snapshot + b_start, 3);
    let b_with_messages = group.count(&format!(
        "SELECT count(*) FROM vakt.offsets o JOIN vakt.chains c USING (chain) WHERE c.name LIKE '%:{}'",
        b.display()
    ));
    assert_eq!(b_snapshot as i64, b_with_messages, "{}", metrics(&url_b));
    node_a.stop(support::WAIT).unwrap();
    node_b.stop(support::WAIT).unwrap();

    assert_eq!(in_store(), TOTAL as i64);
    group.assert_each_message_once(TOTAL);
    let expected = group.one_process_incidents(TOTAL);
    assert!(!expected.is_empty());
    for d in [a, b] {
        verify(d);
        assert_eq!(incidents(d), expected, "{}", d.display());
    }
}

#[test]
fn offsets_retention_deleted_before_they_were_read_are_counted_and_said() {
    // The mock cluster keeps 5 MiB per partition, deleting the oldest
    // message sets past it: retention, on a small scale.
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let settings = settings(tmp.path(), &brokers);
    let p = producer(&brokers);
    produce(&p, 0, 100);
    let s = serve(&data, &settings);
    wait_for("the first 100 accesses", support::WAIT, || {
        recorded(&data) >= 100
    });
    // The stop commits the group's offset: 100.
    s.stop(support::WAIT).unwrap();

    // While vakt is down, 6 MiB more arrive and push the first out.
    const TOTAL: u32 = 3100;
    let pad = "x".repeat(2000);
    for i in 100..TOTAL {
        let payload = access(i).replace('}', &format!(",\"message\":\"{pad}\"}}"));
        let mut record = BaseRecord::<str, str>::to(TOPIC).payload(&payload);
        while let Err((_, r)) = p.send(record) {
            record = r;
            p.poll(Duration::from_millis(10));
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(20)).unwrap();

    let (s, url) = serve_at(&data, &settings);
    let skipped = || -> i64 {
        metrics(&url)
            .lines()
            .find_map(|l| l.strip_prefix("vakt_kafka_skipped_total "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    wait_for("the rest of the partition", support::WAIT, || {
        let n = skipped();
        n > 0 && recorded(&data) + n >= TOTAL as i64
    });
    let n = skipped();
    let said = s.stderr();
    s.stop(support::WAIT).unwrap();
    assert_eq!(
        recorded(&data) + n,
        TOTAL as i64,
        "every offset is in the ledger or counted as skipped"
    );
    assert!(
        said.contains(&format!(
            "kafka:access:0: no message for {n} offset(s) from offset 100,"
        )),
        "{said}"
    );
}

fn verify(data: &Path) {
    succeed(vakt().args(["ledger", "verify", "--data"]).arg(data));
}

/// Runs `cmd`, which must succeed.
fn succeed(cmd: &mut Command) {
    succeeded(&cmd.output().unwrap());
}

fn succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How many accesses to `customer` the ledger holds.
fn accesses_of(data: &Path, customer: &str) -> usize {
    let out = vakt()
        .args([
            "scope",
            "--format",
            "json",
            "--customer",
            customer,
            "--data",
        ])
        .arg(data)
        .output()
        .unwrap();
    succeeded(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().map_or(0, Vec::len)
}

/// How many accesses `account` made, by `vakt scope --account`.
fn account_accesses(data: &Path, account: &str) -> u64 {
    let out = vakt()
        .args(["scope", "--format", "json", "--account", account, "--data"])
        .arg(data)
        .output()
        .unwrap();
    succeeded(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["accesses"].as_u64().unwrap_or_default()
}

#[test]
fn bad_kafka_settings_stop_the_start_with_file_and_line() {
    let err = refused_start(
        "listen = \"127.0.0.1:0\"\n\n[kafka]\nbrokers = \"127.0.0.1:9\"\n\n[[kafka.topic]]\nname = \"access\"\nformat = \"syslog\"\n",
    );
    assert!(
        err.contains("serve.toml:3:") && err.contains("format `syslog` is not one of"),
        "{err}"
    );

    // A librdkafka setting it does not know stops the start too, said once.
    let err = refused_start(
        "[kafka]\nbrokers = \"127.0.0.1:9\"\n[[kafka.topic]]\nname = \"access\"\n[kafka.options]\n\"no.such.setting\" = \"1\"\n",
    );
    assert!(err.contains("no.such.setting"), "{err}");
    assert_eq!(
        err.matches("check brokers and options in the [kafka] settings")
            .count(),
        1,
        "{err}"
    );
}

/// `vakt serve` with these settings, which must fail at start; its stderr.
fn refused_start(settings: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("serve.toml");
    std::fs::write(&path, settings).unwrap();
    let out = vakt()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(tmp.path().join("data"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}
