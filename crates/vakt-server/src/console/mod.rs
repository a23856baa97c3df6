//! The web console of `vakt serve`: server-rendered pages for people,
//! signed in with a name and password (`vakt user add`).
//!
//! Sessions last 12 hours and are kept in the ledger's database (only a
//! hash of their id), so a restart signs nobody out and `vakt user
//! delete` signs that user out at once. Sign-in attempts are counted per
//! client address and per user name before the password is checked (so
//! parallel guesses cannot slip in together): the 10th failure in 15
//! minutes locks the key out for 15 minutes (429 with `Retry-After`),
//! which also bounds the argon2 work a guesser can cause. Forms over 8 KiB
//! are refused, a name that cannot be a user's is never hashed, and the
//! hashing runs outside the lock token checks use. Behind a reverse proxy
//! every client shares the proxy's address, so the per-address limit
//! applies to all of them together.
//! The session id travels in the `vakt_session` cookie (HttpOnly,
//! SameSite=Strict, Secure when served over TLS or behind an HTTPS proxy
//! that sets `X-Forwarded-Proto: https`); every form that changes something
//! carries the session's CSRF token, checked before anything is done.
//!
//! Roles (`vakt user add NAME --role`, `vakt user role NAME ROLE`); each
//! may also do all the row above it may, and the table is [`roles`]:
//!
//! | role    | may                                                          |
//! |---------|--------------------------------------------------------------|
//! | viewer  | read alerts, incidents, an alert, a scope as counts, decisions, canaries, exposure, payment pages |
//! | analyst | see a scope's customers, draft breach reports, add and extend throttle and step-up decisions, add and revoke exceptions, work incidents, read the audit trail |
//! | admin   | add and extend blocks, lift decisions (undo enforcement)     |
//!
//! A viewer sees how many customers a scope holds and in which
//! categories, not who they are: the list is the notification list, as
//! sensitive as the data that leaked, and whoever needs it also drafts the
//! notice, so it goes with the report draft (analyst). Every handler names
//! what it needs and is refused (403, a page naming the role it takes)
//! when the user's role is below it; pages leave out the forms a role may
//! not use, but the check is the handler's. The role is read from the
//! user at every request, so `vakt user role` and `vakt user delete` apply
//! at once. Users from before roles existed are admins: they keep what
//! they could do.

mod audit;
mod exceptions;
mod html;
mod incidents;
mod notice;
mod overview;
mod pages;
mod payment_pages;
mod roles;
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
use roles::Need;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vakt_event::Timestamp;
use vakt_ledger::audit::{Audit, Who};
use vakt_ledger::sessions::SessionInfo;
use vakt_ledger::users::ConsoleRole;
use vakt_limit::{AttemptPolicy, Attempts};

/// How long a session lasts after sign-in.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
const COOKIE: &str = "vakt_session";
const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");

/// Sign-in attempts allowed per client address, and per user name, in a
/// window of 15 minutes; the one that reaches it locks the key out for 15
/// minutes. A right password takes its own attempt back.
const SIGN_IN: AttemptPolicy = AttemptPolicy {
    allowed: 10,
    window: Duration::from_secs(15 * 60),
    lockout: Duration::from_secs(15 * 60),
};
/// Addresses and names whose attempts are remembered at most.
const SIGN_IN_KEYS: NonZeroUsize = NonZeroUsize::new(10_000).expect("not zero");
/// Largest sign-in form: a name of 64 and a password of 1024 bytes,
/// percent-encoded, fit.
const LOGIN_FORM_LIMIT: usize = 8 << 10;

pub(crate) struct Console {
    pub(crate) app: Arc<State>,
    attempts: Mutex<Attempts<String>>,
}

#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) user: String,
    pub(crate) csrf: String,
    /// The user's role as it was at this request.
    pub(crate) role: ConsoleRole,
}

pub(crate) type Shared = axum::extract::State<Arc<Console>>;

