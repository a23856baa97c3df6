//! The API's routes: which handler answers which (method, path), and the
//! answers for everything else. Handlers live in their own modules
//! (`ingest`, `decisions`, `exceptions`, `alerts`, `incidents`, `audit`,
//! `views`, `csp`, `metrics`) and share
//! only the leaf `http`.

use crate::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

use crate::alerts::list_alerts;
use crate::decisions::{add_decision, delete_decision, list_decisions};
use crate::http::{ApiError, Shared};
use crate::ingest::post_events;

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
        ("GET", "/v1/exceptions"),
        ("POST", "/v1/exceptions"),
        ("DELETE", "/v1/exceptions/{id}"),
        ("GET", "/v1/alerts"),
        ("GET", "/v1/alerts/{id}"),
        ("GET", "/v1/incidents"),
        ("GET", "/v1/incidents/{id}"),
        ("PATCH", "/v1/incidents/{id}"),
        ("GET", "/v1/scope"),
        ("GET", "/v1/canaries"),
        ("GET", "/v1/pages"),
        ("GET", "/v1/exposure"),
        ("POST", "/v1/reports/{alert_id}"),
        ("POST", "/v1/reports/{alert_id}/notice"),
        ("GET", "/v1/reports/{alert_id}/recipients"),
        ("GET", "/v1/audit"),
    ]
}

pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/decisions", get(list_decisions).post(add_decision))
        .route("/v1/decisions/{id}", delete(delete_decision))
        .route(
            "/v1/exceptions",
            get(crate::exceptions::list_exceptions).post(crate::exceptions::add_exception),
        )
        .route(
            "/v1/exceptions/{id}",
            delete(crate::exceptions::delete_exception),
        )
        .route("/v1/events", axum::routing::post(post_events))
        .route("/v1/alerts", get(list_alerts))
        .route("/v1/alerts/{id}", get(crate::views::one_alert))
        .route("/v1/incidents", get(crate::incidents::list_incidents))
        .route(
            "/v1/incidents/{id}",
            get(crate::incidents::one_incident).patch(crate::incidents::change_incident),
        )
        .route("/v1/scope", get(crate::views::scope))
        .route("/v1/canaries", get(crate::views::canaries))
        .route("/v1/pages", get(crate::views::pages))
        .route("/v1/exposure", get(crate::views::exposure))
        .route(
            "/v1/reports/{alert_id}",
            axum::routing::post(crate::views::report),
        )
        .route(
            "/v1/reports/{alert_id}/notice",
            axum::routing::post(crate::views::notice),
        )
        .route(
            "/v1/reports/{alert_id}/recipients",
            get(crate::views::recipients),
        )
        .route(
            "/v1/csp-report",
            axum::routing::post(crate::csp::post_report),
        )
        .route("/v1/audit", get(crate::audit::list_audit))
        .route("/metrics", get(crate::metrics::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
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
