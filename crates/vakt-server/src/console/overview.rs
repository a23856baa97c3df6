//! The console's overview: open incidents by severity and age, the
//! notification clocks of breaches, alerts per day per rule over 30 days
//! (drawn on the server as SVG, like the alert page's activity chart),
//! the top exposure, and a search box for an account, a customer, an
//! address or an alert id.

use super::html::{page, short};
use super::pages::read;
use super::roles::READ;
use super::{form_pairs, require, see_other, Shared};
use crate::http::encode_query;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{html, Markup, PreEscaped};
use std::collections::BTreeMap;
use vakt_event::notification::Clock;
use vakt_event::{Severity, Timestamp};
use vakt_ledger::incident_workflow::IncidentStatus;
use vakt_ledger::incidents::Incident;

const DAY_MS: i64 = 24 * 3_600_000;
/// Days the alert chart covers.
const DAYS: i64 = 30;
const SEVERITIES: [Severity; 4] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
];
/// Age buckets of open incidents: up to a day, a week, older.
const AGES: [(&str, i64); 3] = [
    ("under 1 day", DAY_MS),
    ("1 to 7 days", 7 * DAY_MS),
    ("over 7 days", i64::MAX),
];

/// Colour classes of the chart's rules (`.r0` to `.r7` in console.css,
/// readable in light and dark; no inline style, which the CSP forbids).
const PALETTE: usize = 8;

