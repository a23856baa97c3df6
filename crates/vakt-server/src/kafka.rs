//! Topics named in the settings file's `[kafka]` table, read by one
//! thread as a member of a consumer group (`vakt_ingest::kafka`) and fed
//! to the engine beside what arrives over HTTP and from followed files.
//!
//! Each partition is its own ledger source, so the ledger's progress for
//! it says where its records end, and is committed in the same ledger
//! transaction as the accesses. The group's committed offsets trail that
//! progress (they are committed from what the engine reports durable,
//! every [`COMMIT_EVERY`]): after a crash the group hands back messages
//! the ledger may hold already, which only rebuild detector state, and
//! never skips one it does not hold.
//!
//! Gaps: a partition's offsets the brokers go past without handing out a
//! message (from the group's committed offset, or between two messages)
//! are said on stderr with where they start and counted in `/metrics`
//! (`vakt_kafka_skipped_total`): an audit stream must not lose records
//! quietly, whoever loses them.
//!
//! Back-pressure: a message is taken from Kafka only when the engine's
//! queue has room; the rest waits in Kafka, and `/metrics` says how much
//! (`vakt_kafka_lag`, per partition). Malformed messages are
//! counted in `/metrics`, named on stderr with partition and offset, and
//! kept in `kafka-rejects.jsonl` in the data directory.
//!
//! Detector state: whenever this node is assigned a partition, the
//! partition gets a detection engine of its own
//! ([`vakt_pipeline::Pipeline::arrive_movable`]), which takes the
//! partition's latest detector snapshot when the ledger holds one, and
//! reading starts after the snapshot's line; without one it starts at the
//! first offset (what the topic's retention kept). The messages the
//! ledger holds rebuild the accounts' history and open incidents, with
//! their ids, and raise nothing; the rest is recorded. So a partition
//! that moves to another node, or comes back after a restart, gives the
//! alerts one process reading it throughout would. Snapshots are taken
//! when a partition leaves (a rebalance, a stop) and every
//! `snapshot_seconds` (`[kafka]`, 300 by default) while it is read, each in the batch
//! that records the partition's progress that far; a node that dies
//! leaves the last periodic one. The group's committed offset no longer
//! says where reading starts, only where gaps are told from.
//!
//! Several nodes: with the entries in a shared PostgreSQL store, a
//! partition's progress is read from the store when a node takes it, and
//! a rebalance that takes partitions away first waits for the engine to
//! commit their work ([`hand_off`]), so the next owner resumes where this
//! node stopped. With the embedded ledger each node records only its
//! partitions, in its own data directory.

use crate::follow::wait_for_room;
use crate::metrics::Metrics;
use crate::worker::{Durable, Msg};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use vakt_event::{Directory, Event};
use vakt_ingest::kafka::{Gap, KafkaConfig, KafkaSource};
use vakt_ingest::{ParserContext, Rejects};

/// Name of the dead-letter file for malformed Kafka messages.
pub const REJECTS_FILE: &str = "kafka-rejects.jsonl";

/// How often the group is told what the ledger holds.
pub const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// How long a poll waits for a message, and so how soon a stop is seen.
const POLL: Duration = Duration::from_millis(100);

/// Most events taken from the client before they go to the engine: few
/// enough to keep the queue's room honest, enough that a message does not
/// cost a wake-up of the engine each.
const BATCH_EVENTS: usize = 4096;

/// How long a rebalance waits for the engine to commit the partitions it
/// takes away. Past it the group moves on; should this node then still
/// commit work on one, the shared store refuses it (and the node stops).
const HAND_OFF: Duration = Duration::from_secs(60);

/// What a rebalance does before it takes partitions away: the engine
/// commits their work and lets go of them, and whatever the reader holds
/// of them is dropped.
fn hand_off(
    tx: mpsc::UnboundedSender<Msg>,
    revoked: Arc<Mutex<Vec<Arc<str>>>>,
) -> impl Fn(&[Arc<str>]) + Send + 'static {
    move |sources| {
        if let Ok(mut r) = revoked.lock() {
            r.extend_from_slice(sources);
        }
        let (done, committed) = std::sync::mpsc::sync_channel(1);
        let release = Msg::Release {
            sources: sources.to_vec(),
            done,
        };
        if tx.send(release).is_err() {
            return;
        }
        if committed.recv_timeout(HAND_OFF).is_err() {
            tracing::warn!(
                "the engine did not commit {} partition(s) within {} s of a rebalance taking them away; the group moves them on",
                sources.len(),
                HAND_OFF.as_secs()
            );
        }
    }
}

