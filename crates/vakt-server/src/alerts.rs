//! `GET /v1/alerts`: alert lines filtered by rule, severity, actor,
//! organisation and time, in cursor pages; alerts an exception suppressed
//! only with `suppressed=true`.

use axum::extract::RawQuery;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use vakt_event::Severity;
use vakt_ledger::alert_query::{AlertCursor, AlertQuery};
use vakt_ledger::tokens::Role;

use crate::auth::authorize;
use crate::http::{
    blocking, encode_query, lock, parse_bool, parse_count, parse_time, query_pairs, ApiError,
    Shared,
};

/// Most alerts one `GET /v1/alerts` returns.
const MAX_ALERTS: usize = 10_000;

pub(crate) async fn list_alerts(
    state: Shared,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Role::Read).await?;
    let mut f = AlertQuery {
        limit: 100,
        suppressed: Some(false),
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
            "suppressed" => f.suppressed = Some(parse_bool("suppressed", &v)?),
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
                    "unknown query parameter `{k}`; /v1/alerts takes rule, severity, actor, organization, since, until, suppressed, limit, cursor and offset"
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