/// The console's routes, with their own state, to merge into the API's.
pub(crate) fn routes(app: Arc<State>) -> Router {
    let console = Arc::new(Console {
        app,
        attempts: Mutex::new(Attempts::new(SIGN_IN, SIGN_IN_KEYS)),
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
        .route("/audit", get(audit::list))
        .route("/overview", get(overview::overview))
        .route("/search", get(overview::search))
        .route("/incidents", get(incidents::list))
        .route(
            "/incidents/{id}",
            get(incidents::one).post(incidents::change),
        )
        .route("/alerts/{id}", get(pages::alert))
        .route("/alerts/{id}/scope", get(pages::scope))
        .route("/alerts/{id}/report", get(pages::report))
        .route("/alerts/{id}/notice", get(notice::notice))
        .route("/alerts/{id}/recipients.csv", get(notice::recipients))
        .route(
            "/decisions",
            get(pages::decisions).post(pages::add_decision),
        )
        .route("/decisions/{id}/extend", post(pages::extend_decision))
        .route("/decisions/{id}/lift", post(pages::lift_decision))
        .route("/exceptions", get(exceptions::list).post(exceptions::add))
        .route("/exceptions/{id}/revoke", post(exceptions::revoke))
        .route("/canaries", get(pages::canaries))
        .route("/pages", get(payment_pages::list))
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
            user: s.session.user,
            csrf: s.session.csrf,
            role: s.role,
        })
    }

    /// A new session for `who` (signed in just now), on record.
    fn start(&self, who: &Who) -> Result<String, vakt_ledger::LedgerError> {
        let id = random_hex(32);
        let now = Timestamp::now();
        let s = SessionInfo {
            user: who.name.clone(),
            csrf: random_hex(32),
            expires: now.saturating_add(SESSION_TTL.as_millis() as i64),
        };
        lock(&self.app.writer).audited(who, |l| {
            l.start_session(&id, &s, now)?;
            Ok(((), Some(Audit::new("session.start", &who.name))))
        })?;
        Ok(id)
    }

    fn end(&self, headers: &HeaderMap, who: &Who) {
        if let Some(id) = cookie_value(headers) {
            let _ = lock(&self.app.writer).audited(who, |l| {
                l.end_session(&id)?;
                Ok(((), Some(Audit::new("session.end", &who.name))))
            });
        }
    }
}

/// Who a signed-in person is, for the audit trail: their name, in the
/// console, from the client's address.
pub(crate) fn who(user: &str, ext: &Extensions) -> Who {
    Who::new(
        user,
        "console",
        ext.get::<ConnectInfo<crate::ClientAddr>>()
            .map(|a| a.0 .0.ip().to_canonical().to_string()),
    )
}

/// A redirect (303, so a POST becomes a GET).
pub(crate) fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The signed-in session, or a redirect to the sign-in page; 403 when
/// the user's role is below what `need`s.
#[allow(clippy::result_large_err)] // the error is the answer, returned at once
pub(crate) fn require(
    c: &Console,
    headers: &HeaderMap,
    here: &str,
    need: Need,
) -> Result<Session, Response> {
    let s = c
        .session(headers)
        .ok_or_else(|| see_other(&format!("/login?next={}", html::url_encode(here))))?;
    allowed(s, need)
}

/// The session, when the form's CSRF token is the session's and the
/// user's role meets `need`; else 403 (or a redirect to sign in when
/// there is no session).
#[allow(clippy::result_large_err)]
pub(crate) fn require_form(
    c: &Console,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    need: Need,
) -> Result<Session, Response> {
    let s = c
        .session(headers)
        .ok_or_else(|| see_other("/login?next=/"))?;
    match form.get("csrf") {
        Some(t) if same(t, &s.csrf) => allowed(s, need),
        _ => Err(html::page_status(
            StatusCode::FORBIDDEN,
            "Refused",
            None,
            "<p class=\"error\">This form is missing its security token or it is stale; reload the page and try again.</p>",
        )),
    }
}

