//! The console's HTML in one place: escaping, the page layout with its
//! security headers, and the small pieces every page uses (times,
//! severities, selects, the CSRF field). Pages build their bodies from
//! these and never write a raw user value.

use super::roles::Need;
use super::Session;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::fmt::Write;
use vakt_event::{Severity, Timestamp};

/// Escapes text for HTML content and attribute values (one escaper for
/// the console and the report draft).
pub(crate) use vakt_ledger::report::escape_html as esc;

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

pub(crate) fn sev(s: Severity) -> String {
    format!("<span class=\"sev sev-{0}\">{0}</span>", s.as_str())
}

/// A whole page: header with navigation (and sign-out when signed in).
pub(crate) fn page_status(
    status: StatusCode,
    title: &str,
    session: Option<&Session>,
    body: &str,
) -> Response {
    let nav = match session {
        Some(s) => format!(
            "<nav><a href=\"/overview\">Overview</a><a href=\"/\">Alerts</a><a href=\"/incidents\">Incidents</a><a href=\"/decisions\">Decisions</a><a href=\"/exceptions\">Exceptions</a><a href=\"/canaries\">Canaries</a><a href=\"/exposure\">Exposure</a>{}</nav><form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><span class=\"muted\" id=\"signed-in\">{} ({})</span> <button type=\"submit\">Sign out</button></form>",
            if super::roles::AUDIT.met_by(s.role) { "<a href=\"/audit\">Audit</a>" } else { "" },
            esc(&s.csrf),
            esc(&s.user),
            s.role
        ),
        None => String::new(),
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta name=\"color-scheme\" content=\"dark light\"><title>{} - vakt</title><link rel=\"stylesheet\" href=\"/assets/console.css\"></head><body><header><span class=\"brand\">vakt</span>{nav}</header><main><h1>{}</h1>{body}</main><script src=\"/assets/console.js\"></script></body></html>",
        esc(title),
        esc(title)
    );
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
        html,
    )
        .into_response()
}

pub(crate) fn page(title: &str, s: &Session, body: &str) -> Response {
    page_status(StatusCode::OK, title, Some(s), body)
}

pub(crate) fn fail(s: &Session, status: StatusCode, msg: &str) -> Response {
    page_status(
        status,
        "Not possible",
        Some(s),
        &format!("<p class=\"error\">{}</p>", esc(msg)),
    )
}

/// 403 for what the user's role may not do: which role it takes and how
/// an admin grants it.
pub(crate) fn refused(s: &Session, need: Need) -> Response {
    page_status(
        StatusCode::FORBIDDEN,
        "Not allowed",
        Some(s),
        &format!(
            "<p class=\"error\" id=\"role-refused\">You are signed in as {} with the {} role; {} needs the {} role. Someone with access to the server can grant it with <code>vakt user role {} {}</code>.</p>",
            esc(&s.user),
            s.role,
            esc(need.what),
            need.role,
            esc(&s.user),
            need.role
        ),
    )
}

pub(crate) fn login_page(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let err = error
        .map(|e| format!("<p class=\"error\" id=\"login-error\">{}</p>", esc(e)))
        .unwrap_or_default();
    page_status(
        status,
        "Sign in",
        None,
        &format!(
            "<div class=\"login panel\">{err}<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"next\" value=\"{}\"><label>Name<input name=\"user\" id=\"user\" autocomplete=\"username\" required autofocus></label><label>Password<input type=\"password\" name=\"password\" id=\"password\" autocomplete=\"current-password\" required></label><button type=\"submit\" id=\"signin\">Sign in</button></form><p class=\"muted\">Users are added with <code>vakt user add NAME</code>.</p></div>",
            esc(next)
        ),
    )
}

pub(crate) fn select(name: &str, options: &[&str], chosen: &str) -> String {
    let mut s = format!("<select name=\"{name}\" id=\"f-{name}\"><option value=\"\">any</option>");
    for o in options {
        let sel = if *o == chosen { " selected" } else { "" };
        let _ = write!(s, "<option{sel}>{}</option>", esc(o));
    }
    s + "</select>"
}

pub(crate) fn csrf_input(s: &Session) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&s.csrf)
    )
}
