//! The web console of `vakt serve`: server-rendered pages for people,
//! signed in with a name and password (`vakt user add`).
//!
//! Sessions live in memory (a restart signs everyone out) for 12 hours.
//! The session id travels in the `vakt_session` cookie (HttpOnly,
//! SameSite=Strict, Secure when served over TLS or behind an HTTPS proxy
//! that sets `X-Forwarded-Proto: https`); every form that changes something
//! carries the session's CSRF token, checked before anything is done.

mod pages;
mod timeline;

use crate::State;
use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rand::RngCore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a session lasts after sign-in.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
const COOKIE: &str = "vakt_session";
const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");

pub(crate) struct Console {
    pub(crate) app: Arc<State>,
    sessions: Mutex<HashMap<String, Session>>,
}

#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) user: String,
    pub(crate) csrf: String,
    expires: Instant,
}

pub(crate) type Shared = axum::extract::State<Arc<Console>>;

/// The console's routes, with their own state, to merge into the API's.
pub(crate) fn routes(app: Arc<State>) -> Router {
    let console = Arc::new(Console {
        app,
        sessions: Mutex::new(HashMap::new()),
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
    pub(crate) fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie_value(headers)?;
        let mut sessions = lock(&self.sessions);
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.get(&id).cloned()
    }

    fn start(&self, user: String) -> String {
        let id = random_hex(32);
        let s = Session {
            user,
            csrf: random_hex(32),
            expires: Instant::now() + SESSION_TTL,
        };
        lock(&self.sessions).insert(id.clone(), s);
        id
    }

    fn end(&self, headers: &HeaderMap) {
        if let Some(id) = cookie_value(headers) {
            lock(&self.sessions).remove(&id);
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
        .ok_or_else(|| see_other(&format!("/login?next={}", pages::url_encode(here))))
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
        _ => Err(pages::page_status(
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
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                out.push(u8::from_str_radix(s.get(i + 1..i + 3)?, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
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
    pages::login_page(StatusCode::OK, &next, None)
}

async fn login(c: Shared, headers: HeaderMap, body: Bytes) -> Response {
    let form = form_pairs(&String::from_utf8_lossy(&body));
    let next = safe_next(form.get("next"));
    let name = form.get("user").cloned().unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
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
        return pages::login_page(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("Wrong name or password."),
        );
    }
    let id = c.start(name);
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
