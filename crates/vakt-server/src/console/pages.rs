//! The console's pages, rendered on the server.
//!
//! Written with `maud`, which escapes every value it is given unless
//! told otherwise (`PreEscaped`, kept for the report's HTML and markup
//! maud built itself).

use super::html::{csrf_input, fail, page, select, sev, short, url_encode};
use super::roles::{BLOCK, CUSTOMERS, DECIDE, DRAFT, LIFT, READ};
use super::{form_pairs, lock, require, require_form, see_other, timeline, who, Shared};
use crate::decisions::NewDecision;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use maud::{html, Markup, PreEscaped};
use vakt_event::stats::{usual_range, usual_range_since, USUAL_RANGE_DAYS};
use vakt_event::time::HOUR;
use vakt_event::{Alert, Severity, Timestamp};
use vakt_ledger::alerts::AlertFilter;
use vakt_ledger::audit::Audit;

const DAY: i64 = 86_400_000;

/// Runs ledger reads off the async threads.
pub(super) async fn read<T: Send + 'static>(
    c: &Shared,
    f: impl FnOnce(&vakt_ledger::Ledger) -> vakt_ledger::Result<T> + Send + 'static,
) -> Result<T, String> {
    let app = c.app.clone();
    tokio::task::spawn_blocking(move || f(&lock(&app.reader)).map_err(|e| e.to_string()))
        .await
        .unwrap_or_else(|e| Err(format!("request task failed: {e}")))
}

pub(super) async fn write<T: Send + 'static>(
    c: &Shared,
    f: impl FnOnce(&mut vakt_ledger::Ledger) -> vakt_ledger::Result<T> + Send + 'static,
) -> Result<T, String> {
    let app = c.app.clone();
    tokio::task::spawn_blocking(move || f(&mut lock(&app.writer)).map_err(|e| e.to_string()))
        .await
        .unwrap_or_else(|e| Err(format!("request task failed: {e}")))
}

async fn all_alerts(c: &Shared, f: AlertFilter) -> Result<Vec<Alert>, String> {
    let lines = read(c, move |l| l.alerts(&f)).await?;
    Ok(lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Alert>(l).ok())
        .collect())
}

/// A recorded alert, and the exception that suppressed it, if one did.
async fn find_alert(c: &Shared, id: &str) -> Result<Option<(Alert, Option<String>)>, String> {
    let id = id.to_owned();
    let row = read(c, move |l| l.alert_row(&id)).await?;
    Ok(row.and_then(|r| {
        let v: serde_json::Value = serde_json::from_str(&r.line).ok()?;
        let by = v[vakt_ledger::ledger::SUPPRESSED_BY]
            .as_str()
            .map(str::to_owned);
        Some((serde_json::from_value(v).ok()?, by))
    }))
}

