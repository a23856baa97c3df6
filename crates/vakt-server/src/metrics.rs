//! `GET /metrics`: counters in the Prometheus text format, for a `read`
//! token (or anyone, with `Config::open_metrics`): alert counts per rule
//! and queue depth tell an attacker whether they were seen.

use crate::http::{lock, Shared};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counted by the handlers and the engine.
#[derive(Default)]
pub(crate) struct Metrics {
    pub(crate) events_received: AtomicU64,
    pub(crate) events_rejected: AtomicU64,
    /// Alert lines recorded, per rule.
    pub(crate) alerts: Mutex<BTreeMap<String, u64>>,
    /// Alert lines an exception suppressed, per rule.
    pub(crate) suppressed: Mutex<BTreeMap<String, u64>>,
    /// Edits of the directory file applied, and refused.
    pub(crate) directory_reloads: AtomicU64,
    pub(crate) directory_reload_failures: AtomicU64,
    /// The directory file's version in force: its BLAKE3 and when it was
    /// loaded (Unix seconds); none without a directory file.
    pub(crate) directory_version: Mutex<Option<(String, u64)>>,
}

/// A label value with `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
    let m = &state.metrics;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, kind: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    counter(
        "vakt_events_received_total",
        "Events accepted and journaled (POST /v1/events and /v1/csp-report).",
        "counter",
        vec![(String::new(), m.events_received.load(Ordering::Relaxed))],
    );
    counter(
        "vakt_events_rejected_total",
        "Event lines rejected as malformed.",
        "counter",
        vec![(String::new(), m.events_rejected.load(Ordering::Relaxed))],
    );
    counter(
        "vakt_alerts_total",
        "Alert lines the engine recorded since start, per rule.",
        "counter",
        lock(&m.alerts)
            .iter()
            .map(|(r, n)| (format!("{{rule=\"{}\"}}", label(r)), *n))
            .collect(),
    );
    counter(
        "vakt_alerts_suppressed_total",
        "Alert lines an exception suppressed since start (recorded, not delivered), per rule.",
        "counter",
        lock(&m.suppressed)
            .iter()
            .map(|(r, n)| (format!("{{rule=\"{}\"}}", label(r)), *n))
            .collect(),
    );
    counter(
        "vakt_queue_depth",
        "Events accepted but not yet processed by the engine.",
        "gauge",
        vec![(
            String::new(),
            state
                .queue_events
                .saturating_sub(state.queue.available_permits()) as u64,
        )],
    );
    counter(
        "vakt_directory_reloads_total",
        "Edits of the directory file applied since start.",
        "counter",
        vec![(String::new(), m.directory_reloads.load(Ordering::Relaxed))],
    );
    counter(
        "vakt_directory_reload_failures_total",
        "Edits of the directory file refused since start (the log says file:line and what to fix).",
        "counter",
        vec![(
            String::new(),
            m.directory_reload_failures.load(Ordering::Relaxed),
        )],
    );
    let version = lock(&m.directory_version).clone();
    counter(
        "vakt_directory_loaded_timestamp_seconds",
        "When the directory in force was loaded (Unix time), labelled with its content's BLAKE3.",
        "gauge",
        version
            .map(|(hash, at)| (format!("{{blake3=\"{}\"}}", label(&hash)), at))
            .into_iter()
            .collect(),
    );
    let (failures, pending) = match &state.deliverer {
        Some(d) => (
            d.stats()
                .iter()
                .map(|s| {
                    (
                        format!("{{target=\"{}\"}}", label(&s.name)),
                        s.failures.load(Ordering::Relaxed),
                    )
                })
                .collect(),
            d.pending(),
        ),
        None => (Vec::new(), 0),
    };
    counter(
        "vakt_delivery_failures_total",
        "Failed attempts to deliver an alert, per target.",
        "counter",
        failures,
    );
    counter(
        "vakt_delivery_pending_bytes",
        "Bytes of queued alerts not yet delivered, summed over targets.",
        "gauge",
        vec![(String::new(), pending)],
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
