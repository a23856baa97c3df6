//! `GET`, `POST /v1/decisions` and `DELETE /v1/decisions/{id}`: the
//! decisions in force, made and lifted by people.

use axum::body::Body;
use axum::extract::{Path, RawQuery};
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use vakt_event::Timestamp;
use vakt_ledger::audit::Audit;
use vakt_ledger::decisions::Decision;
use vakt_ledger::tokens::Role;

use crate::auth::authorize;
use crate::http::{
    blocking, encode_query, lock, parse_bool, query_pairs, read_body, ApiError, Shared,
};

/// Largest `POST /v1/decisions` body.
const DECISION_BODY_LIMIT: usize = 64 << 10;

pub(crate) async fn list_decisions(
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

pub(crate) async fn add_decision(
    state: Shared,
    headers: HeaderMap,
    ext: Extensions,
    body: Body,
) -> Result<Response, ApiError> {
    let token = authorize(&state, &headers, Role::Analyst).await?;
    let bytes = read_body(&headers, body, DECISION_BODY_LIMIT).await?;
    let new: NewDecision = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be a JSON object {{\"scope\", \"value\", \"action\", \"ttl\", \"reason\" (optional)}}: {e}"
        ))
    })?;
    let d = new
        .decide(format!("added over the API by token {}", token.name))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // A block stops work outright: an admin's call; analysts throttle
    // and ask for step-up.
    if d.action == vakt_ledger::decisions::Action::Block && !token.role.allows(Role::Admin) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "token {} has the role {}; blocking needs an admin token (throttle and step_up need analyst)",
                token.name, token.role
            ),
        ));
    }
    let state = state.0.clone();
    let who = crate::auth::who(&token, &ext);
    let d = blocking(move || {
        lock(&state.writer)
            .audited(&who, |l| {
                l.put_decision(&d)?;
                Ok(((), Some(Audit::decision("decision.add", &d))))
            })
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

pub(crate) async fn delete_decision(
    state: Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    ext: Extensions,
) -> Result<StatusCode, ApiError> {
    let token = authorize(&state, &headers, Role::Admin).await?;
    let state = state.0.clone();
    let id2 = id.clone();
    let who = crate::auth::who(&token, &ext);
    let found = blocking(move || {
        lock(&state.writer)
            .audited(&who, |l| {
                let found = l.delete_decision(&id2)?;
                Ok((found, found.then(|| Audit::new("decision.lift", &id2))))
            })
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
