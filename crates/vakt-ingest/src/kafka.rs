//! Kafka source: one member of a consumer group reading log lines or
//! EVENTS.md JSON lines from topics, through librdkafka (`rdkafka`).
//!
//! Each partition is its own source, named `kafka:<topic>:<partition>`,
//! and a message's "line" is its offset plus one, so the ledger's
//! per-source progress says where to resume and its unique (source, line)
//! keeps a replay from recording an access twice. Offsets are committed
//! to the group only up to what the caller says is durable
//! ([`KafkaSource::commit`]): a consumer killed at any moment resumes at
//! or before the first message not yet in the ledger, never after it.
//!
//! A message's payload is one line, or several separated by line breaks
//! (a shipper batching lines); each is parsed by its topic's format, or
//! the format sniffed from the partition's first line. A payload that is
//! not UTF-8, a line past the line limit, or one the parser refuses is
//! rejected with its partition and offset, like a file's bad line.
//!
//! Back-pressure is the caller's: a message is taken only when
//! [`KafkaSource::poll`] is called, and Kafka keeps the rest.

use crate::parsers::{self, Format, ParseError, Parser, ParserContext};
use crate::rejects::Rejects;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vakt_event::{Event, Origin};

/// The `[kafka]` table of a settings file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The consumer group every vakt node reading these topics joins.
    #[serde(default = "default_group")]
    pub group: String,
    /// Topics to read, each with its format.
    #[serde(rename = "topic")]
    pub topics: Vec<TopicConfig>,
    /// librdkafka settings passed as they are (`security.protocol`,
    /// `session.timeout.ms`, ...); they win over vakt's defaults.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// A topic that also gets each rejected line (beside the dead-letter
    /// file), keyed by its source, with headers `vakt.source`,
    /// `vakt.offset` and `vakt.error`: one place for every node's.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// Seconds between two detector snapshots of a partition this node
    /// reads, besides the one taken when it leaves the node: a node that
    /// dies leaves its partitions to be read again from the last one.
    /// Each snapshot rewrites the partition's state whole (about 140
    /// bytes per account and peer group held), so the store's write
    /// volume is the state's size over this.
    #[serde(default = "default_snapshot_seconds")]
    pub snapshot_seconds: u64,
}

/// `snapshot_seconds` when the settings do not say.
pub const SNAPSHOT_SECONDS: u64 = 300;

fn default_snapshot_seconds() -> u64 {
    SNAPSHOT_SECONDS
}

/// One `[[kafka.topic]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    pub name: String,
    /// Any `vakt watch --format` name; absent, each partition's first line tells.
    pub format: Option<String>,
}

fn default_group() -> String {
    "vakt".into()
}

