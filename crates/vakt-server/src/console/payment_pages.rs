//! The payment pages (`[[page]]`): per page, when it was last checked, the
//! scripts it loads with their hash and the directory's justification
//! (PCI DSS 6.4.3), and where it sends data. A script nobody justified is
//! marked; its alerts are on the alerts and incidents pages.

use super::html::{page, short};
use super::pages::read;
use super::roles::READ;
use super::{require, Shared};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;
use vakt_event::page::{origin_of, Inventory};

pub(crate) async fn list(c: Shared, headers: HeaderMap) -> Response {
    let s = match require(&c, &headers, "/pages", READ) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let directory = c.app.directory();
    let d = directory.clone();
    let inventories = read(&c, move |l| {
        d.pages
            .iter()
            .map(|p| l.page_inventory(p.url.get_ref()))
            .collect::<vakt_ledger::Result<Vec<Inventory>>>()
    })
    .await;
    let inventories = match inventories {
        Ok(i) => i,
        Err(e) => return super::html::fail(&s, axum::http::StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let body = html! {
        @if directory.pages.is_empty() {
            p class="muted" { "No [[page]] in the directory: add the payment pages to watch (docs/EVENTS.md, section 4)." }
        }
        @for (p, inv) in directory.pages.iter().zip(&inventories) {
            section class="payment-page" {
                h2 { (p.url.get_ref()) }
                p class="muted" {
                    "Checked every " (p.every_ms / 60_000) " min. "
                    @match &inv.last {
                        Some(last) => { "Last checked " (short(last.checked_at)) "." }
                        None => { "Not checked yet: its first check records the inventory." }
                    }
                }
                @if let Some(csp) = inv.last.as_ref().and_then(|l| l.csp.as_ref()) {
                    p { "Content-Security-Policy: " code { (csp) } }
                }
                @let rows = vakt_pages::inventory::rows(&inv.scripts, std::slice::from_ref(p));
                table class="scripts" {
                    tr { th { "Script" } th { "SHA-384" } th { "Loaded by" } th { "Justification" } th { "May change" } th { "First seen" } th { "Last seen" } }
                    @for r in &rows {
                        tr {
                            td { @if r.script.inline { "(inline)" } @else { (r.script.url) } }
                            td { code { (r.script.sha384.get(..20).unwrap_or(&r.script.sha384)) "…" } }
                            td { (r.script.loaded_by) }
                            td {
                                @match r.justification {
                                    Some(j) => { (j) }
                                    None => { span class="sev sev-high" { "not justified" } }
                                }
                            }
                            td { @if r.may_change { "yes" } @else { "no" } }
                            td { (short(r.script.first_seen)) }
                            td { (short(r.script.last_seen)) }
                        }
                    }
                }
                @if !inv.destinations.is_empty() {
                    table class="destinations" {
                        tr { th { "Sends to" } th { "Kinds" } th { "First sent by" } th { "Listed" } th { "First seen" } th { "Last seen" } }
                        @for d in &inv.destinations {
                            tr {
                                td { (d.origin) }
                                td { (d.kinds) }
                                td { (d.initiator) }
                                td {
                                    @if d.origin == origin_of(p.url.get_ref()) { "its own origin" }
                                    @else if p.destination_listed(&d.origin) { "yes" }
                                    @else { span class="muted" { "seen at the first check or since" } }
                                }
                                td { (short(d.first_seen)) }
                                td { (short(d.last_seen)) }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Payment pages", &s, &body.into_string())
}
