//! `POST /v1/csp-report` (no token: browsers send these). Each violation
//! becomes a flow event (EVENTS.md sections 2 and 3): `host.name` is the
//! document's host and `destination.domain` the blocked URL's host. The
//! events are journaled like `POST /v1/events`.
//!
//! Anyone can send these, so what a sender may cost is bounded by what
//! they cannot choose:
//! - bodies up to [`BODY_LIMIT`] (413 past it);
//! - every report of a body counts against a token bucket per client
//!   address ([`CspLimits::per_address_per_minute`]) and one for all
//!   senders together, in tables with a hard capacity and O(1) eviction
//!   (429 with `Retry-After`; nothing of the body is taken);
//! - only reports from configured document hosts are taken (the
//!   `--csp-host` list, the directory's `[[egress_allow]]` hosts and its
//!   `[[page]]` hosts), so a sender cannot plant new hosts in the
//!   detectors' state; reports from other pages are counted as ignored;
//! - CSP events wait for the engine in their own small queue, so a flood of
//!   reports cannot fill the queue `POST /v1/events` uses.

use crate::http::{lock, read_body, ApiError, Shared};
use crate::ingest::journal_events;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Extensions, HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use vakt_event::{Origin, Timestamp};
use vakt_ingest::csp::{split_url, violations};
use vakt_limit::Buckets;

/// Largest report body: 64 KiB.
pub const BODY_LIMIT: usize = 64 << 10;
/// Reports accepted per minute from one client address by default.
pub const DEFAULT_PER_MINUTE: u32 = 60;
/// Reports accepted per minute from all senders together by default.
pub const DEFAULT_GLOBAL_PER_MINUTE: u32 = 6_000;
/// CSP events that may wait for the engine at once.
pub const QUEUE_EVENTS: usize = 4_096;
/// Client addresses the limiter remembers at most.
const ADDRESSES: NonZeroUsize = NonZeroUsize::new(10_000).expect("not zero");

/// See the module doc.
#[derive(Clone, Debug)]
pub struct CspLimits {
    pub per_address_per_minute: u32,
    pub global_per_minute: u32,
    /// Document hosts whose reports are taken (lower case), besides the
    /// directory's `[[egress_allow]]` hosts.
    pub hosts: Vec<String>,
}

impl Default for CspLimits {
    fn default() -> Self {
        CspLimits {
            per_address_per_minute: DEFAULT_PER_MINUTE,
            global_per_minute: DEFAULT_GLOBAL_PER_MINUTE,
            hosts: Vec::new(),
        }
    }
}

/// The buckets (behind one lock) and the hosts (the configured ones, and
/// the directory's, swapped when the directory is reloaded), as the
/// handler uses them.
pub(crate) struct Intake {
    buckets: Mutex<(Buckets<IpAddr>, Buckets<()>)>,
    configured: Vec<String>,
    hosts: std::sync::RwLock<BTreeSet<String>>,
}

/// Page hosts whose reports are taken, in lower case.
fn hosts(configured: &[String], directory: &vakt_event::Directory) -> BTreeSet<String> {
    configured
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .chain(
            directory
                .egress_allow
                .iter()
                .map(|e| e.host.to_ascii_lowercase()),
        )
        .chain(
            directory
                .pages
                .iter()
                .map(|p| vakt_event::page::host_of(p.url.get_ref())),
        )
        .collect()
}

impl Intake {
    pub(crate) fn new(limits: &CspLimits, directory: &vakt_event::Directory) -> Intake {
        let per = limits.per_address_per_minute.max(1);
        let global = limits.global_per_minute.max(1);
        Intake {
            buckets: Mutex::new((
                Buckets::new(per, per, ADDRESSES),
                Buckets::new(global, global, NonZeroUsize::MIN),
            )),
            configured: limits.hosts.clone(),
            hosts: std::sync::RwLock::new(hosts(&limits.hosts, directory)),
        }
    }

    /// Takes the `[[egress_allow]]` hosts of an edited directory.
    pub(crate) fn set_directory(&self, directory: &vakt_event::Directory) {
        let new = hosts(&self.configured, directory);
        *self.hosts.write().unwrap_or_else(|p| p.into_inner()) = new;
    }

    pub(crate) fn takes(&self, host: &str) -> bool {
        self.hosts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(host)
    }

    /// Takes `n` reports from `client`'s bucket and the global one, or says
    /// in how many seconds to try again.
    fn take(&self, client: IpAddr, n: usize, at: Instant) -> Result<(), u32> {
        let mut guard = lock(&self.buckets);
        let (per_address, global) = &mut *guard;
        for _ in 0..n {
            per_address
                .take(client, at)
                .and_then(|()| global.take((), at))
                .map_err(|wait| wait.as_secs_f64().ceil().max(1.0) as u32)?;
        }
        Ok(())
    }
}

pub(crate) async fn post_report(
    state: Shared,
    ext: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ![
        "application/csp-report",
        "application/reports+json",
        "application/json",
    ]
    .iter()
    .any(|t| content_type.starts_with(t))
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type `{content_type}`: send application/csp-report or application/reports+json"),
        ));
    }
    let bytes = read_body(&headers, body, BODY_LIMIT).await?;
    let found =
        violations(&content_type, &bytes).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if found.is_empty() {
        return Ok(Json(json!({ "accepted": 0, "ignored": 0 })));
    }
    if let Some(v) = found.iter().find(|v| split_url(&v.document).is_none()) {
        return Err(ApiError::bad_request(format!(
            "document URL `{}` has no host; a report names the page it came from",
            v.document.escape_debug()
        )));
    }
    let client = ext
        .get::<ConnectInfo<crate::ClientAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| {
            c.0 .0.ip().to_canonical()
        });
    let taken = state.csp.take(client, found.len(), Instant::now());
    if let Err(secs) = taken {
        return Err(ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "too many reports from {client}; nothing was accepted, send again after Retry-After seconds"
            ),
            retry_after: Some(secs),
        });
    }
    let at = Timestamp::now();
    let source = Origin::new(Arc::from(crate::journal::FILE_NAME), 0);
    let mut good = Vec::new();
    let mut ignored = 0;
    for v in &found {
        // `inline`, `eval`, `data:` and the like name no destination.
        let (Some((_, doc_host, _)), Some((_, dest, dest_port))) =
            (split_url(&v.document), split_url(&v.blocked))
        else {
            ignored += 1;
            continue;
        };
        let doc_host = doc_host.to_ascii_lowercase();
        if !state.csp.takes(&doc_host) {
            ignored += 1;
            continue;
        }
        let mut line = json!({
            "@timestamp": at,
            "event.kind": "flow",
            "host.name": doc_host,
            "destination.domain": dest.to_ascii_lowercase(),
            "source.bytes": 0,
            "url.path": v.blocked,
            "csp.directive": v.directive,
        });
        if let Some(p) = dest_port {
            line["destination.port"] = json!(p);
        }
        let text = line.to_string();
        match vakt_ingest::parsers::jsonl::parse_event(&text, &source) {
            Ok(ev) => good.push((ev, text)),
            Err(_) => ignored += 1,
        }
    }
    state.metrics.events_rejected.inc_by(ignored as u64);
    let state = state.0.clone();
    let n =
        crate::http::blocking(move || journal_events(&state, &state.csp_queue, QUEUE_EVENTS, good))
            .await?;
    Ok(Json(json!({ "accepted": n, "ignored": ignored })))
}
