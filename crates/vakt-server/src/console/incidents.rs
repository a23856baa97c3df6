//! The console's incidents: the list (filters kept in the URL), one
//! incident with its alerts and history, and the form analysts work it
//! with (status, owner, classification with a reason, a note, and an
//! exception when closing as a false positive). Each change is an audit
//! record of the signed-in user and the client address.
//!
//! Written with `maud`, which checks the markup at compile time and
//! escapes every value it is given unless told otherwise.

use super::html::{page, short};
use super::pages::{read, write};
use super::roles::{READ, WORK};
use super::{form_pairs, require, require_form, see_other, Session, Shared};
use crate::http::encode_query;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use maud::{html, Markup};
use vakt_event::notification::Clock;
use vakt_event::{Severity, Timestamp};
use vakt_ledger::audit::AuditRecord;
use vakt_ledger::incident_workflow::{
    Classification, ExceptionAsk, IncidentChange, IncidentStatus,
};
use vakt_ledger::incidents::Incident;
use vakt_ledger::report::plain;
use vakt_ledger::LedgerError;

/// Most incidents one list shows.
const SHOWN: usize = 500;

fn link(id: &str) -> String {
    format!("/incidents/{}", encode_query(id))
}

fn severity(s: Severity) -> Markup {
    html! { span class={ "sev sev-" (s.as_str()) } { (s.as_str()) } }
}

/// How long ago, in the largest whole unit.
fn age(since: Timestamp, now: Timestamp) -> String {
    let mins = (now.0 - since.0).max(0) / 60_000;
    match mins {
        m if m < 60 => format!("{m} min"),
        m if m < 48 * 60 => format!("{} h", m / 60),
        m => format!("{} d", m / (24 * 60)),
    }
}

/// Time left on a clock, as a person reads it.
pub(crate) fn left(ms: i64) -> String {
    let span = |ms: i64| {
        let mins = ms / 60_000;
        match mins {
            m if m < 60 => format!("{m} min"),
            m if m < 72 * 60 => format!("{} h {} min", m / 60, m % 60),
            m => format!("{} d {} h", m / (24 * 60), (m / 60) % 24),
        }
    };
    if ms >= 0 {
        format!("{} left", span(ms))
    } else {
        format!("overdue by {}", span(-ms))
    }
}

/// The nearest deadline not yet met, for the list.
fn next_deadline(clocks: &[Clock]) -> Option<&Clock> {
    clocks
        .iter()
        .filter(|c| c.done.is_none())
        .min_by_key(|c| c.left_ms)
}

fn failed(s: &Session, e: &str) -> Response {
    super::html::fail(s, StatusCode::INTERNAL_SERVER_ERROR, e)
}

