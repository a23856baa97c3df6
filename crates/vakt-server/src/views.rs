//! Read routes over the ledger: one alert with the actor's activity,
//! scope, canaries, exposure, and the GDPR draft.

use crate::auth::authorize;
use crate::http::{
    blocking, lock, no_params, parse_count, parse_time, query_pairs, ApiError, Shared,
};
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use vakt_event::stats::{usual_range, usual_range_since};
use vakt_event::Timestamp;
use vakt_ledger::audit::Audit;
use vakt_ledger::scope::Cidr;
use vakt_ledger::tokens::Role;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn no_alert(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no alert {id}; GET /v1/alerts lists the recorded alerts and their ids"),
    )
}

/// `GET /v1/alerts/{id}`: the alert, and its account's accesses per hour
/// from 7 days before `first_seen` to a day after, with its usual range
/// ([`usual_range`]) as the baseline band.
pub(crate) async fn one_alert(
    state: Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Role::Read).await?;
    no_params("/v1/alerts/{id}", q)?;
    let state = state.0.clone();
    blocking(move || {
        let l = lock(&state.reader);
        let row = l
            .alert_row(&id)
            .map_err(ApiError::internal)?
            .ok_or_else(|| no_alert(&id))?;
        let alert: Value = serde_json::from_str(&row.line)
            .map_err(|e| ApiError::internal(format!("alert {id} is stored damaged: {e}")))?;
        let activity = match &row.user {
            None => Value::Null,
            Some(account) => {
                let since = usual_range_since(row.first_seen);
                let until = row.first_seen.saturating_add(DAY_MS);
                let hours = l
                    .activity_per_hour(account, since, until)
                    .map_err(ApiError::internal)?;
                let usual = usual_range(&hours, row.first_seen).unwrap_or_default();
                json!({
                    "account": account,
                    "since": since,
                    "until": until,
                    "hours": hours.iter().map(|(h, n)| json!({"hour": h, "accesses": n})).collect::<Vec<_>>(),
                    "baseline": {
                        "active_hours": usual.active_hours,
                        "median": usual.median,
                        "p90": usual.p90,
                    },
                })
            }
        };
        Ok(Json(json!({ "alert": alert, "activity": activity })))
    })
    .await
}