pub(crate) async fn overview(c: Shared, headers: HeaderMap) -> Response {
    let s = match require(&c, &headers, "/overview", READ) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let data = read(&c, |l| {
        let incidents = l.incidents(Timestamp(i64::MIN), Timestamp(i64::MAX))?;
        let alerts = l.alert_rows(Timestamp(i64::MIN), Timestamp(i64::MAX))?;
        let exposure = l.exposure(1.5)?;
        Ok((incidents, alerts, exposure))
    })
    .await;
    let (incidents, alerts, exposure) = match data {
        Ok(d) => d,
        Err(e) => return super::html::fail(&s, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let now = Timestamp::now();
    let open: Vec<&Incident> = incidents
        .iter()
        .filter(|i| i.workflow.status != IncidentStatus::Resolved)
        .collect();
    // Severity x age of the open incidents.
    let mut grid = [[0usize; 3]; 4];
    for i in &open {
        let row = SEVERITIES
            .iter()
            .position(|s| *s == i.severity)
            .unwrap_or(3);
        let age = now.0.saturating_sub(i.first.0);
        let col = AGES.iter().position(|(_, max)| age < *max).unwrap_or(2);
        grid[row][col] += 1;
    }
    let mut clocks: Vec<(&Incident, Clock)> = incidents
        .iter()
        .flat_map(|i| {
            crate::incidents::clocks_of(&c.app, i, now)
                .into_iter()
                .filter(|c| c.done.is_none())
                .map(move |c| (i, c))
        })
        .collect();
    clocks.sort_by_key(|(_, c)| c.left_ms);
    // Alerts per day and rule, the 30 days up to the latest alert.
    let end_day = alerts
        .iter()
        .map(|a| a.first_seen.0)
        .max()
        .unwrap_or(now.0)
        .div_euclid(DAY_MS);
    let first_day = end_day - (DAYS - 1);
    let mut per_rule: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for a in &alerts {
        let day = a.first_seen.0.div_euclid(DAY_MS);
        if day >= first_day && day <= end_day {
            per_rule
                .entry(a.rule.as_str())
                .or_insert_with(|| vec![0; DAYS as usize])[(day - first_day) as usize] += 1;
        }
    }
    let body = html! {
        form class="filters" method="get" action="/search" role="search" {
            label { "Search: an account, a customer, an address or an alert id"
                input name="q" id="q" size="40" required;
            }
            button type="submit" id="search" { "Search" }
        }
        h2 { "Open incidents" }
        table id="open-incidents" {
            tr { th { "Severity" } @for (name, _) in AGES { th class="num" { (name) } } }
            @for (row, sev) in SEVERITIES.iter().enumerate() {
                tr {
                    td { span class={ "sev sev-" (sev.as_str()) } { (sev.as_str()) } }
                    @for n in grid[row] {
                        td class="num" {
                            @if n > 0 { a href={ "/incidents?severity=" (sev.as_str()) } { (n) } } @else { "0" }
                        }
                    }
                }
            }
        }
        p class="muted" { (open.len()) " open, " (incidents.len() - open.len()) " resolved. " a href="/incidents" { "All incidents" } }
        h2 { "Notification clocks" }
        @if clocks.is_empty() {
            p class="muted" id="no-clocks" { "No breach has a notification due." }
        } @else {
            table id="overview-clocks" {
                tr { th { "Incident" } th { "Notification" } th { "Due" } th { "Left" } }
                @for (i, c) in clocks.iter().take(20) {
                    tr {
                        td { a href={ "/incidents/" (encode_query(&i.id)) } { (i.id) } }
                        td { (c.title) }
                        td { (short(c.due)) }
                        td class=(if c.overdue() { "error" } else { "" }) { (super::incidents::left(c.left_ms)) }
                    }
                }
            }
        }
        h2 { "Alerts per day" }
        (chart(&per_rule, first_day))
        h2 { "Top exposure" }
        table id="top-exposure" {
            tr { th { "Name" } th { "Kind" } th class="num" { "Customers" } th class="num" { "Unlisted records" } th class="num" { "Value" } }
            @for e in exposure.iter().take(5) {
                tr {
                    td { (e.name) } td { (e.kind) } td class="num" { (e.customers) }
                    td class="num" { (e.unlisted_records) } td class="num" { (format!("{:.0}", e.value)) }
                }
            }
        }
        p class="muted" { a href="/exposure" { "All exposure" } }
    };
    page("Overview", &s, &body.into_string())
}

/// Stacked bars of alerts per day, one colour per rule, with a legend.
fn chart(per_rule: &BTreeMap<&str, Vec<u64>>, first_day: i64) -> Markup {
    const W: f64 = 960.0;
    const H: f64 = 200.0;
    const PAD_L: f64 = 40.0;
    const PAD_B: f64 = 22.0;
    const PAD_T: f64 = 10.0;
    let totals: Vec<u64> = (0..DAYS as usize)
        .map(|d| per_rule.values().map(|v| v[d]).sum())
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1) as f64;
    let plot_w = W - PAD_L - 8.0;
    let plot_h = H - PAD_T - PAD_B;
    let bw = plot_w / DAYS as f64;
    let day_label = |d: i64| {
        short(Timestamp((first_day + d) * DAY_MS))
            .chars()
            .take(10)
            .collect::<String>()
    };
    let mut bars = String::new();
    for d in 0..DAYS as usize {
        let mut y = PAD_T + plot_h;
        for (k, (rule, counts)) in per_rule.iter().enumerate() {
            let n = counts[d];
            if n == 0 {
                continue;
            }
            let h = n as f64 / max * plot_h;
            y -= h;
            bars += &html! {
                rect x=(format!("{:.1}", PAD_L + d as f64 * bw + 1.0)) y=(format!("{y:.1}"))
                    width=(format!("{:.1}", (bw - 2.0).max(1.0))) height=(format!("{h:.1}"))
                    class={ "bar r" (k % PALETTE) } data-rule=(rule) data-count=(n) {
                    title { (day_label(d as i64)) ": " (n) " " (rule) }
                }
            }
            .into_string();
        }
    }
    html! {
        svg id="alerts-chart" viewBox=(format!("0 0 {W} {H}")) role="img"
            aria-label="alerts per day per rule" xmlns="http://www.w3.org/2000/svg"
            data-days=(DAYS) data-total=(totals.iter().sum::<u64>()) {
            line class="axis" x1=(PAD_L) y1=(PAD_T + plot_h) x2=(W - 8.0) y2=(PAD_T + plot_h) {}
            text x=(PAD_L - 4.0) y=(PAD_T + 8.0) text-anchor="end" { (max as u64) }
            text x=(PAD_L - 4.0) y=(PAD_T + plot_h) text-anchor="end" { "0" }
            text x=(PAD_L) y=(H - 6.0) { (day_label(0)) }
            text x=(W - 8.0) y=(H - 6.0) text-anchor="end" { (day_label(DAYS - 1)) }
            (PreEscaped(bars))
        }
        p class="legend muted" {
            "The 30 days up to the latest alert. "
            @for (k, (rule, counts)) in per_rule.iter().enumerate() {
                span class="key" {
                    svg class="swatch" viewBox="0 0 10 10" width="10" height="10" aria-hidden="true" {
                        rect class={ "r" (k % PALETTE) } width="10" height="10" {}
                    }
                    " " (rule) " " (counts.iter().sum::<u64>())
                } " "
            }
        }
    }
}

/// `GET /search?q=`: an alert or incident id goes to its page; anything
/// else lists the incidents of that actor or account and, for a customer
/// id, who read it.
pub(crate) async fn search(c: Shared, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let s = match require(&c, &headers, "/overview", READ) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = form_pairs(&q.unwrap_or_default())
        .remove("q")
        .map(|v| v.trim().to_owned())
        .unwrap_or_default();
    if q.is_empty() {
        return see_other("/overview");
    }
    let term = q.clone();
    let found = read(&c, move |l| {
        if l.alert_row(&term)?.is_some() {
            return Ok(Err(format!("/alerts/{}", encode_query(&term))));
        }
        let incidents = l.incidents(Timestamp(i64::MIN), Timestamp(i64::MAX))?;
        if incidents.iter().any(|i| i.id == term) {
            return Ok(Err(format!("/incidents/{}", encode_query(&term))));
        }
        let theirs: Vec<Incident> = incidents
            .into_iter()
            .filter(|i| i.actor == term || i.account.as_deref() == Some(term.as_str()))
            .collect();
        let reads = l.scope_customer(&term)?;
        Ok(Ok((theirs, reads)))
    })
    .await;
    let (theirs, reads) = match found {
        Ok(Ok(x)) => x,
        Ok(Err(to)) => return see_other(&to),
        Err(e) => return super::html::fail(&s, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let body = html! {
        form class="filters" method="get" action="/search" role="search" {
            label { "Search" input name="q" id="q" size="40" value=(q) required; }
            button type="submit" { "Search" }
        }
        h2 { "Incidents of " (q) }
        @if theirs.is_empty() { p class="muted" id="no-incidents" { "No incident has this actor or account." } }
        @else {
            table id="found-incidents" {
                tr { th { "Severity" } th { "Status" } th { "Last active" } th { "Incident" } }
                @for i in &theirs {
                    tr {
                        td { span class={ "sev sev-" (i.severity.as_str()) } { (i.severity.as_str()) } }
                        td { (i.workflow.status.as_str()) }
                        td { (short(i.last)) }
                        td { a class="incident-link" href={ "/incidents/" (encode_query(&i.id)) } { (i.id) } }
                    }
                }
            }
        }
        h2 { "Reads of customer " (q) }
        @if reads.is_empty() { p class="muted" id="no-reads" { "The ledger holds no read of a customer with this id." } }
        @else {
            table id="customer-reads" {
                tr { th { "When" } th { "Account" } th { "Organisation" } th { "Address" } th { "Action" } th { "Case" } }
                @for r in reads.iter().rev().take(500) {
                    tr {
                        td { (short(r.at)) } td { (r.account) } td { (r.organization) }
                        td { (r.source_ip) } td { (r.action) } td { (r.case_id) }
                    }
                }
            }
        }
    };
    page(&format!("Search: {q}"), &s, &body.into_string())
}