/// What a rebalance does before it gives partitions to this node: the
/// engine takes each one's detector snapshot, and says where reading
/// starts (after the snapshot's line, or at the first offset).
fn arrive(
    tx: mpsc::UnboundedSender<Msg>,
    metrics: Arc<Metrics>,
) -> impl Fn(&[Arc<str>]) -> Vec<u64> + Send + 'static {
    move |sources| {
        let (start, lines) = std::sync::mpsc::sync_channel(1);
        let arrive = Msg::Arrive {
            sources: sources.to_vec(),
            start,
        };
        // Without an engine there is nothing to read for: from the start.
        if tx.send(arrive).is_err() {
            return vec![0; sources.len()];
        }
        // No time limit: reading must not start before the state is
        // settled, or lines would be fed to it twice. The engine answers
        // after the batch in hand; an engine that stops drops `start`.
        match lines.recv() {
            Ok(lines) => {
                for line in &lines {
                    match line {
                        0 => metrics.kafka_from_start.inc(),
                        _ => metrics.kafka_from_snapshot.inc(),
                    };
                }
                lines
            }
            Err(_) => vec![0; sources.len()],
        }
    }
}

/// Consecutive messages of one partition, parsed.
struct Run {
    source: Arc<str>,
    events: Vec<Event>,
}

/// The way to the engine: its channel and its queue of `capacity` events.
pub(crate) struct Engine {
    pub(crate) tx: mpsc::UnboundedSender<Msg>,
    pub(crate) queue: Arc<Semaphore>,
    pub(crate) capacity: usize,
}

