//! `POST /v1/events`: a batch of event lines, parsed (bad lines named by
//! number), journaled and synced before the answer, then handed to the
//! engine thread; 429 with Retry-After when its queue is full.

use crate::{worker, State};
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Semaphore;
use vakt_event::{Event, Origin};
use vakt_ledger::tokens::Role;

use crate::auth::authorize;
use crate::http::{blocking, lock, read_body, ApiError, Shared};

/// What became of a batch: parsed events with their text, and rejections.
struct Parsed {
    good: Vec<(Event, String)>,
    rejected: Vec<serde_json::Value>,
    lines: usize,
}

fn parse_batch(bytes: &[u8]) -> Parsed {
    let origin = Origin::new(Arc::from(crate::journal::FILE_NAME), 0);
    let mut p = Parsed {
        good: Vec::new(),
        rejected: Vec::new(),
        lines: 0,
    };
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        p.lines += 1;
        let line = i + 1;
        let text = match std::str::from_utf8(raw) {
            Ok(t) => t,
            Err(e) => {
                p.rejected.push(json!({"line": line, "error": format!("not UTF-8 ({e}); send JSON text in UTF-8")}));
                continue;
            }
        };
        match vakt_ingest::parsers::jsonl::parse_event(text, &origin) {
            Ok(ev) => p.good.push((ev, text.to_owned())),
            Err(e) => p
                .rejected
                .push(json!({"line": line, "error": e.to_string()})),
        }
    }
    p
}

pub(crate) async fn post_events(
    state: Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Role::Ingest).await?;
    if let Some(e) = state.failure.get() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the engine stopped ({e}); nothing was accepted, send again after vakt serve restarts"),
        ));
    }
    let bytes = read_body(&headers, body, state.body_limit).await?;
    let state = state.0.clone();
    let started = std::time::Instant::now();
    blocking(move || {
        let Parsed {
            good,
            rejected,
            lines,
        } = parse_batch(&bytes);
        state
            .metrics
            .events_rejected
.inc_by(rejected.len() as u64);
        let n = journal_events(&state, &state.queue, state.queue_events, good)?;
        state
            .metrics
            .ingest_seconds
            .observe(started.elapsed().as_secs_f64());
        let status = if n == 0 && lines > 0 {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        let mut answer = json!({ "accepted": n, "rejected": rejected });
        if status == StatusCode::BAD_REQUEST {
            answer["error"] = json!("no line of the batch was accepted; fix the lines listed in `rejected` (EVENTS.md sections 1 and 2)");
        }
        Ok((status, Json(answer)).into_response())
    })
    .await
}

/// Journals events (with their text) and hands them to the engine; all
/// or nothing. Returns how many were accepted.
/// `queue` (holding `capacity` events) is where the events wait for the
/// engine: the API's, or the CSP intake's own.
pub(crate) fn journal_events(
    state: &State,
    queue: &Arc<Semaphore>,
    capacity: usize,
    good: Vec<(Event, String)>,
) -> Result<usize, ApiError> {
    let n = good.len();
    if n == 0 {
        return Ok(0);
    }
    if n > capacity {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{n} events in one batch are more than the queue holds ({capacity}); send smaller batches"
            ),
        ));
    }
    let permit = queue
        .clone()
        .try_acquire_many_owned(n as u32)
        .map_err(|_| ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: "the engine's queue is full; nothing of this batch was accepted, send it again after Retry-After seconds".into(),
            retry_after: Some(1),
        })?;
    let mut ingest = lock(&state.ingest);
    let first = ingest
        .journal
        .append(good.iter().map(|(_, t)| t.as_str()))
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot write the journal ({e}); nothing was accepted, send again later"),
            )
        })?;
    let events: Vec<Event> = good
        .into_iter()
        .zip(first..)
        .map(|((mut ev, _), k)| {
            ev.origin_mut().line = k;
            ev
        })
        .collect();
    let last_line = first + n as u64 - 1;
    // Journaled: even if the engine stopped just now, the next
    // start replays these lines, so they count as accepted.
    let _ = ingest.tx.send(worker::Msg::Batch {
        events,
        last_line,
        permit,
    });
    state.metrics.events_received.inc_by(n as u64);
    Ok(n)
}
