//! The HTTP proxy: a reverse proxy in front of a REST customer-lookup API.
//!
//! Each request is identified (an account from a header, HTTP basic auth
//! or a JWT claim, as the directory's `[http] account` says; else the
//! client address), judged by the [`Guard`], forwarded, and recorded as an
//! access event with the customers it reached: the one its route's path
//! names (`{customer}`), and those the response body lists at the route's
//! `response_customers` JSON pointer (searches). Enforcement answers:
//!
//! - throttle: `429 Too Many Requests` with `Retry-After`;
//! - block: `403` with a JSON body saying why, until when and whom to contact;
//! - step-up: `401` with `WWW-Authenticate: TOTP`; the client repeats the
//!   request with the account's current code in `X-Vakt-TOTP` (enrolled
//!   with `vakt account enroll-totp`), which satisfies step-up for a while.
//!   Codes are limited ([`STEP_UP_LIMIT`] by default: five wrong ones in
//!   15 minutes per account and per address), counted before they are
//!   checked; then `429` with `Retry-After` and no code is checked until
//!   the lockout ends, and the lockout is raised as a `step_up_failures`
//!   alert through the engine, whose policies may block the account. A
//!   person's wrong guess costs little; the lockout is what stops a
//!   guesser. Its blind spot: anyone may lock an account out of step-up
//!   by sending it wrong codes, and addresses behind one NAT share their
//!   allowance; both end with the lockout, and step-up only applies to
//!   accounts already under a decision.
//!
//! Paths are resolved before routes are matched (`vakt_event::routes`):
//! percent escapes decoded, `.`/`..` and repeated slashes resolved, and
//! the upstream is sent that canonical path, so what is recorded is what
//! it serves. Paths servers disagree on (`%2F`, `\`, NUL, `%2531`, bytes
//! that are not UTF-8) are refused with `400`; with `encoded_paths` =
//! `Refuse`, so is every path not already canonical.
//!
//! The account is read strictly: the `Authorization` scheme is matched
//! case-insensitively (RFC 9110), and a request that names no account, an
//! unreadable one or two (the header twice) is refused (`400`, or `401`
//! with a challenge for basic auth and JWTs) unless `unreadable_account`
//! says to take the client address; otherwise a blocked account could
//! pass as its address by spelling the scheme `basic`.
//!
//! Connections are bounded: a client has `header_timeout` (10 s) to start
//! its first request and to send each request's headers (and an HTTP/1
//! connection idle between requests is closed after as long), so a
//! half-sent request cannot hold a connection open; at most
//! `max_connections` (1024) are served at once, and further ones wait in
//! the listen backlog to be accepted, so a flood of slow clients costs
//! bounded memory and tasks. HTTP/2 connections are checked with pings
//! every `header_timeout`; one that answers pings and idles holds its slot.
//!
//! The upstream is spoken to over HTTP/1.1 connections kept open and
//! reused ([`Upstream`]): at most `max_connections` of them, each closed
//! after `upstream_idle_timeout` (30 s) unused; a request waits up to
//! `header_timeout` for one.
//!
//! Hop-by-hop headers (RFC 9110 7.6.1: `Connection`, `Keep-Alive`, `TE`,
//! `Transfer-Encoding`, `Upgrade`, ... and every header `Connection`
//! names) are not forwarded, in either direction.
//!
//! A JWT's signature is not checked here: the upstream checks it, and a
//! forged token only gets its own refused request recorded under the
//! forged name. Bodies are streamed through untouched except for routes
//! with `response_customers`, whose JSON answers (up to `max_body`) are
//! read whole to find the customers.

use crate::guard::{Guard, Verdict};
use crate::sink::{EventSink, FailMode};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use vakt_event::directory::HttpMapping;
use vakt_event::routes::{cookie, customers_at, EncodedPaths, Routes, Target};
use vakt_event::{AccessEvent, Action, Actor, Alert, AlertStatus, HttpMethod, Outcome, Severity};
pub use vakt_limit::AttemptPolicy;
use vakt_limit::Attempts;

mod upstream;
pub use upstream::{Upstream, UpstreamError, UpstreamLimits};

type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

