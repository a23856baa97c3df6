//! The console's exceptions: the list, the add form, revoking, and the
//! "mark false positive" form on an alert's page (an exception scoped to
//! the alert's actor and rule).
//!
//! Written with `maud`, which escapes every value it is given unless
//! told otherwise.

use super::html::{csrf_input, fail, page, select, short, url_encode};
use super::pages::{read, write};
use super::roles::{EXCEPT, READ};
use super::{form_pairs, require, require_form, see_other, who, Session, Shared};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use maud::{html, Markup};
use vakt_event::Timestamp;
use vakt_ledger::audit::Audit;
use vakt_pipeline::ExceptionRequest;

fn back_with_error(msg: &str) -> Response {
    see_other(&format!("/exceptions?error={}", url_encode(msg)))
}

pub(crate) async fn list(c: Shared, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let s = match require(&c, &headers, "/exceptions", READ) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = form_pairs(&q.unwrap_or_default());
    let all = q.get("all").is_some_and(|v| v == "true");
    let now = Timestamp::now();
    let list = match read(&c, move |l| l.exceptions((!all).then_some(now))).await {
        Ok(l) => l,
        Err(e) => return fail(&s, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let csrf = csrf_input(&s);
    let may = EXCEPT.met_by(s.role);
    let rules = if may {
        let mut rules = vakt_pipeline::rule_ids();
        rules.insert(0, "");
        rules
    } else {
        Vec::new()
    };
    let body = html! {
        @if let Some(e) = q.get("error") { p class="error" id="form-error" { (e) } }
        @if may {
            div class="panel" {
                form class="filters" id="add-exception" method="post" action="/exceptions" {
                    (csrf)
                    label { "Actor" input name="actor" id="x-actor"; }
                    label { "Rule" (select("rule", &rules, "")) }
                    label { "Destination" input name="destination" id="x-destination"; }
                    label { "For" input name="for" id="x-for" size="6" placeholder="30d"; }
                    label { "Reason" input name="reason" id="x-reason" size="30" required; }
                    button type="submit" id="x-add" { "Add exception" }
                }
            }
        } @else {
            p class="muted" id="except-withheld" {
                "Your role, " (s.role.as_str()) ", may read exceptions; adding and revoking them takes the "
                (EXCEPT.role.as_str()) " role."
            }
        }
        p class="muted" {
            (list.len()) " exception(s)" @if !all { " in force" }
            "; alerts they match are recorded but neither enforced nor delivered ("
            a href="/?suppressed=true" { "suppressed alerts" } ", "
            a href=(if all { "/exceptions" } else { "/exceptions?all=true" }) {
                (if all { "in force only" } else { "also ended and revoked" })
            }
            ")."
        }
        table id="exceptions" {
            tr {
                th { "Id" } th { "Actor" } th { "Rule" } th { "Destination" } th { "Until" }
                th { "Reason" } th { "By" } th { "Since" } th {}
            }
            @for e in &list {
                tr data-id=(e.id) {
                    td { (e.id) }
                    td { (e.actor.as_deref().unwrap_or("")) }
                    td { (e.rule.as_deref().unwrap_or("")) }
                    td { (e.destination.as_deref().unwrap_or("")) }
                    td { (e.until.map(short).unwrap_or_else(|| "until revoked".into())) }
                    td { (e.reason) }
                    td { (e.created_by) }
                    td { (short(e.created_at)) }
                    td {
                        @if let Some(at) = e.revoked_at {
                            "revoked " (short(at)) " by " (e.revoked_by.as_deref().unwrap_or(""))
                        } @else if may {
                            form class="inline" method="post" action={ "/exceptions/" (url_encode(&e.id)) "/revoke" } {
                                (csrf)
                                button type="submit" class="danger revoke" { "Revoke" }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Exceptions", &s, &body.into_string())
}

/// The add form, and the alert page's "mark false positive" form (which
/// sends `from_alert` and returns to the alert).
pub(crate) async fn add(c: Shared, headers: HeaderMap, ext: Extensions, body: Bytes) -> Response {
    let form = form_pairs(&String::from_utf8_lossy(&body));
    let s = match require_form(&c, &headers, &form, EXCEPT) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let get = |k: &str| form.get(k).cloned();
    let from_alert = get("from_alert").filter(|v| !v.trim().is_empty());
    let back = from_alert
        .as_ref()
        .map(|id| format!("/alerts/{}", url_encode(id)));
    let new = ExceptionRequest {
        actor: get("actor"),
        rule: get("rule"),
        destination: get("destination"),
        until: get("until"),
        for_: get("for"),
        from_alert,
        reason: get("reason").unwrap_or_default(),
    };
    let who = who(&s.user, &ext);
    let r = write(&c, move |l| match new.make(l, &who.name) {
        Ok(e) => l.audited(&who, |l| {
            let e = l.add_exception(&e)?;
            let audit = Audit::exception("exception.add", &e);
            Ok((Ok(e), Some(audit)))
        }),
        Err(msg) => Ok(Err(msg)),
    })
    .await;
    match (r, back) {
        (Ok(Ok(_)), _) => see_other("/exceptions"),
        (Ok(Err(msg)), Some(back)) => see_other(&format!("{back}?error={}", url_encode(&msg))),
        (Ok(Err(msg)), None) => back_with_error(&msg),
        (Err(e), _) => fail(&s, StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

pub(crate) async fn revoke(
    c: Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    ext: Extensions,
    body: Bytes,
) -> Response {
    let form = form_pairs(&String::from_utf8_lossy(&body));
    let s = match require_form(&c, &headers, &form, EXCEPT) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let who = who(&s.user, &ext);
    let r = write(&c, move |l| {
        l.audited(&who, |l| {
            let e = l.revoke_exception(&id, &who.name)?;
            let audit = e.as_ref().map(|e| Audit::exception("exception.revoke", e));
            Ok((e, audit))
        })
    });
    match r.await {
        Ok(Some(_)) => see_other("/exceptions"),
        Ok(None) => back_with_error("that exception is not there"),
        Err(e) => fail(&s, StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

/// The alert page's part: which exception suppressed the alert, or the
/// form that marks it a false positive (for those who may).
pub(crate) fn alert_panel(
    s: &Session,
    id: &str,
    suppressed_by: Option<&str>,
    error: Option<&str>,
) -> Markup {
    html! {
        @if let Some(e) = error { p class="error" id="form-error" { (e) } }
        @if let Some(x) = suppressed_by {
            p class="muted" id="suppressed-by" {
                "Suppressed by exception " a href="/exceptions?all=true" { (x) }
                ": recorded, not enforced or delivered."
            }
        } @else if EXCEPT.met_by(s.role) {
            div class="panel" {
                form class="filters" id="false-positive" method="post" action="/exceptions" {
                    (csrf_input(s))
                    input type="hidden" name="from_alert" value=(id);
                    label { "Reason" input name="reason" id="fp-reason" size="30" required; }
                    label { "For" input name="for" id="fp-for" size="6" placeholder="30d"; }
                    button type="submit" id="fp-add" { "Mark false positive" }
                }
                p class="muted" { "Suppresses this actor's future alerts of this rule." }
            }
        }
    }
}
