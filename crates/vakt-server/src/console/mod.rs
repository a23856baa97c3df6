//! The web console of `vakt serve`: server-rendered pages for people,
//! signed in with a name and password (`vakt user add`).
//!
//! Sessions last 12 hours and are kept in the ledger's database (only a
//! hash of their id), so a restart signs nobody out and `vakt user
//! delete` signs that user out at once. Failed sign-ins are limited per
//! client address and per user name (10 in 15 minutes each; then 429
//! with `Retry-After`), which also bounds the argon2 work a guesser can
//! cause. Behind a reverse proxy every client shares the proxy's
//! address, so the per-address limit applies to all of them together.
//! The session id travels in the `vakt_session` cookie (HttpOnly,
//! SameSite=Strict, Secure when served over TLS or behind an HTTPS proxy
//! that sets `X-Forwarded-Proto: https`); every form that changes something
//! carries the session's CSRF token, checked before anything is done.

mod html;
mod pages;
mod timeline;

use crate::http::percent_decode;
use crate::State;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::extract::RawQuery;
use axum::http::Extensions;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rand::RngCore;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vakt_event::Timestamp;
use vakt_ledger::sessions::SessionInfo;

/// How long a session lasts after sign-in.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
const COOKIE: &str = "vakt_session";
const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");

/// Failed sign-ins allowed per client address, and per user name, in [`FAILURE_WINDOW`].
const FAILURES_ALLOWED: usize = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Addresses and names whose failures are remembered at most (memory stays bounded).
const FAILURES_TRACKED: usize = 10_000;

pub(crate) struct Console {
    pub(crate) app: Arc<State>,
    failures: Mutex<Failures>,
}

#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) user: String,
    pub(crate) csrf: String,
}

/// Recent failed sign-ins per key (`ip:ADDR`, `user:NAME`).
#[derive(Default)]
struct Failures {
    by_key: HashMap<String, VecDeque<Instant>>,
}

impl Failures {
    /// How long `key` must wait before its next attempt, if it is over the limit.
    fn wait(&mut self, key: &str, now: Instant) -> Option<Duration> {
        let times = self.by_key.get_mut(key)?;
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
        {
            times.pop_front();
        }
        if times.len() < FAILURES_ALLOWED {
            return None;
        }
        times
            .front()
            .map(|first| FAILURE_WINDOW.saturating_sub(now.duration_since(*first)))
    }

    fn record(&mut self, key: String, now: Instant) {
        if self.by_key.len() >= FAILURES_TRACKED && !self.by_key.contains_key(&key) {
            self.by_key.retain(|_, t| {
                t.back()
                    .is_some_and(|last| now.duration_since(*last) < FAILURE_WINDOW)
            });
            if self.by_key.len() >= FAILURES_TRACKED {
                // Still full: forget the key that failed least recently.
                if let Some(oldest) = self
                    .by_key
                    .iter()
                    .min_by_key(|(_, t)| t.back().copied())
                    .map(|(k, _)| k.clone())
                {
                    self.by_key.remove(&oldest);
                }
            }
        }
        let times = self.by_key.entry(key).or_default();
        times.push_back(now);
        // Only the last FAILURES_ALLOWED matter for the limit.
        while times.len() > FAILURES_ALLOWED {
            times.pop_front();
        }
    }
}

pub(crate) type Shared = axum::extract::State<Arc<Console>>;

/// The console's routes, with their own state, to merge into the API's.
pub(crate) fn routes(app: Arc<State>) -> Router {
    let console = Arc::new(Console {
        app,
        failures: Mutex::new(Failures::default()),
    });
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route(
            "/assets/console.css",
            get(|| async { asset(CSS, "text/css") }),
        )
        .route(
            "/assets/console.js",
            get(|| async { asset(JS, "text/javascript") }),
        )
        .route("/", get(pages::alerts))
        .route("/alerts/{id}", get(pages::alert))
        .route("/alerts/{id}/scope", get(pages::scope))
        .route("/alerts/{id}/report", get(pages::report))
        .route(
            "/decisions",
            get(pages::decisions).post(pages::add_decision),
        )
        .route("/decisions/{id}/extend", post(pages::extend_decision))
        .route("/decisions/{id}/lift", post(pages::lift_decision))
        .route("/canaries", get(pages::canaries))
        .route("/exposure", get(pages::exposure))
        .with_state(console)
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response()
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Equal strings, compared in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

impl Console {
    /// The session the request's cookie names, if it is valid now.
    pub(crate) fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie_value(headers)?;
        // Ids are 64 hex digits; anything else is not looked up.
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let found = lock(&self.app.reader).session(&id, Timestamp::now());
        found.ok().flatten().map(|s| Session {
            user: s.user,
            csrf: s.csrf,
        })
    }

    fn start(&self, user: String) -> Result<String, vakt_ledger::LedgerError> {
        let id = random_hex(32);
        let now = Timestamp::now();
        let s = SessionInfo {
            user,
            csrf: random_hex(32),
            expires: now.saturating_add(SESSION_TTL.as_millis() as i64),
        };
        lock(&self.app.writer).start_session(&id, &s, now)?;
        Ok(id)
    }

    fn end(&self, headers: &HeaderMap) {
        if let Some(id) = cookie_value(headers) {
            let _ = lock(&self.app.writer).end_session(&id);
        }
    }

    /// The wait before `keys` may try again, when any of them is over the limit.
    fn sign_in_wait(&self, keys: &[String]) -> Option<Duration> {
        let mut f = lock(&self.failures);
        let now = Instant::now();
        keys.iter().filter_map(|k| f.wait(k, now)).max()
    }

    fn sign_in_failed(&self, keys: Vec<String>) {
        let mut f = lock(&self.failures);
        let now = Instant::now();
        for k in keys {
            f.record(k, now);
        }
    }
}