/// Where the account of a request comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum AccountFrom {
    /// The client address is the actor.
    Address,
    Header(HeaderName),
    /// The user of HTTP basic auth (`basic`, or `remote_user` as in logs).
    Basic,
    /// A claim of the bearer JWT (`jwt:sub`).
    Jwt(String),
}

impl AccountFrom {
    /// Reads the directory's `[http] account` setting.
    pub fn parse(setting: Option<&str>) -> Result<AccountFrom, String> {
        Ok(match setting {
            None => AccountFrom::Address,
            Some("basic" | "remote_user") => AccountFrom::Basic,
            Some(s) if s.starts_with("header:") => AccountFrom::Header(
                HeaderName::try_from(&s["header:".len()..])
                    .map_err(|_| format!("`{s}`: not a valid header name"))?,
            ),
            Some(s) if s.starts_with("jwt:") && s.len() > 4 => AccountFrom::Jwt(s[4..].into()),
            Some(s) => {
                return Err(format!(
                    "[http] account = `{s}`: write `header:NAME`, `basic` or `jwt:CLAIM`"
                ))
            }
        })
    }

    /// Where the account is read from, for messages.
    fn describe(&self) -> String {
        match self {
            AccountFrom::Address => "the client address".into(),
            AccountFrom::Header(h) => format!("the {h} header"),
            AccountFrom::Basic => "HTTP basic auth (Authorization: Basic ...)".into(),
            AccountFrom::Jwt(c) => {
                format!("the `{c}` claim of a bearer JWT (Authorization: Bearer ...)")
            }
        }
    }

    /// The account a request names; `None` when it names none, or when it
    /// could name two (the header twice): which one an upstream would take
    /// is its own choice.
    fn account(&self, headers: &HeaderMap) -> Option<String> {
        let b64 = |s: &str, engine: &base64::engine::GeneralPurpose| engine.decode(s.trim()).ok();
        let name = match self {
            AccountFrom::Address => None,
            AccountFrom::Header(h) => only(headers, h)?.to_str().ok().map(str::to_owned),
            AccountFrom::Basic => {
                let raw = b64(
                    credentials(headers, "Basic")?,
                    &base64::engine::general_purpose::STANDARD,
                )?;
                let text = String::from_utf8(raw).ok()?;
                Some(
                    text.split_once(':')
                        .map_or(text.as_str(), |(u, _)| u)
                        .to_owned(),
                )
            }
            AccountFrom::Jwt(claim) => {
                let token = credentials(headers, "Bearer")?;
                let payload = token.split('.').nth(1)?;
                let raw = b64(
                    payload.trim_end_matches('='),
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                )?;
                let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
                match v.get(claim)? {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                }
            }
        }?;
        let name = name.trim();
        (!name.is_empty() && name.len() <= 256).then(|| name.to_owned())
    }
}

/// The header's value when it is there exactly once.
fn only<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h HeaderValue> {
    let mut all = headers.get_all(name).iter();
    let first = all.next()?;
    all.next().is_none().then_some(first)
}

/// The credentials of the one `Authorization` header when its scheme is
/// `scheme`, compared case-insensitively with any spaces after it (RFC
/// 9110 11.4: `basic`, `BASIC` and `Basic` are one scheme).
fn credentials<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = only(headers, &header::AUTHORIZATION)?.to_str().ok()?;
    let (name, rest) = value.trim_start().split_once([' ', '\t'])?;
    name.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// What to do with a request whose account cannot be read while accounts
/// are read from a header, basic auth or a JWT.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UnreadableAccount {
    /// Refuse it: `400` (header) or `401` with a challenge (basic, JWT).
    Refuse,
    /// Let it through as the client address, as when no account is set.
    Address,
}

impl std::str::FromStr for UnreadableAccount {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "refuse" => Ok(UnreadableAccount::Refuse),
            "address" => Ok(UnreadableAccount::Address),
            _ => Err(format!("`{s}`: write `refuse` or `address`")),
        }
    }
}