/// `GET /incidents?status=&owner=&severity=&actor=`: `status` empty means
/// not resolved, `all` every one.
pub(crate) async fn list(c: Shared, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let s = match require(&c, &headers, "/incidents", READ) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = form_pairs(&q.unwrap_or_default());
    let get = |k: &str| q.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let (status, owner, min, actor) = (get("status"), get("owner"), get("severity"), get("actor"));
    let min = serde_json::from_value::<Severity>(serde_json::json!(min)).ok();
    let all = match read(&c, |l| {
        l.incidents(Timestamp(i64::MIN), Timestamp(i64::MAX))
    })
    .await
    {
        Ok(l) => l,
        Err(e) => return failed(&s, &e),
    };
    let wanted = IncidentStatus::parse(&status);
    let shown: Vec<&Incident> = all
        .iter()
        .filter(|i| match (status.as_str(), wanted) {
            ("all", _) => true,
            (_, Some(w)) => i.workflow.status == w,
            _ => i.workflow.status != IncidentStatus::Resolved,
        })
        .filter(|i| owner.is_empty() || i.workflow.owner.as_deref() == Some(owner.as_str()))
        .filter(|i| min.is_none_or(|m| i.severity >= m))
        .filter(|i| actor.is_empty() || i.actor.contains(&actor))
        .take(SHOWN)
        .collect();
    let now = Timestamp::now();
    let clocks: Vec<Vec<Clock>> = shown
        .iter()
        .map(|i| crate::incidents::clocks_of(&c.app, i, now))
        .collect();
    let statuses = ["", "all", "new", "acknowledged", "contained", "resolved"];
    let body = html! {
        form class="filters" method="get" action="/incidents" {
            label { "Status"
                select name="status" id="f-status" {
                    @for st in statuses {
                        option value=(st) selected[st == status] {
                            (if st.is_empty() { "not resolved" } else { st })
                        }
                    }
                }
            }
            label { "Severity (and above)"
                select name="severity" id="f-severity" {
                    option value="" { "any" }
                    @for sv in ["low", "medium", "high", "critical"] {
                        option value=(sv) selected[min.is_some_and(|m| m.as_str() == sv)] { (sv) }
                    }
                }
            }
            label { "Owner" input name="owner" id="f-owner" value=(owner); }
            label { "Actor" input name="actor" id="f-actor" value=(actor); }
            button type="submit" { "Filter" }
            " " a href="/incidents" { "clear" }
        }
        p class="muted" { (shown.len()) " incident(s) shown, the most recently active first." }
        table id="incidents" {
            tr {
                th { "Severity" } th { "Status" } th { "Owner" } th { "Actor" } th { "Rules" }
                th class="num" { "Customers" } th { "Age" } th { "Last active" }
                th { "Next deadline" } th { "Incident" }
            }
            @for (i, clocks) in shown.iter().zip(&clocks) {
                tr data-id=(i.id) {
                    td { (severity(i.severity)) }
                    td class="status" { (i.workflow.status.as_str()) }
                    td class="owner" { (i.workflow.owner.as_deref().unwrap_or("")) }
                    td { (i.actor) }
                    td { (i.rules.iter().cloned().collect::<Vec<_>>().join(", ")) }
                    td class="num" { (i.customers) }
                    td { (age(i.first, now)) }
                    td { (short(i.last)) }
                    td class="deadline" {
                        @if let Some(c) = next_deadline(clocks) {
                            span class=(if c.overdue() { "error" } else { "" }) title=(c.title) {
                                (c.regime.as_str()) ": " (left(c.left_ms))
                            }
                        }
                    }
                    td { a class="incident-link" href=(link(&i.id)) { (i.id) } }
                }
            }
        }
    };
    page("Incidents", &s, &body.into_string())
}

/// `GET /incidents/{id}`: `{id}` is the incident's id or any alert's.
pub(crate) async fn one(
    c: Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let s = match require(&c, &headers, &link(&id), READ) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let error = form_pairs(&q.unwrap_or_default()).remove("error");
    let found = read(&c, move |l| {
        let Some(inc) = l.find_incident(&id)? else {
            return Ok(None);
        };
        let history = l.audit_records(Some(&inc.id), 1_000)?;
        Ok(Some((inc, history)))
    })
    .await;
    let app = c.app.clone();
    let (inc, history) = match found {
        Ok(Some(x)) => x,
        Ok(None) => {
            return super::html::fail(
                &s,
                StatusCode::NOT_FOUND,
                "no such incident; the incidents page lists them",
            )
        }
        Err(e) => return failed(&s, &e),
    };
    let body = html! {
        @if let Some(e) = error { p class="error" id="form-error" { (e) } }
        table id="incident" {
            tr { th { "Actor" } td { (inc.actor) } }
            @if let Some(o) = &inc.organization { tr { th { "Organisation" } td { (o) } } }
            tr { th { "Severity" } td { (severity(inc.severity)) } }
            tr { th { "Active" } td { (short(inc.first)) " to " (short(inc.last)) } }
            tr { th { "Customers" } td { (inc.customers) " (the most any one of its alerts names)" } }
            tr { th { "Status" } td id="status" { (inc.workflow.status.as_str()) } }
            tr { th { "Owner" } td id="owner" { (inc.workflow.owner.as_deref().unwrap_or("unassigned")) } }
            @if let Some(cl) = inc.workflow.classification {
                tr { th { "Classification" } td id="classification" {
                    (cl.as_str()) ": " (inc.workflow.reason.as_deref().unwrap_or(""))
                } }
            }
            tr { th { "Alerts" } td {
                @for a in &inc.alerts { a class="alert-link" href={ "/alerts/" (encode_query(a)) } { (a) } " " }
            } }
        }
        h2 { "Personal-data breach" }
        (breach_panel(&s, &inc, &crate::incidents::clocks_of(&app, &inc, Timestamp::now())))
        @if WORK.met_by(s.role) { (work_form(&s, &inc)) } @else {
            p class="muted" id="work-withheld" {
                "Your role, " (s.role.as_str()) ", may read incidents; changing them takes the "
                (WORK.role.as_str()) " role."
            }
        }
        h2 { "History" }
        (history_table(&history))
    };
    page(&format!("Incident {}", inc.id), &s, &body.into_string())
}