/// A redirect (303, so a POST becomes a GET).
pub(crate) fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The signed-in session, or a redirect to the sign-in page.
#[allow(clippy::result_large_err)] // the error is the answer, returned at once
pub(crate) fn require(c: &Console, headers: &HeaderMap, here: &str) -> Result<Session, Response> {
    c.session(headers)
        .ok_or_else(|| see_other(&format!("/login?next={}", html::url_encode(here))))
}

/// The session, when the form's CSRF token is the session's; else 403
/// (or a redirect to sign in when there is no session).
#[allow(clippy::result_large_err)]
pub(crate) fn require_form(
    c: &Console,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Session, Response> {
    let s = require(c, headers, "/")?;
    match form.get("csrf") {
        Some(t) if same(t, &s.csrf) => Ok(s),
        _ => Err(html::page_status(
            StatusCode::FORBIDDEN,
            "Refused",
            None,
            "<p class=\"error\">This form is missing its security token or it is stale; reload the page and try again.</p>",
        )),
    }
}

/// `a=1&b=2` (a query or an urlencoded body) as a map; later keys win.
pub(crate) fn form_pairs(s: &str) -> HashMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

/// Whether the browser reached us over HTTPS: ours, or a proxy's in front.
fn secure(c: &Console, headers: &HeaderMap) -> bool {
    c.app.https
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn safe_next(next: Option<&String>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.clone(),
        _ => "/".into(),
    }
}

async fn login_form(c: Shared, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let q = form_pairs(&q.unwrap_or_default());
    let next = safe_next(q.get("next"));
    if c.session(&headers).is_some() {
        return see_other(&next);
    }
    html::login_page(StatusCode::OK, &next, None)
}

async fn login(c: Shared, ext: Extensions, headers: HeaderMap, body: Bytes) -> Response {
    let form = form_pairs(&String::from_utf8_lossy(&body));
    let next = safe_next(form.get("next"));
    let name = form.get("user").cloned().unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let address = ext
        .get::<ConnectInfo<crate::ClientAddr>>()
        .map_or_else(|| "unknown".to_owned(), |ci| ci.0 .0.ip().to_string());
    let keys = vec![format!("ip:{address}"), format!("user:{name}")];
    if let Some(wait) = c.sign_in_wait(&keys) {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        let mut r = html::login_page(
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            Some(&format!(
                "Too many failed sign-ins from here or for this name; try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )),
        );
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return r;
    }
    let app = c.app.clone();
    let n2 = name.clone();
    let ok = tokio::task::spawn_blocking(move || {
        lock(&app.reader)
            .verify_user(&n2, &password)
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    if !ok {
        c.sign_in_failed(keys);
        return html::login_page(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("Wrong name or password."),
        );
    }
    let id = match c.start(name) {
        Ok(id) => id,
        Err(e) => {
            return html::login_page(
                StatusCode::SERVICE_UNAVAILABLE,
                &next,
                Some(&format!(
                    "Cannot start a session: {e}. Try again in a moment."
                )),
            )
        }
    };
    let mut r = see_other(&next);
    let cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure(&c, &headers) { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout(c: Shared, headers: HeaderMap, body: Bytes) -> Response {
    let form = form_pairs(&String::from_utf8_lossy(&body));
    if let Err(r) = require_form(&c, &headers, &form) {
        return r;
    }
    c.end(&headers);
    let mut r = see_other("/login");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("vakt_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_lock_a_key_for_the_rest_of_the_window_and_stay_bounded() {
        let mut f = Failures::default();
        let t0 = Instant::now();
        for i in 0..FAILURES_ALLOWED {
            assert_eq!(f.wait("ip:1", t0), None, "attempt {i}");
            f.record("ip:1".into(), t0 + Duration::from_secs(i as u64));
        }
        let later = t0 + Duration::from_secs(60);
        assert_eq!(
            f.wait("ip:1", later),
            Some(FAILURE_WINDOW - Duration::from_secs(60))
        );
        assert_eq!(f.wait("ip:2", later), None);
        // Once the first failure is out of the window, one more try is allowed.
        assert_eq!(f.wait("ip:1", t0 + FAILURE_WINDOW), None);

        for i in 0..FAILURES_TRACKED + 50 {
            f.record(format!("user:{i}"), t0 + FAILURE_WINDOW);
        }
        assert!(f.by_key.len() <= FAILURES_TRACKED);
        assert!(f
            .by_key
            .contains_key(&format!("user:{}", FAILURES_TRACKED + 49)));
    }
}