pub struct HttpProxyConfig {
    /// The upstream's scheme and authority (`http://127.0.0.1:9000`).
    pub upstream: Uri,
    pub account: AccountFrom,
    /// What a request whose account cannot be read gets.
    pub unreadable_account: UnreadableAccount,
    pub routes: Routes,
    /// The cookie that names a browser session (`[http] session =
    /// "cookie:NAME"`), recorded as `session.id`.
    pub session_cookie: Option<String>,
    /// How percent-encoded paths are taken (ambiguous ones are always refused).
    pub encoded_paths: EncodedPaths,
    /// Largest response body read to find customers.
    pub max_body: usize,
    /// Wrong step-up codes an account or an address may send in a window,
    /// and how long it is then refused.
    pub step_up_limit: AttemptPolicy,
    /// Accounts and addresses whose step-up attempts are remembered; past
    /// it the least recently seen is forgotten.
    pub step_up_table: NonZeroUsize,
    /// How long a client may take to send a request's headers, and to
    /// start its first request; a connection idle between requests is
    /// closed after it too.
    pub header_timeout: Duration,
    /// Connections served at once; further ones wait to be accepted.
    /// Connections to the upstream are capped at as many.
    pub max_connections: usize,
    /// An upstream connection unused this long is closed; keep it below
    /// the upstream's own keep-alive timeout.
    pub upstream_idle_timeout: Duration,
}

/// Five wrong codes in 15 minutes lock out for 15 minutes: with three codes
/// valid at a time, a guesser's odds are about 1 in 67,000 per window.
pub const STEP_UP_LIMIT: AttemptPolicy = AttemptPolicy {
    allowed: 5,
    window: Duration::from_secs(15 * 60),
    lockout: Duration::from_secs(15 * 60),
};

impl HttpProxyConfig {
    pub fn new(upstream: &str, mapping: Option<&HttpMapping>) -> Result<HttpProxyConfig, String> {
        let upstream: Uri = upstream.parse().map_err(|e| {
            format!("--upstream `{upstream}`: {e}; write e.g. http://127.0.0.1:9000")
        })?;
        if upstream.scheme_str() != Some("http") || upstream.authority().is_none() {
            return Err(format!(
                "--upstream `{upstream}`: write an http:// address with a host, e.g. http://127.0.0.1:9000"
            ));
        }
        Ok(HttpProxyConfig {
            upstream,
            account: AccountFrom::parse(mapping.and_then(|m| m.account.as_deref()))?,
            unreadable_account: UnreadableAccount::Refuse,
            routes: mapping.map(|m| Routes::new(&m.routes)).unwrap_or_default(),
            session_cookie: mapping
                .and_then(|m| m.session.as_deref()?.strip_prefix("cookie:"))
                .map(str::to_owned),
            encoded_paths: EncodedPaths::Decode,
            max_body: 8 << 20,
            step_up_limit: STEP_UP_LIMIT,
            step_up_table: NonZeroUsize::new(100_000).expect("not zero"),
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            upstream_idle_timeout: Duration::from_secs(30),
        })
    }
}

struct State {
    step_up: Mutex<Attempts<AttemptKey>>,
    config: HttpProxyConfig,
    guard: Arc<Guard>,
    sink: Arc<EventSink>,
    upstream: Arc<Upstream>,
}

