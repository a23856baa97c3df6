//! The console's audit page: who did what, when, through what, from
//! where and why, newest last, filtered by action, person and subject in
//! the URL.

use super::html::{page, short};
use super::pages::read;
use super::roles::AUDIT;
use super::{form_pairs, require, Shared};
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use vakt_ledger::audit::AuditQuery;

/// Most records one page shows.
const SHOWN: usize = 1_000;

pub(crate) async fn list(c: Shared, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let s = match require(&c, &headers, "/audit", AUDIT) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = form_pairs(&q.unwrap_or_default());
    let get = |k: &str| q.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let (action, who, subject) = (get("action"), get("who"), get("subject"));
    let some = |v: &str| (!v.is_empty()).then(|| v.to_owned());
    let query = AuditQuery {
        subject: some(&subject),
        action: some(&action),
        who: some(&who),
        since: None,
        limit: SHOWN,
    };
    let records = match read(&c, move |l| l.audit_query(&query)).await {
        Ok(r) => r,
        Err(e) => return super::html::fail(&s, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let body = html! {
        form class="filters" method="get" action="/audit" {
            label { "Action" input name="action" id="a-action" value=(action) placeholder="decision"; }
            label { "Who" input name="who" id="a-who" value=(who); }
            label { "Subject" input name="subject" id="a-subject" value=(subject); }
            button type="submit" { "Filter" }
            " " a href="/audit" { "clear" }
        }
        p class="muted" {
            (records.len()) " record(s), oldest first; each is chained and signed with the ledger, so "
            code { "vakt ledger verify" } " finds one changed or removed."
        }
        table id="audit" {
            tr { th { "When" } th { "Who" } th { "Via" } th { "From" } th { "Action" } th { "Subject" } th { "Why" } th { "Details" } }
            @for r in &records {
                tr data-id=(r.id) {
                    td { (short(r.at)) }
                    td { (r.who) }
                    td { (r.via) }
                    td { (r.source.as_deref().unwrap_or("")) }
                    td class="action" { (r.action) }
                    td { (r.subject.as_deref().unwrap_or("")) }
                    td { (r.reason.as_deref().unwrap_or("")) }
                    td class="details" { (r.details.to_string()) }
                }
            }
        }
    };
    page("Audit trail", &s, &body.into_string())
}
