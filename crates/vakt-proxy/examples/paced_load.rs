//! Paced HTTP load: `RATE` requests per second for `SECONDS` over
//! keep-alive connections, latency measured from each request's scheduled
//! time (so a stall counts against every request it delays). Prints
//! percentiles as JSON, for `bench/http-proxy.sh`.
//!
//! ```text
//! cargo run --release -p vakt-proxy --example paced_load -- http://127.0.0.1:9000 5000 10 32
//! ```

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:9000".into());
    let rate: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5000.0);
    let seconds: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let workers: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(32);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let total = (rate * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let client = client.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            // Worker w sends requests w, w+workers, ...: together they keep the rate.
            for i in (w..total).step_by(workers) {
                let due = start + interval * i as u32;
                tokio::time::sleep_until(due.into()).await;
                let uri = format!("{base}/api/v1/customers/C-{}", i % 50_000);
                let req = hyper::Request::get(uri)
                    .header("x-account", format!("bench-{}", w % 8))
                    .body(Empty::new())
                    .expect("request");
                match client.request(req).await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.into_body().collect().await;
                    }
                    _ => errors += 1,
                }
                lat.push(due.elapsed());
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::with_capacity(total);
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("worker");
        all.extend(l);
        errors += e;
    }
    all.sort();
    let pct =
        |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    let took = start.elapsed().as_secs_f64();
    println!(
        "{{\"requests\":{},\"errors\":{errors},\"achieved_rps\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3}}}",
        all.len(),
        all.len() as f64 / took,
        pct(0.50),
        pct(0.99),
        pct(0.999)
    );
}