/// Serves until `shutdown` resolves; connections in flight finish.
pub async fn serve_http(
    listener: TcpListener,
    config: HttpProxyConfig,
    guard: Arc<Guard>,
    sink: Arc<EventSink>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let upstream = Upstream::new(
        &config.upstream,
        UpstreamLimits {
            max_connections: config.max_connections,
            idle_timeout: config.upstream_idle_timeout,
            connect_timeout: config.header_timeout,
        },
    )
    .map_err(std::io::Error::other)?;
    let upstream = Arc::new(upstream);
    Upstream::close_idle_every(&upstream, config.upstream_idle_timeout / 2);
    let state = Arc::new(State {
        step_up: Mutex::new(Attempts::new(config.step_up_limit, config.step_up_table)),
        config,
        guard,
        sink,
        upstream,
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let header_timeout = state.config.header_timeout;
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    // HTTP/2 has no header timeout: pings find clients that went away.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(header_timeout)
        .keep_alive_timeout(header_timeout);
    let slots = Arc::new(Semaphore::new(state.config.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        // At the cap nothing is accepted: new connections wait in the
        // listen backlog until a slot frees (at the latest when a silent
        // client's header timeout ends), rather than being turned away.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let started = Arc::new(AtomicBool::new(false));
                let seen = started.clone();
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    seen.store(true, Ordering::Relaxed);
                    async move { Ok::<_, std::convert::Infallible>(handle(&state, peer, req).await) }
                });
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    let _slot = slot;
                    tokio::pin!(conn);
                    // hyper times out HTTP/1 headers, but not the bytes read
                    // to tell HTTP/1 from HTTP/2: a first request must have
                    // begun by the header timeout, or the connection is dropped.
                    tokio::select! {
                        _ = &mut conn => return,
                        () = tokio::time::sleep(header_timeout) => {}
                    }
                    if started.load(Ordering::Relaxed) {
                        let _ = conn.await;
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}

const TOTP_HEADER: &str = "x-vakt-totp";

async fn handle(state: &State, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    // A dual-stack listener sees IPv4 clients as `::ffff:a.b.c.d`.
    let ip = peer.ip().to_canonical();
    // Written once: the actor when no account is named, and X-Forwarded-For.
    let ip_text = vakt_event::addr::ip_text(ip);
    let account = state.config.account.account(req.headers());
    let method = req.method().clone();
    let written = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    // Matched, recorded and forwarded in the form the upstream resolves:
    // `C-100%31` is a read of `C-1001`, and the upstream is sent `C-1001`.
    let resolved = Target::parse(&written, state.config.encoded_paths);
    let (target, route) = match &resolved {
        Ok(t) => (
            t.canonical(),
            state.config.routes.find_path(method.as_str(), &t.path),
        ),
        Err(_) => (written.clone(), None),
    };
    let mut ev = AccessEvent {
        timestamp: vakt_event::Timestamp::now(),
        user: account.clone().unwrap_or_else(|| ip_text.clone()),
        source_ip: Some(ip),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        session_id: state.config.session_cookie.as_deref().and_then(|name| {
            let header = req.headers().get(header::COOKIE)?.to_str().ok()?;
            cookie(header, name).map(str::to_owned)
        }),
        action: route.map_or(Action::Request, |(r, _)| r.action.clone()),
        categories: route.map(|(r, _)| r.categories.clone()).unwrap_or_default(),
        url_path: Some([method.as_str(), " ", &target].concat()),
        http_method: Some(HttpMethod::parse(method.as_str())),
        referrer: req
            .headers()
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        ..Default::default()
    };
    let path_customer = route.map(|(_, c)| c.to_owned()).filter(|c| !c.is_empty());
    let pointer = route.and_then(|(r, _)| r.response_customers.clone());

    if let Err(e) = &resolved {
        return failed(
            state,
            ev,
            json_response(
                StatusCode::BAD_REQUEST,
                serde_json::json!({
                    "error": "ambiguous_path",
                    "message": format!("vakt refuses this path, as servers would not agree on what it names: {e}; send the path without it"),
                }),
                &[],
            ),
        );
    }

    // An account that cannot be read is never taken for the address by
    // accident: a blocked account would pass as `basic` instead of `Basic`.
    if account.is_none()
        && state.config.account != AccountFrom::Address
        && state.config.unreadable_account == UnreadableAccount::Refuse
    {
        return failed(state, ev, unreadable_account(&state.config.account));
    }

    // A step-up code is checked only when step-up is asked for, and only
    // while the account and the address have attempts left.
    let mut verdict = state.guard.verdict(account.as_deref(), Some(ip));
    let mut wrong_code = false;
    let code = req
        .headers()
        .get(TOTP_HEADER)
        .map(|c| c.to_str().unwrap_or("").to_owned());
    if let (Verdict::StepUp(_), Some(a), Some(code)) = (&verdict, &account, code) {
        match check_code(state, a, ip, code).await {
            // Step-up was the strongest decision and returned before any
            // throttle took a token, so asking again counts nothing twice.
            CodeCheck::Right => verdict = state.guard.verdict(account.as_deref(), Some(ip)),
            CodeCheck::Wrong => wrong_code = true,
            CodeCheck::Locked(wait) => {
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                let answer = json_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    serde_json::json!({
                        "error": "step_up_locked",
                        "message": format!("too many wrong TOTP codes for {a} or from {ip}: vakt checks no code for {secs} s; retry then with the current code"),
                        "retry_after": secs,
                    }),
                    &[(header::RETRY_AFTER, secs.to_string())],
                );
                return failed(state, ev, answer);
            }
        }
    }
    let refusal = match verdict {
        Verdict::Pass => None,
        Verdict::Block(d) => Some(json_response(
            StatusCode::FORBIDDEN,
            serde_json::json!({
                "error": "blocked",
                "message": format!(
                    "{} is blocked by vakt until {} ({}); contact {} to lift it",
                    ev.user, d.expires, d.reason, state.guard.config().contact
                ),
                "decision": d.id, "reason": d.reason, "until": d.expires.to_string(),
                "contact": state.guard.config().contact,
            }),
            &[],
        )),
        Verdict::Throttle { decision, wait } => {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            Some(json_response(
                StatusCode::TOO_MANY_REQUESTS,
                serde_json::json!({
                    "error": "throttled",
                    "message": format!("{} is throttled by vakt ({}); retry in {secs} s", ev.user, decision.reason),
                    "decision": decision.id, "retry_after": secs,
                }),
                &[(header::RETRY_AFTER, secs.to_string())],
            ))
        }
        Verdict::StepUp(d) => Some(json_response(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({
                "error": "step_up_required",
                "message": if wrong_code {
                    "the TOTP code was wrong or expired; send the current one in X-Vakt-TOTP".to_owned()
                } else {
                    format!("vakt asks {} to confirm with a TOTP code ({}): repeat the request with the current code in the X-Vakt-TOTP header", ev.user, d.reason)
                },
                "decision": d.id, "header": "X-Vakt-TOTP",
            }),
            &[(
                header::WWW_AUTHENTICATE,
                "TOTP realm=\"vakt\", header=\"X-Vakt-TOTP\"".into(),
            )],
        )),
    };
    let refusal = refusal.or_else(|| {
        (state.sink.fail_mode() == FailMode::Closed && !state.sink.keeping_up()).then(|| {
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": "audit_unavailable", "message": "vakt cannot record accesses right now and is set to fail closed; retry shortly"}),
                &[(header::RETRY_AFTER, "1".into())],
            )
        })
    });
    if let Some(resp) = refusal {
        return failed(state, ev, resp);
    }

    let (mut parts, body) = req.into_parts();
    // Origin form: the connection is to the upstream already.
    parts.uri = match target.parse::<Uri>() {
        Ok(u) => u,
        Err(_) => {
            return failed(
                state,
                ev,
                json_response(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": "bad_target"}),
                    &[],
                ),
            );
        }
    };
    strip_hop_headers(&mut parts.headers);
    parts.headers.remove(TOTP_HEADER);
    let forwarded = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(prior) => format!("{prior}, {ip_text}"),
        None => ip_text,
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        parts.headers.insert("x-forwarded-for", v);
    }
    let upstream_req = Request::from_parts(parts, body.boxed());
    let resp = match state.upstream.send(upstream_req).await {
        Ok(r) => r,
        Err(e) => {
            let answer = bad_gateway(
                "upstream_unreachable",
                format!("the upstream did not answer: {e}"),
            );
            return failed(state, ev, answer);
        }
    };
    let status = resp.status();
    ev.http_status = Some(status.as_u16());
    ev.outcome = if status.as_u16() >= 400 {
        Outcome::Failure
    } else {
        Outcome::Success
    };
    ev.bytes = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let (mut parts, body) = resp.into_parts();
    strip_hop_headers(&mut parts.headers);
    let mut customers: Vec<String> = path_customer.into_iter().collect();
    let body: Body = match pointer.filter(|_| status.is_success() && method != Method::HEAD) {
        Some(pointer) => match Limited::new(body, state.config.max_body).collect().await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                    customers_at(&v, &pointer, &mut customers);
                }
                ev.bytes = Some(bytes.len() as u64);
                Full::new(bytes).map_err(|never| match never {}).boxed()
            }
            Err(e) => {
                let answer = bad_gateway(
                    "upstream_body",
                    format!(
                        "the upstream's answer could not be read (larger than {} bytes?): {e}",
                        state.config.max_body
                    ),
                );
                return failed(state, ev, answer);
            }
        },
        None => body.boxed(),
    };
    if ev.outcome == Outcome::Success {
        customers.sort_unstable();
        customers.dedup();
        ev.records = customers.len() as u64;
        ev.customer_ids = customers;
    }
    submit(state, ev);
    Response::from_parts(parts, body)
}