/// The consumer thread; [`KafkaReader::stop`] ends it.
pub(crate) struct KafkaReader {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl KafkaReader {
    pub(crate) fn start(
        config: &KafkaConfig,
        directory: Arc<Directory>,
        data: &Path,
        engine: Engine,
        metrics: Arc<Metrics>,
        durable: Arc<Durable>,
    ) -> std::io::Result<KafkaReader> {
        let Engine {
            tx,
            queue,
            capacity,
        } = engine;
        let source = KafkaSource::connect(config, ParserContext { directory })
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        // Detector state comes from each partition's snapshot, or is
        // rebuilt from its whole history.
        source.start_partitions_at(arrive(tx.clone(), metrics.clone()));
        // Appended to: a restart must not lose the messages rejected before it.
        let rejects = Rejects::appending(
            &data.join(REJECTS_FILE),
            Box::new(|m| tracing::warn!("{m}")),
        )?;
        let revoked = Arc::new(Mutex::new(Vec::new()));
        source.on_revoke(hand_off(tx.clone(), revoked.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = Reader {
            revoked,
            source,
            rejects: Mutex::new(rejects),
            tx,
            queue,
            capacity,
            metrics,
            durable,
            stop: stop.clone(),
            committed: Default::default(),
            gaps: Gaps::default(),
        };
        let thread = std::thread::Builder::new()
            .name("vakt-kafka".into())
            .spawn(move || reader.run())?;
        Ok(KafkaReader { stop, thread })
    }

    /// Stops reading; what was read is already with the engine.
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

struct Reader {
    source: KafkaSource,
    /// Partitions taken away by a rebalance since the last look: what was
    /// read of them and not yet handed to the engine is dropped.
    revoked: Arc<Mutex<Vec<Arc<str>>>>,
    rejects: Mutex<Rejects>,
    tx: mpsc::UnboundedSender<Msg>,
    queue: Arc<Semaphore>,
    /// Events the queue holds in all.
    capacity: usize,
    metrics: Arc<Metrics>,
    durable: Arc<Durable>,
    stop: Arc<AtomicBool>,
    /// What was last committed to the group, per partition.
    committed: std::collections::HashMap<Arc<str>, u64>,
    gaps: Gaps,
}

/// Gap warnings: when one was last said, and the offsets skipped since.
#[derive(Default)]
struct Gaps {
    said: Option<Instant>,
    unsaid: u64,
}

impl Reader {
    fn run(mut self) {
        let mut last_commit = Instant::now();
        let mut last_error: Option<Instant> = None;
        let mut rejected = 0;
        let mut lost = 0;
        while !self.stop.load(Ordering::Relaxed) {
            if last_commit.elapsed() >= COMMIT_EVERY {
                self.commit();
                self.report_lag();
                self.report_lost_dead_letters(&mut lost);
                last_commit = Instant::now();
            }
            // Take messages only when the engine has room; Kafka keeps the rest.
            let room = self.queue.available_permits();
            if room == 0 {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let runs = self.take(room.min(BATCH_EVENTS), &mut last_error);
            let now_rejected = self.source.stats().rejected;
            if now_rejected > rejected {
                self.metrics.events_rejected.inc_by(now_rejected - rejected);
                rejected = now_rejected;
                if let Ok(mut r) = self.rejects.lock() {
                    let _ = r.flush();
                }
            }
            if !self.send(runs) {
                return;
            }
        }
        self.commit();
    }

    /// Takes what the client holds ready, up to `budget` events: waits for
    /// the first message only. Consecutive messages of one partition make
    /// one run.
    fn take(&mut self, budget: usize, last_error: &mut Option<Instant>) -> Vec<Run> {
        let mut runs: Vec<Run> = Vec::new();
        let mut events = 0;
        // Parsed into once, then moved into its run: a message of a run
        // under way costs no allocation of its own.
        let mut parsed = Vec::new();
        while events < budget {
            let wait = if runs.is_empty() {
                POLL
            } else {
                Duration::ZERO
            };
            let polled = self.source.poll(wait, &self.rejects, &mut parsed);
            // A rebalance served in that poll, with a message or without,
            // may have taken partitions away: what is held of them goes
            // now, before runs of their next assignment are added.
            self.drop_revoked(&mut runs);
            let consumed = match polled {
                None => break,
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    // librdkafka reconnects by itself; say so once in a while.
                    if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!("{e}");
                        *last_error = Some(Instant::now());
                    }
                    break;
                }
            };
            self.metrics.kafka_messages.inc();
            if let Some(gap) = &consumed.gap {
                self.metrics.kafka_skipped.inc_by(gap.messages);
                self.say_gap(&consumed.source, gap);
            }
            events += consumed.events;
            match runs.last_mut() {
                Some(run) if run.source == consumed.source => run.events.append(&mut parsed),
                _ => runs.push(Run {
                    source: consumed.source,
                    events: std::mem::take(&mut parsed),
                }),
            }
        }
        runs
    }

    /// Drops what was read of partitions a rebalance took away meanwhile:
    /// their next owner reads them from where this node's work ends.
    fn drop_revoked(&mut self, runs: &mut Vec<Run>) {
        let revoked = match self.revoked.lock() {
            Ok(mut r) if !r.is_empty() => std::mem::take(&mut *r),
            _ => return,
        };
        runs.retain(|run| !revoked.contains(&run.source));
    }

    /// Says a gap on stderr; at most one message per 10 s, which counts
    /// the gaps it stood for (a transactional producer leaves one offset
    /// per transaction).
    fn say_gap(&mut self, source: &str, gap: &Gap) {
        self.gaps.unsaid += gap.messages;
        if self
            .gaps
            .said
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            return;
        }
        tracing::warn!(
            "{source}: no message for {} offset(s) from offset {}, {} in all since the last such warning: the brokers went past them (transaction markers, compaction, retention before they were read, or a broker fault), so they are not in the ledger",
            gap.messages,
            gap.from_line - 1,
            self.gaps.unsaid
        );
        self.gaps = Gaps {
            said: Some(Instant::now()),
            unsaid: 0,
        };
    }

    /// Hands the runs to the engine, each with its room in the queue;
    /// false once stopping or the engine is gone.
    fn send(&self, runs: Vec<Run>) -> bool {
        for run in runs {
            if run.events.is_empty() {
                continue;
            }
            // A run's events go to the engine as one, so no commit splits
            // a message (its progress would mark the rest as done).
            let n = run.events.len();
            let Some(permit) = wait_for_room(&self.queue, self.capacity, n, &self.stop) else {
                return false;
            };
            self.metrics.events_received.inc_by(n as u64);
            let msg = Msg::Followed {
                source: run.source,
                events: run.events,
                permit,
            };
            if self.tx.send(msg).is_err() {
                return false;
            }
        }
        true
    }

    /// Says, once a second at most, that rejects did not reach the
    /// dead-letter topic since the last time (they are in the file).
    fn report_lost_dead_letters(&self, said: &mut u64) {
        let now = self.source.dead_letters_lost();
        if now > *said {
            tracing::warn!(
                "{} rejected line(s) did not reach the dead-letter topic ({} in all); they are in {REJECTS_FILE}",
                now - *said,
                now
            );
            *said = now;
        }
    }

    /// Puts the partitions' lag in `/metrics`, for this member's partitions only.
    fn report_lag(&self) {
        let lag = self.source.lag();
        self.metrics.kafka_lag.clear();
        for l in lag {
            let label = crate::metrics::PartitionLabel {
                topic: l.topic,
                partition: l.partition,
            };
            self.metrics.kafka_lag.get_or_create(&label).set(l.messages);
        }
    }

    /// Commits to the group what the engine committed to the ledger since.
    fn commit(&mut self) {
        let fresh: Vec<(Arc<str>, u64)> = {
            let durable = self.durable.lock().unwrap_or_else(|p| p.into_inner());
            durable
                .iter()
                .filter(|(s, l)| self.committed.get(*s) != Some(l))
                .map(|(s, l)| (s.clone(), *l))
                .collect()
        };
        if fresh.is_empty() {
            return;
        }
        match self
            .source
            .commit(fresh.iter().map(|(s, l)| (s.as_ref(), *l)))
        {
            Ok(()) => self.committed.extend(fresh),
            Err(e) => tracing::warn!(
                "committing offsets: {e}; the ledger holds them, a restart replays a little more"
            ),
        }
    }
}