pub(crate) async fn alerts(c: Shared, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let s = match require(&c, &headers, "/", READ) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = form_pairs(&q.unwrap_or_default());
    let get = |k: &str| q.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let (rule, severity, actor, org) = (get("rule"), get("severity"), get("actor"), get("org"));
    let suppressed = matches!(get("suppressed").as_str(), "true" | "1" | "on");
    let min = serde_json::from_value::<Severity>(serde_json::json!(severity)).ok();
    let f = AlertFilter {
        rule: None,
        min_severity: min,
        limit: 10_000,
        suppressed: Some(suppressed),
    };
    let list = match all_alerts(&c, f).await {
        Ok(l) => l,
        Err(e) => return fail(&s, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let mut rules: Vec<&str> = list.iter().map(|a| a.rule.as_str()).collect();
    rules.sort_unstable();
    rules.dedup();
    let shown: Vec<&Alert> = list
        .iter()
        .filter(|a| rule.is_empty() || a.rule == rule)
        .filter(|a| actor.is_empty() || a.actor.label().contains(&actor))
        .filter(|a| org.is_empty() || a.organization.as_deref() == Some(org.as_str()))
        .take(500)
        .collect();
    let body = html! {
        form class="filters" method="get" action="/" {
            label { "Rule" (select("rule", &rules, &rule)) }
            label { "Severity (and above)" (select("severity", &["low", "medium", "high", "critical"], &severity)) }
            label { "Actor" input name="actor" id="f-actor" value=(actor); }
            label { "Organisation" input name="org" id="f-org" value=(org); }
            label { input type="checkbox" name="suppressed" id="f-suppressed" value="true" checked[suppressed]; " Suppressed only" }
            button type="submit" { "Filter" }
            " " a href="/" { "clear" }
        }
        p class="muted" { (shown.len()) " incident(s) shown, the most recently active first." }
        table id="alerts" {
            tr {
                th { "Severity" } th { "Rule" } th { "Actor" } th { "Organisation" } th { "First seen" }
                th { "Last" } th class="num" { "Customers" } th { "Message" }
            }
            @for a in &shown {
                tr {
                    td { (sev(a.severity)) }
                    td { (a.rule) }
                    td { (a.actor.label()) }
                    td { (a.organization.as_deref().unwrap_or("")) }
                    td { (short(a.first_seen)) }
                    td { (short(a.timestamp)) }
                    td class="num" { (a.customers) }
                    td { a class="alert-link" href={ "/alerts/" (url_encode(&a.id)) } { (a.message) } }
                }
            }
        }
    };
    page("Alerts", &s, &body.into_string())
}

/// Evidence as rows: `observed_x`, `baseline_x` and `threshold_x` side by
/// side, the other fields below.
fn evidence_table(e: &serde_json::Map<String, serde_json::Value>) -> Markup {
    // A figure the detector could not compute (no baseline yet) is said
    // so, not printed as JSON's `null`; lists read as lists.
    fn show(v: &serde_json::Value) -> Markup {
        match v {
            serde_json::Value::String(s) => html! { (s) },
            serde_json::Value::Null => html! { span class="muted" { "none yet" } },
            serde_json::Value::Array(items) => html! {
                @for (i, item) in items.iter().enumerate() {
                    @if i > 0 { ", " }
                    (show(item))
                }
            },
            v => html! { (v.to_string()) },
        }
    }
    let mut figures: std::collections::BTreeMap<&str, [Option<&serde_json::Value>; 3]> =
        Default::default();
    let mut other = Vec::new();
    for (k, v) in e {
        let (slot, name) = if let Some(n) = k.strip_prefix("observed_") {
            (0, n)
        } else if let Some(n) = k.strip_prefix("baseline_") {
            (1, n)
        } else if let Some(n) = k.strip_prefix("threshold_") {
            (2, n)
        } else {
            other.push((k, v));
            continue;
        };
        figures.entry(name).or_default()[slot] = Some(v);
    }
    html! {
        table id="evidence" {
            tr { th { "Figure" } th class="num" { "Observed" } th class="num" { "Baseline" } th class="num" { "Threshold" } }
            @for (name, cells) in &figures {
                tr {
                    td { (name.replace('_', " ")) }
                    @for v in cells {
                        td class="num" { @if let Some(v) = v { (show(v)) } }
                    }
                }
            }
            @for (k, v) in &other {
                tr { td { (k.replace('_', " ")) } td colspan="3" { (show(v)) } }
            }
        }
    }
}

pub(crate) async fn alert(
    c: Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let s = match require(&c, &headers, &format!("/alerts/{id}"), READ) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = form_pairs(&q.unwrap_or_default());
    let (a, suppressed_by) = match find_alert(&c, &id).await {
        Ok(Some(a)) => a,
        Ok(None) => return fail(&s, StatusCode::NOT_FOUND, &format!("no alert {id}")),
        Err(e) => return fail(&s, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let activity = match &a.actor.user {
        Some(user) => {
            let (user, first, last) = (user.clone(), a.first_seen, a.timestamp);
            // Read from where the usual range starts; chart the last three days of it.
            let (since, until) = (usual_range_since(first), last.saturating_add(2 * DAY));
            match read(&c, move |l| l.hourly(&user, since, until)).await {
                Ok(hours) => {
                    let usual = usual_range(&hours, first);
                    let band = match &usual {
                        Some(u) => format!("the band is its usual active hour, {}", timeline::describe(u)),
                        None => format!("no activity in the {USUAL_RANGE_DAYS} days before the alert to draw a usual range from"),
                    };
                    let from = first.saturating_add(-3 * DAY).floor(HOUR);
                    let shown = &hours[hours.partition_point(|(t, _)| *t < from)..];
                    html! {
                        p class="muted" {
                            "Accesses per hour by " (a.actor.label())
                            ", three days before the alert to two days after; " (band)
                            "; the alert's own hours are orange."
                        }
                        div class="panel" {
                            (timeline::svg(shown, usual.as_ref(), first, last))
                            div id="hover" class="muted" {}
                        }
                    }
                }
                Err(e) => html! { p class="error" { (e) } },
            }
        }
        None => html! {
            p class="muted" { "This alert is about a host, not an account: the ledger holds no accesses to chart." }
        },
    };
    let body = html! {
        div class="panel" {
            p {
                (sev(a.severity)) " " strong { (a.rule) } " · " (a.actor.label())
                " · " (a.organization.as_deref().unwrap_or(""))
            }
            p id="message" { (a.message) }
            p class="muted" {
                "first seen " (short(a.first_seen)) " · last " (short(a.timestamp))
                " · " (a.customers) " customer(s) · " (a.updates) " update(s)"
            }
            p {
                a class="button" id="scope-link" href={ "/alerts/" (url_encode(&a.id)) "/scope" } {
                    (if DRAFT.met_by(s.role) { "Scope and breach report" } else { "Scope" })
                }
            }
        }
        (super::exceptions::alert_panel(
            &s,
            &a.id,
            suppressed_by.as_deref(),
            q.get("error").map(String::as_str),
        ))
        h2 { "Evidence" }
        (evidence_table(&a.evidence))
        h2 { "Activity" }
        (activity)
    };
    page(&format!("Alert {}", a.id), &s, &body.into_string())
}

pub(crate) async fn scope(c: Shared, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let s = match require(&c, &headers, &format!("/alerts/{id}/scope"), READ) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id2 = id.clone();
    let sc = read(&c, move |l| {
        let (user, first, last) = l.alert_window(&id2)?;
        l.scope_account(&user, first, last, None)
    })
    .await;
    let sc = match sc {
        Ok(sc) => sc,
        Err(e) => return fail(&s, StatusCode::NOT_FOUND, &e),
    };
    let body = html! {
        div class="panel" {
            p {
                strong { (sc.account) } " from " (short(sc.since)) " to " (short(sc.until)) ": "
                (sc.customers.len()) " distinct customer(s) in " (sc.accesses) " access(es)"
                @if sc.unlisted_records > 0 { ", and " (sc.unlisted_records) " records without customer ids" }
                "."
            }
            p {
                @if DRAFT.met_by(s.role) {
                    a class="button" id="draft" href={ "/alerts/" (url_encode(&id)) "/report" } { "Draft the breach report" }
                    " "
                }
                a href={ "/alerts/" (url_encode(&id)) } { "back to the alert" }
            }
        }
        @if !sc.by_category.is_empty() {
            h2 { "Categories" }
            table {
                tr { th { "Category" } th class="num" { "Customers" } }
                @for (k, n) in &sc.by_category { tr { td { (k) } td class="num" { (n) } } }
            }
        }
        @if CUSTOMERS.met_by(s.role) {
            h2 { "Customers" }
            table id="scope" {
                tr { th { "Customer" } th { "Categories" } th { "First exposure" } th { "Last exposure" } th class="num" { "Reads" } }
                @for e in sc.customers.iter().take(2000) {
                    tr {
                        td { (e.customer) }
                        td { (e.categories.iter().cloned().collect::<Vec<_>>().join(", ")) }
                        td { (e.first.to_rfc3339()) }
                        td { (e.last.to_rfc3339()) }
                        td class="num" { (e.reads) }
                    }
                }
            }
            @if sc.customers.len() > 2000 {
                p class="muted" {
                    "The first 2,000 shown; " code { "vakt scope --alert ID --out FILE" } " writes them all."
                }
            }
        } @else {
            p class="muted" id="customers-withheld" {
                "Who the customers are is shown to analysts and admins, who draft the notice; your role is "
                (s.role.as_str()) "."
            }
        }
    };
    page(&format!("Scope of {id}"), &s, &body.into_string())
}

pub(crate) async fn report(
    c: Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    ext: Extensions,
) -> Response {
    let s = match require(&c, &headers, &format!("/alerts/{id}/report"), DRAFT) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id2 = id.clone();
    let directory = c
        .app
        .directory
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let md = match read(&c, move |l| {
        vakt_ledger::report::draft(l, &id2).map(|mut r| {
            r.regimes = directory.regimes_for(r.alert.organization.as_deref());
            r.markdown(vakt_detect::detectors::remediation(&r.alert.rule))
        })
    })
    .await
    {
        Ok(md) => md,
        Err(e) => return fail(&s, StatusCode::NOT_FOUND, &e),
    };
    // A draft names the customers: who took one is on record.
    let (who, id2) = (who(&s.user, &ext), id.clone());
    let r = write(&c, move |l| {
        l.audited(&who, |_| Ok(((), Some(Audit::new("report.draft", &id2)))))
    });
    if let Err(e) = r.await {
        return fail(&s, StatusCode::INTERNAL_SERVER_ERROR, &e);
    }
    let inner = vakt_ledger::report::to_html_body(&md);
    // The report's HTML is `to_html`'s, which escapes what it is given;
    // the links are maud's.
    let body = html! {
        p class="muted" {
            "A draft to review before sending; " code { "vakt report --alert " (id) " --format html" }
            " writes the same."
        }
        (PreEscaped(super::notice::links(&id)))
        div class="report" id="report" { (PreEscaped(inner)) }
    };
    page("Breach notification draft", &s, &body.into_string())
}

pub(crate) async fn decisions(c: Shared, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let s = match require(&c, &headers, "/decisions", READ) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = form_pairs(&q.unwrap_or_default());
    let at = Timestamp::now();
    let list = match read(&c, move |l| l.decisions(Some(at))).await {
        Ok(l) => l,
        Err(e) => return fail(&s, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let csrf = csrf_input(&s);
    let (decide, lift) = (DECIDE.met_by(s.role), LIFT.met_by(s.role));
    let may_block = BLOCK.met_by(s.role);
    let body = html! {
        @if let Some(e) = q.get("error") { p class="error" id="form-error" { (e) } }
        @if decide {
            div class="panel" {
                form class="filters" id="add-decision" method="post" action="/decisions" {
                    (csrf)
                    label { "Scope"
                        select name="scope" id="d-scope" {
                            option value="account" { "account" }
                            option value="ip" { "ip" }
                            option value="organization" { "organization" }
                        }
                    }
                    label { "Value" input name="value" id="d-value" required; }
                    label { "Action"
                        select name="action" id="d-action" {
                            option value="throttle" { "throttle" }
                            option value="step_up" { "step_up" }
                            @if may_block { option value="block" { "block" } }
                        }
                    }
                    label { "For" input name="ttl" id="d-ttl" value="1h" size="6" required; }
                    label { "Reason" input name="reason" id="d-reason" size="30"; }
                    button type="submit" id="d-add" { "Add decision" }
                }
            }
        } @else {
            p class="muted" id="decide-withheld" {
                "Your role, " (s.role.as_str()) ", may read decisions; adding and extending them takes the "
                (DECIDE.role.as_str()) " role."
            }
        }
        p class="muted" {
            (list.len()) " decision(s) in force; enforcement points read them from "
            code { "GET /v1/decisions" } "."
        }
        table id="decisions" {
            tr { th { "Scope" } th { "Value" } th { "Action" } th { "Reason" } th { "Since" } th { "Until" } th {} }
            @for d in &list {
                tr data-id=(d.id) {
                    td { (d.scope.as_str()) }
                    td class="value" { (d.value) }
                    td { (d.action.as_str()) }
                    td { (d.reason) }
                    td { (short(d.created)) }
                    td { (short(d.expires)) }
                    td {
                        @if decide && (may_block || d.action != vakt_ledger::decisions::Action::Block) {
                            form class="inline" method="post" action={ "/decisions/" (url_encode(&d.id)) "/extend" } {
                                (csrf)
                                input name="ttl" value="1h" size="4" aria-label="add time";
                                button type="submit" class="extend" { "Extend" }
                            }
                            " "
                        }
                        @if lift {
                            form class="inline" method="post" action={ "/decisions/" (url_encode(&d.id)) "/lift" } {
                                (csrf)
                                button type="submit" class="danger lift" { "Lift" }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Decisions", &s, &body.into_string())
}

fn back_with_error(msg: &str) -> Response {
    see_other(&format!("/decisions?error={}", url_encode(msg)))
}

pub(crate) async fn add_decision(
    c: Shared,
    headers: HeaderMap,
    ext: Extensions,
    body: Bytes,
) -> Response {
    let form = form_pairs(&String::from_utf8_lossy(&body));
    let s = match require_form(&c, &headers, &form, DECIDE) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let get = |k: &str| form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let (scope, value, action, ttl, reason) = (
        get("scope"),
        get("value"),
        get("action"),
        get("ttl"),
        get("reason"),
    );
    let new = NewDecision {
        scope,
        value,
        action,
        ttl,
        reason: (!reason.is_empty()).then(|| format!("{reason} ({})", s.user)),
    };
    let d = match new.decide(format!("added in the console by {}", s.user)) {
        Ok(d) => d,
        Err(e) => return back_with_error(&e.to_string()),
    };
    if d.action == vakt_ledger::decisions::Action::Block && !BLOCK.met_by(s.role) {
        return super::html::refused(&s, BLOCK);
    }
    let who = who(&s.user, &ext);
    let r = write(&c, move |l| {
        l.audited(&who, |l| {
            l.put_decision(&d)?;
            Ok(((), Some(Audit::decision("decision.add", &d))))
        })
    });
    match r.await {
        Ok(()) => see_other("/decisions"),
        Err(e) => fail(&s, StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

pub(crate) async fn extend_decision(
    c: Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    ext: Extensions,
    body: Bytes,
) -> Response {
    let form = form_pairs(&String::from_utf8_lossy(&body));
    let s = match require_form(&c, &headers, &form, DECIDE) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let ttl = form.get("ttl").cloned().unwrap_or_default();
    let ms = match vakt_event::decision::ttl_ms(&ttl) {
        Ok(ms) => ms,
        Err(e) => return back_with_error(&e.to_string()),
    };
    let who = who(&s.user, &ext);
    let may_block = BLOCK.met_by(s.role);
    let r = write(&c, move |l| {
        l.audited(&who, |l| {
            let Some(mut d) = l.decisions(None)?.into_iter().find(|d| d.id == id) else {
                return Ok((Some(false), None));
            };
            if d.action == vakt_ledger::decisions::Action::Block && !may_block {
                return Ok((None, None));
            }
            d.expires = d.expires.max(Timestamp::now()).saturating_add(ms);
            l.put_decision(&d)?;
            Ok((Some(true), Some(Audit::decision("decision.extend", &d))))
        })
    })
    .await;
    match r {
        Ok(Some(true)) => see_other("/decisions"),
        Ok(Some(false)) => back_with_error("that decision is no longer there"),
        Ok(None) => super::html::refused(&s, BLOCK),
        Err(e) => fail(&s, StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

pub(crate) async fn lift_decision(
    c: Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    ext: Extensions,
    body: Bytes,
) -> Response {
    let form = form_pairs(&String::from_utf8_lossy(&body));
    let s = match require_form(&c, &headers, &form, LIFT) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let who = who(&s.user, &ext);
    let r = write(&c, move |l| {
        l.audited(&who, |l| {
            let found = l.delete_decision(&id)?;
            Ok((found, found.then(|| Audit::new("decision.lift", &id))))
        })
    });
    match r.await {
        Ok(_) => see_other("/decisions"),
        Err(e) => fail(&s, StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

pub(crate) async fn canaries(c: Shared, headers: HeaderMap) -> Response {
    let s = match require(&c, &headers, "/canaries", READ) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let ids: Vec<(String, String)> = c
        .app
        .directory()
        .canaries
        .iter()
        .map(|k| (k.customer_id.clone(), k.label.clone().unwrap_or_default()))
        .collect();
    let ids2 = ids.clone();
    let reads = read(&c, move |l| {
        ids2.iter()
            .map(|(id, _)| l.scope_customer(id))
            .collect::<vakt_ledger::Result<Vec<_>>>()
    })
    .await;
    let reads = match reads {
        Ok(r) => r,
        Err(e) => return fail(&s, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    // Who read a canary, each account and address once.
    let readers = |acc: &[vakt_ledger::scope::CustomerAccess]| {
        let mut by: Vec<String> = acc
            .iter()
            .map(|a| format!("{} ({})", a.account, a.source_ip))
            .collect();
        by.sort();
        by.dedup();
        by.join(", ")
    };
    let body = html! {
        p class="muted" {
            (ids.len()) " canary record(s) in the directory. Nobody has a reason to read one: any read is an alert."
        }
        table id="canaries" {
            tr { th { "Canary" } th { "Label" } th { "Read?" } th { "First read" } th { "Last read" } th { "By" } }
            @for ((id, label), acc) in ids.iter().zip(&reads) {
                tr {
                    td { (id) }
                    td { (label) }
                    @match (acc.first(), acc.last()) {
                        (Some(f), Some(l)) => {
                            td { span class="sev sev-critical" { "read " (acc.len()) " time(s)" } }
                            td { (short(f.at)) }
                            td { (short(l.at)) }
                        }
                        _ => {
                            td { span class="muted" { "untouched" } }
                            td {}
                            td {}
                        }
                    }
                    td { (readers(acc)) }
                }
            }
        }
    };
    page("Canaries", &s, &body.into_string())
}

pub(crate) async fn exposure(c: Shared, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let s = match require(&c, &headers, "/exposure", READ) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = form_pairs(&q.unwrap_or_default());
    let m = q
        .get("m")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|m| (0.5..=3.0).contains(m))
        .unwrap_or(1.5);
    let list = match read(&c, move |l| l.exposure(m)).await {
        Ok(l) => l,
        Err(e) => return fail(&s, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let body = html! {
        form class="filters" method="get" action="/exposure" {
            label { "m (value = value per record x records^m)" input name="m" value=(m) size="4"; }
            button type="submit" { "Rank" }
        }
        table id="exposure" {
            tr {
                th { "Name" } th { "Kind" } th class="num" { "Customers" } th { "Categories" }
                th class="num" { "Value" } th class="num" { "x median" } th { "First" } th { "Last" }
                th { "Advice" }
            }
            @for e in list.iter().take(200) {
                tr {
                    td { (e.name) }
                    td { (e.kind) }
                    td class="num" { (e.customers) }
                    td { (e.categories.iter().cloned().collect::<Vec<_>>().join(", ")) }
                    td class="num" { (format!("{:.0}", e.value)) }
                    td class="num" { (format!("{:.1}", e.vs_median)) }
                    td { (short(e.first)) }
                    td { (short(e.last)) }
                    td { (e.advice) }
                }
            }
        }
    };
    page("Exposure", &s, &body.into_string())
}

#[cfg(test)]
mod tests {
    use super::evidence_table;

    #[test]
    fn evidence_shows_no_json_null_and_escapes_values() {
        let e = serde_json::json!({
            "observed_records": 81393,
            "baseline_records": null,
            "categories": ["name", "national_id"],
            "event": "<script>",
        });
        let html = evidence_table(e.as_object().unwrap()).into_string();
        assert!(!html.contains("null"), "{html}");
        assert!(
            html.contains("none yet") && html.contains("name, national_id"),
            "{html}"
        );
        assert!(
            html.contains("&lt;script&gt;") && !html.contains("<script>"),
            "{html}"
        );
    }
}