/// Who step-up attempts are counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum AttemptKey {
    Account(String),
    Address(IpAddr),
}

enum CodeCheck {
    Right,
    Wrong,
    /// Not checked: the account or the address is locked out for this long.
    Locked(Duration),
}

/// Checks a step-up code within the attempts the account and the address
/// have left; the attempt that uses them up raises `step_up_failures`.
async fn check_code(state: &State, account: &str, ip: IpAddr, code: String) -> CodeCheck {
    let keys = [
        AttemptKey::Account(account.to_owned()),
        AttemptKey::Address(ip.to_canonical()),
    ];
    let attempts = || state.step_up.lock().unwrap_or_else(|p| p.into_inner());
    // Counted before the code is checked, so parallel guesses all count.
    let attempt = match attempts().begin(&keys, Instant::now()) {
        Ok(a) => a,
        Err(wait) => return CodeCheck::Locked(wait),
    };
    let (guard, a) = (state.guard.clone(), account.to_owned());
    let right = tokio::task::spawn_blocking(move || guard.verify_totp(&a, &code))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(false);
    if right {
        attempts().succeeded(&keys);
        return CodeCheck::Right;
    }
    if !attempt.locks {
        return CodeCheck::Wrong;
    }
    let alert = lockout_alert(state, account, ip, attempt.count);
    let line = alert.to_json_line();
    if let Err(e) = state.sink.raise(alert) {
        tracing::error!("{e}; the alert: {line}");
    }
    CodeCheck::Locked(state.config.step_up_limit.lockout)
}

