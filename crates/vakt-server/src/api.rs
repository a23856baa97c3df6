//! Routes, authentication and the JSON error shape `{"error": "..."}`.

use crate::{worker, State};
use axum::body::{to_bytes, Body};
use axum::extract::{Path, RawQuery};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use vakt_event::{Event, Origin, Severity, Timestamp};
use vakt_ledger::alert_query::{AlertCursor, AlertQuery};
use vakt_ledger::decisions::Decision;
use vakt_ledger::tokens::{Role, TokenInfo};

/// Largest `POST /v1/decisions` body.
const DECISION_BODY_LIMIT: usize = 64 << 10;
/// Most alerts one `GET /v1/alerts` returns.
const MAX_ALERTS: usize = 10_000;

/// Every (method, path) of the HTTP API, written as in docs/openapi.yaml
/// (`{name}` for a path parameter), which documents exactly these. The web
/// console's HTML pages (`/`, `/login`, `/alerts/{id}`, ...) are not listed.
pub fn routes() -> &'static [(&'static str, &'static str)] {
    &[
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("POST", "/v1/events"),
        ("POST", "/v1/csp-report"),
        ("GET", "/v1/decisions"),
        ("POST", "/v1/decisions"),
        ("DELETE", "/v1/decisions/{id}"),
        ("GET", "/v1/alerts"),
        ("GET", "/v1/alerts/{id}"),
        ("GET", "/v1/incidents"),
        ("GET", "/v1/scope"),
        ("GET", "/v1/canaries"),
        ("GET", "/v1/exposure"),
        ("POST", "/v1/reports/{alert_id}"),
    ]
}

pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/decisions", get(list_decisions).post(add_decision))
        .route("/v1/decisions/{id}", delete(delete_decision))
        .route("/v1/events", axum::routing::post(post_events))
        .route("/v1/alerts", get(list_alerts))
        .route("/v1/alerts/{id}", get(crate::views::one_alert))
        .route("/v1/incidents", get(crate::views::incidents))
        .route("/v1/scope", get(crate::views::scope))
        .route("/v1/canaries", get(crate::views::canaries))
        .route("/v1/exposure", get(crate::views::exposure))
        .route(
            "/v1/reports/{alert_id}",
            axum::routing::post(crate::views::report),
        )
        .route(
            "/v1/csp-report",
            axum::routing::post(crate::csp::post_report),
        )
        .route("/metrics", get(crate::metrics::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

pub(crate) type Shared = axum::extract::State<Arc<State>>;

/// An answer other than success: a status and a sentence that says what to do.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) retry_after: Option<u32>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"vakt\""),
            );
        }
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// Runs ledger work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("request task failed: {e}"))))
}

pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The token of the request, if it may do what `needed` allows. The
/// secret is never logged or echoed.
pub(crate) async fn authorize(
    state: &Arc<State>,
    headers: &HeaderMap,
    needed: Role,
) -> Result<TokenInfo, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m);
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "no token: send `Authorization: Bearer <token>`; `vakt token create --name NAME --role ROLE` makes one",
        ));
    };
    let secret = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_owned())
        })
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
    let state2 = state.clone();
    let token = blocking(move || {
        lock(&state2.reader)
            .token(&secret)
            .map_err(ApiError::internal)
    })
    .await?
    .ok_or_else(|| {
        unauthorized(
            "the token is not known (mistyped, or revoked); `vakt token list` shows the tokens",
        )
    })?;
    if !token.role.allows(needed) {
        let why = match needed {
            Role::Ingest => "posting events needs an ingest token",
            Role::Read => "reading needs a read or admin token",
            Role::Admin => "changing decisions and drafting reports need an admin token",
        };
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("token {} has the role {}; {why}", token.name, token.role),
        ));
    }
    Ok(token)
}

async fn healthz(state: Shared) -> Response {
    match state.failure.get() {
        None => Json(json!({ "status": "ok" })).into_response(),
        Some(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "failing", "error": e })),
        )
            .into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route; the routes are listed in docs/EVENTS.md section 7 and docs/openapi.yaml",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not take that method (docs/EVENTS.md section 7)",
    )
}

