//! A stand-alone PostgreSQL proxy for measurements (`bench/pg-proxy.sh`)
//! until `vakt proxy pg` exists: the library with a data directory, a
//! directory file, the guard and the event sink, stopped by SIGINT or
//! SIGTERM.
//!
//! ```text
//! cargo run --release -p vakt-proxy --example pg_proxy -- \
//!     --listen 127.0.0.1:6432 --upstream 127.0.0.1:5432 [--data DIR] [--directory FILE] [--fail-mode open|closed]
//! ```
//!
//! Without `--data` a temporary data directory is used and removed at exit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use vakt_event::Directory;
use vakt_ledger::DataDir;
use vakt_proxy::pg::{serve_pg, PgProxyConfig};
use vakt_proxy::{EventSink, FailMode, Guard, GuardConfig, SinkConfig};

struct Args {
    listen: SocketAddr,
    upstream: String,
    data: Option<PathBuf>,
    directory: Option<PathBuf>,
    fail_mode: FailMode,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        listen: "127.0.0.1:6432".parse().expect("constant address"),
        upstream: "127.0.0.1:5432".into(),
        data: None,
        directory: None,
        fail_mode: FailMode::Open,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                a.listen = v
                    .parse()
                    .map_err(|e| format!("--listen {v}: {e}; write HOST:PORT"))?;
            }
            "--upstream" => a.upstream = value()?,
            "--data" => a.data = Some(value()?.into()),
            "--directory" => a.directory = Some(value()?.into()),
            "--fail-mode" => a.fail_mode = value()?.parse()?,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(a)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pg_proxy: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let a = args()?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = DataDir {
        path: a.data.clone().unwrap_or_else(|| tmp.path().join("data")),
    };
    let directory = Arc::new(match &a.directory {
        Some(p) => Directory::load(p).map_err(|e| e.to_string())?,
        None => Directory::default(),
    });
    let sink = EventSink::start(
        &data,
        directory.clone(),
        vakt_proxy::write_alerts(std::io::stderr()),
        SinkConfig {
            queue: 65_536,
            fail_mode: a.fail_mode,
            source: "pg-proxy".into(),
        },
    )
    .map_err(|e| e.to_string())?;
    let guard = Guard::start(data.clone(), &directory, GuardConfig::default())
        .map_err(|e| e.to_string())?;
    let sink = Arc::new(sink);
    let config = PgProxyConfig::new(a.listen, a.upstream.clone()).with_directory(&directory);
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", a.listen))?;
        eprintln!(
            "pg_proxy: listening on {}, forwarding to {}, data {}",
            a.listen,
            a.upstream,
            data.path.display()
        );
        let shutdown = async {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {},
                        _ = term.recv() => {},
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        serve_pg(listener, config, guard, sink.clone(), shutdown)
            .await
            .map_err(|e| e.to_string())
    })?;
    let sink = Arc::try_unwrap(sink).map_err(|_| "the sink is still in use".to_string())?;
    let s = sink.stats();
    let (submitted, recorded, spooled) = (
        s.submitted.load(Ordering::Relaxed),
        s.recorded.load(Ordering::Relaxed),
        s.spooled.load(Ordering::Relaxed),
    );
    sink.shutdown().map_err(|e| e.to_string())?;
    eprintln!(
        "pg_proxy: {submitted} access events submitted, {recorded} recorded by the engine before the drain, {spooled} spooled"
    );
    Ok(())
}