/// The `step_up_failures` alert of one lockout (docs/EVENTS.md section 5).
fn lockout_alert(state: &State, account: &str, ip: IpAddr, failures: u32) -> Alert {
    let now = vakt_event::Timestamp::now();
    let limit = state.config.step_up_limit;
    // FNV-1a over the actor and the time: one id per lockout.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{account}\t{ip}")
        .bytes()
        .chain(now.0.to_le_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut evidence = serde_json::Map::new();
    evidence.insert("failures".into(), failures.into());
    evidence.insert("allowed".into(), limit.allowed.into());
    evidence.insert("window_seconds".into(), limit.window.as_secs().into());
    evidence.insert("lockout_seconds".into(), limit.lockout.as_secs().into());
    Alert {
        id: format!("step_up_failures-{:012x}", h & 0xffff_ffff_ffff),
        timestamp: now,
        rule: "step_up_failures".into(),
        severity: Severity::High,
        actor: Actor {
            user: Some(account.to_owned()),
            host: None,
            ip: Some(ip.to_canonical()),
        },
        organization: state
            .guard
            .organization(Some(account), Some(ip))
            .map(str::to_owned),
        first_seen: now,
        message: format!(
            "{failures} wrong step-up codes for {account} or from {ip} within {} s: someone without the account's second factor may be guessing it; codes are refused for {} s",
            limit.window.as_secs(),
            limit.lockout.as_secs()
        ),
        evidence,
        customers: 0,
        status: AlertStatus::New,
        updates: 0,
    }
}

fn unreadable_account(from: &AccountFrom) -> Response<Body> {
    let (status, challenge) = match from {
        AccountFrom::Basic => (StatusCode::UNAUTHORIZED, Some("Basic realm=\"vakt\"")),
        AccountFrom::Jwt(_) => (StatusCode::UNAUTHORIZED, Some("Bearer realm=\"vakt\"")),
        AccountFrom::Header(_) | AccountFrom::Address => (StatusCode::BAD_REQUEST, None),
    };
    json_response(
        status,
        serde_json::json!({
            "error": "account_unreadable",
            "message": format!(
                "vakt reads the account from {}, which this request lacks, sends twice or sends unreadable; send it once, well-formed",
                from.describe()
            ),
        }),
        &challenge
            .map(|c| (header::WWW_AUTHENTICATE, c.to_owned()))
            .into_iter()
            .collect::<Vec<_>>(),
    )
}

/// Records a request that was not served as a failed access, and answers it.
fn failed(state: &State, mut ev: AccessEvent, answer: Response<Body>) -> Response<Body> {
    ev.outcome = Outcome::Failure;
    submit(state, ev);
    answer
}

fn submit(state: &State, ev: AccessEvent) {
    if let Err(e) = state.sink.submit(ev) {
        tracing::error!("an access event could not be queued or spooled: {e}");
    }
}

/// Headers that describe one hop, not the message (RFC 9110 7.6.1).
const HOP_HEADERS: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_headers(h: &mut HeaderMap) {
    // Most messages carry none: one pass over the names costs less than
    // looking each hop header up.
    if !h.keys().any(|n| HOP_HEADERS.contains(n)) {
        return;
    }
    // Headers the sender names in `Connection` are this hop's too.
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        h.remove(name);
    }
    for name in HOP_HEADERS {
        h.remove(name);
    }
}