/// `GET /v1/scope?account=NAME[&since&until&ip=CIDR]` or `?customer=ID`.
pub(crate) async fn scope(
    state: Shared,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Role::Read).await?;
    let (mut account, mut customer, mut ip) = (None, None, None);
    let (mut since, mut until) = (None, None);
    for (k, v) in query_pairs(q)? {
        match k.as_str() {
            "account" if !v.is_empty() => account = Some(v),
            "customer" if !v.is_empty() => customer = Some(v),
            "since" => since = Some(parse_time("since", &v)?),
            "until" => until = Some(parse_time("until", &v)?),
            "ip" => {
                ip = Some(Cidr::parse(&v).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`ip={v}` is not an address or network; write e.g. 198.51.100.0/24"
                    ))
                })?)
            }
            "account" | "customer" => {
                return Err(ApiError::bad_request(format!("`{k}` is empty; give a name")))
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{k}`; /v1/scope takes account (with since, until, ip) or customer"
                )))
            }
        }
    }
    let state = state.0.clone();
    match (account, customer) {
        (Some(account), None) => blocking(move || {
            let s = lock(&state.reader)
                .scope_account(
                    &account,
                    since.unwrap_or(Timestamp(i64::MIN)),
                    until.unwrap_or(Timestamp(i64::MAX)),
                    ip,
                )
                .map_err(ApiError::internal)?;
            // A side not asked for is unbounded: null, not the epoch that
            // an out-of-range time would print as.
            let mut s = json!(s);
            s["since"] = json!(since);
            s["until"] = json!(until);
            Ok(Json(s))
        })
        .await,
        (None, Some(customer)) => blocking(move || {
            let list = lock(&state.reader)
                .scope_customer(&customer)
                .map_err(ApiError::internal)?;
            Ok(Json(json!({ "customer": customer, "accesses": list })))
        })
        .await,
        _ => Err(ApiError::bad_request(
            "give exactly one of account=NAME (which customers it read) or customer=ID (who read it)",
        )),
    }
}

/// `GET /v1/canaries`: the directory's canaries, and who read each.
pub(crate) async fn canaries(
    state: Shared,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Role::Read).await?;
    no_params("/v1/canaries", q)?;
    let state = state.0.clone();
    blocking(move || {
        let l = lock(&state.reader);
        let mut out = Vec::new();
        for c in &state.directory().canaries {
            let reads = l
                .scope_customer(&c.customer_id)
                .map_err(ApiError::internal)?;
            let by: BTreeSet<&str> = reads.iter().map(|r| r.account.as_str()).collect();
            out.push(json!({
                "customer_id": c.customer_id,
                "label": c.label,
                "read": !reads.is_empty(),
                "reads": reads.len(),
                "first_read": reads.first().map(|r| r.at),
                "last_read": reads.last().map(|r| r.at),
                "by": by,
            }));
        }
        Ok(Json(json!(out)))
    })
    .await
}

/// `GET /v1/exposure?m=1.5&limit=20`.
pub(crate) async fn exposure(
    state: Shared,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Role::Read).await?;
    let (mut m, mut limit, mut kind) = (1.5f64, 20usize, None);
    for (k, v) in query_pairs(q)? {
        match k.as_str() {
            "m" => {
                m = v
                    .parse()
                    .ok()
                    .filter(|m: &f64| (1.0..=3.0).contains(m))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "`m={v}`: give an exponent from 1 to 3, e.g. 1.5"
                        ))
                    })?
            }
            "limit" => limit = parse_count("limit", &v, 10_000)?,
            "kind" if v == "account" || v == "organization" => kind = Some(v),
            "kind" => {
                return Err(ApiError::bad_request(format!(
                    "`kind={v}`: use account or organization"
                )))
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{k}`; /v1/exposure takes m, kind and limit"
                )))
            }
        }
    }
    let state = state.0.clone();
    blocking(move || {
        let mut rows = lock(&state.reader)
            .exposure(m)
            .map_err(ApiError::internal)?;
        if let Some(k) = &kind {
            rows.retain(|r| r.kind == k);
        }
        rows.truncate(limit);
        Ok(Json(json!(rows)))
    })
    .await
}

/// `POST /v1/reports/{alert_id}` (admin): the GDPR Art. 33 draft.
pub(crate) async fn report(
    state: Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    ext: axum::http::Extensions,
) -> Result<Json<Value>, ApiError> {
    let token = authorize(&state, &headers, Role::Admin).await?;
    let who = crate::auth::who(&token, &ext);
    let state = state.0.clone();
    blocking(move || {
        let l = lock(&state.reader);
        if l.alert_row(&id).map_err(ApiError::internal)?.is_none() {
            return Err(no_alert(&id));
        }
        let mut r = vakt_ledger::report::draft(&l, &id).map_err(ApiError::internal)?;
        drop(l);
        r.regimes = state
            .directory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .regimes_for(r.alert.organization.as_deref());
        // A draft names the customers: who took one is on record.
        lock(&state.writer)
            .audited(&who, |_| Ok(((), Some(Audit::new("report.export", &id)))))
            .map_err(ApiError::internal)?;
        let markdown = r.markdown(vakt_detect::detectors::remediation(&r.alert.rule));
        let html = vakt_ledger::report::to_html(&markdown);
        Ok(Json(
            json!({ "alert": id, "markdown": markdown, "html": html }),
        ))
    })
    .await
}