#[allow(clippy::result_large_err)]
fn allowed(s: Session, need: Need) -> Result<Session, Response> {
    if need.met_by(s.role) {
        Ok(s)
    } else {
        Err(html::refused(&s, need))
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

/// Where to go after signing in: a local path only. Browsers drop tabs and
/// newlines from URLs and read `\\` as `/`, so `/\t/evil.example/` would
/// be `//evil.example/`, another site; any control character, space or
/// backslash, or a second leading slash, falls back to `/`.
fn safe_next(next: Option<&String>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.len() <= 2048
                && !n
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace() || c == '\\') =>
        {
            n.clone()
        }
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

async fn login(c: Shared, ext: Extensions, headers: HeaderMap, body: axum::body::Body) -> Response {
    // Refused on its announced length before a byte is read, else read
    // up to the limit.
    let body = match crate::http::read_body(&headers, body, LOGIN_FORM_LIMIT).await {
        Ok(b) => b,
        Err(e) => return html::login_page(e.status, "/", Some(&e.message)),
    };
    let form = form_pairs(&String::from_utf8_lossy(&body));
    let next = safe_next(form.get("next"));
    let name = form.get("user").cloned().unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let address = ext
        .get::<ConnectInfo<crate::ClientAddr>>()
        .map_or_else(|| "unknown".to_owned(), |ci| ci.0 .0.ip().to_string());
    // A name that cannot be a user's is not a key of its own: a flood of
    // made-up names must not fill the table or push real names out.
    let mut keys = vec![format!("ip:{address}")];
    if vakt_ledger::users::valid_name(&name) {
        keys.push(format!("user:{name}"));
    }
    // Counted before the password is checked, so parallel guesses cannot
    // all be checked before the first failure is counted.
    let attempt = lock(&c.attempts).begin(&keys, Instant::now());
    let attempt = match attempt {
        Ok(a) => a,
        Err(wait) => {
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
    };
    let ok = vakt_ledger::users::valid_name(&name) && {
        let app = c.app.clone();
        let n2 = name.clone();
        // Only the look-up holds the reader; the hashing runs beside
        // token checks and other sign-ins.
        let stored = tokio::task::spawn_blocking(move || lock(&app.reader).user_hash(&n2))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        tokio::task::spawn_blocking(move || {
            vakt_ledger::users::check_password(stored.as_deref(), &password)
        })
        .await
        .unwrap_or(false)
    };
    if !ok {
        if attempt.locks {
            tracing::warn!(
                "console sign-in locked out for 15 minutes after {} failed attempts from {address}{}",
                attempt.count,
                if keys.len() > 1 { format!(" or for user {name:?}") } else { String::new() }
            );
        }
        return html::login_page(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("Wrong name or password."),
        );
    }
    lock(&c.attempts).succeeded(&keys);
    let id = match c.start(&who(&name, &ext)) {
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

async fn logout(c: Shared, ext: Extensions, headers: HeaderMap, body: Bytes) -> Response {
    let form = form_pairs(&String::from_utf8_lossy(&body));
    let s = match require_form(&c, &headers, &form, roles::READ) {
        Ok(s) => s,
        Err(r) => return r,
    };
    c.end(&headers, &who(&s.user, &ext));
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

    /// Finding 14: `next=/%09/evil.example/` sent a signed-in user to
    /// another site (browsers drop the tab and see `//evil.example/`).
    #[test]
    fn finding_14_sign_in_redirects_only_to_local_paths() {
        let next = |raw: &str| safe_next(form_pairs(&format!("next={raw}")).get("next"));
        for evil in [
            "/%09/evil.example/",
            "/%0A/evil.example/",
            "/%0D%0A/evil.example/",
            "//evil.example/",
            "/%5Cevil.example/",
            "/\\evil.example/",
            "https://evil.example/",
            "/%20/evil.example/",
            "%2F%2Fevil.example",
        ] {
            assert_eq!(next(evil), "/", "{evil}");
        }
        for local in [
            "/",
            "/alerts/rate-1a",
            "/alerts/x/scope?window=7d",
            "/decisions#top",
        ] {
            assert_eq!(next(local), local);
        }
    }
}