/// `a=1&b=2` as pairs, percent-decoded.
pub(crate) fn query_pairs(q: Option<String>) -> Result<Vec<(String, String)>, ApiError> {
    let q = q.unwrap_or_default();
    let mut out = Vec::new();
    for part in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let dec = |s: &str| {
            percent_decode(s).ok_or_else(|| {
                ApiError::bad_request(format!("query `{part}` is not valid percent-encoding"))
            })
        };
        out.push((dec(k)?, dec(v)?));
    }
    Ok(out)
}

/// Percent-decoding with `+` as space, strict where `form_urlencoded` is
/// lossy: a bad escape or invalid UTF-8 is refused, not replaced.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "`{key}={v}`: write {key}=true or {key}=false"
        ))),
    }
}

async fn list_decisions(
    state: Shared,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<Decision>>, ApiError> {
    authorize(&state, &headers, Role::Read).await?;
    let mut all = false;
    for (k, v) in query_pairs(q)? {
        match k.as_str() {
            "all" => all = parse_bool("all", &v)?,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{k}`; /v1/decisions takes all=true"
                )))
            }
        }
    }
    let state = state.0.clone();
    let list = blocking(move || {
        lock(&state.reader)
            .decisions((!all).then(Timestamp::now))
            .map_err(ApiError::internal)
    })
    .await?;
    Ok(Json(list))
}

/// A decision as a person writes it, over the API or in the console.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewDecision {
    pub scope: String,
    pub value: String,
    pub action: String,
    pub ttl: String,
    pub reason: Option<String>,
}

impl NewDecision {
    /// The decision, made now; `by` is the reason when none is given.
    pub(crate) fn decide(self, by: String) -> Result<Decision, vakt_event::DecisionError> {
        Decision::manual(
            self.scope.parse()?,
            &self.value,
            self.action.parse()?,
            self.reason.unwrap_or(by),
            Timestamp::now(),
            vakt_event::decision::ttl_ms(&self.ttl)?,
        )
    }
}

/// Reads a body of at most `limit` bytes, or answers 413.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {limit} bytes; send it in smaller batches"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    to_bytes(body, limit).await.map_err(|e| {
        if std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_else(|| e.to_string())
            .contains("length limit")
        {
            too_large()
        } else {
            ApiError::bad_request(format!("cannot read the body: {e}"))
        }
    })
}

async fn add_decision(state: Shared, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let token = authorize(&state, &headers, Role::Admin).await?;
    let bytes = read_body(&headers, body, DECISION_BODY_LIMIT).await?;
    let new: NewDecision = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be a JSON object {{\"scope\", \"value\", \"action\", \"ttl\", \"reason\" (optional)}}: {e}"
        ))
    })?;
    let d = new
        .decide(format!("added over the API by token {}", token.name))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let state = state.0.clone();
    let d = blocking(move || {
        lock(&state.writer)
            .put_decision(&d)
            .map_err(ApiError::internal)?;
        Ok(d)
    })
    .await?;
    let mut r = (StatusCode::CREATED, Json(&d)).into_response();
    // The id holds the value as given (spaces, `/`, non-ASCII): encoded, so
    // that the Location is one path segment that DELETE finds.
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/decisions/{}", encode_query(&d.id))) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

async fn delete_decision(
    state: Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &headers, Role::Admin).await?;
    let state = state.0.clone();
    let id2 = id.clone();
    let found = blocking(move || {
        lock(&state.writer)
            .delete_decision(&id2)
            .map_err(ApiError::internal)
    })
    .await?;
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no decision {id}; GET /v1/decisions?all=true lists them"),
        ))
    }
}

/// `since=`/`until=` as RFC 3339.
pub(crate) fn parse_time(key: &str, v: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse(v).map_err(|_| {
        ApiError::bad_request(format!(
            "`{key}={v}` is not a time; write RFC 3339, e.g. {key}=2026-11-02T08:00:00Z"
        ))
    })
}

pub(crate) fn parse_count(key: &str, v: &str, max: usize) -> Result<usize, ApiError> {
    v.parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| ApiError::bad_request(format!("`{key}={v}`: give a number from 1 to {max}")))
}

/// Percent-encodes a query value.
pub(crate) fn encode_query(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn list_alerts(
    state: Shared,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Role::Read).await?;
    let mut f = AlertQuery {
        limit: 100,
        ..Default::default()
    };
    // Kept to build the next page's link: every parameter but the cursor and offset.
    let mut kept = Vec::new();
    for (k, v) in query_pairs(q)? {
        match k.as_str() {
            "rule" | "actor" | "organization" | "severity" | "since" | "until" if v.is_empty() => {
                continue
            }
            "rule" => f.rule = Some(v.clone()),
            "actor" => f.actor = Some(v.clone()),
            "organization" => f.organization = Some(v.clone()),
            "severity" => {
                f.min_severity = Some(
                    serde_json::from_value::<Severity>(json!(v)).map_err(|_| {
                        ApiError::bad_request(format!(
                            "`severity={v}`: use low, medium, high or critical (that severity and above)"
                        ))
                    })?,
                )
            }
            "since" => f.since = Some(parse_time("since", &v)?),
            "until" => f.until = Some(parse_time("until", &v)?),
            "limit" => f.limit = parse_count("limit", &v, MAX_ALERTS)?,
            "cursor" => {
                f.cursor = Some(AlertCursor::decode(&v).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`cursor={v}` is not a cursor; pass on the one from the previous answer's `Vakt-Next-Cursor` header"
                    ))
                })?);
                continue;
            }
            "offset" => {
                f.offset = v.parse().map_err(|_| {
                    ApiError::bad_request(format!("`offset={v}`: give a number of alerts to skip"))
                })?;
                continue;
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{k}`; /v1/alerts takes rule, severity, actor, organization, since, until, limit, cursor and offset"
                )))
            }
        }
        kept.push((k, v));
    }
    let state = state.0.clone();
    let page = blocking(move || {
        lock(&state.reader)
            .alert_page(&f)
            .map_err(ApiError::internal)
    })
    .await?;
    // The stored lines are already JSON: join them into an array as they are.
    let body = format!("[{}]", page.lines.join(","));
    let mut r = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(next) = page.next {
        let cursor = next.encode();
        let mut link = String::from("/v1/alerts?");
        for (k, v) in &kept {
            link.push_str(&format!("{k}={}&", encode_query(v)));
        }
        link.push_str(&format!("cursor={}", encode_query(&cursor)));
        if let Ok(v) = HeaderValue::from_str(&format!("<{link}>; rel=\"next\"")) {
            r.headers_mut().insert(header::LINK, v);
        }
        if let Ok(v) = HeaderValue::from_str(&cursor) {
            r.headers_mut().insert("vakt-next-cursor", v);
        }
    }
    Ok(r)
}

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

async fn post_events(state: Shared, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    authorize(&state, &headers, Role::Ingest).await?;
    if let Some(e) = state.failure.get() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the engine stopped ({e}); nothing was accepted, send again after vakt serve restarts"),
        ));
    }
    let bytes = read_body(&headers, body, state.body_limit).await?;
    let state = state.0.clone();
    blocking(move || {
        let Parsed {
            good,
            rejected,
            lines,
        } = parse_batch(&bytes);
        state
            .metrics
            .events_rejected
            .fetch_add(rejected.len() as u64, Ordering::Relaxed);
        let n = journal_events(&state, good)?;
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
pub(crate) fn journal_events(state: &State, good: Vec<(Event, String)>) -> Result<usize, ApiError> {
    let n = good.len();
    if n == 0 {
        return Ok(0);
    }
    if n > state.queue_events {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{n} events in one batch are more than the queue holds ({}); send smaller batches",
                state.queue_events
            ),
        ));
    }
    let permit = state
        .queue
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
    state
        .metrics
        .events_received
        .fetch_add(n as u64, Ordering::Relaxed);
    Ok(n)
}
