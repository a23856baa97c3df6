//! `GET /v1/audit`: the audit trail, who did what to what, when, from
//! where and why; newest last.

use crate::auth::authorize;
use crate::http::{blocking, lock, parse_count, parse_time, query_pairs, ApiError, Shared};
use axum::extract::RawQuery;
use axum::http::HeaderMap;
use axum::Json;
use vakt_ledger::audit::{AuditQuery, AuditRecord};
use vakt_ledger::tokens::Role;

/// `GET /v1/audit?subject&action&who&since&limit`.
pub(crate) async fn list_audit(
    state: Shared,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    authorize(&state, &headers, Role::Analyst).await?;
    let mut query = AuditQuery {
        limit: 1_000,
        ..Default::default()
    };
    let some = |v: String| (!v.is_empty()).then_some(v);
    for (k, v) in query_pairs(q)? {
        match k.as_str() {
            "subject" => query.subject = some(v),
            "action" => query.action = some(v),
            "who" => query.who = some(v),
            "since" => query.since = Some(parse_time("since", &v)?),
            "limit" => query.limit = parse_count("limit", &v, 10_000)?,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{k}`; /v1/audit takes subject, action, who, since and limit"
                )))
            }
        }
    }
    let state = state.0.clone();
    blocking(move || {
        lock(&state.reader)
            .audit_query(&query)
            .map(Json)
            .map_err(ApiError::internal)
    })
    .await
}