/// `POST /v1/reports/{alert_id}/notice?locale=sv`: the notice to the
/// customers (Art. 34) in sv, nb, de, nl or en (default en).
pub(crate) async fn notice(
    state: Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    ext: axum::http::Extensions,
) -> Result<Json<Value>, ApiError> {
    let token = authorize(&state, &headers, Role::Admin).await?;
    let mut locale = vakt_ledger::notice::Locale::En;
    for (k, v) in query_pairs(q)? {
        match k.as_str() {
            "locale" => {
                locale = vakt_ledger::notice::Locale::parse(&v).ok_or_else(|| {
                    ApiError::bad_request(format!("`locale={v}`: write sv, nb, de, nl or en"))
                })?
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{k}`; this route takes locale"
                )))
            }
        }
    }
    let who = crate::auth::who(&token, &ext);
    let state = state.0.clone();
    blocking(move || {
        let l = lock(&state.reader);
        if l.alert_row(&id).map_err(ApiError::internal)?.is_none() {
            return Err(no_alert(&id));
        }
        let r = vakt_ledger::report::draft(&l, &id).map_err(ApiError::internal)?;
        drop(l);
        lock(&state.writer)
            .audited(&who, |_| {
                let audit =
                    Audit::new("report.notice", &id).details(json!({ "locale": locale.as_str() }));
                Ok(((), Some(audit)))
            })
            .map_err(ApiError::internal)?;
        let markdown = vakt_ledger::notice::customer_notice(&r, locale);
        let html = vakt_ledger::report::to_html(&markdown);
        Ok(Json(
            json!({ "alert": id, "locale": locale.as_str(), "markdown": markdown, "html": html }),
        ))
    })
    .await
}

/// `GET /v1/reports/{alert_id}/recipients`: the customers to notify, as CSV.
pub(crate) async fn recipients(
    state: Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    ext: axum::http::Extensions,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let token = authorize(&state, &headers, Role::Admin).await?;
    no_params("/v1/reports/{alert_id}/recipients", q)?;
    let who = crate::auth::who(&token, &ext);
    let state = state.0.clone();
    let csv = blocking(move || {
        let l = lock(&state.reader);
        if l.alert_row(&id).map_err(ApiError::internal)?.is_none() {
            return Err(no_alert(&id));
        }
        let r = vakt_ledger::report::draft(&l, &id).map_err(ApiError::internal)?;
        drop(l);
        let scope = r.scope.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no customers to list: alert {id} is about a host's traffic, not reads of customer records"),
            )
        })?;
        lock(&state.writer)
            .audited(&who, |_| {
                let audit = Audit::new("report.recipients", &id)
                    .details(json!({ "customers": scope.customers.len() }));
                Ok(((), Some(audit)))
            })
            .map_err(ApiError::internal)?;
        Ok(vakt_ledger::notice::recipients_csv(&scope))
    })
    .await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        csv,
    )
        .into_response())
}

/// One `[[page]]` with its inventory: the page's settings, its last check,
/// each script version with the directory's justification, and its
/// destinations. Shared by `GET /v1/pages` and the console.
pub(crate) fn page_view(
    l: &vakt_ledger::Ledger,
    p: &vakt_event::page::PageEntry,
) -> vakt_ledger::Result<Value> {
    let url = p.url.get_ref();
    let inv = l.page_inventory(url)?;
    let rows = vakt_pages::inventory::rows(&inv.scripts, std::slice::from_ref(p));
    let scripts: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = json!(r.script);
            v["justification"] = json!(r.justification);
            v["may_change"] = json!(r.may_change);
            v
        })
        .collect();
    Ok(json!({
        "url": url,
        "every_seconds": p.every_ms / 1000,
        "fill": p.fill,
        "last_checked": inv.last.as_ref().map(|c| c.checked_at),
        "final_url": inv.last.as_ref().map(|c| &c.final_url),
        "csp": inv.last.as_ref().and_then(|c| c.csp.as_ref()),
        "scripts": scripts,
        "destinations": inv.destinations,
    }))
}

/// `GET /v1/pages`: the directory's payment pages and their inventories.
pub(crate) async fn pages(
    state: Shared,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Role::Read).await?;
    no_params("/v1/pages", q)?;
    let state = state.0.clone();
    blocking(move || {
        let l = lock(&state.reader);
        let out = state
            .directory()
            .pages
            .iter()
            .map(|p| page_view(&l, p))
            .collect::<vakt_ledger::Result<Vec<_>>>()
            .map_err(ApiError::internal)?;
        Ok(Json(json!(out)))
    })
    .await
}