fn work_form(s: &Session, inc: &Incident) -> Markup {
    let w = &inc.workflow;
    html! {
        div class="panel" {
            form class="filters" id="work" method="post" action=(link(&inc.id)) {
                input type="hidden" name="csrf" value=(s.csrf);
                label { "Status"
                    select name="status" id="w-status" {
                        @for st in IncidentStatus::ALL {
                            option value=(st.as_str()) selected[st == w.status] { (st.as_str()) }
                        }
                    }
                }
                label { "Owner" input name="owner" id="w-owner" value=(w.owner.as_deref().unwrap_or("")) size="12"; }
                label { "Classification"
                    select name="classification" id="w-classification" {
                        option value="" { "none" }
                        @for c in Classification::ALL {
                            option value=(c.as_str()) selected[Some(c) == w.classification] { (c.as_str()) }
                        }
                    }
                }
                label { "Reason" input name="reason" id="w-reason" size="24" value=(w.reason.as_deref().unwrap_or("")); }
                label { "Note" input name="note" id="w-note" size="30"; }
                label { input type="checkbox" name="except" id="w-except" value="true"; " Exception (false positive)" }
                label { "For" input name="except_for" id="w-except-for" size="6" placeholder="30d"; }
                button type="submit" id="w-save" { "Save" }
            }
            p class="muted" {
                "Resolving needs a classification, and a classification a reason. "
                "With false_positive, Exception also suppresses this actor's future alerts of "
                "the incident's rules."
            }
        }
    }
}

/// Whether it is a breach and, if so, each notification clock: time left,
/// or when it was met; the forms to mark it and record notifications.
fn breach_panel(s: &Session, inc: &Incident, clocks: &[Clock]) -> Markup {
    let may = WORK.met_by(s.role);
    let Some(b) = &inc.workflow.breach else {
        return html! {
            p class="muted" id="no-breach" {
                "Not marked a personal-data breach: no notification clock runs."
            }
            @if may {
                div class="panel" {
                    form class="filters" id="mark-breach" method="post" action=(link(&inc.id)) {
                        input type="hidden" name="csrf" value=(s.csrf);
                        input type="hidden" name="breach" value="true";
                        label { "Aware since (empty: now)" input name="aware_at" id="b-aware-at" size="22" placeholder="2026-11-02T08:00:00Z"; }
                        label { "Why then" input name="aware_reason" id="b-aware-reason" size="30"; }
                        button type="submit" id="b-mark" { "Mark as personal-data breach" }
                    }
                }
            }
        };
    };
    html! {
        p id="aware" {
            "The company became aware at " strong { (short(b.aware_at)) }
            @if let Some(r) = &b.aware_reason { " (" (r) ")" }
            "."
        }
        table id="clocks" {
            tr { th { "Notification" } th { "Due" } th { "State" } }
            @for c in clocks {
                tr data-step=(c.step) {
                    td { (c.title) }
                    td { (short(c.due)) }
                    td class=(if c.overdue() && c.done.is_none() { "left error" } else { "left" }) {
                        @match c.done {
                            Some(t) => { "made " (short(t)) @if c.overdue() { ", late" } }
                            None => { (left(c.left_ms)) }
                        }
                    }
                }
            }
        }
        @if let Some(d) = &b.delay_reason { p id="delay-reason" { "Reasons for delay: " (d) } }
        @if may {
            div class="panel" {
                form class="filters" id="notified" method="post" action=(link(&inc.id)) {
                    input type="hidden" name="csrf" value=(s.csrf);
                    label { "Notification made"
                        select name="notified" id="b-notified" {
                            option value="" { "none" }
                            @for c in clocks.iter().filter(|c| c.done.is_none()) {
                                option value=(c.step) { (c.title) }
                            }
                        }
                    }
                    label { "At (empty: now)" input name="notified_at" id="b-notified-at" size="22"; }
                    label { "Reasons for delay" input name="delay_reason" id="b-delay" size="30" value=(b.delay_reason.as_deref().unwrap_or("")); }
                    button type="submit" id="b-record" { "Record" }
                }
            }
        }
    }
}

