//! The console's notice to the customers (GDPR Art. 34) in each language,
//! and the list of recipients as CSV; both name the customers, so both
//! take the role that drafts reports, and both are on record.

use super::html::page;
use super::pages::write;
use super::roles::DRAFT;
use super::{form_pairs, require, who, Shared};
use crate::http::encode_query;
use axum::extract::{Path, RawQuery};
use axum::http::{header, Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, PreEscaped};
use vakt_ledger::audit::Audit;
use vakt_ledger::notice::{customer_notice, recipients_csv, Locale};

/// Links to the notice in every language and to the recipients.
pub(crate) fn links(alert: &str) -> String {
    let id = encode_query(alert);
    html! {
        p id="notice-links" {
            "Notice to the customers (Art. 34): "
            @for l in Locale::ALL {
                a href={ "/alerts/" (id) "/notice?locale=" (l.as_str()) } hreflang=(l.as_str()) { (l.as_str()) } " "
            }
            "· " a id="recipients" href={ "/alerts/" (id) "/recipients.csv" } { "recipients (CSV)" }
        }
    }
    .into_string()
}

pub(crate) async fn notice(
    c: Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    ext: Extensions,
) -> Response {
    let s = match require(&c, &headers, &format!("/alerts/{id}/notice"), DRAFT) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let locale = form_pairs(&q.unwrap_or_default())
        .get("locale")
        .and_then(|l| Locale::parse(l))
        .unwrap_or(Locale::En);
    let (who, id2) = (who(&s.user, &ext), id.clone());
    let md = write(&c, move |l| {
        let r = vakt_ledger::report::draft(l, &id2)?;
        l.audited(&who, |_| {
            let audit = Audit::new("report.notice", &id2)
                .details(serde_json::json!({ "locale": locale.as_str() }));
            Ok(((), Some(audit)))
        })?;
        Ok(customer_notice(&r, locale))
    })
    .await;
    let md = match md {
        Ok(md) => md,
        Err(e) => return super::html::fail(&s, StatusCode::NOT_FOUND, &e),
    };
    let inner = vakt_ledger::report::to_html_body(&md);
    let body = html! {
        p class="muted" {
            "A draft to complete (measures, contact point) and review before sending; "
            code { "vakt report --alert " (id) " --notice " (locale.as_str()) } " writes the same."
        }
        (PreEscaped(links(&id)))
        div class="report" id="notice" lang=(locale.as_str()) { (PreEscaped(inner)) }
    };
    page("Notice to the customers", &s, &body.into_string())
}

pub(crate) async fn recipients(
    c: Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    ext: Extensions,
) -> Response {
    let s = match require(&c, &headers, &format!("/alerts/{id}/recipients.csv"), DRAFT) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (who, id2) = (who(&s.user, &ext), id.clone());
    let csv = write(&c, move |l| {
        let r = vakt_ledger::report::draft(l, &id2)?;
        let Some(scope) = r.scope else {
            return Ok(None);
        };
        l.audited(&who, |_| {
            let audit = Audit::new("report.recipients", &id2)
                .details(serde_json::json!({ "customers": scope.customers.len() }));
            Ok(((), Some(audit)))
        })?;
        Ok(Some(recipients_csv(&scope)))
    })
    .await;
    match csv {
        Ok(Some(csv)) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CACHE_CONTROL, "no-store".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"recipients-{}.csv\"", encode_query(&id)),
                ),
            ],
            csv,
        )
            .into_response(),
        Ok(None) => super::html::fail(
            &s,
            StatusCode::NOT_FOUND,
            "this alert is about a host's traffic, not reads of customer records: there are no customers to list",
        ),
        Err(e) => super::html::fail(&s, StatusCode::NOT_FOUND, &e),
    }
}
