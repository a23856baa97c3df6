//! `GET /v1/incidents`, `GET` and `PATCH /v1/incidents/{id}`: incidents
//! with what people decided about them, and the changes analysts make
//! (status, owner, classification with a reason, notes), each recorded in
//! the audit trail with the token, the client address and the reason.
//!
//! `{id}` is an incident's id (`ACTOR/FIRST-ALERT`, its `/` sent as
//! `%2F`) or the id of any alert it holds.

use crate::auth::authorize;
use crate::http::{
    blocking, lock, no_params, parse_count, parse_time, query_pairs, read_body, ApiError, Shared,
};
use axum::body::Body;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use vakt_event::Timestamp;
use vakt_ledger::incident_workflow::{IncidentChange, IncidentStatus};
use vakt_ledger::incidents::Incident;
use vakt_ledger::tokens::Role;
use vakt_ledger::{Ledger, LedgerError};

/// Largest `PATCH /v1/incidents/{id}` body: a note and a reason fit.
const CHANGE_BODY_LIMIT: usize = 16 << 10;

/// Most audit records shown with one incident.
const HISTORY: usize = 1_000;

/// `GET /v1/incidents?since&until&actor&status&owner&limit`.
pub(crate) async fn list_incidents(
    state: Shared,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Role::Read).await?;
    let (mut since, mut until, mut actor, mut limit) =
        (Timestamp(i64::MIN), Timestamp(i64::MAX), None, 100);
    let (mut statuses, mut owner) = (Vec::new(), None);
    for (k, v) in query_pairs(q)? {
        match k.as_str() {
            "since" => since = parse_time("since", &v)?,
            "until" => until = parse_time("until", &v)?,
            "actor" if !v.is_empty() => actor = Some(v),
            "actor" => {}
            "status" => {
                for s in v.split(',').filter(|s| !s.is_empty()) {
                    statuses.push(IncidentStatus::parse(s).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "`status={s}`: write new, acknowledged, contained or resolved (several with commas)"
                        ))
                    })?);
                }
            }
            "owner" => owner = Some(v),
            "limit" => limit = parse_count("limit", &v, 10_000)?,
            _ => {
                return Err(ApiError::bad_request(format!(
                "unknown query parameter `{k}`; /v1/incidents takes since, until, actor, status, owner and limit"
            )))
            }
        }
    }
    let state = state.0.clone();
    blocking(move || {
        let mut list = lock(&state.reader)
            .incidents(since, until)
            .map_err(ApiError::internal)?;
        list.retain(|i| {
            actor
                .as_ref()
                .is_none_or(|a| &i.actor == a || i.account.as_ref() == Some(a))
                && (statuses.is_empty() || statuses.contains(&i.workflow.status))
                // `owner=` (empty) asks for the unassigned.
                && owner
                    .as_ref()
                    .is_none_or(|o| i.workflow.owner.as_deref().unwrap_or("") == o)
        });
        list.truncate(limit);
        let now = Timestamp::now();
        let list: Vec<Value> = list.iter().map(|i| with_clocks(&state, i, now)).collect();
        Ok(Json(json!(list)))
    })
    .await
}

/// The notification clocks of an incident marked a breach, under the
/// regimes the directory names for its organisation, at `now`.
pub(crate) fn clocks_of(
    state: &crate::State,
    inc: &Incident,
    now: Timestamp,
) -> Vec<vakt_event::notification::Clock> {
    let Some(b) = &inc.workflow.breach else {
        return Vec::new();
    };
    let regimes = state
        .directory
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .regimes_for(inc.organization.as_deref());
    let done = |step: &str| b.notified.get(step).copied();
    vakt_event::notification::clocks(&regimes, b.aware_at, &done, now)
}

/// An incident as the API shows it: with its clocks.
fn with_clocks(state: &crate::State, inc: &Incident, now: Timestamp) -> Value {
    let mut v = json!(inc);
    v["clocks"] = json!(clocks_of(state, inc, now));
    v
}

fn no_incident(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no incident {id} and no alert of that id; GET /v1/incidents lists them"),
    )
}

fn found(l: &Ledger, id: &str) -> Result<Incident, ApiError> {
    l.find_incident(id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| no_incident(id))
}

/// The incident with its clocks, and its history.
fn shown(state: &crate::State, l: &Ledger, inc: Incident) -> Result<Value, ApiError> {
    let history = l
        .audit_records(Some(&inc.id), HISTORY)
        .map_err(ApiError::internal)?;
    let incident = with_clocks(state, &inc, Timestamp::now());
    Ok(json!({ "incident": incident, "history": history }))
}

/// `GET /v1/incidents/{id}`.
pub(crate) async fn one_incident(
    state: Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Role::Read).await?;
    no_params("/v1/incidents/{id}", q)?;
    let state = state.0.clone();
    blocking(move || {
        let l = lock(&state.reader);
        let inc = found(&l, &id)?;
        Ok(Json(shown(&state, &l, inc)?))
    })
    .await
}

/// `PATCH /v1/incidents/{id}` with any of `status`, `owner`,
/// `classification`, `reason`, `note`.
pub(crate) async fn change_incident(
    state: Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    ext: axum::http::Extensions,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let token = authorize(&state, &headers, Role::Analyst).await?;
    no_params("PATCH /v1/incidents/{id}", q)?;
    let bytes = read_body(&headers, body, CHANGE_BODY_LIMIT).await?;
    let change: IncidentChange = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be a JSON object with any of \"status\" (new, acknowledged, contained, resolved), \"owner\" (\"\" unassigns), \"classification\" (true_positive, benign_true_positive, false_positive) with \"reason\", \"note\", with false_positive \"exception\" ({{}}, {{\"for\": \"30d\"}} or {{\"until\": TIME}}), \"breach\": true, \"aware_at\" with \"aware_reason\", \"delay_reason\", \"notified\" (a step) with \"notified_at\": {e}"
        ))
    })?;
    let who = crate::auth::who(&token, &ext);
    let state = state.0.clone();
    blocking(move || {
        let mut l = lock(&state.writer);
        let inc = found(&l, &id)?;
        let exceptions = vakt_pipeline::incident_exceptions(&l, &inc, &change, &who.name)
            .map_err(|e| ApiError::bad_request(format!("exception: {e}")))?;
        let (workflow, _) = l
            .update_incident(&inc.id, &inc.workflow, &change, &who, &exceptions)
            .map_err(|e| match e {
                LedgerError::Invalid(m) => ApiError::bad_request(m),
                e => ApiError::internal(e),
            })?;
        let inc = Incident { workflow, ..inc };
        Ok(Json(shown(&state, &l, inc)?))
    })
    .await
}
