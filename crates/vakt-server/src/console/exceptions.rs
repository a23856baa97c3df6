//! The console's exceptions: the list, the add form, revoking, and the
//! "mark false positive" form on an alert's page (an exception scoped to
//! the alert's actor and rule).

use super::html::{csrf_input, esc, fail, page, select, short, url_encode};
use super::pages::{read, write};
use super::roles::{EXCEPT, READ};
use super::{form_pairs, require, require_form, see_other, who, Session, Shared};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use std::fmt::Write;
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
    let mut b = String::new();
    if let Some(e) = q.get("error") {
        let _ = write!(b, "<p class=\"error\" id=\"form-error\">{}</p>", esc(e));
    }
    if may {
        let mut rules = vakt_pipeline::rule_ids();
        rules.insert(0, "");
        let _ = write!(
            b,
            "<div class=\"panel\"><form class=\"filters\" id=\"add-exception\" method=\"post\" action=\"/exceptions\">{csrf}<label>Actor<input name=\"actor\" id=\"x-actor\"></label><label>Rule{}</label><label>Destination<input name=\"destination\" id=\"x-destination\"></label><label>For<input name=\"for\" id=\"x-for\" size=\"6\" placeholder=\"30d\"></label><label>Reason<input name=\"reason\" id=\"x-reason\" size=\"30\" required></label><button type=\"submit\" id=\"x-add\">Add exception</button></form></div>",
            select("rule", &rules, "")
        );
    } else {
        let _ = write!(
            b,
            "<p class=\"muted\" id=\"except-withheld\">Your role, {}, may read exceptions; adding and revoking them takes the {} role.</p>",
            s.role, EXCEPT.role
        );
    }
    let _ = write!(
        b,
        "<p class=\"muted\">{} exception(s){}; alerts they match are recorded but neither enforced nor delivered (<a href=\"/?suppressed=true\">suppressed alerts</a>, <a href=\"/exceptions{}\">{}</a>).</p><table id=\"exceptions\"><tr><th>Id</th><th>Actor</th><th>Rule</th><th>Destination</th><th>Until</th><th>Reason</th><th>By</th><th>Since</th><th></th></tr>",
        list.len(),
        if all { "" } else { " in force" },
        if all { "" } else { "?all=true" },
        if all { "in force only" } else { "also ended and revoked" }
    );
    for e in &list {
        let action = if e.revoked_at.is_some() {
            format!(
                "revoked {} by {}",
                e.revoked_at.map(short).unwrap_or_default(),
                esc(e.revoked_by.as_deref().unwrap_or(""))
            )
        } else if may {
            format!(
                "<form class=\"inline\" method=\"post\" action=\"/exceptions/{}/revoke\">{csrf}<button type=\"submit\" class=\"danger revoke\">Revoke</button></form>",
                url_encode(&e.id)
            )
        } else {
            String::new()
        };
        let _ = write!(
            b,
            "<tr data-id=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
            esc(&e.id),
            esc(&e.id),
            esc(e.actor.as_deref().unwrap_or("")),
            esc(e.rule.as_deref().unwrap_or("")),
            esc(e.destination.as_deref().unwrap_or("")),
            e.until.map(short).unwrap_or_else(|| "until revoked".into()),
            esc(&e.reason),
            esc(&e.created_by),
            short(e.created_at)
        );
    }
    b += "</table>";
    page("Exceptions", &s, &b)
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
) -> String {
    let mut b = String::new();
    if let Some(e) = error {
        let _ = write!(b, "<p class=\"error\" id=\"form-error\">{}</p>", esc(e));
    }
    if let Some(x) = suppressed_by {
        let _ = write!(
            b,
            "<p class=\"muted\" id=\"suppressed-by\">Suppressed by exception <a href=\"/exceptions?all=true\">{}</a>: recorded, not enforced or delivered.</p>",
            esc(x)
        );
    } else if EXCEPT.met_by(s.role) {
        let _ = write!(
            b,
            "<div class=\"panel\"><form class=\"filters\" id=\"false-positive\" method=\"post\" action=\"/exceptions\">{}<input type=\"hidden\" name=\"from_alert\" value=\"{}\"><label>Reason<input name=\"reason\" id=\"fp-reason\" size=\"30\" required></label><label>For<input name=\"for\" id=\"fp-for\" size=\"6\" placeholder=\"30d\"></label><button type=\"submit\" id=\"fp-add\">Mark false positive</button></form><p class=\"muted\">Suppresses this actor's future alerts of this rule.</p></div>",
            csrf_input(s),
            esc(id)
        );
    }
    b
}
