//! The console's HTML in one place: the page layout with its security
//! headers, and the small pieces every page uses (times, severities,
//! selects, the CSRF field). Pages build their bodies from these and
//! never write a raw user value.
//!
//! Written with `maud`, which escapes every value it is given unless
//! told otherwise (`PreEscaped`, kept for markup maud built itself).

use super::roles::Need;
use super::Session;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use vakt_event::{Severity, Timestamp};

pub(crate) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) fn short(t: Timestamp) -> String {
    t.to_rfc3339()
        .get(..16)
        .unwrap_or_default()
        .replace('T', " ")
}

pub(crate) fn sev(s: Severity) -> Markup {
    html! { span class={ "sev sev-" (s.as_str()) } { (s.as_str()) } }
}

/// A whole page: header with navigation (and sign-out when signed in).
/// `body` is markup the page built (with maud), put in as it is.
pub(crate) fn page_status(
    status: StatusCode,
    title: &str,
    session: Option<&Session>,
    body: &str,
) -> Response {
    let html = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="dark light";
                title { (title) " - vakt" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body {
                header {
                    span class="brand" { "vakt" }
                    @if let Some(s) = session {
                        nav {
                            a href="/overview" { "Overview" }
                            a href="/" { "Alerts" }
                            a href="/incidents" { "Incidents" }
                            a href="/decisions" { "Decisions" }
                            a href="/exceptions" { "Exceptions" }
                            a href="/canaries" { "Canaries" }
                            a href="/pages" { "Pages" }
                            a href="/exposure" { "Exposure" }
                            @if super::roles::AUDIT.met_by(s.role) { a href="/audit" { "Audit" } }
                        }
                        form method="post" action="/logout" {
                            (csrf_input(s))
                            span class="muted" id="signed-in" { (s.user) " (" (s.role) ")" }
                            " "
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (PreEscaped(body))
                }
                script src="/assets/console.js" {}
            }
        }
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html.into_string(),
    )
        .into_response()
}

pub(crate) fn page(title: &str, s: &Session, body: &str) -> Response {
    page_status(StatusCode::OK, title, Some(s), body)
}

pub(crate) fn fail(s: &Session, status: StatusCode, msg: &str) -> Response {
    let body = html! { p class="error" { (msg) } };
    page_status(status, "Not possible", Some(s), &body.into_string())
}

/// 403 for what the user's role may not do: which role it takes and how
/// an admin grants it.
pub(crate) fn refused(s: &Session, need: Need) -> Response {
    let body = html! {
        p class="error" id="role-refused" {
            "You are signed in as " (s.user) " with the " (s.role) " role; " (need.what)
            " needs the " (need.role) " role. Someone with access to the server can grant it with "
            code { "vakt user role " (s.user) " " (need.role) } "."
        }
    };
    page_status(
        StatusCode::FORBIDDEN,
        "Not allowed",
        Some(s),
        &body.into_string(),
    )
}

pub(crate) fn login_page(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let body = html! {
        div class="login panel" {
            @if let Some(e) = error { p class="error" id="login-error" { (e) } }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label { "Name" input name="user" id="user" autocomplete="username" required autofocus; }
                label { "Password" input type="password" name="password" id="password" autocomplete="current-password" required; }
                button type="submit" id="signin" { "Sign in" }
            }
            p class="muted" { "Users are added with " code { "vakt user add NAME" } "." }
        }
    };
    page_status(status, "Sign in", None, &body.into_string())
}

pub(crate) fn select(name: &str, options: &[&str], chosen: &str) -> Markup {
    html! {
        select name=(name) id={ "f-" (name) } {
            option value="" { "any" }
            @for o in options { option selected[*o == chosen] { (o) } }
        }
    }
}

pub(crate) fn csrf_input(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}
