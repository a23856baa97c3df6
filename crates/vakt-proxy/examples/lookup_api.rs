//! A tiny customer-lookup API to put behind `vakt proxy http` in demos and
//! benchmarks: `GET /api/v1/customers/{id}` and `GET /api/v1/search`.
//!
//! ```text
//! cargo run --release -p vakt-proxy --example lookup_api -- 127.0.0.1:9000
//! ```

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;

async fn answer(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    let (status, body) = if let Some(id) = path.strip_prefix("/api/v1/customers/") {
        (
            200,
            format!(r#"{{"id":"{id}","name":"Customer {id}","phone":"+46700000000"}}"#),
        )
    } else if path == "/api/v1/search" {
        (
            200,
            r#"{"total":3,"results":[{"id":"C-101"},{"id":"C-102"},{"id":"C-103"}]}"#.to_owned(),
        )
    } else {
        (404, r#"{"error":"not found"}"#.to_owned())
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("static response"))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("lookup_api: listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer))
                .await;
        });
    }
}