/// `502`: the upstream failed the request.
fn bad_gateway(error: &str, message: String) -> Response<Body> {
    json_response(
        StatusCode::BAD_GATEWAY,
        serde_json::json!({"error": error, "message": message}),
        &[],
    )
}

fn json_response(
    status: StatusCode,
    body: serde_json::Value,
    headers: &[(HeaderName, String)],
) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            r.headers_mut().insert(k.clone(), v);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::try_from(*k).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_headers_are_stripped_and_end_to_end_ones_kept() {
        let end_to_end = [
            ("content-type", "application/json"),
            ("authorization", "Basic cDM6eA=="),
            ("x-forwarded-for", "198.51.100.4"),
        ];
        let mut h = headers(&end_to_end);
        strip_hop_headers(&mut h);
        assert_eq!(h, headers(&end_to_end), "nothing to strip, nothing touched");
        for hop in [
            "connection",
            "keep-alive",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "proxy-authorization",
            "proxy-authenticate",
        ] {
            let mut h = headers(&end_to_end);
            h.append(
                HeaderName::try_from(hop).unwrap(),
                HeaderValue::from_static("x"),
            );
            h.append(
                HeaderName::try_from(hop).unwrap(),
                HeaderValue::from_static("y"),
            );
            strip_hop_headers(&mut h);
            assert_eq!(
                h,
                headers(&end_to_end),
                "{hop} is stripped, every value of it"
            );
        }
        let mut h = headers(&end_to_end);
        h.append("connection", HeaderValue::from_static("close, X-Trace"));
        h.append("connection", HeaderValue::from_static("x-debug"));
        h.insert("x-trace", HeaderValue::from_static("1"));
        h.insert("x-debug", HeaderValue::from_static("1"));
        strip_hop_headers(&mut h);
        assert_eq!(
            h,
            headers(&end_to_end),
            "headers named in Connection are stripped"
        );
    }

    #[test]
    fn accounts_come_from_a_header_basic_auth_or_a_jwt_claim() {
        let h = AccountFrom::parse(Some("header:X-Account")).unwrap();
        assert_eq!(
            h.account(&headers(&[("x-account", "p3.anna")])).as_deref(),
            Some("p3.anna")
        );
        assert_eq!(h.account(&headers(&[])), None);
        let b = AccountFrom::parse(Some("basic")).unwrap();
        // "p3.bot:secret"
        assert_eq!(
            b.account(&headers(&[("authorization", "Basic cDMuYm90OnNlY3JldA==")]))
                .as_deref(),
            Some("p3.bot")
        );
        assert_eq!(b.account(&headers(&[("authorization", "Basic %%%")])), None);
        let j = AccountFrom::parse(Some("jwt:sub")).unwrap();
        // {"sub":"erik","exp":1}
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJlcmlrIiwiZXhwIjoxfQ.c2ln";
        assert_eq!(
            j.account(&headers(&[("authorization", &format!("Bearer {token}"))]))
                .as_deref(),
            Some("erik")
        );
        assert_eq!(
            j.account(&headers(&[("authorization", &format!("bearer   {token}"))]))
                .as_deref(),
            Some("erik"),
            "the scheme is case-insensitive"
        );
        assert_eq!(
            j.account(&headers(&[("authorization", "Bearer not-a-jwt")])),
            None
        );
        assert_eq!(
            j.account(&headers(&[("authorization", &format!("Bearerx {token}"))])),
            None
        );
        assert!(AccountFrom::parse(Some("cookie"))
            .unwrap_err()
            .contains("header:NAME"));
    }
}
