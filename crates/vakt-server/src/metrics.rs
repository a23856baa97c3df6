//! `GET /metrics`: the server's metrics in the OpenMetrics text format
//! (`prometheus-client`), for a `read` token (or anyone, with
//! `Config::open_metrics`): alert counts per rule and queue depth tell an
//! attacker whether they were seen.
//!
//! Counters and histograms are updated where things happen (ingest, the
//! engine's outlets, the directory reloader, a layer around every route);
//! what another part owns (the queue, the delivery targets) is read at
//! each scrape by [`Runtime`].

use axum::extract::{MatchedPath, Request};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::http::{lock, Shared};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RuleLabel {
    pub(crate) rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct VersionLabel {
    pub(crate) blake3: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabel {
    method: String,
    /// The route as written in the router (`/v1/alerts/{id}`), never the
    /// path asked for: the labels stay few whatever clients send.
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PartitionLabel {
    pub(crate) topic: String,
    pub(crate) partition: i32,
}

fn latency() -> Histogram {
    // 0.25 ms to about 4 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// Counted by the handlers and the engine.
pub(crate) struct Metrics {
    pub(crate) events_received: Counter,
    pub(crate) events_rejected: Counter,
    /// Alert lines recorded, per rule.
    pub(crate) alerts: Family<RuleLabel, Counter>,
    /// Alert lines an exception suppressed, per rule.
    pub(crate) suppressed: Family<RuleLabel, Counter>,
    /// Edits of the directory file applied, and refused.
    pub(crate) directory_reloads: Counter,
    pub(crate) directory_reload_failures: Counter,
    /// When the directory in force was loaded (Unix seconds), labelled
    /// with its BLAKE3; empty without a directory file.
    pub(crate) directory_loaded: Family<VersionLabel, Gauge>,
    /// Seconds from a `POST /v1/events` body read to its lines journaled
    /// and queued for the engine.
    pub(crate) ingest_seconds: Histogram,
    /// Seconds to answer, per method and route.
    pub(crate) request_seconds: Family<RouteLabel, Histogram, fn() -> Histogram>,
    /// Kafka messages taken from the assigned partitions.
    pub(crate) kafka_messages: Counter,
    /// Kafka offsets the brokers went past without a message (`vakt_ingest::kafka::Gap`).
    pub(crate) kafka_skipped: Counter,
    /// Partitions assigned to this node whose detector state came from a
    /// snapshot, and those read from their start instead.
    pub(crate) kafka_from_snapshot: Counter,
    pub(crate) kafka_from_start: Counter,
    /// Detector snapshots of partitions written, and their bytes.
    pub(crate) snapshots: Counter,
    pub(crate) snapshot_bytes: Counter,
    /// Messages behind the newest, per assigned Kafka partition.
    pub(crate) kafka_lag: Family<PartitionLabel, Gauge>,
    registry: Mutex<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            events_received: Counter::default(),
            events_rejected: Counter::default(),
            alerts: Family::default(),
            suppressed: Family::default(),
            directory_reloads: Counter::default(),
            directory_reload_failures: Counter::default(),
            directory_loaded: Family::default(),
            ingest_seconds: latency(),
            request_seconds: Family::new_with_constructor(latency),
            kafka_messages: Counter::default(),
            kafka_skipped: Counter::default(),
            kafka_from_snapshot: Counter::default(),
            kafka_from_start: Counter::default(),
            snapshots: Counter::default(),
            snapshot_bytes: Counter::default(),
            kafka_lag: Family::default(),
            registry: Mutex::new(Registry::default()),
        };
        {
            let mut r = lock(&m.registry);
            r.register(
                "vakt_events_received",
                "Events accepted and journaled (POST /v1/events, /v1/csp-report, followed files, Kafka)",
                m.events_received.clone(),
            );
            r.register(
                "vakt_events_rejected",
                "Event lines rejected as malformed",
                m.events_rejected.clone(),
            );
            r.register(
                "vakt_alerts",
                "Alert lines the engine recorded since start, per rule",
                m.alerts.clone(),
            );
            r.register(
                "vakt_alerts_suppressed",
                "Alert lines an exception suppressed since start (recorded, not delivered), per rule",
                m.suppressed.clone(),
            );
            r.register(
                "vakt_directory_reloads",
                "Edits of the directory file applied since start",
                m.directory_reloads.clone(),
            );
            r.register(
                "vakt_directory_reload_failures",
                "Edits of the directory file refused since start (the log says file:line and what to fix)",
                m.directory_reload_failures.clone(),
            );
            r.register(
                "vakt_directory_loaded_timestamp_seconds",
                "When the directory in force was loaded (Unix time), labelled with its content's BLAKE3",
                m.directory_loaded.clone(),
            );
            r.register(
                "vakt_ingest_seconds",
                "Seconds from a POST /v1/events body to its lines journaled and queued",
                m.ingest_seconds.clone(),
            );
            r.register(
                "vakt_http_request_seconds",
                "Seconds to answer a request, per method and route",
                m.request_seconds.clone(),
            );
            r.register(
                "vakt_kafka_messages",
                "Kafka messages taken from the assigned partitions since start",
                m.kafka_messages.clone(),
            );
            r.register(
                "vakt_kafka_skipped",
                "Kafka offsets the brokers went past without handing out a message (transaction markers, compaction, retention, a broker fault)",
                m.kafka_skipped.clone(),
            );
            r.register(
                "vakt_kafka_partitions_from_snapshot",
                "Partitions assigned to this node that took their detector state from a snapshot",
                m.kafka_from_snapshot.clone(),
            );
            r.register(
                "vakt_kafka_partitions_from_start",
                "Partitions assigned to this node that had no usable snapshot and were read from their first offset",
                m.kafka_from_start.clone(),
            );
            r.register(
                "vakt_detector_snapshots",
                "Detector snapshots of partitions written to the ledger",
                m.snapshots.clone(),
            );
            r.register(
                "vakt_detector_snapshot_bytes",
                "Bytes of the detector snapshots written",
                m.snapshot_bytes.clone(),
            );
            r.register(
                "vakt_kafka_lag",
                "Messages behind the newest, per assigned Kafka partition (librdkafka's statistics, every 5 s)",
                m.kafka_lag.clone(),
            );
        }
        m
    }
}

impl Metrics {
    /// Adds what is read at each scrape from the parts that own it.
    pub(crate) fn register_runtime(&self, runtime: Runtime) {
        lock(&self.registry).register_collector(Box::new(runtime));
    }

    /// Marks the directory version in force, replacing the one before.
    pub(crate) fn directory_version(&self, blake3: &str, loaded_unix: u64) {
        self.directory_loaded.clear();
        self.directory_loaded
            .get_or_create(&VersionLabel {
                blake3: blake3.to_owned(),
            })
            .set(loaded_unix as i64);
    }
}

/// The queue and the delivery targets, read at each scrape.
pub(crate) struct Runtime {
    pub(crate) queue: Arc<tokio::sync::Semaphore>,
    pub(crate) queue_events: usize,
    pub(crate) deliverer: Option<Arc<vakt_deliver::Deliverer>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("queue_events", &self.queue_events)
            .field("deliverer", &self.deliverer.is_some())
            .finish()
    }
}

impl Collector for Runtime {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let depth = self
            .queue_events
            .saturating_sub(self.queue.available_permits()) as i64;
        let gauge = ConstGauge::new(depth);
        gauge.encode(encoder.encode_descriptor(
            "vakt_queue_depth",
            "Events accepted but not yet processed by the engine.",
            None,
            gauge.metric_type(),
        )?)?;
        let Some(d) = &self.deliverer else {
            return Ok(());
        };
        let mut failures = encoder.encode_descriptor(
            "vakt_delivery_failures",
            "Failed attempts to deliver an alert, per target.",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for s in d.stats() {
            let label = [("target", s.name.as_str())];
            ConstCounter::new(s.failures.load(Ordering::Relaxed))
                .encode(failures.encode_family(&label)?)?;
        }
        let pending = ConstGauge::new(d.pending() as i64);
        pending.encode(encoder.encode_descriptor(
            "vakt_delivery_pending_bytes",
            "Bytes of queued alerts not yet delivered, summed over targets.",
            None,
            pending.metric_type(),
        )?)
    }
}

/// Times every request by its route.
pub(crate) async fn track(
    axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    // The method is the client's word: any other than the standard ones
    // is `other`, so a client cannot grow the label set without bound.
    let method = match *request.method() {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::OPTIONS => request.method().as_str(),
        _ => "other",
    };
    let label = RouteLabel {
        method: method.to_owned(),
        route: request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str)
            .to_owned(),
    };
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .request_seconds
        .get_or_create(&label)
        .observe(started.elapsed().as_secs_f64());
    response
}

pub(crate) async fn metrics(
    state: Shared,
    headers: axum::http::HeaderMap,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Response {
    if !state.open_metrics {
        if let Err(e) =
            crate::auth::authorize(&state, &headers, vakt_ledger::tokens::Role::Read).await
        {
            return e.into_response();
        }
    }
    if let Err(e) = crate::http::no_params("/metrics", q) {
        return e.into_response();
    }
    let mut out = String::new();
    if let Err(e) =
        prometheus_client::encoding::text::encode(&mut out, &lock(&state.metrics.registry))
    {
        return crate::http::ApiError::internal(format!("metrics not encoded: {e}"))
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