fn history_table(history: &[AuditRecord]) -> Markup {
    html! {
        table id="history" {
            tr { th { "When" } th { "Who" } th { "Via" } th { "From" } th { "Change" } th { "Note" } }
            @for r in history {
                tr {
                    td { (short(r.at)) }
                    td class="who" { (r.who) }
                    td { (r.via) }
                    td { (r.source.as_deref().unwrap_or("")) }
                    td class="change" {
                        @if let Some(changes) = r.details.get("changes").and_then(|c| c.as_object()) {
                            @for (field, v) in changes {
                                (field) " " (plain(&v[0])) " → " (plain(&v[1])) br;
                            }
                        }
                        @if let Some(made) = r.details.get("exceptions").and_then(|e| e.as_array()) {
                            "exceptions " @for e in made { (plain(e)) " " }
                        }
                    }
                    td class="note" { (r.details.get("note").map(plain).unwrap_or_default()) }
                }
            }
        }
        @if history.is_empty() { p class="muted" { "Nobody has changed it yet." } }
    }
}

/// `POST /incidents/{id}`: the work form.
pub(crate) async fn change(
    c: Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    ext: Extensions,
    body: Bytes,
) -> Response {
    let form = form_pairs(&String::from_utf8_lossy(&body));
    let s = match require_form(&c, &headers, &form, WORK) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let field = |k: &str| {
        form.get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let back = |msg: Option<&str>| match msg {
        None => see_other(&link(&id)),
        Some(m) => see_other(&format!("{}?error={}", link(&id), encode_query(m))),
    };
    let status = match field("status").map(|v| IncidentStatus::parse(&v).ok_or(v)) {
        None => None,
        Some(Ok(st)) => Some(st),
        Some(Err(v)) => return back(Some(&format!("`{v}` is not a status"))),
    };
    let classification = match field("classification").map(|v| Classification::parse(&v).ok_or(v)) {
        None => None,
        Some(Ok(cl)) => Some(cl),
        Some(Err(v)) => return back(Some(&format!("`{v}` is not a classification"))),
    };
    let change = IncidentChange {
        status,
        // The field is always sent: the same owner is no change.
        owner: form.get("owner").map(|o| o.trim().to_owned()),
        classification,
        reason: classification.and(field("reason")),
        note: field("note"),
        exception: field("except").map(|_| ExceptionAsk {
            for_: field("except_for"),
            until: None,
        }),
        breach: field("breach").map(|_| true),
        aware_at: field("aware_at"),
        aware_reason: field("aware_reason"),
        delay_reason: form.get("delay_reason").map(|v| v.trim().to_owned()),
        notified: field("notified"),
        notified_at: field("notified_at"),
    };
    let who = super::who(&s.user, &ext);
    let target = id.clone();
    let r = write(&c, move |l| {
        let Some(inc) = l.find_incident(&target)? else {
            return Ok(Err("no such incident".to_owned()));
        };
        let exceptions = match vakt_pipeline::incident_exceptions(l, &inc, &change, &who.name) {
            Ok(e) => e,
            Err(m) => return Ok(Err(format!("exception: {m}"))),
        };
        match l.update_incident(&inc.id, &inc.workflow, &change, &who, &exceptions) {
            Ok(_) => Ok(Ok(inc.id)),
            Err(LedgerError::Invalid(m)) => Ok(Err(m)),
            Err(e) => Err(e),
        }
    })
    .await;
    match r {
        Ok(Ok(canonical)) => see_other(&link(&canonical)),
        Ok(Err(msg)) => back(Some(&msg)),
        Err(e) => failed(&s, &e),
    }
}
