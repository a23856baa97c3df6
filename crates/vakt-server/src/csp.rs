//! `POST /v1/csp-report` (no token: browsers send these). Each violation
//! becomes a flow event (EVENTS.md sections 2 and 3): `host.name` is the
//! document's host and `destination.domain` the blocked URL's host. The
//! events are journaled like `POST /v1/events`.
//!
//! Bounded: bodies up to [`BODY_LIMIT`] (413 past it) and a token bucket
//! per document origin (429 with `Retry-After` when empty), in a map of at
//! most [`MAX_ORIGINS`] origins.

use crate::http::{lock, read_body, ApiError, Shared};
use crate::ingest::journal_events;
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use vakt_event::{Origin, Timestamp};

/// Largest report body: 64 KiB.
pub const BODY_LIMIT: usize = 64 << 10;
/// Reports accepted per minute from one document origin by default.
pub const DEFAULT_PER_MINUTE: u32 = 60;
/// Origins the rate limiter remembers at most.
pub const MAX_ORIGINS: usize = 10_000;

/// A token bucket per origin.
pub(crate) struct RateLimiter {
    per_minute: u32,
    buckets: HashMap<String, (f64, Instant)>,
}

impl RateLimiter {
    pub(crate) fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute: per_minute.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `origin`, or says in how many seconds one is there.
    pub(crate) fn take(&mut self, origin: &str, at: Instant) -> Result<(), u32> {
        let cap = self.per_minute as f64;
        let rate = cap / 60.0;
        if !self.buckets.contains_key(origin) && self.buckets.len() >= MAX_ORIGINS {
            // Forget the origins whose bucket has refilled: they lose nothing.
            self.buckets.retain(|_, (tokens, last)| {
                *tokens + at.saturating_duration_since(*last).as_secs_f64() * rate < cap
            });
            if self.buckets.len() >= MAX_ORIGINS {
                self.buckets.clear();
            }
        }
        let (tokens, last) = self.buckets.entry(origin.to_owned()).or_insert((cap, at));
        *tokens = (*tokens + at.saturating_duration_since(*last).as_secs_f64() * rate).min(cap);
        *last = at;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u32)
        }
    }
}

/// A URL's scheme, host and port, as written (`https`, `shop.example`, `Some(8443)`).
fn split_url(url: &str) -> Option<(&str, &str, Option<u16>)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) if !p.is_empty() => Some(p.parse().ok()?),
        _ => None,
    };
    Some((scheme, host, port))
}

/// One violation: the document's URL and the blocked one.
struct Violation {
    document: String,
    blocked: String,
    directive: String,
}

fn str_of<'a>(v: &'a Value, keys: &[&str]) -> &'a str {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .unwrap_or("")
}

fn violations(content_type: &str, body: &[u8]) -> Result<Vec<Violation>, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not JSON ({e}); send {{\"csp-report\": {{...}}}} or a Reporting API array"
        ))
    })?;
    let mut out = Vec::new();
    if content_type.starts_with("application/reports+json") || v.is_array() {
        let Some(list) = v.as_array() else {
            return Err(ApiError::bad_request(
                "application/reports+json must be an array of reports",
            ));
        };
        for r in list {
            if r.get("type").and_then(Value::as_str) != Some("csp-violation") {
                continue;
            }
            let body = r.get("body").unwrap_or(&Value::Null);
            let document = match str_of(body, &["documentURL", "document-uri"]) {
                "" => str_of(r, &["url"]),
                d => d,
            };
            out.push(Violation {
                document: document.to_owned(),
                blocked: str_of(body, &["blockedURL", "blocked-uri"]).to_owned(),
                directive: str_of(body, &["effectiveDirective", "violatedDirective"]).to_owned(),
            });
        }
    } else {
        let Some(r) = v.get("csp-report") else {
            return Err(ApiError::bad_request(
                "application/csp-report bodies are {\"csp-report\": {...}}; the key is missing",
            ));
        };
        out.push(Violation {
            document: str_of(r, &["document-uri"]).to_owned(),
            blocked: str_of(r, &["blocked-uri"]).to_owned(),
            directive: str_of(r, &["effective-directive", "violated-directive"]).to_owned(),
        });
    }
    Ok(out)
}

pub(crate) async fn post_report(
    state: Shared,
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
    let found = violations(&content_type, &bytes)?;
    let Some(first) = found.first() else {
        return Ok(Json(json!({ "accepted": 0, "ignored": 0 })));
    };
    let Some((scheme, host, port)) = split_url(&first.document) else {
        return Err(ApiError::bad_request(format!(
            "document URL `{}` has no host; a report names the page it came from",
            first.document.escape_debug()
        )));
    };
    let origin = match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    };
    if let Err(secs) = lock(&state.csp_limiter).take(&origin, Instant::now()) {
        return Err(ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "too many reports from {origin}; nothing was accepted, send again after Retry-After seconds"
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
        let mut line = json!({
            "@timestamp": at,
            "event.kind": "flow",
            "host.name": doc_host.to_ascii_lowercase(),
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
    state
        .metrics
        .events_rejected
        .fetch_add(ignored as u64, Ordering::Relaxed);
    let state = state.0.clone();
    let n = crate::http::blocking(move || journal_events(&state, good)).await?;
    Ok(Json(json!({ "accepted": n, "ignored": ignored })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn urls_split_into_scheme_host_and_port() {
        assert_eq!(
            split_url("https://shop.example:8443/a?b"),
            Some(("https", "shop.example", Some(8443)))
        );
        assert_eq!(
            split_url("https://u:p@[2001:db8::1]/x"),
            Some(("https", "2001:db8::1", None))
        );
        assert_eq!(split_url("inline"), None);
        assert_eq!(split_url("data:"), None);
    }

    #[test]
    fn the_bucket_refills_and_the_map_stays_bounded() {
        let mut r = RateLimiter::new(60);
        let t = Instant::now();
        for _ in 0..60 {
            r.take("https://a", t).unwrap();
        }
        assert_eq!(r.take("https://a", t), Err(1));
        assert!(r.take("https://b", t).is_ok());
        assert!(r.take("https://a", t + Duration::from_secs(1)).is_ok());
        for i in 0..MAX_ORIGINS + 10 {
            let _ = r.take(&format!("https://h{i}"), t + Duration::from_secs(120));
        }
        assert!(r.buckets.len() <= MAX_ORIGINS);
    }
}
