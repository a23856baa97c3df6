//! A `vakt_server::Server` on 127.0.0.1 with a port of its own, served on
//! its own runtime thread, and a small blocking HTTP client for it.

#![allow(dead_code)]

use serde_json::Value;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vakt_event::Directory;
use vakt_ledger::tokens::Role;
use vakt_ledger::{DataDir, Ledger};
use vakt_server::{Config, EngineReport, Server, ServerError};

/// Longest wait for anything the server does by itself.
pub const WAIT: Duration = Duration::from_secs(20);

/// The error of the router's fallback for an unknown path.
pub const NO_SUCH_ROUTE: &str = "no such route";

/// One token of each role.
pub struct Tokens {
    pub ingest: String,
    pub read: String,
    pub analyst: String,
    pub admin: String,
}

impl Tokens {
    pub fn of(&self, role: Role) -> &str {
        match role {
            Role::Ingest => &self.ingest,
            Role::Read => &self.read,
            Role::Analyst => &self.analyst,
            Role::Admin => &self.admin,
        }
    }
}

pub struct Running {
    pub url: String,
    pub data: DataDir,
    agent: Option<ureq::Agent>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<EngineReport, ServerError>>>,
    _tmp: tempfile::TempDir,
}

/// Starts a server on a fresh data directory with the directory `toml`
/// and tokens `ingest`, `read`, `analyst` and `admin`; `tweak` may change the config.
pub fn start(toml: &str, tweak: impl FnOnce(&mut Config)) -> (Running, Tokens) {
    let tmp = tempfile::tempdir().unwrap();
    let data = DataDir {
        path: tmp.path().join("data"),
    };
    let mut l = Ledger::open(&data).unwrap();
    let tokens = Tokens {
        ingest: l.create_token("ingest", Role::Ingest).unwrap(),
        read: l.create_token("read", Role::Read).unwrap(),
        analyst: l.create_token("analyst", Role::Analyst).unwrap(),
        admin: l.create_token("admin", Role::Admin).unwrap(),
    };
    l.close().unwrap();
    let directory = Directory::from_toml(toml, "directory.toml").unwrap();
    let mut config = Config::new(data.clone(), directory);
    tweak(&mut config);
    let (addr_tx, addr_rx) = mpsc::channel::<Result<SocketAddr, String>>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("test-server".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = match Server::open(config) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = addr_tx.send(Err(e.to_string()));
                        return Err(e);
                    }
                };
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let _ = addr_tx.send(Ok(listener.local_addr()?));
                server
                    .serve(listener, async move {
                        let _ = stop_rx.await;
                    })
                    .await
            })
        })
        .unwrap();
    let addr = match addr_rx.recv_timeout(WAIT) {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => panic!("the server did not open: {e}"),
        Err(e) => panic!("the server did not listen within {WAIT:?}: {e}"),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(WAIT))
        .build()
        .into();
    let running = Running {
        url: format!("http://{addr}"),
        data,
        agent: Some(agent),
        stop: Some(stop_tx),
        thread: Some(thread),
        _tmp: tmp,
    };
    (running, tokens)
}

/// An answer: status, headers (names in lower case) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics (naming the body) when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.text))
    }

    /// The `error` of a JSON error body, or "".
    pub fn error(&self) -> String {
        serde_json::from_str::<Value>(&self.text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default()
    }

    /// The router's own 404 for a path it has no route for.
    pub fn is_fallback(&self) -> bool {
        self.status == 404 && self.error().starts_with(NO_SUCH_ROUTE)
    }
}

/// A request to send.
pub struct Req<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub token: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: Option<Vec<u8>>,
    /// A raw `Authorization` header, instead of `Bearer <token>`.
    pub authorization: Option<&'a str>,
}

impl Running {
    pub fn send(&self, r: Req<'_>) -> Answer {
        let url = format!("{}{}", self.url, r.path);
        let mut b = ureq::http::Request::builder().method(r.method).uri(&url);
        if let Some(t) = r.token {
            b = b.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(a) = r.authorization {
            b = b.header("Authorization", a);
        }
        if let Some(c) = r.content_type {
            b = b.header("Content-Type", c);
        }
        let agent = self.agent.as_ref().unwrap();
        let answer = match r.body {
            Some(body) => agent.run(b.body(body).unwrap()),
            None => agent.run(b.body(()).unwrap()),
        };
        let mut answer = answer.unwrap_or_else(|e| panic!("{} {}: {e}", r.method, r.path));
        let headers = answer
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let text = answer
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap();
        Answer {
            status: answer.status().as_u16(),
            headers,
            text,
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(Req {
            method: "GET",
            path,
            token,
            content_type: None,
            body: None,
            authorization: None,
        })
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &str) -> Answer {
        self.send(Req {
            method: "POST",
            path,
            token,
            content_type: None,
            body: Some(body.as_bytes().to_vec()),
            authorization: None,
        })
    }

    pub fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        self.send(Req {
            method: "POST",
            path,
            token,
            content_type: Some("application/json"),
            body: Some(body.to_string().into_bytes()),
            authorization: None,
        })
    }

    pub fn patch_json(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        self.send(Req {
            method: "PATCH",
            path,
            token,
            content_type: Some("application/json"),
            body: Some(body.to_string().into_bytes()),
            authorization: None,
        })
    }

    pub fn delete(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(Req {
            method: "DELETE",
            path,
            token,
            content_type: None,
            body: None,
            authorization: None,
        })
    }

    /// Revokes a token by name, as `vakt token revoke` does, while serving.
    pub fn revoke(&self, name: &str) {
        let mut l = Ledger::open_read(&self.data).unwrap();
        assert!(l.revoke_token(name).unwrap(), "no token {name}");
    }

    /// Stops serving (as the shutdown future completing does) and waits,
    /// bounded, for the engine to drain and commit.
    pub fn stop(mut self) -> EngineReport {
        self.shutdown().expect("the server stops cleanly")
    }

    fn shutdown(&mut self) -> Result<EngineReport, String> {
        // Close the client's idle connections first.
        self.agent = None;
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let Some(thread) = self.thread.take() else {
            return Err("already stopped".into());
        };
        let deadline = Instant::now() + WAIT;
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                return Err(format!("the server did not stop within {WAIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        match thread.join() {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("the server thread panicked".into()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.shutdown();
        }
    }
}

/// Polls `f` every 25 ms until it gives a value, for at most `limit`.
pub fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The value of one series in a Prometheus text answer (`name` with its
/// labels, e.g. `vakt_alerts_total{rule="canary"}`), or None when absent.
pub fn series(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (n, v) = l.rsplit_once(' ')?;
        (!l.starts_with('#') && n == name).then(|| v.parse().unwrap())
    })
}