impl KafkaConfig {
    /// What is wrong with the settings, in words that say what to write.
    pub fn check(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err(
                "brokers is empty; write e.g. brokers = \"kafka1:9092,kafka2:9092\"".into(),
            );
        }
        if self.group.trim().is_empty() {
            return Err("group is empty; name the consumer group, e.g. group = \"vakt\"".into());
        }
        if self.snapshot_seconds == 0 {
            return Err(
                "snapshot_seconds is 0; give the seconds between two snapshots of a partition's detector state (300 by default)".into(),
            );
        }
        if let Some(d) = &self.dead_letter_topic {
            if d.is_empty() || d.contains(':') {
                return Err(format!(
                    "dead_letter_topic `{d}` is empty or has a `:`; Kafka topic names are letters, digits, `.`, `_` and `-`"
                ));
            }
        }
        if self.topics.is_empty() {
            return Err(
                "no [[kafka.topic]]; add one with name = \"...\" and format = \"...\"".into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for t in &self.topics {
            if t.name.is_empty() || t.name.contains(':') {
                return Err(format!(
                    "topic name `{}` is empty or has a `:`; Kafka topic names are letters, digits, `.`, `_` and `-`",
                    t.name
                ));
            }
            if !seen.insert(t.name.as_str()) {
                return Err(format!("topic `{}` is listed twice", t.name));
            }
            if self.dead_letter_topic.as_deref() == Some(t.name.as_str()) {
                return Err(format!(
                    "dead_letter_topic `{}` is also read as a [[kafka.topic]]: its rejects would be read again; name another topic",
                    t.name
                ));
            }
            if let Some(f) = &t.format {
                if parsers::format(f).is_none() {
                    return Err(format!(
                        "topic `{}`: format `{f}` is not one of {}",
                        t.name,
                        parsers::names().join(", ")
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Where each newly assigned partition should resume (the group's
/// committed offset), to tell a gap at its first message; forgets it
/// for revoked ones.
fn rebalanced(
    consumer: &BaseConsumer<Watch>,
    partitions: &mut HashMap<String, HashMap<i32, Partition>>,
    formats: &HashMap<String, Option<&'static Format>>,
    context: &ParserContext,
) {
    let changes = match consumer.context().rebalanced.lock() {
        Ok(mut r) if !r.is_empty() => std::mem::take(&mut *r),
        _ => return,
    };
    let mut assigned = TopicPartitionList::new();
    for (topic, partition, _) in changes.iter().filter(|c| c.2) {
        assigned.add_partition(topic, *partition);
    }
    let committed = if assigned.count() > 0 {
        consumer
            .committed_offsets(assigned, Duration::from_secs(10))
            .ok()
    } else {
        None
    };
    for (topic, partition, is_assigned) in changes {
        let next = committed
            .as_ref()
            .filter(|_| is_assigned)
            .and_then(|c| c.find_partition(&topic, partition))
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        if let Some(state) = partitions
            .get_mut(&topic)
            .and_then(|p| p.get_mut(&partition))
        {
            state.next = next;
            if let Some(n) = next {
                state.settled = n;
            }
        } else if let Some(next) = next {
            let format = formats.get(&topic).copied().flatten();
            let state = Partition {
                source: Arc::from(source_name(&topic, partition)),
                parser: format.map(|f| (f.build)(context)),
                next: Some(next),
                settled: next,
            };
            partitions
                .entry(topic)
                .or_default()
                .insert(partition, state);
        }
    }
}

/// Bytes of a rejected message kept when the whole would be too large.
const REJECT_HEAD: usize = 200;

/// The ledger source name of one partition.
pub fn source_name(topic: &str, partition: i32) -> String {
    format!("kafka:{topic}:{partition}")
}

/// The topic and partition a source name stands for, if it is one of ours.
pub fn parse_source(source: &str) -> Option<(&str, i32)> {
    let rest = source.strip_prefix("kafka:")?;
    let (topic, partition) = rest.rsplit_once(':')?;
    Some((topic, partition.parse().ok()?))
}

/// What one message carried; its events were appended to the caller's list.
#[derive(Debug)]
pub struct Consumed {
    /// `kafka:<topic>:<partition>`.
    pub source: Arc<str>,
    /// The message's offset plus one.
    pub line: u64,
    /// How many events it gave (none for a rejected or empty message).
    pub events: usize,
    /// Offsets skipped right before this message.
    pub gap: Option<Gap>,
}

/// Counts for `/metrics` and the run summary.
#[derive(Clone, Debug, Default)]
pub struct KafkaStats {
    pub messages: u64,
    pub events: u64,
    pub rejected: u64,
    /// Offsets the brokers handed out no message for (see [`Gap`]).
    pub skipped: u64,
}

/// Offsets of a partition the brokers went past without handing out a
/// message: from where this member resumed (the group's committed
/// offset) or from the message before. Kafka leaves such holes for
/// transaction markers and compaction, and retention deletes what was
/// not read in time; a broker that skips messages leaves them too. An
/// audit stream should have none, so each is said, never absorbed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// The first line (offset plus one) with no message.
    pub from_line: u64,
    /// How many.
    pub messages: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum KafkaSourceError {
    #[error("kafka ({brokers}): {error}; check brokers and options in the [kafka] settings")]
    Client { brokers: String, error: KafkaError },
}

struct Partition {
    source: Arc<str>,
    parser: Option<Box<dyn Parser>>,
    /// The offset the next message should have: the group's committed
    /// offset after an assignment, then the last message's plus one;
    /// `None` when not known (no offset committed yet).
    next: Option<i64>,
    /// The group's committed offset when the partition was last assigned:
    /// messages below it were read and judged before, so when they are
    /// read again (for state, see [`KafkaSource::start_partitions_at`])
    /// their rejects are not reported a second time.
    settled: i64,
}

/// How far behind the newest message one assigned partition is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lag {
    pub topic: String,
    pub partition: i32,
    /// Messages between the consumer's position and the partition's end.
    pub messages: i64,
}

/// librdkafka's statistics (every `statistics.interval.ms`), kept for
/// [`KafkaSource::lag`]: the client computes the lag from what it
/// already asks the brokers, so reporting it costs no request.
#[derive(Default)]
struct Watch {
    lag: Mutex<Vec<Lag>>,
    /// Partitions assigned or revoked by rebalances since the last poll:
    /// true for assigned.
    rebalanced: Mutex<Vec<(String, i32, bool)>>,
    /// Told the sources of partitions about to be taken away, before the
    /// group moves them (see [`KafkaSource::on_revoke`]).
    on_revoke: Mutex<Option<RevokeHook>>,
    /// Where each assigned partition starts, when not at the group's
    /// committed offset (see [`KafkaSource::start_partitions_at`]).
    on_assign: Mutex<Option<AssignHook>>,
    /// Why the last rebalance could not (un)assign, for the next poll to say.
    failed: Mutex<Option<KafkaError>>,
}

type RevokeHook = Box<dyn Fn(&[Arc<str>]) + Send>;
type AssignHook = Box<dyn Fn(&[Arc<str>]) -> Vec<u64> + Send>;

impl ClientContext for Watch {
    fn stats(&self, statistics: Statistics) {
        let mut lag: Vec<Lag> = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.values().map(move |p| (t, p)))
            // Partition -1 is the client's internal one; a lag of -1 is "not known yet".
            .filter(|(_, p)| p.partition >= 0 && p.desired && p.consumer_lag >= 0)
            .map(|(t, p)| Lag {
                topic: t.topic.clone(),
                partition: p.partition,
                messages: p.consumer_lag,
            })
            .collect();
        lag.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        if let Ok(mut l) = self.lag.lock() {
            *l = lag;
        }
    }
}

impl Watch {
    /// Sets where each newly assigned partition starts, from the hook:
    /// after the line it names, or at the first offset for 0.
    fn place(&self, tpl: &mut TopicPartitionList) {
        let Ok(hook) = self.on_assign.lock() else {
            return;
        };
        let Some(hook) = hook.as_ref() else {
            return;
        };
        let partitions: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let sources: Vec<Arc<str>> = partitions
            .iter()
            .map(|(t, p)| Arc::from(source_name(t, *p)))
            .collect();
        let lines = hook(&sources);
        for ((topic, partition), line) in partitions.iter().zip(lines) {
            // Line n is offset n - 1, so reading on after it starts at offset n.
            let offset = match i64::try_from(line) {
                Ok(n) if n > 0 => Offset::Offset(n),
                _ => Offset::Beginning,
            };
            let _ = tpl.set_partition_offset(topic, *partition, offset);
        }
    }
}

impl ConsumerContext for Watch {
    /// librdkafka's default rebalance, with assigned partitions starting
    /// where [`KafkaSource::start_partitions_at`]'s hook says.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let assign = err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        if assign {
            self.place(tpl);
        }
        let rebalance = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(tpl),
            _ => Rebalance::Error(KafkaError::Rebalance(err.into())),
        };
        self.pre_rebalance(consumer, &rebalance);
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let done = match (assign, cooperative) {
            (true, true) => consumer.incremental_assign(tpl),
            (true, false) => consumer.assign(tpl),
            (false, true) => consumer.incremental_unassign(tpl),
            (false, false) => consumer.unassign(),
        };
        if let (Err(e), Ok(mut failed)) = (done, self.failed.lock()) {
            *failed = Some(e);
        }
        self.post_rebalance(consumer, &rebalance);
    }

    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let sources: Vec<Arc<str>> = list
            .elements()
            .iter()
            .map(|e| Arc::from(source_name(e.topic(), e.partition())))
            .collect();
        if sources.is_empty() {
            return;
        }
        if let Ok(hook) = self.on_revoke.lock() {
            if let Some(hook) = hook.as_ref() {
                hook(&sources);
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let (list, assigned) = match rebalance {
            Rebalance::Assign(l) => (l, true),
            Rebalance::Revoke(l) => (l, false),
            Rebalance::Error(_) => return,
        };
        if let Ok(mut r) = self.rebalanced.lock() {
            for e in list.elements() {
                r.push((e.topic().to_owned(), e.partition(), assigned));
            }
        }
    }
}

/// A consumer-group member; see the module doc.
pub struct KafkaSource {
    consumer: BaseConsumer<Watch>,
    brokers: String,
    formats: HashMap<String, Option<&'static Format>>,
    /// Per topic, per partition: looked up by `&str`, so a message costs no allocation.
    partitions: HashMap<String, HashMap<i32, Partition>>,
    context: ParserContext,
    max_line: usize,
    stats: KafkaStats,
    dead_letters: Option<DeadLetters>,
}

/// The dead-letter topic's producer.
struct DeadLetters {
    producer: BaseProducer<Undelivered>,
    topic: String,
}

/// Counts dead letters that did not reach the topic.
#[derive(Default)]
struct Undelivered(std::sync::atomic::AtomicU64);

impl ClientContext for Undelivered {}

impl ProducerContext for Undelivered {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl DeadLetters {
    /// Queues a rejected line; one the client cannot queue (its queue is
    /// full) is counted with those the brokers refuse.
    fn send(&self, source: &str, line: u64, error: &str, raw: &str) {
        let offset = line.saturating_sub(1).to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "vakt.source",
                value: Some(source),
            })
            .insert(Header {
                key: "vakt.offset",
                value: Some(offset.as_str()),
            })
            .insert(Header {
                key: "vakt.error",
                value: Some(error),
            });
        let record = BaseRecord::to(&self.topic)
            .key(source)
            .payload(raw)
            .headers(headers);
        if self.producer.send(record).is_err() {
            self.lost()
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn lost(&self) -> &std::sync::atomic::AtomicU64 {
        &self.producer.context().0
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        // What is still queued for the dead-letter topic goes out first
        // (bounded: the file holds it anyway).
        if let Some(d) = &self.dead_letters {
            let _ = d.producer.flush(Duration::from_secs(5));
        }
    }
}

impl KafkaSource {
    /// Joins the group and subscribes to the topics. Nothing is read yet.
    pub fn connect(
        config: &KafkaConfig,
        context: ParserContext,
    ) -> Result<KafkaSource, KafkaSourceError> {
        let client_err = |error| KafkaSourceError::Client {
            brokers: config.brokers.clone(),
            error,
        };
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group)
            // Offsets are committed by `commit`, only past what is durable.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A new group reads what the topics hold, not only what comes next.
            .set("auto.offset.reset", "earliest")
            .set("client.id", format!("vakt-{}", std::process::id()))
            .set("statistics.interval.ms", "5000");
        for (k, v) in &config.options {
            cc.set(k, v);
        }
        let consumer: BaseConsumer<Watch> = cc
            .create_with_context(Watch::default())
            .map_err(client_err)?;
        let dead_letters = match &config.dead_letter_topic {
            None => None,
            Some(topic) => {
                let mut pc = ClientConfig::new();
                pc.set("bootstrap.servers", &config.brokers).set(
                    "client.id",
                    format!("vakt-{}-dead-letters", std::process::id()),
                );
                for (k, v) in &config.options {
                    pc.set(k, v);
                }
                Some(DeadLetters {
                    producer: pc
                        .create_with_context(Undelivered::default())
                        .map_err(client_err)?,
                    topic: topic.clone(),
                })
            }
        };
        let names: Vec<&str> = config.topics.iter().map(|t| t.name.as_str()).collect();
        consumer.subscribe(&names).map_err(client_err)?;
        let formats = config
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    t.format.as_deref().and_then(parsers::format),
                )
            })
            .collect();
        Ok(KafkaSource {
            consumer,
            brokers: config.brokers.clone(),
            formats,
            partitions: HashMap::new(),
            context,
            max_line: crate::lines::DEFAULT_MAX_LINE,
            stats: KafkaStats::default(),
            dead_letters,
        })
    }

    /// Calls `hook` with the sources of the partitions a rebalance is
    /// about to take from this member, before the group hands them to
    /// another (from inside [`KafkaSource::poll`], on its thread). What
    /// `hook` finishes before it returns is done before any other member
    /// reads them: commit their work there.
    pub fn on_revoke(&self, hook: impl Fn(&[Arc<str>]) + Send + 'static) {
        if let Ok(mut h) = self.consumer.context().on_revoke.lock() {
            *h = Some(Box::new(hook));
        }
    }

    /// Makes every partition this member is assigned from now on start
    /// where `hook` says instead of at the group's committed offset: `hook`
    /// gets the sources of the partitions being assigned (from inside
    /// [`KafkaSource::poll`], before any of their messages is fetched) and
    /// returns, for each, the line after which to read on, or 0 for the
    /// first offset (what retention kept). For a caller that rebuilds its
    /// state from a partition's history, or from a snapshot of it, and
    /// tells the messages it already recorded by their offsets (`vakt
    /// serve`'s ledger). Gaps are still told from the committed offset on.
    pub fn start_partitions_at(&self, hook: impl Fn(&[Arc<str>]) -> Vec<u64> + Send + 'static) {
        if let Ok(mut h) = self.consumer.context().on_assign.lock() {
            *h = Some(Box::new(hook));
        }
    }

    pub fn stats(&self) -> &KafkaStats {
        &self.stats
    }

    /// Rejected lines the dead-letter topic did not take (they are in the
    /// file). Serves the topic's delivery reports, so call it now and then
    /// (once a second), not per message.
    pub fn dead_letters_lost(&self) -> u64 {
        self.dead_letters.as_ref().map_or(0, |d| {
            d.producer.poll(Duration::ZERO);
            d.lost().load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// The lag of each partition assigned to this member, as of the
    /// client's last statistics (every 5 s unless `statistics.interval.ms`
    /// says otherwise); empty until then. Statistics are taken by
    /// [`KafkaSource::poll`].
    pub fn lag(&self) -> Vec<Lag> {
        self.consumer
            .context()
            .lag
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Waits up to `timeout` for one message and parses it, appending its
    /// events to `events`. `None` when none came; an error when the client
    /// failed (the brokers are unreachable for long, the group was
    /// fenced): worth logging, and calling again, since librdkafka
    /// reconnects by itself.
    pub fn poll(
        &mut self,
        timeout: Duration,
        rejects: &Mutex<Rejects>,
        events: &mut Vec<Event>,
    ) -> Option<Result<Consumed, KafkaSourceError>> {
        // A rebalance that failed in the last poll, said before taking more.
        let failed = self
            .consumer
            .context()
            .failed
            .lock()
            .ok()
            .and_then(|mut f| f.take());
        if let Some(error) = failed {
            return Some(Err(KafkaSourceError::Client {
                brokers: self.brokers.clone(),
                error,
            }));
        }
        let polled = self.consumer.poll(timeout);
        // Rebalances are served inside the poll, with or without a message.
        rebalanced(
            &self.consumer,
            &mut self.partitions,
            &self.formats,
            &self.context,
        );
        let message = match polled? {
            Ok(m) => m,
            Err(error) => {
                return Some(Err(KafkaSourceError::Client {
                    brokers: self.brokers.clone(),
                    error,
                }))
            }
        };
        self.stats.messages += 1;
        let topic = message.topic();
        let partition = message.partition();
        let line = u64::try_from(message.offset()).unwrap_or(0) + 1;
        let format = self.formats.get(topic).copied().flatten();
        let context = &self.context;
        if !self.partitions.contains_key(topic) {
            self.partitions.insert(topic.to_owned(), HashMap::new());
        }
        let state = self
            .partitions
            .get_mut(topic)
            .expect("inserted above")
            .entry(partition)
            .or_insert_with(|| Partition {
                source: Arc::from(source_name(topic, partition)),
                parser: format.map(|f| (f.build)(context)),
                next: None,
                settled: 0,
            });
        let offset = message.offset();
        let gap = state
            .next
            .filter(|next| *next >= 0 && offset > *next)
            .map(|next| Gap {
                from_line: next as u64 + 1,
                messages: (offset - next) as u64,
            });
        if let Some(g) = &gap {
            self.stats.skipped += g.messages;
        }
        state.next = Some(offset + 1);
        let source = state.source.clone();
        let origin = Origin::new(source.clone(), line);
        let before = events.len();
        let dead_letters = self.dead_letters.as_ref();
        let judged_before = offset < state.settled;
        let mut refused = |error: &str, raw: &str| {
            if judged_before {
                return;
            }
            self.stats.rejected += 1;
            if let Ok(mut r) = rejects.lock() {
                r.reject(&source, line, error, raw);
            }
            if let Some(d) = dead_letters {
                d.send(&source, line, error, raw);
            }
        };
        match message.payload().map(std::str::from_utf8) {
            None => {}
            Some(Err(e)) => {
                // Only the head is kept: the payload may be as large as the broker allows.
                let payload = message.payload().unwrap_or_default();
                let raw = String::from_utf8_lossy(&payload[..payload.len().min(REJECT_HEAD)]);
                refused(&format!("the message is not UTF-8 ({e})"), &raw);
            }
            Some(Ok(text)) => {
                for l in text.lines() {
                    if l.trim().is_empty() {
                        continue;
                    }
                    if l.len() > self.max_line {
                        let head: String = l.chars().take(REJECT_HEAD).collect();
                        refused(
                            &format!(
                                "line of {} bytes is longer than the {} byte limit",
                                l.len(),
                                self.max_line
                            ),
                            &head,
                        );
                        continue;
                    }
                    if state.parser.is_none() {
                        match parsers::sniff(l) {
                            Some(f) => state.parser = Some((f.build)(context)),
                            None => {
                                refused(
                                    &format!(
                                        "cannot tell the topic's format from this line; give format in its [[kafka.topic]] (one of {})",
                                        parsers::names().join(", ")
                                    ),
                                    l,
                                );
                                continue;
                            }
                        }
                    }
                    let parser = state.parser.as_mut().expect("chosen above");
                    if let Err(ParseError(e)) = parser.parse_line(l, &origin, events) {
                        refused(&e, l);
                    }
                }
            }
        }
        let added = events.len() - before;
        self.stats.events += added as u64;
        Some(Ok(Consumed {
            source,
            line,
            events: added,
            gap,
        }))
    }

    /// Commits to the group, for each of our sources, that everything up
    /// to `line` (an offset plus one) is durable. Sources that are not
    /// Kafka partitions assigned to this member are ignored. Asynchronous: a commit lost to a
    /// crash only means a longer replay, which the ledger absorbs.
    pub fn commit<'a>(
        &self,
        durable: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> Result<(), KafkaSourceError> {
        let client_err = |error| KafkaSourceError::Client {
            brokers: self.brokers.clone(),
            error,
        };
        // Only partitions this member holds: one it lost may be read
        // further by another since, and a late commit from here would
        // move the group's offset under it.
        let assigned = self.consumer.assignment().map_err(client_err)?;
        let mut tpl = TopicPartitionList::new();
        for (source, line) in durable {
            let Some((topic, partition)) = parse_source(source) else {
                continue;
            };
            if !self.formats.contains_key(topic)
                || assigned.find_partition(topic, partition).is_none()
            {
                continue;
            }
            let offset = i64::try_from(line).unwrap_or(i64::MAX);
            tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
                .map_err(client_err)?;
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        self.consumer
            .commit(&tpl, CommitMode::Async)
            .map_err(client_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> Result<KafkaConfig, String> {
        let c: KafkaConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        c.check().map(|()| c)
    }

    #[test]
    fn a_partition_is_a_source_and_back() {
        let s = source_name("web.access-log", 7);
        assert_eq!(s, "kafka:web.access-log:7");
        assert_eq!(parse_source(&s), Some(("web.access-log", 7)));
        assert_eq!(parse_source("/var/log/nginx/access.log"), None);
        assert_eq!(parse_source("kafka:topic:x"), None);
    }

    #[test]
    fn settings_say_what_to_write() {
        let ok = config(
            "brokers = \"127.0.0.1:9092\"\n[[topic]]\nname = \"events\"\nformat = \"jsonl\"\n",
        )
        .unwrap();
        assert_eq!(ok.group, "vakt");
        let e = config("brokers = \"b:9092\"\n[[topic]]\nname = \"events\"\nformat = \"csv\"\n")
            .unwrap_err();
        assert!(
            e.contains("format `csv` is not one of") && e.contains("jsonl"),
            "{e}"
        );
        let e = config("brokers = \"b:9092\"\ntopic = []\n").unwrap_err();
        assert!(e.contains("no [[kafka.topic]]"), "{e}");
        let e = config("brokers = \"b:9092\"\n[[topic]]\nname = \"a\"\n[[topic]]\nname = \"a\"\n")
            .unwrap_err();
        assert!(e.contains("listed twice"), "{e}");
        let e = config("brokers = \"\"\n[[topic]]\nname = \"a\"\n").unwrap_err();
        assert!(e.contains("brokers is empty"), "{e}");
        let e = config("brokers = \"b\"\ngroups = \"x\"\n[[topic]]\nname = \"a\"\n").unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
        // A dead-letter topic that is also read would read its rejects again.
        let e = config("brokers = \"b\"\ndead_letter_topic = \"a\"\n[[topic]]\nname = \"a\"\n")
            .unwrap_err();
        assert!(e.contains("also read"), "{e}");
        let ok =
            config("brokers = \"b\"\ndead_letter_topic = \"a.rejects\"\n[[topic]]\nname = \"a\"\n")
                .unwrap();
        assert_eq!(ok.dead_letter_topic.as_deref(), Some("a.rejects"));
        assert_eq!(ok.snapshot_seconds, SNAPSHOT_SECONDS);
        let e =
            config("brokers = \"b\"\nsnapshot_seconds = 0\n[[topic]]\nname = \"a\"\n").unwrap_err();
        assert!(e.contains("snapshot_seconds is 0"), "{e}");
        let ok =
            config("brokers = \"b\"\nsnapshot_seconds = 30\n[[topic]]\nname = \"a\"\n").unwrap();
        assert_eq!(ok.snapshot_seconds, 30);
    }
}
