//! `GET`, `POST /v1/exceptions` and `DELETE /v1/exceptions/{id}`:
//! analysts' false positives as suppressions. The engine reads the
//! exceptions in force at each alert, so one added here applies to the
//! next alert.

use axum::body::Body;
use axum::extract::{Path, RawQuery};
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use vakt_event::{Exception, Timestamp};
use vakt_ledger::audit::Audit;
use vakt_ledger::tokens::Role;

use crate::auth::authorize;
use crate::http::{
    blocking, encode_query, lock, parse_bool, query_pairs, read_body, ApiError, Shared,
};
use vakt_pipeline::ExceptionRequest;

/// Largest `POST /v1/exceptions` body.
const EXCEPTION_BODY_LIMIT: usize = 64 << 10;

pub(crate) async fn list_exceptions(
    state: Shared,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<Exception>>, ApiError> {
    authorize(&state, &headers, Role::Read).await?;
    let mut all = false;
    for (k, v) in query_pairs(q)? {
        match k.as_str() {
            "all" => all = parse_bool("all", &v)?,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{k}`; /v1/exceptions takes all=true"
                )))
            }
        }
    }
    let state = state.0.clone();
    let list = blocking(move || {
        lock(&state.reader)
            .exceptions((!all).then(Timestamp::now))
            .map_err(ApiError::internal)
    })
    .await?;
    Ok(Json(list))
}

pub(crate) async fn add_exception(
    state: Shared,
    headers: HeaderMap,
    ext: Extensions,
    body: Body,
) -> Result<Response, ApiError> {
    let token = authorize(&state, &headers, Role::Admin).await?;
    let bytes = read_body(&headers, body, EXCEPTION_BODY_LIMIT).await?;
    let form: ExceptionRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be a JSON object {{\"reason\", and at least one of \"actor\", \"rule\", \"destination\"; optional \"until\" (RFC 3339) or \"for\" (30d), \"from_alert\"}}: {e}"
        ))
    })?;
    let state = state.0.clone();
    let who = crate::auth::who(&token, &ext);
    let e = blocking(move || {
        let mut l = lock(&state.writer);
        let e = form.make(&l, &who.name).map_err(ApiError::bad_request)?;
        l.audited(&who, |l| {
            let e = l.add_exception(&e)?;
            let audit = Audit::exception("exception.add", &e);
            Ok((e, Some(audit)))
        })
        .map_err(ApiError::internal)
    })
    .await?;
    let mut r = (StatusCode::CREATED, Json(&e)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/exceptions/{}", encode_query(&e.id))) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

pub(crate) async fn delete_exception(
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
                let e = l.revoke_exception(&id2, &who.name)?;
                let audit = e.as_ref().map(|e| Audit::exception("exception.revoke", e));
                Ok((e, audit))
            })
            .map_err(ApiError::internal)
    })
    .await?;
    match found {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no exception {id}; GET /v1/exceptions?all=true lists them"),
        )),
    }
}
