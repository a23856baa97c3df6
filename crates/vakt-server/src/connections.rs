//! How many connections are served at once, and for how long each may
//! take to say what it wants.
//!
//! A client that opens connections and sends its request a byte at a time
//! (slowloris) would otherwise hold a task and a socket each for ever. So:
//! - at most [`ConnectionLimits::max_connections`] are served at once;
//!   past it new connections wait in the listen backlog until one ends;
//! - a request's headers must arrive within `header_timeout` (an idle
//!   keep-alive connection waiting for its next request counts too), or the
//!   connection is closed;
//! - a whole request, body included, must be answered within
//!   `request_timeout`, or it gets `408` and the connection is closed.
//!
//! Served by hyper directly rather than `axum::serve`, which sets no
//! header timeout and no connection limit.

use crate::listen::{ClientAddr, Incoming};
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::serve::Listener;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Connections served at once by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Time to send a request's headers by default.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to send a whole request and get its answer by default; a 16 MiB
/// ingest body at 1 MiB/s fits.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stop waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// See the module doc.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// Serves `router` on `incoming` within `limits` until `stop` completes,
/// then lets requests in flight finish for a short while.
pub(crate) async fn serve(
    mut incoming: Incoming,
    router: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let (io, peer) = tokio::select! {
            c = incoming.accept() => c,
            () = &mut stop => break,
        };
        let request_timeout = limits.request_timeout;
        let service = router
            .clone()
            .map_request(move |mut r: Request<hyper::body::Incoming>| {
                r.extensions_mut().insert(ConnectInfo(ClientAddr(peer)));
                r
            })
            .map_future(move |answer| async move {
                match tokio::time::timeout(request_timeout, answer).await {
                    Ok(r) => r,
                    Err(_) => Ok(too_slow(request_timeout)),
                }
            });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(
                TokioIo::new(io),
                hyper_util::service::TowerToHyperService::new(service),
            );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(incoming);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => {}
    }
}

fn too_slow(limit: Duration) -> Response {
    let mut r = crate::http::ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "the request took longer than {}s to send and answer; send smaller batches",
            limit.as_secs()
        ),
    )
    .into_response();
    r.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    r
}
